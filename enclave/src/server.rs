//! The enclave's serving loop: one task per proxy connection, each a sequence of
//! request/response exchanges. A connection whose framing breaks is closed; a frame with an
//! unusable body gets an error answer and the connection goes on.

use std::sync::Arc;

use strongroom_attestation::Nsm;
use strongroom_protocol::messages::{ErrorCode, Request, Response};
use strongroom_protocol::{Connection, Incoming, Listener, ProtocolError};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::Enclave;

/// Accepts connections forever, serving each on its own task.
pub async fn serve<L, N>(mut listener: L, enclave: Arc<Enclave<N>>) -> std::io::Result<()>
where
    L: Listener,
    N: Nsm + 'static,
{
    loop {
        let stream = listener.accept().await?;
        let enclave = Arc::clone(&enclave);
        tokio::spawn(async move {
            match serve_connection(stream, enclave).await {
                Ok(()) | Err(ProtocolError::ConnectionClosed) => {}
                Err(e) => tracing::warn!(error = %e, "closing connection"),
            }
        });
    }
}

/// Whether a request is bounded to a few signatures' work, so it runs on the connection's
/// own task.
fn is_short(request: &Request) -> bool {
    matches!(
        request,
        Request::Status
            | Request::Call(_)
            | Request::DescribeKey { .. }
            | Request::AuditBacklog { .. }
            | Request::Appended { .. }
            | Request::Redecide
            | Request::Abandon
    )
}

/// Serves one connection until the peer leaves or the framing breaks.
pub async fn serve_connection<S, N>(
    stream: S,
    enclave: Arc<Enclave<N>>,
) -> Result<(), ProtocolError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    N: Nsm + 'static,
{
    let mut conn = Connection::new(stream);
    loop {
        match conn.recv_request::<Request>().await? {
            Incoming::Request(envelope) => {
                let response = if is_short(&envelope.body) {
                    // A call costs a few signatures (well under a millisecond): handing it
                    // to the blocking pool and back would cost two thread wake-ups, as much
                    // as the call's own crypto under load.
                    enclave.handle(envelope.body)
                } else {
                    // RSA key generation, NSM calls and snapshot work take long: keep them
                    // off the async workers.
                    let enclave = Arc::clone(&enclave);
                    tokio::task::spawn_blocking(move || enclave.handle(envelope.body))
                        .await
                        .unwrap_or_else(|_| {
                            Response::Error(strongroom_protocol::messages::EnclaveError::new(
                                ErrorCode::Internal,
                                "request handler failed",
                            ))
                        })
                };
                conn.respond(envelope.request_id, &response).await?;
            }
            Incoming::Rejected { request_id, error } => {
                tracing::warn!(error = %error, "rejected a request");
                let response = Response::Error(strongroom_protocol::messages::EnclaveError::new(
                    ErrorCode::BadRequest,
                    format!("undecodable request: {error}"),
                ));
                conn.respond(request_id.unwrap_or(0), &response).await?;
            }
        }
    }
}
