//! Write-ahead log.
//!
//! Records are opaque byte payloads; the log assigns each a strictly
//! increasing [`Lsn`] starting at 1. [`LocalWal`] stores the log as
//! segment files `wal-<first lsn, 20 digits>.log` in a local directory.
//! Each file starts with an 8-byte header (`b"QWAL"` + `u32` version) followed
//! by frames `[u32 len][u32 crc32(lsn ++ payload)][u64 lsn][payload]`
//! (little endian).
//!
//! Concurrent appends are committed in groups: a dedicated writer thread
//! drains every queued request, writes all frames, issues one `fsync` and
//! only then acknowledges the callers.
//!
//! On open, every segment is validated. A torn or corrupt tail in the last
//! segment (a crash mid-write) is truncated away; damage anywhere else is
//! reported as [`StorageError::Corrupt`].

mod object_wal;
mod recovery;
mod segment;
mod types;
mod writer;

#[cfg(test)]
mod object_wal_tests;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use parking_lot::{Mutex, RwLock};

use crate::error::{Result, StorageError};
pub use object_wal::{ObjectWal, ObjectWalOptions};
use recovery::display_name;
pub use segment::MAX_RECORD_BYTES;
use segment::{scan_segment, HeaderState};
pub use types::{Lsn, SyncPolicy};
use writer::{Msg, Shared, Writer};

/// Default size past which the active segment is rolled (64 MiB).
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// Configuration for [`LocalWal::open`].
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Directory holding the segment files (created if missing).
    pub dir: PathBuf,
    /// The active segment is rolled to a new file when a frame would take
    /// it past this size (a single oversized record gets a file of its own).
    pub segment_bytes: u64,
    pub sync: SyncPolicy,
}

impl WalOptions {
    /// Options with default segment size and [`SyncPolicy::Always`].
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            sync: SyncPolicy::Always,
        }
    }
}

/// A write-ahead log.
pub trait Wal: Send + Sync + 'static {
    /// Appends records as one group; returns the LSN of each, only after
    /// they are durable per the sync policy. Blocking; safe to call from
    /// many threads at once (concurrent callers share fsyncs).
    ///
    /// If an error is returned the records may or may not have reached the
    /// log.
    fn append(&self, records: Vec<Vec<u8>>) -> Result<Vec<Lsn>>;

    /// Every durable record with lsn >= `from`, in order (used at startup
    /// replay). Records in segments removed by
    /// [`truncate_before`](Wal::truncate_before) are no longer returned.
    fn read_from(&self, from: Lsn) -> Result<Vec<(Lsn, Vec<u8>)>>;

    /// Allows deleting whole segment files all of whose records have
    /// lsn < `upto`. Never deletes the active file.
    fn truncate_before(&self, upto: Lsn) -> Result<()>;

    /// LSN of the last durable record (0 if the log is empty).
    fn last_lsn(&self) -> Lsn;

    /// Flush + fsync + stop the writer; further appends return
    /// [`StorageError::Closed`]. Closing twice is a no-op.
    fn close(&self) -> Result<()>;
}

/// [`Wal`] stored as segment files in a local directory.
///
/// Only one `LocalWal` may have a given directory open at a time.
pub struct LocalWal {
    shared: Arc<Shared>,
    sender: RwLock<Option<mpsc::Sender<Msg>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for LocalWal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalWal")
            .field("dir", &self.shared.dir)
            .field("last_lsn", &self.last_lsn())
            .finish()
    }
}

impl LocalWal {
    /// Opens (or creates) the log in `opts.dir`, running recovery, and
    /// starts the writer thread.
    pub fn open(opts: WalOptions) -> Result<Self> {
        let recovered = recovery::recover(&opts.dir)?;
        tracing::debug!(
            dir = %opts.dir.display(),
            segments = recovered.segments.len(),
            last_lsn = recovered.last_lsn,
            "opened WAL"
        );
        let shared = Arc::new(Shared {
            dir: opts.dir.clone(),
            segments: Mutex::new(recovered.segments),
            last_lsn: AtomicU64::new(recovered.last_lsn),
            fsyncs: AtomicU64::new(recovered.fsyncs),
        });
        let writer = Writer {
            shared: Arc::clone(&shared),
            file: recovered.active,
            active_len: recovered.active_len,
            next_lsn: recovered.last_lsn + 1,
            segment_bytes: opts.segment_bytes,
            sync: opts.sync,
            buf: Vec::new(),
            failed: None,
        };
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("quiver-wal-writer".to_string())
            .spawn(move || writer.run(rx))?;
        Ok(Self {
            shared,
            sender: RwLock::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
        })
    }

