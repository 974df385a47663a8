//! equivar's CPU kernels on plain `f32` slices (NCHW layout), where burn's generic ops are
//! slow: im2col + GEMM convolutions ([`conv`]), Winograd F(2x2, 3x3) ([`winograd`]),
//! training-mode batch norm ([`batch_norm`]), 2x2 max pooling ([`pool`]) and DISCO's sparse
//! sphere contractions ([`disco`]), plus an allocator that keeps large buffers on huge pages
//! ([`huge_pages`]).
//!
//! No tensors and no burn here: `equivar` registers these kernels as a burn backend extension
//! and chooses, per model or layer, whether they or burn's ops run. Each kernel is tested
//! against a plain f64 loop written from its definition (the `reference` modules, built for
//! the tests only). Instruction sets are chosen at run time: AVX2 + FMA builds where the CPU
//! has them, plain code everywhere else, both tested on machines that run the AVX2 path.

/// Defines `unsafe fn $name(args)` running `$f` built for AVX2 + FMA on x86_64 (callers check
/// [`has_avx2_fma`] first), and a plain build elsewhere: `= f::<FMA>` for kernels generic over
/// whether FMA is available, `= f` for code that only needs the wider registers.
macro_rules! avx2_fma_build {
    ($(#[$attr:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) = $f:ident::<FMA>) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        $(#[$attr])*
        unsafe fn $name($($arg: $ty),*) {
            $f::<true>($($arg),*)
        }

        #[cfg(not(target_arch = "x86_64"))]
        $(#[$attr])*
        unsafe fn $name($($arg: $ty),*) {
            $f::<false>($($arg),*)
        }
    };
    ($(#[$attr:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) = $f:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        $(#[$attr])*
        unsafe fn $name($($arg: $ty),*) {
            $f($($arg),*)
        }

        #[cfg(not(target_arch = "x86_64"))]
        $(#[$attr])*
        unsafe fn $name($($arg: $ty),*) {
            $f($($arg),*)
        }
    };
}

pub mod batch_norm;
pub mod conv;
pub mod disco;
pub mod fft_conv;
pub mod gate;
pub mod huge_pages;
pub mod pool;
pub mod spherical_harmonics;
pub mod tensor_product;
#[cfg(test)]
mod test_util;
pub mod winograd;

pub use conv::sgemm_gflops;
pub use huge_pages::{HugePageAllocator, set_block_reuse, set_huge_pages};

/// A `&mut [f32]` that parallel tasks write disjoint parts of.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut {
    ptr: usize,
    len: usize,
}

impl SharedOut {
    pub(crate) fn new(v: &mut [f32]) -> Self {
        SharedOut {
            ptr: v.as_mut_ptr() as usize,
            len: v.len(),
        }
    }

    /// SAFETY: callers must write only elements no other task touches, and the slice `new`
    /// was made from must outlive every task.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self) -> &mut [f32] {
        // SAFETY: as the caller promises above.
        unsafe { std::slice::from_raw_parts_mut(self.ptr as *mut f32, self.len) }
    }
}

/// An instruction-set build of a kernel. The public entry points use [`Isa::detect`]; tests
/// run every build this CPU has (`*_with` functions) so no path goes untested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust, any CPU.
    Plain,
    /// Built for AVX2 + FMA (x86_64 CPUs that have them).
    Avx2Fma,
}

impl Isa {
    /// The best build this CPU runs.
    pub fn detect() -> Isa {
        if has_avx2_fma() {
            Isa::Avx2Fma
        } else {
            Isa::Plain
        }
    }

    /// Every build this CPU runs, plain first.
    pub fn available() -> Vec<Isa> {
        let mut out = vec![Isa::Plain];
        if has_avx2_fma() {
            out.push(Isa::Avx2Fma);
        }
        out
    }
}

/// Whether this CPU runs the AVX2 + FMA builds of our kernels (checked at run time).
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs `f` on one of the compute threads (rayon's pool) and waits for it. A step made of many
/// parallel kernels (a training step, an inference) then starts each kernel's tasks as local
/// jobs that the other threads steal, instead of injecting every one from outside the pool
/// and sleeping until it is done.
pub fn on_compute_threads<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// Independent partial sums in [`sum_of`] and [`sum_of_pairs`].
const PARTIAL_SUMS: usize = 16;

/// `sum f(v)` over `values`, in [`PARTIAL_SUMS`] partial sums: a plain `iter().sum()` is one
/// chain of dependent adds (one add per 3-4 cycles, not vectorized, as float addition is not
/// reassociated), which made batch-norm and bias-gradient reductions cost as much as their
/// passes over memory several times over.
#[inline]
pub(crate) fn sum_of(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut partial = [0.0f32; PARTIAL_SUMS];
    let chunks = values.chunks_exact(PARTIAL_SUMS);
    let rest: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        for (p, &v) in partial.iter_mut().zip(chunk) {
            *p += f(v);
        }
    }
    partial.iter().sum::<f32>() + rest
}

/// `sum f(a_i, b_i)` over two runs of equal length, as [`sum_of`].
#[inline]
pub(crate) fn sum_of_pairs(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    assert_eq!(a.len(), b.len(), "runs of equal length");
    let mut partial = [0.0f32; PARTIAL_SUMS];
    let (chunks_a, chunks_b) = (a.chunks_exact(PARTIAL_SUMS), b.chunks_exact(PARTIAL_SUMS));
    let rest: f32 = (chunks_a.remainder().iter().zip(chunks_b.remainder()))
        .map(|(&x, &y)| f(x, y))
        .sum();
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for ((p, &x), &y) in partial.iter_mut().zip(ca).zip(cb) {
            *p += f(x, y);
        }
    }
    partial.iter().sum::<f32>() + rest
}

/// `0..len` in consecutive ranges of `chunk` (the last may be shorter), as parallel tasks.
pub(crate) fn par_ranges(
    len: usize,
    chunk: usize,
) -> impl rayon::iter::IndexedParallelIterator<Item = std::ops::Range<usize>> {
    use rayon::prelude::*;
    let chunk = chunk.max(1);
    (0..len.div_ceil(chunk))
        .into_par_iter()
        .map(move |c| c * chunk..((c + 1) * chunk).min(len))
}

#[cfg(test)]
mod tests {
    use super::{sum_of, sum_of_pairs};

    /// The partial sums against f64 sums, for lengths around the partial-sum count.
    #[test]
    fn partial_sums_match_the_plain_sums() {
        for len in [0, 1, 15, 16, 17, 33, 784] {
            let a: Vec<f32> = (0..len)
                .map(|i| ((i * 7) % 11) as f32 * 0.3 - 1.1)
                .collect();
            let b: Vec<f32> = (0..len)
                .map(|i| ((i * 5) % 13) as f32 * 0.2 - 0.9)
                .collect();
            let want: f64 = a.iter().map(|&v| (v as f64 - 0.5).powi(2)).sum();
            let got = sum_of(&a, |v| (v - 0.5) * (v - 0.5)) as f64;
            assert!(
                (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "{len}: {got} vs {want}"
            );
            let want: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            let got = sum_of_pairs(&a, &b, |x, y| x * y) as f64;
            assert!(
                (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "{len}: {got} vs {want}"
            );
        }
    }
}
