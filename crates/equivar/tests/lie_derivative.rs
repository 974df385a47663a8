//! The Lie derivative and local equivariance error: zero for functions exactly invariant
//! under continuous rotations, the closed-form derivative of a known function of a known
//! image, the per-layer attribution summing to the end-to-end value, and the layer-by-layer
//! backward passes agreeing with the whole network's.

mod common;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use common::seeded_tensor;
use equivar::check::lie::{LieTransform, lie_derivative, lie_report, local_equivariance_error};
use equivar::layers::LayerKind;
use equivar::models;
use equivar::plan::Exactness;

fn host(t: Tensor<2>) -> Vec<f64> {
    t.into_data()
        .try_to_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

/// Per image: functions of the energy `E = sum x^2`, invariant under every rotation of the
/// plane. (With central differences and zero padding `L E = -sum_p 2 x(p) v(p) . grad x(p)`
/// telescopes to exactly zero, as the rotation field's components are constant along their
/// own axes; the mass `sum x` does not, as its border pixels differ from the padding.)
fn moments(x: Tensor<4>) -> Tensor<2> {
    let [b, c, h, w] = x.dims();
    let energy = x.reshape([b, c * h * w]).powi_scalar(2).sum_dim(1);
    Tensor::cat(
        vec![
            energy.clone(),
            energy.clone().sqrt(),
            energy.clone() * energy * 0.01,
        ],
        1,
    )
}

#[test]
fn rotation_invariant_functions_have_zero_lie_derivative() {
    let device = Device::flex();
    let x = seeded_tensor([3, 2, 11, 11], 1, &device);
    let l = host(lie_derivative(moments, &x, LieTransform::Rotation));
    let scale = host(moments(x.clone()))
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()));
    for v in &l {
        assert!(
            v.abs() <= 1e-6 * scale,
            "L f = {v:.3e} (f up to {scale:.1})"
        );
    }
    let lee = local_equivariance_error(moments, &x, LieTransform::Rotation);
    assert!(lee <= 1e-6, "LEE {lee:.3e}");
    // The same functions do change under scaling and contrast: the estimator is not blind.
    for t in [LieTransform::Scale, LieTransform::Saturation] {
        let l = host(lie_derivative(moments, &x, t));
        let largest = l.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(largest > 1e-2 * scale, "{t:?}: L f up to {largest:.3e}");
    }
}

#[test]
fn a_known_function_of_a_known_image_has_its_closed_form_derivative() {
    // x(u, w) = u^2 + 3w (u to the right, w down from the centre): central differences are
    // exact for it away from the border, so its Lie derivative is the continuous one,
    // L x = -(du/dt * 2u + dw/dt * 3). f = [sum_m x, sum_m x^2] over the interior m.
    let device = Device::flex();
    let n = 9;
    let c = (n as f64 - 1.0) / 2.0;
    let image: Vec<f32> = (0..n * n)
        .map(|k| {
            let (u, w) = ((k % n) as f64 - c, (k / n) as f64 - c);
            (u * u + 3.0 * w) as f32 * 0.1
        })
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(image, [1, 1, n, n]), &device);
    let mask: Vec<f32> = (0..n * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            f32::from(u8::from(i > 0 && j > 0 && i < n - 1 && j < n - 1))
        })
        .collect();
    let mask = Tensor::<4>::from_data(TensorData::new(mask, [1, 1, n, n]), &device);
    let f = |x: Tensor<4>| {
        let [b, ..] = x.dims();
        let m = x * mask.clone();
        let flat = m.clone().reshape([b, n * n]);
        let squares = (m.clone() * m).reshape([b, n * n]);
        Tensor::cat(vec![flat.sum_dim(1), squares.sum_dim(1)], 1)
    };
    for (t, velocity) in [
        (
            LieTransform::Rotation,
            (|u: f64, w: f64| (w, -u)) as fn(f64, f64) -> (f64, f64),
        ),
        (LieTransform::TranslationX, |_, _| (1.0, 0.0)),
        (LieTransform::TranslationY, |_, _| (0.0, 1.0)),
        (LieTransform::Scale, |u, w| (u, w)),
        (LieTransform::Shear, |_, w| (w, 0.0)),
        (LieTransform::StretchX, |u, _| (u, 0.0)),
        (LieTransform::StretchY, |_, w| (0.0, w)),
    ] {
        let (mut d1, mut d2) = (0.0, 0.0);
        for i in 1..n - 1 {
            for j in 1..n - 1 {
                let (u, w) = (j as f64 - c, i as f64 - c);
                let value = 0.1 * (u * u + 3.0 * w);
                let (du, dw) = velocity(u, w);
                let lx = -0.1 * (du * 2.0 * u + dw * 3.0);
                d1 += lx;
                d2 += 2.0 * value * lx;
            }
        }
        let got = host(lie_derivative(f, &x, t));
        for (g, want) in got.iter().zip([d1, d2]) {
            assert!(
                (g - want).abs() <= 1e-5 * want.abs().max(1.0),
                "{t:?}: {g} vs closed form {want}"
            );
        }
    }
}

