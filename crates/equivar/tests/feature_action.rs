//! The action of group elements on feature maps of any feature type: a group action
//! (`g.(h.x) = (gh).x`), exact where the element permutes pixels (matching the G-CNN layers'
//! own action), and, for rotations that need interpolation, close to the true rotation of a
//! smooth image inside the inscribed disc.

use std::f64::consts::TAU;

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use equivar::check::max_errors;
use equivar::field::{FeatureType, FieldType};
use equivar::group::{Group, O2Element, PlanarGroup};
use equivar::space::{PixelAction, disc_mask};

fn device() -> Device {
    Device::flex()
}

fn random(channels: usize, n: usize) -> Tensor<4> {
    Tensor::random(
        [2, channels, n, n],
        Distribution::Normal(0.0, 1.0),
        &device(),
    )
}

fn ty(text: &str) -> FeatureType {
    text.parse().unwrap()
}

#[test]
fn regular_fields_act_as_the_g_cnn_layers_do() {
    for (group, text) in [
        (Group::cyclic(4), "C4: 3x regular"),
        (Group::dihedral(4), "D4: 3x regular"),
        (Group::dihedral(2), "D2: 3x regular"),
    ] {
        let feature_type = ty(text);
        let field_type = FieldType::regular(group, 3);
        let x = random(field_type.channels(), 7);
        for e in group.elements() {
            let old = field_type.act(e, x.clone()).unwrap();
            let new = feature_type.act(group.o2_element(e), x.clone()).unwrap();
            let (abs, _) = max_errors(&old, &new);
            assert_eq!(abs, 0.0, "{text}, element {e:?}");
        }
    }
}

/// `g.(h.x) = (gh).x` for every pair of elements, to float precision: exact elements only.
#[test]
fn exact_elements_compose_as_the_group() {
    for text in [
        "D4: 2x regular + quotient(C2) + irrep(1,1) + irrep(0,2) + trivial",
        "C4: regular + irrep(1) + irrep(2) + quotient(C2)",
    ] {
        let t = ty(text);
        let x = random(t.channels(), 6);
        let elements = t.group.elements();
        for &g in &elements {
            assert!(PixelAction::of(g).is_exact());
            for &h in &elements {
                let twice = t.act(g, t.act(h, x.clone()).unwrap()).unwrap();
                let once = t.act(g.compose(h), x.clone()).unwrap();
                let (_, rel) = max_errors(&twice, &once);
                assert!(rel <= 1e-6, "{text}: {rel:e}");
            }
        }
    }
}

/// A smooth image: a Gaussian blob off centre, `exp(-|p - a|^2 / s^2)` in centred pixel units.
fn blob(n: usize, centre: (f64, f64), g: O2Element) -> Tensor<4> {
    let c = (n as f64 - 1.0) / 2.0;
    let (sin, cos) = g.angle.sin_cos();
    let values: Vec<f32> = (0..n * n)
        .map(|k| {
            let (x, y) = ((k % n) as f64 - c, c - (k / n) as f64);
            // f(g^-1 p): rotate back, then mirror.
            let (qx, mut qy) = (x * cos + y * sin, -x * sin + y * cos);
            if g.reflected {
                qy = -qy;
            }
            let d2 = (qx - centre.0).powi(2) + (qy - centre.1).powi(2);
            (-d2 / 16.0).exp() as f32
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [1, 1, n, n]), &device())
}

#[test]
fn interpolated_rotations_move_a_smooth_image_to_where_it_belongs() {
    let n = 33;
    let t = ty("SO(2): trivial");
    let mask = disc_mask(n, 0.9, &device());
    for g in [
        O2Element::new(TAU / 8.0, false),
        O2Element::new(0.3, false),
        O2Element::new(2.0, true),
    ] {
        assert!(!PixelAction::of(g).is_exact());
        let group = if g.reflected {
            ty("O(2): trivial")
        } else {
            t.clone()
        };
        let moved = group
            .act(g, blob(n, (6.0, 2.0), O2Element::identity()))
            .unwrap();
        let expected = blob(n, (6.0, 2.0), g);
        let (abs, _) = max_errors(&(moved * mask.clone()), &(expected * mask.clone()));
        // Bilinear interpolation of a blob of width 4 pixels: a few per cent of its peak.
        assert!(abs < 0.03, "{g:?}: {abs}");
    }
}

#[test]
fn interpolated_rotations_compose_inside_the_disc() {
    let n = 33;
    let t = ty("C8: regular + 2x irrep(1) + irrep(4) + trivial");
    let channels = t.channels();
    // Smooth channels: blobs at different places, so that interpolation is accurate.
    let x = Tensor::cat(
        (0..channels)
            .map(|k| {
                let a = TAU * k as f64 / channels as f64;
                blob(n, (7.0 * a.cos(), 7.0 * a.sin()), O2Element::identity())
            })
            .collect(),
        1,
    );
    let mask = disc_mask(n, 0.8, &device());
    let r = O2Element::new(TAU / 8.0, false);
    let r3 = O2Element::new(3.0 * TAU / 8.0, false);
    let twice = t.act(r, t.act(r, x.clone()).unwrap()).unwrap();
    let quarter = t.act(r.compose(r), x.clone()).unwrap();
    let (abs, _) = max_errors(&(twice * mask.clone()), &(quarter * mask.clone()));
    assert!(abs < 0.05, "r.r vs r^2: {abs}");
    let back = t.act(r3.inverse(), t.act(r3, x.clone()).unwrap()).unwrap();
    let (abs, _) = max_errors(&(back * mask.clone()), &(x * mask));
    assert!(abs < 0.05, "r^-1.r vs identity: {abs}");
}

#[test]
fn nearly_quarter_turns_agree_with_the_exact_permutation() {
    let t = ty("SO(2): 2x irrep(1)");
    let x = random(4, 8);
    let exact = t.act(O2Element::new(TAU / 4.0, false), x.clone()).unwrap();
    let near = t.act(O2Element::new(TAU / 4.0 + 1e-7, false), x).unwrap();
    let (_, rel) = max_errors(&exact, &near);
    assert!(rel < 1e-5, "{rel:e}");
}

#[test]
fn bad_elements_and_maps_are_clear_errors() {
    let t = ty("C4: regular");
    let err = t
        .act(O2Element::new(TAU / 8.0, false), random(4, 5))
        .unwrap_err()
        .to_string();
    assert!(err.contains("r(45)") && err.contains("not in C4"), "{err}");
    let err = t
        .act(O2Element::new(0.0, true), random(4, 5))
        .unwrap_err()
        .to_string();
    assert!(err.contains("r(0)m"), "{err}");
    let err = t
        .act(O2Element::identity(), random(3, 5))
        .unwrap_err()
        .to_string();
    assert!(err.contains("[batch, 4, n, n]"), "{err}");
    assert!(PlanarGroup::Cyclic(4).contains(O2Element::new(TAU / 4.0, false)));
}
