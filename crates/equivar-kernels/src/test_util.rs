//! What the kernels' tests share: deterministic values and errors relative to f64 references.

use proptest::test_runner::{Config, RngSeed, TestRunner};

use crate::conv::ConvShape;

/// Largest difference, relative to the reference's largest magnitude (at least `floor`).
pub fn relative_error(got: &[f32], want: &[f64], floor: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let scale = want.iter().fold(floor, |m, v| m.max(v.abs()));
    let diff = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
    diff / scale
}

pub fn as_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|x| *x as f64).collect()
}

/// Deterministic pseudo-random values in [-1, 1) (xorshift).
pub fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// A proptest runner with a fixed seed unless one is asked for (`PROPTEST_RNG_SEED`).
pub fn runner(cases: u32) -> TestRunner {
    let mut config = Config::with_cases(cases);
    if config.rng_seed == RngSeed::Random {
        config.rng_seed = RngSeed::Fixed(0xC0_2026);
    }
    TestRunner::new(config)
}

/// `check(pool, s)` for each shape `(batch, c_in, c_out, height, width, padding)` of a
/// `kernel x kernel` window, stride 1, in pools of 1 and 3 threads (tasks split across them).
pub fn on_each_shape(
    kernel: usize,
    shapes: &[(usize, usize, usize, usize, usize, usize)],
    check: impl Fn(&rayon::ThreadPool, &ConvShape),
) {
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for &(batch, c_in, c_out, height, width, padding) in shapes {
            let s = ConvShape {
                batch,
                c_in,
                height,
                width,
                c_out,
                kernel,
                stride: 1,
                padding,
                dilation: 1,
            };
            check(&pool, &s);
        }
    }
}
