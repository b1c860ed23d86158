//! The write-ahead log in object storage (`wal.backend = "object_store"`,
//! Milvus 2.6's "zero-disk" WAL): no local file holds an acknowledged
//! write.
//!
//! Each group commit becomes one immutable object
//! `<prefix>/<sequence, 20 digits>.wal`: a header (`b"QWOB"`, format
//! version, the writer's **term**, the group's first LSN) followed by the
//! local WAL's segment bytes (its header, then CRC-framed records, see
//! [`super`]). An object is created with a conditional put
//! (`PutMode::Create`, S3's `If-None-Match: *`), and the append is
//! acknowledged only once the put succeeded, so the write is durable in the
//! object store.
//!
//! **Fencing.** A writer opening the log lists it, reads the newest object
//! for the last LSN and term, and claims the next sequence number with an
//! empty *fence* object carrying a term above every term seen. An older
//! writer still running can then never create the object its next group
//! needs (the name is taken): its append fails with
//! [`StorageError::WalFailed`] and it acknowledges nothing more, and
//! nothing it could write after the fence exists to be replayed.
//!
//! A put whose outcome is unknown (the store did not answer in time: it may
//! still create the object later) fails the append with an error saying
//! so, and its sequence number is never used again: the next group takes
//! the next number and the same LSNs. Replay reads the objects from the
//! newest down and drops an object whose LSNs a newer object holds, so a
//! late-landing group of a failed append is never replayed once a later
//! append succeeded (if the server stops first, it may be: its outcome
//! was reported unknown). The log resumes by itself when the store comes
//! back.
//!
//! The trait is synchronous (callers block, as on the local WAL's fsync):
//! every operation is a message to one thread owning a current-thread
//! runtime, which also makes the appends queued meanwhile one group.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parking_lot::Mutex;

use super::segment::{encode_frame, header_bytes, scan_segment, HeaderState, MAX_RECORD_BYTES};
use super::{Lsn, Wal};
use crate::error::{Result, StorageError};
use crate::object::ObjectStoreRef;

const MAGIC: [u8; 4] = *b"QWOB";
const FORMAT_VERSION: u32 = 1;
/// Magic, version, term, first LSN.
const OBJECT_HEADER_LEN: usize = 4 + 4 + 8 + 8;

/// Where the log lives.
#[derive(Debug, Clone)]
pub struct ObjectWalOptions {
    pub objects: ObjectStoreRef,
    /// The channel's path in the store, e.g. `wal/default`.
    pub prefix: String,
}

/// One object of the log, as the writer knows it.
#[derive(Debug, Clone, Copy)]
struct ObjectInfo {
    term: u64,
    first_lsn: Lsn,
    /// `first_lsn - 1` for a fence (no records).
    last_lsn: Lsn,
}

/// A decoded object.
struct Decoded {
    info: ObjectInfo,
    records: Vec<(Lsn, Vec<u8>)>,
}

fn object_name(prefix: &str, sequence: u64) -> String {
    format!("{prefix}/{sequence:020}.wal")
}

fn parse_sequence(prefix: &str, path: &str) -> Option<u64> {
    let name = path.strip_prefix(prefix)?.strip_prefix('/')?;
    let digits = name.strip_suffix(".wal")?;
    (digits.len() == 20).then(|| digits.parse().ok())?
}

fn encode_object(term: u64, first_lsn: Lsn, records: &[&[u8]]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(
        OBJECT_HEADER_LEN + 8 + records.iter().map(|r| r.len() + 16).sum::<usize>(),
    );
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    buf.extend_from_slice(&term.to_le_bytes());
    buf.extend_from_slice(&first_lsn.to_le_bytes());
    buf.extend_from_slice(&header_bytes());
    for (i, record) in records.iter().enumerate() {
        encode_frame(&mut buf, first_lsn + i as u64, record);
    }
    buf
}

