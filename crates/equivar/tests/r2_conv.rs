//! The steerable convolution `r2_conv`: exactly equivariant (float32, <= 1e-5 relative) under
//! every element of its group that maps the pixel grid to itself, at the sizes the plan calls
//! exact, for feature types of every kind and every group family; inexact where the plan says
//! so; its export and frozen lowering compute what the module computes; bad settings are clear
//! errors.

mod common;

use burn::module::Param;
use burn::tensor::{Device, Distribution, Tensor};
use common::{host, relative_error};
use equivar::check::{equivariance_report, max_errors};
use equivar::field::FeatureType;
use equivar::nn::R2Conv2d;
use equivar::plan::{Exactness, Plan};
use equivar::space::Window;
use equivar::spec::{Activation, NetSpec};

const EXACT_TOL: f64 = 1e-5;

fn random(shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// (input type, output terms, window, input size): every group family, regular, quotient,
/// irreps and trivial fields, strides, padding and dilation, all at plan-exact sizes.
fn exact_cases() -> Vec<(&'static str, &'static str, Window, usize)> {
    vec![
        ("C8: trivial", "4x regular", Window::new(5).padding(2), 11),
        (
            "C8: 2x regular",
            "3x regular + irrep(1) + irrep(4) + trivial",
            Window::new(3).stride(2).padding(1),
            9,
        ),
        (
            "C16: regular + quotient(C4)",
            "regular + irrep(2)",
            Window::new(7).padding(6).dilation(2),
            14,
        ),
        (
            "D4: regular + irrep(1,1)",
            "2x regular + irrep(0,2) + quotient(C2)",
            Window::new(5).padding(2),
            10,
        ),
        (
            "D16: regular",
            "2x regular + irrep(1,3)",
            Window::new(5),
            13,
        ),
        (
            "SO(2): 2x irrep(1) + trivial",
            "irrep(2) + 2x irrep(1) + trivial",
            Window::new(7).padding(3),
            12,
        ),
        (
            "O(2): irrep(1,1) + irrep(1,0)",
            "irrep(1,2) + 2x irrep(0,0) + irrep(1,1)",
            Window::new(5).stride(3).padding(2),
            10,
        ),
        ("C3: 2x regular", "regular", Window::new(3).padding(1), 8),
    ]
}

fn out_type(input: &FeatureType, terms: &str) -> FeatureType {
    format!("{}: {terms}", input.group).parse().unwrap()
}

/// The layer with random (nonzero) biases, so the bias is tested too.
fn layer(input: &FeatureType, output: &FeatureType, window: Window, device: &Device) -> R2Conv2d {
    let layer = R2Conv2d::new("r2", input, output, window, None, true, device).unwrap();
    let bias = layer.bias.as_ref().map(|b| {
        Param::from_tensor(Tensor::random(
            b.val().dims(),
            Distribution::Normal(0.0, 1.0),
            device,
        ))
    });
    R2Conv2d { bias, ..layer }
}

#[test]
fn r2_conv_is_exactly_equivariant_under_the_grid_elements_at_exact_sizes() {
    let device = Device::flex();
    device.seed(11);
    for (input, terms, window, size) in exact_cases() {
        let in_type: FeatureType = input.parse().unwrap();
        let output = out_type(&in_type, terms);
        let plan = Plan::new(
            &NetSpec::new("t", in_type.clone()).r2_conv(terms, window),
            size,
        )
        .unwrap();
        assert!(plan.exact, "{input} -> {terms} at {size} should be exact");
        let conv = layer(&in_type, &output, window, &device);
        let x = random([2, in_type.channels(), size, size], &device);
        let y = conv.forward(x.clone());
        assert_eq!(y.dims()[1], output.channels());
        assert!(
            y.clone().abs().max().into_scalar::<f64>() > 1e-3,
            "a zero layer"
        );
        let elements = in_type.group.pixel_grid_elements();
        let mut worst = 0.0f64;
        for &g in &elements {
            let moved = conv.forward(in_type.act(g, x.clone()).unwrap());
            let (_, rel) = max_errors(&output.act(g, y.clone()).unwrap(), &moved);
            worst = worst.max(rel);
        }
        println!(
            "{input} -> {terms} ({} grid elements, {} coefficients): max rel error {worst:.2e}",
            elements.len(),
            conv.geometry.weight_len()
        );
        assert!(worst <= EXACT_TOL, "{input} -> {terms}: {worst:e}");
    }
}

#[test]
fn the_plan_and_the_measurement_agree_at_inexact_sizes() {
    let device = Device::flex();
    device.seed(12);
    let spec = NetSpec::new("t", "C8: trivial".parse::<FeatureType>().unwrap())
        .r2_conv("2x regular", Window::new(3).stride(2).padding(1));
    for (size, exact) in [(9, true), (10, false)] {
        let plan = Plan::new(&spec, size).unwrap();
        assert_eq!(plan.exact, exact, "at {size}");
        let net = spec
            .init(size, Exactness::AllowApproximate, &device)
            .unwrap();
        let report = equivariance_report(&net, random([2, 1, size, size], &device)).unwrap();
        // C8's elements on the grid: the quarter turns.
        assert_eq!(report.elements.len(), 3);
        if exact {
            assert!(report.max_rel_error <= EXACT_TOL, "{report}");
        } else {
            assert!(report.max_rel_error >= 1e-3, "{report}");
        }
    }
    let err = Plan::new(&spec, 10)
        .unwrap()
        .require(Exactness::Require)
        .unwrap_err()
        .to_string();
    assert!(err.contains("conv1") && err.contains("9"), "{err}");
}

#[test]
fn the_bias_lives_on_the_trivial_irreps_only() {
    let device = Device::flex();
    let input: FeatureType = "C4: regular".parse().unwrap();
    let output = out_type(&input, "regular + irrep(1) + 2x trivial");
    let conv = R2Conv2d::new("r2", &input, &output, Window::new(3), None, true, &device).unwrap();
    // One trivial irrep in the regular field, none in irrep(1), one in each trivial field.
    assert_eq!(conv.geometry.bias_len(), 3);
    let bias = Tensor::from_floats([1.0, 2.0, 3.0], &device);
    let expanded = host(conv.geometry.bias(bias));
    // The regular field's constant is its trivial Fourier component: equal on all four
    // components (1 / sqrt(4) each); the irrep gets none.
    let want = [0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 2.0, 3.0];
    assert!(relative_error(&expanded, &want) < 1e-6, "{expanded:?}");
    // No trivial irrep, no bias.
    let irreps = out_type(&input, "irrep(1) + irrep(2)");
    let conv = R2Conv2d::new("r2", &input, &irreps, Window::new(3), None, true, &device).unwrap();
    assert!(conv.bias.is_none());
}

#[test]
fn export_and_frozen_compute_what_the_module_computes() {
    let device = Device::flex();
    device.seed(13);
    let spec = NetSpec::new("t", "C8: trivial".parse::<FeatureType>().unwrap())
        .r2_conv("4x regular", Window::new(5).padding(2))
        .relu()
        .r2_conv("2x regular + irrep(1) + trivial", Window::new(3).stride(2))
        .r2_conv("3x trivial", Window::new(3).padding(1));
    let size = 13;
    let net = spec.init(size, Exactness::Require, &device).unwrap();
    let x = random([3, 1, size, size], &device);
    let want = host(net.forward(x.clone()));
    let exported = host(net.export().unwrap().forward(x.clone()));
    let shape = [3, 1, size, size];
    let (frozen, _) = net
        .to_frozen()
        .unwrap()
        .forward(&host(x.clone()), shape)
        .unwrap();
    let (e, f) = (
        relative_error(&exported, &want),
        relative_error(&frozen, &want),
    );
    println!("export {e:.2e}, frozen {f:.2e}");
    assert!(e <= 1e-5 && f <= 1e-5, "export {e:e}, frozen {f:e}");
    // The model is exactly equivariant at this size, end to end.
    let report = equivariance_report(&net, x).unwrap();
    assert!(report.max_rel_error <= EXACT_TOL, "{report}");
}

#[test]
fn a_model_file_with_steerable_convs_round_trips() {
    let spec = NetSpec::new("t", "D4: 2x trivial".parse::<FeatureType>().unwrap())
        .r2_conv("regular + irrep(1,1)", Window::new(3).padding(1));
    let value = serde_json::to_value(&spec).unwrap();
    assert_eq!(value["input"], "D4: 2x trivial");
    assert_eq!(value["layers"][0]["kind"], "r2_conv");
    assert_eq!(NetSpec::from_value(&value, "round trip").unwrap(), spec);
    // The G-CNN form of the input written by earlier versions still reads.
    let mut old = value.clone();
    old["input"] = serde_json::json!({"group": "D4", "fields": 2, "repr": "trivial"});
    assert_eq!(NetSpec::from_value(&old, "old input").unwrap(), spec);
}

#[test]
fn bad_steerable_settings_are_clear_errors() {
    let c8: FeatureType = "C8: trivial".parse().unwrap();
    let plan_error = |spec: NetSpec| Plan::new(&spec, 16).unwrap_err().to_string();
    let w = Window::new(3).padding(1);

    let err = plan_error(NetSpec::new("t", c8.clone()).r2_conv("D4: regular", w));
    assert!(
        err.contains("conv1") && err.contains("keeps the group"),
        "{err}"
    );

    let err = plan_error(NetSpec::new("t", c8.clone()).r2_conv("2x irep(1)", w));
    assert!(err.contains("not a representation"), "{err}");

    let err = plan_error(NetSpec::new("t", c8.clone()).r2_conv("irrep(5)", w));
    assert!(err.contains("irrep"), "{err}");

    // A pointwise nonlinearity on irrep fields breaks equivariance: refused at the plan.
    let err = plan_error(
        NetSpec::new("t", c8.clone())
            .r2_conv("irrep(1) + regular", w)
            .activation(Activation::Relu),
    );
    assert!(err.contains("pointwise") && err.contains("irrep"), "{err}");
    let err = plan_error(
        NetSpec::new("t", c8.clone())
            .r2_conv("irrep(1)", w)
            .max_pool(Window::new(2).stride(2)),
    );
    assert!(err.contains("norm max pooling"), "{err}");

    // The G-CNN group conv needs a group whose rotations map the grid to itself.
    let err = plan_error(
        NetSpec::new("t", c8.clone())
            .r2_conv("regular", w)
            .group_conv(2, w),
    );
    assert!(err.contains("C8"), "{err}");

    // Rings outside the kernel.
    let mut spec = NetSpec::new("t", c8.clone()).r2_conv("regular", w);
    if let equivar::spec::LayerKind::R2Conv(conv) = &mut spec.layers[0].kind {
        conv.rings = Some(vec![equivar::kernels::steerable::Ring {
            radius: 5.0,
            sigma: 0.6,
            max_frequency: 2.0,
        }]);
    }
    let err = plan_error(spec);
    assert!(err.contains("conv1") && err.contains("radius"), "{err}");

    // No equivariant kernel at all (O(2): the sign irrep to the trivial one, as in escnn).
    let o2: FeatureType = "O(2): irrep(1,0)".parse().unwrap();
    let spec = NetSpec::new("t", o2).r2_conv("trivial", w);
    let err = spec
        .init(16, Exactness::Require, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no equivariant"), "{err}");
}

/// A smooth image: Gaussian blobs (sigma 2.5 px) well inside the disk the rotations keep.
fn smooth_image(size: usize, device: &Device) -> Tensor<4> {
    let c = (size as f64 - 1.0) / 2.0;
    let blobs = [(2.0, -3.0, 1.0), (-4.0, 1.5, -0.7), (1.0, 4.0, 0.5)];
    let values: Vec<f32> = (0..size * size)
        .map(|p| {
            let (x, y) = ((p % size) as f64 - c, c - (p / size) as f64);
            blobs
                .iter()
                .map(|&(bx, by, a)| {
                    a * (-((x - bx).powi(2) + (y - by).powi(2)) / (2.0 * 2.5 * 2.5)).exp()
                })
                .sum::<f64>() as f32
        })
        .collect();
    Tensor::from_data(
        burn::tensor::TensorData::new(values, [1, 1, size, size]),
        device,
    )
}

#[test]
fn interpolated_rotations_are_reported_and_small_on_smooth_inputs() {
    let device = Device::flex();
    device.seed(14);
    let size = 29;
    for (input, terms, expected) in [
        ("C8: trivial", "2x regular", 4),
        ("SO(2): trivial", "irrep(1) + irrep(2) + trivial", 20),
    ] {
        let spec = NetSpec::new("t", input.parse::<FeatureType>().unwrap())
            .r2_conv(terms, Window::new(5).padding(2));
        let net = spec.init(size, Exactness::Require, &device).unwrap();
        let report = equivariance_report(&net, smooth_image(size, &device)).unwrap();
        assert!(report.max_rel_error <= EXACT_TOL, "{report}");
        // C8: 45, 135, 225, 315 degrees; SO(2): every 15 degrees but the quarter turns.
        assert_eq!(report.interpolated.len(), expected, "{report}");
        let worst = report
            .interpolated
            .iter()
            .map(|e| e.rel_error)
            .fold(0.0, f64::max);
        println!("{input} -> {terms}: interpolated rotations, max rel error {worst:.3e}");
        assert!(report.interpolated.iter().any(|e| e.element == "r(45)"));
        // Bilinear resampling of a smooth image and a steerable kernel: a few percent, not
        // exact (the sampling grid) and far from a random filter's error.
        assert!(worst > 1e-5 && worst < 0.05, "{report}");
    }
    // The control: a fixed pseudo-random 5x5 filter (no steerability; fixed so that tests
    // drawing from the shared RNG in parallel cannot change it) on the same image.
    let x = smooth_image(size, &device);
    let values: Vec<f32> = (0..50).map(|i| (1.7 * i as f32 + 0.3).sin()).collect();
    let filter =
        Tensor::<4>::from_data(burn::tensor::TensorData::new(values, [2, 1, 5, 5]), &device);
    let conv = |x: Tensor<4>| {
        burn::tensor::module::conv2d(
            x,
            filter.clone(),
            None,
            burn::tensor::ops::ConvOptions::new([1, 1], [2, 2], [1, 1], 1),
        )
    };
    let scalars: FeatureType = "SO(2): 2x trivial".parse().unwrap();
    let image: FeatureType = "SO(2): trivial".parse().unwrap();
    let g = equivar::group::O2Element::new(std::f64::consts::FRAC_PI_4, false);
    let (_, random_filter) = max_errors(
        &scalars.act(g, conv(x.clone())).unwrap(),
        &conv(image.act(g, x).unwrap()),
    );
    println!("random 5x5 filter at 45 degrees: rel error {random_filter:.3e}");
    assert!(random_filter > 0.2, "{random_filter}");
}
