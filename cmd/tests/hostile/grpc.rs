//! The Milvus door under garbage: raw bytes and malformed HTTP/2 frames on
//! the socket, and well-framed gRPC calls whose protobuf bodies are random,
//! truncated or oversized. Every connection must be answered or closed in
//! time; the server must keep serving.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

use super::server::Server;

const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Milvus methods the bodies are sent to.
const METHODS: &[&str] = &[
    "Search",
    "Query",
    "Insert",
    "CreateCollection",
    "DescribeCollection",
    "HybridSearch",
    "Delete",
    "CreateIndex",
    "ShowCollections",
    "GetVersion",
];

#[derive(Default)]
pub struct Outcome {
    raw: u64,
    calls: u64,
    errors: u64,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} raw HTTP/2 connections, {} gRPC calls with garbage bodies ({} answered with an error status)",
            self.raw, self.calls, self.errors
        )
    }
}

pub async fn run(server: &Server, seed: u64, budget: Duration) -> Outcome {
    let deadline = Instant::now() + budget;
    let mut rng = StdRng::seed_from_u64(seed.rotate_left(17));
    let mut outcome = Outcome::default();
    let endpoint = format!("http://127.0.0.1:{}", server.milvus_port);
    let channel = Channel::from_shared(endpoint).unwrap().connect().await;
    let channel = channel.expect("the Milvus door accepts a client");
    while Instant::now() < deadline {
        if rng.gen_bool(0.5) {
            outcome.raw += 1;
            raw_connection(server.milvus_port, &mut rng).await;
        } else {
            outcome.calls += 1;
            if garbage_call(channel.clone(), &mut rng).await {
                outcome.errors += 1;
            }
        }
    }
    // The client keeps working.
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("the channel is ready");
    outcome
}

/// An HTTP/2 frame header and payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

async fn raw_connection(port: u16, rng: &mut StdRng) {
    let mut bytes = Vec::new();
    if rng.gen_bool(0.8) {
        bytes.extend_from_slice(PREFACE);
    }
    for _ in 0..rng.gen_range(1..8) {
        let payload: Vec<u8> = (0..rng.gen_range(0..48)).map(|_| rng.gen()).collect();
        let mut f = frame(
            rng.gen_range(0..12),
            rng.gen(),
            rng.gen_range(0..8),
            &payload,
        );
        match rng.gen_range(0..4) {
            // Declared length larger than sent (up to 16 MiB).
            0 => {
                let len: u32 = rng.gen_range(0..(1 << 24));
                f[0..3].copy_from_slice(&len.to_be_bytes()[1..]);
            }
            1 => f.truncate(rng.gen_range(1..f.len())),
            _ => {}
        }
        bytes.extend(f);
    }
    let half_close = rng.gen_bool(0.5);
    let exchange = async {
        let Ok(mut socket) = TcpStream::connect(("127.0.0.1", port)).await else {
            return;
        };
        if socket.write_all(&bytes).await.is_err() {
            return;
        }
        if half_close {
            let _ = socket.shutdown().await;
        }
        // Any answer (SETTINGS, GOAWAY) or the close will do.
        let mut buf = vec![0u8; 16 * 1024];
        let _ = socket.read(&mut buf).await;
    };
    if tokio::time::timeout(ANSWER_TIMEOUT, exchange)
        .await
        .is_err()
    {
        panic!("a raw HTTP/2 connection was neither answered nor closed: {bytes:?}");
    }
}

/// A gRPC call with a garbage body; true when it got an error status.
async fn garbage_call(channel: Channel, rng: &mut StdRng) -> bool {
    let method = METHODS[rng.gen_range(0..METHODS.len())];
    let body: Vec<u8> = match rng.gen_range(0..4) {
        0 => (0..rng.gen_range(0..256)).map(|_| rng.gen()).collect(),
        // A protobuf field claiming a huge length.
        1 => vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3],
        // Nested length-delimited fields, deep.
        2 => {
            let mut v = Vec::new();
            for _ in 0..rng.gen_range(1..2000) {
                v.extend_from_slice(&[0x0a, 0x80, 0x01]);
            }
            v
        }
        // Over the door's 64 MiB message limit.
        _ => vec![0u8; 65 * 1024 * 1024],
    };
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_encoding_message_size(128 * 1024 * 1024)
        .max_decoding_message_size(128 * 1024 * 1024);
    let call = async {
        grpc.ready().await.ok()?;
        let path = format!("/milvus.proto.milvus.MilvusService/{method}")
            .parse()
            .ok()?;
        Some(
            grpc.unary(tonic::Request::new(Bytes::from(body)), path, RawCodec)
                .await,
        )
    };
    match tokio::time::timeout(ANSWER_TIMEOUT, call).await {
        Ok(Some(Err(_status))) => true,
        Ok(Some(Ok(_))) | Ok(None) => false,
        Err(_) => panic!("a gRPC call to {method} with a garbage body hung"),
    }
}

/// Sends and receives message bodies as raw bytes.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
