//! Restriction to a subgroup inside a model: the restricted type's representation equals the
//! original's on every element of the subgroup (f64), a model restricted halfway is exactly
//! equivariant under the subgroup's grid elements, and unsupported cases are clear errors.

use burn::tensor::{Device, Distribution, Tensor};
use equivar::check::equivariance_report;
use equivar::field::FeatureType;
use equivar::group::{O2Element, PlanarGroup};
use equivar::layers::Restrict;
use equivar::plan::{Exactness, Plan};
use equivar::space::Window;
use equivar::spec::NetSpec;

fn restricted(input: &str, sub: &str) -> equivar::Result<FeatureType> {
    Restrict {
        subgroup: sub.to_string(),
    }
    .out_type("restrict", &input.parse().unwrap())
}

#[test]
fn the_restricted_type_acts_like_the_original_on_the_subgroup() {
    let cases = [
        (
            "D16: 3x regular + irrep(1,3) + irrep(1,0) + irrep(0,8) + trivial",
            "C16",
            "C16: 6x regular + irrep(3) + trivial + irrep(8) + trivial",
        ),
        (
            "D8: irrep(1,1) + 2x trivial",
            "D4",
            "D4: irrep(1,1) + 2x trivial",
        ),
        (
            "O(2): irrep(1,2) + irrep(1,0) + irrep(0,0)",
            "SO(2)",
            "SO(2): irrep(2) + 2x trivial",
        ),
        (
            "SO(2): irrep(1) + irrep(3) + trivial",
            "C8",
            "C8: irrep(1) + irrep(3) + trivial",
        ),
        ("C8: irrep(1) + irrep(2) + 3x trivial", "C8", ""), // not a proper subgroup
    ];
    for (input, sub, want) in cases {
        let result = restricted(input, sub);
        if want.is_empty() {
            assert!(result.is_err(), "{input} to {sub}");
            continue;
        }
        let out = result.unwrap_or_else(|e| panic!("{input} to {sub}: {e}"));
        assert_eq!(out, want.parse::<FeatureType>().unwrap());
        let from: FeatureType = input.parse().unwrap();
        let (rho, rho_sub) = (
            from.representation().unwrap(),
            out.representation().unwrap(),
        );
        let subgroup: PlanarGroup = sub.parse().unwrap();
        let elements: Vec<O2Element> = match subgroup.order() {
            Some(_) => subgroup.elements(),
            None => subgroup.even_samples(37),
        };
        for g in elements {
            let diff = (rho.matrix(g) - rho_sub.matrix(g)).abs().max();
            assert!(diff < 1e-12, "{input} to {sub}: off by {diff:e} at {g:?}");
        }
    }
}

#[test]
fn a_model_restricted_halfway_is_exact_under_the_subgroup() {
    let device = Device::flex();
    device.seed(21);
    let spec = NetSpec::new("t", "D4: trivial".parse::<FeatureType>().unwrap())
        .r2_conv("2x regular + irrep(1,1)", Window::new(3).padding(1))
        .restrict("C4")
        .r2_conv("3x regular", Window::new(3).padding(1));
    let plan = Plan::new(&spec, 9).unwrap();
    assert_eq!(
        plan.layers[1].out_type.to_string(),
        "C4: 4x regular + irrep(1)"
    );
    let net = spec.init(9, Exactness::Require, &device).unwrap();
    let x = Tensor::random([2, 1, 9, 9], Distribution::Normal(0.0, 1.0), &device);
    let report = equivariance_report(&net, x).unwrap();
    // The rotations only: the mirrors are not symmetries after the restriction.
    let names: Vec<&str> = report.elements.iter().map(|e| e.element.as_str()).collect();
    assert_eq!(names, ["r1", "r2", "r3"]);
    assert!(report.max_rel_error <= 1e-5, "{report}");
    // The restriction is the identity on tensors: nothing in the export or the frozen model.
    assert_eq!(net.export().unwrap().layers.len(), 2);
}

#[test]
fn restrictions_that_need_a_change_of_basis_are_clear_errors() {
    let err = restricted("C8: regular", "C4").unwrap_err().to_string();
    assert!(err.contains("change of basis"), "{err}");
    let err = restricted("C8: irrep(3)", "C4").unwrap_err().to_string();
    assert!(err.contains("change of basis"), "{err}");
    // Frequency 2 of D8 on D4's rotations is -1 or 1: two 1-dim irreps in another basis.
    let err = restricted("D8: irrep(1,2)", "D4").unwrap_err().to_string();
    assert!(err.contains("change of basis"), "{err}");
    let err = restricted("C8: regular", "D4").unwrap_err().to_string();
    assert!(err.contains("not a proper subgroup"), "{err}");
    let err = restricted("C8: regular", "C5").unwrap_err().to_string();
    assert!(err.contains("not a proper subgroup"), "{err}");
    let err = restricted("C8: regular", "Q3").unwrap_err().to_string();
    assert!(err.contains("subgroup"), "{err}");
}
