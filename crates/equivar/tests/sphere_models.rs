//! Sphere models are ordinary model descriptions: the DISCO classifier plans, builds, runs and
//! is checked like the planar models, exactly equivariant to the polar rotations its plan
//! names, with clear errors for layers on the wrong domain and for lowerings that do not
//! exist.

use burn::tensor::{Device, Distribution, Tensor};
use equivar::check::{assert_equivariant, equivariance_report};
use equivar::field::FieldType;
use equivar::group::Group;
use equivar::models;
use equivar::plan::{Exactness, Plan};
use equivar::space::Window;
use equivar::spec::{Domain, NetSpec};

fn device() -> Device {
    Device::flex()
}

#[test]
fn the_spherical_classifier_is_a_model_description_with_its_parameters() {
    let spec = models::spec("spherical-cnn").unwrap();
    assert_eq!(spec.domain, Domain::Sphere);
    let net = spec.init(64, Exactness::Require, &device()).unwrap();
    // DISCO weights [out, in, K] with K = 3 basis functions (basis (5, 1): centre and two
    // rings) plus a bias each, batch norm scale and shift, the linear head.
    let channels = [1, 16, 32, 32, 64];
    let convs: usize = channels.windows(2).map(|p| p[1] * p[0] * 3 + p[1]).sum();
    let norms: usize = channels[1..].iter().map(|c| 2 * c).sum();
    assert_eq!(net.trainable_params(), convs + norms + 64 * 10 + 10);
    assert_eq!(net.trainable_params(), 11_882);
    let plan = &net.plan;
    let sizes: Vec<usize> = plan
        .layers
        .iter()
        .filter(|l| l.kind == "disco_conv")
        .map(|l| l.out_size)
        .collect();
    assert_eq!(sizes[..4], [64, 32, 16, 8]);
    assert_eq!(plan.output_size, 1);
    assert_eq!(plan.input_shape(), [64, 128]);
    // The coarsest grid is 8 x 16: exact under polar rotations by multiples of 22.5 degrees.
    assert_eq!(plan.polar_steps, Some(16));
    assert!(plan.exact);
    // Its last filter would cover the whole sphere at nlat 32 (3 spacings of a 4 x 8 grid).
    let err = Plan::new(&spec, 32).unwrap_err().to_string();
    assert!(err.contains("disco4") && err.contains("below pi"), "{err}");
}

#[test]
fn sphere_models_are_exactly_equivariant_to_the_polar_rotations_of_their_plan() {
    let spec = models::spec("spherical-cnn").unwrap();
    let net = spec.init(40, Exactness::Require, &device()).unwrap();
    let x = Tensor::random([2, 1, 40, 80], Distribution::Normal(0.0, 1.0), &device());
    assert_equivariant(&net, x.clone(), 1e-5);
    let report = equivariance_report(&net, x).unwrap();
    // 40 x 80 halved three times: 5 x 10, so rotations by multiples of 36 degrees.
    assert_eq!(report.elements.len(), 9);
    assert!(report.to_string().contains("40x80"), "{report}");
    // The logits are invariant (1x1 outputs do not move), and not trivially zero.
    let y = net
        .logits(Tensor::random(
            [1, 1, 40, 80],
            Distribution::Normal(0.0, 1.0),
            &device(),
        ))
        .unwrap();
    assert!(y.abs().max().into_scalar::<f64>() > 0.0);
}

#[test]
fn a_hand_written_disco_classifier_plans_builds_and_checks() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/disco-small.json");
    let spec = models::spec(path).unwrap();
    assert_eq!(spec.domain, Domain::Sphere);
    let plan = Plan::new(&spec, 16).unwrap();
    assert_eq!(plan.polar_steps, Some(8));
    let err = Plan::new(&spec, 18).unwrap_err().to_string();
    assert!(
        err.contains("disco3") && err.contains("downsample"),
        "{err}"
    );
    let net = spec.init(16, Exactness::Require, &device()).unwrap();
    let x = Tensor::random([2, 1, 16, 32], Distribution::Normal(0.0, 1.0), &device());
    assert_equivariant(&net, x, 1e-5);
    // The description survives the serde round trip (as a run directory stores it).
    let value = serde_json::to_value(&spec).unwrap();
    assert_eq!(value["domain"], "sphere");
    assert_eq!(NetSpec::from_value(&value, "round trip").unwrap(), spec);
}

#[test]
fn layers_on_the_wrong_domain_and_missing_lowerings_are_clear_errors() {
    let plane_layer_on_sphere = NetSpec::sphere("m", 1).max_pool(Window::new(2).stride(2));
    let err = Plan::new(&plane_layer_on_sphere, 16)
        .unwrap_err()
        .to_string();
    assert!(err.contains("pool1") && err.contains("disco_conv"), "{err}");

    let basis = equivar::kernels::FilterBasis::piecewise_linear(3, 1).unwrap();
    let disco_on_plane =
        NetSpec::new("m", FieldType::trivial(Group::trivial(), 1)).disco_conv(4, 1, basis, 2.0);
    let err = Plan::new(&disco_on_plane, 16).unwrap_err().to_string();
    assert!(err.contains("disco1") && err.contains("sphere"), "{err}");

    let c4_on_sphere = NetSpec {
        domain: Domain::Sphere,
        ..NetSpec::new("m", FieldType::trivial(Group::cyclic(4), 1))
    }
    .disco_conv(4, 1, basis, 2.0);
    let err = Plan::new(&c4_on_sphere, 16).unwrap_err().to_string();
    assert!(err.contains("C1"), "{err}");

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/disco-small.json");
    let net = models::spec(path)
        .unwrap()
        .init(16, Exactness::Require, &device())
        .unwrap();
    let err = net.export().unwrap_err().to_string();
    assert!(
        err.contains("`disco1`") && err.contains("plain burn"),
        "{err}"
    );
    let err = net.to_frozen().unwrap_err().to_string();
    assert!(err.contains("`disco1`") && err.contains("frozen"), "{err}");
}
