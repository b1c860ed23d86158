//! Opening a WAL directory: discovering segments, validating every frame and
//! repairing a torn tail left by a crash.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::segment::{
    create_segment, header_bytes, parse_segment_file_name, scan_segment, segment_file_name,
    sync_dir, HeaderState, HEADER_LEN,
};
use super::types::Lsn;
use crate::error::{Result, StorageError};

/// A segment file known to the WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentInfo {
    pub first_lsn: Lsn,
    pub path: PathBuf,
}

/// Everything the writer needs to continue after recovery.
pub(crate) struct Recovered {
    pub segments: Vec<SegmentInfo>,
    /// Open handle on the last segment, positioned at its end.
    pub active: File,
    pub active_len: u64,
    /// LSN of the last valid record (0 if the log is empty).
    pub last_lsn: Lsn,
    /// Data fsyncs issued during recovery.
    pub fsyncs: u64,
}

pub(crate) fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt {
        file: display_name(path),
        offset,
        reason: reason.into(),
    }
}

/// Lists the segment files in `dir`, sorted by first LSN.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<SegmentInfo>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(first_lsn) = name.to_str().and_then(parse_segment_file_name) else {
            tracing::debug!(file = ?name, "ignoring non-segment file in WAL directory");
            continue;
        };
        if !entry.file_type()?.is_file() {
            continue;
        }
        segments.push(SegmentInfo {
            first_lsn,
            path: entry.path(),
        });
    }
    segments.sort_by_key(|s| s.first_lsn);
    Ok(segments)
}

/// Opens the WAL in `dir` (creating the directory and a first segment if
/// needed), validates all segments and truncates a torn tail of the last one.
pub(crate) fn recover(dir: &Path) -> Result<Recovered> {
    crate::private::create_private_dir_all(dir)?;
    let mut segments = list_segments(dir)?;
    let mut fsyncs = 0;

    if segments.is_empty() {
        let path = dir.join(segment_file_name(1));
        let file = create_segment(&path)?;
        fsyncs += 1;
        sync_dir(dir)?;
        segments.push(SegmentInfo { first_lsn: 1, path });
        return Ok(Recovered {
            segments,
            active: file,
            active_len: HEADER_LEN,
            last_lsn: 0,
            fsyncs,
        });
    }

    let mut last_lsn: Lsn = 0;
    let mut active_len = HEADER_LEN;
    let count = segments.len();
    for (i, seg) in segments.iter().enumerate() {
        let is_last = i + 1 == count;
        if seg.first_lsn == 0 {
            return Err(corrupt(&seg.path, 0, "segment first lsn is 0"));
        }
        if i > 0 && Some(seg.first_lsn) != last_lsn.checked_add(1) {
            return Err(corrupt(
                &seg.path,
                0,
                format!(
                    "gap in log: previous segment ends at lsn {last_lsn}, this one starts at {}",
                    seg.first_lsn
                ),
            ));
        }

        let mut data = Vec::new();
        File::open(&seg.path)?.read_to_end(&mut data)?;
        let scan = scan_segment(&data, seg.first_lsn, Lsn::MAX);
        last_lsn = seg.first_lsn - 1 + scan.frames.len() as u64;

        if !is_last {
            if let HeaderState::Invalid(reason) = &scan.header {
                return Err(corrupt(&seg.path, 0, reason.clone()));
            }
            if scan.header == HeaderState::Missing {
                return Err(corrupt(&seg.path, 0, "missing segment header"));
            }
            if let Some((offset, reason)) = scan.problem {
                return Err(corrupt(&seg.path, offset, reason));
            }
            continue;
        }

        match scan.header {
            HeaderState::Invalid(reason) => return Err(corrupt(&seg.path, 0, reason)),
            HeaderState::Missing => {
                // Crash while the segment was being created: rewrite it.
                if !data.is_empty() {
                    tracing::warn!(file = %seg.path.display(), "rewriting torn WAL segment header");
                }
                let mut file = OpenOptions::new().write(true).open(&seg.path)?;
                file.set_len(0)?;
                file.write_all(&header_bytes())?;
                file.sync_data()?;
                fsyncs += 1;
                active_len = HEADER_LEN;
            }
            HeaderState::Valid => {
                if let Some((offset, reason)) = &scan.problem {
                    tracing::warn!(
                        file = %seg.path.display(),
                        offset,
                        reason = %reason,
                        dropped_bytes = data.len() as u64 - scan.valid_end,
                        "truncating torn WAL tail"
                    );
                    let file = OpenOptions::new().write(true).open(&seg.path)?;
                    file.set_len(scan.valid_end)?;
                    file.sync_data()?;
                    fsyncs += 1;
                }
                active_len = scan.valid_end;
            }
        }
    }

    let last = segments.last().expect("segments is non-empty");
    let mut active = OpenOptions::new().read(true).write(true).open(&last.path)?;
    active.seek(SeekFrom::Start(active_len))?;
    Ok(Recovered {
        segments,
        active,
        active_len,
        last_lsn,
        fsyncs,
    })
}
