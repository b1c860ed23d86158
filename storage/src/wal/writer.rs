//! The dedicated WAL writer thread and its group-commit loop, and the state
//! ([`Shared`]) it shares with the `LocalWal` handle.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;

use parking_lot::Mutex;

use super::recovery::SegmentInfo;
use super::segment::{
    create_segment, encode_frame, frame_len, segment_file_name, sync_dir, HEADER_LEN,
};
use super::types::{Lsn, SyncPolicy};
use crate::error::{Result, StorageError};

/// State shared between the [`LocalWal`](super::LocalWal) handle and its
/// writer thread.
pub(crate) struct Shared {
    pub dir: PathBuf,
    /// Segments in LSN order; the last one is the active segment. The writer
    /// pushes new segments, `truncate_before` removes from the front.
    pub segments: Mutex<Vec<SegmentInfo>>,
    /// Last LSN that is written (and synced, per policy) and acknowledged.
    pub last_lsn: AtomicU64,
    pub fsyncs: AtomicU64,
}

/// Buffered frames are written out once the buffer reaches this size, to
/// bound memory when a group is very large.
const FLUSH_THRESHOLD: usize = 4 << 20;

pub(crate) type AppendReply = SyncSender<Result<Vec<Lsn>>>;

/// Requests sent to the writer thread.
pub(crate) enum Msg {
    Append {
        records: Vec<Vec<u8>>,
        reply: AppendReply,
    },
    Close {
        reply: SyncSender<Result<()>>,
    },
}

pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub file: File,
    pub active_len: u64,
    pub next_lsn: Lsn,
    pub segment_bytes: u64,
    pub sync: SyncPolicy,
    pub buf: Vec<u8>,
    /// Set after an I/O error; the file state is then unknown, so every
    /// later append is refused.
    pub failed: Option<String>,
}

impl Writer {
    /// Group-commit loop: block for one request, drain whatever else is
    /// queued, write it all, sync once, answer everyone.
    pub(crate) fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let Ok(first) = rx.recv() else {
                // Every sender is gone (WAL dropped without close).
                if let Err(e) = self.final_sync() {
                    tracing::error!(error = %e, "WAL final sync failed");
                }
                return;
            };
            let mut group = Vec::new();
            let mut close = None;
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Append { records, reply } => group.push((records, reply)),
                    Msg::Close { reply } => {
                        close = Some(reply);
                        break;
                    }
                }
                next = rx.try_recv().ok();
            }
            if !group.is_empty() {
                self.commit_group(group);
            }
            if let Some(reply) = close {
                let _ = reply.send(self.final_sync());
                return;
            }
        }
    }

    fn commit_group(&mut self, group: Vec<(Vec<Vec<u8>>, AppendReply)>) {
        if let Some(reason) = &self.failed {
            for (_, reply) in group {
                let _ = reply.send(Err(StorageError::WalFailed(reason.clone())));
            }
            return;
        }
        match self.write_group(&group) {
            Ok(assigned) => {
                self.shared
                    .last_lsn
                    .store(self.next_lsn - 1, Ordering::Release);
                for ((_, reply), lsns) in group.into_iter().zip(assigned) {
                    let _ = reply.send(Ok(lsns));
                }
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::error!(error = %reason, "WAL write failed; refusing further appends");
                self.failed = Some(reason.clone());
                for (_, reply) in group {
                    let _ = reply.send(Err(StorageError::WalFailed(reason.clone())));
                }
            }
        }
    }

    fn write_group(&mut self, group: &[(Vec<Vec<u8>>, AppendReply)]) -> Result<Vec<Vec<Lsn>>> {
        let mut assigned = Vec::with_capacity(group.len());
        for (records, _) in group {
            let mut lsns = Vec::with_capacity(records.len());
            for record in records {
                lsns.push(self.append_frame(record)?);
            }
            assigned.push(lsns);
        }
        self.flush_buf()?;
        if self.sync == SyncPolicy::Always {
            self.sync_active()?;
        }
        Ok(assigned)
    }

    fn append_frame(&mut self, payload: &[u8]) -> Result<Lsn> {
        let len = frame_len(payload.len());
        if self.active_len > HEADER_LEN && self.active_len + len > self.segment_bytes {
            self.roll()?;
        }
        let lsn = self.next_lsn;
        self.next_lsn = lsn
            .checked_add(1)
            .ok_or_else(|| StorageError::WalFailed("lsn space exhausted".to_string()))?;
        encode_frame(&mut self.buf, lsn, payload);
        self.active_len += len;
        if self.buf.len() >= FLUSH_THRESHOLD {
            self.flush_buf()?;
        }
        Ok(lsn)
    }

    fn flush_buf(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn sync_active(&mut self) -> Result<()> {
        self.file.sync_data()?;
        self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Seals the active segment and starts a new one at `next_lsn`.
    ///
    /// The sealed segment is always synced, whatever the sync policy:
    /// recovery requires every non-last segment to be complete.
    fn roll(&mut self) -> Result<()> {
        self.flush_buf()?;
        self.sync_active()?;
        let first_lsn = self.next_lsn;
        let path = self.shared.dir.join(segment_file_name(first_lsn));
        let file = create_segment(&path)?;
        self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        sync_dir(&self.shared.dir)?;
        tracing::debug!(file = %path.display(), "rolled to new WAL segment");
        self.file = file;
        self.active_len = HEADER_LEN;
        self.shared
            .segments
            .lock()
            .push(SegmentInfo { first_lsn, path });
        Ok(())
    }

    fn final_sync(&mut self) -> Result<()> {
        if let Some(reason) = &self.failed {
            return Err(StorageError::WalFailed(reason.clone()));
        }
        self.flush_buf()?;
        self.sync_active()
    }
}
