//! Request/response over one stream: ids on the client side, error-tolerant reads on the server side.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::ProtocolError;
use crate::frame::{DEFAULT_MAX_FRAME_LEN, Envelope, decode_payload, peek_header};
use crate::io::{read_frame, read_frame_payload, write_frame};

/// What the server side got from [`Connection::recv_request`].
#[derive(Debug)]
pub enum Incoming<T> {
    /// A well-formed request of our version.
    Request(Envelope<T>),
    /// A correctly framed request whose body could not be used.
    ///
    /// The stream is still aligned: answer with an error (addressed to
    /// `request_id` when known, else to id 0, which [`Connection::call`]
    /// never uses) and keep reading.
    Rejected {
        /// The request id, when the envelope got far enough to carry one.
        request_id: Option<u64>,
        /// Why the request was refused; always a body error ([`ProtocolError::is_body_error`]).
        error: ProtocolError,
    },
}

/// A framed connection that carries one request/response exchange at a time.
///
/// The client side uses [`call`](Self::call); the server side
/// [`recv_request`](Self::recv_request) and [`respond`](Self::respond). After
/// any error from `call`, or from `recv_request`/`respond`, drop the
/// connection; `Rejected` requests are not errors.
#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    max_frame_len: u32,
    /// Id of the last request sent by `call`; ids start at 1 so that 0 never names a real request.
    last_request_id: u64,
}

impl<S> Connection<S> {
    /// Wraps `stream` with the [`DEFAULT_MAX_FRAME_LEN`] limit.
    pub fn new(stream: S) -> Self {
        Self::with_max_frame_len(stream, DEFAULT_MAX_FRAME_LEN)
    }

    /// Wraps `stream`, refusing to send or receive frame bodies over `max_frame_len` bytes.
    pub fn with_max_frame_len(stream: S, max_frame_len: u32) -> Self {
        Self {
            stream,
            max_frame_len,
            last_request_id: 0,
        }
    }

