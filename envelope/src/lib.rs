//! The CMS envelope of AWS KMS `CiphertextForRecipient`, for the enclave and the mock KMS.
//!
//! At boot the enclave asks KMS, through the untrusted parent instance, for its root key with
//! `Recipient` set to its attestation document, which carries an ephemeral RSA-2048 public key.
//! KMS answers with a CMS `EnvelopedData` (RFC 5652) that only that key opens:
//!
//! - BER with indefinite lengths, `ContentInfo(id-envelopedData)` → `EnvelopedData` v2;
//! - exactly one `KeyTransRecipientInfo` v2 whose `rid` is `[0] subjectKeyIdentifier` =
//!   SHA-256 of the recipient's DER `SubjectPublicKeyInfo`;
//! - key transport `id-RSAES-OAEP` with SHA-256 and MGF1(SHA-256), parameters explicit;
//! - content encryption `aes256-CBC` (16-byte IV parameter, PKCS#7 padding), the ciphertext in a
//!   constructed `[0]` of `OCTET STRING` chunks.
//!
//! [`RecipientKey::open`] checks that shape and decrypts; [`seal_for_recipient`] builds it (mock
//! KMS). All RSA and AES work is done by `aws-lc-rs`, never by the `rsa` crate (Marvin attack);
//! parsing uses RustCrypto `cms`/`der` in BER mode. Everything here is pure logic: no I/O.
//!
//! # What this envelope does not give
//! The envelope is encrypted, not authenticated. Anyone holding the recipient public key — the
//! parent reads it in the attestation document — can build a valid envelope around plaintext
//! of its choice, and AES-CBC lets it flip chosen bits of the first plaintext block by flipping
//! IV bits. A successful [`RecipientKey::open`] therefore proves nothing about where the
//! plaintext came from: the caller must authenticate it (for instance against a key or digest
//! pinned in the enclave image) before trusting it.

mod algorithms;
mod error;
mod key;
mod open;
mod seal;

pub use error::EnvelopeError;
pub use key::{RecipientKey, recipient_key_id};
pub use open::Envelope;
pub use seal::seal_for_recipient;

/// Largest envelope accepted or produced, in bytes; checked before any parsing.
///
/// KMS returns at most a few kilobytes (a 4 KiB plaintext plus one RSA-2048 block and framing);
/// the limit bounds the work and memory an untrusted parent can make the enclave spend.
pub const MAX_ENVELOPE_LEN: usize = 64 * 1024;

/// Length of a recipient identifier: a SHA-256 digest of the DER `SubjectPublicKeyInfo`.
pub const RECIPIENT_ID_LEN: usize = 32;
