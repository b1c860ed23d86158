//! Mutated Postgres wire traffic: startup packets and messages with wrong
//! lengths, types and counts, truncated and extended, sent on concurrent
//! connections. Every connection must be answered (a probe query after the
//! mutated messages gets its ReadyForQuery) or closed within its timeout.

use std::fmt;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::server::Server;

/// How long a connection may take to answer or close.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
const CONCURRENCY: usize = 4;

#[derive(Default)]
pub struct Outcome {
    connections: u64,
    answered: u64,
    closed: u64,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} connections: {} answered, {} closed by the server, 0 hung",
            self.connections, self.answered, self.closed
        )
    }
}

pub async fn run(server: &Server, seed: u64, budget: Duration) -> Outcome {
    let deadline = Instant::now() + budget;
    let port = server.pg_port;
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed ^ (worker as u64) << 32);
            let mut outcome = Outcome::default();
            while Instant::now() < deadline {
                let case = Case::generate(&mut rng);
                outcome.connections += 1;
                match case.run(port).await {
                    Ended::Answered => outcome.answered += 1,
                    Ended::Closed => outcome.closed += 1,
                    Ended::Hung(what) => panic!("a connection hung ({what}): {case:?}"),
                }
            }
            outcome
        }));
    }
    let mut total = Outcome::default();
    for task in tasks {
        let outcome = task.await.expect("a fuzz worker failed");
        total.connections += outcome.connections;
        total.answered += outcome.answered;
        total.closed += outcome.closed;
    }
    total
}

/// One connection's traffic.
#[derive(Debug)]
struct Case {
    startup: Vec<u8>,
    messages: Vec<u8>,
    /// Close our side after sending (the server sees end of file).
    half_close: bool,
}

