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
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::Connected;

use super::MilvusDoor;
use crate::handler::QueryHandlerRef;

/// Connections past the limit kept open at once to be told why.
pub const REFUSING_CONNECTIONS: usize = 64;
/// How long a connection past the limit is kept before it is closed.
pub const REFUSED_CONNECTION_LIFETIME: Duration = Duration::from_secs(10);

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
    let service =
        InterceptedService::new(service, move |request: tonic::Request<()>| {
            match request.extensions().get::<Admission>() {
                Some(Admission::Refused) => Err(tonic::Status::resource_exhausted(format!(
                    "too many connections: the server serves at most {limit} \
                 (milvus.max_connections); retry later"
                ))),
                _ => Ok(request),
            }
        });
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(admitted_connections(listener, limit), shutdown)
        .await
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
}

impl LimitedConnection {
    fn admitted(socket: TcpStream, slot: OwnedSemaphorePermit) -> Self {
        Self {
            socket,
            admission: Admission::Admitted,
            _slot: slot,
            close_at: None,
        }
    }

    fn refused(socket: TcpStream, refusal: OwnedSemaphorePermit) -> Self {
        Self {
            socket,
            admission: Admission::Refused,
            _slot: refusal,
            close_at: Some(Box::pin(tokio::time::sleep(REFUSED_CONNECTION_LIFETIME))),
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
        if let Some(close_at) = this.close_at.as_mut() {
            if close_at.as_mut().poll(cx).is_ready() {
                // End of stream: the server closes the connection.
                return Poll::Ready(Ok(()));
            }
        }
        Pin::new(&mut this.socket).poll_read(cx, buf)
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
