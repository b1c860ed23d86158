//! Hybrid timestamps as Milvus defines them: the high 46 bits are physical
//! milliseconds since the Unix epoch, the low 18 bits a logical counter.

/// Number of logical bits.
pub const LOGICAL_BITS: u32 = 18;
/// Mask of the logical part.
pub const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;

/// A hybrid timestamp (also used as the MVCC version of every row and delete).
pub type Timestamp = u64;

/// Composes a hybrid timestamp.
pub fn compose(physical_ms: u64, logical: u64) -> Timestamp {
    (physical_ms << LOGICAL_BITS) | (logical & LOGICAL_MASK)
}

/// Splits a hybrid timestamp into (physical ms, logical).
pub fn decompose(ts: Timestamp) -> (u64, u64) {
    (ts >> LOGICAL_BITS, ts & LOGICAL_MASK)
}

/// Current wall clock in milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_round_trips() {
        let ts = compose(1_700_000_000_000, 42);
        assert_eq!(decompose(ts), (1_700_000_000_000, 42));
        assert!(compose(5, 0) > compose(4, LOGICAL_MASK));
    }
}
