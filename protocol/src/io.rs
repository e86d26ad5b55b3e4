//! Async frame reading and writing over any tokio byte stream, built on [`crate::frame`].

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::ProtocolError;
use crate::frame::{Envelope, LENGTH_PREFIX_LEN, body_len, decode_payload, encode_frame};

/// Initial buffer for a frame body: the body buffer then grows with the bytes
/// that actually arrive, so a peer that declares a large frame and stalls does
/// not pin the full maximum.
const INITIAL_BODY_CAPACITY: usize = 16 * 1024;

/// Reads one frame and returns its body (the CBOR bytes), checking only the framing.
///
/// The length prefix is checked against `max` before the body is read or any
/// buffer is sized. Every error is fatal to the connection: `ConnectionClosed`
/// for a clean end of stream before a frame starts, `Truncated` for one inside
/// a frame, `FrameTooLarge` for an oversized length, `Io` otherwise.
///
/// Not cancel safe: dropping the future part-way through a frame (for example
/// on a timeout) loses the bytes already read, and the connection must then
/// be closed.
pub async fn read_frame_payload<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: u32,
) -> Result<Vec<u8>, ProtocolError> {
    let mut prefix = [0; LENGTH_PREFIX_LEN];
    let mut filled = 0;
    while filled < LENGTH_PREFIX_LEN {
        // read_exact would hide whether the stream ended cleanly before the frame.
        let n = reader.read(&mut prefix[filled..]).await?;
        if n == 0 {
            return Err(if filled == 0 {
                ProtocolError::ConnectionClosed
            } else {
                ProtocolError::Truncated {
                    expected: LENGTH_PREFIX_LEN,
                    received: filled,
                }
            });
        }
        filled += n;
    }
    let len = body_len(prefix, max)?;

    let mut payload = Vec::with_capacity(len.min(INITIAL_BODY_CAPACITY));
    let limit = u64::try_from(len).unwrap_or(u64::MAX);
    let received = reader.take(limit).read_to_end(&mut payload).await?;
    if received < len {
        return Err(ProtocolError::Truncated {
            expected: LENGTH_PREFIX_LEN + len,
            received: LENGTH_PREFIX_LEN + received,
        });
    }
    Ok(payload)
}

/// Reads one frame and decodes its envelope.
///
/// Errors for which [`ProtocolError::is_body_error`] is true left the stream
/// aligned on the next frame; all others mean the connection must be closed.
/// Not cancel safe, like [`read_frame_payload`].
pub async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(
    reader: &mut R,
    max: u32,
) -> Result<Envelope<T>, ProtocolError> {
    let payload = read_frame_payload(reader, max).await?;
    decode_payload(&payload)
}

