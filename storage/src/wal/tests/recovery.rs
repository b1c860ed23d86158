//! Recovery tests: torn, garbage and corrupt segment files.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::super::segment::{segment_file_name, FRAME_HEADER_LEN, HEADER_LEN};
use super::{
    append_n, expected, first_lsn_of, open, open_with_segment_bytes, payload, segment_files,
};
use crate::wal::{LocalWal, Lsn, Wal, WalOptions};
use crate::StorageError;

/// Small deterministic xorshift64* generator.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-ish value in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Writes records 1..=n with a single segment and returns the file path,
/// its bytes and the start offset of each frame.
fn single_segment_log(dir: &Path, n: u64) -> (PathBuf, Vec<u8>, Vec<u64>) {
    let wal = open(dir);
    append_n(&wal, 1..=n);
    wal.close().unwrap();
    let files = segment_files(dir);
    assert_eq!(files.len(), 1);
    let bytes = std::fs::read(&files[0]).unwrap();
    let mut offsets = Vec::new();
    let mut pos = HEADER_LEN;
    for i in 1..=n {
        offsets.push(pos);
        pos += (FRAME_HEADER_LEN + payload(i).len()) as u64;
    }
    assert_eq!(pos, bytes.len() as u64);
    (files[0].clone(), bytes, offsets)
}

#[test]
fn torn_tail_at_every_offset_of_last_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes, offsets) = single_segment_log(dir.path(), 5);
    let last_start = offsets[4] as usize;
    for cut in last_start..bytes.len() {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let wal = open(dir.path());
        assert_eq!(wal.last_lsn(), 4, "cut at {cut}");
        assert_eq!(wal.read_from(1).unwrap(), expected(1..=4));
        // The torn bytes are gone and appending continues at lsn 5.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), last_start as u64);
        assert_eq!(wal.append(vec![b"new".to_vec()]).unwrap(), vec![5]);
        wal.close().unwrap();
        let wal = open(dir.path());
        let all = wal.read_from(1).unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all[4], (5, b"new".to_vec()));
        wal.close().unwrap();
    }
}

#[test]
fn garbage_after_last_frame_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = single_segment_log(dir.path(), 3);
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[0xAB; 37]).unwrap();
    drop(f);
    let wal = open(dir.path());
    assert_eq!(wal.read_from(1).unwrap(), expected(1..=3));
    append_n(&wal, 4..=6);
    wal.close().unwrap();
    assert_eq!(open(dir.path()).read_from(1).unwrap(), expected(1..=6));
}

#[test]
fn zeroed_tail_is_dropped() {
    // Some filesystems leave zero-filled blocks after a crash.
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = single_segment_log(dir.path(), 3);
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[0u8; 4096]).unwrap();
    drop(f);
    let wal = open(dir.path());
    assert_eq!(wal.read_from(1).unwrap(), expected(1..=3));
    assert_eq!(wal.append(vec![payload(4)]).unwrap(), vec![4]);
}

#[test]
fn flipped_byte_drops_that_record_and_later() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes, offsets) = single_segment_log(dir.path(), 6);

    // Flip a payload byte of the last frame.
    let mut damaged = bytes.clone();
    let idx = offsets[5] as usize + FRAME_HEADER_LEN + 2;
    damaged[idx] ^= 0x40;
    std::fs::write(&path, &damaged).unwrap();
    let wal = open(dir.path());
    assert_eq!(wal.read_from(1).unwrap(), expected(1..=5));
    assert_eq!(wal.append(vec![payload(6)]).unwrap(), vec![6]);
    wal.close().unwrap();

    // Flip a byte in the middle frame of the (last) file: it and every
    // later record are treated as the torn tail.
    let mut damaged = bytes.clone();
    damaged[offsets[2] as usize + FRAME_HEADER_LEN] ^= 0x01;
    std::fs::write(&path, &damaged).unwrap();
    let wal = open(dir.path());
    assert_eq!(wal.read_from(1).unwrap(), expected(1..=2));
    assert_eq!(wal.last_lsn(), 2);
    assert_eq!(wal.append(vec![payload(3)]).unwrap(), vec![3]);

    // A huge length field never panics.
    wal.close().unwrap();
    let mut damaged = bytes;
    let at = offsets[4] as usize;
    damaged[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&path, &damaged).unwrap();
    let wal = open(dir.path());
    assert_eq!(wal.read_from(1).unwrap(), expected(1..=4));
}

#[test]
fn corrupt_middle_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open_with_segment_bytes(dir.path(), 100);
    append_n(&wal, 1..=12);
    wal.close().unwrap();
    drop(wal);
    let files = segment_files(dir.path());
    assert!(files.len() >= 3);
    let victim = &files[1];
    let original = std::fs::read(victim).unwrap();

    let mut damaged = original.clone();
    let idx = HEADER_LEN as usize + FRAME_HEADER_LEN + 1;
    damaged[idx] ^= 0xFF;
    std::fs::write(victim, &damaged).unwrap();
    match LocalWal::open(WalOptions::new(dir.path())) {
        Err(StorageError::Corrupt { file, offset, .. }) => {
            assert_eq!(file, victim.file_name().unwrap().to_str().unwrap());
            assert_eq!(offset, HEADER_LEN);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }

    // A truncated middle segment is corruption too, not a torn tail.
    std::fs::write(victim, &original[..original.len() - 3]).unwrap();
    assert!(matches!(
        LocalWal::open(WalOptions::new(dir.path())),
        Err(StorageError::Corrupt { .. })
    ));

    // So is a missing middle segment (gap in LSNs).
    std::fs::remove_file(victim).unwrap();
    assert!(matches!(
        LocalWal::open(WalOptions::new(dir.path())),
        Err(StorageError::Corrupt { .. })
    ));

    // Restored, everything is readable again.
    std::fs::write(victim, &original).unwrap();
    let wal = open(dir.path());
    assert_eq!(wal.read_from(1).unwrap(), expected(1..=12));
}