    /// The frame body limit in force.
    pub fn max_frame_len(&self) -> u32 {
        self.max_frame_len
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Unwraps the underlying stream.
    pub fn into_inner(self) -> S {
        self.stream
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Sends `body` as a request under a fresh id and waits for the matching response.
    ///
    /// Ids count up from 1 on each connection.
    /// A response under another id is [`ProtocolError::RequestIdMismatch`].
    /// Not cancel safe: a call dropped part-way leaves the stream in an
    /// unknown state.
    pub async fn call<Req, Resp>(&mut self, body: &Req) -> Result<Resp, ProtocolError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        // Wrapping skips 0 so that an unattributed error reply (id 0) never matches.
        let request_id = self.last_request_id.wrapping_add(1).max(1);
        self.last_request_id = request_id;
        write_frame(
            &mut self.stream,
            &Envelope::new(request_id, body),
            self.max_frame_len,
        )
        .await?;
        let response: Envelope<Resp> = read_frame(&mut self.stream, self.max_frame_len).await?;
        if response.request_id != request_id {
            return Err(ProtocolError::RequestIdMismatch {
                expected: request_id,
                got: response.request_id,
            });
        }
        Ok(response.body)
    }

    /// Reads the next request.
    ///
    /// `Err` means the connection is finished and must be closed: the peer
    /// left ([`ProtocolError::ConnectionClosed`]), the framing broke (no way to
    /// find the next frame), or I/O failed. A frame that is intact but whose
    /// body is unusable (garbage, wrong type, other version) comes back as
    /// [`Incoming::Rejected`] instead, and the connection can go on.
    pub async fn recv_request<Req: DeserializeOwned>(
        &mut self,
    ) -> Result<Incoming<Req>, ProtocolError> {
        let payload = read_frame_payload(&mut self.stream, self.max_frame_len).await?;
        Ok(match decode_payload(&payload) {
            Ok(envelope) => Incoming::Request(envelope),
            Err(error) => Incoming::Rejected {
                request_id: peek_header(&payload)
                    .ok()
                    .and_then(|header| header.request_id),
                error,
            },
        })
    }

    /// Sends `body` as the response to `request_id`.
    pub async fn respond<Resp: Serialize>(
        &mut self,
        request_id: u64,
        body: &Resp,
    ) -> Result<(), ProtocolError> {
        write_frame(
            &mut self.stream,
            &Envelope::new(request_id, body),
            self.max_frame_len,
        )
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::frame::PROTOCOL_VERSION;
    use crate::io::read_frame;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Req {
        Add(u32, u32),
    }

    #[tokio::test]
    async fn call_assigns_increasing_ids_and_pairs_responses() {
        let (client, server) = tokio::io::duplex(1024);
        let server = tokio::spawn(async move {
            let mut conn = Connection::new(server);
            let mut seen = Vec::new();
            while let Ok(incoming) = conn.recv_request::<Req>().await {
                let Incoming::Request(envelope) = incoming else {
                    panic!("unexpected rejection");
                };
                seen.push(envelope.request_id);
                let Req::Add(a, b) = envelope.body;
                conn.respond(envelope.request_id, &(a + b)).await.unwrap();
            }
            seen
        });
        let mut conn = Connection::new(client);
        for i in 0..3 {
            let sum: u32 = conn.call(&Req::Add(i, 10)).await.unwrap();
            assert_eq!(sum, i + 10);
        }
        drop(conn);
        assert_eq!(server.await.unwrap(), vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn a_response_with_the_wrong_id_is_a_typed_error() {
        let (client, mut server) = tokio::io::duplex(1024);
        let server = tokio::spawn(async move {
            let request: Envelope<Req> = read_frame(&mut server, 1024).await.unwrap();
            let wrong = Envelope::new(request.request_id + 5, 0u32);
            write_frame(&mut server, &wrong, 1024).await.unwrap();
            server
        });
        let mut conn = Connection::with_max_frame_len(client, 1024);
        let err = conn.call::<_, u32>(&Req::Add(1, 2)).await.unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::RequestIdMismatch {
                expected: 1,
                got: 6
            }
        ));
        assert!(err.is_body_error());
        drop(server.await.unwrap());
    }

    #[tokio::test]
    async fn unusable_bodies_are_rejected_with_their_request_id() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut conn = Connection::new(server);

        write_frame(&mut client, &Envelope::new(8, "not a Req"), 1024)
            .await
            .unwrap();
        let newer = Envelope {
            version: PROTOCOL_VERSION + 1,
            request_id: 9,
            body: Req::Add(1, 1),
        };
        write_frame(&mut client, &newer, 1024).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut client, &[0, 0, 0, 1, 0xff])
            .await
            .unwrap();
        write_frame(&mut client, &Envelope::new(10, Req::Add(2, 2)), 1024)
            .await
            .unwrap();
        drop(client);

        let wrong_type = conn.recv_request::<Req>().await.unwrap();
        assert!(matches!(
            wrong_type,
            Incoming::Rejected {
                request_id: Some(8),
                error: ProtocolError::Decode(_)
            }
        ));
        let other_version = conn.recv_request::<Req>().await.unwrap();
        assert!(matches!(
            other_version,
            Incoming::Rejected {
                request_id: Some(9),
                error: ProtocolError::VersionMismatch { .. }
            }
        ));
        let garbage = conn.recv_request::<Req>().await.unwrap();
        assert!(matches!(
            garbage,
            Incoming::Rejected {
                request_id: None,
                error: ProtocolError::Decode(_)
            }
        ));
        let good = conn.recv_request::<Req>().await.unwrap();
        assert!(matches!(good, Incoming::Request(e) if e == Envelope::new(10, Req::Add(2, 2))));
        assert!(matches!(
            conn.recv_request::<Req>().await,
            Err(ProtocolError::ConnectionClosed)
        ));
    }
}
