//! Client library for Strongroom: stamps requests and checks that every answer comes from
//! an attested enclave, not from the parent instance that relays it.
//!
//! The parent instance runs the HTTP proxy; it sees and relays every request and answer.
//! Request stamps stop it from making or altering requests. This crate stops it from
//! making or altering answers: the enclave signs each answer with an Ed25519 identity key
//! it makes at boot ([`strongroom_identity::AnswerSignature`], header
//! `X-Strongroom-Answer`), and binds that key into the `user_data` of its attestation
//! documents ([`strongroom_identity::UserData`]), which the Nitro Security Module signs
//! under the AWS Nitro Enclaves root.
//!
//! - [`Verifier`] is pure (no HTTP): it knows which enclaves to trust (a root, expected
//!   PCRs — during an upgrade several releases' sets, of which a document must match one
//!   completely: [`Verifier::also_trust`] —, optionally a pinned genesis digest and root-key check value), verifies
//!   attestation documents fetched with a nonce of the caller's, remembers the identities
//!   they name, and checks answers against them. Services with their own HTTP stack use it
//!   directly.
//! - [`Client`] is a blocking HTTP client (reqwest, rustls) that stamps requests and, with
//!   a verifier, checks every enclave answer; on meeting a new identity it fetches
//!   `/v1/attestation?nonce=<32 random bytes>`, verifies it and checks the answer again.
//!   An answer that fails verification is an error, never data.
//!
//! What is checked for an answer: the signature covers the method, the path with query,
//! the body and the stamp the client sent, and the status, time and body it received; the
//! signing identity is named by a document that chains to the trusted root, carries the
//! expected PCRs and the client's nonce, is fresh and not from a debug-mode enclave; the
//! answer is at most [`DEFAULT_MAX_ANSWER_AGE`] old (reads carry no stamp, so this bounds
//! replays of old answers); and, with a [`HeadBook`] ([`Verifier::with_heads`]), the audit
//! head the answer names is not behind or beside one this client verified before (a
//! rolled-back enclave). Error answers the proxy makes itself (enclave unreachable,
//! body too large) carry no signature and are reported as
//! [`Verification::Unsigned`] errors.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use strongroom_attestation::TrustedRoot;
//! use strongroom_client::{Client, Route, SignKind, Verifier};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The measurements `nitro-cli build-enclave` printed for the image you trust.
//! let verifier = Verifier::from_pcr_file(&std::fs::read_to_string("pcrs.json")?)?
//!     // Mock mode only: the mock NSM's root instead of AWS's.
//!     .with_root(TrustedRoot::from_pem(&std::fs::read_to_string(
//!         "data/mock-nsm/root.pem",
//!     )?)?);
//! let client = Client::new("http://127.0.0.1:8080", Duration::from_secs(30))?
//!     .with_verifier(Arc::new(verifier));
//!
//! let keys = client.get(&Route::ListKeys)?;
//! let signed_by = keys.verified.as_ref().map(|v| v.identity.identity);
//! println!("{} (signed by {signed_by:?})", keys.body);
//!
//! // Stamped calls: the principal's key signs the request, the enclave the answer.
//! let principal = strongroom_auth::SigningKey::from_text(&std::fs::read_to_string(
//!     "data/dev/principal.key",
//! )?)?;
//! let body = br#"{"digest":"0x0000000000000000000000000000000000000000000000000000000000000000"}"#;
//! let route = Route::Sign("KEY-ID".parse()?, SignKind::Digest);
//! match client.stamped(&route, Some(body), &principal) {
//!     Ok(answer) => println!("{}", answer.body),
//!     // A denial is an error; with a verifier it is one the enclave signed.
//!     Err(e) => eprintln!("{e}"),
//! }
//! # Ok(())
//! # }
//! ```

mod answer;
mod error;
mod heads;
#[cfg(feature = "http")]
mod http;
mod verifier;

pub use answer::error_from_answer;
pub use error::{ClientError, Verification};
pub use heads::{HeadBook, KnownDeployment, default_path as default_state_file};
#[cfg(feature = "http")]
pub use http::{
    Answer, Client, Method, STAMP_VALIDITY_SECS, StatusCode, Url, stamp_header, wire_path,
};
/// The API's vocabulary ([`strongroom_api`]), so that callers need no second dependency.
pub use strongroom_api::{
    ANSWER_HEADER, ApiErrorCode, Id, ProxyRoute, Route, STAMP_HEADER, SignKind,
};
pub use verifier::{
    DEFAULT_MAX_ANSWER_AGE, DEFAULT_MAX_DOCUMENT_AGE, MIN_NONCE_LEN, VerifiedAnswer,
    VerifiedIdentity, Verifier, random_nonce,
};
