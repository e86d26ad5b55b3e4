//! A real server over a Unix socket, fed misbehaving clients, keeps serving well-behaved ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strongroom_protocol::{
    Address, AnyStream, Connection, Envelope, Incoming, Listener, PROTOCOL_VERSION, ProtocolError,
    UnixSocketListener, bind, connect, encode_frame, read_frame, read_frame_payload,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const MAX: u32 = 1024;
const STEP: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Request {
    Echo(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Response {
    Echo(String),
    Error(String),
}

/// How the server finished with one connection.
#[derive(Debug)]
enum Outcome {
    /// Peer closed cleanly after this many answered frames.
    Closed { answered: usize },
    /// Server closed the connection because of this framing error.
    Dropped {
        answered: usize,
        error: ProtocolError,
    },
}

/// A private directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("strongroom-protocol-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        Self(dir)
    }

    fn join(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Serves one connection the way the enclave will: answer everything that is
/// framed correctly, close on anything that breaks the framing.
async fn serve_connection<S>(stream: S) -> Outcome
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut conn = Connection::with_max_frame_len(stream, MAX);
    let mut answered = 0;
    loop {
        let (request_id, response) = match conn.recv_request::<Request>().await {
            Ok(Incoming::Request(envelope)) => {
                let Request::Echo(text) = envelope.body;
                (envelope.request_id, Response::Echo(text))
            }
            Ok(Incoming::Rejected { request_id, error }) => {
                (request_id.unwrap_or(0), Response::Error(error.to_string()))
            }
            Err(ProtocolError::ConnectionClosed) => return Outcome::Closed { answered },
            Err(error) => return Outcome::Dropped { answered, error },
        };
        if let Err(error) = conn.respond(request_id, &response).await {
            return Outcome::Dropped { answered, error };
        }
        answered += 1;
    }
}

/// Accepts forever, one task per connection, reporting each connection's outcome.
async fn run_server<L: Listener>(mut listener: L, outcomes: mpsc::UnboundedSender<Outcome>) {
    loop {
        let Ok(stream) = listener.accept().await else {
            continue;
        };
        let outcomes = outcomes.clone();
        tokio::spawn(async move {
            let _ = outcomes.send(serve_connection(stream).await);
        });
    }
}

async fn next_outcome(outcomes: &mut mpsc::UnboundedReceiver<Outcome>) -> Outcome {
    tokio::time::timeout(STEP, outcomes.recv())
        .await
        .expect("server reported nothing in time")
        .expect("server gone")
}

async fn unix_client(path: &Path) -> AnyStream {
    connect(&Address::Unix(path.to_owned())).await.unwrap()
}

/// Reads until the server closes; a close with our unread bytes pending may show as a reset.
async fn assert_closed_by_server(stream: &mut AnyStream) {
    let mut rest = Vec::new();
    match tokio::time::timeout(STEP, stream.read_to_end(&mut rest))
        .await
        .expect("server did not close the connection")
    {
        Ok(_) => assert!(rest.is_empty(), "server sent {rest:02x?} before closing"),
        Err(e) => assert!(
            matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
            "{e}"
        ),
    }
}

async fn good_client_round_trip(path: &Path, text: &str) {
    let mut conn = Connection::with_max_frame_len(unix_client(path).await, MAX);
    for i in 0..3 {
        let message = format!("{text} {i}");
        let response: Response =
            tokio::time::timeout(STEP, conn.call(&Request::Echo(message.clone())))
                .await
                .unwrap()
                .unwrap();
        assert_eq!(response, Response::Echo(message));
    }
}

#[tokio::test]
async fn server_survives_misbehaving_clients() {
    let dir = TempDir::new("survives");
    let path = dir.join("enclave.sock");
    let address: Address = format!("unix:{}", path.display()).parse().unwrap();
    let listener = bind(&address).unwrap();
    let (outcomes_tx, mut outcomes) = mpsc::unbounded_channel();
    let server = tokio::spawn(run_server(listener, outcomes_tx));

    good_client_round_trip(&path, "before").await;
    assert!(matches!(
        next_outcome(&mut outcomes).await,
        Outcome::Closed { answered: 3 }
    ));

    // A client that stalls mid-frame does not hold up anyone else.
    let mut staller = unix_client(&path).await;
    staller.write_all(&[0, 0, 0, 100, 0x83]).await.unwrap();

    // Oversized: one byte over the maximum. Closed without reading the body.
    let mut oversized = unix_client(&path).await;
    oversized.write_all(&(MAX + 1).to_be_bytes()).await.unwrap();
    oversized.write_all(&[0; 64]).await.unwrap();
    let outcome = next_outcome(&mut outcomes).await;
    assert!(
        matches!(
            outcome,
            Outcome::Dropped {
                answered: 0,
                error: ProtocolError::FrameTooLarge {
                    len: 1025,
                    max: MAX
                }
            }
        ),
        "{outcome:?}"
    );
    assert_closed_by_server(&mut oversized).await;

    // Truncated: the length promises more than arrives before the client stops writing.
    let mut truncated = unix_client(&path).await;
    let frame = encode_frame(&Envelope::new(1, Request::Echo("cut".into())), MAX).unwrap();
    truncated
        .write_all(&frame[..frame.len() - 2])
        .await
        .unwrap();
    truncated.shutdown().await.unwrap();
    let outcome = next_outcome(&mut outcomes).await;
    assert!(
        matches!(
            outcome,
            Outcome::Dropped {
                answered: 0,
                error: ProtocolError::Truncated { expected, received }
            } if expected == frame.len() && received == frame.len() - 2
        ),
        "{outcome:?}"
    );
    assert_closed_by_server(&mut truncated).await;

    // Garbage CBOR and a newer version, correctly framed: answered, and the connection goes on.
    let mut sloppy = unix_client(&path).await;
    sloppy
        .write_all(&[0, 0, 0, 3, 0xff, 0xfe, 0xfd])
        .await
        .unwrap();
    let answer: Envelope<Response> = read_frame(&mut sloppy, MAX).await.unwrap();
    assert_eq!(answer.request_id, 0);
    assert!(matches!(answer.body, Response::Error(ref m) if m.contains("decode")));

    let newer = Envelope {
        version: PROTOCOL_VERSION + 1,
        request_id: 77,
        body: "something new",
    };
    sloppy
        .write_all(&encode_frame(&newer, MAX).unwrap())
        .await
        .unwrap();
    let answer: Envelope<Response> = read_frame(&mut sloppy, MAX).await.unwrap();
    assert_eq!(answer.request_id, 77);
    assert!(matches!(answer.body, Response::Error(ref m) if m.contains("version")));

    let mut sloppy = Connection::with_max_frame_len(sloppy, MAX);
    let response: Response = sloppy
        .call(&Request::Echo("still here".into()))
        .await
        .unwrap();
    assert_eq!(response, Response::Echo("still here".into()));
    drop(sloppy);
    assert!(matches!(
        next_outcome(&mut outcomes).await,
        Outcome::Closed { answered: 3 }
    ));

    // A fresh well-behaved client after all that, while the staller still hangs on.
    good_client_round_trip(&path, "after").await;
    assert!(matches!(
        next_outcome(&mut outcomes).await,
        Outcome::Closed { answered: 3 }
    ));

    // The staller finally gives up: its frame was cut short.
    drop(staller);
    assert!(matches!(
        next_outcome(&mut outcomes).await,
        Outcome::Dropped {
            error: ProtocolError::Truncated { .. },
            ..
        }
    ));

    assert!(!server.is_finished());
    server.abort();
}

#[tokio::test]
async fn client_sees_a_wrong_request_id_over_a_socket() {
    let dir = TempDir::new("wrong-id");
    let path = dir.join("s.sock");
    let mut listener = UnixSocketListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let mut stream = listener.accept().await.unwrap();
        let payload = read_frame_payload(&mut stream, MAX).await.unwrap();
        assert!(!payload.is_empty());
        let reply = encode_frame(&Envelope::new(999, Response::Echo("late".into())), MAX).unwrap();
        stream.write_all(&reply).await.unwrap();
        stream
    });
    let mut conn = Connection::new(unix_client(&path).await);
    let err = conn
        .call::<_, Response>(&Request::Echo("x".into()))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ProtocolError::RequestIdMismatch {
            expected: 1,
            got: 999
        }
    ));
    drop(server.await.unwrap());
}

#[tokio::test]
async fn socket_file_is_private_and_stale_files_are_replaced() {
    let dir = TempDir::new("socket-file");
    let path = dir.join("s.sock");

    let first = UnixSocketListener::bind(&path).unwrap();
    assert_eq!(first.path(), path);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    drop(first);
    // The socket file outlives its listener; binding again replaces it.
    assert!(path.exists());
    let mut second = UnixSocketListener::bind(&path).unwrap();
    let client = tokio::spawn({
        let path = path.clone();
        async move { tokio::net::UnixStream::connect(path).await }
    });
    second.accept().await.unwrap();
    client.await.unwrap().unwrap();

    // Anything that is not a socket is left alone.
    let regular = dir.join("not-a-socket");
    std::fs::write(&regular, b"keep me").unwrap();
    let err = UnixSocketListener::bind(&regular).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&regular).unwrap(), b"keep me");
}

#[tokio::test]
async fn connecting_to_a_missing_socket_is_an_io_error() {
    let dir = TempDir::new("missing");
    let err = connect(&Address::Unix(dir.join("nobody-here.sock")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}
