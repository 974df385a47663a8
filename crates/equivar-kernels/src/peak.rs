//! The machine's fp32 multiply-add peak, measured: each thread runs independent chains of
//! fused multiply-adds on registers only (no loads, no stores), enough of them to cover the
//! FMA latency on every port. The benchmarks report their shares of this figure, not of a
//! GEMM library's rate, so "70% of peak" means 70% of what the cores can do.

use std::time::Instant;

use crate::Isa;

/// Independent accumulator chains per thread: an FMA takes 4 cycles on current x86 cores
/// and two issue per cycle, so 8 chains keep both ports busy; 12 leaves headroom for cores
/// with longer latency, and with the two operands they fit the 16 AVX2 registers.
const CHAINS: usize = 12;

/// Multiply-adds per chain in one timed run (per thread): ~5 ms at 5 GHz x 2 ports / 12.
const STEPS: usize = 2_000_000;

/// The peak fp32 rate of `isa`'s widest FMA on `threads` threads, in GFLOP/s (a multiply-add
/// counts two): the best of a few timed runs, each thread on its own OS thread so the figure
/// does not depend on a thread pool. None for a build without FMA ([`Isa::Plain`]) or one
/// this CPU lacks.
pub fn fma_peak_gflops(isa: Isa, threads: usize) -> Option<f64> {
    let lanes = match isa {
        Isa::Plain => return None,
        _ if !isa.is_supported() => return None,
        Isa::Avx2Fma => 8,
        Isa::Avx512 => 16,
    };
    let threads = threads.max(1);
    let flops = (threads * CHAINS * STEPS * lanes * 2) as f64;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| std::hint::black_box(chains(isa, STEPS)));
            }
        });
        best = best.min(start.elapsed().as_secs_f64());
    }
    Some(flops / best / 1e9)
}

/// Runs [`CHAINS`] FMA chains of `steps` steps with `isa`'s registers; returns their sum so
/// the work cannot be dropped.
fn chains(isa: Isa, steps: usize) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `fma_peak_gflops` calls this only for a build the CPU supports.
        unsafe {
            match isa {
                Isa::Avx512 => return x86::chains_avx512(steps),
                Isa::Avx2Fma => return x86::chains_avx2(steps),
                Isa::Plain => {}
            }
        }
    }
    let _ = (isa, steps);
    0.0
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::CHAINS;

    /// The multiplier and addend: `acc = acc * A + B` from 0 rises towards B / (1 - A) = 1,
    /// far from overflow and denormals. Opaque to the compiler, so it cannot fold the chains.
    fn operands() -> (f32, f32) {
        std::hint::black_box((0.999_999, 0.000_001))
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn chains_avx2(steps: usize) -> f32 {
        let (a, b) = operands();
        let (a, b) = (_mm256_set1_ps(a), _mm256_set1_ps(b));
        let mut acc = [_mm256_setzero_ps(); CHAINS];
        for _ in 0..steps {
            for chain in acc.iter_mut() {
                *chain = _mm256_fmadd_ps(*chain, a, b);
            }
        }
        let mut lanes = [0.0f32; 8];
        let sum = acc
            .iter()
            .fold(_mm256_setzero_ps(), |s, &c| _mm256_add_ps(s, c));
        // SAFETY: `lanes` holds 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
        lanes.iter().sum()
    }

    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn chains_avx512(steps: usize) -> f32 {
        let (a, b) = operands();
        let (a, b) = (_mm512_set1_ps(a), _mm512_set1_ps(b));
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..steps {
            for chain in acc.iter_mut() {
                *chain = _mm512_fmadd_ps(*chain, a, b);
            }
        }
        let sum = acc
            .iter()
            .fold(_mm512_setzero_ps(), |s, &c| _mm512_add_ps(s, c));
        _mm512_reduce_add_ps(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chains compute what they claim (a skipped or shortened loop would not reach the
    /// closed form `(1 - A^k)` per lane after k steps from 0), and the measured rate is
    /// positive and below a physical bound: 2 FMA ports x 16 lanes x 2 flops x 6 GHz.
    #[test]
    fn chains_converge_and_the_rate_is_plausible() {
        for isa in Isa::available() {
            let Some(gflops) = fma_peak_gflops(isa, 1) else {
                assert_eq!(isa, Isa::Plain, "every FMA build has a peak");
                continue;
            };
            let lanes = if isa == Isa::Avx512 { 16.0 } else { 8.0 };
            assert!(
                gflops > 0.5 && gflops < 2.0 * lanes * 2.0 * 6.0,
                "{isa:?}: {gflops}"
            );
            let steps = 1000;
            let per_lane = 1.0 - 0.999_999f64.powi(steps as i32);
            let want = CHAINS as f64 * lanes * per_lane;
            let sum = chains(isa, steps) as f64;
            assert!((sum - want).abs() < 1e-3 * want, "{isa:?}: {sum} vs {want}");
        }
    }
}
