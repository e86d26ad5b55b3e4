//! The crate's one error type.

use strongroom_api::ApiErrorCode;
use strongroom_attestation::{PcrFileError, VerifyError};
use strongroom_identity::{IdentityError, IdentityPublic};

/// Whether an error answer was checked against the enclave's signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// No verifier is configured: nothing was checked (as before signed answers).
    NotChecked,
    /// The enclave signed this answer, and its identity is attested.
    Verified,
    /// The answer carries no signature: it comes from the proxy (enclave unreachable, body
    /// too large, bad request) or from anything between the client and the enclave.
    Unsigned,
}

/// Everything that can go wrong verifying or talking to Strongroom.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server's answer is longer than the client reads for it.
    #[error("{url}: the answer is longer than the {limit} bytes expected")]
    AnswerTooLarge {
        /// What was asked.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The expected PCR set is empty: every enclave chained to the root would be trusted.
    #[error("no expected PCRs: give at least one PCR value to trust")]
    NoExpectedPcrs,
    /// An expected PCR index is outside the document format's 0..32.
    #[error("expected PCR index {0} is outside 0..32")]
    PcrIndex(u16),
    /// The expected-PCR file could not be read.
    #[error(transparent)]
    PcrFile(#[from] PcrFileError),
    /// A nonce too short to be a fresh challenge.
    #[error("an attestation nonce must be at least {min} bytes, got {len}")]
    NonceTooShort {
        /// Length given.
        len: usize,
        /// Minimum length.
        min: usize,
    },
    /// The attestation document was refused (chain, signature, PCRs, nonce, age, debug mode).
    // Not `#[from]`: that would make the inner error a source too, and reports that print
    // the chain (anyhow's `{:#}`) would say it twice.
    #[error("attestation document refused: {0}")]
    Attestation(VerifyError),
    /// The document carries no user data, so it names no identity (the enclave is not
    /// unsealed yet, or it is not a Strongroom enclave).
    #[error("the attestation document carries no user data, so no identity")]
    MissingUserData,
    /// The document's user data is not Strongroom's format.
    #[error("the attestation document's user data is unusable: {0}")]
    UserData(IdentityError),
    /// The enclave's genesis digest is not the pinned one.
    #[error("the enclave's genesis digest is {found}, expected {expected}")]
    GenesisMismatch {
        /// Pinned digest, hex.
        expected: String,
        /// Digest in the document, hex.
        found: String,
    },
    /// The enclave's root-key check value is not the pinned one.
    #[error("the enclave's root-key check value is {found}, expected {expected}")]
    KeyCheckMismatch {
        /// Pinned value, hex.
        expected: String,
        /// Value in the document, hex.
        found: String,
    },
    /// A verified document describes another deployment than the one this client first saw
    /// under the same genesis, root key or endpoint (trust on first use: [`crate::HeadBook`]).
    #[error(
        "{scope} was first seen (Unix time {since}) as the deployment with {known}; the \
         enclave now attests {found}: another deployment is answering, an impostor the \
         parent booted or a re-deployment. If you expected a new deployment, pin it \
         explicitly (--expect-genesis and --expect-key-check, from its operators) or forget \
         the old one (strongroom deployments forget …; known deployments are kept in {book})"
    )]
    DeploymentChanged {
        /// What the two share: `genesis:HEX`, `key_check:HEX` or `endpoint:URL`.
        scope: String,
        /// The deployment first seen there.
        known: String,
        /// When it was recorded (Unix seconds).
        since: u64,
        /// The deployment the document describes.
        found: String,
        /// Where the known deployments are kept.
        book: String,
    },
    /// An answer that should be signed carries no signature header.
    #[error("the {status} answer carries no X-Strongroom-Answer signature; refused as unverified")]
    MissingAnswerSignature {
        /// The HTTP status of the refused answer.
        status: u16,
    },
    /// The signature header is not in the documented format.
    #[error("the answer's signature header is malformed: {0}")]
    MalformedAnswerSignature(IdentityError),
    /// The signature does not cover this request, status and body: a forged or altered answer.
    #[error(
        "answer refused: {0} (altered or forged after the enclave signed it, or the answer to another request)"
    )]
    BadAnswerSignature(IdentityError),
    /// The answer verifies under an identity no verified attestation document names yet.
    /// An HTTP client fetches an attestation document and checks the answer once more.
    #[error("the answer is signed by identity {0}, which no verified attestation names")]
    UnknownIdentity(IdentityPublic),
    /// A freshly verified attestation document names another identity than the answer's.
    #[error(
        "the answer is signed by identity {answered}, but the enclave's attestation names {attested}"
    )]
    IdentityNotAttested {
        /// The identity that signed the answer.
        answered: IdentityPublic,
        /// The identity the verified attestation document names.
        attested: IdentityPublic,
    },
    /// The answer was signed longer ago than accepted: possibly a replayed answer.
    #[error("the answer was signed {age_secs} s ago, more than the {max_secs} s accepted")]
    StaleAnswer {
        /// Age in seconds.
        age_secs: u64,
        /// Accepted maximum.
        max_secs: u64,
    },
    /// The answer's time is ahead of this machine's clock by more than the allowed skew.
    #[error("the answer is dated {ahead_secs} s in the future (clock skew or forgery)")]
    AnswerFromFuture {
        /// Seconds ahead.
        ahead_secs: u64,
    },
    /// The answer's audit head shows the enclave's log was rolled back or forked against
    /// what this client verified before ([`crate::HeadBook`]).
    #[error(
        "answer refused: the enclave's audit chain is behind or forked: this client verified \
         {seen}, the answer names {got}: {detail}"
    )]
    Rollback {
        /// What this client verified before.
        seen: String,
        /// The head the answer names.
        got: String,
        /// What the two show.
        detail: String,
    },
    /// The file the client keeps verified heads in cannot be read or written.
    #[error("the state file {path}: {detail} (--state-file to use another, --no-state for none)")]
    StateFile {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// [`crate::Client::attest`] was called on a client without a verifier.
    #[error("no verifier is configured (expected PCRs are needed to verify anything)")]
    NoVerifier,
    /// The attestation document needed to verify an identity could not be fetched.
    #[error("cannot fetch the enclave's attestation document: {0}")]
    AttestationUnavailable(Box<ClientError>),
    /// The attestation endpoint answered something other than `{"document": "<base64>"}`.
    #[error("{url}: the attestation answer is unusable: {reason}")]
    BadAttestationAnswer {
        /// The URL asked.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The server URL is unusable.
    #[error("{base:?} is not an http:// or https:// URL{}", reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
    BadUrl {
        /// The URL as given.
        base: String,
        /// The parser's complaint, if it had one.
        reason: Option<String>,
    },
    /// No answer within the timeout.
    #[error("no answer from {url} within {secs} s")]
    Timeout {
        /// The URL asked.
        url: String,
        /// The timeout.
        secs: u64,
    },
    /// The server could not be reached.
    #[error("cannot connect to Strongroom at {url}: {cause}")]
    Connect {
        /// The URL asked.
        url: String,
        /// The innermost cause.
        cause: String,
    },
    /// Any other failure to get an answer.
    #[error("request to {url} failed: {cause}")]
    Transport {
        /// The URL asked.
        url: String,
        /// The innermost cause.
        cause: String,
    },
    /// A successful answer whose body is not JSON.
    #[error("{url}: the answer is not JSON: {reason}")]
    NotJson {
        /// The URL asked.
        url: String,
        /// The parser's message.
        reason: String,
    },
    /// A success status other than the one the call expects.
    #[error("{url}: unexpected status {status} (expected {expected})")]
    UnexpectedStatus {
        /// The URL asked.
        url: String,
        /// Status received.
        status: u16,
        /// What was expected, for the message.
        expected: &'static str,
    },
    /// The server answered with an error status: `<status> <code>: <message>`.
    #[error("{summary}{}", match verification {
        Verification::Unsigned => " (unverified: not signed by the enclave; it may come from the proxy or anything in between)",
        Verification::NotChecked | Verification::Verified => "",
    })]
    Api {
        /// The HTTP status.
        status: u16,
        /// The API's error code (`denied`, `not_found`…), when the body is the API's shape;
        /// text, so that a newer server's code is kept too ([`ClientError::api_code`]: typed).
        code: Option<String>,
        /// `<status> <code>: <message>`, or the start of a body of another shape.
        summary: String,
        /// The body as JSON (`Null` when it is not JSON).
        body: serde_json::Value,
        /// Whether the enclave's signature on this error was checked.
        verification: Verification,
    },
    /// The operating system gave no randomness for a nonce.
    #[error("no randomness for a nonce: {0}")]
    Randomness(String),
    /// The system clock is before 1970.
    #[error("the system clock is before 1970")]
    Clock,
}

impl ClientError {
    /// The API's error code of an error answer, when it is one this version knows.
    pub fn api_code(&self) -> Option<ApiErrorCode> {
        match self {
            ClientError::Api {
                code: Some(code), ..
            } => ApiErrorCode::parse(code),
            _ => None,
        }
    }
}
