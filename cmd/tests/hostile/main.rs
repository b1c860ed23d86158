//! The hostile-input fuzzer: a seeded driver (stable toolchain, no
//! cargo-fuzz) against a real `quiver standalone` process.
//!
//! * `pg_wire` — mutated startup packets and messages (wrong lengths,
//!   types, counts, truncations) on the Postgres door;
//! * `grpc` — garbage, truncated and oversized HTTP/2 frames and protobuf
//!   bodies on the Milvus door;
//! * `corpus` — hostile SQL and Milvus requests: flat chains of 10^5 terms
//!   for every binary operator, nesting 10^5 deep, 50 MB statements,
//!   10,000-character names, huge LIMIT / topk / offset / nq values,
//!   malformed search parameters.
//!
//! Pass: the process never exits, its log holds no panic, every connection
//! is answered or closed within its timeout, a normal query is answered
//! afterwards and the resident memory returns within 20% of its value
//! before the run (taken after one warm-up pass of the corpus). The time budget is `QUIVER_FUZZ_SECS` (default 60 s for
//! the two protocol fuzzers together; the corpus always runs whole); the
//! seed is `QUIVER_FUZZ_SEED` (default: fixed, so CI runs are repeatable).

mod corpus;
mod grpc;
mod pg_wire;
mod server;
#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

use server::Server;

fn budget() -> Duration {
    let secs = std::env::var("QUIVER_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60u64);
    Duration::from_secs(secs)
}

fn seed() -> u64 {
    std::env::var("QUIVER_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0051_ce0f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_never_takes_quiver_down() {
    let server = Server::start().await;
    // Warm up the paths the run exercises (the corpus once: the allocator
    // keeps what a 50 MB statement needed for its decay time, which is
    // retention, not a leak), then take the memory baseline; the corpus
    // runs again below, so growth past the warm state is caught. Each phase
    // prints the resident memory it left behind.
    corpus::setup(&server).await;
    let warmup = corpus::run(&server).await;
    eprintln!("warm-up corpus: {warmup}; rss {} KiB", server.rss_kib());
    server.check_alive().await;
    let rss_before = server.rss_kib();
    let budget = budget();
    let seed = seed();
    eprintln!("fuzzing for {budget:?} with seed {seed}");

    let wire = pg_wire::run(&server, seed, budget.mul_f64(0.6)).await;
    server.assert_healthy("after the Postgres wire fuzzer");
    eprintln!("postgres wire: {wire}; rss {} KiB", server.rss_kib());

    let rpc = grpc::run(&server, seed, budget.mul_f64(0.4)).await;
    server.assert_healthy("after the gRPC fuzzer");
    eprintln!("grpc: {rpc}; rss {} KiB", server.rss_kib());

    let hostile = corpus::run(&server).await;
    server.assert_healthy("after the hostile corpus");
    eprintln!("corpus: {hostile}; rss {} KiB", server.rss_kib());

    server.check_alive().await;
    // Memory comes back once the requests are gone (allow the allocator a moment).
    let mut rss_after = server.rss_kib();
    for _ in 0..30 {
        if rss_after <= rss_before + rss_before / 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_after = server.rss_kib();
    }
    eprintln!("rss before {rss_before} KiB, after {rss_after} KiB");
    assert!(
        rss_after <= rss_before + rss_before / 5,
        "resident memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    server.assert_healthy("at the end");
}
