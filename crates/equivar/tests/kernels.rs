//! equivar's CPU conv kernels against references: the slice kernels against plain f64 loops
//! on random geometries (strides, padding, dilation, odd sizes, 1x1, batch 1), and the burn
//! extension (forward and autodiff backward) against burn's own conv2d.
//!
//! Tolerance: float32 sums of at most a few hundred products, compared with an f64 reference,
//! stay within ~1e-6 of the largest value; 1e-5 relative to it leaves a margin while any wrong
//! index or missing term shows up at order 1.

use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};
use equivar::ops::conv_cpu::{self, ConvShape, Wanted};
use equivar::ops::{self, Kernels, winograd_cpu};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};

const TOL: f64 = 1e-5;

/// Largest difference, relative to the reference's largest magnitude (at least 1).
fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs() as f64));
    let diff = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs() as f64));
    diff / scale
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

fn runner() -> TestRunner {
    let mut config = Config::with_cases(96);
    if config.rng_seed == RngSeed::Random {
        config.rng_seed = RngSeed::Fixed(0xC0_2026);
    }
    TestRunner::new(config)
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
    runner()
        .run(&case, |(s, x, w, b, dy)| {
            let all = Wanted {
                input: true,
                weight: true,
                bias: true,
            };
            let y = conv_cpu::forward(&s, &x, &w, Some(&b));
            let y_ref = conv_cpu::reference::forward(&s, &x, &w, Some(&b));
            prop_assert!(relative_error(&y, &y_ref) <= TOL, "forward {s:?}");
            let g = conv_cpu::backward(&s, &x, &w, &dy, all);
            let g_ref = conv_cpu::reference::backward(&s, &x, &w, &dy, all);
            let pairs = [
                ("input", &g.input, &g_ref.input),
                ("weight", &g.weight, &g_ref.weight),
                ("bias", &g.bias, &g_ref.bias),
            ];
            for (what, got, want) in pairs {
                let err = relative_error(got.as_ref().unwrap(), want.as_ref().unwrap());
                prop_assert!(err <= TOL, "{what} gradient {s:?}: {err:.2e}");
            }
            // Only what is asked for is computed.
            let only_input = conv_cpu::backward(
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
    let y = conv_cpu::forward(&s, &x, &w, None);
    let y_ref = conv_cpu::reference::forward(&s, &x, &w, None);
    assert!(relative_error(&y, &y_ref) <= TOL);
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
            let y = pool.install(|| conv_cpu::forward_then(&s, &x, &w, Some(&b), relu));
            let mut want = conv_cpu::reference::forward(&s, &x, &w, Some(&b));
            relu(&mut want);
            let e = relative_error(&y, &want);
            assert!(e <= TOL, "{threads} threads, {s:?}: {e:.2e}");
        }
    }
}

/// Winograd F(2x2, 3x3), forward, input and filter gradients, against the plain loops: odd and even sizes (partial tiles at the
/// border), padding 0-2, several images and channel counts, chunks split across 1-3 threads.
#[test]
fn winograd_forward_matches_the_reference_loops() {
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for (batch, c_in, c_out, height, width, padding) in [
            (1, 1, 1, 3, 3, 0),
            (2, 3, 5, 7, 9, 1),
            (3, 8, 6, 14, 14, 1),
            (1, 40, 40, 28, 28, 1),
            (2, 4, 3, 6, 5, 2),
            (2, 5, 7, 11, 8, 0),
        ] {
            let s = ConvShape {
                batch,
                c_in,
                height,
                width,
                c_out,
                kernel: 3,
                stride: 1,
                padding,
                dilation: 1,
            };
            let x: Vec<f32> = (0..s.input_len())
                .map(|i| ((i * 7) % 13) as f32 * 0.2 - 1.2)
                .collect();
            let w: Vec<f32> = (0..s.weight_len())
                .map(|i| ((i * 3) % 7) as f32 * 0.1 - 0.3)
                .collect();
            let b: Vec<f32> = (0..c_out).map(|i| 0.5 - i as f32 * 0.1).collect();
            let filter = winograd_cpu::WinogradFilter::new(&w, c_out, c_in);
            let got = pool.install(|| winograd_cpu::forward(&s, &x, &filter, &b, |_| {}));
            let want = conv_cpu::reference::forward(&s, &x, &w, Some(&b));
            let e = relative_error(&got, &want);
            assert!(e <= TOL, "{threads} threads, {s:?}: {e:.2e}");
            // The input gradient as a Winograd convolution of dy.
            let dy: Vec<f32> = (0..s.output_len())
                .map(|i| ((i * 5) % 9) as f32 * 0.25 - 1.0)
                .collect();
            let wanted = Wanted {
                input: true,
                weight: true,
                bias: false,
            };
            let want = conv_cpu::reference::backward(&s, &x, &w, &dy, wanted);
            let got = pool.install(|| winograd_cpu::input_grad(&s, &w, &dy));
            let e = relative_error(&got, want.input.as_ref().unwrap());
            assert!(
                e <= TOL,
                "input gradient, {threads} threads, {s:?}: {e:.2e}"
            );
            // The filter gradient, summed over tiles in the Winograd domain.
            let got = pool.install(|| winograd_cpu::weight_grad(&s, &x, &dy));
            let e = relative_error(&got, want.weight.as_ref().unwrap());
            assert!(
                e <= TOL,
                "filter gradient, {threads} threads, {s:?}: {e:.2e}"
            );
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

fn host(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn host1(t: Tensor<1>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// Forward and all three gradients through burn's autodiff: equivar's extension against
/// burn's conv2d, on the same tensors.
fn compare_with_burn(batch: usize, c_in: usize, size: usize, c_out: usize, window: [usize; 4]) {
    assert_eq!(ops::kernels(), Kernels::Equivar);
    let [k, stride, padding, dilation] = window;
    let device = Device::flex();
    let x = Tensor::<4>::random(
        [batch, c_in, size, size],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let w = Tensor::<4>::random([c_out, c_in, k, k], Distribution::Normal(0.0, 0.3), &device);
    let b = Tensor::<1>::random([c_out], Distribution::Normal(0.0, 1.0), &device);

    let run = |fast: bool| {
        let x = x.clone().autodiff().require_grad();
        let w = w.clone().autodiff().require_grad();
        let b = b.clone().autodiff().require_grad();
        let y = if fast {
            ops::conv2d(
                x.clone(),
                w.clone(),
                Some(b.clone()),
                stride,
                padding,
                dilation,
            )
        } else {
            let options = ConvOptions::new([stride; 2], [padding; 2], [dilation; 2], 1);
            burn_conv2d(x.clone(), w.clone(), Some(b.clone()), options)
        };
        // A non-uniform upstream gradient, sin(y) + 1: every output weighs differently.
        let grads = (y.clone() * y.clone().sin().detach() + y.clone())
            .sum()
            .backward();
        (
            host(y.clone()),
            host(x.grad(&grads).unwrap()),
            host(w.grad(&grads).unwrap()),
            host1(b.grad(&grads).unwrap()),
        )
    };
    let (y, gx, gw, gb) = run(true);
    let (y_ref, gx_ref, gw_ref, gb_ref) = run(false);
    let case = format!("batch {batch}, {c_in}->{c_out}, {size}x{size}, window {window:?}");
    for (what, got, want) in [
        ("output", &y, &y_ref),
        ("input gradient", &gx, &gx_ref),
        ("filter gradient", &gw, &gw_ref),
        ("bias gradient", &gb, &gb_ref),
    ] {
        let err = relative_error(got, want);
        assert!(
            err <= TOL,
            "{case}: {what} differs from burn's by {err:.2e}"
        );
    }

    // Inference (no autodiff) takes the plain Flex route.
    let y_plain = host(ops::conv2d(x, w, Some(b), stride, padding, dilation));
    assert!(
        relative_error(&y_plain, &y_ref) <= TOL,
        "{case}: inference output"
    );
}

#[test]
fn extension_matches_burn_conv2d_with_gradients() {
    // The abusing-p4 shapes (lifting 1->40, group 40->40 at 28 and 14, the 4x4 top layer),
    // a strided and a dilated window, batch 1 (GEMM-internal threads) and a 1x1 conv.
    compare_with_burn(3, 1, 28, 40, [3, 1, 1, 1]);
    compare_with_burn(2, 40, 14, 40, [3, 1, 1, 1]);
    compare_with_burn(2, 40, 14, 40, [4, 1, 0, 1]);
    compare_with_burn(3, 5, 29, 6, [3, 2, 1, 1]);
    compare_with_burn(2, 4, 11, 3, [3, 1, 2, 2]);
    compare_with_burn(1, 8, 9, 8, [3, 1, 1, 1]);
    compare_with_burn(2, 6, 5, 7, [1, 1, 0, 1]);
}

#[test]
fn strided_views_are_read_correctly() {
    // A transposed (non-contiguous) input must give the same result as its contiguous copy.
    let device = Device::flex();
    let x = Tensor::<4>::random([2, 3, 6, 8], Distribution::Normal(0.0, 1.0), &device);
    let w = Tensor::<4>::random([4, 3, 3, 3], Distribution::Normal(0.0, 1.0), &device);
    let view = x.clone().swap_dims(2, 3);
    let copy = Tensor::<4>::from_data(view.clone().into_data(), &device);
    let a = host(ops::conv2d(view, w.clone(), None, 1, 1, 1));
    let b = host(ops::conv2d(copy, w, None, 1, 1, 1));
    assert_eq!(a, b);
}

/// Training-mode batch norm: equivar's kernels against burn's `batch_norm_train`, outputs,
/// statistics and all three gradients (through the batch statistics).
#[test]
fn batch_norm_matches_burn_with_gradients() {
    assert_eq!(ops::kernels(), Kernels::Equivar);
    let device = Device::flex();
    for [batch, channels, h, w] in [[4, 10, 112, 28], [3, 5, 7, 9], [1, 2, 1, 1], [2, 3, 4, 4]] {
        let x = Tensor::<4>::random(
            [batch, channels, h, w],
            Distribution::Normal(0.7, 2.0),
            &device,
        );
        let gamma = Tensor::<1>::random([channels], Distribution::Normal(1.0, 0.5), &device);
        let beta = Tensor::<1>::random([channels], Distribution::Normal(0.0, 0.5), &device);
        let run = |fast: bool| {
            let x = x.clone().autodiff().require_grad();
            let gamma = gamma.clone().autodiff().require_grad();
            let beta = beta.clone().autodiff().require_grad();
            let (y, mean, var) = if fast {
                ops::batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-5)
            } else {
                let r = burn::tensor::module::batch_norm_train(
                    x.clone(),
                    gamma.clone(),
                    beta.clone(),
                    1e-5,
                );
                (r.output, r.mean, r.variance)
            };
            let grads = (y.clone() * y.clone().sin().detach() + y.clone())
                .sum()
                .backward();
            (
                host(y),
                host1(mean),
                host1(var),
                host(x.grad(&grads).unwrap()),
                host1(gamma.grad(&grads).unwrap()),
                host1(beta.grad(&grads).unwrap()),
            )
        };
        let (a, b) = (run(true), run(false));
        let case = format!("[{batch}, {channels}, {h}, {w}]");
        for (what, got, want) in [
            ("output", &a.0, &b.0),
            ("mean", &a.1, &b.1),
            ("variance", &a.2, &b.2),
            ("input gradient", &a.3, &b.3),
            ("gamma gradient", &a.4, &b.4),
            ("beta gradient", &a.5, &b.5),
        ] {
            let err = relative_error(got, want);
            assert!(
                err <= TOL,
                "{case}: batch-norm {what} differs from burn's by {err:.2e}"
            );
        }
    }
}

/// The running statistics a training-mode batch norm accumulates are what burn's would be.
#[test]
fn batch_norm_running_statistics_follow_the_batches() {
    use burn::module::Module;
    use equivar::field::FieldType;
    use equivar::group::Group;
    use equivar::nn::EquivariantBatchNorm;
    let device = Device::flex().autodiff();
    let field_type = FieldType::regular(Group::cyclic(4), 3);
    let norm = EquivariantBatchNorm::new("bn", field_type, 1e-5, 0.1, &device);
    let x = Tensor::<4>::random([8, 12, 5, 5], Distribution::Normal(3.0, 2.0), &device);
    for _ in 0..60 {
        let _ = norm.forward(x.clone());
    }
    let stepped = norm.valid();
    let mean = host1(stepped.norm.running_mean.value());
    let var = host1(stepped.norm.running_var.value());
    let xs = host(x.inner());
    let m = xs.iter().map(|v| *v as f64).sum::<f64>() / xs.len() as f64;
    println!("running mean {mean:?} var {var:?}, data mean {m}");
    for c in 0..3 {
        assert!((mean[c] as f64 - 3.0).abs() < 0.3, "running mean {mean:?}");
        assert!((var[c] as f64 - 4.0).abs() < 0.8, "running var {var:?}");
    }
}

/// The 2x2, stride-2 max pool: equivar's kernel against burn's, output and input gradient
/// through autodiff, on even and odd sizes (an odd last row and column are dropped).
#[test]
fn max_pool_matches_burn_with_gradients() {
    assert_eq!(ops::kernels(), Kernels::Equivar);
    let device = Device::flex();
    for dims in [[2, 3, 8, 6], [1, 4, 7, 9], [3, 2, 2, 2], [1, 1, 1, 5]] {
        let x = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
        let run = |fast: bool| {
            let x = x.clone().autodiff().require_grad();
            let y = if fast {
                ops::max_pool2d(x.clone(), 2, 2, 0, 1)
            } else {
                burn::tensor::module::max_pool2d(
                    x.clone(),
                    burn::tensor::ops::MaxPoolOptions::new([2, 2]).with_stride([2, 2]),
                )
            };
            let grads = (y.clone() * y.clone().sin().detach()).sum().backward();
            (host(y), host(x.grad(&grads).unwrap()))
        };
        let ((y, dx), (want_y, want_dx)) = (run(true), run(false));
        assert_eq!(y, want_y, "{dims:?}: max pool output");
        assert_eq!(dx, want_dx, "{dims:?}: max pool input gradient");
    }
    // Other windows keep burn's pool: a dilated 2x2/2 is not the fast path's window.
    let x = Tensor::<4>::random([1, 2, 9, 9], Distribution::Normal(0.0, 1.0), &device);
    let dilated = burn::tensor::module::max_pool2d(
        x.clone(),
        burn::tensor::ops::MaxPoolOptions::new([2, 2])
            .with_stride([2, 2])
            .with_dilation([2, 2]),
    );
    assert_eq!(host(ops::max_pool2d(x, 2, 2, 0, 2)), host(dilated));
}
