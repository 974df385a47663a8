//! equivar's CPU kernels on plain `f32` slices (NCHW layout), where burn's generic ops are
//! slow: im2col + GEMM convolutions ([`conv`]), Winograd F(2x2, 3x3) ([`winograd`]),
//! training-mode batch norm ([`batch_norm`]), 2x2 max pooling ([`pool`]) and DISCO's sparse
//! sphere contractions ([`disco`]), plus an allocator that keeps large buffers on huge pages
//! ([`huge_pages`]).
//!
//! No tensors and no burn here: `equivar` registers these kernels as a burn backend extension
//! and chooses, per model or layer, whether they or burn's ops run. Each kernel is tested
//! against a plain f64 loop written from its definition (the `reference` modules, built for
//! the tests only). Instruction sets are chosen at run time ([`Isa`]): AVX-512 and AVX2 + FMA
//! builds where the CPU has them, plain code everywhere else; `EQUIVAR_ISA` forces a narrower
//! one, so every path is tested on one machine. [`peak`] measures what the cores can do.

/// Defines `fn $name(isa: Isa, args)`, which runs the kernel `$f::<FMA>` (generic over
/// whether fused multiply-adds are available) in the build `isa` asks for: compiled for
/// AVX-512 (F + VL: the compiler may use 16-lane registers, and 8-lane code gets 32 of
/// them) where `isa` and the CPU allow it, else for AVX2 + FMA, else plain (`FMA = false`).
/// The attributes go on the builds (e.g. `#[inline(never)]`).
macro_rules! isa_builds {
    ($(#[$attr:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) = $f:ident::<FMA>) => {
        #[allow(clippy::too_many_arguments)]
        fn $name(isa: $crate::Isa, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                $(#[$attr])*
                unsafe fn avx512($($arg: $ty),*) {
                    $f::<true>($($arg),*)
                }

                #[target_feature(enable = "avx2,fma")]
                $(#[$attr])*
                unsafe fn avx2($($arg: $ty),*) {
                    $f::<true>($($arg),*)
                }

                if isa.uses_avx512() {
                    // SAFETY: the CPU has AVX-512F, VL, AVX2 and FMA (Isa::uses_avx512).
                    return unsafe { avx512($($arg),*) };
                }
                if isa.uses_avx2() {
                    // SAFETY: the CPU has AVX2 and FMA (Isa::uses_avx2).
                    return unsafe { avx2($($arg),*) };
                }
            }
            let _ = isa;
            $f::<false>($($arg),*)
        }
    };
}

pub mod activation;
pub mod batch_norm;
pub mod conv;
pub mod disco;
pub mod fft_conv;
pub mod gate;
pub mod huge_pages;
pub mod peak;
pub mod pool;
pub mod spherical_harmonics;
pub mod tensor_product;
#[cfg(test)]
mod test_util;
pub mod winograd;

pub use conv::sgemm_gflops;
pub use huge_pages::{HugePageAllocator, set_block_reuse, set_huge_pages};

/// `len` values made by `fill(i, part)` on the `i`-th part of `chunk` values (the last may be
/// shorter), the parts in parallel, each zeroed by its own task just before `fill`: in cache
/// and on every thread, where a zeroed allocation up front was one thread's serial pass over
/// the whole buffer (batch norm and pooling: 2.5% of a training step on one core).
pub(crate) fn par_zeroed(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    use rayon::prelude::*;
    let mut values = Vec::with_capacity(len);
    values.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(i, part)| fill(i, init_rows(part, part.len().max(1), |_| 0.0)));
    // SAFETY: the parts cover the first `len` values, each written above.
    unsafe { values.set_len(len) };
    values
}

/// `y` with row `r` (of `n` values) set to `value(r)`, as initialised values.
pub(crate) fn init_rows(
    y: &mut [std::mem::MaybeUninit<f32>],
    n: usize,
    value: impl Fn(usize) -> f32,
) -> &mut [f32] {
    for (r, row) in y.chunks_mut(n).enumerate() {
        row.fill(std::mem::MaybeUninit::new(value(r)));
    }
    // SAFETY: every value of `y` was written just above; MaybeUninit<f32> has f32's layout.
    unsafe { &mut *(y as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) }
}

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

    /// Over the first `len` values of `v`'s spare capacity, not yet written: the tasks must
    /// write every one of them before the caller sets `v`'s length to `len`.
    pub(crate) fn spare(v: &mut Vec<f32>, len: usize) -> Self {
        let spare = &mut v.spare_capacity_mut()[..len];
        SharedOut {
            ptr: spare.as_mut_ptr() as usize,
            len,
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

/// An instruction-set build of a kernel, ordered from the plainest to the widest. The public
/// entry points use [`Isa::detect`]: the widest build this CPU runs, or a narrower one named by
/// the `EQUIVAR_ISA` environment variable (`plain`, `avx2`, `avx512`), so every path can be
/// forced and tested on one machine. Tests also run every build this CPU has directly
/// (`*_with` functions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust, any CPU.
    Plain,
    /// Built for AVX2 + FMA (x86_64 CPUs that have them).
    Avx2Fma,
    /// Built for AVX-512F (with AVX-512VL for 8-lane code; x86_64 CPUs that have them).
    Avx512,
}

/// The environment variable that narrows [`Isa::detect`].
pub const ISA_VARIABLE: &str = "EQUIVAR_ISA";

impl Isa {
    /// Every build, plainest first.
    pub const ALL: [Isa; 3] = [Isa::Plain, Isa::Avx2Fma, Isa::Avx512];

    /// The name `EQUIVAR_ISA` and the benchmarks use.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Plain => "plain",
            Isa::Avx2Fma => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Whether this CPU runs this build (checked at run time).
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Plain => true,
            Isa::Avx2Fma => has_avx2_fma(),
            Isa::Avx512 => has_avx512(),
        }
    }

    /// The widest build this CPU runs, whatever `EQUIVAR_ISA` says.
    pub fn widest() -> Isa {
        *Isa::ALL
            .iter()
            .rev()
            .find(|isa| isa.is_supported())
            .unwrap_or(&Isa::Plain)
    }

    /// The build the kernels run: [`Isa::widest`], narrowed by `EQUIVAR_ISA` when it is set
    /// (read once per process). A value that is not a build name, or names a build this CPU
    /// lacks, is reported once on stderr and ignored; [`Isa::from_env`] turns it into an
    /// error for programs that want to refuse it.
    pub fn detect() -> Isa {
        static CHOSEN: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| match Isa::from_env() {
            Ok(Some(isa)) => isa,
            Ok(None) => Isa::widest(),
            Err(message) => {
                eprintln!("warning: {message}; using {}", Isa::widest().name());
                Isa::widest()
            }
        })
    }

    /// The build `EQUIVAR_ISA` asks for (None when unset or empty), or why it cannot be run.
    pub fn from_env() -> Result<Option<Isa>, String> {
        match std::env::var(ISA_VARIABLE) {
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("{ISA_VARIABLE} is not valid Unicode"))
            }
            Ok(value) if value.trim().is_empty() => Ok(None),
            Ok(value) => {
                let isa = Isa::parse(value.trim())
                    .map_err(|message| format!("{ISA_VARIABLE}={value}: {message}"))?;
                if isa.is_supported() {
                    Ok(Some(isa))
                } else {
                    Err(format!(
                        "{ISA_VARIABLE}={value}: this CPU does not run the {} build (it runs {})",
                        isa.name(),
                        Isa::available()
                            .iter()
                            .map(|isa| isa.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            }
        }
    }

    /// A build by name: `plain`, `avx2` or `avx512`.
    pub fn parse(name: &str) -> Result<Isa, String> {
        Isa::ALL
            .into_iter()
            .find(|isa| isa.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("`{name}` is not an instruction set; use plain, avx2 or avx512"))
    }

    /// Every build this CPU runs, plainest first.
    pub fn available() -> Vec<Isa> {
        Isa::ALL
            .into_iter()
            .filter(|isa| isa.is_supported())
            .collect()
    }

    /// The build for the kernels compiled from portable Rust by `isa_builds!` (DISCO,
    /// spherical harmonics, tensor products, batch norm, pooling), where the compiler picks
    /// the vector width:
    /// [`Isa::detect`], except that unless `EQUIVAR_ISA` asks for `avx512`, a CPU whose
    /// 512-bit instructions run as two 256-bit halves gets the AVX2 build. On such a CPU
    /// (AMD Zen 4) the AVX-512 builds of these kernels measured no faster and up to 1.4x
    /// slower (DISCO at 128x256: forward + backward 26-32 ms against 22-23 ms), while the
    /// hand-written AVX-512 Winograd products gained 5-15%.
    /// Decided once per process, as [`Isa::detect`] is: kernels ask per plane or ring.
    pub fn for_autovectorized() -> Isa {
        static CHOSEN: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let isa = Isa::detect();
            let asked = matches!(Isa::from_env(), Ok(Some(Isa::Avx512)));
            if isa == Isa::Avx512 && !asked && !has_full_width_avx512() {
                Isa::Avx2Fma
            } else {
                isa
            }
        })
    }

    /// Whether kernels should run their AVX2 + FMA (8-lane) code: the chosen build is AVX2
    /// or wider. Wider builds reuse the 8-lane code where they have no code of their own.
    pub fn uses_avx2(self) -> bool {
        self >= Isa::Avx2Fma && has_avx2_fma()
    }

    /// Whether kernels should run their AVX-512 code.
    pub fn uses_avx512(self) -> bool {
        self >= Isa::Avx512 && has_avx512()
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

/// Whether this CPU runs the AVX-512 builds: AVX-512F and VL (8-lane code in the 32
/// registers), on top of AVX2 + FMA.
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx2_fma()
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU executes 512-bit instructions at full width: every AVX-512 CPU except
/// AMD's before Zen 5 (family 0x1A), which split each one into two 256-bit halves (the same
/// FMA peak as AVX2: `equivar bench` measures both). Decided from CPUID, not timed, so a
/// machine always picks the same builds and its results round the same way run to run.
pub fn has_full_width_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if !has_avx512() {
            return false;
        }
        #[allow(unused_unsafe)]
        // SAFETY: CPUID leaves 0 and 1 exist on every x86_64 CPU.
        let (vendor, signature) = unsafe {
            let v = std::arch::x86_64::__cpuid(0);
            (
                [
                    v.ebx.to_le_bytes(),
                    v.edx.to_le_bytes(),
                    v.ecx.to_le_bytes(),
                ]
                .concat(),
                std::arch::x86_64::__cpuid(1).eax,
            )
        };
        full_width_by_cpuid(&vendor, signature)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// [`has_full_width_avx512`]'s rule on CPUID's vendor string and leaf-1 signature (EAX):
/// false for AMD before family 0x1A (Zen 5); a family is the base family 0xF plus the
/// extended family.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn full_width_by_cpuid(vendor: &[u8], signature: u32) -> bool {
    let base = (signature >> 8) & 0xf;
    let family = if base == 0xf {
        base + ((signature >> 20) & 0xff)
    } else {
        base
    };
    !(vendor == b"AuthenticAMD" && family < 0x1a)
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
#[inline(always)]
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
#[inline(always)]
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
    use super::{Isa, sum_of, sum_of_pairs};

    /// The half-width rule on real signatures: Zen 4 (EPYC 9004, family 0x19) splits 512-bit
    /// ops, Zen 5 (family 0x1A) and Intel Sapphire Rapids (family 6) do not.
    #[test]
    fn half_width_avx512_is_amd_before_zen_5() {
        use super::full_width_by_cpuid;
        assert!(!full_width_by_cpuid(b"AuthenticAMD", 0x00A1_0F11));
        assert!(full_width_by_cpuid(b"AuthenticAMD", 0x00B0_0F00));
        assert!(full_width_by_cpuid(b"GenuineIntel", 0x0008_06F8));
    }

    /// Build names round-trip, a bad name is refused with the choices, and the builds this
    /// CPU runs are ordered with the widest last (the one `detect` picks when unforced).
    #[test]
    fn builds_parse_by_name_and_the_widest_is_last() {
        for isa in Isa::ALL {
            assert_eq!(Isa::parse(isa.name()), Ok(isa));
            assert_eq!(Isa::parse(&isa.name().to_uppercase()), Ok(isa));
        }
        let message = Isa::parse("avx9").unwrap_err();
        assert!(message.contains("avx9") && message.contains("plain, avx2 or avx512"));
        let available = Isa::available();
        assert_eq!(available[0], Isa::Plain);
        assert!(available.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Isa::widest(), *available.last().unwrap());
        assert!(Isa::detect().is_supported());
        assert!(!Isa::Plain.uses_avx2() && !Isa::Avx2Fma.uses_avx512());
        // The portable kernels never run wider than the chosen build.
        assert!(Isa::for_autovectorized() <= Isa::detect());
        assert!(!super::has_full_width_avx512() || super::has_avx512());
    }

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
