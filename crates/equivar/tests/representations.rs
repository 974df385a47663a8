//! Representations of C_N, D_N (N = 1..12), SO(2) and O(2) (frequencies up to 8), in f64:
//! homomorphisms, orthogonal irreps, orthogonal characters, the regular representation as the
//! Fourier change of basis of its irreps, quotients, restriction, band-limited sampling.

use std::f64::consts::TAU;

use equivar::group::{Group, Irrep, O2Element, PlanarGroup, Representation};
use nalgebra::{DMatrix, DVector};
use planar_groups::{Draws, groups};

mod planar_groups;

const MAX_FREQUENCY: usize = 8;

fn close(a: &DMatrix<f64>, b: &DMatrix<f64>, tol: f64) -> bool {
    a.shape() == b.shape() && (a - b).amax() <= tol
}

/// rho(gh) = rho(g) rho(h) on random elements, and rho(g) orthogonal.
fn assert_representation(rho: &Representation, draws: &mut Draws) {
    let group = rho.group();
    let n = rho.dim();
    for _ in 0..20 {
        let (g, h) = (draws.element(group), draws.element(group));
        let (a, b) = (rho.matrix(g), rho.matrix(h));
        assert!(
            close(&rho.matrix(g.compose(h)), &(&a * &b), 1e-10),
            "{} of {group}: not a homomorphism at {g:?}, {h:?}",
            rho.name()
        );
        assert!(
            close(&(a.transpose() * &a), &DMatrix::identity(n, n), 1e-10),
            "{} of {group}: not orthogonal",
            rho.name()
        );
        assert!((rho.character(g) - a.trace()).abs() < 1e-10);
    }
}

#[test]
fn every_irrep_is_an_orthogonal_homomorphism() {
    let mut draws = Draws(0x1234_5678);
    for group in groups() {
        let irreps = group.irreps(MAX_FREQUENCY);
        assert!(!irreps.is_empty());
        for psi in irreps {
            let rho = Representation::irrep(group, psi).unwrap();
            assert_eq!(rho.dim(), psi.dim(group));
            assert_representation(&rho, &mut draws);
        }
    }
}

/// The mean of `f` over the group: exact over a finite group's elements; for SO(2) and O(2)
/// over 64 equally spaced rotations per component, exact for frequencies below 64.
fn group_mean(group: PlanarGroup, f: impl Fn(O2Element) -> f64) -> f64 {
    let elements = match group.order() {
        Some(_) => group.elements(),
        None => group.even_samples(if group.has_reflections() { 128 } else { 64 }),
    };
    elements.iter().map(|&g| f(g)).sum::<f64>() / elements.len() as f64
}

#[test]
fn characters_of_distinct_irreps_are_orthogonal() {
    for group in groups() {
        let irreps = group.irreps(MAX_FREQUENCY);
        for (a, psi) in irreps.iter().enumerate() {
            for (b, phi) in irreps.iter().enumerate() {
                let inner =
                    group_mean(group, |g| psi.character(group, g) * phi.character(group, g));
                // <chi, chi> is the dimension of the irrep's commutant (1, or 2 for the
                // rotation irreps of C_N and SO(2)).
                let expected = if a == b {
                    psi.endomorphism_dim(group) as f64
                } else {
                    0.0
                };
                assert!(
                    (inner - expected).abs() < 1e-10,
                    "{group}: <{}, {}> = {inner}",
                    psi.label(group),
                    phi.label(group)
                );
            }
        }
    }
}

#[test]
fn the_regular_representation_is_the_fourier_change_of_basis_of_its_irreps() {
    let mut draws = Draws(77);
    for group in groups().into_iter().filter(|g| g.order().is_some()) {
        let order = group.order().unwrap();
        let regular = Representation::regular(group).unwrap();
        assert_eq!(regular.dim(), order);
        assert_representation(&regular, &mut draws);
        let elements = group.elements();
        for (gi, &g) in elements.iter().enumerate() {
            // The permutation e_h -> e_{gh} ...
            let mut permutation = DMatrix::zeros(order, order);
            for (hi, &h) in elements.iter().enumerate() {
                permutation[(group.index_of(g.compose(h)).unwrap(), hi)] = 1.0;
            }
            // ... is Q (sum of irreps)(g) Q^T.
            let q = regular.change_of_basis();
            assert!(
                close(
                    &(q * regular.irreps_matrix(g) * q.transpose()),
                    &permutation,
                    1e-10
                ),
                "{group}, element {gi}"
            );
        }
        // Every irrep appears dim / endomorphism_dim times.
        for psi in group.irreps(0) {
            let count = regular.irreps().iter().filter(|&&i| i == psi).count();
            assert_eq!(
                count,
                psi.dim(group) / psi.endomorphism_dim(group),
                "{group}"
            );
        }
    }
}

