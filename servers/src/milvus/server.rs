//! The Milvus door's gRPC server: the accept loop with its connection
//! limit, message-size limits and the tonic server around [`MilvusDoor`].
//!
//! Every accepted connection takes a slot of `milvus.max_connections`. A
//! connection past the limit is still accepted (a gRPC client would only
//! see "connection refused" otherwise) but every request on it fails with
//! `RESOURCE_EXHAUSTED` naming the limit, and it is closed after
//! [`REFUSED_CONNECTION_LIFETIME`]; at most [`REFUSING_CONNECTIONS`] such
//! connections are kept, more are closed at accept.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use milvus::proto::milvus::milvus_service_server::MilvusServiceServer;
use quiver_common::config::MilvusConfig;
use quiver_sql::handler::QueryHandlerRef;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::Connected;

use super::door::MilvusDoor;

/// Connections past the limit kept open at once to be told why.
pub const REFUSING_CONNECTIONS: usize = 64;
/// How long a connection past the limit is kept before it is closed.
pub const REFUSED_CONNECTION_LIFETIME: Duration = Duration::from_secs(10);
/// A connection must send its HTTP/2 connection preface (24 bytes) within
/// this time, or it is closed: a client that opens sockets and sends
/// nothing cannot hold slots.
pub const PREFACE_TIMEOUT: Duration = Duration::from_secs(10);
/// The length of the HTTP/2 client connection preface.
const PREFACE_BYTES: usize = 24;

/// The Milvus door's settings, from [`MilvusConfig`].
#[derive(Debug, Clone)]
pub struct MilvusServerOptions {
    /// Largest request or reply message (`milvus.max_message_bytes`).
    pub max_message_bytes: usize,
    /// Connections served at once (`milvus.max_connections`).
    pub max_connections: usize,
}

impl MilvusServerOptions {
    /// The options `config` describes.
    pub fn from_config(config: &MilvusConfig) -> Self {
        Self {
            max_message_bytes: config.max_message_bytes,
            max_connections: config.max_connections,
        }
    }
}

impl Default for MilvusServerOptions {
    fn default() -> Self {
        Self::from_config(&MilvusConfig::default())
    }
}

/// Serves the Milvus door on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    handler: QueryHandlerRef,
    options: MilvusServerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let service = MilvusServiceServer::new(MilvusDoor::new(handler))
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);
    let limit = options.max_connections;
    let service = InterceptedService::new(service, RefuseOverLimit { limit });
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(admitted_connections(listener, limit), shutdown)
        .await
}

/// Fails every request that arrives on a connection past the limit.
#[derive(Debug, Clone, Copy)]
struct RefuseOverLimit {
    limit: usize,
}

impl tonic::service::Interceptor for RefuseOverLimit {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        match request.extensions().get::<Admission>() {
            Some(Admission::Refused) => Err(tonic::Status::resource_exhausted(format!(
                "too many connections: the server serves at most {} \
                 (milvus.max_connections); retry later",
                self.limit
            ))),
            _ => Ok(request),
        }
    }
}

/// Whether a connection got a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    Refused,
}

/// The accepted connections, each with its admission.
fn admitted_connections(
    listener: TcpListener,
    limit: usize,
) -> impl Stream<Item = io::Result<LimitedConnection>> {
    let slots = Arc::new(Semaphore::new(limit));
    let refusals = Arc::new(Semaphore::new(REFUSING_CONNECTIONS));
    futures::stream::unfold(listener, move |listener| {
        let slots = slots.clone();
        let refusals = refusals.clone();
        async move {
            loop {
                let socket = match listener.accept().await {
                    Ok((socket, _)) => socket,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a Milvus connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // No Nagle: a reply written in several pieces would otherwise
                // wait for the client's delayed ACK (~40 ms stalls).
                let _ = socket.set_nodelay(true);
                let connection = match slots.clone().try_acquire_owned() {
                    Ok(slot) => LimitedConnection::admitted(socket, slot),
                    Err(_) => match refusals.clone().try_acquire_owned() {
                        Ok(refusal) => {
                            tracing::warn!("Milvus connection over the limit: requests refused");
                            LimitedConnection::refused(socket, refusal)
                        }
                        Err(_) => {
                            tracing::warn!("too many Milvus connections: closed at accept");
                            continue;
                        }
                    },
                };
                return Some((Ok(connection), listener));
            }
        }
    })
}

/// A TCP connection holding its slot (or its refusal) while it is open.
pub struct LimitedConnection {
    socket: TcpStream,
    admission: Admission,
    _slot: OwnedSemaphorePermit,
    /// For a refused connection: when it is closed.
    close_at: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Until the preface has arrived: when the connection is given up.
    preface_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Bytes read so far, up to the preface's length.
    received: usize,
}

impl LimitedConnection {
    fn admitted(socket: TcpStream, slot: OwnedSemaphorePermit) -> Self {
        Self {
            socket,
            admission: Admission::Admitted,
            _slot: slot,
            close_at: None,
            preface_deadline: Some(Box::pin(tokio::time::sleep(PREFACE_TIMEOUT))),
            received: 0,
        }
    }

    fn refused(socket: TcpStream, refusal: OwnedSemaphorePermit) -> Self {
        Self {
            socket,
            admission: Admission::Refused,
            _slot: refusal,
            close_at: Some(Box::pin(tokio::time::sleep(REFUSED_CONNECTION_LIFETIME))),
            preface_deadline: Some(Box::pin(tokio::time::sleep(PREFACE_TIMEOUT))),
            received: 0,
        }
    }
}

impl Connected for LimitedConnection {
    type ConnectInfo = Admission;

    fn connect_info(&self) -> Admission {
        self.admission
    }
}

impl AsyncRead for LimitedConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let expired = |deadline: &mut Option<Pin<Box<tokio::time::Sleep>>>,
                       cx: &mut Context<'_>| {
            deadline
                .as_mut()
                .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready())
        };
        if expired(&mut this.close_at, cx) || expired(&mut this.preface_deadline, cx) {
            // End of stream: the server closes the connection.
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.socket).poll_read(cx, buf);
        if this.preface_deadline.is_some() {
            this.received += buf.filled().len() - before;
            if this.received >= PREFACE_BYTES {
                this.preface_deadline = None;
            }
        }
        read
    }
}

impl AsyncWrite for LimitedConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().socket).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_shutdown(cx)
    }
}