#[test]
fn bad_magic_in_last_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut bytes, _) = single_segment_log(dir.path(), 2);
    bytes[0] = b'X';
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        LocalWal::open(WalOptions::new(dir.path())),
        Err(StorageError::Corrupt { offset: 0, .. })
    ));
}

#[test]
fn empty_or_torn_header_last_segment_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    append_n(&wal, 1..=3);
    wal.close().unwrap();
    drop(wal);
    // Simulate a crash right after a roll created the next file.
    let next = dir.path().join(segment_file_name(4));
    for contents in [&b""[..], &b"QW"[..], &[0u8; 8][..], &[0u8; 100][..]] {
        std::fs::write(&next, contents).unwrap();
        let wal = open(dir.path());
        assert_eq!(wal.last_lsn(), 3);
        assert_eq!(wal.read_from(1).unwrap(), expected(1..=3));
        assert_eq!(std::fs::metadata(&next).unwrap().len(), HEADER_LEN);
        wal.close().unwrap();
    }
    let wal = open(dir.path());
    append_n(&wal, 4..=5);
    assert_eq!(wal.read_from(1).unwrap(), expected(1..=5));
    assert_eq!(segment_files(dir.path()).len(), 2);

    // A zero-length only file is fine as well.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(segment_file_name(1)), b"").unwrap();
    let wal = open(dir.path());
    assert_eq!(wal.append(vec![payload(1)]).unwrap(), vec![1]);
}

/// Random logs (possibly spanning segments) whose last file is cut at a
/// random offset or overwritten with random garbage after its header.
#[test]
fn randomized_tail_damage_recovers_prefix() {
    let mut rng = Rng::new(0x5eed_1234_abcd_0001);
    for iteration in 0..60 {
        let dir = tempfile::tempdir().unwrap();
        let segment_bytes = 200 + rng.below(600);
        let count = 1 + rng.below(30);
        let records: Vec<Vec<u8>> = (0..count)
            .map(|_| {
                let len = rng.below(120) as usize;
                (0..len).map(|_| rng.next_u64() as u8).collect()
            })
            .collect();
        {
            let wal = open_with_segment_bytes(dir.path(), segment_bytes);
            let mut i = 0;
            while i < records.len() {
                let group = 1 + rng.below(4) as usize;
                let end = (i + group).min(records.len());
                let lsns = wal.append(records[i..end].to_vec()).unwrap();
                assert_eq!(lsns[0], i as u64 + 1);
                i = end;
            }
            wal.close().unwrap();
        }

        let files = segment_files(dir.path());
        let last = files.last().unwrap().clone();
        let first_in_last = first_lsn_of(&last);
        let bytes = std::fs::read(&last).unwrap();
        // End offsets of the frames in the last file.
        let mut ends = Vec::new();
        let mut pos = HEADER_LEN;
        for rec in &records[(first_in_last - 1) as usize..] {
            pos += (FRAME_HEADER_LEN + rec.len()) as u64;
            ends.push(pos);
        }
        assert_eq!(pos, bytes.len() as u64, "iteration {iteration}");

        let damage_from = if rng.below(2) == 0 {
            let cut = rng.below(bytes.len() as u64 + 1);
            std::fs::write(&last, &bytes[..cut as usize]).unwrap();
            cut
        } else {
            let mut damaged = bytes.clone();
            let start = HEADER_LEN + rng.below(bytes.len() as u64 - HEADER_LEN + 1);
            let garbage = 1 + rng.below(64);
            damaged.truncate(start as usize);
            damaged.extend((0..garbage).map(|_| rng.next_u64() as u8));
            let first_diff = damaged
                .iter()
                .zip(&bytes)
                .position(|(a, b)| a != b)
                .map(|p| p as u64)
                .unwrap_or(damaged.len().min(bytes.len()) as u64);
            std::fs::write(&last, &damaged).unwrap();
            first_diff
        };
        let survivors_in_last = ends.iter().filter(|&&e| e <= damage_from).count() as u64;
        let expect_last = if damage_from < HEADER_LEN {
            first_in_last - 1
        } else {
            first_in_last - 1 + survivors_in_last
        };

        let wal = open_with_segment_bytes(dir.path(), segment_bytes);
        assert_eq!(wal.last_lsn(), expect_last, "iteration {iteration}");
        let got = wal.read_from(1).unwrap();
        let want: Vec<(Lsn, Vec<u8>)> = records[..expect_last as usize]
            .iter()
            .enumerate()
            .map(|(i, r)| (i as u64 + 1, r.clone()))
            .collect();
        assert_eq!(got, want, "iteration {iteration}");
        assert_eq!(
            wal.append(vec![b"after".to_vec()]).unwrap(),
            vec![expect_last + 1]
        );
        wal.close().unwrap();
        let wal = open_with_segment_bytes(dir.path(), segment_bytes);
        assert_eq!(wal.last_lsn(), expect_last + 1);
        assert_eq!(wal.read_from(expect_last + 1).unwrap().len(), 1);
    }
}
