//! The Strongroom parent proxy. It runs on the parent EC2 instance, which the enclave does
//! not trust: it serves the HTTP API, relays requests to the enclave over vsock (a Unix
//! socket in mock mode), relays the unseal exchange to KMS with the official AWS SDK, and
//! stores what the enclave cannot keep (all of it encrypted by KMS or sealed by the enclave).

pub mod audit;
pub mod enclave_client;
pub mod http;
pub mod kms;
pub mod metrics;
pub mod replica;
pub mod rpc_tokens;
pub mod unseal;
