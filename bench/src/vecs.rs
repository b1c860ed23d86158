//! TEXMEX `.fvecs` / `.ivecs` files: a sequence of records, each an int32
//! dimension `d` followed by `d` 4-byte values (float32 or int32), all
//! little-endian. Every record of a file must have the same dimension.

use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::Path;

use crate::error::{BenchError, Result};

/// Largest dimension accepted in a record header (a corrupt header would
/// otherwise ask for gigabytes).
pub const MAX_DIM: usize = 1 << 20;

/// Row-major records of one dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct Vecs<T> {
    pub dim: usize,
    pub data: Vec<T>,
}

impl<T> Vecs<T> {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Record `i`.
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Keeps the first `n` records.
    pub fn truncate(&mut self, n: usize) {
        self.data.truncate(n * self.dim);
    }
}

/// Reads float vectors; at most `limit` records (the rest of the file is
/// checked for a whole number of records but not read).
pub fn read_fvecs(path: &Path, limit: Option<usize>) -> Result<Vecs<f32>> {
    read_vecs(path, limit, f32::from_le_bytes)
}

/// Reads int32 vectors; at most `limit` records.
pub fn read_ivecs(path: &Path, limit: Option<usize>) -> Result<Vecs<i32>> {
    read_vecs(path, limit, i32::from_le_bytes)
}

/// Number of records of a vecs file, from its first header and its length.
pub fn count_records(path: &Path) -> Result<usize> {
    let mut file = File::open(path).map_err(|e| BenchError::io(path, e))?;
    let len = file.metadata().map_err(|e| BenchError::io(path, e))?.len();
    let Some(dim) = read_header(&mut file, path, 0, len)? else {
        return Err(BenchError::EmptyFile { path: path.into() });
    };
    let record = 4 + 4 * dim as u64;
    if len % record != 0 {
        return Err(BenchError::Truncated {
            path: path.into(),
            record: (len / record) as usize,
            len,
        });
    }
    Ok((len / record) as usize)
}

/// Reads one record header; `None` at a clean end of file.
fn read_header(
    reader: &mut impl Read,
    path: &Path,
    record: usize,
    len: u64,
) -> Result<Option<usize>> {
    let mut head = [0u8; 4];
    match read_full(reader, &mut head).map_err(|e| BenchError::io(path, e))? {
        0 => return Ok(None),
        4 => {}
        _ => {
            return Err(BenchError::Truncated {
                path: path.into(),
                record,
                len,
            })
        }
    }
    let dim = i32::from_le_bytes(head);
    if dim <= 0 || dim as usize > MAX_DIM {
        return Err(BenchError::BadDimension {
            path: path.into(),
            record,
            dim: dim as i64,
        });
    }
    Ok(Some(dim as usize))
}

/// Like `read_exact`, but returns how many bytes were read before the end of
/// the input instead of failing there.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match reader.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn read_vecs<T>(path: &Path, limit: Option<usize>, decode: fn([u8; 4]) -> T) -> Result<Vecs<T>> {
    let file = File::open(path).map_err(|e| BenchError::io(path, e))?;
    let len = file.metadata().map_err(|e| BenchError::io(path, e))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut dim = 0usize;
    let mut data = Vec::new();
    let mut body = Vec::new();
    let mut record = 0usize;
    while limit.is_none_or(|l| record < l) {
        let Some(d) = read_header(&mut reader, path, record, len)? else {
            break;
        };
        if record == 0 {
            dim = d;
            let rows = (len / (4 + 4 * d as u64)) as usize;
            data.reserve(limit.map_or(rows, |l| l.min(rows)) * d);
            body.resize(4 * d, 0);
        } else if d != dim {
            return Err(BenchError::DimensionMismatch {
                path: path.into(),
                record,
                expected: dim,
                found: d,
            });
        }
        if read_full(&mut reader, &mut body).map_err(|e| BenchError::io(path, e))? != body.len() {
            return Err(BenchError::Truncated {
                path: path.into(),
                record,
                len,
            });
        }
        data.extend(
            body.chunks_exact(4)
                .map(|c| decode([c[0], c[1], c[2], c[3]])),
        );
        record += 1;
    }
    if record == 0 {
        return Err(BenchError::EmptyFile { path: path.into() });
    }
    if len % (4 + 4 * dim as u64) != 0 {
        // Stopped early at the limit: the rest must still be whole records.
        return Err(BenchError::Truncated {
            path: path.into(),
            record: (len / (4 + 4 * dim as u64)) as usize,
            len,
        });
    }
    Ok(Vecs { dim, data })
}

/// Writes float vectors (`data.len()` must be a multiple of `dim`).
pub fn write_fvecs(path: &Path, dim: usize, data: &[f32]) -> Result<()> {
    write_vecs(path, dim, data, |x| x.to_le_bytes())
}

