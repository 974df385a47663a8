//! Norm max pooling, the Gaussian blur pool and bilinear upsampling: their closed forms on
//! small inputs; inside steerable models on irrep fields exactly equivariant (float32, <= 1e-5
//! relative) under the grid elements at the sizes the plan calls exact, and measurably not at
//! the sizes it calls inexact; export and frozen lowering equal to the module; gradients
//! flow; bad settings are clear errors.

mod common;

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use common::{host, relative_error};
use equivar::check::equivariance_report;
use equivar::field::FeatureType;
use equivar::nn::{FieldLayout, NormMaxPool, gaussian_filter};
use equivar::plan::{Exactness, Plan};
use equivar::space::Window;
use equivar::spec::NetSpec;

const EXACT_TOL: f64 = 1e-5;

fn ty(text: &str) -> FeatureType {
    text.parse().unwrap()
}

fn random(shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

#[test]
fn closed_forms() {
    let device = Device::flex();
    // One irrep(1) field on 2x2 pixels: norms 1, 5, 2, sqrt(2); the (3, 4) vector wins.
    let x = Tensor::<4>::from_data(
        TensorData::new(vec![1.0, 3.0, 0.0, 1.0, 0.0, 4.0, 2.0, -1.0], [1, 2, 2, 2]),
        &device,
    );
    let pool = NormMaxPool {
        layout: FieldLayout::of(&ty("SO(2): irrep(1)")),
        window: Window::new(2).stride(2),
        name: "p".into(),
    };
    assert_eq!(host(pool.forward(x)), vec![3.0, 4.0]);

    // The Gaussian filter sums to 1 and has the square's symmetries.
    let f = gaussian_filter(0.6, 5);
    assert!((f.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    for y in 0..5 {
        for x in 0..5 {
            let v = f[y * 5 + x];
            for (yy, xx) in [(x, 4 - y), (4 - y, 4 - x), (y, 4 - x), (x, y)] {
                assert!((v - f[yy * 5 + xx]).abs() < 1e-7);
            }
        }
    }
    // A constant image stays constant inside after the blur; upsampling keeps constants.
    let spec = NetSpec::new("t", ty("C4: trivial"))
        .blur_pool(0.6, 1)
        .upsample(2);
    let net = spec.init(9, Exactness::Require, &device).unwrap();
    let y = host(net.forward(Tensor::ones([1, 1, 9, 9], &device)));
    // 18x18 after upsampling; rows 4..14 come from blurred pixels 2..7, all inside.
    for r in 5..13 {
        for c in 5..13 {
            assert!(
                (y[r * 18 + c] - 1.0).abs() < 1e-6,
                "({r}, {c}): {}",
                y[r * 18 + c]
            );
        }
    }
}

fn model(size_step: &str) -> NetSpec {
    let spec = NetSpec::new("t", ty("SO(2): trivial")).r2_conv(
        "2x irrep(1) + irrep(2) + trivial",
        Window::new(5).padding(2),
    );
    match size_step {
        "norm_max_pool" => spec.norm_max_pool(Window::new(2).stride(2)),
        "blur_pool" => spec.blur_pool(0.6, 2),
        _ => spec.upsample(2),
    }
    .r2_conv("irrep(1) + 2x trivial", Window::new(3).padding(1))
}

#[test]
fn exact_where_the_plan_says_and_export_and_frozen_agree() {
    let device = Device::flex();
    device.seed(23);
    // (layer, a size the plan calls exact, one it calls inexact).
    for (layer, exact, inexact) in [
        ("norm_max_pool", 12, Some(13)),
        ("blur_pool", 13, Some(12)),
        ("upsample", 7, None),
    ] {
        let spec = model(layer);
        let net = spec.init(exact, Exactness::Require, &device).unwrap();
        let x = random([2, 1, exact, exact], &device);
        let report = equivariance_report(&net, x.clone()).unwrap();
        let want = host(net.forward(x.clone()));
        let exported = host(net.export().unwrap().forward(x.clone()));
        let (frozen, _) = net
            .to_frozen()
            .unwrap()
            .forward(&host(x), [2, 1, exact, exact])
            .unwrap();
        let (e, f) = (
            relative_error(&exported, &want),
            relative_error(&frozen, &want),
        );
        println!(
            "{layer} at {exact}: grid elements {:.2e}, export {e:.2e}, frozen {f:.2e}",
            report.max_rel_error
        );
        assert!(report.max_rel_error <= EXACT_TOL, "{layer}: {report}");
        assert!(
            e <= 1e-5 && f <= 1e-5,
            "{layer}: export {e:e}, frozen {f:e}"
        );
        if let Some(n) = inexact {
            let plan = Plan::new(&spec, n).unwrap();
            assert!(!plan.exact, "{layer} at {n} should be inexact");
            assert!(
                !plan.layers[1].exact && plan.layers[0].exact,
                "{layer} at {n}"
            );
            let net = spec.init(n, Exactness::AllowApproximate, &device).unwrap();
            let report = equivariance_report(&net, random([2, 1, n, n], &device)).unwrap();
            println!("{layer} at {n} (inexact): {:.2e}", report.max_rel_error);
            assert!(report.max_rel_error > 1e-3, "{layer} at {n}: {report}");
        }
    }
}

#[test]
fn gradients_flow_through_the_resampling_layers() {
    let device = Device::flex().autodiff();
    device.seed(2);
    for layer in ["norm_max_pool", "blur_pool", "upsample"] {
        let size = if layer == "blur_pool" { 13 } else { 12 };
        let net = model(layer)
            .init(size, Exactness::Require, &device)
            .unwrap();
        let x = random([2, 1, size, size], &device).require_grad();
        let grads = net.forward(x.clone()).powi_scalar(2).sum().backward();
        let g = host(x.grad(&grads).unwrap());
        let norm: f32 = g.iter().map(|v| v * v).sum();
        assert!(
            norm.is_finite() && norm > 0.0,
            "{layer}: gradient norm {norm}"
        );
    }
}

#[test]
fn bad_resampling_settings_are_clear_errors() {
    let plan_error = |layer: serde_json::Value| {
        let text = serde_json::json!({"name": "f", "input": "SO(2): irrep(1)", "layers": [layer]});
        let spec = NetSpec::from_value(&text, "text").unwrap();
        Plan::new(&spec, 8).unwrap_err().to_string()
    };
    for (layer, want) in [
        (
            serde_json::json!({"name": "b", "kind": "blur_pool", "sigma": 0.0}),
            "not in (0, 8]",
        ),
        (
            serde_json::json!({"name": "b", "kind": "blur_pool", "stride": 0}),
            "at least 1",
        ),
        (
            serde_json::json!({"name": "u", "kind": "upsample", "scale": 1}),
            "not in 2..=16",
        ),
        (
            serde_json::json!({"name": "p", "kind": "norm_max_pool",
                               "window": {"kernel": 2, "stride": 2, "padding": 2, "dilation": 1}}),
            "exceeds half the kernel",
        ),
        (
            serde_json::json!({"name": "p", "kind": "max_pool",
                               "window": {"kernel": 2, "stride": 2, "padding": 0, "dilation": 1}}),
            "norm max pooling",
        ),
    ] {
        let err = plan_error(layer.clone());
        assert!(err.contains(want), "{layer}: {err}");
    }
}
