//! The Strongroom enclave: attested unseal through KMS, sealed secp256k1 keys, signing.
//!
//! Boot: the enclave waits for the proxy to run the unseal exchange. `BeginUnseal` makes an
//! ephemeral RSA-2048 key (aws-lc-rs, not the `rsa` crate, which is open to the Marvin
//! timing attack — and the parent can time every decryption) and an attestation document
//! carrying it; the proxy gets KMS to wrap the root key for that document; `CompleteUnseal`
//! opens KMS's CMS envelope (once per key), checks the root key against the deployment's
//! check value, derives working keys with HKDF-SHA256 and opens the sealed state — or, on
//! the first boot, seals the genesis document (admin set and first policy).
//!
//! Calls (`call`): every principal request arrives as the client sent it (method, path,
//! body, stamp); the enclave checks the stamp against the keys in its policy, decodes the
//! body itself (`payload`, with `strongroom-eth`), asks the policy engine, signs, and
//! answers with the status and JSON the proxy returns unchanged. Policy and admin changes
//! take a quorum of admins (`governance`); signing requests can wait for approvers or a
//! time-lock (`requests`).
//!
//! State as a log: every change is a `record` appended to the audit chain and applied by
//! `EnclaveState::apply` (`apply`), live and at boot alike; the `state` is sealed as a
//! snapshot now and then, and a boot replays the records after the snapshot it is given
//! (`boot`).
//!
//! Keys: secp256k1 secrets made from NSM randomness mixed with the OS RNG, sealed with
//! AES-256-GCM with their identity in the associated data, unsealed only to sign.

pub mod apply;
pub mod audit;
pub mod boot;
pub mod call;
pub mod governance;
pub mod keys;
pub mod payload;
pub mod peers;
pub mod record;
pub mod replica;
pub mod requests;
pub mod rootkey;
pub mod seal;
pub mod server;
pub mod service;
pub mod state;

pub use service::Enclave;
