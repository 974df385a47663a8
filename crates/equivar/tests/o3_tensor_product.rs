//! Tensor products and spherical harmonics: e3nn's numbers, equivariance in f64, and the
//! float32 kernels against the f64 definitions (outputs and gradients).

use equivar::o3::{
    Input, Irreps, Mode, Normalization, SphericalHarmonics, TensorProduct, assert_equivariant,
};
use equivar_kernels::{Isa, spherical_harmonics as sh_kernel, tensor_product as tp_kernel};

const FEATURES: &str = "32x0e+32x1o+32x2e";
const SH2: &str = "1x0e+1x1o+1x2e";

/// e3nn_ops.py's probe inputs: x1[i] = sin(i + 1), x2 = the harmonics of (0.3, -0.5, 0.8),
/// w[k] = cos(k + 1).
fn probe_inputs(tp: &TensorProduct) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let x1 = (0..tp.irreps_in1().dim())
        .map(|i| ((i + 1) as f64).sin())
        .collect();
    let x2 = SphericalHarmonics::new(2, Normalization::Component, true)
        .unwrap()
        .eval([0.3, -0.5, 0.8]);
    let w = (0..tp.weight_numel())
        .map(|k| ((k + 1) as f64).cos())
        .collect();
    (x1, x2, w)
}

fn parse(s: &str) -> Irreps {
    s.parse().unwrap()
}

