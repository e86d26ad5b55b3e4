//! Framing and transports between Strongroom's parent-instance proxy and the enclave.
//!
//! # Wire format
//!
//! Every message is a frame: a `u32` big-endian body length, then that many
//! bytes of CBOR holding an [`Envelope`] encoded as the array
//! `[version, request_id, body]`. The version comes first in every protocol
//! version, so a peer reads it before anything else and reports
//! [`ProtocolError::VersionMismatch`] for a frame from another version, however
//! its body looks.
//!
//! # Layers
//!
//! * [`frame`]: pure functions, bytes in and values out, no I/O
//!   ([`parse_frame`], [`decode_payload`], [`decode_frame`], [`encode_frame`]).
//!   This is what the fuzz target drives.
//! * [`io`]: [`read_frame_payload`], [`read_frame`] and [`write_frame`] over any
//!   tokio `AsyncRead`/`AsyncWrite`, built on the pure layer.
//! * [`Connection`]: request/response with request ids, for both sides.
//! * [`transport`]: Unix and vsock sockets behind the [`Listener`] trait,
//!   [`bind`] and [`connect`] for an [`Address`].
//!
//! # Limits
//!
//! The peer on the other side of the socket is untrusted in both directions
//! (the parent instance is outside the enclave's trust boundary). A frame's
//! declared length is checked against a maximum ([`DEFAULT_MAX_FRAME_LEN`]
//! unless configured) before any buffer is sized; the body buffer then grows
//! only with bytes actually received. Inside a frame, CBOR nesting is capped at
//! [`MAX_NESTING_DEPTH`], and a huge length declared for a string, array or map
//! inside a small frame ends in a decode error, not a large allocation (see the
//! test `huge_declared_lengths_inside_a_small_frame_error_without_allocating`).
//! Reads have no timeout here; a server should wrap them in one and close the
//! connection when it fires.
//!
//! # Errors and recovery
//!
//! A length-prefixed stream has no resynchronisation marker, so a connection
//! whose framing breaks (oversized length, stream ending mid-frame, I/O error)
//! must be closed. A frame that is correctly framed but whose body cannot be
//! used (garbage CBOR, wrong message type, other protocol version) has been
//! consumed whole: the peer can be answered with an error and the connection
//! kept. [`ProtocolError::is_body_error`] tells the two apart, and on the
//! server side [`Connection::recv_request`] returns the first kind as `Err` and
//! the second as [`Incoming::Rejected`].
//!
//! # Addresses and vsock
//!
//! An [`Address`] is written `unix:/path/to/sock` or `vsock:CID:PORT`. In a
//! Nitro Enclave the parent instance is always CID [`PARENT_CID`] (3), and the
//! enclave listens on [`VMADDR_CID_ANY`] (written `vsock:any:PORT`) since its
//! own CID is assigned at launch. AF_VSOCK exists only on Linux; elsewhere a
//! vsock address parses but `bind`/`connect` fail with `Unsupported`.
//!
//! # What the tests cover
//!
//! No test here can open a vsock *connection*: outside a Nitro instance there is no
//! peer (the test machines have either no AF_VSOCK or no loopback transport for it).
//! `tests/e2e/vsock.rs` runs what can run: the enclave binary binding and holding a vsock
//! port, and the proxy reporting an unreachable vsock enclave. The vsock path shares
//! everything except the socket itself: the frame codec
//! (unit tests in `frame`, property tests in `tests/proptest_frames.rs`), the
//! async reader and writer (unit tests in `io`, over in-memory streams),
//! [`Connection`] (unit tests in `connection` and `tests/unix_server.rs`) and
//! [`AnyStream`]'s delegation (exercised by `tests/unix_server.rs` through
//! [`bind`]/[`connect`] with a Unix address). Vsock address parsing is
//! unit-tested in `address`; the vsock-specific code is the two
//! `tokio_vsock` calls in [`transport`], of which `bind` runs in that test and `connect`
//! only up to its error.

pub mod address;
pub mod connection;
pub mod error;
pub mod frame;
pub mod io;
pub mod messages;
pub mod transport;

pub use address::{Address, AddressParseError, PARENT_CID, VMADDR_CID_ANY};
pub use connection::{Connection, Incoming};
pub use error::ProtocolError;
pub use frame::{
    DEFAULT_MAX_FRAME_LEN, Envelope, FrameHeader, FrameStatus, LENGTH_PREFIX_LEN,
    MAX_NESTING_DEPTH, PROTOCOL_VERSION, body_len, decode_frame, decode_payload, encode_frame,
    parse_frame, peek_header,
};
pub use io::{read_frame, read_frame_payload, write_frame};
#[cfg(target_os = "linux")]
pub use transport::VsockSocketListener;
pub use transport::{AnyListener, AnyStream, Listener, UnixSocketListener, bind, connect};
