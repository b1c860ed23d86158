//! One Postgres connection, from its first byte to its close.
//!
//! Quiver owns this loop instead of pgwire's `process_socket`: frames are
//! read and checked by [`FrameReader`] (limits at the header, layout before
//! decoding), and only checked frames are decoded by pgwire and dispatched
//! to the handlers with pgwire's `process_message`. Writes go through a
//! pgwire `Framed` over the socket's write half, which also carries the
//! connection's protocol state. The loop enforces the startup timeout, the
//! connection limit (`53300` after the startup packet, as PostgreSQL does),
//! `idle_session_timeout` and `idle_in_transaction_session_timeout`
//! (`57P05` / `25P03`, FATAL) and closes a connection that breaks the
//! protocol with one `08P01` and one log line.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::SinkExt;
use pgwire::api::{ClientInfo, DefaultClient, ErrorHandler, PgWireConnectionState};
use pgwire::error::ErrorInfo;
use pgwire::messages::response::{GssEncResponse, SslResponse, TransactionStatus};
use pgwire::messages::{
    DecodeContext, PgWireBackendMessage, PgWireFrontendMessage, ProtocolVersion,
};
use pgwire::tokio::server::{process_error, process_message, PgWireMessageServerCodec};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::codec::Framed;

use super::errors::PROTOCOL_VIOLATION;
use super::frame::{FrameError, FrameReader, ReceiveBudget, StartupPacket};
use super::handlers::{Handlers, LogErrors};
use super::session::{IdleKind, PgStatement};

/// The limits every connection of a server shares.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Largest message body (`pg.max_message_bytes`).
    pub max_message_bytes: usize,
    /// Large messages buffered at once by all connections (`pg.receive_budget_bytes`).
    pub budget: ReceiveBudget,
    /// Time to finish the startup handshake (`pg.startup_timeout_ms`).
    pub startup_timeout: Duration,
    /// Time a started message may go without new bytes (`pg.stalled_message_timeout_ms`).
    pub stall_timeout: Option<Duration>,
}

