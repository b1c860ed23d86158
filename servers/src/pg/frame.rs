//! Postgres wire-protocol frames, read off the socket and checked before
//! pgwire decodes them.
//!
//! pgwire's decoders trust a message's declared length and counts: a 9-byte
//! `Bind` claiming one parameter format reads past its end and panics, a
//! length under 4 underflows, a message declared as 1 GiB is buffered whole.
//! Quiver therefore owns the framing: [`FrameReader`] reads one frame at a
//! time, refuses a declared length over its limit at the header (before any
//! of the body is buffered), charges large bodies to a server-wide
//! [`ReceiveBudget`], and [`check_message`] walks the body with bounds-checked
//! reads exactly as the protocol lays it out (PostgreSQL's own rules: counts
//! that match, strings terminated inside the message, nothing left over).
//! Only a frame that passed is handed to pgwire, alone in its buffer, so its
//! decoder can neither run short nor read into the next message.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// PostgreSQL's limit for the messages that carry no user data (`Sync`,
/// `Execute`, `Describe`, ...): `PQ_SMALL_MESSAGE_LIMIT`.
pub const SMALL_MESSAGE_LIMIT: usize = 10_000;
/// The longest startup-phase packet (startup, SSL/GSS request, cancel), as
/// in PostgreSQL (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_PACKET: usize = 10_000;
/// The longest password / SASL message (`PG_MAX_AUTH_TOKEN_LENGTH`).
pub const MAX_AUTH_MESSAGE: usize = 65_535;
/// The hard ceiling pgwire's decoders accept for any message (1 GiB - 2).
pub const PGWIRE_MESSAGE_CEILING: usize = 0x3fff_fffe;
/// Bodies up to this size are read without charging the receive budget.
const UNBUDGETED_BODY: usize = 64 * 1024;
/// The receive budget counts in units of this many bytes.
const BUDGET_UNIT: usize = 1024;

/// The magic codes of the untyped startup-phase packets.
const SSL_REQUEST_CODE: u32 = 80_877_103;
const GSSENC_REQUEST_CODE: u32 = 80_877_104;
const CANCEL_REQUEST_CODE: u32 = 80_877_102;

/// Why a frame could not be read.
#[derive(Debug)]
pub enum FrameError {
    /// The client closed the connection (possibly mid-message).
    Closed,
    /// No message began within the idle timeout the caller gave.
    Idle,
    /// A message began but no more of it arrived within the stall timeout.
    Stalled(Duration),
    /// The socket failed.
    Io(io::Error),
    /// The declared length is over the limit for its kind of message.
    TooLarge {
        kind: MessageKind,
        declared: usize,
        limit: usize,
        setting: &'static str,
    },
    /// The frame breaks the protocol's layout.
    Malformed(Malformed),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Closed => write!(f, "the client closed the connection"),
            FrameError::Idle => write!(f, "the connection was idle past its timeout"),
            FrameError::Stalled(after) => write!(
                f,
                "no data arrived for {} ms in the middle of a message (pg.stalled_message_timeout_ms)",
                after.as_millis()
            ),
            FrameError::Io(e) => write!(f, "reading from the client failed: {e}"),
            FrameError::TooLarge {
                kind,
                declared,
                limit,
                setting,
            } => write!(
                f,
                "{kind} of {declared} bytes exceeds the limit of {limit} bytes ({setting})"
            ),
            FrameError::Malformed(m) => write!(f, "{m}"),
        }
    }
}

impl From<Malformed> for FrameError {
    fn from(m: Malformed) -> Self {
        FrameError::Malformed(m)
    }
}

