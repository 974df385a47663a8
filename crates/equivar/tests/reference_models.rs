//! The reference models: exactness by plan and by measurement, export, construction time.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use equivar::EquivarError;
use equivar::check::{equivariance_report, max_errors};
use equivar::layers::LayerKind;
use equivar::models::{self, MODELS};
use equivar::plan::{Exactness, Plan, apply_repairs, apply_subsampling};
use equivar::spec::Domain;

fn input(device: &Device, seed: u64, batch: usize, n: usize) -> Tensor<4> {
    device.seed(seed);
    Tensor::random([batch, 1, n, n], Distribution::Normal(0.0, 1.0), device)
}

#[test]
fn abusing_nets_and_hnet_are_exact_at_28_only() {
    let device = Device::flex();
    for name in ["abusing-p4", "abusing-p4m", "abusing-c8", "hnet"] {
        let spec = models::spec(name).unwrap();
        for (n, exact) in [(28, true), (27, false), (29, false)] {
            let plan = Plan::new(&spec, n).unwrap();
            assert_eq!(plan.exact, exact, "{name} plan at {n}");
            let net = spec.init(n, Exactness::AllowApproximate, &device).unwrap();
            let report = equivariance_report(&net, input(&device, 7, 2, n)).unwrap();
            let order = spec.group().pixel_grid_elements().len();
            assert_eq!(
                report.elements.len(),
                order - 1,
                "every non-identity element"
            );
            println!("{name} n={n}: max rel error {:.3e}", report.max_rel_error);
            if exact {
                assert!(report.max_rel_error <= 1e-5, "{name} at {n}: {report}");
            } else {
                assert!(report.max_rel_error >= 1e-3, "{name} at {n}: {report}");
            }
        }
    }
}

