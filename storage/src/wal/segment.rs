//! On-disk format of WAL segment files and the frame scanner shared by
//! recovery and reads.
//!
//! A segment file is named `wal-<first lsn, 20 digits>.log` and consists of
//! an 8-byte header (`b"QWAL"` magic followed by a little-endian `u32` format
//! version) and a sequence of frames:
//!
//! ```text
//! [u32 payload len][u32 crc32(lsn bytes ++ payload)][u64 lsn][payload]
//! ```
//!
//! All integers are little endian. LSNs inside a file are consecutive,
//! starting at the LSN in the file name.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::Range;
use std::path::Path;

use super::types::Lsn;

/// Magic bytes at the start of every segment file.
pub(crate) const MAGIC: [u8; 4] = *b"QWAL";
/// Current on-disk format version.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Length of the segment header.
pub(crate) const HEADER_LEN: u64 = 8;
/// Length of a frame header (len + crc + lsn).
pub(crate) const FRAME_HEADER_LEN: usize = 16;
/// Largest payload accepted by the WAL (256 MiB).
pub const MAX_RECORD_BYTES: usize = 256 << 20;

/// The 8-byte header written at the start of every segment.
pub(crate) fn header_bytes() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..4].copy_from_slice(&MAGIC);
    h[4..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// File name of the segment whose first record has LSN `first_lsn`.
pub(crate) fn segment_file_name(first_lsn: Lsn) -> String {
    format!("wal-{first_lsn:020}.log")
}

/// Inverse of [`segment_file_name`]; `None` for any other file name.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn frame_crc(lsn: Lsn, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&lsn.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Appends the encoded frame for (`lsn`, `payload`) to `buf`.
///
/// The caller guarantees `payload.len() <= MAX_RECORD_BYTES`.
pub(crate) fn encode_frame(buf: &mut Vec<u8>, lsn: Lsn, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_RECORD_BYTES);
    buf.reserve(FRAME_HEADER_LEN + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&frame_crc(lsn, payload).to_le_bytes());
    buf.extend_from_slice(&lsn.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Encoded size of a frame carrying `payload_len` bytes.
pub(crate) fn frame_len(payload_len: usize) -> u64 {
    (FRAME_HEADER_LEN + payload_len) as u64
}

/// State of a segment's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderState {
    Valid,
    /// Shorter than a header, or all zeros: a file whose creation was cut
    /// short by a crash.
    Missing,
    /// Present but not a header we understand.
    Invalid(String),
}

/// One valid frame found by [`scan_segment`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub lsn: Lsn,
    /// Byte range of the payload within the scanned buffer.
    pub payload: Range<usize>,
}

/// Result of scanning one segment's bytes.
#[derive(Debug)]
pub(crate) struct ScanOutcome {
    pub header: HeaderState,
    pub frames: Vec<Frame>,
    /// End offset of the last valid frame (or of the header).
    pub valid_end: u64,
    /// First invalid byte range found, as (offset, reason). `None` when the
    /// scan ended exactly at end of data or at the LSN limit.
    pub problem: Option<(u64, String)>,
    /// The scan stopped because the frame with LSN `limit` was consumed.
    pub reached_limit: bool,
}

fn read_u32(data: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&data[at..at + 4]);
    u32::from_le_bytes(b)
}