/// Decodes an object; anything short of a whole, valid object is
/// [`StorageError::Corrupt`] (objects are written whole, never torn).
fn decode_object(name: &str, data: &[u8]) -> Result<Decoded> {
    let corrupt = |offset: u64, reason: String| StorageError::Corrupt {
        file: name.to_string(),
        offset,
        reason,
    };
    if data.len() < OBJECT_HEADER_LEN || data[..4] != MAGIC {
        return Err(corrupt(0, "not a WAL object".into()));
    }
    let u64_at = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"));
    let version = u32::from_le_bytes(data[4..8].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(corrupt(
            4,
            format!("unsupported WAL object version {version}"),
        ));
    }
    let (term, first_lsn) = (u64_at(8), u64_at(16));
    if first_lsn == 0 {
        return Err(corrupt(16, "first LSN 0".into()));
    }
    let body = &data[OBJECT_HEADER_LEN..];
    let scan = scan_segment(body, first_lsn, Lsn::MAX);
    if scan.header != HeaderState::Valid {
        return Err(corrupt(
            OBJECT_HEADER_LEN as u64,
            "bad segment header".into(),
        ));
    }
    if let Some((offset, reason)) = scan.problem {
        return Err(corrupt(OBJECT_HEADER_LEN as u64 + offset, reason));
    }
    let records: Vec<(Lsn, Vec<u8>)> = scan
        .frames
        .iter()
        .map(|f| (f.lsn, body[f.payload.clone()].to_vec()))
        .collect();
    Ok(Decoded {
        info: ObjectInfo {
            term,
            first_lsn,
            last_lsn: first_lsn + records.len() as u64 - 1,
        },
        records,
    })
}

type Reply<T> = mpsc::SyncSender<Result<T>>;

/// One caller's records and where its LSNs go.
type PendingAppend = (Vec<Vec<u8>>, Reply<Vec<Lsn>>);

enum Msg {
    Append(Vec<Vec<u8>>, Reply<Vec<Lsn>>),
    ReadFrom(Lsn, Reply<Vec<(Lsn, Vec<u8>)>>),
    Truncate(Lsn, Reply<()>),
    Close(Reply<()>),
}

/// The writer thread's state.
struct Writer {
    objects: ObjectStoreRef,
    prefix: String,
    term: u64,
    /// The sequence number the next object takes.
    next_sequence: u64,
    /// The LSN the next record takes.
    next_lsn: Lsn,
    /// The objects known, by sequence number.
    known: BTreeMap<u64, ObjectInfo>,
    /// Sequence numbers of puts whose outcome is unknown (skipped for
    /// good; removed once a later object holds their LSNs).
    abandoned: Vec<u64>,
    /// Set once a newer writer fenced this one: every append fails.
    fenced: Option<String>,
    last_lsn: Arc<AtomicU64>,
}

/// [`Wal`] whose records live in object storage.
pub struct ObjectWal {
    sender: Mutex<Option<mpsc::Sender<Msg>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    last_lsn: Arc<AtomicU64>,
    prefix: String,
    term: u64,
}

impl std::fmt::Debug for ObjectWal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWal")
            .field("prefix", &self.prefix)
            .field("term", &self.term)
            .field("last_lsn", &self.last_lsn())
            .finish()
    }
}

