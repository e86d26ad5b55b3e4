//! The one error type of the crate.

use std::io;

/// Everything that can go wrong while framing, encoding, decoding or moving frames.
///
/// Errors fall in two classes, told apart by [`ProtocolError::is_body_error`]:
/// errors about the *contents* of a complete frame (the stream is still aligned
/// on a frame boundary, so the peer can be answered and the connection kept),
/// and everything else read from a stream (framing broken, I/O failed, peer
/// gone), after which the connection must be closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame's declared (or, when sending, actual) length is above the maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// Length of the frame body in bytes.
        len: usize,
        /// Maximum body length in force.
        max: u32,
    },

    /// The stream or buffer ended in the middle of a frame.
    #[error("truncated frame: expected {expected} bytes, received {received}")]
    Truncated {
        /// Bytes the frame needs, length prefix included (a lower bound while the prefix is incomplete).
        expected: usize,
        /// Bytes that actually arrived, length prefix included.
        received: usize,
    },

    /// The peer closed the connection cleanly, on a frame boundary.
    #[error("connection closed by peer")]
    ConnectionClosed,

    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: ours is {ours}, the peer's is {theirs}")]
    VersionMismatch {
        /// Our [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION).
        ours: u16,
        /// The version found in the peer's envelope.
        theirs: u16,
    },

    /// A response carried another request id than the request it answers.
    #[error("response carries request id {got}, expected {expected}")]
    RequestIdMismatch {
        /// Id of the request that was sent.
        expected: u64,
        /// Id found in the response.
        got: u64,
    },

    /// A complete frame's body is not a valid envelope of the expected type.
    #[error("cannot decode frame body: {0}")]
    Decode(String),

    /// A value could not be encoded as CBOR.
    #[error("cannot encode frame body: {0}")]
    Encode(String),

    /// The underlying transport failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl ProtocolError {
    /// Whether this error, returned while reading, concerns only the contents of a complete frame.
    ///
    /// True for [`VersionMismatch`](Self::VersionMismatch), [`Decode`](Self::Decode)
    /// and [`RequestIdMismatch`](Self::RequestIdMismatch): the whole frame was
    /// consumed, so the next byte on the stream starts the next frame and the
    /// peer may be answered with an error. False for everything else: after a
    /// bad length prefix, a truncated frame or an I/O error nobody knows where
    /// the next frame starts (a length-prefixed stream has no resynchronisation
    /// marker), so the connection must be closed.
    #[must_use]
    pub fn is_body_error(&self) -> bool {
        matches!(
            self,
            Self::VersionMismatch { .. } | Self::Decode(_) | Self::RequestIdMismatch { .. }
        )
    }
}

/// Longest error text taken from a decoder: serde messages can quote peer data,
/// which must not make error replies or log lines as large as a frame.
const MAX_MESSAGE_CHARS: usize = 200;

/// Renders `error` for a `Decode`/`Encode` variant, cut to [`MAX_MESSAGE_CHARS`].
pub(crate) fn bounded_message(error: impl std::fmt::Display) -> String {
    let text = error.to_string();
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_MESSAGE_CHARS * 3);
        let cut = bounded_message(&long);
        assert_eq!(cut.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(bounded_message("short"), "short");
    }

    #[test]
    fn only_body_errors_keep_the_stream_aligned() {
        assert!(ProtocolError::Decode("x".into()).is_body_error());
        assert!(ProtocolError::VersionMismatch { ours: 1, theirs: 2 }.is_body_error());
        assert!(
            ProtocolError::RequestIdMismatch {
                expected: 1,
                got: 2
            }
            .is_body_error()
        );
        assert!(!ProtocolError::FrameTooLarge { len: 2, max: 1 }.is_body_error());
        assert!(
            !ProtocolError::Truncated {
                expected: 9,
                received: 5
            }
            .is_body_error()
        );
        assert!(!ProtocolError::ConnectionClosed.is_body_error());
        assert!(!ProtocolError::Io(io::ErrorKind::BrokenPipe.into()).is_body_error());
    }
}
