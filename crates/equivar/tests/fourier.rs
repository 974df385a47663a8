//! The Fourier-pointwise nonlinearity: on trivial fields it is the function itself, on the
//! regular fields of a finite group the pointwise function (for ReLU, which commutes with the
//! scale of the sampling); on band-limited fields of SO(2)/O(2) exactly equivariant (float32,
//! <= 1e-5 relative) under the elements that permute its samples, and close under the rest;
//! inside a model exact under the grid elements, with export and frozen equal to the module;
//! bad settings are clear errors.

mod common;

use burn::tensor::{Device, Distribution, Tensor};
use common::{act_on_channels, host, relative_error};
use equivar::check::equivariance_report;
use equivar::field::FeatureType;
use equivar::group::O2Element;
use equivar::nn::{FourierPointwise, Pointwise};
use equivar::plan::{Exactness, Plan};
use equivar::space::Window;
use equivar::spec::{Activation, NetSpec};

const EXACT_TOL: f64 = 1e-5;
const ELU: Activation = Activation::Elu { alpha: 1.0 };

fn ty(text: &str) -> FeatureType {
    text.parse().unwrap()
}

fn random(shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

#[test]
fn on_trivial_and_finite_regular_fields_it_is_the_pointwise_function() {
    let device = Device::flex();
    device.seed(3);
    for (text, function) in [
        ("SO(2): 3x trivial", ELU),
        ("O(2): 2x trivial", Activation::Tanh),
        ("C8: 2x regular", Activation::Relu),
        ("D4: regular + trivial", Activation::Relu),
    ] {
        let t = ty(text);
        let f = FourierPointwise::new("f", &t, function, None).unwrap();
        let x = random([2, t.channels(), 3, 3], &device);
        let want = host(Pointwise::new(function).forward(x.clone()));
        let got = host(f.forward(x));
        let e = relative_error(&got, &want);
        println!("{text}: {e:.2e} from the pointwise function");
        assert!(e <= EXACT_TOL, "{text}: {e:e}");
    }
}

#[test]
fn on_band_limited_fields_it_is_exact_on_its_samples_and_close_elsewhere() {
    let device = Device::flex();
    device.seed(4);
    for (text, samples) in [
        ("SO(2): 2x regular(2)", 12),
        ("O(2): regular(1) + regular(3)", 32),
    ] {
        let t = ty(text);
        let f = FourierPointwise::new("f", &t, ELU, Some(samples)).unwrap();
        let x = random([2, t.channels(), 3, 3], &device);
        let fx = f.forward(x.clone());
        let rotations = if t.group.has_reflections() {
            samples / 2
        } else {
            samples
        };
        let step = std::f64::consts::TAU / rotations as f64;
        let (mut on, mut off) = (0.0f64, 0.0f64);
        for k in 0..rotations {
            for mirrored in [false, t.group.has_reflections()] {
                for (angle, exact) in [(k as f64 * step, true), ((k as f64 + 0.5) * step, false)] {
                    let g = O2Element::new(angle, mirrored);
                    let got = host(f.forward(act_on_channels(&t, g, &x)));
                    let want = host(act_on_channels(&t, g, &fx));
                    let e = relative_error(&got, &want);
                    if exact {
                        assert!(e <= EXACT_TOL, "{text}, {g:?}: {e:e}");
                        on = on.max(e);
                    } else {
                        off = off.max(e);
                    }
                }
            }
        }
        println!("{text}, {samples} samples: on the samples {on:.2e}, between them {off:.2e}");
        assert!(off < 0.2, "{text}: between the samples {off}");
    }
}

#[test]
fn a_model_with_fourier_elu_is_exact_on_the_grid_and_exports_and_freezes() {
    let device = Device::flex();
    device.seed(9);
    for input in ["SO(2): trivial", "O(2): trivial"] {
        let spec = NetSpec::new("t", ty(input))
            .r2_conv("3x regular(2) + trivial", Window::new(5).padding(2))
            .fourier(ELU)
            .r2_conv("2x regular(1)", Window::new(3).stride(2))
            .fourier(Activation::Relu)
            .r2_conv("2x trivial", Window::new(3).padding(1));
        let size = 13;
        let net = spec.init(size, Exactness::Require, &device).unwrap();
        let x = random([2, 1, size, size], &device);
        let report = equivariance_report(&net, x.clone()).unwrap();
        assert!(report.max_rel_error <= EXACT_TOL, "{report}");
        let want = host(net.forward(x.clone()));
        let exported = host(net.export().unwrap().forward(x.clone()));
        let (frozen, _) = net
            .to_frozen()
            .unwrap()
            .forward(&host(x.clone()), [2, 1, size, size])
            .unwrap();
        let (e, f) = (
            relative_error(&exported, &want),
            relative_error(&frozen, &want),
        );
        println!(
            "{input}: grid elements {:.2e}, export {e:.2e}, frozen {f:.2e}",
            report.max_rel_error
        );
        assert!(e <= 1e-5 && f <= 1e-5, "export {e:e}, frozen {f:e}");
        let value = serde_json::to_value(&spec).unwrap();
        assert_eq!(value["layers"][1]["kind"], "fourier_nonlinearity");
        assert_eq!(NetSpec::from_value(&value, "round trip").unwrap(), spec);
    }
}

#[test]
fn bad_fourier_settings_are_clear_errors() {
    let plan_error = |input: &str, samples: Option<usize>| {
        let text = serde_json::json!({
            "name": "f", "input": input,
            "layers": [{"name": "a", "kind": "fourier_nonlinearity",
                        "function": "relu", "samples": samples}],
        });
        let spec = NetSpec::from_value(&text, "text").unwrap();
        Plan::new(&spec, 8).unwrap_err().to_string()
    };
    for (input, samples, want) in [
        ("SO(2): irrep(1)", None, "use a norm or gated nonlinearity"),
        ("C8: quotient(C2)", None, "not Fourier coefficients"),
        ("SO(2): regular(2)", Some(10), "multiple of 4"),
        ("O(2): regular(2)", Some(9), "even number"),
        ("O(2): regular(2)", Some(12), "multiple of 4 (times 2"),
        ("SO(2): regular(3)", Some(4), "at least 7 rotations"),
    ] {
        let err = plan_error(input, samples);
        assert!(err.contains(want), "{input} {samples:?}: {err}");
    }
}
