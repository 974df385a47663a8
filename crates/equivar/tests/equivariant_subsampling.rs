//! Equivariant subsampling and upsampling (Xu et al. 2021): exact (float32, <= 1e-5 relative)
//! under every grid symmetry of their group at every input size, where the plain strided
//! grid is exact only at some; gradients equal finite differences; the `abusing` variant
//! with it is exact at 27, 28 and 29, under C4 and all of D4.

mod common;

use burn::tensor::{Device, Tensor};
use common::{host, relative_error, seeded_tensor};
use equivar::check::equivariance_report;
use equivar::field::FeatureType;
use equivar::models;
use equivar::nn::{CanonicalResample, Resampling};
use equivar::plan::{Exactness, Plan};

const EXACT_TOL: f64 = 1e-5;

fn layer(t: &str, resampling: Resampling) -> CanonicalResample {
    CanonicalResample {
        feature_type: t.parse().unwrap(),
        resampling,
        name: "resample".into(),
    }
}

/// Max over the grid symmetries of `t`'s group of the relative error of
/// `layer(g x)` against `g layer(x)`.
fn max_error(layer: &CanonicalResample, x: Tensor<4>) -> f64 {
    let t: &FeatureType = &layer.feature_type;
    let y = layer.forward(x.clone());
    layer
        .elements()
        .into_iter()
        .map(|g| {
            let moved = layer.forward(t.act(g, x.clone()).unwrap());
            relative_error(&host(moved), &host(t.act(g, y.clone()).unwrap()))
        })
        .fold(0.0, f64::max)
}

#[test]
fn subsampling_and_upsampling_are_exact_at_every_size() {
    let device = Device::flex();
    let types = [
        ("C4: 2x regular", 8),
        ("D4: 2x regular", 16),
        ("D4: trivial + irrep(1,1)", 3),
        ("C1: 3x trivial", 3),
    ];
    for (seed, (t, channels)) in types.into_iter().enumerate() {
        for n in 5..=12 {
            for stride in [1, 2, 3] {
                for resampling in [
                    Resampling::Subsample { stride },
                    Resampling::Upsample { stride },
                ] {
                    let l = layer(t, resampling);
                    let x =
                        seeded_tensor([3, channels, n, n], seed as u64 * 100 + n as u64, &device);
                    let out = l.forward(x.clone());
                    let m = resampling.out_size(n);
                    assert_eq!(out.dims(), [3, channels, m, m]);
                    let err = max_error(&l, x);
                    assert!(err <= EXACT_TOL, "{t} n={n} {resampling:?}: {err:.2e}");
                }
            }
        }
    }
}

#[test]
fn the_pose_follows_the_image_and_the_plain_grid_would_not() {
    let device = Device::flex();
    let l = layer("C4: regular", Resampling::Subsample { stride: 2 });
    let x = seeded_tensor([4, 4, 9, 9], 5, &device);
    let poses = host(l.poses(&x).float());
    let t = &l.feature_type;
    let elements = l.elements();
    for (k, &g) in elements.iter().enumerate() {
        let moved = host(l.poses(&t.act(g, x.clone()).unwrap()).float());
        for (before, after) in poses.iter().zip(&moved) {
            // The pose of g x is g h.
            let h = elements[*before as usize];
            let expected = elements
                .iter()
                .position(|&e| e.distance(g.compose(h)) < 1e-9)
                .unwrap();
            assert_eq!(*after as usize, expected, "element {k}");
        }
    }
    // Without the pose (every image in the identity pose), 8 -> 4 misses the far border.
    let x = seeded_tensor([4, 4, 8, 8], 6, &device);
    assert!(max_error(&l, x.clone()) <= EXACT_TOL);
    let plain = CanonicalResample {
        feature_type: "C1: 4x trivial".parse().unwrap(),
        ..l
    };
    let y = plain.forward(x.clone());
    let quarter = elements[1];
    let rotated_then = plain.forward(t.act(quarter, x).unwrap());
    let err = relative_error(&host(rotated_then), &host(t.act(quarter, y).unwrap()));
    assert!(err > 0.1, "the plain grid at 8 is off centre: {err:.2e}");
}

#[test]
fn gradients_match_finite_differences() {
    let device = Device::flex();
    let l = layer("D4: regular", Resampling::Subsample { stride: 2 });
    let x = seeded_tensor([2, 8, 7, 7], 11, &device);
    let r = seeded_tensor([2, 8, 4, 4], 12, &device);
    let v = seeded_tensor([2, 8, 7, 7], 13, &device);
    let xa = x.clone().autodiff().require_grad();
    let loss = (l.forward(xa.clone()) * r.clone()).sum();
    let grads = loss.backward();
    let grad = host(xa.grad(&grads).unwrap());
    let analytic: f64 = grad
        .iter()
        .zip(host(v.clone()))
        .map(|(&a, b)| a as f64 * b as f64)
        .sum();
    // The layer is piecewise linear; a step small enough to keep every pose is exact up to
    // rounding.
    let eps = 1e-3;
    let at = |x: Tensor<4>| -> f64 {
        host(l.forward(x) * r.clone())
            .iter()
            .map(|&a| a as f64)
            .sum()
    };
    let numeric = (at(x.clone() + v.clone() * eps) - at(x - v * eps)) / (2.0 * eps);
    assert!(
        (analytic - numeric).abs() <= 1e-3 * analytic.abs().max(1.0),
        "autodiff {analytic} vs finite differences {numeric}"
    );
}

#[test]
fn the_subsampling_abusing_nets_are_exact_at_27_28_and_29() {
    let device = Device::flex();
    for name in ["abusing-p4-subsample", "abusing-p4m-subsample"] {
        let spec = models::spec(name).unwrap();
        for (n, out) in [(27, 10), (28, 11), (29, 11)] {
            let plan = Plan::new(&spec, n).unwrap();
            assert!(plan.exact && plan.repairs.is_none(), "{name} plan at {n}");
            let sub = plan.layers.iter().find(|l| l.name == "subsample1").unwrap();
            assert_eq!(sub.out_size, (n - 1).div_ceil(2));
            assert_eq!(plan.layers.last().unwrap().in_size, 1);
            assert_eq!(
                plan.layers
                    .iter()
                    .find(|l| l.kind == "group_conv" && l.in_size != l.out_size)
                    .unwrap()
                    .out_size,
                out
            );
            let net = spec.init(n, Exactness::Require, &device).unwrap();
            let order = spec.group().pixel_grid_elements().len();
            let report =
                equivariance_report(&net, seeded_tensor([2, 1, n, n], n as u64, &device)).unwrap();
            assert_eq!(
                report.elements.len(),
                order - 1,
                "{name}: every non-identity element"
            );
            assert!(
                report.max_rel_error <= EXACT_TOL,
                "{name} at {n}: {:.2e}",
                report.max_rel_error
            );
        }
    }
}

/// An empty batch gives an empty batch of the resampled size.
#[test]
fn an_empty_batch_stays_empty() {
    let device = Device::flex();
    for resampling in [
        Resampling::Subsample { stride: 2 },
        Resampling::Upsample { stride: 2 },
    ] {
        let l = layer("C4: 2x regular", resampling);
        let out = l.forward(Tensor::<4>::zeros([0, 8, 7, 7], &device));
        let m = resampling.out_size(7);
        assert_eq!(out.dims(), [0, 8, m, m]);
    }
}