/// Why a connection ended, for its one log line.
#[derive(Debug)]
pub enum ConnectionEnd {
    /// The client terminated or closed the socket.
    Closed,
    /// The client broke the protocol; it was told so with `08P01`.
    ProtocolViolation(String),
    /// A timeout closed it.
    TimedOut(&'static str),
    /// Over the connection limit; told so with `53300`.
    TooManyConnections,
    /// Its session could not open (a database that does not exist:
    /// `3D000`); told so with a `FATAL` error of this code.
    Refused(String),
    /// The socket failed.
    Io(io::Error),
}

/// Serves one connection whose socket halves are `reader` and `writer`.
/// `admitted` is false for a connection over the connection limit: it is
/// answered `53300` once its startup packet has arrived.
pub(crate) async fn serve_connection<R, W>(
    reader: R,
    writer: W,
    peer: SocketAddr,
    handlers: Handlers,
    limits: &ConnectionLimits,
    admitted: bool,
) -> ConnectionEnd
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + Sync + 'static,
{
    let mut frames = FrameReader::new(
        reader,
        limits.max_message_bytes,
        limits.budget.clone(),
        limits.stall_timeout,
    );
    let mut socket = Framed::new(
        WriteHalf(writer),
        PgWireMessageServerCodec::new(DefaultClient::new(peer, false)),
    );
    socket.set_state(PgWireConnectionState::AwaitingStartup);
    let started = tokio::time::timeout(
        limits.startup_timeout,
        startup(&mut frames, &mut socket, &handlers, admitted),
    )
    .await;
    match started {
        Ok(Ok(Startup::Ready)) => {}
        Ok(Ok(Startup::Done(end))) => return end,
        Ok(Err(end)) => return fail(&mut socket, end).await,
        Err(_) => return ConnectionEnd::TimedOut("startup"),
    }
    loop {
        let idle = handlers.connection.idle_timeout(in_transaction(&socket));
        let frame = match frames.read_message(idle.map(|(after, _)| after)).await {
            Ok(frame) => frame,
            Err(FrameError::Idle) => {
                let kind = idle.map_or(IdleKind::Session, |(_, kind)| kind);
                return idle_timeout(&mut socket, kind).await;
            }
            Err(e) => return fail(&mut socket, e).await,
        };
        if frame.tag == b'X' {
            return ConnectionEnd::Closed;
        }
        let message = match decode(frame.bytes, false, socket.protocol_version()) {
            Ok(message) => message,
            Err(e) => return fail(&mut socket, e).await,
        };
        if let Err(end) = dispatch(&mut socket, &handlers, message).await {
            return end;
        }
        drop(frame.budget);
    }
}

/// How the startup phase ended.
enum Startup {
    /// The client is authenticated and ready for queries.
    Ready,
    /// The connection is done (a cancel request, a refused client).
    Done(ConnectionEnd),
}

/// SSL/GSS negotiation (refused: no TLS yet), the startup packet or a
/// cancel request, and authentication.
async fn startup<R, W>(
    frames: &mut FrameReader<R>,
    socket: &mut Socket<W>,
    handlers: &Handlers,
    admitted: bool,
) -> Result<Startup, FrameError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + Sync + 'static,
{
    let mut negotiations = 0;
    let packet = loop {
        match frames.read_startup().await? {
            StartupPacket::SslRequest | StartupPacket::GssEncRequest if negotiations >= 2 => {
                return Err(super::frame::Malformed::RepeatedNegotiation.into())
            }
            StartupPacket::SslRequest => {
                negotiations += 1;
                send(
                    socket,
                    PgWireBackendMessage::SslResponse(SslResponse::Refuse),
                )
                .await?;
            }
            StartupPacket::GssEncRequest => {
                negotiations += 1;
                send(
                    socket,
                    PgWireBackendMessage::GssEncResponse(GssEncResponse::Refuse),
                )
                .await?;
            }
            StartupPacket::Cancel(bytes) => {
                let version = if bytes.len() > 16 {
                    ProtocolVersion::PROTOCOL3_2
                } else {
                    ProtocolVersion::PROTOCOL3_0
                };
                let message = decode(bytes, true, version)?;
                return match dispatch(socket, handlers, message).await {
                    Ok(()) | Err(_) => Ok(Startup::Done(ConnectionEnd::Closed)),
                };
            }
            StartupPacket::Startup(bytes) => break bytes,
        }
    };
    if !admitted {
        let fatal = ErrorInfo::new(
            "FATAL".to_owned(),
            "53300".to_owned(),
            "sorry, too many clients already".to_owned(),
        );
        let _ = socket
            .send(PgWireBackendMessage::ErrorResponse(fatal.into()))
            .await;
        let _ = socket.close().await;
        return Ok(Startup::Done(ConnectionEnd::TooManyConnections));
    }
    let message = decode(packet, true, ProtocolVersion::default())?;
    if let PgWireFrontendMessage::Startup(ref packet) = message {
        if let Err(refusal) = handlers.connection.open(&packet.parameters).await {
            let code = refusal.code.clone();
            let _ = socket
                .send(PgWireBackendMessage::ErrorResponse(refusal.into()))
                .await;
            let _ = socket.close().await;
            return Ok(Startup::Done(ConnectionEnd::Refused(code)));
        }
    }
    if let Err(end) = dispatch(socket, handlers, message).await {
        return Ok(Startup::Done(end));
    }
    // Password / SASL exchanges (none yet: every user is accepted).
    while matches!(
        socket.state(),
        PgWireConnectionState::AwaitingStartup | PgWireConnectionState::AuthenticationInProgress
    ) {
        let frame = frames.read_message(None).await?;
        let message = decode(frame.bytes, false, socket.protocol_version())?;
        if let Err(end) = dispatch(socket, handlers, message).await {
            return Ok(Startup::Done(end));
        }
    }
    Ok(Startup::Ready)
}

/// The pgwire socket: writes only, plus the connection's protocol state.
type Socket<W> = Framed<WriteHalf<W>, PgWireMessageServerCodec<PgStatement>>;

/// Hands one decoded message to the handlers, answering its error the way
/// pgwire's own loop does; `Err` ends the connection.
async fn dispatch<W>(
    socket: &mut Socket<W>,
    handlers: &Handlers,
    message: PgWireFrontendMessage,
) -> Result<(), ConnectionEnd>
where
    W: AsyncWrite + Unpin + Send + Sync + 'static,
{
    let is_extended_query = match socket.state() {
        PgWireConnectionState::CopyInProgress(extended) => extended,
        _ => message.is_extended_query(),
    };
    let result = process_message(
        message,
        socket,
        handlers.startup.clone(),
        handlers.connection.clone(),
        handlers.connection.clone(),
        handlers.connection.clone(),
        handlers.cancel.clone(),
    )
    .await;
    if let Err(mut e) = result {
        LogErrors.on_error(socket, &mut e);
        process_error(socket, e, is_extended_query)
            .await
            .map_err(ConnectionEnd::Io)?;
    }
    Ok(())
}

/// Decodes one checked frame with pgwire; it is alone in its buffer, so the
/// decoder sees exactly the bytes [`FrameReader`] checked.
fn decode(
    mut bytes: bytes::BytesMut,
    startup: bool,
    protocol_version: ProtocolVersion,
) -> Result<PgWireFrontendMessage, FrameError> {
    let mut context = DecodeContext::new(protocol_version);
    context.awaiting_frontend_ssl = false;
    context.awaiting_frontend_startup = startup;
    match PgWireFrontendMessage::decode(&mut bytes, &context) {
        Ok(Some(message)) => Ok(message),
        Ok(None) => Err(FrameError::Malformed(
            super::frame::Malformed::InsufficientData(super::frame::MessageKind::Startup),
        )),
        Err(e) => Err(FrameError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            e.to_string(),
        ))),
    }
}

