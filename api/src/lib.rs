//! The HTTP API's vocabulary, in one place for the enclave, the parent proxy, the client
//! library, the CLI and the benchmark:
//!
//! - [`Route`]: every route the enclave answers, parsed from a method and path
//!   ([`Route::parse`]) and turned back into them ([`Route::method`], [`Route::path`]);
//!   [`ProxyRoute`]: the proxy's own unsigned endpoints;
//! - [`ApiErrorCode`]: every `"code"` of an error answer `{"error": {"code", "message"}}`,
//!   with its HTTP status;
//! - [`STAMP_HEADER`] and [`ANSWER_HEADER`]: the request stamp's and the answer signature's
//!   header names.
//!
//! No I/O and no dependency beyond serde: the enclave links it too.

mod code;
mod route;

pub use code::{ApiErrorCode, UnknownCode};
pub use route::{BadId, Id, ProxyRoute, Route, SignKind};

/// The header a principal's request stamp travels in (`strongroom_auth::Stamp`). Header
/// names are case-insensitive; this is the lowercase form HTTP libraries store and HTTP/2
/// sends.
pub const STAMP_HEADER: &str = "x-strongroom-stamp";

/// The header the enclave's signature of an answer travels in
/// (`strongroom_identity::AnswerSignature`), lowercase like [`STAMP_HEADER`].
pub const ANSWER_HEADER: &str = "x-strongroom-answer";
