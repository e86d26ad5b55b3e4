//! The pure framing layer: bytes in, values out, no I/O.
//!
//! A frame is a 4-byte big-endian body length followed by that many bytes of
//! CBOR. The body is an envelope, encoded as the CBOR array
//! `[version, request_id, body]`. Element 0 is the version in every protocol
//! version, present and future, so that a peer can always read it (and only it)
//! from a frame whose remaining layout it does not understand.

use serde::de::{self, DeserializeOwned, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{ProtocolError, bounded_message};

/// Version of the envelope and message layout this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// Length of the big-endian `u32` prefix in front of every frame body.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// Default maximum frame body length: 2 MiB.
///
/// Signing requests, responses and attestation documents are a few KiB; the largest
/// frames carry a 1 MiB part of a snapshot, a 1 MiB page of log records, or a held
/// request's record (at most 512 KiB) beside the call's other records, so 2 MiB leaves
/// headroom, while bounding what one connection can make
/// the enclave (whose memory is fixed at launch) buffer: a peer can claim up to
/// 4 GiB in a length prefix, and the prefix is checked against this bound
/// before anything is allocated or read.
pub const DEFAULT_MAX_FRAME_LEN: u32 = 2 << 20;

/// Deepest nesting of CBOR arrays, maps and tags accepted in a frame body (the envelope counts as one).
///
/// Decoding recurses once per level; ciborium's own default (256) can
/// overflow the 2 MiB stack of a tokio worker in debug builds, and no message
/// of this protocol needs more than a handful of levels.
pub const MAX_NESTING_DEPTH: usize = 64;

/// CBOR major type of an array, in the top three bits of an item's first byte.
const CBOR_MAJOR_ARRAY: u8 = 4;

/// The unit carried in every frame: a protocol version, a request id and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<T> {
    /// Protocol version of the sender; [`PROTOCOL_VERSION`] for envelopes made with [`Envelope::new`].
    pub version: u16,
    /// Id chosen by the requester and echoed in the response, to pair the two.
    pub request_id: u64,
    /// The message itself.
    pub body: T,
}

impl<T> Envelope<T> {
    /// Wraps `body` in an envelope of the current [`PROTOCOL_VERSION`].
    pub fn new(request_id: u64, body: T) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            request_id,
            body,
        }
    }
}

/// The part of an envelope that can be read without understanding its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The sender's protocol version.
    pub version: u16,
    /// The request id, if the second element of the envelope is an unsigned integer.
    pub request_id: Option<u64>,
}

/// Outcome of [`parse_frame`] on a buffer that may hold a partial frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus<'a> {
    /// The buffer holds only the start of a frame; at least `missing` more bytes are needed.
    Incomplete {
        /// Lower bound on the bytes still to come (exact once the length prefix is complete).
        missing: usize,
    },
    /// A whole frame is present.
    Complete {
        /// The frame body (CBOR), to hand to [`decode_payload`].
        payload: &'a [u8],
        /// Bytes of `buf` the frame occupies, length prefix included.
        consumed: usize,
    },
}

/// Checks a length prefix against `max` and returns the body length it declares.
///
/// This runs before any body byte is read or any buffer is sized, so that a
/// hostile length costs nothing.
pub fn body_len(prefix: [u8; LENGTH_PREFIX_LEN], max: u32) -> Result<usize, ProtocolError> {
    let declared = u32::from_be_bytes(prefix);
    let len = usize::try_from(declared).unwrap_or(usize::MAX);
    if declared > max {
        return Err(ProtocolError::FrameTooLarge { len, max });
    }
    Ok(len)
}

/// Finds the first frame in `buf` without copying or decoding it.
///
/// Only framing is checked here, so every error is fatal to the stream (the
/// only one is [`ProtocolError::FrameTooLarge`]). An oversized length is
/// reported as soon as the 4 prefix bytes are present, never after waiting for
/// the body.
pub fn parse_frame(buf: &[u8], max: u32) -> Result<FrameStatus<'_>, ProtocolError> {
    let Some((prefix, rest)) = buf.split_first_chunk::<LENGTH_PREFIX_LEN>() else {
        return Ok(FrameStatus::Incomplete {
            missing: LENGTH_PREFIX_LEN - buf.len(),
        });
    };
    let len = body_len(*prefix, max)?;
    match rest.get(..len) {
        Some(payload) => Ok(FrameStatus::Complete {
            payload,
            consumed: LENGTH_PREFIX_LEN + len,
        }),
        None => Ok(FrameStatus::Incomplete {
            missing: len - rest.len(),
        }),
    }
}

