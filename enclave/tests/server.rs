//! The enclave's serving loop over a real Unix socket: an oversized frame, a truncated
//! frame and garbage CBOR get errors or a closed connection, and the enclave keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
use strongroom_enclave::{Enclave, server};
use strongroom_protocol::messages::{ErrorCode, Phase, Request, Response};
use strongroom_protocol::{Connection, UnixSocketListener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

async fn start() -> (
    std::path::PathBuf,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let dir = std::env::temp_dir().join(format!(
        "strongroom-enclave-srv-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("enclave.sock");
    let listener = UnixSocketListener::bind(&path).unwrap();
    let enclave = Arc::new(Enclave::new(
        MockNsm::ephemeral(MockNsmConfig::default()).unwrap(),
    ));
    (path, tokio::spawn(server::serve(listener, enclave)))
}

async fn status(path: &std::path::Path) -> Response {
    let mut conn = Connection::new(UnixStream::connect(path).await.unwrap());
    conn.call::<Request, Response>(&Request::Status)
        .await
        .unwrap()
}

/// Reads until the peer closes; true if it closed (rather than hanging).
async fn closes(mut s: UnixStream) -> bool {
    let mut buf = [0u8; 64];
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn hostile_frames_do_not_stop_the_enclave() {
    let (path, server) = start().await;
    assert_eq!(
        status(&path).await,
        Response::Status(Phase::AwaitingRootKey)
    );

    // A length prefix of 4 GiB: refused before any allocation, connection closed.
    let mut s = UnixStream::connect(&path).await.unwrap();
    s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert!(closes(s).await, "oversized frame must close the connection");

    // A frame that promises 100 bytes and brings 10, then hangs up.
    let mut s = UnixStream::connect(&path).await.unwrap();
    s.write_all(&100u32.to_be_bytes()).await.unwrap();
    s.write_all(&[0u8; 10]).await.unwrap();
    s.shutdown().await.unwrap();
    assert!(closes(s).await);

    // A well-framed body of garbage: answered with an error; the connection goes on.
    let mut s = UnixStream::connect(&path).await.unwrap();
    let garbage = [0xffu8, 0x00, 0x13, 0x37, 0xbe, 0xef];
    s.write_all(&(garbage.len() as u32).to_be_bytes())
        .await
        .unwrap();
    s.write_all(&garbage).await.unwrap();
    let err: strongroom_protocol::Envelope<Response> =
        strongroom_protocol::read_frame(&mut s, 1 << 20)
            .await
            .unwrap();
    let mut conn = Connection::new(s);
    match err.body {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::BadRequest),
        other => panic!("expected an error answer, got {other:?}"),
    }
    let again: Response = conn.call(&Request::Status).await.unwrap();
    assert_eq!(again, Response::Status(Phase::AwaitingRootKey));

    // And a fresh, well-behaved client is served.
    assert_eq!(
        status(&path).await,
        Response::Status(Phase::AwaitingRootKey)
    );
    assert!(!server.is_finished());
    server.abort();
}
