//! A mock AWS KMS for Strongroom's mock mode (local development and CI).
//!
//! It speaks the real KMS wire protocol — AWS JSON 1.1, `POST /` with
//! `X-Amz-Target: TrentService.<Operation>`, base64 blob members, errors as HTTP 400 with
//! `{"__type": "...Exception", "message": "..."}` and `x-amzn-ErrorType` — so the official
//! `aws-sdk-kms` client works against it unchanged except for its endpoint URL.
//!
//! # Operations
//! `CreateKey` (symmetric `SYMMETRIC_DEFAULT` keys only), `DescribeKey`, `GenerateDataKey`,
//! `Decrypt`, `GetKeyPolicy`, `PutKeyPolicy`, `CreateAlias` and `ListAliases`. A key may be
//! named by key id, key ARN, alias name or alias ARN where KMS allows it.
//!
//! # Recipient (attested requests)
//! With `Recipient = {KeyEncryptionAlgorithm: RSAES_OAEP_SHA_256, AttestationDocument}`, the
//! document is verified with `strongroom-attestation` against the configured root (the mock
//! NSM's `root.pem`, re-read whenever it changes; the AWS Nitro root if none is configured),
//! its PCRs feed the `kms:RecipientAttestation:*` condition keys of the key policy, and the
//! plaintext is returned only as `CiphertextForRecipient`: a CMS `EnvelopedData` for the
//! document's RSA key, built by `strongroom-envelope` exactly as KMS lays it out.
//!
//! # Key policies
//! See [`policy`]: statements, actions, `StringEquals`-family conditions on PCRs, the image
//! digest and the encryption context, IAM's deny-overrides evaluation.
//!
//! # What the mock does not do
//! It authenticates no one: SigV4 signatures are accepted without verification and the
//! `Principal` of policy statements is not evaluated — it mocks KMS's behaviour, not IAM.
//! It has no grants, key rotation, key states other than `Enabled`, asymmetric or HMAC keys,
//! or IAM policies. Its `CiphertextBlob` format is its own (AES-256-GCM under the key's
//! material, see the crate source); KMS's is opaque too, so nothing may depend on it. The
//! state file holds key material in the clear (mode 0600): it is a development tool.

mod attest;
mod blob;
mod error;
pub mod policy;
mod server;
mod service;
mod state;

pub use attest::{KEY_ENCRYPTION_ALGORITHM, MIN_RSA_BITS};
pub use error::Error;
pub use server::{CONTENT_TYPE, MAX_BODY_LEN, TARGET_PREFIX};
pub use service::{
    Config, DEFAULT_ACCOUNT_ID, DEFAULT_MAX_DOCUMENT_AGE, DEFAULT_REGION, EnsuredKey, MockKms,
};
pub use state::STATE_FILE;

/// Where the binary listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4599";