fn read_u64(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&data[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Validates the header and frames of a segment whose name says its first
/// LSN is `first_lsn`, stopping after the frame with LSN `limit` (use
/// `Lsn::MAX` for no limit), at end of data, or at the first invalid frame.
/// Never panics, whatever `data` contains.
pub(crate) fn scan_segment(data: &[u8], first_lsn: Lsn, limit: Lsn) -> ScanOutcome {
    let mut out = ScanOutcome {
        header: HeaderState::Valid,
        frames: Vec::new(),
        valid_end: 0,
        problem: None,
        reached_limit: false,
    };
    let header_len = HEADER_LEN as usize;
    if data.len() < header_len || data[..header_len].iter().all(|&b| b == 0) {
        out.header = HeaderState::Missing;
        if !data.is_empty() {
            out.problem = Some((0, "missing or torn segment header".to_string()));
        }
        return out;
    }
    if data[..4] != MAGIC {
        out.header = HeaderState::Invalid("bad magic, not a WAL segment".to_string());
        out.problem = Some((0, "bad magic".to_string()));
        return out;
    }
    let version = read_u32(data, 4);
    if version != FORMAT_VERSION {
        let reason = format!("unsupported WAL format version {version}");
        out.header = HeaderState::Invalid(reason.clone());
        out.problem = Some((0, reason));
        return out;
    }

    let mut pos = header_len;
    let mut expected = first_lsn;
    loop {
        if pos == data.len() {
            break;
        }
        if expected > limit {
            out.reached_limit = true;
            break;
        }
        let remaining = data.len() - pos;
        if remaining < FRAME_HEADER_LEN {
            out.problem = Some((pos as u64, "truncated frame header".to_string()));
            break;
        }
        let len = read_u32(data, pos) as usize;
        if len > MAX_RECORD_BYTES {
            out.problem = Some((pos as u64, format!("frame length {len} exceeds maximum")));
            break;
        }
        if remaining - FRAME_HEADER_LEN < len {
            out.problem = Some((pos as u64, "truncated frame payload".to_string()));
            break;
        }
        let crc = read_u32(data, pos + 4);
        let lsn = read_u64(data, pos + 8);
        let payload = pos + FRAME_HEADER_LEN..pos + FRAME_HEADER_LEN + len;
        if frame_crc(lsn, &data[payload.clone()]) != crc {
            out.problem = Some((pos as u64, "frame checksum mismatch".to_string()));
            break;
        }
        if lsn != expected {
            out.problem = Some((pos as u64, format!("expected lsn {expected}, found {lsn}")));
            break;
        }
        out.frames.push(Frame { lsn, payload });
        pos += FRAME_HEADER_LEN + len;
        match expected.checked_add(1) {
            Some(next) => expected = next,
            None => {
                out.reached_limit = true;
                break;
            }
        }
    }
    out.valid_end = pos as u64;
    out
}

/// Creates a new segment file (failing if it exists), writes its header and
/// syncs it. The caller is responsible for syncing the directory.
pub(crate) fn create_segment(path: &Path) -> io::Result<File> {
    let mut file = crate::private::create_private_file(
        OpenOptions::new().read(true).write(true).create_new(true),
        path,
    )?;
    file.write_all(&header_bytes())?;
    file.sync_data()?;
    Ok(file)
}

/// Makes directory entry changes (creates, deletes) in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: &[(Lsn, &[u8])]) -> Vec<u8> {
        let mut buf = header_bytes().to_vec();
        for (lsn, payload) in records {
            encode_frame(&mut buf, *lsn, payload);
        }
        buf
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(segment_file_name(1), "wal-00000000000000000001.log");
        assert_eq!(parse_segment_file_name(&segment_file_name(42)), Some(42));
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_file_name("wal-1.log"), None);
        assert_eq!(
            parse_segment_file_name("wal-0000000000000000000x.log"),
            None
        );
        assert_eq!(
            parse_segment_file_name("wal-99999999999999999999.log"),
            None
        );
        assert_eq!(parse_segment_file_name("other.txt"), None);
    }

    #[test]
    fn scan_valid_segment() {
        let data = segment(&[(5, b"a"), (6, b""), (7, b"ccc")]);
        let scan = scan_segment(&data, 5, Lsn::MAX);
        assert_eq!(scan.header, HeaderState::Valid);
        assert_eq!(scan.problem, None);
        assert!(!scan.reached_limit);
        assert_eq!(scan.valid_end, data.len() as u64);
        let lsns: Vec<_> = scan.frames.iter().map(|f| f.lsn).collect();
        assert_eq!(lsns, vec![5, 6, 7]);
        assert_eq!(&data[scan.frames[2].payload.clone()], b"ccc");

        let limited = scan_segment(&data, 5, 6);
        assert!(limited.reached_limit);
        assert_eq!(limited.frames.len(), 2);
    }

    #[test]
    fn scan_detects_problems() {
        let data = segment(&[(1, b"hello"), (2, b"world")]);
        let second = HEADER_LEN as usize + FRAME_HEADER_LEN + 5;

        // Wrong starting LSN.
        let scan = scan_segment(&data, 2, Lsn::MAX);
        assert_eq!(scan.problem.unwrap().0, HEADER_LEN);

        // Torn second frame.
        let scan = scan_segment(&data[..data.len() - 1], 1, Lsn::MAX);
        assert_eq!(scan.frames.len(), 1);
        assert_eq!(scan.valid_end, second as u64);
        assert!(scan.problem.is_some());

        // Huge length field.
        let mut bad = data.clone();
        bad[second..second + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let scan = scan_segment(&bad, 1, Lsn::MAX);
        assert_eq!(scan.frames.len(), 1);
        assert!(scan.problem.unwrap().1.contains("exceeds"));

        // Header states.
        assert_eq!(scan_segment(&[], 1, Lsn::MAX).header, HeaderState::Missing);
        assert_eq!(
            scan_segment(b"QW", 1, Lsn::MAX).header,
            HeaderState::Missing
        );
        assert_eq!(
            scan_segment(&[0u8; 64], 1, Lsn::MAX).header,
            HeaderState::Missing
        );
        assert!(matches!(
            scan_segment(b"NOTAWALFILE", 1, Lsn::MAX).header,
            HeaderState::Invalid(_)
        ));
        let mut v2 = data;
        v2[4] = 2;
        assert!(matches!(
            scan_segment(&v2, 1, Lsn::MAX).header,
            HeaderState::Invalid(_)
        ));
    }

    #[test]
    fn scan_never_panics_on_lsn_overflow() {
        let data = segment(&[(u64::MAX, b"x")]);
        let scan = scan_segment(&data, u64::MAX, Lsn::MAX);
        assert_eq!(scan.frames.len(), 1);
        assert!(scan.reached_limit);
    }
}