/// A protocol violation, worded as PostgreSQL words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    /// A length field under its minimum.
    InvalidLength { kind: MessageKind, declared: i64 },
    /// A type byte no frontend message has (PostgreSQL: `invalid frontend message type`).
    UnknownType(u8),
    /// A startup-phase packet with an unknown code or protocol.
    UnsupportedProtocol { major: u16, minor: u16 },
    /// A field runs past the end of its message.
    InsufficientData(MessageKind),
    /// A string is not terminated inside its message.
    InvalidString(MessageKind),
    /// Bytes left over after the last field.
    TrailingData(MessageKind),
    /// A Bind whose parameter format count matches neither 0, 1 nor its parameters.
    BindFormatCount { formats: u16, parameters: u16 },
    /// A negative length other than -1 (NULL) for a Bind parameter.
    InvalidParameterLength(i32),
    /// Describe / Close of something other than a statement or portal.
    InvalidTarget { kind: MessageKind, target: u8 },
    /// More SSL/GSS requests than a client sends before its startup packet.
    RepeatedNegotiation,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::InvalidLength { kind, declared } => {
                write!(f, "invalid message length {declared} for {kind}")
            }
            Malformed::UnknownType(t) => write!(f, "invalid frontend message type {t}"),
            Malformed::UnsupportedProtocol { major, minor } => write!(
                f,
                "unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.2"
            ),
            Malformed::InsufficientData(kind) => {
                write!(f, "insufficient data left in message ({kind})")
            }
            Malformed::InvalidString(kind) => write!(f, "invalid string in message ({kind})"),
            Malformed::TrailingData(kind) => write!(f, "invalid message format ({kind})"),
            Malformed::BindFormatCount {
                formats,
                parameters,
            } => write!(
                f,
                "bind message has {formats} parameter formats but {parameters} parameters"
            ),
            Malformed::InvalidParameterLength(len) => {
                write!(f, "invalid length {len} of a bind parameter")
            }
            Malformed::InvalidTarget { kind, target } => {
                write!(f, "invalid {kind} message subtype {target}")
            }
            Malformed::RepeatedNegotiation => {
                write!(f, "too many SSL/GSS negotiation requests before startup")
            }
        }
    }
}

/// The kind of a frame, for limits and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// An untyped startup-phase packet.
    Startup,
    /// A typed message, by its type byte.
    Typed(u8),
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageKind::Startup => write!(f, "startup packet"),
            MessageKind::Typed(t) => {
                let name = match t {
                    b'Q' => "Query",
                    b'P' => "Parse",
                    b'B' => "Bind",
                    b'E' => "Execute",
                    b'D' => "Describe",
                    b'C' => "Close",
                    b'H' => "Flush",
                    b'S' => "Sync",
                    b'X' => "Terminate",
                    b'd' => "CopyData",
                    b'c' => "CopyDone",
                    b'f' => "CopyFail",
                    b'p' => "password message",
                    _ => return write!(f, "message type {t}"),
                };
                write!(f, "{name} message")
            }
        }
    }
}

/// What the first packets of a connection can be.
#[derive(Debug)]
pub enum StartupPacket {
    /// `SSLRequest`: the server answers `N` (no TLS yet) and reads again.
    SslRequest,
    /// `GSSENCRequest`: likewise refused.
    GssEncRequest,
    /// A cancel request for another connection (the whole packet).
    Cancel(BytesMut),
    /// The startup message (the whole packet).
    Startup(BytesMut),
}

/// One checked typed message: the whole frame (type byte, length, body) and
/// the share of the receive budget it holds until it is dropped.
#[derive(Debug)]
pub struct Frame {
    pub tag: u8,
    pub bytes: BytesMut,
    pub budget: Option<OwnedSemaphorePermit>,
}

/// Bytes of large messages all connections may buffer at once; a message
/// waits for its share (the client is simply not read meanwhile).
#[derive(Debug, Clone)]
pub struct ReceiveBudget {
    units: Arc<Semaphore>,
    total_units: usize,
    bytes: usize,
}

impl ReceiveBudget {
    /// A budget of `bytes` (rounded down to whole KiB).
    pub fn new(bytes: usize) -> Self {
        let units = (bytes / BUDGET_UNIT).min(Semaphore::MAX_PERMITS);
        Self {
            units: Arc::new(Semaphore::new(units)),
            total_units: units,
            bytes,
        }
    }

    /// The budget's total size.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Waits for `body` bytes of the budget; `None` when they could never
    /// be granted (more than the whole budget).
    async fn reserve(&self, body: usize) -> Option<OwnedSemaphorePermit> {
        let units = body.div_ceil(BUDGET_UNIT);
        if units > self.total_units {
            return None;
        }
        let units = u32::try_from(units).ok()?;
        self.units.clone().acquire_many_owned(units).await.ok()
    }
}