#[test]
fn the_regular_representation_matches_the_grid_groups_axis_permutations() {
    for group in [Group::Cyclic(4), Group::Dihedral(4), Group::Dihedral(3)] {
        let regular = Representation::regular(group.into()).unwrap();
        for g in group.elements() {
            // (L_g f)[h] = f[perm[h]] is the matrix with ones at (h, perm[h]).
            let perm = group.regular_permutation(g);
            let m = regular.matrix(group.o2_element(g));
            for (h, &p) in perm.iter().enumerate() {
                assert!((m[(h, p)] - 1.0).abs() < 1e-10, "{group} {g:?}");
            }
        }
    }
}

#[test]
fn quotients_permute_cosets_and_decompose() {
    let mut draws = Draws(99);
    let cases = [
        (PlanarGroup::Cyclic(8), PlanarGroup::Cyclic(2)),
        (PlanarGroup::Cyclic(12), PlanarGroup::Cyclic(3)),
        (PlanarGroup::Dihedral(8), PlanarGroup::Cyclic(4)),
        (PlanarGroup::Dihedral(6), PlanarGroup::Dihedral(2)),
        (PlanarGroup::Dihedral(5), PlanarGroup::Dihedral(1)),
        (PlanarGroup::Cyclic(6), PlanarGroup::Cyclic(1)),
    ];
    for (group, sub) in cases {
        let rho = Representation::quotient(group, sub).unwrap();
        assert_eq!(rho.dim(), group.order().unwrap() / sub.order().unwrap());
        assert_representation(&rho, &mut draws);
        // Permutation matrices: every entry 0 or 1.
        for g in group.elements() {
            let m = rho.matrix(g);
            assert!(m.iter().all(|v| v.abs() < 1e-10 || (v - 1.0).abs() < 1e-10));
        }
    }
    // The quotient by the trivial group is the regular representation, up to basis: same
    // characters.
    let q = Representation::quotient(PlanarGroup::Dihedral(4), PlanarGroup::Cyclic(1)).unwrap();
    let r = Representation::regular(PlanarGroup::Dihedral(4)).unwrap();
    for g in PlanarGroup::Dihedral(4).elements() {
        assert!((q.character(g) - r.character(g)).abs() < 1e-10);
    }
    assert!(Representation::quotient(PlanarGroup::Cyclic(8), PlanarGroup::Cyclic(3)).is_err());
    assert!(Representation::quotient(PlanarGroup::So2, PlanarGroup::Cyclic(2)).is_err());
}

#[test]
fn restriction_commutes_with_the_action() {
    let mut draws = Draws(2024);
    let cases = [
        (PlanarGroup::Dihedral(16), PlanarGroup::Cyclic(16)),
        (PlanarGroup::O2, PlanarGroup::So2),
        (PlanarGroup::Cyclic(8), PlanarGroup::Cyclic(4)),
        (PlanarGroup::Cyclic(12), PlanarGroup::Cyclic(5 - 2)),
        (PlanarGroup::Dihedral(12), PlanarGroup::Dihedral(4)),
        (PlanarGroup::Dihedral(6), PlanarGroup::Dihedral(1)),
        (PlanarGroup::O2, PlanarGroup::Dihedral(6)),
        (PlanarGroup::So2, PlanarGroup::Cyclic(5)),
        (PlanarGroup::O2, PlanarGroup::Cyclic(3)),
    ];
    for (group, sub) in cases {
        let mut parts: Vec<Representation> = group
            .irreps(MAX_FREQUENCY)
            .into_iter()
            .map(|psi| Representation::irrep(group, psi).unwrap())
            .collect();
        if group.order().is_some() {
            parts.push(Representation::regular(group).unwrap());
        }
        for rho in parts {
            let restricted = rho.restrict(sub).unwrap();
            assert_eq!(restricted.group(), sub);
            assert_representation(&restricted, &mut draws);
            for _ in 0..20 {
                let h = draws.element(sub);
                assert!(
                    close(&restricted.matrix(h), &rho.matrix(h), 1e-10),
                    "{} of {group} restricted to {sub} at {h:?}",
                    rho.name()
                );
            }
        }
    }
    let err = Representation::trivial(PlanarGroup::Cyclic(8))
        .unwrap()
        .restrict(PlanarGroup::Cyclic(3))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a subgroup"), "{err}");
}

