//! The Strongroom enclave: attested unseal through KMS, sealed secp256k1 keys, signing.
//!
//! Boot: the enclave waits for the proxy to run the unseal exchange. `BeginUnseal` makes an
//! ephemeral RSA-2048 key (aws-lc-rs, not the `rsa` crate, which is open to the Marvin
//! timing attack — and the parent can time every decryption) and an attestation document
//! carrying it; the proxy gets KMS to wrap the root key for that document; `CompleteUnseal`
//! opens KMS's CMS envelope (once per key), checks the root key against the deployment's
//! check value, derives working keys with HKDF-SHA256 and opens the sealed state.
//!
//! Keys: secp256k1 secrets made from NSM randomness mixed with the OS RNG, sealed with
//! AES-256-GCM with their identity in the associated data, unsealed only to sign.

pub mod api;
pub mod governance;
pub mod keys;
pub mod payload;
pub mod requests;
pub mod rootkey;
pub mod seal;
pub mod server;
pub mod service;
pub mod state;

pub use service::{Enclave, UserData, attestation_user_data};