/// Reads checked frames from one client.
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    max_message_bytes: usize,
    budget: ReceiveBudget,
    stall_timeout: Option<Duration>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader refusing messages over `max_message_bytes` (capped by what
    /// pgwire can decode and by the budget's size) and giving up on a
    /// message when none of it arrives for `stall_timeout`.
    pub fn new(
        inner: R,
        max_message_bytes: usize,
        budget: ReceiveBudget,
        stall_timeout: Option<Duration>,
    ) -> Self {
        let max_message_bytes = max_message_bytes
            .min(PGWIRE_MESSAGE_CEILING)
            .min(budget.bytes().max(UNBUDGETED_BODY));
        Self {
            inner,
            buf: BytesMut::with_capacity(8 * 1024),
            max_message_bytes,
            budget,
            stall_timeout,
        }
    }

    /// The effective per-message limit.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Reads one startup-phase packet (untyped: length, then code).
    pub async fn read_startup(&mut self) -> Result<StartupPacket, FrameError> {
        self.fill(4).await?;
        let declared = i64::from(i32::from_be_bytes(header(&self.buf, 0)));
        let kind = MessageKind::Startup;
        if declared < 8 {
            return Err(Malformed::InvalidLength { kind, declared }.into());
        }
        let len = declared as usize;
        if len > MAX_STARTUP_PACKET {
            return Err(FrameError::TooLarge {
                kind,
                declared: len,
                limit: MAX_STARTUP_PACKET,
                setting: "fixed",
            });
        }
        self.fill(len).await?;
        let packet = self.buf.split_to(len);
        let code = u32::from_be_bytes(header(&packet, 4));
        match code {
            SSL_REQUEST_CODE | GSSENC_REQUEST_CODE if len != 8 => {
                Err(Malformed::TrailingData(kind).into())
            }
            SSL_REQUEST_CODE => Ok(StartupPacket::SslRequest),
            GSSENC_REQUEST_CODE => Ok(StartupPacket::GssEncRequest),
            CANCEL_REQUEST_CODE => {
                // pid, then a secret key of 4 (protocol 3.0) to 256 bytes (3.2).
                if !(16..=12 + 256).contains(&len) {
                    return Err(Malformed::InvalidLength { kind, declared }.into());
                }
                Ok(StartupPacket::Cancel(packet))
            }
            _ => {
                check_startup(&packet[4..])?;
                Ok(StartupPacket::Startup(packet))
            }
        }
    }

    /// Reads one typed message and checks its layout. With `idle`, gives
    /// up with [`FrameError::Idle`] when no message begins in that time.
    pub async fn read_message(&mut self, idle: Option<Duration>) -> Result<Frame, FrameError> {
        if self.buf.is_empty() {
            let first = self.read_more(1);
            match idle {
                Some(idle) => match tokio::time::timeout(idle, first).await {
                    Ok(read) => read?,
                    Err(_) => return Err(FrameError::Idle),
                },
                None => first.await?,
            }
        }
        self.fill(5).await?;
        let tag = self.buf[0];
        let kind = MessageKind::Typed(tag);
        let (limit, setting) = self.limit_of(tag)?;
        let declared = i64::from(i32::from_be_bytes(header(&self.buf, 1)));
        if declared < 4 {
            return Err(Malformed::InvalidLength { kind, declared }.into());
        }
        let body = declared as usize - 4;
        if body > limit {
            return Err(FrameError::TooLarge {
                kind,
                declared: body,
                limit,
                setting,
            });
        }
        let budget = if body > UNBUDGETED_BODY {
            let permit = self.budget.reserve(body).await;
            if permit.is_none() {
                return Err(FrameError::TooLarge {
                    kind,
                    declared: body,
                    limit: self.budget.bytes(),
                    setting: "pg.receive_budget_bytes",
                });
            }
            permit
        } else {
            None
        };
        let total = 5 + body;
        self.buf.reserve(total.saturating_sub(self.buf.len()));
        self.fill(total).await?;
        let bytes = self.buf.split_to(total);
        check_message(tag, &bytes[5..])?;
        Ok(Frame { tag, bytes, budget })
    }

    /// The largest body a message of type `tag` may declare.
    fn limit_of(&self, tag: u8) -> Result<(usize, &'static str), Malformed> {
        match tag {
            b'Q' | b'P' | b'B' | b'd' => Ok((self.max_message_bytes, "pg.max_message_bytes")),
            b'p' => Ok((MAX_AUTH_MESSAGE, "fixed")),
            b'E' | b'D' | b'C' | b'H' | b'S' | b'X' | b'c' | b'f' => {
                Ok((SMALL_MESSAGE_LIMIT, "fixed"))
            }
            other => Err(Malformed::UnknownType(other)),
        }
    }

    /// Reads until at least `n` bytes are buffered, each read bounded by
    /// the stall timeout.
    async fn fill(&mut self, n: usize) -> Result<(), FrameError> {
        while self.buf.len() < n {
            let want = n - self.buf.len();
            match self.stall_timeout {
                Some(stall) => tokio::time::timeout(stall, self.read_more(want))
                    .await
                    .map_err(|_| FrameError::Stalled(stall))??,
                None => self.read_more(want).await?,
            }
        }
        Ok(())
    }

    /// One read of up to `want` more bytes (at most 1 MiB of new capacity).
    async fn read_more(&mut self, want: usize) -> Result<(), FrameError> {
        let want = want.min(1 << 20);
        if self.buf.capacity() - self.buf.len() < want {
            self.buf.reserve(want);
        }
        match self.inner.read_buf(&mut self.buf).await {
            Ok(0) => Err(FrameError::Closed),
            Ok(_) => Ok(()),
            Err(e) => Err(FrameError::Io(e)),
        }
    }
}

