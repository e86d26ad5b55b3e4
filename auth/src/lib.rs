//! Request stamps. Every request to the enclave is signed by a principal (a service, an
//! automated agent, a person) over a canonical digest of the request; the enclave checks
//! the stamp against the principal keys in its sealed policy, refuses expired stamps and
//! replayed nonces, and only then looks at the request. The proxy forwards the stamp and the
//! exact body; it cannot make or change one.
//!
//! The stamp travels as one text header, so any HTTP client in any language can produce it:
//!
//! ```text
//! X-Strongroom-Stamp: v1;key=<key id>;nonce=<32-128 hex>;expires=<unix seconds>;sig=<base64url>
//! ```
//!
//! The signed digest is SHA-256 over a domain tag and length-prefixed fields (method, path,
//! SHA-256 of the body, key id, nonce, expiry), so no two different requests share a digest.

mod digest;
mod keyfile;
mod keys;
mod replay;
mod stamp;

pub use digest::{
    BOUND_STAMP_DOMAIN, STAMP_DOMAIN, bound_request_digest, request_digest, wire_path,
};
pub use keyfile::{KeyFileError, MAX_KEY_TEXT_LEN, RandomnessError};
pub use keys::{Algorithm, InvalidKey, PrincipalKey, SigningKey};
pub use replay::ReplayCache;
pub use stamp::{
    Authenticated, MAX_NONCE_LEN, MAX_STAMP_LEN, MAX_VALIDITY_SECS, MIN_NONCE_LEN, Request,
    STAMP_NONCE_LEN, Stamp, StampError, authenticate, authenticate_for, verify,
};
