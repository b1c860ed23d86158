//! Which values of a message travel in binary (a leaf module: parameters
//! and result columns both ask).

use pgwire::api::portal::Format;

/// True when value `idx` (a parameter, or a result column) is sent in
/// binary.
pub(crate) fn is_binary(format: &Format, idx: usize) -> bool {
    match format {
        Format::UnifiedText => false,
        Format::UnifiedBinary => true,
        Format::Individual(codes) => codes.get(idx) == Some(&1),
    }
}
