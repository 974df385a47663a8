//! The im2col + GEMM convolution against plain f64 loops, on random geometries (strides,
//! padding, dilation, odd sizes, 1x1, batch 1) and in thread pools that split single images.
//!
//! Tolerance: float32 sums of at most a few hundred products, compared with an f64 reference,
//! stay within ~1e-6 of the largest value; 1e-5 relative to it leaves a margin while any wrong
//! index or missing term shows up at order 1.

use proptest::prelude::*;

use super::reference;
use crate::conv::{self, ConvShape, Wanted};
use crate::test_util::{as_f64, relative_error, runner};

const TOL: f64 = 1e-5;

/// Error relative to the reference's largest magnitude (at least 1).
fn error(got: &[f32], want: &[f32]) -> f64 {
    relative_error(got, &as_f64(want), 1.0)
}

fn geometry() -> impl Strategy<Value = ConvShape> {
    (
        (1usize..4, 1usize..6, 1usize..6),
        (1usize..13, 1usize..13),
        (1usize..5, 1usize..4, 0usize..3, 1usize..3),
    )
        .prop_map(
            |((batch, c_in, c_out), (height, width), (kernel, stride, padding, dilation))| {
                ConvShape {
                    batch,
                    c_in,
                    height,
                    width,
                    c_out,
                    kernel,
                    stride,
                    padding,
                    dilation,
                }
            },
        )
        .prop_filter("window must fit", |s| s.validate().is_ok())
}

fn values(len: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-1.0f32..1.0, len)
}

#[test]
fn slice_kernels_match_the_reference_loops() {
    let case = geometry().prop_flat_map(|s| {
        (
            Just(s),
            values(s.input_len()),
            values(s.weight_len()),
            values(s.c_out),
            values(s.output_len()),
        )
    });
    let shapes_seen = std::cell::Cell::new((0usize, 0usize, 0usize));
    runner(96)
        .run(&case, |(s, x, w, b, dy)| {
            let all = Wanted {
                input: true,
                weight: true,
                bias: true,
            };
            let y = conv::forward(&s, &x, &w, Some(&b));
            let y_ref = reference::forward(&s, &x, &w, Some(&b));
            prop_assert!(error(&y, &y_ref) <= TOL, "forward {s:?}");
            let g = conv::backward(&s, &x, &w, &dy, all);
            let g_ref = reference::backward(&s, &x, &w, &dy, all);
            let pairs = [
                ("input", &g.input, &g_ref.input),
                ("weight", &g.weight, &g_ref.weight),
                ("bias", &g.bias, &g_ref.bias),
            ];
            for (what, got, want) in pairs {
                let err = error(got.as_ref().unwrap(), want.as_ref().unwrap());
                prop_assert!(err <= TOL, "{what} gradient {s:?}: {err:.2e}");
            }
            // Only what is asked for is computed.
            let only_input = conv::backward(
                &s,
                &x,
                &w,
                &dy,
                Wanted {
                    input: true,
                    weight: false,
                    bias: false,
                },
            );
            prop_assert!(only_input.weight.is_none() && only_input.bias.is_none());
            prop_assert_eq!(only_input.input, g.input);
            let (strided, dilated, pointwise) = shapes_seen.get();
            shapes_seen.set((
                strided + (s.stride > 1) as usize,
                dilated + (s.dilation > 1) as usize,
                pointwise + (s.kernel == 1 && s.padding == 0 && s.stride == 1) as usize,
            ));
            Ok(())
        })
        .unwrap();
    let (strided, dilated, pointwise) = shapes_seen.get();
    assert!(
        strided > 10 && dilated > 10 && pointwise > 0,
        "the random geometries must cover strides, dilation and the 1x1 path: {:?}",
        shapes_seen.get()
    );
}

#[test]
fn forward_without_bias_is_the_plain_product() {
    let s = ConvShape {
        batch: 2,
        c_in: 3,
        height: 7,
        width: 6,
        c_out: 4,
        kernel: 3,
        stride: 2,
        padding: 1,
        dilation: 1,
    };
    let x: Vec<f32> = (0..s.input_len()).map(|i| (i % 7) as f32 - 3.0).collect();
    let w: Vec<f32> = (0..s.weight_len()).map(|i| (i % 5) as f32 * 0.5).collect();
    let y = conv::forward(&s, &x, &w, None);
    let y_ref = reference::forward(&s, &x, &w, None);
    assert!(error(&y, &y_ref) <= TOL);
    assert_eq!(y.len(), 2 * 4 * 4 * 3);
}

/// With fewer images than threads the forward splits each image's output rows into bands
/// (one im2col + GEMM per band): odd heights, strides, padding, dilation and a bias, in pools
/// of 2, 3 and 4 threads so the split is taken whatever the machine.
#[test]
fn banded_forward_matches_the_reference_loops() {
    for threads in [2, 3, 4] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for (batch, size, window) in [
            (1, 13, [3, 1, 1, 1]),
            (2, 17, [3, 2, 1, 1]),
            (1, 11, [3, 1, 2, 2]),
        ] {
            let [kernel, stride, padding, dilation] = window;
            let s = ConvShape {
                batch,
                c_in: 3,
                height: size,
                width: size - 2,
                c_out: 5,
                kernel,
                stride,
                padding,
                dilation,
            };
            let x: Vec<f32> = (0..s.input_len())
                .map(|i| ((i * 7) % 11) as f32 - 5.0)
                .collect();
            let w: Vec<f32> = (0..s.weight_len())
                .map(|i| (i % 5) as f32 * 0.3 - 0.6)
                .collect();
            let b: Vec<f32> = (0..s.c_out).map(|i| i as f32 - 2.0).collect();
            let relu = |y: &mut [f32]| y.iter_mut().for_each(|v| *v = v.max(0.0));
            let y = pool.install(|| conv::forward_then(&s, &x, &w, Some(&b), relu));
            let mut want = reference::forward(&s, &x, &w, Some(&b));
            relu(&mut want);
            let e = error(&y, &want);
            assert!(e <= TOL, "{threads} threads, {s:?}: {e:.2e}");
        }
    }
}

#[test]
fn invalid_geometry_is_named() {
    let s = ConvShape {
        batch: 1,
        c_in: 1,
        height: 2,
        width: 2,
        c_out: 1,
        kernel: 5,
        stride: 1,
        padding: 0,
        dilation: 1,
    };
    let err = s.validate().unwrap_err().to_string();
    assert!(err.contains("5x5") && err.contains("2x2"), "{err}");
}