enum Ended {
    Answered,
    Closed,
    Hung(&'static str),
}

fn typed(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut frame = vec![tag];
    frame.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

fn startup_packet() -> Vec<u8> {
    let body = b"\x00\x03\x00\x00user\0fuzz\0database\0quiver\0application_name\0f\0\0";
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend_from_slice(body);
    packet
}

/// Well-formed messages to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let mut parse = b"s\0SELECT $1::int8 + 1\0".to_vec();
    parse.extend_from_slice(&1u16.to_be_bytes());
    parse.extend_from_slice(&20u32.to_be_bytes());
    let mut bind = b"\0s\0".to_vec();
    bind.extend_from_slice(&1u16.to_be_bytes());
    bind.extend_from_slice(&0i16.to_be_bytes());
    bind.extend_from_slice(&1u16.to_be_bytes());
    bind.extend_from_slice(&1i32.to_be_bytes());
    bind.push(b'7');
    bind.extend_from_slice(&1u16.to_be_bytes());
    bind.extend_from_slice(&1i16.to_be_bytes());
    let mut execute = b"\0".to_vec();
    execute.extend_from_slice(&0i32.to_be_bytes());
    vec![
        typed(b'Q', b"SELECT 1\0"),
        typed(b'Q', b"SELECT '[1,2,3]'::vector <-> '[3,2,1]'\0"),
        typed(b'P', &parse),
        typed(b'B', &bind),
        typed(b'D', b"Ss\0"),
        typed(b'D', b"P\0"),
        typed(b'E', &execute),
        typed(b'C', b"Ss\0"),
        typed(b'H', b""),
        typed(b'S', b""),
        typed(b'd', b"1\tx\n"),
        typed(b'c', b""),
        typed(b'f', b"no\0"),
        typed(b'p', b"secret\0"),
    ]
}

fn mutate(rng: &mut StdRng, message: &mut Vec<u8>, typed_frame: bool) {
    let header = if typed_frame { 5 } else { 4 };
    match rng.gen_range(0..9) {
        // A random byte anywhere.
        0 => {
            let at = rng.gen_range(0..message.len());
            message[at] = rng.gen();
        }
        // A length field: small, negative, huge or off by a little.
        1 if message.len() >= header => {
            let at = if typed_frame { 1 } else { 0 };
            let len = i32::from_be_bytes(message[at..at + 4].try_into().unwrap());
            let new = match rng.gen_range(0..5) {
                0 => rng.gen_range(-5..9),
                1 => i32::MAX - rng.gen_range(0..3),
                2 => len.wrapping_add(rng.gen_range(-6..7)),
                3 => 300_000_000,
                _ => rng.gen(),
            };
            message[at..at + 4].copy_from_slice(&new.to_be_bytes());
        }
        // Truncated.
        2 if message.len() > 1 => message.truncate(rng.gen_range(1..message.len())),
        // Extended with junk (length unchanged).
        3 => message.extend((0..rng.gen_range(1..16)).map(|_| rng.gen::<u8>())),
        // A count field rewritten (u16 somewhere in the body).
        4 if message.len() > header + 2 => {
            let at = rng.gen_range(header..message.len() - 1);
            let count: u16 = *[0u16, 1, 2, 255, u16::MAX]
                .get(rng.gen_range(0..5))
                .unwrap_or(&1);
            message[at..at + 2].copy_from_slice(&count.to_be_bytes());
        }
        // The type byte.
        5 if typed_frame => message[0] = rng.gen(),
        // A terminator removed.
        6 => {
            if let Some(at) = message.iter().rposition(|b| *b == 0) {
                message[at] = b'x';
            }
        }
        // Body replaced by random bytes, length kept consistent.
        7 if typed_frame => {
            let body: Vec<u8> = (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect();
            *message = typed(message[0], &body);
        }
        _ => {}
    }
}

impl Case {
    fn generate(rng: &mut StdRng) -> Case {
        let mut startup = Vec::new();
        if rng.gen_bool(0.2) {
            // SSLRequest first (refused with N), sometimes mutated.
            let mut ssl = 8i32.to_be_bytes().to_vec();
            ssl.extend_from_slice(&80_877_103u32.to_be_bytes());
            if rng.gen_bool(0.3) {
                mutate(rng, &mut ssl, false);
            }
            startup.extend(ssl);
        }
        let mut packet = startup_packet();
        if rng.gen_bool(0.15) {
            mutate(rng, &mut packet, false);
        }
        startup.extend(packet);
        let seeds = seeds();
        let mut messages = Vec::new();
        for _ in 0..rng.gen_range(1..6) {
            let mut message = seeds[rng.gen_range(0..seeds.len())].clone();
            if rng.gen_bool(0.6) {
                for _ in 0..rng.gen_range(1..3) {
                    mutate(rng, &mut message, true);
                }
            }
            messages.extend(message);
        }
        // The probe: if the connection is still usable, it must answer.
        messages.extend(typed(b'S', b""));
        messages.extend(typed(b'Q', b"SELECT 42\0"));
        Case {
            startup,
            messages,
            half_close: rng.gen_bool(0.3),
        }
    }

    async fn run(&self, port: u16) -> Ended {
        match tokio::time::timeout(ANSWER_TIMEOUT, self.exchange(port)).await {
            Ok(ended) => ended,
            Err(_) => Ended::Hung("no answer and no close in time"),
        }
    }

    async fn exchange(&self, port: u16) -> Ended {
        let Ok(mut socket) = TcpStream::connect(("127.0.0.1", port)).await else {
            return Ended::Hung("connect failed");
        };
        if socket.write_all(&self.startup).await.is_err()
            || socket.write_all(&self.messages).await.is_err()
        {
            return Ended::Closed;
        }
        if self.half_close {
            let _ = socket.shutdown().await;
        }
        // Read until the probe's answer (a 'Z' after "SELECT 42"'s row) or the close.
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return Ended::Closed,
                Ok(n) => {
                    seen.extend_from_slice(&buf[..n]);
                    if probe_answered(&seen) {
                        return Ended::Answered;
                    }
                    if seen.len() > 1 << 20 {
                        seen.drain(..seen.len() - 1024);
                    }
                }
            }
        }
    }
}

/// The probe's row ("42") followed by a ReadyForQuery.
fn probe_answered(seen: &[u8]) -> bool {
    let Some(row) = seen.windows(2).rposition(|w| w == b"42") else {
        return false;
    };
    seen[row..]
        .windows(6)
        .any(|w| w[0] == b'Z' && w[1..5] == [0, 0, 0, 5])
}