/// Reads the version and request id of an envelope, ignoring its body.
///
/// Fails with [`ProtocolError::Decode`] if the payload is not a CBOR array
/// whose first element is a `u16`.
pub fn peek_header(payload: &[u8]) -> Result<FrameHeader, ProtocolError> {
    match payload.first() {
        None => return Err(ProtocolError::Decode("empty frame body".into())),
        // ciborium would also read a byte string as a sequence; the wire format is an array.
        Some(first) if first >> 5 != CBOR_MAJOR_ARRAY => {
            return Err(ProtocolError::Decode("envelope is not a CBOR array".into()));
        }
        Some(_) => {}
    }
    let mut reader = payload;
    let PeekedHeader(header) =
        ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_NESTING_DEPTH)
            .map_err(|e| ProtocolError::Decode(bounded_message(e)))?;
    Ok(header)
}

/// Decodes one frame body (without its length prefix) into an envelope.
///
/// The version is read and checked first, so a peer of another version gets
/// [`ProtocolError::VersionMismatch`] whatever its body looks like. Then the
/// whole envelope is decoded with nesting capped at [`MAX_NESTING_DEPTH`], and
/// bytes left over after it are an error. Every error here is a body error
/// ([`ProtocolError::is_body_error`]): the frame has been consumed and the
/// stream stays aligned.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<Envelope<T>, ProtocolError> {
    let header = peek_header(payload)?;
    if header.version != PROTOCOL_VERSION {
        return Err(ProtocolError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: header.version,
        });
    }
    let mut reader = payload;
    let (version, request_id, body): (u16, u64, T) =
        ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_NESTING_DEPTH)
            .map_err(|e| ProtocolError::Decode(bounded_message(e)))?;
    if !reader.is_empty() {
        return Err(ProtocolError::Decode(format!(
            "{} trailing bytes after the envelope",
            reader.len()
        )));
    }
    Ok(Envelope {
        version,
        request_id,
        body,
    })
}

/// Decodes the frame at the start of `buf`, which must hold the whole frame.
///
/// Returns the envelope and the bytes consumed. A short buffer gives
/// [`ProtocolError::Truncated`]. Unlike [`parse_frame`] followed by
/// [`decode_payload`], a body error here does not tell the caller how far to
/// skip; stream readers should use those two steps instead.
pub fn decode_frame<T: DeserializeOwned>(
    buf: &[u8],
    max: u32,
) -> Result<(Envelope<T>, usize), ProtocolError> {
    match parse_frame(buf, max)? {
        FrameStatus::Complete { payload, consumed } => Ok((decode_payload(payload)?, consumed)),
        FrameStatus::Incomplete { missing } => Err(ProtocolError::Truncated {
            expected: buf.len().saturating_add(missing),
            received: buf.len(),
        }),
    }
}

/// Encodes `envelope` as a complete frame, length prefix included.
///
/// Fails with [`ProtocolError::FrameTooLarge`] if the body would exceed `max`,
/// so that we never send what a peer with the same limit refuses.
pub fn encode_frame<T: Serialize>(
    envelope: &Envelope<T>,
    max: u32,
) -> Result<Vec<u8>, ProtocolError> {
    let mut frame = vec![0; LENGTH_PREFIX_LEN];
    let wire = (envelope.version, envelope.request_id, &envelope.body);
    ciborium::ser::into_writer(&wire, &mut frame)
        .map_err(|e| ProtocolError::Encode(bounded_message(e)))?;
    let len = frame.len() - LENGTH_PREFIX_LEN;
    let declared = u32::try_from(len)
        .ok()
        .filter(|declared| *declared <= max)
        .ok_or(ProtocolError::FrameTooLarge { len, max })?;
    frame[..LENGTH_PREFIX_LEN].copy_from_slice(&declared.to_be_bytes());
    Ok(frame)
}