impl ObjectWal {
    /// Opens the log: reads where it ends and claims it with a fence
    /// object under a new term (see the module documentation).
    pub fn open(options: ObjectWalOptions) -> Result<Self> {
        let prefix = options.prefix.trim_matches('/').to_string();
        let last_lsn = Arc::new(AtomicU64::new(0));
        let (sender, receiver) = mpsc::channel::<Msg>();
        let (opened, opening) = mpsc::sync_channel::<Result<u64>>(1);
        // The thread owns the runtime: open may be called from async code,
        // where no runtime can be blocked on.
        let thread = {
            let (objects, prefix, last_lsn) = (options.objects, prefix.clone(), last_lsn.clone());
            std::thread::Builder::new()
                .name("quiver-object-wal".into())
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(e) => {
                            let _ = opened.send(Err(e.into()));
                            return;
                        }
                    };
                    runtime.block_on(async move {
                        match Writer::open(objects, prefix, last_lsn).await {
                            Ok(mut writer) => {
                                let _ = opened.send(Ok(writer.term));
                                writer.run(receiver).await;
                            }
                            Err(e) => {
                                let _ = opened.send(Err(e));
                            }
                        }
                    });
                })?
        };
        let term = opening.recv().map_err(|_| StorageError::Closed)??;
        Ok(Self {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            last_lsn,
            prefix,
            term,
        })
    }

    /// The term this writer claimed the log with.
    pub fn term(&self) -> u64 {
        self.term
    }

    fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Msg) -> Result<T> {
        let (reply, answer) = mpsc::sync_channel(1);
        {
            let sender = self.sender.lock();
            let sender = sender.as_ref().ok_or(StorageError::Closed)?;
            sender.send(make(reply)).map_err(|_| StorageError::Closed)?;
        }
        answer.recv().map_err(|_| StorageError::Closed)?
    }
}

