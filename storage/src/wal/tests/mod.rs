//! Tests for the local WAL: round trips, rolling, truncation, group commit
//! and shutdown. Damage and recovery tests live in `recovery`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::segment::parse_segment_file_name;
use super::*;

fn open(dir: &Path) -> LocalWal {
    LocalWal::open(WalOptions::new(dir)).unwrap()
}

fn open_with_segment_bytes(dir: &Path, segment_bytes: u64) -> LocalWal {
    LocalWal::open(WalOptions {
        dir: dir.to_path_buf(),
        segment_bytes,
        sync: SyncPolicy::Always,
    })
    .unwrap()
}

fn payload(i: u64) -> Vec<u8> {
    format!("record-{i}").into_bytes()
}

fn append_n(wal: &LocalWal, range: std::ops::RangeInclusive<u64>) {
    for i in range {
        assert_eq!(wal.append(vec![payload(i)]).unwrap(), vec![i]);
    }
}

fn expected(range: std::ops::RangeInclusive<u64>) -> Vec<(Lsn, Vec<u8>)> {
    range.map(|i| (i, payload(i))).collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(parse_segment_file_name)
                .is_some()
        })
        .collect();
    files.sort();
    files
}

fn first_lsn_of(path: &Path) -> Lsn {
    parse_segment_file_name(path.file_name().unwrap().to_str().unwrap()).unwrap()
}

#[test]
fn append_reopen_read_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = open(dir.path());
        assert_eq!(wal.last_lsn(), 0);
        assert!(wal.read_from(1).unwrap().is_empty());
        assert_eq!(wal.append(Vec::new()).unwrap(), Vec::<Lsn>::new());
        assert_eq!(
            wal.append(vec![payload(1), payload(2), payload(3)])
                .unwrap(),
            vec![1, 2, 3]
        );
        append_n(&wal, 4..=10);
        assert_eq!(wal.last_lsn(), 10);
        assert_eq!(wal.read_from(0).unwrap(), expected(1..=10));
        assert_eq!(wal.read_from(7).unwrap(), expected(7..=10));
        assert!(wal.read_from(11).unwrap().is_empty());
        assert!(wal.read_from(u64::MAX).unwrap().is_empty());
        wal.close().unwrap();
    }
    let wal = open(dir.path());
    assert_eq!(wal.last_lsn(), 10);
    assert_eq!(wal.read_from(1).unwrap(), expected(1..=10));
    append_n(&wal, 11..=12);
    drop(wal); // Drop closes too.
    let wal = open(dir.path());
    assert_eq!(wal.read_from(1).unwrap(), expected(1..=12));
    assert_eq!(segment_files(dir.path()).len(), 1);
}

#[test]
fn empty_payloads_are_records() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    assert_eq!(
        wal.append(vec![Vec::new(), b"x".to_vec(), Vec::new()])
            .unwrap(),
        vec![1, 2, 3]
    );
    wal.close().unwrap();
    let wal = open(dir.path());
    assert_eq!(
        wal.read_from(1).unwrap(),
        vec![(1, Vec::new()), (2, b"x".to_vec()), (3, Vec::new())]
    );
}

#[test]
fn oversized_record_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    let err = wal
        .append(vec![b"ok".to_vec(), vec![0u8; MAX_RECORD_BYTES + 1]])
        .unwrap_err();
    assert!(matches!(err, StorageError::RecordTooLarge { .. }), "{err}");
    // Nothing from the rejected group was written; the WAL still works.
    assert_eq!(wal.append(vec![b"next".to_vec()]).unwrap(), vec![1]);
}

#[test]
fn segments_roll_and_truncate() {
    let dir = tempfile::tempdir().unwrap();
    // Each frame is 16 + 9 or 10 bytes; three frames fit in 8 + 3 * 26 < 100.
    let wal = open_with_segment_bytes(dir.path(), 100);
    append_n(&wal, 1..=30);
    let files = segment_files(dir.path());
    assert!(
        files.len() >= 8,
        "expected many segments, got {}",
        files.len()
    );
    assert_eq!(files.len(), wal.segment_count());
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len <= 100, "{} is {len} bytes", f.display());
    }
    assert_eq!(first_lsn_of(&files[0]), 1);
    assert_eq!(wal.read_from(1).unwrap(), expected(1..=30));

    wal.truncate_before(14).unwrap();
    let remaining = segment_files(dir.path());
    assert!(remaining.len() < files.len());
    let first = first_lsn_of(&remaining[0]);
    assert!(first <= 14, "segment holding lsn 14 must be kept");
    assert!(first > 1);
    // Every removed file held only records < 14.
    let second = first_lsn_of(&remaining[1]);
    assert!(second > 14);
    assert_eq!(wal.read_from(1).unwrap(), expected(first..=30));
    assert_eq!(wal.read_from(14).unwrap(), expected(14..=30));
    assert_eq!(wal.read_from(25).unwrap(), expected(25..=30));
    assert!(wal.read_from(31).unwrap().is_empty());

    // Truncating everything keeps the active segment.
    wal.truncate_before(u64::MAX).unwrap();
    let remaining = segment_files(dir.path());
    assert_eq!(remaining.len(), 1);
    let active_first = first_lsn_of(&remaining[0]);
    assert_eq!(wal.read_from(1).unwrap(), expected(active_first..=30));
    append_n(&wal, 31..=33);
    wal.close().unwrap();

    let wal = open_with_segment_bytes(dir.path(), 100);
    assert_eq!(wal.last_lsn(), 33);
    assert_eq!(wal.read_from(0).unwrap(), expected(active_first..=33));
    append_n(&wal, 34..=40);
    assert_eq!(wal.read_from(34).unwrap(), expected(34..=40));
}