/// Deserialization target of [`peek_header`]: reads two elements and stops.
struct PeekedHeader(FrameHeader);

impl<'de> Deserialize<'de> for PeekedHeader {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(HeaderVisitor)
    }
}

/// Visitor that takes the version and, if it can, the request id from the envelope array.
struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = PeekedHeader;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an envelope array starting with a u16 version")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let version: u16 = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        // Best effort: only the version's position is fixed across versions,
        // and the request id only helps to address an error reply.
        let request_id = seq.next_element::<u64>().ok().flatten();
        // The rest of the array is deliberately left unread.
        Ok(PeekedHeader(FrameHeader {
            version,
            request_id,
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use ciborium::Value;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    enum TestMsg {
        Ping,
        Echo(String),
        Sign { key: u32, digest: Vec<u8> },
    }

    /// A frame whose body is the given raw CBOR.
    fn raw_frame(payload: &[u8]) -> Vec<u8> {
        let mut frame = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        frame
    }

    /// CBOR for `[PROTOCOL_VERSION, 7, <body>]` with `body` given as raw CBOR.
    fn envelope_with_raw_body(body: &[u8]) -> Vec<u8> {
        let mut payload = vec![0x83];
        ciborium::ser::into_writer(&PROTOCOL_VERSION, &mut payload).unwrap();
        payload.push(0x07);
        payload.extend_from_slice(body);
        payload
    }

    fn decode_err<T: DeserializeOwned + std::fmt::Debug>(payload: &[u8]) -> ProtocolError {
        decode_payload::<T>(payload).unwrap_err()
    }

    #[test]
    fn round_trips_and_reports_consumed_bytes() {
        let envelope = Envelope::new(
            42,
            TestMsg::Sign {
                key: 3,
                digest: vec![0xab; 32],
            },
        );
        let mut bytes = encode_frame(&envelope, DEFAULT_MAX_FRAME_LEN).unwrap();
        let frame_len = bytes.len();
        bytes.extend_from_slice(&encode_frame(&Envelope::new(43, TestMsg::Ping), 64).unwrap());

        let (first, consumed) = decode_frame::<TestMsg>(&bytes, DEFAULT_MAX_FRAME_LEN).unwrap();
        assert_eq!(first, envelope);
        assert_eq!(consumed, frame_len);
        let (second, _) = decode_frame::<TestMsg>(&bytes[consumed..], 64).unwrap();
        assert_eq!(second, Envelope::new(43, TestMsg::Ping));
    }

    #[test]
    fn wire_format_is_a_three_element_array_behind_a_big_endian_length() {
        let frame = encode_frame(&Envelope::new(7, TestMsg::Echo("hi".into())), 64).unwrap();
        // [1, 7, {"Echo": "hi"}]
        let body = [
            0x83, 0x01, 0x07, 0xa1, 0x64, b'E', b'c', b'h', b'o', 0x62, b'h', b'i',
        ];
        assert_eq!(frame, raw_frame(&body));
    }

    #[test]
    fn length_is_checked_before_the_body_arrives() {
        let max: u32 = 100;
        // Exactly at the maximum: fine, waits for the body.
        let at_max = max.to_be_bytes();
        assert_eq!(
            parse_frame(&at_max, max).unwrap(),
            FrameStatus::Incomplete { missing: 100 }
        );
        // One over: refused from the prefix alone.
        let over = (max + 1).to_be_bytes();
        assert!(matches!(
            parse_frame(&over, max),
            Err(ProtocolError::FrameTooLarge { len: 101, max: 100 })
        ));
        // A 4 GiB claim is refused the same way, with nothing allocated for it.
        assert!(matches!(
            parse_frame(&[0xff; 4], DEFAULT_MAX_FRAME_LEN),
            Err(ProtocolError::FrameTooLarge { len, .. }) if len == u32::MAX as usize
        ));
    }

    #[test]
    fn encoding_refuses_bodies_over_the_maximum() {
        let big = Envelope::new(1, TestMsg::Echo("x".repeat(200)));
        assert!(matches!(
            encode_frame(&big, 100),
            Err(ProtocolError::FrameTooLarge { max: 100, .. })
        ));
        let frame = encode_frame(&big, 300).unwrap();
        // The receiver accepts exactly what the sender was allowed to send.
        let len = u32::try_from(frame.len() - LENGTH_PREFIX_LEN).unwrap();
        assert!(decode_frame::<TestMsg>(&frame, len).is_ok());
        assert!(matches!(
            decode_frame::<TestMsg>(&frame, len - 1),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn partial_frames_are_incomplete_or_truncated() {
        let frame = encode_frame(&Envelope::new(9, TestMsg::Ping), 64).unwrap();
        for cut in 0..frame.len() {
            let partial = &frame[..cut];
            let missing = match parse_frame(partial, 64).unwrap() {
                FrameStatus::Incomplete { missing } => missing,
                FrameStatus::Complete { .. } => panic!("complete at {cut}"),
            };
            if cut >= LENGTH_PREFIX_LEN {
                assert_eq!(missing, frame.len() - cut);
            }
            assert!(matches!(
                decode_frame::<TestMsg>(partial, 64),
                Err(ProtocolError::Truncated { received, .. }) if received == cut
            ));
        }
    }

    #[test]
    fn garbage_cbor_is_a_decode_error() {
        for garbage in [
            &b"\xff\xff\xff"[..],
            b"not cbor at all",
            b"\x83\x01",                      // array of 3 with one element
            b"\x83\x01\x07\x1c",              // reserved additional info 28
            b"\x83\x01\x07\x64Pi",            // text string cut short
            b"\x83\x01\x07\x7f\x61a\x01\xff", // indefinite text with a non-text chunk
            b"",
        ] {
            let frame = raw_frame(garbage);
            assert!(
                matches!(
                    decode_frame::<TestMsg>(&frame, 64),
                    Err(ProtocolError::Decode(_))
                ),
                "{garbage:02x?}"
            );
        }
    }

    #[test]
    fn a_body_of_the_wrong_type_is_a_decode_error() {
        let frame = encode_frame(&Envelope::new(5, 17u32), 64).unwrap();
        assert!(matches!(
            decode_frame::<TestMsg>(&frame, 64),
            Err(ProtocolError::Decode(_))
        ));
    }

    #[test]
    fn trailing_bytes_and_extra_elements_are_refused() {
        let mut payload = envelope_with_raw_body(&[0x64, b'P', b'i', b'n', b'g']);
        assert!(decode_payload::<TestMsg>(&payload).is_ok());
        payload.push(0x00);
        assert!(
            matches!(decode_err::<TestMsg>(&payload), ProtocolError::Decode(m) if m.contains("trailing"))
        );
        // [1, 7, "Ping", 0]
        let four = [0x84, 0x01, 0x07, 0x64, b'P', b'i', b'n', b'g', 0x00];
        assert!(matches!(
            decode_err::<TestMsg>(&four),
            ProtocolError::Decode(_)
        ));
    }

    #[test]
    fn version_mismatch_is_reported_whatever_the_body() {
        let newer = Envelope {
            version: PROTOCOL_VERSION + 1,
            request_id: 11,
            body: TestMsg::Ping,
        };
        let frame = encode_frame(&newer, 64).unwrap();
        assert!(matches!(
            decode_frame::<TestMsg>(&frame, 64),
            Err(ProtocolError::VersionMismatch { ours: PROTOCOL_VERSION, theirs }) if theirs == PROTOCOL_VERSION + 1
        ));
        // A newer peer's envelope with a body we cannot parse, and more elements than ours.
        // [2, 11, h'00', 0xf7 (undefined), {}]
        let alien = [0x85, 0x02, 0x0b, 0x41, 0x00, 0xf7, 0xa0];
        assert!(matches!(
            decode_err::<TestMsg>(&alien),
            ProtocolError::VersionMismatch { theirs: 2, .. }
        ));
        assert_eq!(
            peek_header(&alien).unwrap(),
            FrameHeader {
                version: 2,
                request_id: Some(11)
            }
        );
        // Even a version whose later layout has no request id.
        let no_id = [0x82, 0x02, 0x61, b'x'];
        assert_eq!(
            peek_header(&no_id).unwrap(),
            FrameHeader {
                version: 2,
                request_id: None
            }
        );
    }

    #[test]
    fn the_envelope_must_be_an_array() {
        // ciborium would read h'0107..' as the sequence [1, 7, ...] if asked for a tuple.
        let as_bytes = [0x43, 0x01, 0x07, 0x00];
        assert!(
            matches!(decode_err::<u8>(&as_bytes), ProtocolError::Decode(m) if m.contains("array"))
        );
        let as_map = [0xa1, 0x01, 0x07];
        assert!(matches!(
            decode_err::<u8>(&as_map),
            ProtocolError::Decode(_)
        ));
    }

    /// ciborium reads byte and text strings in chunks through a 4 KiB scratch
    /// buffer, growing the result only as data actually arrives, and serde
    /// caps preallocation from a declared sequence length at 1 MiB
    /// (`serde::__private::size_hint::cautious`; `ciborium::Value` does not
    /// preallocate at all). So a huge declared length in a small frame ends in
    /// an end-of-input error, after allocating at most the frame's size (or
    /// 1 MiB for a typed `Vec`).
    #[test]
    fn huge_declared_lengths_inside_a_small_frame_error_without_allocating() {
        let huge = [0xff; 8];
        let with_len = |major_8_byte_len: u8| {
            let mut body = vec![major_8_byte_len];
            body.extend_from_slice(&huge);
            body.extend_from_slice(b"just a few bytes");
            envelope_with_raw_body(&body)
        };
        let bytes = with_len(0x5b); // byte string of 2^64-1 bytes
        let text = with_len(0x7b); // text string of 2^64-1 bytes
        let array = with_len(0x9b); // array of 2^64-1 items
        let map = with_len(0xbb); // map of 2^64-1 pairs

        for payload in [&bytes, &text, &array, &map] {
            assert!(matches!(
                decode_err::<Value>(payload),
                ProtocolError::Decode(_)
            ));
        }
        assert!(matches!(
            decode_err::<Vec<u8>>(&bytes),
            ProtocolError::Decode(_)
        ));
        assert!(matches!(
            decode_err::<Vec<u64>>(&array),
            ProtocolError::Decode(_)
        ));
        assert!(matches!(
            decode_err::<String>(&text),
            ProtocolError::Decode(_)
        ));
        assert!(matches!(
            decode_err::<std::collections::BTreeMap<u8, u8>>(&map),
            ProtocolError::Decode(_)
        ));
        // A 4 GiB length needs no 8-byte header either.
        let mut four_gib = vec![0x5a, 0xff, 0xff, 0xff, 0xff];
        four_gib.extend_from_slice(b"tiny");
        assert!(matches!(
            decode_err::<Value>(&envelope_with_raw_body(&four_gib)),
            ProtocolError::Decode(_)
        ));
    }

    #[test]
    fn nesting_is_capped() {
        let nested = |depth: usize| {
            let mut body = vec![0x81; depth];
            body.push(0x00);
            envelope_with_raw_body(&body)
        };
        // The envelope itself is one level.
        assert!(decode_payload::<Value>(&nested(MAX_NESTING_DEPTH - 1)).is_ok());
        assert!(
            matches!(decode_err::<Value>(&nested(MAX_NESTING_DEPTH)), ProtocolError::Decode(m) if m.contains("Recursion"))
        );
        // Far past any stack: an error, not an overflow.
        assert!(matches!(
            decode_err::<Value>(&nested(100_000)),
            ProtocolError::Decode(_)
        ));
        // Tags nest too.
        let mut tags = vec![0xc6; 10_000];
        tags.push(0x00);
        assert!(matches!(
            decode_err::<Value>(&envelope_with_raw_body(&tags)),
            ProtocolError::Decode(_)
        ));
    }

    #[test]
    fn decode_messages_are_bounded() {
        // serde quotes an unknown variant name in its error.
        let mut body = vec![0x79, 0x27, 0x10]; // text of 10 000 bytes
        body.extend(std::iter::repeat_n(b'a', 10_000));
        let ProtocolError::Decode(message) = decode_err::<TestMsg>(&envelope_with_raw_body(&body))
        else {
            panic!("expected a decode error");
        };
        assert!(message.len() < 1_000, "{} bytes", message.len());
    }
}