/// Writes int32 vectors (`data.len()` must be a multiple of `dim`).
pub fn write_ivecs(path: &Path, dim: usize, data: &[i32]) -> Result<()> {
    write_vecs(path, dim, data, |x| x.to_le_bytes())
}

fn write_vecs<T: Copy>(
    path: &Path,
    dim: usize,
    data: &[T],
    encode: fn(T) -> [u8; 4],
) -> Result<()> {
    if dim == 0 || dim > MAX_DIM || data.len() / dim * dim != data.len() {
        return Err(BenchError::Argument(format!(
            "{}: cannot write {} values as records of dimension {dim}",
            path.display(),
            data.len()
        )));
    }
    let tmp = path.with_extension("tmp");
    let file = File::create(&tmp).map_err(|e| BenchError::io(&tmp, e))?;
    let mut out = BufWriter::new(file);
    let head = (dim as i32).to_le_bytes();
    for row in data.chunks_exact(dim) {
        out.write_all(&head).map_err(|e| BenchError::io(&tmp, e))?;
        for &x in row {
            out.write_all(&encode(x))
                .map_err(|e| BenchError::io(&tmp, e))?;
        }
    }
    out.flush().map_err(|e| BenchError::io(&tmp, e))?;
    drop(out);
    std::fs::rename(&tmp, path).map_err(|e| BenchError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(path: &Path, bytes: &[u8]) {
        std::fs::write(path, bytes).unwrap();
    }

    fn record(dim: i32, values: &[f32]) -> Vec<u8> {
        let mut out = dim.to_le_bytes().to_vec();
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    #[test]
    fn round_trip_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.fvecs");
        let data: Vec<f32> = (0..12).map(|x| x as f32 * 0.5).collect();
        write_fvecs(&path, 3, &data).unwrap();
        let all = read_fvecs(&path, None).unwrap();
        assert_eq!(all.dim, 3);
        assert_eq!(all.len(), 4);
        assert_eq!(all.data, data);
        assert_eq!(all.row(1), &[1.5, 2.0, 2.5]);
        let two = read_fvecs(&path, Some(2)).unwrap();
        assert_eq!(two.data, &data[..6]);
        assert_eq!(count_records(&path).unwrap(), 4);

        let ipath = dir.path().join("g.ivecs");
        write_ivecs(&ipath, 2, &[1, -2, 3, 4]).unwrap();
        let ints = read_ivecs(&ipath, None).unwrap();
        assert_eq!((ints.dim, ints.data), (2, vec![1, -2, 3, 4]));
    }

    #[test]
    fn little_endian_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.fvecs");
        raw(&path, &[2, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]);
        assert_eq!(read_fvecs(&path, None).unwrap().data, vec![1.0, 2.0]);
    }

    #[test]
    fn bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.fvecs");

        raw(&path, &[]);
        assert!(matches!(
            read_fvecs(&path, None),
            Err(BenchError::EmptyFile { .. })
        ));

        let mut bytes = record(2, &[1.0, 2.0]);
        bytes.extend(record(3, &[1.0, 2.0, 3.0]));
        raw(&path, &bytes);
        let err = read_fvecs(&path, None).unwrap_err();
        assert!(
            matches!(
                err,
                BenchError::DimensionMismatch {
                    record: 1,
                    expected: 2,
                    found: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("record 1 has dimension 3"));

        let mut bytes = record(2, &[1.0, 2.0]);
        bytes.extend(&record(2, &[1.0, 2.0])[..9]);
        raw(&path, &bytes);
        assert!(matches!(
            read_fvecs(&path, None),
            Err(BenchError::Truncated { record: 1, .. })
        ));
        // Limited reads still notice a broken tail.
        assert!(matches!(
            read_fvecs(&path, Some(1)),
            Err(BenchError::Truncated { .. })
        ));
        assert!(matches!(
            count_records(&path),
            Err(BenchError::Truncated { .. })
        ));

        raw(&path, &[1, 0]);
        assert!(matches!(
            read_fvecs(&path, None),
            Err(BenchError::Truncated { record: 0, .. })
        ));

        raw(&path, &record(0, &[]));
        assert!(matches!(
            read_fvecs(&path, None),
            Err(BenchError::BadDimension { dim: 0, .. })
        ));
        raw(&path, &record(-5, &[]));
        assert!(matches!(
            read_ivecs(&path, None),
            Err(BenchError::BadDimension { dim: -5, .. })
        ));

        let missing = dir.path().join("missing.fvecs");
        let err = read_fvecs(&missing, None).unwrap_err();
        assert!(matches!(err, BenchError::Io { .. }));
        assert!(err.to_string().contains("missing.fvecs"));
    }
}