#[test]
fn record_larger_than_segment_gets_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open_with_segment_bytes(dir.path(), 64);
    let big = vec![7u8; 500];
    assert_eq!(wal.append(vec![b"a".to_vec()]).unwrap(), vec![1]);
    assert_eq!(wal.append(vec![big.clone()]).unwrap(), vec![2]);
    assert_eq!(wal.append(vec![b"b".to_vec()]).unwrap(), vec![3]);
    assert_eq!(segment_files(dir.path()).len(), 3);
    wal.close().unwrap();
    let wal = open_with_segment_bytes(dir.path(), 64);
    let all = wal.read_from(1).unwrap();
    assert_eq!(all[1], (2, big));
    assert_eq!(all.len(), 3);
}

#[test]
fn unrelated_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.txt"), b"hello").unwrap();
    std::fs::write(dir.path().join("wal-1.log"), b"not ours").unwrap();
    let wal = open(dir.path());
    append_n(&wal, 1..=2);
    wal.close().unwrap();
    assert_eq!(open(dir.path()).read_from(1).unwrap(), expected(1..=2));
}

#[test]
fn close_then_append_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    append_n(&wal, 1..=2);
    wal.close().unwrap();
    assert!(matches!(
        wal.append(vec![b"late".to_vec()]),
        Err(StorageError::Closed)
    ));
    wal.close().unwrap();
    // Reads still work on a closed log.
    assert_eq!(wal.read_from(1).unwrap(), expected(1..=2));
    assert_eq!(wal.last_lsn(), 2);
}

#[test]
fn concurrent_appends_share_fsyncs() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(open(dir.path()));
    let before = wal.fsync_count();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                let mut lsns = Vec::new();
                for i in 0..PER_THREAD {
                    let rec = format!("t{t}-{i}").into_bytes();
                    let got = wal.append(vec![rec]).unwrap();
                    assert_eq!(got.len(), 1);
                    lsns.push(got[0]);
                }
                lsns
            })
        })
        .collect();
    let mut all = Vec::new();
    for (t, h) in handles.into_iter().enumerate() {
        let lsns = h.join().unwrap();
        assert!(
            lsns.windows(2).all(|w| w[0] < w[1]),
            "thread {t} out of order"
        );
        all.extend(lsns);
    }
    let total = THREADS * PER_THREAD;
    all.sort_unstable();
    assert_eq!(all, (1..=total).collect::<Vec<_>>());
    let fsyncs = wal.fsync_count() - before;
    assert!(fsyncs < total, "{fsyncs} fsyncs for {total} appends");
    assert!(fsyncs > 0);

    // Every record is in the log, each thread's records in its own order.
    let records = wal.read_from(1).unwrap();
    assert_eq!(records.len() as u64, total);
    let mut next_per_thread = vec![0u64; THREADS as usize];
    for (_, rec) in records {
        let s = String::from_utf8(rec).unwrap();
        let (t, i) = s[1..].split_once('-').unwrap();
        let (t, i): (usize, u64) = (t.parse().unwrap(), i.parse().unwrap());
        assert_eq!(next_per_thread[t], i);
        next_per_thread[t] += 1;
    }
    eprintln!("group commit: {fsyncs} fsyncs for {total} appends");
}

#[test]
fn concurrent_append_read_truncate() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(open_with_segment_bytes(dir.path(), 512));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|_| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                for _ in 0..150 {
                    wal.append(vec![vec![1u8; 20], vec![2u8; 5]]).unwrap();
                }
            })
        })
        .collect();
    let reader = {
        let wal = Arc::clone(&wal);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || rounds == 0 {
                let upto = wal.last_lsn();
                let from = upto.saturating_sub(40);
                let recs = wal.read_from(from).unwrap();
                if upto > 0 {
                    assert!(recs.last().unwrap().0 >= upto);
                    assert!(recs.windows(2).all(|w| w[1].0 == w[0].0 + 1));
                }
                wal.truncate_before(from).unwrap();
                rounds += 1;
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
    assert_eq!(wal.last_lsn(), 3 * 150 * 2);
    let tail = wal.read_from(880).unwrap();
    assert_eq!(tail.len(), 21);
}

#[test]
fn sync_never_policy_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        sync: SyncPolicy::Never,
        ..WalOptions::new(dir.path())
    };
    let wal = LocalWal::open(opts.clone()).unwrap();
    let before = wal.fsync_count();
    append_n(&wal, 1..=20);
    assert_eq!(wal.fsync_count(), before);
    wal.close().unwrap();
    assert_eq!(wal.fsync_count(), before + 1);
    let wal = LocalWal::open(opts).unwrap();
    assert_eq!(wal.read_from(1).unwrap(), expected(1..=20));
}

mod recovery;