#[test]
fn inexact_sizes_are_refused_with_the_layer_and_nearest_sizes() {
    let device = Device::flex();
    let spec = models::spec("abusing-p4").unwrap();
    let err = spec.init(27, Exactness::Require, &device).unwrap_err();
    match &err {
        EquivarError::NotExact {
            layer,
            remainder,
            nearest,
            ..
        } => {
            assert_eq!(layer, "pool1");
            assert_eq!(*remainder, 1);
            assert_eq!(nearest, "26 and 28");
        }
        other => panic!("unexpected error {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("pool1") && message.contains("allow approximate"),
        "{message}"
    );
    let plan = Plan::new(&spec, 29).unwrap();
    assert_eq!(plan.nearest_exact_sizes, vec![28, 30]);
}

#[test]
fn too_small_inputs_name_the_minimum() {
    let spec = models::spec("cohen-p4cnn").unwrap();
    match Plan::new(&spec, 20).unwrap_err() {
        EquivarError::InputTooSmall { min_input, .. } => assert_eq!(min_input, 28),
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn export_matches_every_reference_model() {
    let device = Device::flex();
    for info in MODELS {
        let spec = info.spec();
        let net = spec
            .init(info.input_size, Exactness::Require, &device)
            .unwrap();
        if spec.domain == Domain::Sphere {
            // DISCO layers have no plain burn counterpart: a clear error, not a wrong model.
            let err = net.export().unwrap_err().to_string();
            assert!(err.contains("no lowering"), "{}: {err}", info.name);
            continue;
        }
        if spec
            .layers
            .iter()
            .any(|l| l.kind.label() == "equivariant_subsample")
        {
            // Its per-image pose has no plain burn counterpart either.
            let err = net.export().unwrap_err().to_string();
            assert!(err.contains("subsample1"), "{}: {err}", info.name);
            continue;
        }
        let exported = net.export().unwrap();
        let x = input(&device, 3, 4, 28);
        let (abs, rel) = max_errors(&net.forward(x.clone()), &exported.forward(x));
        println!(
            "{}: export max abs diff {abs:.3e}, rel {rel:.3e}",
            info.name
        );
        // Relative to the output's scale (hnet's logits at init reach ~1e2).
        assert!(
            rel <= 1e-5,
            "{}: export differs by {abs} ({rel:e})",
            info.name
        );
    }
}

#[test]
fn export_matches_after_training_statistics() {
    // Batch norm with non-trivial running statistics and affine parameters.
    let device = Device::flex().autodiff();
    let spec = models::spec("abusing-p4m").unwrap();
    let net = spec.init(28, Exactness::Require, &device).unwrap();
    for seed in 0..3 {
        let _ = net.forward(input(&device, seed, 8, 28).mul_scalar(3.0).add_scalar(0.5));
    }
    let net = net.valid();
    let exported = net.export().unwrap();
    let x = input(&Device::flex(), 11, 4, 28);
    let (abs, _) = max_errors(&net.forward(x.clone()), &exported.forward(x));
    assert!(abs <= 1e-5, "export after training differs by {abs}");
}

#[test]
fn reference_models_construct_in_milliseconds() {
    let device = Device::flex();
    // warm up the allocator and the backend once
    let _ = models::spec("abusing-p4")
        .unwrap()
        .init(28, Exactness::Require, &device)
        .unwrap()
        .materialize_params();
    for info in MODELS {
        let mut best = f64::INFINITY;
        let mut params = 0;
        for _ in 0..5 {
            let start = Instant::now();
            let net = info
                .spec()
                .init(info.input_size, Exactness::Require, &device)
                .unwrap()
                .materialize_params();
            best = best.min(start.elapsed().as_secs_f64());
            params = net.num_params();
            drop(net);
        }
        println!("{}: construction {:.3} ms", info.name, best * 1e3);
        // 10 ms, 0.5 s per million parameters for drawing the initial weights, and 0.3 s for
        // solving and sampling the steerable bases, whose size follows the group and kernel,
        // not the widths: D16's 7x7 regular basis alone is 29 million values (116 MB), shared
        // by e2-d16c16 and its quick version (alone: 8-75 ms for e2-c8/e2-c16 and their quick
        // versions, 107-225 ms for e2-d16c16 and its quick version; escnn takes 11-27 s). A
        // guard against regressions with room for the tests running beside it; the speed
        // comparison is the benchmarks'.
        let steerable = info
            .spec()
            .layers
            .iter()
            .any(|layer| matches!(layer.kind, LayerKind::R2Conv(_)));
        let budget = 0.010 + 0.5 * params as f64 / 1e6 + if steerable { 0.3 } else { 0.0 };
        assert!(
            best < budget,
            "{} takes {:.1} ms to construct (budget {:.0} ms)",
            info.name,
            best * 1e3,
            budget * 1e3
        );
    }
}

#[test]
fn parameter_counts() {
    let device = Device::flex();
    let count = |name: &str| {
        models::spec(name)
            .unwrap()
            .init(28, Exactness::Require, &device)
            .unwrap()
            .trainable_params()
    };
    // 24,810 = the authors' 24,990 minus the 180 weights of their 3-channel input layer
    assert_eq!(count("abusing-p4"), 24_810);
    // escnn 1.0.11's (and e2cnn 0.2.3's) counts of the E2SFCNN models
    // (../shared/peers/E2-ARCHITECTURE.md section 6): the steerable bases have escnn's sizes.
    assert_eq!(count("e2-c8"), 2_640_994);
    assert_eq!(count("e2-c16"), 2_692_690);
    // escnn: 3,069,353. Its restriction keeps each D16 regular field as one 32-channel C16
    // field, so the batch norm after it has 45 fields; equivar's splits it into two C16
    // regular fields (90 fields): 90 more batch-norm parameters, the same convolutions.
    assert_eq!(count("e2-d16c16"), 3_069_353 + 90);
}

/// The plan names the elements under which a model is exact at its size and those under which
/// it is only approximate, and `check` measures exactly those: exact ones to float32
/// rounding, the approximate ones clearly off.
#[test]
fn the_plan_names_the_exact_and_approximate_elements_check_measures() {
    let device = Device::flex();
    let labels = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // e2-d16c16 is restricted to C16: mirrors are not symmetries of the whole model.
    let plan = Plan::new(&models::spec("e2-d16c16").unwrap(), 28).unwrap();
    assert_eq!(plan.exact_under, labels(&["r(90)", "r(180)", "r(270)"]));
    assert_eq!(plan.approximate_under.len(), 12);
    assert!(plan.layers[0].exact_under.contains(&"r(0)m".to_string()));
    // At an inexact size nothing is exact; the grid's elements are approximate too.
    let plan = Plan::new(&models::spec("e2-c8").unwrap(), 29).unwrap();
    assert!(plan.exact_under.is_empty());
    assert_eq!(plan.approximate_under.len(), 7);
    for name in ["abusing-c8", "hnet"] {
        let spec = models::spec(name).unwrap();
        let plan = Plan::new(&spec, 28).unwrap();
        let net = spec.init(28, Exactness::Require, &device).unwrap();
        let report = equivariance_report(&net, input(&device, 5, 2, 28)).unwrap();
        let measured: Vec<String> = report.elements.iter().map(|e| e.element.clone()).collect();
        let interpolated: Vec<String> = report
            .interpolated
            .iter()
            .map(|e| e.element.clone())
            .collect();
        assert_eq!(plan.exact_under, measured, "{name}");
        assert_eq!(plan.approximate_under, interpolated, "{name}");
        assert!(report.max_rel_error <= 1e-5, "{name}: {report}");
        assert!(
            report.interpolated.iter().all(|e| e.rel_error > 1e-3),
            "{name}: {report}"
        );
    }
}

/// At a size where a model is not exact the plan proposes window repairs; applied, they give
/// an exact plan, keep every layer's output size, and the repaired model measures exact
/// under all of C4 (and D4) at that size, where the original one is off.
#[test]
fn subsampling_repairs_make_a_model_exact_at_its_size() {
    let device = Device::flex();
    for (name, size) in [("abusing-p4", 29), ("abusing-p4m", 27)] {
        let spec = models::spec(name).unwrap();
        let plan = Plan::new(&spec, size).unwrap();
        let repairs = plan.repairs.clone().unwrap();
        let [repair] = &repairs.subsampling[..] else {
            panic!("{name}: one strided layer to repair: {repairs:?}");
        };
        assert_eq!((repair.layer.as_str(), repair.window.stride), ("pool1", 2));
        let repaired = apply_subsampling(&spec, &repairs);
        let fixed = Plan::new(&repaired, size).unwrap();
        assert!(fixed.exact, "{name} at {size}");
        assert_eq!(fixed.output_size, plan.output_size);
        let sub = fixed
            .layers
            .iter()
            .find(|l| l.name == repair.subsample)
            .unwrap();
        assert_eq!(sub.out_size, repair.out_size);
        let net = repaired.init(size, Exactness::Require, &device).unwrap();
        let error = equivariance_report(&net, input(&device, 3, 2, size))
            .unwrap()
            .max_rel_error;
        assert!(error <= 1e-5, "{name} at {size}: {error:.2e}");
    }
}

#[test]
fn window_repairs_make_a_model_exact_at_its_size() {
    let device = Device::flex();
    device.seed(8);
    for (name, size) in [("abusing-p4", 29), ("abusing-p4m", 29), ("abusing-p4", 27)] {
        let spec = models::spec(name).unwrap();
        let plan = Plan::new(&spec, size).unwrap();
        assert!(!plan.exact, "{name} at {size}");
        let repairs = plan.repairs.clone().expect("an inexact plan lists repairs");
        assert!(
            !repairs.windows.is_empty() && repairs.unrepaired.is_none(),
            "{name}: {repairs:?}"
        );
        for r in &repairs.windows {
            assert_eq!(r.out_size, r.repaired_out_size, "{name} {r:?}");
        }
        let repaired = apply_repairs(&spec, &repairs);
        let fixed = Plan::new(&repaired, size).unwrap();
        assert!(fixed.exact && fixed.repairs.is_none(), "{name} at {size}");
        assert_eq!(fixed.output_size, plan.output_size);
        let measure = |spec: &equivar::spec::NetSpec| {
            let net = spec
                .init(size, Exactness::AllowApproximate, &device)
                .unwrap();
            equivariance_report(&net, input(&device, 2, 2, size))
                .unwrap()
                .max_rel_error
        };
        let (before, after) = (measure(&spec), measure(&repaired));
        assert!(
            after <= 1e-5 && before > 1e-3,
            "{name} at {size}: {before:.2e} -> {after:.2e}"
        );
    }
    // An exact plan has nothing to repair.
    assert!(
        Plan::new(&models::spec("abusing-p4").unwrap(), 28)
            .unwrap()
            .repairs
            .is_none()
    );
}
