//! Winograd F(2x2, 3x3) and F(4x4, 3x3) against the convolution's plain f64 loops.

use crate::conv::{ConvShape, Wanted, reference};
use crate::test_util::{as_f64, on_each_shape, relative_error, values};
use crate::winograd::{self, TB, TileGrid, Tiling, spreads};

const TOL: f64 = 1e-5;

fn error(got: &[f32], want: &[f32]) -> f64 {
    relative_error(got, &as_f64(want), 1.0)
}

/// Winograd F(2x2, 3x3) and F(4x4, 3x3), forward, input and filter gradients, against the
/// plain loops: odd and even sizes (partial tiles at the border), padding 0-2, several images
/// and channel counts, chunks split across 1-3 threads.
#[test]
fn winograd_forward_matches_the_reference_loops() {
    let shapes = [
        (1, 1, 1, 3, 3, 0),
        (2, 3, 5, 7, 9, 1),
        (3, 8, 6, 14, 14, 1),
        (1, 40, 40, 28, 28, 1),
        (2, 4, 3, 6, 5, 2),
        (2, 5, 7, 11, 8, 0),
    ];
    on_each_shape(3, &shapes, |pool, s| {
        let threads = pool.current_num_threads();
        let x: Vec<f32> = (0..s.input_len())
            .map(|i| ((i * 7) % 13) as f32 * 0.2 - 1.2)
            .collect();
        let w: Vec<f32> = (0..s.weight_len())
            .map(|i| ((i * 3) % 7) as f32 * 0.1 - 0.3)
            .collect();
        let b: Vec<f32> = (0..s.c_out).map(|i| 0.5 - i as f32 * 0.1).collect();
        let filter = winograd::WinogradFilter::new(&w, s.c_out, s.c_in);
        let want = reference::forward(s, &x, &w, Some(&b));
        for tiling in [Tiling::F2, Tiling::F4] {
            let got = pool.install(|| winograd::forward_tiled(s, &x, &filter, &b, |_| {}, tiling));
            let e = error(&got, &want);
            assert!(e <= TOL, "{tiling:?}, {threads} threads, {s:?}: {e:.2e}");
        }
        // The input gradient as a Winograd convolution of dy.
        let dy: Vec<f32> = (0..s.output_len())
            .map(|i| ((i * 5) % 9) as f32 * 0.25 - 1.0)
            .collect();
        let wanted = Wanted {
            input: true,
            weight: true,
            bias: false,
        };
        let want = reference::backward(s, &x, &w, &dy, wanted);
        for tiling in [Tiling::F2, Tiling::F4] {
            let got = pool.install(|| winograd::input_grad_tiled(s, &w, &dy, tiling));
            let e = error(&got, want.input.as_ref().unwrap());
            assert!(
                e <= TOL,
                "input gradient, {tiling:?}, {threads} threads, {s:?}: {e:.2e}"
            );
        }
        // The filter gradient, summed over tiles in the Winograd domain.
        let got = pool.install(|| winograd::weight_grad(s, &x, &dy));
        let e = error(&got, want.weight.as_ref().unwrap());
        assert!(
            e <= TOL,
            "filter gradient, {threads} threads, {s:?}: {e:.2e}"
        );
    });
}

/// Winograd F(3x3, 4x4) for 4x4 windows, forward and input gradient, against the plain loops:
/// padding 0-3 (the input gradient's adjoint pads 3 - p), partial tiles at the border,
/// `abusing-p4`'s last conv (40 -> 40 channels, 14 x 14 -> 11 x 11), 1-3 threads.
#[test]
fn winograd_4x4_windows_match_the_reference_loops() {
    let shapes = [
        (1, 1, 1, 4, 4, 0),
        (2, 3, 5, 7, 9, 1),
        (3, 40, 40, 14, 14, 0),
        (2, 4, 3, 6, 5, 2),
        (1, 5, 7, 11, 8, 3),
        (2, 9, 8, 20, 17, 0),
    ];
    on_each_shape(4, &shapes, |pool, s| {
        let threads = pool.current_num_threads();
        let x = values(s.input_len(), 21);
        let w = values(s.weight_len(), 22);
        let b = values(s.c_out, 23);
        let filter = winograd::WinogradFilter::new(&w, s.c_out, s.c_in);
        assert_eq!(filter.kernel, 4);
        let want = reference::forward(s, &x, &w, Some(&b));
        let got = pool.install(|| winograd::forward(s, &x, &filter, &b, |_| {}));
        let e = error(&got, &want);
        assert!(e <= TOL, "forward, {threads} threads, {s:?}: {e:.2e}");
        let dy = values(s.output_len(), 24);
        let wanted = Wanted {
            input: true,
            weight: false,
            bias: false,
        };
        let want = reference::backward(s, &x, &w, &dy, wanted);
        let got = pool.install(|| winograd::input_grad(s, &w, &dy));
        let e = error(&got, want.input.as_ref().unwrap());
        assert!(
            e <= TOL,
            "input gradient, {threads} threads, {s:?}: {e:.2e}"
        );
    });
    // Which passes take it: the forward of 4x4 windows, the input gradient from a batch of
    // MIN_BATCH_4X4_INPUT_GRAD, not the filter gradient (F2 only).
    let s = ConvShape {
        batch: 1,
        c_in: 40,
        height: 14,
        width: 14,
        c_out: 40,
        kernel: 4,
        stride: 1,
        padding: 0,
        dilation: 1,
    };
    assert!(winograd::suits(&s));
    assert!(!winograd::input_grad_suits(&s) && !winograd::weight_grad_suits(&s));
    let batch = winograd::MIN_BATCH_4X4_INPUT_GRAD;
    assert!(winograd::input_grad_suits(&ConvShape { batch, ..s }));
    assert!(!winograd::input_grad_suits(&ConvShape {
        batch: batch - 1,
        ..s
    }));
    assert!(!winograd::input_grad_suits(&ConvShape {
        batch,
        padding: 4,
        ..s
    }));
    assert!(!winograd::weight_grad_suits(&ConvShape { batch, ..s }));
    assert_eq!(Tiling::for_window(4, 11, 11), Tiling::F3x4);
    assert_eq!(Tiling::for_window(3, 28, 28), Tiling::F4);
    assert!(!winograd::suits(&ConvShape { kernel: 5, ..s }));
}