impl Wal for ObjectWal {
    fn append(&self, records: Vec<Vec<u8>>) -> Result<Vec<Lsn>> {
        if let Some(record) = records.iter().find(|r| r.len() > MAX_RECORD_BYTES) {
            return Err(StorageError::RecordTooLarge {
                size: record.len(),
                max: MAX_RECORD_BYTES,
            });
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        self.call(|reply| Msg::Append(records, reply))
    }

    fn read_from(&self, from: Lsn) -> Result<Vec<(Lsn, Vec<u8>)>> {
        self.call(|reply| Msg::ReadFrom(from, reply))
    }

    fn truncate_before(&self, upto: Lsn) -> Result<()> {
        self.call(|reply| Msg::Truncate(upto, reply))
    }

    fn last_lsn(&self) -> Lsn {
        self.last_lsn.load(Ordering::Acquire)
    }

    fn close(&self) -> Result<()> {
        if self.sender.lock().is_none() {
            return Ok(());
        }
        let result = self.call(Msg::Close);
        self.sender.lock().take();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
        result
    }
}

impl Drop for ObjectWal {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl Writer {
    async fn open(
        objects: ObjectStoreRef,
        prefix: String,
        last_lsn: Arc<AtomicU64>,
    ) -> Result<Self> {
        let mut writer = Writer {
            objects,
            prefix,
            term: 0,
            next_sequence: 0,
            next_lsn: 1,
            known: BTreeMap::new(),
            abandoned: Vec::new(),
            fenced: None,
            last_lsn,
        };
        // Claim the next free sequence number; a writer racing us may take
        // it first, then we read again.
        loop {
            let sequences = writer.list().await?;
            let mut newest_term = 0;
            match sequences.last() {
                Some(&newest) => {
                    let decoded = writer.read(newest).await?;
                    newest_term = decoded.info.term;
                    writer.known.insert(newest, decoded.info);
                    writer.next_sequence = newest + 1;
                    writer.next_lsn = decoded.info.last_lsn + 1;
                }
                None => {
                    writer.next_sequence = 0;
                    writer.next_lsn = 1;
                }
            }
            writer.term = newest_term + 1;
            let fence = ObjectInfo {
                term: writer.term,
                first_lsn: writer.next_lsn,
                last_lsn: writer.next_lsn - 1,
            };
            match writer.create(writer.next_sequence, fence, &[]).await {
                Ok(()) => {
                    writer.known.insert(writer.next_sequence, fence);
                    writer.next_sequence += 1;
                    writer
                        .last_lsn
                        .store(writer.next_lsn - 1, Ordering::Release);
                    return Ok(writer);
                }
                Err(StorageError::ObjectStore(object_store::Error::AlreadyExists { .. })) => {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn run(&mut self, receiver: mpsc::Receiver<Msg>) {
        while let Ok(first) = receiver.recv() {
            match first {
                Msg::Append(records, reply) => {
                    // Every append queued meanwhile joins this group.
                    let mut groups = vec![(records, reply)];
                    let mut after = None;
                    while let Ok(next) = receiver.try_recv() {
                        match next {
                            Msg::Append(records, reply) => groups.push((records, reply)),
                            other => {
                                after = Some(other);
                                break;
                            }
                        }
                    }
                    self.commit(groups).await;
                    if let Some(other) = after {
                        if !self.handle(other).await {
                            return;
                        }
                    }
                }
                other => {
                    if !self.handle(other).await {
                        return;
                    }
                }
            }
        }
    }

    /// Handles a message other than an append; false after a close.
    async fn handle(&mut self, message: Msg) -> bool {
        match message {
            Msg::Append(records, reply) => self.commit(vec![(records, reply)]).await,
            Msg::ReadFrom(from, reply) => {
                let _ = reply.send(self.read_from(from).await);
            }
            Msg::Truncate(upto, reply) => {
                let _ = reply.send(self.truncate_before(upto).await);
            }
            Msg::Close(reply) => {
                let _ = reply.send(Ok(()));
                return false;
            }
        }
        true
    }

    /// Writes the groups' records as one object; answers each caller.
    async fn commit(&mut self, groups: Vec<PendingAppend>) {
        // Borrowed, not copied: the payloads are copied once, into the object.
        let records: Vec<&[u8]> = groups
            .iter()
            .flat_map(|(r, _)| r.iter().map(Vec::as_slice))
            .collect();
        let result = self.write_group(&records).await;
        let mut lsn = match &result {
            Ok(first) => *first,
            Err(_) => 0,
        };
        for (records, reply) in groups {
            let answer = match &result {
                Ok(_) => {
                    let lsns = (lsn..lsn + records.len() as u64).collect();
                    lsn += records.len() as u64;
                    Ok(lsns)
                }
                Err(StorageError::WalFailed(reason)) => {
                    Err(StorageError::WalFailed(reason.clone()))
                }
                Err(StorageError::WalOutcomeUnknown { object, detail }) => {
                    Err(StorageError::WalOutcomeUnknown {
                        object: object.clone(),
                        detail: detail.clone(),
                    })
                }
                Err(e) => Err(StorageError::WalFailed(e.to_string())),
            };
            let _ = reply.send(answer);
        }
    }

    /// Creates the next object with `records`; returns the first LSN.
    async fn write_group(&mut self, records: &[&[u8]]) -> Result<Lsn> {
        if let Some(reason) = &self.fenced {
            return Err(StorageError::WalFailed(reason.clone()));
        }
        let info = ObjectInfo {
            term: self.term,
            first_lsn: self.next_lsn,
            last_lsn: self.next_lsn + records.len() as u64 - 1,
        };
        match self.create(self.next_sequence, info, records).await {
            Ok(()) => {
                self.advance(info);
                Ok(info.first_lsn)
            }
            Err(StorageError::ObjectStore(object_store::Error::AlreadyExists { .. })) => {
                Err(self.fence_off())
            }
            Err(e) => {
                // The store may still create it: never reuse the number;
                // the next group holds these LSNs under a newer one.
                let name = object_name(&self.prefix, self.next_sequence);
                self.abandoned.push(self.next_sequence);
                self.next_sequence += 1;
                Err(StorageError::WalOutcomeUnknown {
                    object: name,
                    detail: e.to_string(),
                })
            }
        }
    }

    fn advance(&mut self, info: ObjectInfo) {
        self.known.insert(self.next_sequence, info);
        self.next_sequence += 1;
        self.next_lsn = info.last_lsn + 1;
        self.last_lsn.store(info.last_lsn, Ordering::Release);
    }

    fn fence_off(&mut self) -> StorageError {
        let reason = format!(
            "WAL object {} was written by another writer: this writer (term {}) is fenced off and acknowledges nothing more",
            object_name(&self.prefix, self.next_sequence),
            self.term
        );
        self.fenced = Some(reason.clone());
        StorageError::WalFailed(reason)
    }

    async fn create(&self, sequence: u64, info: ObjectInfo, records: &[&[u8]]) -> Result<()> {
        let bytes = encode_object(info.term, info.first_lsn, records);
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let path = Path::from(object_name(&self.prefix, sequence).as_str());
        self.objects
            .put_opts(&path, PutPayload::from(bytes), options)
            .await?;
        Ok(())
    }

    /// The sequence numbers of the log's objects, in order.
    async fn list(&self) -> Result<Vec<u64>> {
        let prefix = Path::from(self.prefix.as_str());
        let mut sequences: Vec<u64> = self
            .objects
            .list(Some(&prefix))
            .try_filter_map(|meta| async move {
                Ok(parse_sequence(&self.prefix, meta.location.as_ref()))
            })
            .try_collect()
            .await?;
        sequences.sort_unstable();
        Ok(sequences)
    }

    async fn read(&self, sequence: u64) -> Result<Decoded> {
        let name = object_name(&self.prefix, sequence);
        let bytes = self
            .objects
            .get(&Path::from(name.as_str()))
            .await?
            .bytes()
            .await?;
        decode_object(&name, &bytes)
    }

    /// Every record with LSN >= `from`. From the newest object down, an
    /// object whose LSNs a newer one holds is dropped (the group of an
    /// append whose outcome was unknown, landed late); the rest must
    /// continue each other (no LSN gap, terms never going back).
    async fn read_from(&mut self, from: Lsn) -> Result<Vec<(Lsn, Vec<u8>)>> {
        let mut kept: Vec<(u64, Decoded)> = Vec::new();
        let mut held_from = Lsn::MAX;
        for sequence in self.list().await?.into_iter().rev() {
            let decoded = self.read(sequence).await?;
            let info = decoded.info;
            if info.last_lsn >= info.first_lsn && info.last_lsn >= held_from {
                // Shadowed: removed at the next truncation.
                if !self.abandoned.contains(&sequence) {
                    self.abandoned.push(sequence);
                }
                continue;
            }
            held_from = held_from.min(info.first_lsn);
            kept.push((sequence, decoded));
        }
        kept.reverse();
        let mut out = Vec::new();
        let mut previous: Option<(u64, ObjectInfo)> = None;
        for (sequence, decoded) in kept {
            if let Some((before, info)) = previous {
                if decoded.info.first_lsn != info.last_lsn + 1 || decoded.info.term < info.term {
                    return Err(StorageError::Corrupt {
                        file: object_name(&self.prefix, sequence),
                        offset: 0,
                        reason: format!(
                            "does not continue object {before} (LSN {} term {} after LSN {} term {})",
                            decoded.info.first_lsn, decoded.info.term, info.last_lsn, info.term
                        ),
                    });
                }
            }
            self.known.insert(sequence, decoded.info);
            previous = Some((sequence, decoded.info));
            out.extend(decoded.records.into_iter().filter(|(lsn, _)| *lsn >= from));
        }
        Ok(out)
    }

    /// Deletes the objects all of whose records are below `upto`, except
    /// the newest (it carries the term and where the log goes on).
    async fn truncate_before(&mut self, upto: Lsn) -> Result<()> {
        let newest = self.next_sequence.saturating_sub(1);
        let doomed: Vec<u64> = self
            .known
            .iter()
            .filter(|(sequence, info)| **sequence < newest && info.last_lsn < upto)
            .map(|(sequence, _)| *sequence)
            .collect();
        let abandoned: Vec<u64> = self
            .abandoned
            .iter()
            .copied()
            .filter(|sequence| *sequence < newest)
            .collect();
        self.abandoned.retain(|sequence| *sequence >= newest);
        for sequence in doomed.into_iter().chain(abandoned) {
            let path = Path::from(object_name(&self.prefix, sequence).as_str());
            match self.objects.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            self.known.remove(&sequence);
        }
        Ok(())
    }
}
