//! Tests of frame reading and checking: the malformed messages that made
//! pgwire's decoders panic, limits at the header, and a seeded mutation run
//! proving that whatever the checks accept, pgwire decodes without panicking.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use pgwire::messages::{DecodeContext, PgWireFrontendMessage, ProtocolVersion};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::AsyncWriteExt;

use super::*;

fn typed(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut frame = vec![tag];
    frame.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

fn reader(bytes: Vec<u8>) -> FrameReader<std::io::Cursor<Vec<u8>>> {
    FrameReader::new(
        std::io::Cursor::new(bytes),
        1 << 20,
        ReceiveBudget::new(1 << 22),
        Some(Duration::from_secs(5)),
    )
}

fn bind_body(formats: &[i16], params: &[Option<&[u8]>], results: &[i16]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_slice(b"portal\0stmt\0");
    b.put_u16(formats.len() as u16);
    formats.iter().for_each(|f| b.put_i16(*f));
    b.put_u16(params.len() as u16);
    for p in params {
        match p {
            Some(v) => {
                b.put_i32(v.len() as i32);
                b.put_slice(v);
            }
            None => b.put_i32(-1),
        }
    }
    b.put_u16(results.len() as u16);
    results.iter().for_each(|f| b.put_i16(*f));
    b.to_vec()
}

/// Well-formed messages of every frontend type.
fn valid_messages() -> Vec<Vec<u8>> {
    let mut parse = b"s1\0SELECT $1\0".to_vec();
    parse.extend_from_slice(&1u16.to_be_bytes());
    parse.extend_from_slice(&25u32.to_be_bytes());
    let mut execute = b"portal\0".to_vec();
    execute.extend_from_slice(&0i32.to_be_bytes());
    vec![
        typed(b'Q', b"SELECT 1\0"),
        typed(b'P', &parse),
        typed(b'B', &bind_body(&[0, 1], &[Some(b"12"), None], &[1])),
        typed(b'B', &bind_body(&[], &[], &[])),
        typed(b'D', b"Sname\0"),
        typed(b'C', b"P\0"),
        typed(b'E', &execute),
        typed(b'H', b""),
        typed(b'S', b""),
        typed(b'd', b"1\tx\n"),
        typed(b'c', b""),
        typed(b'f', b"failed\0"),
        typed(b'X', b""),
    ]
}

#[test]
fn well_formed_messages_pass_and_decode() {
    for message in valid_messages() {
        check_message(message[0], &message[5..])
            .unwrap_or_else(|e| panic!("{:?} refused: {e}", message[0] as char));
        let mut bytes = BytesMut::from(&message[..]);
        let mut context = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
        context.awaiting_frontend_ssl = false;
        context.awaiting_frontend_startup = false;
        let decoded = PgWireFrontendMessage::decode(&mut bytes, &context).unwrap();
        assert!(decoded.is_some());
        assert!(bytes.is_empty(), "the decoder consumed the whole frame");
    }
}

#[tokio::test]
async fn the_messages_that_panicked_pgwire_are_protocol_violations() {
    for (bytes, expected) in [
        (
            &b"B\x00\x00\x00\x08\x00\x00\x00\x01"[..],
            "insufficient data left in message",
        ),
        (
            &b"P\x00\x00\x00\x08\x00\x00\x00\x01"[..],
            "insufficient data left in message",
        ),
        (&b"p\x00\x00\x00\x03"[..], "invalid message length 3"),
        (&b"d\x00\x00\x00\x00"[..], "invalid message length 0"),
        (&b"Q\xff\xff\xff\xff"[..], "invalid message length -1"),
        (&b"S\x00\x00\x00\x05x"[..], "invalid message format"),
        (&b"Q\x00\x00\x00\x06ab"[..], "invalid string in message"),
        (
            &b"Z\x00\x00\x00\x04"[..],
            "invalid frontend message type 90",
        ),
        (
            &b"D\x00\x00\x00\x06Q\x00"[..],
            "invalid Describe message message subtype 81",
        ),
    ] {
        let err = reader(bytes.to_vec()).read_message(None).await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, FrameError::Malformed(_)) && text.contains(expected),
            "{bytes:?}: {text}"
        );
    }
}

#[test]
fn bind_counts_must_agree() {
    let body = bind_body(&[0, 0, 0], &[Some(b"1"), Some(b"2")], &[]);
    assert_eq!(
        check_message(b'B', &body),
        Err(Malformed::BindFormatCount {
            formats: 3,
            parameters: 2
        })
    );
    let mut body = bind_body(&[], &[Some(b"1")], &[]);
    // A parameter length of -2.
    let at = body.len() - 2 - 1 - 4;
    body[at..at + 4].copy_from_slice(&(-2i32).to_be_bytes());
    body.truncate(at + 4);
    body.extend_from_slice(&0u16.to_be_bytes());
    assert_eq!(
        check_message(b'B', &body),
        Err(Malformed::InvalidParameterLength(-2))
    );
}

#[tokio::test]
async fn an_oversized_message_is_refused_at_its_header() {
    // Only the header is ever sent: the refusal cannot have waited for the body.
    let (mut client, server) = tokio::io::duplex(64);
    client.write_all(b"Q").await.unwrap();
    client
        .write_all(&(300_000_000i32 + 4).to_be_bytes())
        .await
        .unwrap();
    let mut frames = FrameReader::new(server, 256 * 1024 * 1024, ReceiveBudget::new(1 << 30), None);
    let err = tokio::time::timeout(Duration::from_secs(5), frames.read_message(None))
        .await
        .expect("refused without waiting for the body")
        .unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::TooLarge {
                declared: 300_000_000,
                limit: 268_435_456,
                setting: "pg.max_message_bytes",
                ..
            }
        ),
        "{err}"
    );
    // Small-message types keep PostgreSQL's 10,000-byte limit.
    let mut frames = reader(typed(b'S', &vec![0; 20_000]));
    assert!(matches!(
        frames.read_message(None).await,
        Err(FrameError::TooLarge {
            limit: SMALL_MESSAGE_LIMIT,
            ..
        })
    ));
}

