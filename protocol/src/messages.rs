//! The messages between the parent proxy and the enclave.
//!
//! The proxy asks, the enclave answers: every frame from the proxy carries a [`Request`],
//! every frame from the enclave a [`Response`] with the same request id. The parent is not
//! trusted, so the enclave treats every field here as hostile input and checks the limits
//! below before use; the proxy treats every answer as the enclave's word (answers are not
//! yet signed: that comes with the enclave identity key).

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Longest key label, in bytes of UTF-8.
pub const MAX_LABEL_LEN: usize = 128;
/// Largest sealed object the enclave accepts.
pub const MAX_SEALED_LEN: usize = 4096;
/// Largest KMS `CiphertextForRecipient` the enclave accepts.
pub const MAX_ENVELOPE_LEN: usize = 64 * 1024;
/// Length of a signing digest.
pub const DIGEST_LEN: usize = 32;
/// Length of a root-key check value.
pub const KEY_CHECK_LEN: usize = 16;

/// A request from the proxy to the enclave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// Where the enclave is in its life.
    Status,
    /// Start (or restart) unsealing: the enclave makes a fresh ephemeral RSA key and
    /// answers [`Response::UnsealChallenge`] with an attestation document carrying it.
    BeginUnseal,
    /// Finish unsealing with what KMS returned for the last challenge.
    CompleteUnseal(CompleteUnseal),
    /// An attestation document for a client-chosen nonce.
    GetAttestation {
        /// The client's nonce (at most 512 bytes, the NSM's limit).
        nonce: Option<ByteBuf>,
    },
    /// Generate a secp256k1 key; the enclave answers with its sealed blob.
    CreateKey {
        /// Human-readable label.
        label: String,
    },
    /// Unseal a key blob and describe the key (never its secret).
    DescribeKey {
        /// The key the caller asked for; the enclave refuses a blob of any other key.
        key_id: String,
        /// The sealed key blob as stored by the proxy.
        sealed: ByteBuf,
    },
    /// Sign a 32-byte digest with a sealed key.
    SignDigest {
        /// The key the caller asked for; the enclave refuses a blob of any other key.
        key_id: String,
        /// The sealed key blob as stored by the proxy.
        sealed: ByteBuf,
        /// The digest to sign.
        digest: ByteBuf,
    },
    /// Destroy a key: the enclave records it so its blob is refused from now on.
    DestroyKey {
        /// The key the caller asked for; the enclave refuses a blob of any other key.
        key_id: String,
        /// The sealed key blob as stored by the proxy.
        sealed: ByteBuf,
    },
}

/// KMS's answer to the unseal challenge, with what the proxy stored on earlier boots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteUnseal {
    /// KMS `CiphertextForRecipient`: CMS EnvelopedData for the challenge's RSA key.
    pub ciphertext_for_recipient: ByteBuf,
    /// The root-key check value the enclave returned on first boot; None on first boot.
    pub key_check: Option<ByteBuf>,
    /// The sealed enclave state the enclave returned last; None on first boot.
    pub state: Option<ByteBuf>,
}

/// The enclave's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Response {
    /// The enclave's phase.
    Status(Phase),
    /// An attestation document whose `public_key` is the ephemeral RSA key (DER SPKI).
    UnsealChallenge {
        /// The COSE_Sign1 attestation document.
        attestation_document: ByteBuf,
    },
    /// The root key is in place; the proxy must store both values if they are new.
    Unsealed {
        /// The root-key check value (store it on first boot, send it on later boots).
        key_check: ByteBuf,
        /// The sealed enclave state (store it; send it on later boots).
        state: ByteBuf,
    },
    /// An attestation document.
    Attestation {
        /// The COSE_Sign1 attestation document.
        document: ByteBuf,
    },
    /// A new key and its sealed blob (the proxy stores the blob).
    KeyCreated {
        /// The key's public description.
        key: KeyInfo,
        /// The sealed key blob.
        sealed: ByteBuf,
    },
    /// A key's public description.
    Key(KeyInfo),
    /// A recoverable ECDSA signature.
    Signature(RecoverableSignature),
    /// The key is destroyed; the proxy stores the new state and deletes the blob.
    KeyDestroyed {
        /// The destroyed key's id.
        key_id: String,
        /// The new sealed enclave state, recording the destruction.
        state: ByteBuf,
    },
    /// The request failed.
    Error(EnclaveError),
}

/// The enclave's phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// No root key yet: the proxy must run the unseal exchange.
    AwaitingRootKey,
    /// Unsealed and serving.
    Ready,
}

/// What a client may know about a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Key id (32 hex characters).
    pub id: String,
    /// Label given at creation.
    pub label: String,
    /// Curve name, `secp256k1`.
    pub curve: String,
    /// SEC1 uncompressed public key (65 bytes).
    pub public_key: ByteBuf,
    /// EIP-55 Ethereum address.
    pub address: String,
    /// Creation time, seconds since the Unix epoch (enclave clock).
    pub created_at: u64,
}

/// An ECDSA secp256k1 signature with its recovery id; `s` is low.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverableSignature {
    /// r, 32 bytes big-endian.
    pub r: ByteBuf,
    /// s, 32 bytes big-endian, at most n/2.
    pub s: ByteBuf,
    /// Recovery id, 0 or 1.
    pub v: u8,
}

/// A typed failure from the enclave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct EnclaveError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// Human-readable detail (never secret material).
    pub message: String,
}

/// Kinds of enclave failure; the proxy maps them to HTTP statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The enclave is not unsealed yet.
    NotReady,
    /// The request is malformed or breaks a limit.
    BadRequest,
    /// Unsealing failed; the proxy must start again with [`Request::BeginUnseal`].
    UnsealFailed,
    /// KMS released a root key that is not this enclave's.
    WrongRootKey,
    /// A sealed blob is not authentic (edited, swapped, or sealed under another root).
    BlobRejected,
    /// The key was destroyed.
    KeyDestroyed,
    /// The request does not fit the enclave's phase.
    WrongPhase,
    /// The NSM or another enclave component failed.
    Internal,
}

impl EnclaveError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}