/// Deterministic pseudo-random numbers in [-1, 1).
fn numbers(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

#[test]
fn fully_connected_product_matches_e3nn() {
    let tp = TensorProduct::fully_connected(parse(FEATURES), parse(SH2), parse(FEATURES)).unwrap();
    assert_eq!(tp.instructions().len(), 11);
    assert_eq!(tp.weight_numel(), 11264);
    // E3-FACTS.md: c^2 = 1/96 into 0e, 3/128 into 1o, 5/128 into 2e.
    for (ins, c) in tp.instructions().iter().zip(tp.coefficients()) {
        let expected = [1.0 / 96.0, 3.0 / 128.0, 5.0 / 128.0][ins.i_out];
        assert!((c * c - expected).abs() < 1e-15);
    }
    let (x1, x2, w) = probe_inputs(&tp);
    let y = tp.forward_f64(&x1, &x2, &w, true);
    // e3nn 0.6.0's probe (../shared/peers/e3nn-results-2026-11-29.txt, case fctp_uvw).
    let head = [
        0.170603108935,
        0.163146706148,
        0.005693974118,
        -0.156993771457,
        -0.175342167568,
        -0.032481783449,
        0.140242202576,
        0.184028154313,
    ];
    for (a, b) in y.iter().zip(head) {
        assert!((a - b).abs() < 1e-11, "{a} vs {b}");
    }
    assert!((y.iter().sum::<f64>() - 0.1739276330286106).abs() < 1e-10);
    assert!((y.iter().map(|v| v * v).sum::<f64>() - 5.9047231399521625).abs() < 1e-10);
}

#[test]
fn channel_wise_product_matches_e3nn() {
    let tp = TensorProduct::channel_wise(parse(FEATURES), parse(SH2), &parse(FEATURES)).unwrap();
    assert_eq!(
        tp.irreps_out().to_string(),
        "32x0e+32x0e+32x0e+32x1o+32x1o+32x1o+32x1o+32x2e+32x2e+32x2e+32x2e"
    );
    assert_eq!(
        tp.irreps_out().simplify().to_string(),
        "96x0e+128x1o+128x2e"
    );
    assert_eq!(tp.weight_numel(), 352);
    let (x1, x2, w) = probe_inputs(&tp);
    let y = tp.forward_f64(&x1, &x2, &w, false);
    // e3nn 0.6.0's probe (case uvu_radial).
    let head = [
        0.454648713413,
        -0.378401247654,
        -0.139707749099,
        0.494679123312,
        -0.272010555445,
        -0.268286459,
        0.495303677847,
        -0.143951658333,
    ];
    for (a, b) in y.iter().zip(head) {
        assert!((a - b).abs() < 1e-11, "{a} vs {b}");
    }
    assert!((y.iter().sum::<f64>() - 9.71016048129065).abs() < 1e-9);
    assert!((y.iter().map(|v| v * v).sum::<f64>() - 268.38048154320563).abs() < 1e-9);
}

#[test]
fn products_are_equivariant_in_f64() {
    let fc = TensorProduct::fully_connected(
        parse("4x0e+3x1o+2x2e+1x1e"),
        parse("1x0e+1x1o+1x2e+1x3o"),
        parse("3x0e+2x1o+2x1e+2x2e+1x3o+1x2o"),
    )
    .unwrap();
    let w = numbers(fc.weight_numel(), 3);
    let inputs = [
        Input {
            irreps: fc.irreps_in1().clone(),
            rows: 3,
        },
        Input {
            irreps: fc.irreps_in2().clone(),
            rows: 3,
        },
    ];
    let report = assert_equivariant(
        &inputs,
        fc.irreps_out(),
        |xs| fc.forward_f64(&xs[0], &xs[1], &w, true),
        1e-10,
    )
    .unwrap();
    assert!(report.output_max > 0.1);

    let cw = TensorProduct::channel_wise(
        parse("4x0e+3x1o+2x2e"),
        parse("1x0e+1x1o+1x2e"),
        &parse("0e+1o+2e+1e"),
    )
    .unwrap();
    let rows = 3;
    let inputs = [
        Input {
            irreps: cw.irreps_in1().clone(),
            rows,
        },
        Input {
            irreps: cw.irreps_in2().clone(),
            rows,
        },
        Input {
            irreps: format!("{}x0e", cw.weight_numel()).parse().unwrap(),
            rows,
        },
    ];
    assert_equivariant(
        &inputs,
        cw.irreps_out(),
        |xs| cw.forward_f64(&xs[0], &xs[1], &xs[2], false),
        1e-10,
    )
    .unwrap();

    // A path into the wrong parity is refused at construction.
    let bad = TensorProduct::new(
        parse("1x1o"),
        parse("1x1o"),
        parse("1x1o"),
        vec![equivar::o3::Instruction::new(0, 0, 0, Mode::Uvw)],
        Default::default(),
        Default::default(),
    );
    let e = bad.unwrap_err().to_string();
    assert!(e.contains("1o x 1o does not contain 1o"), "{e}");
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The kernels against the f64 definition. The product is linear in each argument, so the
/// gradients are checked exactly: <dx1, d> = <g, f(d, x2, w)> for random directions d.
fn check_kernels(tp: &TensorProduct, rows: usize, shared: bool) {
    let (d1, d2, dout, numel) = (
        tp.irreps_in1().dim(),
        tp.irreps_in2().dim(),
        tp.irreps_out().dim(),
        tp.weight_numel(),
    );
    let x1 = numbers(rows * d1, 1);
    let x2 = numbers(rows * d2, 2);
    let w = numbers(if shared { numel } else { rows * numel }, 3);
    let g = numbers(rows * dout, 4);
    let expected = tp.forward_f64(&x1, &x2, &w, shared);
    for isa in Isa::available() {
        let got =
            tp_kernel::forward_with(tp.plan(), &f32s(&x1), &f32s(&x2), &f32s(&w), shared, isa);
        let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let err = expected
            .iter()
            .zip(&got)
            .fold(0.0f64, |m, (a, &b)| m.max((a - b as f64).abs()));
        assert!(err <= 1e-5 * scale, "forward: {err:e} against {scale}");

        let (dx1, dx2, dw) = tp_kernel::backward_with(
            tp.plan(),
            &f32s(&x1),
            &f32s(&x2),
            &f32s(&w),
            shared,
            &f32s(&g),
            isa,
        );
        let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        for seed in 0..3 {
            let d = numbers(x1.len(), 10 + seed);
            let (lhs, rhs) = (
                dot(&to64(&dx1), &d),
                dot(&g, &tp.forward_f64(&d, &x2, &w, shared)),
            );
            assert!(
                (lhs - rhs).abs() <= 1e-4 * rhs.abs().max(1.0),
                "dx1: {lhs} vs {rhs}"
            );
            let d = numbers(x2.len(), 20 + seed);
            let (lhs, rhs) = (
                dot(&to64(&dx2), &d),
                dot(&g, &tp.forward_f64(&x1, &d, &w, shared)),
            );
            assert!(
                (lhs - rhs).abs() <= 1e-4 * rhs.abs().max(1.0),
                "dx2: {lhs} vs {rhs}"
            );
            let d = numbers(w.len(), 30 + seed);
            let (lhs, rhs) = (
                dot(&to64(&dw), &d),
                dot(&g, &tp.forward_f64(&x1, &x2, &d, shared)),
            );
            assert!(
                (lhs - rhs).abs() <= 1e-4 * rhs.abs().max(1.0),
                "dw: {lhs} vs {rhs}"
            );
        }
    }
}

#[test]
fn tensor_product_kernels_equal_the_definition() {
    // More rows than one rayon chunk, so chunk boundaries and the shared-weight reduction run.
    let fc = TensorProduct::fully_connected(
        parse("5x0e+3x1o+2x2e+2x1e"),
        parse("2x0e+1x1o+1x2e"),
        parse("4x0e+3x1o+1x1e+2x2e+1x3o"),
    )
    .unwrap();
    check_kernels(&fc, 150, true);
    check_kernels(&fc, 70, false);
    let cw = TensorProduct::channel_wise(
        parse("6x0e+4x1o+3x2e"),
        parse("1x0e+2x1o+1x2e+1x3o"),
        &parse("0e+1o+2e+3o"),
    )
    .unwrap();
    check_kernels(&cw, 150, false);
    check_kernels(&cw, 130, true);
}

#[test]
fn spherical_harmonics_kernel_equals_the_definition() {
    for (lmax, normalize) in [(2, true), (3, true), (6, true), (12, true), (4, false)] {
        let reference = SphericalHarmonics::new(lmax, Normalization::Component, normalize).unwrap();
        let plan = sh_kernel::ShPlan::new(lmax, normalize, &vec![1.0; lmax + 1]);
        let mut vectors = numbers(300 * 3, lmax as u64);
        vectors[..3].fill(0.0); // a zero vector
        for isa in Isa::available() {
            let got = sh_kernel::forward_with(&plan, &f32s(&vectors), isa);
            let g = numbers(300 * reference.dim(), 99);
            let grad = sh_kernel::backward_with(&plan, &f32s(&vectors), &f32s(&g), isa);
            for (n, v) in vectors.chunks(3).enumerate() {
                let (y, dy) = reference.eval_with_gradient([v[0], v[1], v[2]]);
                let scale = y.iter().fold(1.0f64, |m, a| m.max(a.abs()));
                for (k, &a) in y.iter().enumerate() {
                    let b = got[n * reference.dim() + k] as f64;
                    assert!(
                        (a - b).abs() <= 2e-5 * scale,
                        "{isa:?} lmax {lmax} vector {n} component {k}: {a} vs {b}"
                    );
                }
                let norm = if normalize {
                    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
                } else {
                    1.0
                };
                for axis in 0..3 {
                    let expected: f64 = (0..reference.dim())
                        .map(|k| g[n * reference.dim() + k] * dy[k][axis])
                        .sum();
                    let gscale = (0..reference.dim())
                        .map(|k| (g[n * reference.dim() + k] * dy[k][axis]).abs())
                        .sum::<f64>()
                        .max(1.0 / norm.max(1e-3));
                    let b = grad[n * 3 + axis] as f64;
                    assert!(
                        (expected - b).abs() <= 2e-5 * gscale,
                        "{isa:?} lmax {lmax} vector {n} axis {axis}: {expected} vs {b}"
                    );
                }
            }
        }
    }
}

/// SEGNN's weight-balanced irreps, against the same search run with e3nn 0.6.0's
/// FullyConnectedTensorProduct weight counts (peers venv).
#[test]
fn weight_balanced_irreps_match_segnns_rule() {
    use equivar::o3::{Irreps, weight_balanced_irreps};
    for (scalars, attr_lmax, lmax, expected) in [
        (128, 3, 2, "36x0e+36x1o+36x2e"),
        (64, 2, 1, "29x0e+29x1o"),
        (32, 1, 2, "13x0e+13x1o+13x2e"),
        (100, 3, 3, "21x0e+21x1o+21x2e+21x3o"),
    ] {
        let got =
            weight_balanced_irreps(scalars, &Irreps::spherical_harmonics(attr_lmax), lmax).unwrap();
        assert_eq!(
            got.to_string(),
            expected,
            "{scalars} scalars, attributes up to {attr_lmax}"
        );
    }
    assert!(weight_balanced_irreps(0, &Irreps::spherical_harmonics(1), 1).is_err());
}