    /// Number of data fsyncs issued on segment files so far (including
    /// recovery and segment rolls). For tests and metrics.
    pub fn fsync_count(&self) -> u64 {
        self.shared.fsyncs.load(Ordering::Relaxed)
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Number of segment files currently retained.
    pub fn segment_count(&self) -> usize {
        self.shared.segments.lock().len()
    }
}

impl Wal for LocalWal {
    fn append(&self, records: Vec<Vec<u8>>) -> Result<Vec<Lsn>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(big) = records.iter().find(|r| r.len() > MAX_RECORD_BYTES) {
            return Err(StorageError::RecordTooLarge {
                size: big.len(),
                max: MAX_RECORD_BYTES,
            });
        }
        let (reply, answer) = mpsc::sync_channel(1);
        {
            let sender = self.sender.read();
            let sender = sender.as_ref().ok_or(StorageError::Closed)?;
            sender
                .send(Msg::Append { records, reply })
                .map_err(|_| StorageError::Closed)?;
        }
        answer.recv().map_err(|_| StorageError::Closed)?
    }

    fn read_from(&self, from: Lsn) -> Result<Vec<(Lsn, Vec<u8>)>> {
        // Everything up to `upto` is fully written; frames after it may be
        // in flight and are not looked at.
        let upto = self.shared.last_lsn.load(Ordering::Acquire);
        let from = from.max(1);
        if from > upto {
            return Ok(Vec::new());
        }
        // Open the files while holding the segment lock so a concurrent
        // truncate_before cannot delete them between listing and opening.
        let files = {
            let segments = self.shared.segments.lock();
            let start = segments
                .partition_point(|s| s.first_lsn <= from)
                .saturating_sub(1);
            segments[start..]
                .iter()
                .filter(|s| s.first_lsn <= upto)
                .map(|s| Ok((s.clone(), File::open(&s.path)?)))
                .collect::<Result<Vec<_>>>()?
        };

        let mut out = Vec::new();
        let mut last_seen: Option<Lsn> = None;
        for (seg, mut file) in files {
            let mut data = Vec::new();
            file.read_to_end(&mut data)?;
            let scan = scan_segment(&data, seg.first_lsn, upto);
            let corrupt = |offset: u64, reason: String| StorageError::Corrupt {
                file: display_name(&seg.path),
                offset,
                reason,
            };
            if scan.header != HeaderState::Valid {
                return Err(corrupt(0, "invalid segment header".to_string()));
            }
            if let (Some(prev), Some(first)) = (last_seen, scan.frames.first()) {
                if first.lsn != prev + 1 {
                    return Err(corrupt(0, format!("expected lsn {}", prev + 1)));
                }
            }
            for frame in &scan.frames {
                if frame.lsn >= from {
                    out.push((frame.lsn, data[frame.payload.clone()].to_vec()));
                }
            }
            if let Some(f) = scan.frames.last() {
                last_seen = Some(f.lsn);
            }
            if last_seen >= Some(upto) {
                break;
            }
            if let Some((offset, reason)) = scan.problem {
                return Err(corrupt(offset, reason));
            }
        }
        if last_seen != Some(upto) {
            return Err(StorageError::Corrupt {
                file: display_name(&self.shared.dir),
                offset: 0,
                reason: format!(
                    "log ends at lsn {} but lsn {upto} was acknowledged",
                    last_seen.unwrap_or(0)
                ),
            });
        }
        Ok(out)
    }

    fn truncate_before(&self, upto: Lsn) -> Result<()> {
        let mut segments = self.shared.segments.lock();
        let mut removed = 0usize;
        let mut result = Ok(());
        // segments[0] may go only if the next segment starts at or below
        // `upto`, i.e. all its records are < upto. The last (active) segment
        // is never removed.
        while segments.len() > 1 && segments[1].first_lsn <= upto {
            match std::fs::remove_file(&segments[0].path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    result = Err(e.into());
                    break;
                }
            }
            segments.remove(0);
            removed += 1;
        }
        if removed > 0 {
            tracing::debug!(removed, upto, "truncated WAL segments");
            segment::sync_dir(&self.shared.dir)?;
        }
        result
    }

    fn last_lsn(&self) -> Lsn {
        self.shared.last_lsn.load(Ordering::Acquire)
    }

    fn close(&self) -> Result<()> {
        let Some(sender) = self.sender.write().take() else {
            return Ok(());
        };
        let (reply, answer) = mpsc::sync_channel(1);
        let result = match sender.send(Msg::Close { reply }) {
            Ok(()) => answer.recv().unwrap_or(Ok(())),
            // The writer already exited.
            Err(_) => Ok(()),
        };
        drop(sender);
        if let Some(handle) = self.writer.lock().take() {
            if handle.join().is_err() {
                return Err(StorageError::WalFailed(
                    "WAL writer thread panicked".to_string(),
                ));
            }
        }
        result
    }
}

impl Drop for LocalWal {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!(error = %e, "closing WAL on drop failed");
        }
    }
}
