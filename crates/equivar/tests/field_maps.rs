//! Norm nonlinearities (norm-ReLU, squash), the gated nonlinearity and norm pooling: equal to
//! their closed forms on known fields; equivariant (float32, <= 1e-5 relative) under every
//! element of the group, not only the grid's, since they act on each pixel's fields alone;
//! inside steerable models exactly equivariant end to end, with export and frozen lowering
//! equal to the module; bad settings are clear errors.

mod common;

use burn::module::Param;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use common::{act_on_channels, host, relative_error};
use equivar::check::equivariance_report;
use equivar::field::FeatureType;
use equivar::group::{O2Element, PlanarGroup};
use equivar::layers::GatedNonlinearity as GatedRule;
use equivar::nn::{FieldLayout, GatedNonlinearity, NormFunction, NormNonlinearity, NormPool};
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

/// Elements to test: all of a finite group, 24 of SO(2)/O(2) at irregular angles.
fn elements(group: PlanarGroup) -> Vec<O2Element> {
    match group.order() {
        Some(_) => group.elements(),
        None => (0..24)
            .map(|i| {
                O2Element::new(
                    0.37 + 0.71 * i as f64,
                    group.has_reflections() && i % 2 == 1,
                )
            })
            .collect(),
    }
}

fn from_host(values: Vec<f32>, shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

#[test]
fn the_maps_equal_their_closed_forms() {
    let device = Device::flex();
    let t = ty("SO(2): irrep(1) + trivial");
    // One pixel: the field (3, 4) of norm 5 and the scalar -2.
    let x = from_host(vec![3.0, 4.0, -2.0], [1, 3, 1, 1], &device);
    let layout = FieldLayout::of(&t);
    let mut relu =
        NormNonlinearity::new("n", layout.clone(), NormFunction::NormRelu, true, &device);
    relu.threshold = Some(Param::from_tensor(Tensor::from_floats([1.0, 0.5], &device)));
    // relu(5 - 1) = 4 along (3, 4)/5; the scalar keeps its sign: relu(2 - 0.5) = 1.5.
    let got = host(relu.forward(x.clone()));
    let want = [2.4, 3.2, -1.5];
    assert!(relative_error(&got, &want) < 1e-6, "norm_relu {got:?}");

    let squash = NormNonlinearity::new("s", layout.clone(), NormFunction::Squash, false, &device);
    // The norm 5 becomes 25/26, the norm 2 becomes 4/5.
    let got = host(squash.forward(x.clone()));
    let want = [15.0 / 26.0, 20.0 / 26.0, -0.8];
    assert!(relative_error(&got, &want) < 1e-6, "squash {got:?}");

    let pool = NormPool {
        layout,
        name: "p".into(),
    };
    let got = host(pool.forward(x.clone()));
    assert!(
        relative_error(&got, &[5.0, 2.0]) < 1e-6,
        "norm_pool {got:?}"
    );

    let gate = GatedNonlinearity {
        gated: FieldLayout::of(&ty("SO(2): irrep(1)")),
        name: "g".into(),
    };
    // The gate 0 halves the field.
    let got = host(gate.forward(from_host(vec![1.0, 2.0, 0.0], [1, 3, 1, 1], &device)));
    assert!(relative_error(&got, &[0.5, 1.0]) < 1e-6, "gate {got:?}");

    // A zero field stays zero, with finite gradients.
    let zero = Tensor::<4>::zeros([1, 3, 1, 1], &device);
    assert!(host(relu.forward(zero)).iter().all(|v| *v == 0.0));
}

#[test]
fn the_maps_are_equivariant_under_every_group_element() {
    let device = Device::flex();
    device.seed(5);
    let types = [
        "SO(2): 2x irrep(1) + irrep(3) + trivial + regular(2)",
        "O(2): irrep(1,1) + irrep(1,2) + irrep(0,0) + irrep(1,0)",
        "C8: regular + irrep(1) + irrep(4) + quotient(C2)",
        "D4: regular + irrep(1,1) + irrep(0,2)",
    ];
    for text in types {
        let t = ty(text);
        let layout = FieldLayout::of(&t);
        let fields = layout.fields();
        let x = random([2, t.channels(), 3, 4], &device);
        let mut relu =
            NormNonlinearity::new("n", layout.clone(), NormFunction::NormRelu, true, &device);
        relu.threshold = Some(Param::from_tensor(Tensor::random(
            [fields],
            Distribution::Uniform(0.0, 1.0),
            &device,
        )));
        let squash =
            NormNonlinearity::new("s", layout.clone(), NormFunction::Squash, false, &device);
        let pool = NormPool {
            layout: layout.clone(),
            name: "p".into(),
        };
        let invariant =
            FeatureType::new(t.group, vec![(fields, equivar::field::ReprKind::Trivial)]).unwrap();
        // The gated input: the fields, then one gate each.
        let mut gated_terms = t.terms.clone();
        gated_terms.push((fields, equivar::field::ReprKind::Trivial));
        let gated_type = FeatureType::new(t.group, gated_terms).unwrap();
        let gate = GatedNonlinearity {
            gated: layout.clone(),
            name: "g".into(),
        };
        let xg = random([2, gated_type.channels(), 3, 4], &device);
        let mut worst = 0.0f64;
        for g in elements(t.group) {
            let gx = act_on_channels(&t, g, &x);
            for (name, f) in [("norm_relu", &relu), ("squash", &squash)] {
                let got = host(f.forward(gx.clone()));
                let want = host(act_on_channels(&t, g, &f.forward(x.clone())));
                let e = relative_error(&got, &want);
                assert!(e <= EXACT_TOL, "{text}, {name}, {g:?}: {e:e}");
                worst = worst.max(e);
            }
            let got = host(pool.forward(gx.clone()));
            let want = host(act_on_channels(&invariant, g, &pool.forward(x.clone())));
            let e = relative_error(&got, &want);
            assert!(e <= EXACT_TOL, "{text}, norm_pool, {g:?}: {e:e}");
            let got = host(gate.forward(act_on_channels(&gated_type, g, &xg)));
            let want = host(act_on_channels(&t, g, &gate.forward(xg.clone())));
            let e = relative_error(&got, &want);
            assert!(e <= EXACT_TOL, "{text}, gate, {g:?}: {e:e}");
            worst = worst.max(e);
        }
        println!("{text}: max rel error {worst:.2e}");
    }
}

/// A steerable model on irrep fields: convs, gates, norm-ReLU, squash and norm pooling.
fn irrep_model(group: &str) -> NetSpec {
    let (fields, gates, last) = match group {
        "SO(2)" => (
            "2x irrep(1) + irrep(2) + 2x trivial",
            "5x trivial",
            "irrep(1) + 2x trivial",
        ),
        _ => (
            "2x irrep(1,1) + irrep(1,2) + irrep(1,0) + trivial",
            "5x trivial",
            "irrep(1,1) + irrep(1,0) + trivial",
        ),
    };
    NetSpec::new("t", ty(&format!("{group}: trivial")))
        .r2_conv(&format!("{fields} + {gates}"), Window::new(5).padding(2))
        .gated()
        .r2_conv(fields, Window::new(3).stride(2))
        .norm_relu()
        .r2_conv(last, Window::new(3).padding(1))
        .squash()
        .norm_pool()
}

#[test]
fn irrep_models_are_exact_end_to_end_and_export_and_freeze() {
    let device = Device::flex();
    device.seed(17);
    for group in ["SO(2)", "O(2)"] {
        let size = 13;
        let mut net = irrep_model(group)
            .init(size, Exactness::Require, &device)
            .unwrap();
        // Nonzero thresholds, so that the norm-ReLU does something.
        for layer in net.layers.iter_mut() {
            if let equivar::nn::Layer::NormNonlinearity(l) = layer
                && let Some(t) = &l.threshold
            {
                let n = t.val().dims()[0];
                l.threshold = Some(Param::from_tensor(Tensor::random(
                    [n],
                    Distribution::Uniform(0.0, 0.3),
                    &device,
                )));
            }
        }
        let x = random([3, 1, size, size], &device);
        let report = equivariance_report(&net, x.clone()).unwrap();
        println!(
            "{group}: grid elements {:.2e}, interpolated {:?}",
            report.max_rel_error,
            report
                .interpolated
                .iter()
                .map(|e| e.rel_error)
                .fold(0.0, f64::max)
        );
        assert!(report.max_rel_error <= EXACT_TOL, "{report}");
        let want = host(net.forward(x.clone()));
        let exported = host(net.export().unwrap().forward(x.clone()));
        let (frozen, _) = net
            .to_frozen()
            .unwrap()
            .forward(&host(x.clone()), [3, 1, size, size])
            .unwrap();
        let (e, f) = (
            relative_error(&exported, &want),
            relative_error(&frozen, &want),
        );
        println!("{group}: export {e:.2e}, frozen {f:.2e}");
        assert!(e <= 1e-5 && f <= 1e-5, "export {e:e}, frozen {f:e}");
    }
}

#[test]
fn models_with_field_maps_round_trip_as_files() {
    let spec = irrep_model("O(2)");
    let value = serde_json::to_value(&spec).unwrap();
    let kinds: Vec<&str> = value["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"norm_nonlinearity") && kinds.contains(&"gated_nonlinearity"));
    assert!(kinds.contains(&"norm_pool"));
    assert_eq!(NetSpec::from_value(&value, "round trip").unwrap(), spec);
    // The norm function is written by name; the bias defaults to on.
    let text = r#"{"name": "f", "input": "SO(2): irrep(1)",
        "layers": [{"name": "a", "kind": "norm_nonlinearity", "function": "norm_relu"}]}"#;
    let read = NetSpec::from_value(&serde_json::from_str(text).unwrap(), "text").unwrap();
    assert_eq!(read.layers.len(), 1);
    Plan::new(&read, 8).unwrap();
}

#[test]
fn bad_field_map_settings_are_clear_errors() {
    let plan_error = |spec: NetSpec| Plan::new(&spec, 9).unwrap_err().to_string();
    let so2 = ty("SO(2): trivial");
    let w = Window::new(3).padding(1);

    // A pointwise ReLU on irreps points to these layers.
    let err = plan_error(NetSpec::new("t", so2.clone()).r2_conv("irrep(1)", w).relu());
    assert!(err.contains("norm or gated"), "{err}");

    // Gates: the count must match, the last term must be trivial, something must be gated.
    for (out, want) in [
        ("2x irrep(1) + 3x trivial", "2 fields to gate but 3 gates"),
        (
            "2x irrep(1) + irrep(2)",
            "no gated fields before trivial gates",
        ),
        ("3x trivial", "no gated fields"),
    ] {
        let err = plan_error(NetSpec::new("t", so2.clone()).r2_conv(out, w).gated());
        assert!(
            err.contains(want) && err.contains("one trivial field per gated field"),
            "{out}: {err}"
        );
    }
    assert_eq!(
        GatedRule::out_type("g", &ty("C8: regular + irrep(1) + 2x trivial")).unwrap(),
        ty("C8: regular + irrep(1)")
    );

    // Squash has no threshold.
    let text = r#"{"name": "f", "input": "SO(2): irrep(1)",
        "layers": [{"name": "a", "kind": "norm_nonlinearity", "function": "squash"}]}"#;
    let spec = NetSpec::from_value(&serde_json::from_str(text).unwrap(), "text").unwrap();
    let err = Plan::new(&spec, 8).unwrap_err().to_string();
    assert!(err.contains("bias: false"), "{err}");
    // An unknown function names the known ones.
    let text = r#"{"name": "f", "input": "SO(2): irrep(1)",
        "layers": [{"name": "a", "kind": "norm_nonlinearity", "function": "norm_elu"}]}"#;
    let err = NetSpec::from_value(&serde_json::from_str(text).unwrap(), "text")
        .unwrap_err()
        .to_string();
    assert!(err.contains("norm_relu") && err.contains("squash"), "{err}");
}

