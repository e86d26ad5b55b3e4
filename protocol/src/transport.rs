//! Byte-stream transports: Unix sockets (mock mode, tests) and AF_VSOCK (production).
//!
//! Everything above this module sees only `AsyncRead + AsyncWrite` streams,
//! so the framing and [`Connection`](crate::Connection) code is the same on
//! both.

use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};

use crate::address::Address;

/// A source of incoming connections.
pub trait Listener: Send {
    /// The connection type produced.
    type Conn: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Waits for the next incoming connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<Self::Conn>> + Send;
}

/// A listening Unix domain socket whose file is private to its owner.
#[derive(Debug)]
pub struct UnixSocketListener {
    inner: UnixListener,
    path: PathBuf,
}

impl UnixSocketListener {
    /// Binds at `path`, replacing a stale socket file left there, and sets its mode to 0600.
    ///
    /// Only a socket is ever removed; any other file at `path` is an
    /// `AlreadyExists` error. The mode is set just after `bind`, so for that
    /// instant the socket has the umask's permissions: keep it in a directory
    /// only the service's user can enter. Must be called within a tokio runtime.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        remove_stale_socket(path)?;
        let inner = UnixListener::bind(path)?;
        // 0600: only the owner may connect, since whoever connects can ask for signatures.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(Self {
            inner,
            path: path.to_owned(),
        })
    }

    /// The path the socket is bound at.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Deletes `path` if it is a socket, since a socket file outlives the process that bound it.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl Listener for UnixSocketListener {
    type Conn = UnixStream;

    async fn accept(&mut self) -> io::Result<UnixStream> {
        let (stream, _peer) = self.inner.accept().await?;
        Ok(stream)
    }
}

/// A listening AF_VSOCK socket.
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub struct VsockSocketListener {
    inner: tokio_vsock::VsockListener,
}

#[cfg(target_os = "linux")]
impl VsockSocketListener {
    /// Binds `cid:port`; the enclave binds [`VMADDR_CID_ANY`](crate::VMADDR_CID_ANY). Must be called within a tokio runtime.
    pub fn bind(cid: u32, port: u32) -> io::Result<Self> {
        let inner = tokio_vsock::VsockListener::bind(tokio_vsock::VsockAddr::new(cid, port))?;
        Ok(Self { inner })
    }
}

#[cfg(target_os = "linux")]
impl Listener for VsockSocketListener {
    type Conn = tokio_vsock::VsockStream;

    async fn accept(&mut self) -> io::Result<tokio_vsock::VsockStream> {
        let (stream, _peer) = self.inner.accept().await?;
        Ok(stream)
    }
}

/// A listener for any [`Address`], made by [`bind`].
#[derive(Debug)]
pub enum AnyListener {
    /// A Unix socket listener.
    Unix(UnixSocketListener),
    /// A vsock listener.
    #[cfg(target_os = "linux")]
    Vsock(VsockSocketListener),
}

impl Listener for AnyListener {
    type Conn = AnyStream;

    async fn accept(&mut self) -> io::Result<AnyStream> {
        match self {
            Self::Unix(listener) => listener.accept().await.map(AnyStream::Unix),
            #[cfg(target_os = "linux")]
            Self::Vsock(listener) => listener.accept().await.map(AnyStream::Vsock),
        }
    }
}

/// A connected stream of either transport.
#[derive(Debug)]
pub enum AnyStream {
    /// A Unix socket stream.
    Unix(UnixStream),
    /// A vsock stream.
    #[cfg(target_os = "linux")]
    Vsock(tokio_vsock::VsockStream),
}

/// The error for a vsock address on a platform without AF_VSOCK.
#[cfg(not(target_os = "linux"))]
fn vsock_unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "vsock is only available on Linux",
    )
}

/// Listens at `address`. Must be called within a tokio runtime.
pub fn bind(address: &Address) -> io::Result<AnyListener> {
    match address {
        Address::Unix(path) => UnixSocketListener::bind(path).map(AnyListener::Unix),
        #[cfg(target_os = "linux")]
        Address::Vsock { cid, port } => {
            VsockSocketListener::bind(*cid, *port).map(AnyListener::Vsock)
        }
        #[cfg(not(target_os = "linux"))]
        Address::Vsock { .. } => Err(vsock_unsupported()),
    }
}

/// Connects to `address`.
pub async fn connect(address: &Address) -> io::Result<AnyStream> {
    match address {
        Address::Unix(path) => UnixStream::connect(path).await.map(AnyStream::Unix),
        #[cfg(target_os = "linux")]
        Address::Vsock { cid, port } => {
            tokio_vsock::VsockStream::connect(tokio_vsock::VsockAddr::new(*cid, *port))
                .await
                .map(AnyStream::Vsock)
        }
        #[cfg(not(target_os = "linux"))]
        Address::Vsock { .. } => Err(vsock_unsupported()),
    }
}

/// Forwards a poll method to whichever stream is inside (both are `Unpin`).
macro_rules! delegate {
    ($self:ident, $stream:ident => $call:expr) => {
        match $self.get_mut() {
            AnyStream::Unix($stream) => $call,
            #[cfg(target_os = "linux")]
            AnyStream::Vsock($stream) => $call,
        }
    };
}

impl AsyncRead for AnyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for AnyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}