fn in_transaction<W: 'static>(socket: &Socket<W>) -> bool {
    !matches!(socket.transaction_status(), TransactionStatus::Idle)
}

async fn send<W>(socket: &mut Socket<W>, message: PgWireBackendMessage) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin + Send + Sync + 'static,
{
    socket.send(message).await.map_err(FrameError::Io)
}

/// Ends a connection whose frames could not be read: a protocol violation
/// or an over-limit message is answered with a FATAL `08P01` first.
async fn fail<W>(socket: &mut Socket<W>, error: FrameError) -> ConnectionEnd
where
    W: AsyncWrite + Unpin + Send + Sync + 'static,
{
    match error {
        FrameError::Closed => ConnectionEnd::Closed,
        FrameError::Io(e) => ConnectionEnd::Io(e),
        FrameError::Idle => ConnectionEnd::TimedOut("idle"),
        FrameError::Stalled(_) => ConnectionEnd::TimedOut("stalled message"),
        violation @ (FrameError::TooLarge { .. } | FrameError::Malformed(_)) => {
            let message = violation.to_string();
            let fatal = ErrorInfo::new(
                "FATAL".to_owned(),
                PROTOCOL_VIOLATION.to_owned(),
                message.clone(),
            );
            let _ = socket
                .send(PgWireBackendMessage::ErrorResponse(fatal.into()))
                .await;
            let _ = socket.close().await;
            ConnectionEnd::ProtocolViolation(message)
        }
    }
}

/// Closes an idle connection as PostgreSQL does, with a FATAL naming the timeout.
async fn idle_timeout<W>(socket: &mut Socket<W>, kind: IdleKind) -> ConnectionEnd
where
    W: AsyncWrite + Unpin + Send + Sync + 'static,
{
    let (code, message, name) = match kind {
        IdleKind::InTransaction => (
            "25P03",
            "terminating connection due to idle-in-transaction timeout",
            "idle_in_transaction_session_timeout",
        ),
        IdleKind::Session => (
            "57P05",
            "terminating connection due to idle-session timeout",
            "idle_session_timeout",
        ),
    };
    let fatal = ErrorInfo::new("FATAL".to_owned(), code.to_owned(), message.to_owned());
    let _ = socket
        .send(PgWireBackendMessage::ErrorResponse(fatal.into()))
        .await;
    let _ = socket.close().await;
    ConnectionEnd::TimedOut(name)
}

/// The write half of a socket, as the `AsyncRead + AsyncWrite` pgwire's
/// `Framed` wants; reading it yields end of file (frames are read by
/// [`FrameReader`] from the other half, never through pgwire).
pub(crate) struct WriteHalf<W>(W);

impl<W: Unpin> AsyncRead for WriteHalf<W> {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for WriteHalf<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