/// Four bytes at `at` (the caller has checked they are there).
fn header(buf: &[u8], at: usize) -> [u8; 4] {
    let mut word = [0; 4];
    word.copy_from_slice(&buf[at..at + 4]);
    word
}

/// Checks a startup message body (after the length): protocol 3.x, then
/// `name\0value\0` pairs ended by one `\0`, nothing after it.
fn check_startup(body: &[u8]) -> Result<(), Malformed> {
    let kind = MessageKind::Startup;
    let mut cursor = Cursor::new(body, kind);
    let major = cursor.u16()?;
    let minor = cursor.u16()?;
    if major != 3 {
        return Err(Malformed::UnsupportedProtocol { major, minor });
    }
    loop {
        let name = cursor.cstring()?;
        if name.is_empty() {
            break;
        }
        cursor.cstring()?;
    }
    cursor.finish()
}

/// Checks the body of a typed message against its layout.
pub fn check_message(tag: u8, body: &[u8]) -> Result<(), Malformed> {
    let kind = MessageKind::Typed(tag);
    let mut cursor = Cursor::new(body, kind);
    match tag {
        b'Q' | b'f' => {
            cursor.cstring()?;
        }
        b'P' => {
            cursor.cstring()?;
            cursor.cstring()?;
            let types = cursor.u16()?;
            cursor.skip(usize::from(types) * 4)?;
        }
        b'B' => check_bind(&mut cursor)?,
        b'D' | b'C' => {
            let target = cursor.u8()?;
            if target != b'S' && target != b'P' {
                return Err(Malformed::InvalidTarget { kind, target });
            }
            cursor.cstring()?;
        }
        b'E' => {
            cursor.cstring()?;
            cursor.skip(4)?;
        }
        b'H' | b'S' | b'X' | b'c' => {}
        b'd' | b'p' => return Ok(()),
        other => return Err(Malformed::UnknownType(other)),
    }
    cursor.finish()
}

fn check_bind(cursor: &mut Cursor<'_>) -> Result<(), Malformed> {
    cursor.cstring()?;
    cursor.cstring()?;
    let formats = cursor.u16()?;
    cursor.skip(usize::from(formats) * 2)?;
    let parameters = cursor.u16()?;
    if formats > 1 && formats != parameters {
        return Err(Malformed::BindFormatCount {
            formats,
            parameters,
        });
    }
    for _ in 0..parameters {
        let len = cursor.i32()?;
        match len {
            -1 => {}
            n if n < 0 => return Err(Malformed::InvalidParameterLength(n)),
            n => cursor.skip(n as usize)?,
        }
    }
    let results = cursor.u16()?;
    cursor.skip(usize::from(results) * 2)
}

/// Bounds-checked reads over one message body.
struct Cursor<'a> {
    rest: &'a [u8],
    kind: MessageKind,
}

impl<'a> Cursor<'a> {
    fn new(body: &'a [u8], kind: MessageKind) -> Self {
        Self { rest: body, kind }
    }

    fn skip(&mut self, n: usize) -> Result<(), Malformed> {
        if self.rest.len() < n {
            return Err(Malformed::InsufficientData(self.kind));
        }
        self.rest.advance(n);
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, Malformed> {
        let byte = *self
            .rest
            .first()
            .ok_or(Malformed::InsufficientData(self.kind))?;
        self.rest.advance(1);
        Ok(byte)
    }

    fn u16(&mut self) -> Result<u16, Malformed> {
        if self.rest.len() < 2 {
            return Err(Malformed::InsufficientData(self.kind));
        }
        Ok(self.rest.get_u16())
    }

    fn i32(&mut self) -> Result<i32, Malformed> {
        if self.rest.len() < 4 {
            return Err(Malformed::InsufficientData(self.kind));
        }
        Ok(self.rest.get_i32())
    }

    /// A `\0`-terminated string inside the message; returns its bytes.
    fn cstring(&mut self) -> Result<&'a [u8], Malformed> {
        let end = self
            .rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(Malformed::InvalidString(self.kind))?;
        let (text, rest) = self.rest.split_at(end);
        self.rest = &rest[1..];
        Ok(text)
    }

    fn finish(&self) -> Result<(), Malformed> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Malformed::TrailingData(self.kind))
        }
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
