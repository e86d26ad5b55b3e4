//! The library's error type, and the KMS exceptions the server answers with.

use std::path::PathBuf;

use axum::http::StatusCode;

/// Why the mock KMS could not start, load or save its state, or run an operation invoked
/// through the library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The state directory or file could not be read or written.
    #[error("mock KMS state {path}: {source}")]
    StateIo {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The state file exists but is not a state file this version understands.
    #[error("mock KMS state {path} is not valid: {reason}")]
    StateFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A key policy document is not valid (KMS: `MalformedPolicyDocumentException`).
    #[error("malformed key policy: {0}")]
    MalformedPolicy(String),
    /// A KMS operation invoked through the library failed with this KMS exception.
    #[error("{code}: {message}")]
    Kms {
        /// The exception name, like `AlreadyExistsException`.
        code: &'static str,
        /// Its message.
        message: String,
    },
    /// The listening socket failed.
    #[error("mock KMS server: {0}")]
    Server(#[source] std::io::Error),
    /// The operating system's random number generator failed.
    #[error("random number generator failed")]
    Random,
    /// A cryptographic primitive or an internal invariant failed.
    #[error("mock KMS internal error: {0}")]
    Internal(&'static str),
}

/// The KMS exceptions the mock answers with, named as KMS names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Code {
    AccessDenied,
    AlreadyExists,
    DryRunOperation,
    IncorrectKey,
    InvalidAliasName,
    InvalidCiphertext,
    InvalidKeyUsage,
    InvalidMarker,
    KmsInternal,
    MalformedPolicyDocument,
    NotFound,
    RequestEntityTooLarge,
    Serialization,
    UnknownOperation,
    UnsupportedOperation,
    Validation,
}

impl Code {
    /// The `__type` (and `x-amzn-ErrorType`) value.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::AccessDenied => "AccessDeniedException",
            Self::AlreadyExists => "AlreadyExistsException",
            Self::DryRunOperation => "DryRunOperationException",
            Self::IncorrectKey => "IncorrectKeyException",
            Self::InvalidAliasName => "InvalidAliasNameException",
            Self::InvalidCiphertext => "InvalidCiphertextException",
            Self::InvalidKeyUsage => "InvalidKeyUsageException",
            Self::InvalidMarker => "InvalidMarkerException",
            Self::KmsInternal => "KMSInternalException",
            Self::MalformedPolicyDocument => "MalformedPolicyDocumentException",
            Self::NotFound => "NotFoundException",
            Self::RequestEntityTooLarge => "RequestEntityTooLargeException",
            Self::Serialization => "SerializationException",
            Self::UnknownOperation => "UnknownOperationException",
            Self::UnsupportedOperation => "UnsupportedOperationException",
            Self::Validation => "ValidationException",
        }
    }

    /// KMS answers client errors with 400 and its own failures with 500.
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Self::KmsInternal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::RequestEntityTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A KMS exception: what an operation answers instead of its output.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) code: Code,
    /// KMS sends some exceptions (`InvalidCiphertextException`) without a message.
    pub(crate) message: Option<String>,
    /// For `KMSInternalException`: the mock's own failure, logged and kept for library callers
    /// but never sent over HTTP.
    pub(crate) cause: Option<Box<Error>>,
}

impl ApiError {
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: Some(message.into()),
            cause: None,
        }
    }

    pub(crate) fn bare(code: Code) -> Self {
        Self {
            code,
            message: None,
            cause: None,
        }
    }

    /// `ValidationException` in the shape KMS's request validation words it.
    pub(crate) fn validation(
        member: &str,
        value: impl std::fmt::Display,
        constraint: &str,
    ) -> Self {
        Self::new(
            Code::Validation,
            format!(
                "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
            ),
        )
    }

    /// `ValidationException` for a required member left out.
    pub(crate) fn missing(member: &str) -> Self {
        Self::new(
            Code::Validation,
            format!(
                "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
            ),
        )
    }

    /// `KMSInternalException` for a failure of the mock itself (state file, RNG); the
    /// details go to the server log, not to the HTTP caller.
    pub(crate) fn internal(cause: Error) -> Self {
        tracing::error!(error = %cause, "mock KMS internal failure");
        Self {
            code: Code::KmsInternal,
            message: Some(
                "The request was rejected because an internal exception occurred.".into(),
            ),
            cause: Some(Box::new(cause)),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::MalformedPolicy(reason) => Self::new(Code::MalformedPolicyDocument, reason),
            other => Self::internal(other),
        }
    }
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        match e.cause {
            Some(cause) => *cause,
            None => Self::Kms {
                code: e.code.name(),
                message: e.message.unwrap_or_default(),
            },
        }
    }
}
