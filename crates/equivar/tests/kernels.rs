//! equivar's kernels behind burn's tensors (the backend extension, forward and autodiff
//! backward) against burn's own ops, chosen per call by a `Kernels` value. The slice kernels'
//! tests against f64 loops live with them, in the equivar-kernels crate.
//!
//! Tolerance: float32 sums of at most a few hundred products stay within ~1e-6 of the
//! largest value; 1e-5 relative to it leaves a margin while any wrong index or missing term
//! shows up at order 1.

use burn::tensor::{Device, Distribution, Tensor};
use equivar::ops::{self, Kernels};
use equivar_kernels::conv::ConvShape;
use equivar_kernels::fft_conv::{self, Pass};

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

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// Forward and all three gradients through burn's autodiff: equivar's extension (with and
/// without Winograd) against burn's conv2d, on the same tensors.
fn compare_with_burn(batch: usize, c_in: usize, size: usize, c_out: usize, window: [usize; 4]) {
    for kernels in [Kernels::Equivar, Kernels::Direct] {
        compare_conv(kernels, batch, c_in, size, c_out, window);
    }
}

fn compare_conv(
    kernels: Kernels,
    batch: usize,
    c_in: usize,
    size: usize,
    c_out: usize,
    window: [usize; 4],
) {
    let [k, stride, padding, dilation] = window;
    let device = Device::flex();
    let x = Tensor::<4>::random(
        [batch, c_in, size, size],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let w = Tensor::<4>::random([c_out, c_in, k, k], Distribution::Normal(0.0, 0.3), &device);
    let b = Tensor::<1>::random([c_out], Distribution::Normal(0.0, 1.0), &device);

    let run = |kernels: Kernels| {
        let x = x.clone().autodiff().require_grad();
        let w = w.clone().autodiff().require_grad();
        let b = b.clone().autodiff().require_grad();
        let y = ops::conv2d(
            x.clone(),
            w.clone(),
            Some(b.clone()),
            stride,
            padding,
            dilation,
            kernels,
        );
        // A non-uniform upstream gradient, sin(y) + 1: every output weighs differently.
        let grads = (y.clone() * y.clone().sin().detach() + y.clone())
            .sum()
            .backward();
        (
            host(y.clone()),
            host(x.grad(&grads).unwrap()),
            host(w.grad(&grads).unwrap()),
            host(b.grad(&grads).unwrap()),
        )
    };
    let (y, gx, gw, gb) = run(kernels);
    let (y_ref, gx_ref, gw_ref, gb_ref) = run(Kernels::Burn);
    let case =
        format!("{kernels}: batch {batch}, {c_in}->{c_out}, {size}x{size}, window {window:?}");
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
    let y_plain = host(ops::conv2d(
        x,
        w,
        Some(b),
        stride,
        padding,
        dilation,
        kernels,
    ));
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
    compare_with_burn(2, 40, 28, 40, [3, 1, 1, 1]);
    compare_with_burn(2, 40, 14, 40, [3, 1, 1, 1]);
    compare_with_burn(2, 40, 14, 40, [4, 1, 0, 1]);
    compare_with_burn(3, 5, 29, 6, [3, 2, 1, 1]);
    compare_with_burn(2, 4, 11, 3, [3, 1, 2, 2]);
    compare_with_burn(1, 8, 9, 8, [3, 1, 1, 1]);
    compare_with_burn(2, 6, 5, 7, [1, 1, 0, 1]);
}

/// A 7x7 layer wide enough, on a batch large enough, that equivar's kernels run it on the
/// FFT grid in training (filter transform, forward, both gradients) and in an untracked
/// forward; the direct kernels and burn's conv2d give the same values.
#[test]
fn fft_convolutions_match_burn_conv2d_with_gradients() {
    let shape = ConvShape {
        batch: 32,
        c_in: 96,
        height: 10,
        width: 10,
        c_out: 96,
        kernel: 7,
        stride: 1,
        padding: 3,
        dilation: 1,
    };
    assert!(fft_conv::suits(&shape, Pass::Training) && fft_conv::suits(&shape, Pass::Forward));
    compare_with_burn(32, 96, 10, 96, [7, 1, 3, 1]);
}

#[test]
fn strided_views_are_read_correctly() {
    // A transposed (non-contiguous) input must give the same result as its contiguous copy.
    let device = Device::flex();
    let x = Tensor::<4>::random([2, 3, 6, 8], Distribution::Normal(0.0, 1.0), &device);
    let w = Tensor::<4>::random([4, 3, 3, 3], Distribution::Normal(0.0, 1.0), &device);
    let view = x.clone().swap_dims(2, 3);
    let copy = Tensor::<4>::from_data(view.clone().into_data(), &device);
    let a = host(ops::conv2d(
        view,
        w.clone(),
        None,
        1,
        1,
        1,
        Kernels::Equivar,
    ));
    let b = host(ops::conv2d(copy, w, None, 1, 1, 1, Kernels::Equivar));
    assert_eq!(a, b);
}

/// Training-mode batch norm: equivar's kernels against burn's `batch_norm_train`, outputs,
/// statistics and all three gradients (through the batch statistics); and with the ReLU in
/// the same op, against equivar's batch norm then ReLU as two ops (the same mask, bit for
/// bit, so an output at the kink cannot tell them apart).
#[test]
fn batch_norm_matches_burn_with_gradients() {
    let device = Device::flex();
    for [batch, channels, h, w] in [[4, 10, 112, 28], [3, 5, 7, 9], [1, 2, 1, 1], [2, 3, 4, 4]] {
        let x = Tensor::<4>::random(
            [batch, channels, h, w],
            Distribution::Normal(0.7, 2.0),
            &device,
        );
        let gamma = Tensor::<1>::random([channels], Distribution::Normal(1.0, 0.5), &device);
        let beta = Tensor::<1>::random([channels], Distribution::Normal(0.0, 0.5), &device);
        // (fused ReLU, ReLU as its own op, kernels)
        let run = |(fused, relu_after, kernels): (bool, bool, Kernels)| {
            let x = x.clone().autodiff().require_grad();
            let gamma = gamma.clone().autodiff().require_grad();
            let beta = beta.clone().autodiff().require_grad();
            let (y, mean, var) = ops::batch_norm_train(
                x.clone(),
                (gamma.clone(), beta.clone()),
                1e-5,
                fused,
                kernels,
            );
            let y = if relu_after { ops::relu(y, kernels) } else { y };
            let grads = (y.clone() * y.clone().sin().detach() + y.clone())
                .sum()
                .backward();
            (
                host(y),
                host(mean),
                host(var),
                host(x.grad(&grads).unwrap()),
                host(gamma.grad(&grads).unwrap()),
                host(beta.grad(&grads).unwrap()),
            )
        };
        let equivar = Kernels::Equivar;
        for (what, ours, reference) in [
            ("", (false, false, equivar), (false, false, Kernels::Burn)),
            (" + ReLU", (true, false, equivar), (false, true, equivar)),
        ] {
            let (a, b) = (run(ours), run(reference));
            let case = format!("[{batch}, {channels}, {h}, {w}]{what}");
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
                    "{case}: batch-norm {what} differs from the reference by {err:.2e}"
                );
            }
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
    let mean = host(stepped.norm.running_mean.value());
    let var = host(stepped.norm.running_var.value());
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
    let device = Device::flex();
    for dims in [[2, 3, 8, 6], [1, 4, 7, 9], [3, 2, 2, 2], [1, 1, 1, 5]] {
        let x = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
        let run = |kernels: Kernels| {
            let x = x.clone().autodiff().require_grad();
            let y = ops::max_pool2d(x.clone(), 2, 2, 0, 1, kernels);
            let grads = (y.clone() * y.clone().sin().detach()).sum().backward();
            (host(y), host(x.grad(&grads).unwrap()))
        };
        let ((y, dx), (want_y, want_dx)) = (run(Kernels::Equivar), run(Kernels::Burn));
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
    assert_eq!(
        host(ops::max_pool2d(x, 2, 2, 0, 2, Kernels::Equivar)),
        host(dilated)
    );
}

/// equivar's ReLU (on all threads) equals burn's, values and input gradients, through autodiff,
/// with exact zeros in the input (whose gradient burn's definition stops) and on a map large
/// enough to be split among tasks.
#[test]
fn relu_matches_burn_with_gradients() {
    let device = Device::flex();
    for dims in [[2, 3, 8, 6], [4, 40, 28, 28]] {
        let x = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
        // Every seventh value exactly 0.
        let x = x
            .clone()
            .mask_fill(x.clone().mul_scalar(7.0).round().equal_elem(0.0), 0.0);
        let run = |kernels: Kernels| {
            let x = x.clone().autodiff().require_grad();
            let y = ops::relu(x.clone(), kernels);
            let grads = (y.clone() * y.clone().cos().detach()).sum().backward();
            (host(y), host(x.grad(&grads).unwrap()))
        };
        let ((y, dx), (want_y, want_dx)) = (run(Kernels::Equivar), run(Kernels::Burn));
        assert!(want_y.contains(&0.0) && want_dx.contains(&0.0));
        assert_eq!(y, want_y, "{dims:?}: relu output");
        assert_eq!(dx, want_dx, "{dims:?}: relu input gradient");
    }
}

/// The kernel choice is a value of the model: `with_kernels` sets every layer, survives
/// `valid()` and the frozen lowering, `with_layer_kernels` sets one layer; every choice
/// computes the same function (to float32 rounding), and an unknown layer is named.
#[test]
fn a_models_kernel_choice_is_its_own() {
    use burn::module::Module;
    use equivar::models;
    use equivar::plan::Exactness;
    let device = Device::flex();
    device.seed(7);
    let net = models::spec("abusing-p4")
        .unwrap()
        .init(28, Exactness::Require, &device)
        .unwrap();
    let x = Tensor::<4>::random([3, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
    let logits = |net: &equivar::nn::Net| host(net.logits(x.clone()).unwrap());
    let want = logits(&net.clone().with_kernels(Kernels::Burn));
    for kernels in [Kernels::Equivar, Kernels::Direct] {
        let chosen = net.clone().with_kernels(kernels);
        assert_eq!(chosen.kernels, kernels);
        assert_eq!(chosen.valid().kernels, kernels, "valid() keeps the choice");
        let e = relative_error(&logits(&chosen), &want);
        assert!(e <= TOL, "{kernels} vs burn: {e:.2e}");
    }
    // Training keeps the choice through `valid()` of an autodiff model and through loading a
    // record (a checkpoint) into it.
    let ad = device.clone().autodiff();
    let trained = models::spec("abusing-p4")
        .unwrap()
        .init(28, Exactness::Require, &ad)
        .unwrap()
        .with_kernels(Kernels::Direct);
    let loaded = trained.clone().load_record(trained.clone().into_record());
    assert_eq!(loaded.kernels, Kernels::Direct);
    assert_eq!(loaded.valid().kernels, Kernels::Direct);
    let layer_kernels = |net: &equivar::nn::Net| match &net.layers[0] {
        equivar::layers::Layer::LiftingConv(conv) => conv.geometry.kernels,
        other => panic!("abusing-p4 starts with a lifting conv, not {other:?}"),
    };
    assert_eq!(layer_kernels(&trained.valid()), Kernels::Direct);
    // One layer on burn's ops, the rest on equivar's: the same function again.
    let name = net.plan.layers[1].name.clone();
    let mixed = net
        .clone()
        .with_layer_kernels(&name, Kernels::Burn)
        .unwrap();
    assert!(relative_error(&logits(&mixed), &want) <= TOL);
    let err = net
        .clone()
        .with_layer_kernels("nope", Kernels::Burn)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`nope`") && err.contains(&name), "{err}");
    // Kernels by name, as the CLI passes them.
    assert_eq!("direct".parse::<Kernels>().unwrap(), Kernels::Direct);
    // The name before the FFT path, which older saved models carry.
    assert_eq!("no-winograd".parse::<Kernels>().unwrap(), Kernels::Direct);
    let err = "fast".parse::<Kernels>().unwrap_err().to_string();
    assert!(err.contains("`fast`") && err.contains("direct"), "{err}");
}

/// In training, a model runs each batch norm and the ReLU after it as one op: the logits and
/// the gradients (input and first conv's filter) are those of the layers run one by one,
/// which `forward_layers` does. Inference, a batch norm before another layer and a ReLU on
/// other kernels do not fuse.
#[test]
fn a_training_model_fuses_batch_norm_and_relu_to_the_same_function() {
    use burn::module::Module;
    use equivar::layers::Layer;
    use equivar::models;
    use equivar::plan::Exactness;
    let ad = Device::flex().autodiff();
    ad.seed(11);
    let net = models::spec("abusing-p4")
        .unwrap()
        .init(28, Exactness::Require, &ad)
        .unwrap();
    let x = Tensor::<4>::random([2, 1, 28, 28], Distribution::Normal(0.0, 1.0), &ad);
    let r = Tensor::<4>::random([2, 10, 1, 1], Distribution::Normal(0.0, 1.0), &ad);
    let run = |fused: bool| {
        let x = x.clone().require_grad();
        let y = if fused {
            net.try_forward(x.clone()).unwrap()
        } else {
            net.forward_layers(x.clone()).unwrap().pop().unwrap()
        };
        let grads = (y.clone() * r.clone()).sum().backward();
        let Layer::LiftingConv(conv) = &net.layers[0] else {
            panic!("abusing-p4 starts with a lifting conv")
        };
        let filter = conv.weight.val().grad(&grads).unwrap();
        (host(y), host(x.grad(&grads).unwrap()), host(filter))
    };
    let (fused, layered) = (run(true), run(false));
    assert_eq!(fused.0, layered.0, "logits");
    for (what, got, want) in [
        ("input gradient", &fused.1, &layered.1),
        ("filter gradient", &fused.2, &layered.2),
    ] {
        let e = relative_error(got, want);
        assert!(e <= TOL, "{what}: {e:.2e}");
    }
    // Which pairs fuse: bn1 + act1 in training; not bn1 + conv2, nor in inference.
    let (bn, act, conv) = (&net.layers[1], &net.layers[2], &net.layers[3]);
    assert!(matches!(bn, Layer::BatchNorm(_)) && matches!(act, Layer::Activation(_)));
    let h = Tensor::<4>::random([2, 40, 28, 28], Distribution::Normal(0.0, 1.0), &ad);
    assert!(bn.forward_fused(act, &h).is_some());
    assert!(bn.forward_fused(conv, &h).is_none());
    // A ReLU the model was told to run on other kernels than its batch norm stays its own op.
    let name = net.plan.layers[2].name.clone();
    let mixed = net
        .clone()
        .with_layer_kernels(&name, Kernels::Burn)
        .unwrap();
    assert!(
        mixed.layers[1]
            .forward_fused(&mixed.layers[2], &h)
            .is_none()
    );
    let valid = net.valid();
    let h = h.inner();
    assert!(
        valid.layers[1]
            .forward_fused(&valid.layers[2], &h)
            .is_none()
    );
}
