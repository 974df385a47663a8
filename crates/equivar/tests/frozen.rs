//! The frozen inference model computes what the net computes in inference mode: filters
//! expanded once, batch norms folded into the convolutions, activations fused, on models
//! whose every parameter and running statistic has been moved off its initial value.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Distribution, Tensor};
use equivar::field::{FeatureType, FieldType};
use equivar::frozen::OrbitConvs::{Always, Never, WhereFaster};
use equivar::group::{Group, PlanarGroup};
use equivar::layers::{EquivariantSubsample, EquivariantUpsample, Linear};
use equivar::models;
use equivar::nn::Net;
use equivar::plan::Exactness;
use equivar::space::Window;
use equivar::spec::{Activation, NetSpec, Reduce};

use equivar_kernels::conv::ConvShape;
use equivar_kernels::fft_conv::{self, Pass};

mod common;

use common::{host, relative_error};

/// Adds noise to every float parameter (weights, biases, batch norm scales and shifts), so
/// that no fold can pass by an initial zero or one.
struct Perturb;

impl ModuleMapper for Perturb {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| {
            let noise = Tensor::random(t.shape(), Distribution::Normal(0.0, 0.3), &t.device());
            t + noise
        })
    }
}

/// `spec` at `size`, perturbed, with running statistics recalibrated on random images.
fn prepared(spec: &NetSpec, size: usize, device: &Device) -> Net {
    let ad = device.clone().autodiff();
    let net = spec
        .init(size, Exactness::AllowApproximate, &ad)
        .unwrap()
        .map(&mut Perturb);
    let channels = net.plan.input_type.channels();
    let batches = (0..2).map(|_| {
        Tensor::<4>::random(
            [8, channels, size, size],
            Distribution::Normal(0.3, 1.0),
            &ad,
        )
    });
    net.recalibrate_batch_norm(batches).unwrap();
    net
}

fn compare(net: &Net, batch: usize, device: &Device) -> f64 {
    let (channels, n) = (net.plan.input_type.channels(), net.plan.input_size);
    let x = Tensor::<4>::random(
        [batch, channels, n, n],
        Distribution::Normal(0.3, 1.0),
        device,
    );
    let inference = net.valid();
    let want = host(inference.forward(x.clone()));
    let shape = [batch, channels, n, n];
    let mut worst = 0.0f64;
    // With the fast transforms (Winograd, FFT; the default) and with im2col + GEMM only;
    // with the orbit form of the convolutions that have one (the default) and without.
    for (fast, orbits) in [true, false]
        .into_iter()
        .flat_map(|fast| [Never, WhereFaster, Always].map(|o| (fast, o)))
    {
        let frozen = net
            .to_frozen()
            .unwrap()
            .with_fast_transforms(fast)
            .with_orbit_convs(orbits);
        let (got, got_shape) = frozen.forward(&host(x.clone()), shape).unwrap();
        assert_eq!(
            got_shape.to_vec(),
            inference.forward(x.clone()).dims().to_vec()
        );
        worst = worst.max(relative_error(&got, &want));
    }
    worst
}

#[test]
fn frozen_reference_models_match_the_inference_net() {
    let device = Device::flex();
    device.seed(3);
    for name in ["abusing-p4", "abusing-p4m", "abusing-z2", "cohen-p4cnn"] {
        let net = prepared(&models::spec(name).unwrap(), 28, &device);
        for batch in [1, 3] {
            let e = compare(&net, batch, &device);
            assert!(e <= 1e-5, "{name} batch {batch}: relative error {e:.2e}");
        }
        // The tensor entry point (what evaluation calls) gives the inference net's logits.
        let x = Tensor::<4>::random([3, 1, 28, 28], Distribution::Normal(0.3, 1.0), &device);
        let want = host(net.valid().logits(x.clone()).unwrap());
        let got = net.to_frozen().unwrap().tensor_logits(x).unwrap();
        assert_eq!(got.dims(), [3, 10]);
        let e = relative_error(&host(got), &want);
        assert!(e <= 1e-5, "{name} tensor logits: relative error {e:.2e}");
    }
}