#[test]
fn per_layer_attribution_telescopes_to_the_end_to_end_lee() {
    let device = Device::flex();
    device.seed(3);
    let spec = models::spec("abusing-p4").unwrap();
    let net = spec.init(29, Exactness::AllowApproximate, &device).unwrap();
    let x = seeded_tensor([5, 1, 29, 29], 4, &device);
    let transforms = [
        LieTransform::Rotation,
        LieTransform::TranslationX,
        LieTransform::Saturation,
    ];
    let report = lie_report(&net, &x, &transforms).unwrap();
    assert_eq!(report.images, 5);
    let valid = net.valid();
    for t in &report.transforms {
        // The layer-by-layer backward passes agree with the whole network's.
        let direct = local_equivariance_error(|x| valid.logits(x).unwrap(), &x, t.transform);
        assert!(
            (direct - t.lee).abs() <= 1e-4 * t.lee.max(1e-12),
            "{:?}: {direct:.6e} whole network vs {:.6e} layer by layer",
            t.transform,
            t.lee
        );
        if t.transform == LieTransform::Saturation {
            assert!(t.layers.is_empty());
            continue;
        }
        assert_eq!(t.layers.len(), net.layers.len());
        let sum = t.layers_sum.unwrap();
        assert!(
            sum >= t.lee * (1.0 - 1e-6),
            "{:?}: {sum} < {}",
            t.transform,
            t.lee
        );
        assert!(
            t.attribution_residual.unwrap() <= 1e-6 * t.lee.max(1e-12) + 1e-12,
            "{t:?}"
        );
    }
}

#[test]
fn subsampling_adds_translation_error_to_a_model() {
    // abusing-p4 and the same net with its 2x2 max pool at stride 1: the same weights (the
    // pool has none), the same images; the stride-2 grid aliases translations.
    let device = Device::flex();
    let strided = models::spec("abusing-p4").unwrap();
    let mut stride_one = strided.clone();
    for layer in &mut stride_one.layers {
        if let LayerKind::MaxPool(pool) = &mut layer.kind {
            pool.window.stride = 1;
        }
    }
    let n = 21;
    let x = seeded_tensor([12, 1, n, n], 9, &device);
    let strided = strided
        .init(n, Exactness::AllowApproximate, &device)
        .unwrap();
    let stride_one = stride_one
        .init(n, Exactness::AllowApproximate, &device)
        .unwrap()
        .load_record(strided.clone().into_record());
    let lee = |net: &equivar::nn::Net| {
        lie_report(
            net,
            &x,
            &[LieTransform::TranslationX, LieTransform::TranslationY],
        )
        .unwrap()
        .transforms
    };
    let (a, b) = (lee(&strided), lee(&stride_one));
    for (s, o) in a.iter().zip(&b) {
        assert!(
            s.lee > 1.2 * o.lee,
            "{:?}: strided {:.3e} vs stride 1 {:.3e}",
            s.transform,
            s.lee,
            o.lee
        );
    }
}