/// Encodes `envelope` as one frame, writes it and flushes.
///
/// Encoding errors (including `FrameTooLarge`) happen before anything is
/// written, so they leave the stream intact.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    writer: &mut W,
    envelope: &Envelope<T>,
    max: u32,
) -> Result<(), ProtocolError> {
    let frame = encode_frame(envelope, max)?;
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::frame::{DEFAULT_MAX_FRAME_LEN, PROTOCOL_VERSION};
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::ReadBuf;

    /// Hands out `data` one byte per read, then panics if read again: proves
    /// a reader stops where it should.
    struct Tripwire {
        data: Vec<u8>,
        pos: usize,
    }

    impl AsyncRead for Tripwire {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let pos = self.pos;
            let byte = *self
                .data
                .get(pos)
                .expect("read past the bytes the reader was allowed to see");
            buf.put_slice(&[byte]);
            self.pos += 1;
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn round_trip_over_a_duplex_pipe() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let sent = Envelope::new(3, vec!["a".to_string(), "b".repeat(500)]);
        let writer = async { write_frame(&mut a, &sent, DEFAULT_MAX_FRAME_LEN).await };
        let reader = async { read_frame::<_, Vec<String>>(&mut b, DEFAULT_MAX_FRAME_LEN).await };
        let (written, read) = tokio::join!(writer, reader);
        written.unwrap();
        assert_eq!(read.unwrap(), sent);
    }

    #[tokio::test]
    async fn oversized_length_is_refused_before_reading_the_body() {
        let max: u32 = 1000;
        let mut reader = Tripwire {
            data: (max + 1).to_be_bytes().to_vec(),
            pos: 0,
        };
        let err = read_frame_payload(&mut reader, max).await.unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::FrameTooLarge {
                len: 1001,
                max: 1000
            }
        ));

        // A 4 GiB claim: refused from the prefix, nothing sized from it.
        let mut reader = Tripwire {
            data: vec![0xff; 4],
            pos: 0,
        };
        let err = read_frame_payload(&mut reader, DEFAULT_MAX_FRAME_LEN)
            .await
            .unwrap_err();
        assert!(matches!(err, ProtocolError::FrameTooLarge { .. }));
    }

    #[tokio::test]
    async fn a_frame_at_the_maximum_is_read() {
        let max: u32 = 16;
        let mut data = max.to_be_bytes().to_vec();
        data.extend_from_slice(&[0; 16]);
        let mut reader = Tripwire { data, pos: 0 };
        assert_eq!(
            read_frame_payload(&mut reader, max).await.unwrap(),
            vec![0; 16]
        );
    }

    #[tokio::test]
    async fn end_of_stream_is_closed_or_truncated_depending_on_where_it_falls() {
        let frame = encode_frame(&Envelope::new(1, "hello".to_string()), 64).unwrap();
        let mut empty: &[u8] = &[];
        assert!(matches!(
            read_frame_payload(&mut empty, 64).await,
            Err(ProtocolError::ConnectionClosed)
        ));
        let mut in_prefix = &frame[..2];
        assert!(matches!(
            read_frame_payload(&mut in_prefix, 64).await,
            Err(ProtocolError::Truncated {
                expected: 4,
                received: 2
            })
        ));
        let mut in_body = &frame[..frame.len() - 1];
        assert!(matches!(
            read_frame_payload(&mut in_body, 64).await,
            Err(ProtocolError::Truncated { expected, received })
                if expected == frame.len() && received == frame.len() - 1
        ));
    }

    #[tokio::test]
    async fn a_body_error_leaves_the_stream_on_the_next_frame() {
        let mut stream = vec![0, 0, 0, 3, 0xff, 0xff, 0xff];
        stream.extend_from_slice(
            &encode_frame(
                &Envelope {
                    version: PROTOCOL_VERSION + 1,
                    request_id: 2,
                    body: 0u8,
                },
                64,
            )
            .unwrap(),
        );
        stream.extend_from_slice(&encode_frame(&Envelope::new(3, 7u8), 64).unwrap());
        let mut reader = &stream[..];

        let garbage = read_frame::<_, u8>(&mut reader, 64).await.unwrap_err();
        assert!(matches!(garbage, ProtocolError::Decode(_)) && garbage.is_body_error());
        let newer = read_frame::<_, u8>(&mut reader, 64).await.unwrap_err();
        assert!(matches!(newer, ProtocolError::VersionMismatch { .. }) && newer.is_body_error());
        assert_eq!(
            read_frame::<_, u8>(&mut reader, 64).await.unwrap(),
            Envelope::new(3, 7)
        );
        assert!(matches!(
            read_frame::<_, u8>(&mut reader, 64).await,
            Err(ProtocolError::ConnectionClosed)
        ));
    }

    #[tokio::test]
    async fn oversized_bodies_are_not_written() {
        let mut out = Vec::new();
        let err = write_frame(&mut out, &Envelope::new(1, "x".repeat(100)), 50)
            .await
            .unwrap_err();
        assert!(matches!(err, ProtocolError::FrameTooLarge { max: 50, .. }));
        assert!(out.is_empty());
    }
}
