//! The O(3) mathematics against e3nn 0.6.0's own numbers (tests/fixtures/o3/e3nn_reference.json,
//! written by make_e3nn_reference.py beside it) and against the defining identities, in f64.

use equivar::o3::rotation::{self, Mat3};
use equivar::o3::{
    Input, Irrep, Irreps, Normalization, SphericalHarmonics, assert_equivariant,
    equivariance_error, wigner_3j, wigner_d, wigner_d_from_angles, wigner_d_up_to,
};
use equivar::space::SphereGrid;
use nalgebra::DMatrix;
use serde_json::Value;

fn reference() -> Value {
    let text = include_str!("fixtures/o3/e3nn_reference.json");
    serde_json::from_str(text).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn mat3(v: &Value) -> Mat3 {
    let f = floats(v);
    [[f[0], f[1], f[2]], [f[3], f[4], f[5]], [f[6], f[7], f[8]]]
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn spherical_harmonics_equal_e3nns_values() {
    let reference = reference();
    let cases = reference["sh"].as_array().unwrap();
    assert_eq!(cases.len(), 24);
    for case in cases {
        let xyz = floats(&case["xyz"]);
        let normalization = match case["normalization"].as_str().unwrap() {
            "component" => Normalization::Component,
            "norm" => Normalization::Norm,
            _ => Normalization::Integral,
        };
        let normalize = case["normalize"].as_bool().unwrap();
        let lmax = case["lmax"].as_u64().unwrap() as usize;
        let sh = SphericalHarmonics::new(lmax, normalization, normalize).unwrap();
        let expected = floats(&case["values"]);
        let got = sh.eval([xyz[0], xyz[1], xyz[2]]);
        let scale = expected.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let err = max_abs_diff(&got, &expected);
        assert!(err <= 1e-12 * scale, "{case:?}: error {err:e}");
    }
    let zero = SphericalHarmonics::new(2, Normalization::Component, true)
        .unwrap()
        .eval([0.0; 3]);
    assert_eq!(zero, floats(&reference["sh_zero"]));
    // The probe quoted in E3-FACTS.md.
    let probe = SphericalHarmonics::new(2, Normalization::Component, true)
        .unwrap()
        .eval([0.3, -0.5, 0.8]);
    assert!((probe[4] - 0.948485717439).abs() < 1e-12);
}

#[test]
fn spherical_harmonics_are_orthonormal_under_a_sphere_quadrature() {
    let lmax = 12;
    let sh = SphericalHarmonics::new(lmax, Normalization::Component, true).unwrap();
    // Gauss-Legendre in latitude, exact for the degree-24 products.
    let grid = SphereGrid::gauss_legendre(lmax + 1, 2 * lmax + 2).unwrap();
    let dim = sh.dim();
    let mut gram = vec![0.0; dim * dim];
    for ring in 0..lmax + 1 {
        let w = grid.weights()[ring] / (4.0 * std::f64::consts::PI);
        for column in 0..2 * lmax + 2 {
            let y = sh.eval(grid.unit_vector(ring, column));
            for a in 0..dim {
                for b in 0..dim {
                    gram[a * dim + b] += w * y[a] * y[b];
                }
            }
        }
    }
    for a in 0..dim {
        for b in 0..dim {
            let expected = if a == b { 1.0 } else { 0.0 };
            assert!(
                (gram[a * dim + b] - expected).abs() < 1e-12,
                "<Y_{a}, Y_{b}> = {}",
                gram[a * dim + b]
            );
        }
    }
}

#[test]
fn wigner_d_matches_e3nn_and_is_a_representation() {
    let reference = reference();
    let angles = floats(&reference["wigner_d_angles"]);
    for l in 0..5 {
        let d = wigner_d_from_angles(l, angles[0], angles[1], angles[2]).unwrap();
        let expected = floats(&reference["wigner_d"][l.to_string()]);
        let got: Vec<f64> = (0..d.nrows())
            .flat_map(|i| (0..d.ncols()).map(move |j| (i, j)))
            .map(|(i, j)| d[(i, j)])
            .collect();
        assert!(max_abs_diff(&got, &expected) < 1e-12, "l = {l}");
    }
    // Quaternions and angles as e3nn.
    let q = floats(&reference["quaternion"]);
    let r = rotation::quaternion_to_matrix([q[0], q[1], q[2], q[3]]);
    let expected = mat3(&reference["quaternion_matrix"]);
    assert!(max_abs_diff(r.as_flattened(), expected.as_flattened()) < 1e-14);
    let (a, b, c) = rotation::matrix_to_angles(&r);
    assert!(max_abs_diff(&[a, b, c], &floats(&reference["quaternion_angles"])) < 1e-12);
    let m = rotation::angles_to_matrix(angles[0], angles[1], angles[2]);
    assert!(
        max_abs_diff(
            m.as_flattened(),
            mat3(&reference["angles_matrix"]).as_flattened()
        ) < 1e-14
    );
    // Irreps::d_from_matrix, proper and improper, as e3nn's D_from_matrix.
    let irreps: Irreps = reference["d_from_matrix_irreps"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for (q, key) in [
        (r, "d_from_matrix"),
        (rotation::negate(&r), "d_from_matrix_improper"),
    ] {
        let d = irreps.d_from_matrix(&q).unwrap();
        let got: Vec<f64> = d.transpose().iter().copied().collect(); // row-major
        assert!(
            max_abs_diff(&got, &floats(&reference[key])) < 1e-12,
            "{key}"
        );
    }

    // D(R1 R2) = D(R1) D(R2) and D D^T = 1 for l <= 8.
    let rs = rotation::random_rotations(6, 11);
    for pair in rs.chunks(2) {
        let (r1, r2) = (&pair[0], &pair[1]);
        let d1 = wigner_d_up_to(8, r1).unwrap();
        let d2 = wigner_d_up_to(8, r2).unwrap();
        let d12 = wigner_d_up_to(8, &rotation::mat_mul(r1, r2)).unwrap();
        for l in 0..=8 {
            let composed = (&d12[l] - &d1[l] * &d2[l]).abs().max();
            let orthogonal = (&d1[l] * d1[l].transpose() - DMatrix::identity(2 * l + 1, 2 * l + 1))
                .abs()
                .max();
            assert!(
                composed < 1e-12 && orthogonal < 1e-12,
                "l = {l}: {composed:e}, {orthogonal:e}"
            );
        }
    }
}

#[test]
fn harmonics_transform_by_the_wigner_matrices() {
    let sh = SphericalHarmonics::new(6, Normalization::Component, false).unwrap();
    let input = [Input {
        irreps: "1x1o".parse().unwrap(),
        rows: 50,
    }];
    let report = assert_equivariant(
        &input,
        &sh.irreps(),
        |xs| {
            xs[0]
                .chunks(3)
                .flat_map(|v| sh.eval([v[0], v[1], v[2]]))
                .collect()
        },
        1e-12,
    )
    .unwrap();
    assert!(report.output_max > 1.0);
    // An axial input (1e) makes every degree even: labelled 1o the check must fail.
    let axial = [Input {
        irreps: "1x1e".parse().unwrap(),
        rows: 5,
    }];
    let err = assert_equivariant(
        &axial,
        &sh.irreps(),
        |xs| {
            xs[0]
                .chunks(3)
                .flat_map(|v| sh.eval([v[0], v[1], v[2]]))
                .collect()
        },
        1e-10,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("not equivariant") && err.contains("improper"),
        "{err}"
    );
}

/// The 3j tensor as a matrix over (m1 m2) x m3, rotated: (D1 x D2)^T C D3.
fn rotated_3j(l: [usize; 3], r: &Mat3) -> (Vec<f64>, Vec<f64>) {
    let c = wigner_3j(l[0], l[1], l[2]).unwrap();
    let ds: Vec<DMatrix<f64>> = l.iter().map(|&l| wigner_d(l, r).unwrap()).collect();
    let n = l.map(|l| 2 * l + 1);
    let mut out = vec![0.0; c.len()];
    for i in 0..n[0] {
        for j in 0..n[1] {
            for k in 0..n[2] {
                let mut s = 0.0;
                for a in 0..n[0] {
                    for b in 0..n[1] {
                        let dab = ds[0][(i, a)] * ds[1][(j, b)];
                        if dab == 0.0 {
                            continue;
                        }
                        for cc in 0..n[2] {
                            s += dab * ds[2][(k, cc)] * c[(a * n[1] + b) * n[2] + cc];
                        }
                    }
                }
                out[(i * n[1] + j) * n[2] + k] = s;
            }
        }
    }
    (c, out)
}

#[test]
fn wigner_3j_is_invariant_and_matches_e3nns_signs() {
    let reference = reference();
    let r = rotation::random_rotations(1, 5)[0];
    let probes = reference["w3j_probes"].as_array().unwrap();
    let mut checked = 0;
    for case in probes {
        let l: Vec<usize> = case["l"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let (c, rotated) = rotated_3j([l[0], l[1], l[2]], &r);
        let invariance = max_abs_diff(&c, &rotated);
        assert!(invariance < 1e-12, "{l:?}: invariance error {invariance:e}");
        let norm = c.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-12);
        let n = [2 * l[0] + 1, 2 * l[1] + 1, 2 * l[2] + 1];
        let mut probe = 0.0;
        for i in 0..n[0] {
            for j in 0..n[1] {
                for k in 0..n[2] {
                    probe += c[(i * n[1] + j) * n[2] + k]
                        * (1.0 + i as f64 + 3.0 * j as f64 + 7.0 * k as f64).sin();
                }
            }
        }
        let expected = case["probe"].as_f64().unwrap();
        assert!(
            (probe - expected).abs() < 1e-12,
            "{l:?}: probe {probe} vs e3nn {expected}"
        );
        checked += 1;
    }
    assert_eq!(checked, probes.len());
    assert!(checked > 150);
    for case in reference["w3j_full"].as_array().unwrap() {
        let l: Vec<usize> = case["l"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let c = wigner_3j(l[0], l[1], l[2]).unwrap();
        assert!(max_abs_diff(&c, &floats(&case["values"])) < 1e-13, "{l:?}");
    }
    // The closed forms of E3-FACTS.md: C(1,1,1) = epsilon / sqrt(6).
    let c = wigner_3j(1, 1, 1).unwrap();
    assert!((c[5] - 1.0 / 6f64.sqrt()).abs() < 1e-15); // [0][1][2] = epsilon_xyz
}

#[test]
fn irreps_parse_and_print_like_e3nn() {
    let reference = reference();
    for case in reference["irreps"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let irreps: Irreps = text.parse().unwrap();
        assert_eq!(irreps.to_string(), case["str"].as_str().unwrap(), "{text}");
        assert_eq!(irreps.dim() as u64, case["dim"].as_u64().unwrap());
        assert_eq!(
            irreps.num_irreps() as u64,
            case["num_irreps"].as_u64().unwrap()
        );
        assert_eq!(
            irreps.simplify().to_string(),
            case["simplify"].as_str().unwrap(),
            "{text}"
        );
        let sorted = irreps.sort();
        assert_eq!(
            sorted.irreps.to_string(),
            case["sort"].as_str().unwrap(),
            "{text}"
        );
        let ints = |v: &Value| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect::<Vec<_>>()
        };
        assert_eq!(sorted.p, ints(&case["sort_p"]), "{text}");
        assert_eq!(sorted.inv, ints(&case["sort_inv"]), "{text}");
        assert_eq!(irreps.lmax().map(|l| l as u64), case["lmax"].as_u64());
        // The printed form parses back to the same list.
        assert_eq!(irreps.to_string().parse::<Irreps>().unwrap(), irreps);
    }
    for (key, expected) in reference["products"].as_object().unwrap() {
        let (a, b) = key.split_once('*').unwrap();
        let (a, b): (Irrep, Irrep) = (a.parse().unwrap(), b.parse().unwrap());
        let got: Vec<String> = a.product(b).map(|i| i.to_string()).collect();
        let expected: Vec<String> = expected
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, expected, "{key}");
    }
}

#[test]
fn a_coupling_through_3j_is_equivariant_and_a_mislabelled_one_is_not() {
    // x1 (1o) and x2 (2e) coupled to degree 2 (p = odd) through C(1, 2, 2).
    let c = wigner_3j(1, 2, 2).unwrap();
    let couple = |xs: &[Vec<f64>]| -> Vec<f64> {
        let rows = xs[0].len() / 3;
        let mut out = vec![0.0; rows * 5];
        for r in 0..rows {
            let (a, b) = (&xs[0][3 * r..3 * r + 3], &xs[1][5 * r..5 * r + 5]);
            for k in 0..5 {
                for i in 0..3 {
                    for j in 0..5 {
                        out[5 * r + k] += c[(i * 5 + j) * 5 + k] * a[i] * b[j];
                    }
                }
            }
        }
        out
    };
    let inputs = [
        Input {
            irreps: "1x1o".parse().unwrap(),
            rows: 7,
        },
        Input {
            irreps: "1x2e".parse().unwrap(),
            rows: 7,
        },
    ];
    let ok = equivariance_error(&inputs, &"1x2o".parse().unwrap(), couple, 4, 1).unwrap();
    assert!(ok.relative() < 1e-13, "{ok:?}");
    let wrong = equivariance_error(&inputs, &"1x2e".parse().unwrap(), couple, 4, 1).unwrap();
    assert!(
        wrong.rotation / wrong.output_max < 1e-13 && wrong.improper / wrong.output_max > 0.1,
        "{wrong:?}"
    );
}
