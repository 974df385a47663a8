//! The FFT convolution against the convolution's plain f64 loops.

use crate::conv::{ConvShape, Wanted, reference};
use crate::fft_conv::{self, FftFilter, Grid, Pass, Tiling};
use crate::test_util::{as_f64, relative_error};

const TOL: f64 = 1e-5;

fn error(got: &[f32], want: &[f32]) -> f64 {
    relative_error(got, &as_f64(want), 1.0)
}

fn shape(
    batch: usize,
    c_in: usize,
    c_out: usize,
    (h, w): (usize, usize),
    k: usize,
    p: usize,
) -> ConvShape {
    ConvShape {
        batch,
        c_in,
        height: h,
        width: w,
        c_out,
        kernel: k,
        stride: 1,
        padding: p,
        dilation: 1,
    }
}

/// Windows 3-9 with every padding below them, square and oblong, odd and even sizes, a grid
/// smaller than the window (taps sharing a grid point), one image and several chunks of
/// images, on 1 and 3 threads: forward, input, filter and bias gradients.
#[test]
fn fft_conv_matches_the_reference_loops() {
    let mut cases = vec![
        shape(1, 1, 1, (5, 5), 5, 0),
        shape(2, 3, 4, (3, 3), 5, 1), // grid 4 < window 5
        shape(3, 5, 6, (12, 9), 7, 3),
        shape(1, 8, 8, (20, 20), 7, 3),
        shape(2, 4, 3, (11, 13), 9, 4),
        shape(2, 6, 5, (10, 10), 5, 2),
        shape(fft_conv_chunk() + 3, 2, 3, (6, 7), 5, 2), // two chunks of images
    ];
    for p in 0..7 {
        cases.push(shape(2, 3, 2, (9, 8), 7, p));
    }
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for s in &cases {
            let x: Vec<f32> = (0..s.input_len())
                .map(|i| ((i * 7) % 13) as f32 * 0.2 - 1.2)
                .collect();
            let w: Vec<f32> = (0..s.weight_len())
                .map(|i| ((i * 3) % 11) as f32 * 0.1 - 0.4)
                .collect();
            let b: Vec<f32> = (0..s.c_out).map(|i| 0.5 - i as f32 * 0.1).collect();
            let dy: Vec<f32> = (0..s.output_len())
                .map(|i| ((i * 5) % 9) as f32 * 0.25 - 1.0)
                .collect();
            let wanted = Wanted {
                input: true,
                weight: true,
                bias: true,
            };
            let (got, grads) = pool.install(|| {
                let filter = FftFilter::new(s, &w);
                let y = fft_conv::forward(s, &x, &filter, &b, |_| {});
                (y, fft_conv::backward(s, &x, &filter, &dy, wanted))
            });
            let want = reference::forward(s, &x, &w, Some(&b));
            let e = error(&got, &want);
            assert!(e <= TOL, "forward, {threads} threads, {s:?}: {e:.2e}");
            let want = reference::backward(s, &x, &w, &dy, wanted);
            for (name, got, want) in [
                ("input", &grads.input, &want.input),
                ("filter", &grads.weight, &want.weight),
                ("bias", &grads.bias, &want.bias),
            ] {
                let e = error(got.as_ref().unwrap(), want.as_ref().unwrap());
                assert!(
                    e <= TOL,
                    "{name} gradient, {threads} threads, {s:?}: {e:.2e}"
                );
            }
        }
    }
}

/// Tiles of every size from 2 up, on outputs their tiles cover exactly and with a cropped
/// last row and column, every padding below the window, oblong images, one and several
/// images, with an epilogue: the same values as the plain loops.
#[test]
fn tiled_fft_conv_matches_the_reference_loops() {
    let mut cases = vec![
        (shape(1, 4, 5, (20, 20), 7, 3), 16), // 2x2 tiles of 10
        (shape(1, 4, 5, (20, 20), 7, 3), 14), // 3x3 tiles of 8, the last cropped to 4
        (shape(2, 3, 2, (10, 13), 7, 3), 10),
        (shape(3, 2, 3, (9, 9), 5, 0), 8),
        (shape(1, 2, 2, (6, 6), 5, 2), 6),
    ];
    for p in 0..7 {
        cases.push((shape(2, 3, 2, (9, 8), 7, p), 8));
    }
    let clamp = |plane: &mut [f32]| plane.iter_mut().for_each(|v| *v = v.max(-0.5));
    for (s, patch) in cases {
        let tiling = Tiling { patch };
        let x: Vec<f32> = (0..s.input_len())
            .map(|i| ((i * 7) % 13) as f32 * 0.2 - 1.2)
            .collect();
        let w: Vec<f32> = (0..s.weight_len())
            .map(|i| ((i * 3) % 11) as f32 * 0.1 - 0.4)
            .collect();
        let b: Vec<f32> = (0..s.c_out).map(|i| 0.5 - i as f32 * 0.1).collect();
        let filter = FftFilter::new(&tiling.patch_shape(&s), &w);
        let got = fft_conv::forward_tiled(&s, &x, tiling, &filter, &b, clamp);
        let mut want = reference::forward(&s, &x, &w, Some(&b));
        clamp(&mut want);
        let e = error(&got, &want);
        assert!(e <= TOL, "tiles of patch {patch}, {s:?}: {e:.2e}");
    }
}