#[test]
fn direct_sums_are_block_diagonal() {
    let group = PlanarGroup::Dihedral(8);
    let parts = vec![
        Representation::regular(group).unwrap(),
        Representation::irrep(group, Irrep::new(1, 3)).unwrap(),
        Representation::trivial(group).unwrap(),
    ];
    let sum = Representation::direct_sum(&parts).unwrap();
    assert_eq!(sum.dim(), 16 + 2 + 1);
    let mut draws = Draws(5);
    assert_representation(&sum, &mut draws);
    let g = draws.element(group);
    let m = sum.matrix(g);
    assert!(close(
        &m.view((16, 16), (2, 2)).into(),
        &parts[1].matrix(g),
        1e-12
    ));
    assert!(m.view((0, 16), (16, 3)).amax() < 1e-12);
    let other = Representation::trivial(PlanarGroup::Cyclic(8)).unwrap();
    assert!(Representation::direct_sum(&[parts[0].clone(), other]).is_err());
}

#[test]
fn band_limited_regular_coefficients_shift_the_sampled_function() {
    let mut draws = Draws(31);
    for (group, max_frequency) in [
        (PlanarGroup::So2, 8),
        (PlanarGroup::O2, 8),
        (PlanarGroup::Cyclic(8), 2),
        (PlanarGroup::Dihedral(6), 3),
    ] {
        let rho = Representation::band_limited_regular(group, max_frequency).unwrap();
        assert_representation(&rho, &mut draws);
        let samples: Vec<O2Element> = (0..12).map(|_| draws.element(group)).collect();
        let a = rho.sampling_matrix(&samples);
        let x = DVector::from_iterator(rho.dim(), (0..rho.dim()).map(|_| draws.unit() - 0.5));
        let h = draws.element(group);
        let shifted: Vec<O2Element> = samples.iter().map(|&g| h.inverse().compose(g)).collect();
        // f_{rho(h) x}(g) = f_x(h^-1 g)
        let lhs = &a * (rho.matrix(h) * &x);
        let rhs = rho.sampling_matrix(&shifted) * &x;
        assert!((lhs - rhs).amax() < 1e-10, "{group}");
    }
    // SO(2) up to L: 1 + 2L dimensions; O(2): 2 + 4L.
    let so2 = Representation::band_limited_regular(PlanarGroup::So2, 8).unwrap();
    let o2 = Representation::band_limited_regular(PlanarGroup::O2, 8).unwrap();
    assert_eq!((so2.dim(), o2.dim()), (17, 34));
    // A finite group's, with every frequency, has the regular representation's irreps.
    let full = Representation::band_limited_regular(PlanarGroup::Dihedral(6), 3).unwrap();
    let regular = Representation::regular(PlanarGroup::Dihedral(6)).unwrap();
    assert_eq!(full.irreps(), regular.irreps());
}

#[test]
fn bad_representations_are_errors_naming_the_problem() {
    let cases: Vec<(Result<Representation, equivar::EquivarError>, &str)> = vec![
        (
            Representation::irrep(PlanarGroup::Cyclic(4), Irrep::new(0, 3)),
            "irrep(3)",
        ),
        (
            Representation::irrep(PlanarGroup::Cyclic(4), Irrep::new(1, 1)),
            "C4",
        ),
        (
            Representation::irrep(PlanarGroup::O2, Irrep::new(0, 2)),
            "irrep(0,2)",
        ),
        (
            Representation::regular(PlanarGroup::So2),
            "band_limited_regular",
        ),
        (Representation::trivial(PlanarGroup::Dihedral(0)), "D0"),
        (
            Representation::from_irreps(
                PlanarGroup::Cyclic(4),
                "x",
                vec![Irrep::new(0, 1)],
                DMatrix::identity(3, 3),
            ),
            "3x3",
        ),
        (
            Representation::from_irreps(
                PlanarGroup::Cyclic(4),
                "x",
                vec![Irrep::new(0, 0)],
                DMatrix::from_element(1, 1, 2.0),
            ),
            "not orthogonal",
        ),
    ];
    for (result, needle) in cases {
        let err = result.unwrap_err().to_string();
        assert!(err.contains(needle), "`{needle}` not in: {err}");
    }
    // Angles are taken modulo a full turn.
    assert!((O2Element::new(TAU + 1.0, false).angle - 1.0).abs() < 1e-12);
}