#[tokio::test]
async fn large_messages_wait_for_the_receive_budget() {
    let budget = ReceiveBudget::new(300 * 1024);
    let body = vec![b'x'; 200 * 1024];
    let mut first = FrameReader::new(
        std::io::Cursor::new(typed(b'd', &body)),
        1 << 20,
        budget.clone(),
        None,
    );
    let held = first.read_message(None).await.unwrap();
    assert!(held.budget.is_some());
    let mut second = FrameReader::new(
        std::io::Cursor::new(typed(b'd', &body)),
        1 << 20,
        budget.clone(),
        None,
    );
    let waiting = tokio::time::timeout(Duration::from_millis(200), second.read_message(None)).await;
    assert!(
        waiting.is_err(),
        "a second 200 KiB message exceeds the 300 KiB budget"
    );
    drop(held);
    let frame = second.read_message(None).await.unwrap();
    assert_eq!(frame.bytes.len(), 5 + body.len());
    // More than the whole budget can never be granted: refused, not queued.
    let mut huge = FrameReader::new(
        std::io::Cursor::new(typed(b'd', &vec![0; 400 * 1024])),
        1 << 20,
        budget,
        None,
    );
    assert!(matches!(
        huge.read_message(None).await,
        Err(FrameError::TooLarge { .. })
    ));
}

#[tokio::test]
async fn idle_and_stalled_connections_time_out() {
    let (mut client, server) = tokio::io::duplex(64);
    let mut frames = FrameReader::new(
        server,
        1 << 20,
        ReceiveBudget::new(1 << 22),
        Some(Duration::from_millis(100)),
    );
    assert!(matches!(
        frames.read_message(Some(Duration::from_millis(50))).await,
        Err(FrameError::Idle)
    ));
    client.write_all(b"Q\x00\x00\x00\x10SEL").await.unwrap();
    assert!(matches!(
        frames.read_message(None).await,
        Err(FrameError::Stalled(_))
    ));
}

#[tokio::test]
async fn startup_packets() {
    let mut ssl = 8i32.to_be_bytes().to_vec();
    ssl.extend_from_slice(&80_877_103u32.to_be_bytes());
    let mut startup = Vec::new();
    let body = b"\x00\x03\x00\x00user\0quiver\0database\0quiver\0\0";
    startup.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    startup.extend_from_slice(body);
    let mut both = ssl.clone();
    both.extend_from_slice(&startup);
    let mut frames = reader(both);
    assert!(matches!(
        frames.read_startup().await.unwrap(),
        StartupPacket::SslRequest
    ));
    assert!(matches!(
        frames.read_startup().await.unwrap(),
        StartupPacket::Startup(_)
    ));
    // Protocol 2, a short packet, a missing terminator.
    for bad in [
        &b"\x00\x00\x00\x09\x00\x02\x00\x00\x00"[..],
        &b"\x00\x00\x00\x05\x00"[..],
        &b"\x00\x00\x00\x0c\x00\x03\x00\x00user"[..],
    ] {
        let err = reader(bad.to_vec()).read_startup().await.unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{bad:?}: {err}");
    }
}

/// Mutates well-formed messages (bytes flipped, lengths and counts
/// rewritten, truncated, extended) and checks that every frame the checks
/// accept decodes with pgwire — alone in its buffer — without a panic.
#[test]
fn mutated_messages_never_reach_pgwire_malformed() {
    let mut rng = StdRng::seed_from_u64(0x51ce);
    let seeds = valid_messages();
    let mut accepted = 0;
    for _ in 0..200_000 {
        let mut message = seeds[rng.gen_range(0..seeds.len())].clone();
        for _ in 0..rng.gen_range(1..4) {
            match rng.gen_range(0..5) {
                0 if message.len() > 5 => {
                    let at = rng.gen_range(5..message.len());
                    message[at] = rng.gen();
                }
                1 if message.len() > 5 => {
                    let at = rng.gen_range(5..message.len());
                    message.truncate(at);
                }
                2 => message.extend((0..rng.gen_range(1..6)).map(|_| rng.gen::<u8>())),
                3 if message.len() > 7 => {
                    let at = rng.gen_range(5..message.len() - 1);
                    message[at] = 0;
                    message[at + 1] = rng.gen_range(0..4);
                }
                _ => message[0] = [b'B', b'P', b'E', b'D', b'C', b'Q'][rng.gen_range(0..6)],
            }
        }
        let len = (message.len() - 1) as i32;
        message[1..5].copy_from_slice(&len.to_be_bytes());
        if check_message(message[0], &message[5..]).is_ok() {
            accepted += 1;
            let mut bytes = BytesMut::from(&message[..]);
            let mut context = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
            context.awaiting_frontend_ssl = false;
            context.awaiting_frontend_startup = false;
            let decoded = PgWireFrontendMessage::decode(&mut bytes, &context);
            assert!(matches!(decoded, Ok(Some(_))), "{message:?}");
        }
    }
    assert!(accepted > 1_000, "the mutations kept some valid messages");
}
