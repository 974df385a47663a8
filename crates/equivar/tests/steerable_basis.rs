//! Steerable kernel harmonics between irreps of C_N, D_N (N = 1..12), SO(2) and O(2), in f64:
//! every solution satisfies the kernel constraint on its continuous definition, and there are
//! as many as character theory says.

use std::f64::consts::TAU;

use equivar::group::{Irrep, O2Element, PlanarGroup, Representation};
use equivar::kernels::steerable::{Ring, SteerableBasis, default_rings, harmonics};
use planar_groups::{Draws, groups};

mod planar_groups;

const MAX_FREQUENCY: usize = 8;
/// Irrep frequencies tried for SO(2) and O(2).
const CONTINUOUS_IRREPS: usize = 4;

/// The angle of the point `g x` when `x` is at angle `phi`.
fn moved(g: O2Element, phi: f64) -> f64 {
    g.angle + if g.reflected { -phi } else { phi }
}

/// k(g x) = rho_out(g) k(x) rho_in(g)^T for random elements of the group (not only its
/// generators) and random angles, to 1e-9 relative; every solution is orthonormal.
#[test]
fn every_harmonic_satisfies_the_kernel_constraint() {
    let mut draws = Draws(0x005E_ED0F_CAFE);
    let mut checked = 0;
    for group in groups() {
        let irreps = group.irreps(CONTINUOUS_IRREPS);
        for &input in &irreps {
            for &output in &irreps {
                for nu in 0..=MAX_FREQUENCY {
                    for h in harmonics(group, input, output, nu) {
                        let energy = h.cos.norm_squared() + h.sin.norm_squared();
                        assert!((energy - 1.0).abs() < 1e-12, "{group} {input}->{output}");
                        for _ in 0..4 {
                            let g = draws.element(group);
                            let phi = TAU * draws.unit();
                            let left = h.at(moved(g, phi));
                            let right = output.matrix(group, g)
                                * h.at(phi)
                                * input.matrix(group, g).transpose();
                            let scale = h.at(phi).amax().max(1.0);
                            assert!(
                                (&left - &right).amax() <= 1e-9 * scale,
                                "{group} {input}->{output} frequency {nu}: \
                                 constraint off by {}",
                                (&left - &right).amax()
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 5_000, "only {checked} checks");
}

/// Character of the harmonics of frequency `nu` (functions of the angle, `(g f)(phi) =
/// f(g^-1 phi)`): 1 for nu = 0; for nu > 0, 2 cos(nu theta) on rotations and 0 on mirrors.
fn harmonic_character(nu: usize, g: O2Element) -> f64 {
    match (nu, g.reflected) {
        (0, _) => 1.0,
        (_, true) => 0.0,
        (_, false) => 2.0 * (nu as f64 * g.angle).cos(),
    }
}

/// Haar average of `f` over the group: exact for the trigonometric polynomials used here
/// (degree < 64) on 64 equally spaced angles per component of SO(2) and O(2).
fn group_average(group: PlanarGroup, f: impl Fn(O2Element) -> f64) -> f64 {
    let elements = match group.order() {
        Some(_) => group.elements(),
        None if group.has_reflections() => group.even_samples(128),
        None => group.even_samples(64),
    };
    elements.iter().map(|&g| f(g)).sum::<f64>() / elements.len() as f64
}

/// The number of solutions per frequency is the dimension of the invariants of (harmonics of
/// nu) x Hom(input, output): the group average of the product of the three characters.
#[test]
fn the_number_of_harmonics_is_what_characters_say() {
    for group in groups() {
        let irreps = group.irreps(CONTINUOUS_IRREPS);
        for &input in &irreps {
            for &output in &irreps {
                for nu in 0..=MAX_FREQUENCY {
                    let expected = group_average(group, |g| {
                        harmonic_character(nu, g)
                            * input.character(group, g)
                            * output.character(group, g)
                    });
                    let found = harmonics(group, input, output, nu).len();
                    assert!(
                        (found as f64 - expected).abs() < 1e-9,
                        "{group} {input}->{output} frequency {nu}: {found} solutions, \
                         characters say {expected}"
                    );
                }
            }
        }
    }
}

/// Known cases written out: SO(2) from psi_m to psi_n (m, n >= 1) has two solutions at
/// frequencies |n - m| and n + m and none elsewhere; C_N aliases them by multiples of N.
#[test]
fn so2_and_cn_frequencies_match_the_analytic_solution() {
    let count = |group, m: usize, n: usize, nu| {
        harmonics(group, Irrep::new(0, m), Irrep::new(0, n), nu).len()
    };
    for (m, n) in [(1usize, 1usize), (1, 2), (2, 3), (1, 3)] {
        for nu in 0..=MAX_FREQUENCY {
            let expected = if nu == n.abs_diff(m) || nu == n + m {
                2
            } else {
                0
            };
            assert_eq!(
                count(PlanarGroup::So2, m, n, nu),
                expected,
                "{m}->{n} at {nu}"
            );
        }
    }
    // C8, psi_1 -> psi_2: frequencies 1 and 3, and their aliases 8 -+ 1, 8 -+ 3 (5, 7, ...).
    let c8: Vec<usize> = (0..=MAX_FREQUENCY)
        .filter(|&nu| count(PlanarGroup::Cyclic(8), 1, 2, nu) > 0)
        .collect();
    assert_eq!(c8, vec![1, 3, 5, 7]);
    // Trivial to trivial: one isotropic solution for SO(2); C4 adds frequencies 4 and 8, a
    // cos and a sin each.
    let trivial = Irrep::new(0, 0);
    assert_eq!(harmonics(PlanarGroup::So2, trivial, trivial, 0).len(), 1);
    assert_eq!(harmonics(PlanarGroup::So2, trivial, trivial, 4).len(), 0);
    assert_eq!(
        harmonics(PlanarGroup::Cyclic(4), trivial, trivial, 4).len(),
        2
    );
    // D4 keeps only the mirror-symmetric cos(4 phi).
    let d4 = harmonics(PlanarGroup::Dihedral(4), trivial, trivial, 4);
    assert_eq!(d4.len(), 1);
    assert!(d4[0].sin.amax() < 1e-12 && (d4[0].cos[(0, 0)] - 1.0).abs() < 1e-12);
}

/// The basis does not depend on the eigen solver's choice: recomputing gives the same
/// matrices, and the solutions are orthonormal to each other.
#[test]
fn harmonics_are_orthonormal_and_reproducible() {
    let group = PlanarGroup::Dihedral(6);
    let irreps = group.irreps(0);
    for &input in &irreps {
        for &output in &irreps {
            for nu in 0..=MAX_FREQUENCY {
                let a = harmonics(group, input, output, nu);
                assert_eq!(a, harmonics(group, input, output, nu));
                for (i, x) in a.iter().enumerate() {
                    for (j, y) in a.iter().enumerate() {
                        let dot = x.cos.dot(&y.cos) + x.sin.dot(&y.sin);
                        let expected = if i == j { 1.0 } else { 0.0 };
                        assert!((dot - expected).abs() < 1e-12);
                    }
                }
            }
        }
    }
}

/// A representation named as in the escnn table below.
fn representation(group: PlanarGroup, name: &str) -> Representation {
    let parts: Vec<&str> = name.split(':').collect();
    match parts[0] {
        "trivial" => Representation::trivial(group),
        "regular" => Representation::regular(group),
        "irrep" => {
            let numbers: Vec<usize> = parts[1].split(',').map(|s| s.parse().unwrap()).collect();
            let irrep = match numbers[..] {
                [k] => Irrep::new(0, k),
                [j, k] => Irrep::new(j as u8, k),
                _ => unreachable!(),
            };
            Representation::irrep(group, irrep)
        }
        "quotient" => {
            Representation::quotient(group, PlanarGroup::Cyclic(parts[1].parse().unwrap()))
        }
        _ => unreachable!("{name}"),
    }
    .unwrap()
}

/// Basis dimensions of escnn 1.0.11's `R2Conv` between single fields with its default rings,
/// widths and frequency cutoff (`conv.basisexpansion.dimension()`, from
/// `bench/escnn_basis_dims.py` run with the peers
/// venv on 2026-11-30; 0 where escnn refuses an empty basis).
const ESCNN_DIMENSIONS: &[(PlanarGroup, &str, &str, usize, usize, usize)] = &[
    (PlanarGroup::Cyclic(4), "trivial", "trivial", 3, 1, 2),
    (PlanarGroup::Cyclic(4), "trivial", "regular", 3, 1, 6),
    (PlanarGroup::Cyclic(4), "regular", "regular", 3, 1, 24),
    (PlanarGroup::Cyclic(4), "regular", "regular", 5, 1, 44),
    (PlanarGroup::Cyclic(4), "regular", "regular", 4, 1, 20),
    (PlanarGroup::Cyclic(4), "irrep:1", "irrep:1", 5, 1, 14),
    (PlanarGroup::Cyclic(8), "trivial", "regular", 7, 1, 18),
    (PlanarGroup::Cyclic(8), "regular", "regular", 5, 1, 88),
    (PlanarGroup::Cyclic(8), "regular", "regular", 7, 1, 144),
    (PlanarGroup::Cyclic(8), "regular", "regular", 3, 2, 64),
    (PlanarGroup::Cyclic(8), "irrep:1", "irrep:2", 5, 1, 4),
    (PlanarGroup::Cyclic(8), "regular", "trivial", 9, 1, 31),
    (PlanarGroup::Cyclic(8), "quotient:2", "regular", 5, 1, 44),
    (PlanarGroup::Cyclic(16), "regular", "regular", 5, 1, 176),
    (PlanarGroup::Cyclic(16), "regular", "regular", 7, 1, 288),
    (PlanarGroup::Dihedral(4), "regular", "regular", 3, 1, 48),
    (PlanarGroup::Dihedral(4), "trivial", "regular", 5, 1, 11),
    (PlanarGroup::Dihedral(4), "irrep:1,1", "irrep:1,1", 5, 1, 7),
    (PlanarGroup::Dihedral(4), "irrep:0,2", "regular", 5, 1, 11),
    (PlanarGroup::Dihedral(8), "regular", "regular", 7, 1, 288),
    (PlanarGroup::Dihedral(16), "regular", "regular", 5, 1, 352),
    (PlanarGroup::So2, "irrep:0", "irrep:1", 5, 1, 4),
    (PlanarGroup::So2, "irrep:1", "irrep:1", 5, 1, 10),
    (PlanarGroup::So2, "irrep:1", "irrep:2", 7, 1, 8),
    (PlanarGroup::So2, "irrep:2", "irrep:0", 9, 1, 8),
    (PlanarGroup::O2, "irrep:0,0", "irrep:1,1", 5, 1, 2),
    (PlanarGroup::O2, "irrep:1,1", "irrep:1,2", 7, 1, 4),
    (PlanarGroup::O2, "irrep:1,0", "irrep:0,0", 5, 1, 0),
];

#[test]
fn basis_dimensions_equal_escnn() {
    let mut wrong = Vec::new();
    for &(group, input, output, size, dilation, expected) in ESCNN_DIMENSIONS {
        let basis = SteerableBasis::new(
            &representation(group, input),
            &representation(group, output),
            size,
            dilation,
        )
        .unwrap();
        if basis.len() != expected {
            wrong.push(format!(
                "{group} {input} -> {output}, {size}x{size} dilation {dilation}: {} (escnn {expected})",
                basis.len()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// On the pixel grid, elements that map the grid to itself (quarter turns, and the mirror for
/// groups with mirrors) satisfy the constraint exactly (to f64 rounding), for every element of
/// bases between regular and irrep fields: K(g p) = rho_out(g) K(p) rho_in(g)^T.
#[test]
fn grid_symmetries_satisfy_the_constraint_on_the_pixel_grid() {
    let cases = [
        (PlanarGroup::Cyclic(4), "regular", "regular"),
        (PlanarGroup::Cyclic(8), "regular", "irrep:1"),
        (PlanarGroup::Cyclic(16), "irrep:3", "regular"),
        (PlanarGroup::Dihedral(4), "regular", "regular"),
        (PlanarGroup::Dihedral(8), "irrep:1,2", "regular"),
        (PlanarGroup::So2, "irrep:1", "irrep:2"),
        (PlanarGroup::O2, "irrep:1,1", "irrep:0,0"),
    ];
    for (group, input, output) in cases {
        let (rho_in, rho_out) = (representation(group, input), representation(group, output));
        for size in [3, 4, 5, 7] {
            let basis = SteerableBasis::new(&rho_in, &rho_out, size, 1).unwrap();
            assert!(!basis.is_empty());
            let mut elements = vec![O2Element::new(TAU / 4.0, false)];
            if group.has_reflections() {
                elements.push(O2Element::new(0.0, true));
            }
            for g in elements {
                let (a, b) = (rho_out.matrix(g), rho_in.matrix(g));
                for e in 0..basis.len() {
                    for row in 0..size {
                        for column in 0..size {
                            // x = column - c, y = c - row; a quarter turn sends (x, y) to
                            // (-y, x), the mirror to (x, -y).
                            let (r, c) = if g.reflected {
                                (size - 1 - row, column)
                            } else {
                                (size - 1 - column, row)
                            };
                            let left = basis.at(e, r, c);
                            let right = &a * basis.at(e, row, column) * b.transpose();
                            assert!(
                                (&left - &right).amax() <= 1e-12,
                                "{group} {input}->{output} {size}x{size} element {e}: off by {}",
                                (&left - &right).amax()
                            );
                        }
                    }
                }
            }
        }
    }
}

/// escnn 1.0's defaults: rings at 0, 1, ..., (k-1)/2; widths 0.005 at the centre, 0.4 on the
/// outermost ring, 0.6 between; the largest frequency 2 for k = 3 and 5, 3 for 7, 6 for 9.
#[test]
fn default_rings_are_escnns() {
    let top = |k| {
        default_rings(k, 1)
            .unwrap()
            .iter()
            .map(|r| r.max_frequency)
            .fold(0.0, f64::max)
    };
    assert_eq!([top(3), top(5), top(7), top(9)], [2.0, 2.0, 3.0, 6.0]);
    let rings = default_rings(7, 2).unwrap();
    let radii: Vec<f64> = rings.iter().map(|r| r.radius).collect();
    let sigmas: Vec<f64> = rings.iter().map(|r| r.sigma).collect();
    assert_eq!(radii, [0.0, 2.0, 4.0, 6.0]);
    assert_eq!(sigmas, [0.005, 0.6, 0.6, 0.4]);
}

/// Bad settings are errors naming the problem.
#[test]
fn bad_bases_are_clear_errors() {
    let c4 = Representation::regular(PlanarGroup::Cyclic(4)).unwrap();
    let d4 = Representation::regular(PlanarGroup::Dihedral(4)).unwrap();
    let message =
        |r: Result<SteerableBasis, equivar::error::EquivarError>| r.unwrap_err().to_string();
    assert!(message(SteerableBasis::new(&c4, &d4, 3, 1)).contains("same group"));
    assert!(message(SteerableBasis::new(&c4, &c4, 0, 1)).contains("kernel size 0"));
    let far = Ring {
        radius: 3.0,
        sigma: 0.6,
        max_frequency: 2.0,
    };
    assert!(message(SteerableBasis::with_rings(&c4, &c4, 3, 1, &[far])).contains("reaches 1.414"));
    let flat = Ring {
        radius: 1.0,
        sigma: 0.0,
        max_frequency: 2.0,
    };
    assert!(message(SteerableBasis::with_rings(&c4, &c4, 3, 1, &[flat])).contains("sigma"));
    assert!(message(SteerableBasis::with_rings(&c4, &c4, 3, 1, &[])).contains("no rings"));
}

/// The conv filters a layer multiplies its weights with are the elements in the
/// representations' own basis, `Q_out block Q_in^T` at every pixel (in f32), for bases whose
/// irreps are 1- and 2-dimensional on both sides.
#[test]
fn expanded_filters_are_the_elements_in_the_representations_basis() {
    let cases = [
        (PlanarGroup::Cyclic(4), "regular", "regular"),
        (PlanarGroup::Cyclic(8), "irrep:0,3", "regular"),
        (PlanarGroup::Dihedral(4), "regular", "irrep:1,2"),
        (PlanarGroup::Dihedral(8), "irrep:1,1", "regular"),
        (PlanarGroup::Cyclic(8), "quotient:2", "regular"),
        (PlanarGroup::O2, "irrep:1,1", "irrep:0,0"),
    ];
    for (group, input, output) in cases {
        let (rho_in, rho_out) = (representation(group, input), representation(group, output));
        for size in [3, 5] {
            let basis = SteerableBasis::new(&rho_in, &rho_out, size, 1).unwrap();
            let filters = basis.filters();
            let (d_out, d_in) = (rho_out.dim(), rho_in.dim());
            assert_eq!(filters.len(), basis.len() * d_out * d_in * size * size);
            for e in 0..basis.len() {
                for row in 0..size {
                    for column in 0..size {
                        let expected = basis.at(e, row, column);
                        for r in 0..d_out {
                            for c in 0..d_in {
                                let at =
                                    (((e * d_out + r) * d_in + c) * size + row) * size + column;
                                let want = expected[(r, c)];
                                assert!(
                                    (filters[at] as f64 - want).abs() <= 1e-6 * want.abs().max(1.0),
                                    "{group} {input}->{output} {size}x{size} element {e} at \
                                     ({row}, {column}), [{r}, {c}]: {} instead of {want}",
                                    filters[at]
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