/// One image of e2-c8's 264->360 layer at 20x20 runs on tiles (4 on a 16-grid: 2x faster
/// than whole planes measured, which are no faster than the direct conv); a batch of 128
/// runs on whole planes; and one image takes the grid only because of the tiles.
#[test]
fn the_cost_model_tiles_a_lone_image() {
    let one = shape(1, 264, 360, (20, 20), 7, 3);
    assert_eq!(fft_conv::frozen_tiling(&one), Some(Tiling { patch: 16 }));
    assert!(fft_conv::suits(&one, Pass::Frozen));
    assert_eq!(
        fft_conv::frozen_tiling(&shape(128, 264, 360, (20, 20), 7, 3)),
        None
    );
}

fn fft_conv_chunk() -> usize {
    super::IMAGES_PER_CHUNK
}

/// Only the gradients asked for are computed, and a filter made for one geometry is refused
/// for another grid.
#[test]
fn fft_conv_computes_what_is_asked() {
    let s = shape(2, 3, 4, (8, 8), 5, 2);
    let x = vec![0.5f32; s.input_len()];
    let w = vec![0.1f32; s.weight_len()];
    let dy = vec![1.0f32; s.output_len()];
    let filter = FftFilter::new(&s, &w);
    let wanted = Wanted {
        input: false,
        weight: true,
        bias: false,
    };
    let g = fft_conv::backward(&s, &x, &filter, &dy, wanted);
    assert!(g.input.is_none() && g.bias.is_none() && g.weight.is_some());
    let other = shape(2, 3, 4, (20, 20), 5, 2);
    assert_ne!(Grid::of(&s), Grid::of(&other));
    assert!(!filter.fits(&other));
}

/// The grid lengths: even, 7-smooth, with room for the data and the padding.
#[test]
fn grid_lengths_are_small_smooth_and_large_enough() {
    for (size, padding, want) in [
        (20, 3, 24),
        (10, 3, 14),
        (5, 3, 8),
        (28, 0, 28),
        (3, 1, 4),
        (11, 0, 12),
    ] {
        let g = Grid::of(&shape(1, 1, 1, (size, size), padding + 1, padding));
        assert_eq!(g.n_h, want, "{size} + {padding}");
        assert_eq!(g.bins(), want * (want / 2 + 1));
    }
}

/// The layers the FFT path takes in the MNIST-rot models (7x7 at 20x20, 10x10, 5x5 with
/// hundreds of channels) and those it leaves to the direct conv (3x3, a lifting conv's one
/// input channel, a 5x5 window on a 5x5 input without padding: one output pixel).
#[test]
fn the_cost_model_takes_large_windows_on_many_channels() {
    expect_choices(&[
        (shape(64, 264, 360, (20, 20), 7, 3), Pass::Frozen, true),
        (shape(64, 400, 400, (10, 10), 7, 3), Pass::Frozen, true),
        (shape(64, 400, 720, (5, 5), 7, 3), Pass::Frozen, true),
        (shape(64, 264, 360, (20, 20), 3, 1), Pass::Frozen, false),
        (shape(64, 1, 264, (28, 28), 9, 0), Pass::Frozen, false),
        (shape(64, 720, 1080, (5, 5), 5, 0), Pass::Frozen, false),
    ]);
}

/// Asserts the cost model's choice for each `(shape, pass, takes the FFT path)`.
fn expect_choices(cases: &[(ConvShape, Pass, bool)]) {
    for (s, pass, want) in cases {
        assert_eq!(fft_conv::suits(s, *pass), *want, "{pass:?} {s:?}");
    }
}

/// A training step pays the filter's transform and one inverse per channel pair for the
/// filter gradient: worth it on a batch (2-6x faster measured at 16 and 128 images), not on
/// one image, where the direct step is 5x faster. (A lone image's frozen forward on whole
/// planes is bound by reading the filter's spectra; it runs on tiles, tested below.)
#[test]
fn the_cost_model_weighs_the_filter_transforms_against_the_batch() {
    expect_choices(&[
        (shape(16, 264, 360, (20, 20), 7, 3), Pass::Training, true),
        (shape(16, 400, 400, (10, 10), 7, 3), Pass::Training, true),
        (shape(128, 264, 360, (20, 20), 7, 3), Pass::Training, true),
        (shape(128, 400, 400, (10, 10), 7, 3), Pass::Training, true),
        (shape(128, 400, 720, (5, 5), 7, 3), Pass::Training, true),
        (shape(1, 264, 360, (20, 20), 7, 3), Pass::Training, false),
        (shape(1, 400, 720, (5, 5), 7, 3), Pass::Training, false),
        // An untracked forward on live weights transforms the filter too.
        (shape(128, 264, 360, (20, 20), 7, 3), Pass::Forward, true),
        (shape(4, 264, 360, (20, 20), 7, 3), Pass::Forward, false),
    ]);
}