#[test]
fn field_dropout_drops_whole_fields_of_any_type_and_commutes_with_the_group() {
    use burn::module::Module;
    use equivar::nn::FieldDropout;
    let device = Device::flex().autodiff();
    let t = ty("SO(2): 3x irrep(1) + irrep(2) + 2x trivial + regular(1)");
    let layout = FieldLayout::of(&t);
    let p = 0.3;
    let dropout = FieldDropout::new("d", layout.clone(), p);
    let x = random([400, t.channels(), 2, 3], &device);
    let y = dropout.forward(x.clone());
    // Each field of each sample is either zero everywhere or x / (1 - p) everywhere.
    let (xs, ys) = (host(x.clone()), host(y.clone()));
    let plane = 6;
    // The values of each field of each sample, as index ranges into the flat maps.
    let field_ranges: Vec<std::ops::Range<usize>> = (0..400)
        .flat_map(|n| {
            let mut channel = 0;
            let mut ranges = Vec::new();
            for &(count, dim) in &layout.terms {
                for _ in 0..count {
                    let at = (n * t.channels() + channel) * plane;
                    ranges.push(at..at + dim * plane);
                    channel += dim;
                }
            }
            ranges
        })
        .collect();
    let mut kept = 0usize;
    for range in &field_ranges {
        let zero = ys[range.clone()].iter().all(|v| *v == 0.0);
        let scaled = range
            .clone()
            .all(|i| (ys[i] - xs[i] / (1.0 - p as f32)).abs() <= 1e-5 * xs[i].abs().max(1.0));
        assert!(zero || scaled, "values {range:?}: a partly dropped field");
        kept += usize::from(!zero);
    }
    let fields = field_ranges.len();
    let rate = kept as f64 / fields as f64;
    println!(
        "kept {rate:.3} of {fields} fields (expected {:.1})",
        1.0 - p
    );
    assert!((rate - (1.0 - p)).abs() < 0.05, "kept {rate}");
    // On a rotated input too, whatever the draw, the output is the input with whole fields
    // masked (read off the output: a field is dropped or not); a mask constant on each field
    // commutes with the group, which acts within fields: mask(g.x) = g.(mask x).
    let masked_like = |y: &[f32], x: &[f32]| -> Vec<f32> {
        let mut out = vec![0.0f32; x.len()];
        for range in &field_ranges {
            if y[range.clone()].iter().any(|v| *v != 0.0) {
                range.clone().for_each(|i| out[i] = x[i] / (1.0 - p as f32));
            }
        }
        out
    };
    for g in elements(t.group).into_iter().take(5) {
        let gx = act_on_channels(&t, g, &x.clone().inner());
        let got = host(dropout.forward(gx.clone().autodiff()));
        let want = masked_like(&got, &host(gx));
        let e = relative_error(&got, &want);
        assert!(e <= EXACT_TOL, "{g:?}: {e:e}");
    }
    // In inference it is the identity.
    let valid = dropout.valid();
    assert_eq!(host(valid.forward(x.clone().inner())), xs);
}
