//! The serialized index envelope.
//!
//! ```text
//! magic  "QVIX"            4 bytes
//! version u16              format version (currently 1)
//! kind    u8               1 = FLAT, 2 = HNSW, 3 = IVF_FLAT, 4 = IVF_SQ8
//! metric  u8               1 = L2, 2 = cosine, 3 = negative inner product, 4 = L1
//! dim     u32
//! n       u64              row count
//! ...                      kind-specific parameters and payload
//! crc32   u32              CRC-32 of every preceding byte
//! ```
//!
//! All integers and floats are little-endian. The reader bounds-checks every
//! read and every length before allocating, so corrupt input is an error.

use crate::distance::Metric;
use crate::index::{IndexError, IndexKind};

const MAGIC: &[u8; 4] = b"QVIX";
/// Current serialization format version.
pub const FORMAT_VERSION: u16 = 1;

pub(crate) fn metric_code(metric: Metric) -> u8 {
    match metric {
        Metric::L2 => 1,
        Metric::Cosine => 2,
        Metric::NegativeInnerProduct => 3,
        Metric::L1 => 4,
    }
}

fn metric_from_code(code: u8) -> Option<Metric> {
    Some(match code {
        1 => Metric::L2,
        2 => Metric::Cosine,
        3 => Metric::NegativeInnerProduct,
        4 => Metric::L1,
        _ => return None,
    })
}

pub(crate) fn corrupt(msg: impl Into<String>) -> IndexError {
    IndexError::Corrupt(msg.into())
}

/// Little-endian byte writer.
#[derive(Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// Starts a buffer with the common header.
    pub fn with_header(kind: IndexKind, metric: Metric, dim: usize, n: usize) -> Self {
        let mut w = Writer::default();
        w.buf.extend_from_slice(MAGIC);
        w.u16(FORMAT_VERSION);
        w.u8(kind.code());
        w.u8(metric_code(metric));
        w.u32(dim as u32);
        w.u64(n as u64);
        w
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    pub fn f32s(&mut self, v: &[f32]) {
        self.buf.reserve(v.len() * 4);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
    pub fn u32s(&mut self, v: &[u32]) {
        self.buf.reserve(v.len() * 4);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
    /// Appends the checksum and returns the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let crc = crc32fast::hash(&self.buf);
        self.u32(crc);
        self.buf
    }
}

/// Bounds-checked little-endian reader over a checksummed buffer.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Checks magic, version and checksum; the reader then covers the body.
    pub fn open(bytes: &'a [u8]) -> Result<Self, IndexError> {
        if bytes.len() < MAGIC.len() + 2 {
            return Err(corrupt("too short for an index header"));
        }
        if &bytes[..4] != MAGIC {
            return Err(corrupt("bad magic"));
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != FORMAT_VERSION {
            return Err(IndexError::UnsupportedVersion(version));
        }
        if bytes.len() < 4 + 2 + 4 {
            return Err(corrupt("missing checksum"));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        if crc32fast::hash(body) != stored {
            return Err(corrupt("checksum mismatch"));
        }
        Ok(Reader { buf: body, pos: 6 })
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], IndexError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| corrupt("unexpected end of data"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], IndexError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, IndexError> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u32(&mut self) -> Result<u32, IndexError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, IndexError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// A u64 length that must fit in memory.
    pub fn len_u64(&mut self) -> Result<usize, IndexError> {
        usize::try_from(self.u64()?).map_err(|_| corrupt("length overflows usize"))
    }
    pub fn bytes(&mut self, len: usize) -> Result<&'a [u8], IndexError> {
        self.take(len)
    }
    pub fn f32s(&mut self, count: usize) -> Result<Vec<f32>, IndexError> {
        let raw = self.take(
            count
                .checked_mul(4)
                .ok_or_else(|| corrupt("length overflow"))?,
        )?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    pub fn u32s(&mut self, count: usize) -> Result<Vec<u32>, IndexError> {
        let raw = self.take(
            count
                .checked_mul(4)
                .ok_or_else(|| corrupt("length overflow"))?,
        )?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    /// Fails unless every byte was consumed.
    pub fn finish(self) -> Result<(), IndexError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(corrupt("trailing bytes after index payload"))
        }
    }
}

/// The common header fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub kind: IndexKind,
    pub metric: Metric,
    pub dim: usize,
    pub n: usize,
}

impl Header {
    pub fn read(r: &mut Reader<'_>) -> Result<Self, IndexError> {
        let kind = IndexKind::from_code(r.u8()?).ok_or_else(|| corrupt("unknown index kind"))?;
        let metric = metric_from_code(r.u8()?).ok_or_else(|| corrupt("unknown metric"))?;
        let dim = r.u32()? as usize;
        if dim == 0 {
            return Err(corrupt("zero dimension"));
        }
        let n = r.len_u64()?;
        if n >= u32::MAX as usize {
            return Err(corrupt("row count out of range"));
        }
        Ok(Header {
            kind,
            metric,
            dim,
            n,
        })
    }

    /// Reads `n * dim` finite floats.
    pub fn read_vectors(&self, r: &mut Reader<'_>) -> Result<Vec<f32>, IndexError> {
        let count = self
            .n
            .checked_mul(self.dim)
            .ok_or_else(|| corrupt("vector data size overflows"))?;
        let v = r.f32s(count)?;
        if v.iter().any(|x| !x.is_finite()) {
            return Err(corrupt("non-finite vector component"));
        }
        Ok(v)
    }
}