/// A build of [`super::Stages::multiply`] against f64 loops: `m = u . v` over the first
/// `tiles` of `tiles + slack` columns, for each `(c_out, c_in, tiles)`; with `keeps_slack`,
/// the columns past the tiles must be left as they were.
pub(super) fn check_product(
    multiply: super::Product,
    cases: &[(usize, usize, usize)],
    slack: usize,
    keeps_slack: bool,
) {
    for &(c_out, c_in, tiles) in cases {
        let n = tiles + slack;
        let (u, v) = (values(c_out * c_in, 5), values(c_in * n, 6));
        let mut m = vec![f32::NAN; c_out * n];
        // SAFETY: the callers pass builds this CPU runs.
        unsafe { multiply((c_out, c_in, n, tiles), &u, &v, &mut m) };
        for co in 0..c_out {
            for t in 0..tiles {
                let want: f64 = (0..c_in)
                    .map(|ci| u[co * c_in + ci] as f64 * v[ci * n + t] as f64)
                    .sum();
                let got = m[co * n + t] as f64;
                assert!(
                    (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "{c_out}x{c_in}x{tiles} ({co}, {t}): {got} vs {want}"
                );
            }
            if keeps_slack {
                assert!(
                    m[co * n + tiles..][..slack].iter().all(|x| x.is_nan()),
                    "slack"
                );
            }
        }
    }
}

/// A build of [`super::Stages::multiply_transposed`] against f64 loops: `du += dm . v^T` over
/// the first `tiles` of `tiles + slack` columns, for each `(c_out, c_in, tiles)`.
pub(super) fn check_transposed_product(
    multiply_transposed: super::Product,
    cases: &[(usize, usize, usize)],
    slack: usize,
) {
    for &(c_out, c_in, tiles) in cases {
        let n = tiles + slack;
        let (dm, v) = (values(c_out * n, 7), values(c_in * n, 8));
        let before = values(c_out * c_in, 9);
        let mut du = before.clone();
        // SAFETY: the callers pass builds this CPU runs.
        unsafe { multiply_transposed((c_out, c_in, n, tiles), &dm, &v, &mut du) };
        for co in 0..c_out {
            for ci in 0..c_in {
                let want = before[co * c_in + ci] as f64
                    + (0..tiles)
                        .map(|t| dm[co * n + t] as f64 * v[ci * n + t] as f64)
                        .sum::<f64>();
                let got = du[co * c_in + ci] as f64;
                assert!(
                    (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "{c_out}x{c_in}x{tiles} ({co}, {ci}): {got} vs {want}"
                );
            }
        }
    }
}

/// F4 where its tiles cover the output with little waste, F2 elsewhere, as documented; every
/// size either way computes the convolution (above).
#[test]
fn the_tiling_follows_the_waste_at_the_border() {
    for (size, want) in [
        (28, Tiling::F4),
        (12, Tiling::F4),
        (7, Tiling::F4),
        (14, Tiling::F2),
        (9, Tiling::F2),
        (5, Tiling::F2),
        (1, Tiling::F2),
    ] {
        assert_eq!(Tiling::for_output(size, size), want, "{size} x {size}");
    }
    assert_eq!(Tiling::for_output(28, 14), Tiling::F4, "28 x 14: 64%");
}

/// A task's rows of V and M, and its planes, spread over the L1 cache's sets, also where the
/// tiles alone would put them a power of two apart (36 rows of 14 tiles and TB of slack make
/// 512 values); the stride stays within 64 values of that.
#[test]
fn task_rows_and_planes_spread_over_the_cache_sets() {
    assert!(!spreads(512) && !spreads(40 * 512) && !spreads(1024));
    assert!(spreads(16 * 33) && spreads(16 * 40) && !spreads(16 * 48));
    for (channels, size) in [(40, 28), (16, 28), (64, 28), (3, 14), (128, 56)] {
        let s = ConvShape {
            batch: 128,
            c_in: channels,
            height: size,
            width: size,
            c_out: 40,
            kernel: 3,
            stride: 1,
            padding: 1,
            dilation: 1,
        };
        let tiles = TileGrid::new(&s, Tiling::F2);
        for rows in 1..=80 {
            let (least, n) = (rows * tiles.cols + TB, tiles.stride(rows));
            assert!(
                (least..least + 64).contains(&n),
                "{channels} x {size}: {n} for {rows} rows"
            );
            assert!(
                spreads(n) && spreads(channels * n) && spreads(40 * n),
                "{channels} x {size}: {n}"
            );
        }
    }
    let grid = TileGrid::new(
        &ConvShape {
            batch: 1,
            c_in: 40,
            height: 28,
            width: 28,
            c_out: 40,
            kernel: 3,
            stride: 1,
            padding: 1,
            dilation: 1,
        },
        Tiling::F2,
    );
    assert_eq!(36 * grid.cols + TB, 512);
    assert_ne!(grid.stride(36), 512);
}