/// A batch large enough to run in chunks of images through the whole net (the last chunk
/// shorter) gives the inference net's outputs, in order; a net with FFT layers keeps its batch.
#[test]
fn a_batch_in_chunks_matches_the_inference_net() {
    let device = Device::flex();
    device.seed(5);
    let net = prepared(&models::spec("abusing-p4").unwrap(), 28, &device);
    let batch = 40;
    let chunk = net.to_frozen().unwrap().images_per_chunk(batch);
    assert!(
        chunk < batch && batch % chunk != 0,
        "chunks of {chunk} for a batch of {batch}"
    );
    let e = compare(&net, batch, &device);
    assert!(
        e <= 1e-5,
        "abusing-p4 batch {batch}: relative error {e:.2e}"
    );
    let hnet = prepared(&models::spec("hnet").unwrap(), 28, &device);
    assert_eq!(hnet.to_frozen().unwrap().images_per_chunk(128), 128);
}

/// A narrow E2SFCNN over C8 (96-channel 7x7 layers) on a batch of 32: the frozen model runs
/// its wide 7x7 convolutions on the FFT grid (the cost model's choice, checked here) and
/// matches the inference net, as does the same model on im2col + GEMM alone.
#[test]
fn frozen_fft_convolutions_match_the_inference_net() {
    let device = Device::flex();
    device.seed(5);
    let spec = models::e2::e2sfcnn(
        "e2-c8-narrow",
        PlanarGroup::Cyclic(8),
        [4, 12, 12, 12, 12, 12],
        None,
        16,
    );
    let wide = ConvShape {
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
    assert!(
        fft_conv::suits(&wide, Pass::Frozen),
        "the FFT path must be the one tested"
    );
    let net = prepared(&spec, 28, &device);
    let e = compare(&net, 32, &device);
    assert!(e <= 1e-5, "relative error {e:.2e}");
}

/// e2-c8 on one image: its 264->360 7x7 layer runs on FFT tiles in the frozen model (the
/// cost model's choice, checked here), and the frozen model matches the inference net.
#[test]
fn frozen_fft_tiles_match_the_inference_net() {
    let device = Device::flex();
    device.seed(6);
    let lone = ConvShape {
        batch: 1,
        c_in: 264,
        height: 20,
        width: 20,
        c_out: 360,
        kernel: 7,
        stride: 1,
        padding: 3,
        dilation: 1,
    };
    assert!(fft_conv::suits(&lone, Pass::Frozen) && fft_conv::frozen_tiling(&lone).is_some());
    let net = prepared(&models::spec("e2-c8").unwrap(), 28, &device);
    let e = compare(&net, 1, &device);
    assert!(e <= 1e-5, "relative error {e:.2e}");
}

/// Batch norms after an activation (not foldable), activations after a pool, a mean pool
/// with padding, a leaky ReLU and an ELU: the steps that are not fused.
#[test]
fn unfused_steps_match_the_inference_net() {
    let device = Device::flex();
    device.seed(4);
    let conv3 = Window::new(3).padding(1);
    let spec = NetSpec::new("unfused", FieldType::trivial(Group::Cyclic(4), 2))
        .lifting_conv(3, conv3)
        .activation(Activation::LeakyRelu {
            negative_slope: 0.1,
        })
        .batch_norm()
        .avg_pool(Window::new(3).stride(2).padding(1))
        .activation(Activation::Elu { alpha: 0.7 })
        .group_conv(4, Window::new(3).dilation(2))
        .batch_norm()
        .max_pool(Window::new(2).stride(1).padding(1))
        .activation(Activation::Tanh)
        .group_pool(Reduce::Mean)
        .global_avg_pool()
        .linear(5);
    let net = prepared(&spec, 17, &device);
    let e = compare(&net, 2, &device);
    assert!(e <= 1e-5, "relative error {e:.2e}");
}

#[test]
fn a_wrong_input_is_a_named_error() {
    let device = Device::flex();
    let net = models::spec("abusing-p4")
        .unwrap()
        .init(28, Exactness::Require, &device)
        .unwrap();
    let frozen = net.to_frozen().unwrap();
    let x = vec![0.0f32; 27 * 27];
    let e = frozen.forward(&x, [1, 1, 27, 27]).unwrap_err().to_string();
    assert!(
        e.contains("frozen model `abusing-p4`") && e.contains("28x28"),
        "{e}"
    );
    let e = frozen.logits(&x, [1, 1, 28, 28]).unwrap_err().to_string();
    assert!(e.contains("as many values"), "{e}");
}

/// Convolutions whose filters commute with the grid's quarter turns (and, for dihedral
/// groups, its mirrors) run in the frozen model on one output channel per orbit, on the
/// moved copies of their input (`compare` runs the models with and without that form). The
/// H-Net's irrep fields have orbits of one or two channels under the quarter turns, so none
/// of its convolutions has the form; nor do the plain CNN's.
#[test]
fn orbit_convolutions_match_the_inference_net() {
    let device = Device::flex();
    device.seed(8);
    let narrow =
        |name, group, restrict| models::e2::e2sfcnn(name, group, [2, 3, 3, 3, 3, 4], restrict, 16);
    let cases = [
        (
            narrow("e2-c8-narrow", PlanarGroup::Cyclic(8), None),
            vec![4; 6],
        ),
        (
            narrow(
                "e2-d16c16-narrow",
                PlanarGroup::Dihedral(16),
                Some(PlanarGroup::Cyclic(16)),
            ),
            // The batch norm per C16 field after the restriction, folded into the fifth
            // convolution, keeps only its quarter turns.
            vec![8, 8, 8, 8, 4, 4],
        ),
        (models::spec("abusing-p4m").unwrap(), vec![8; 7]),
        (models::spec("abusing-p4").unwrap(), vec![4; 7]),
        (models::spec("hnet").unwrap(), vec![0; 7]),
        (models::spec("abusing-z2").unwrap(), vec![0; 7]),
    ];
    for (spec, want) in cases {
        let net = prepared(&spec, 28, &device);
        let orders = net.to_frozen().unwrap().orbit_orders();
        assert_eq!(orders, want, "{}: the orbit forms' |S|", spec.name);
        for batch in [1, 2] {
            let e = compare(&net, batch, &device);
            assert!(
                e <= 1e-5,
                "{} batch {batch}: relative error {e:.2e}",
                spec.name
            );
        }
    }
}

/// Equivariant subsampling and upsampling in the frozen model: the subsampling reference
/// models and a D4 model with irrep fields through both layers match
/// the inference net at 27, 28 and 29, and the frozen model is itself exactly invariant under
/// its group's grid symmetries at each size, as the net is.
#[test]
fn frozen_equivariant_resampling_matches_and_stays_exact() {
    let device = Device::flex();
    device.seed(12);
    let k3 = Window::new(3).padding(1);
    let irreps = NetSpec::new("d4-resample", "D4: trivial".parse::<FeatureType>().unwrap())
        .r2_conv("2x trivial + 2x irrep(1,1) + regular", k3)
        .push("down", EquivariantSubsample { stride: 2 })
        .r2_conv("trivial + 2x irrep(1,1) + 2x regular", k3)
        .push("up", EquivariantUpsample { stride: 2 })
        .r2_conv("3x trivial + irrep(1,1)", k3)
        .norm_pool()
        .global_avg_pool()
        .push(
            "fc",
            Linear {
                out_features: 5,
                bias: true,
            },
        );
    let specs = [
        models::spec("abusing-p4-subsample").unwrap(),
        models::spec("abusing-p4m-subsample").unwrap(),
        irreps,
    ];
    for spec in specs {
        for n in [27, 28, 29] {
            let net = prepared(&spec, n, &device);
            let e = compare(&net, 2, &device);
            assert!(e <= 1e-5, "{} at {n}: relative error {e:.2e}", spec.name);
            let frozen = net.to_frozen().unwrap();
            let x = Tensor::<4>::random([2, 1, n, n], Distribution::Normal(0.3, 1.0), &device);
            let logits = |x: Tensor<4>| frozen.logits(&host(x), [2, 1, n, n]).unwrap();
            let want = logits(x.clone());
            let input = &net.plan.input_type;
            for g in spec.group().pixel_grid_elements() {
                let e = relative_error(&logits(input.act(g, x.clone()).unwrap()), &want);
                assert!(e <= 1e-5, "{} at {n}, {g:?}: {e:.2e}", spec.name);
            }
        }
    }
}
