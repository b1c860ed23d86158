//! The [`Kernels`] set type: one function pointer per basic operation, and
//! the portable set every CPU runs. A leaf the architecture modules
//! (`x86`, `arm`) build their sets with; choosing among them is the parent's
//! dispatch.

use super::scalar;

/// One kernel for each basic operation. Every function panics when its two
/// slices have different lengths.
#[derive(Debug, Clone, Copy)]
pub struct Kernels {
    /// `"avx512"`, `"avx2"`, `"neon"` or `"portable"`.
    pub name: &'static str,
    pub l2_squared: fn(&[f32], &[f32]) -> f32,
    pub inner_product: fn(&[f32], &[f32]) -> f32,
    pub l1: fn(&[f32], &[f32]) -> f32,
}

impl Kernels {
    /// The portable set, available on every CPU.
    pub fn portable() -> Self {
        Kernels {
            name: "portable",
            l2_squared: scalar::l2_squared,
            inner_product: scalar::inner_product,
            l1: scalar::l1,
        }
    }
}
