//! Steerable kernels of the planar groups (Weiler & Cesa 2019; DESIGN.md 2.6): the solutions of
//! the kernel constraint `k(g x) = rho_out(g) k(x) rho_in(g)^-1` between two irreps, one
//! angular frequency at a time. Pure mathematics in f64.
//!
//! At a fixed radius a kernel is a matrix-valued trigonometric polynomial of the angle phi,
//! `sum over nu of A_nu cos(nu phi) + B_nu sin(nu phi)`. An element `r(theta) m^f` moves the
//! point at angle phi to `theta + (-1)^f phi`, which maps each frequency's pair (cos, sin) to
//! itself: the constraint splits by frequency into small linear systems in `(A_nu, B_nu)`,
//! solved here as null spaces. Imposing it on generators is enough: `r(2 pi / N)` (and the
//! mirror) for C_N and D_N; for SO(2) and O(2) rotations by 1 and 2 radians, which generate a
//! dense subgroup, and the constraint is continuous in the element.
//!
//! The aliasing of C_N (frequencies `n -+ m + t N`) and the mirror's selection for D_N and
//! O(2) come out of the null spaces; they are not tabulated.

use nalgebra::{DMatrix, SymmetricEigen};

use crate::group::{Irrep, O2Element, PlanarGroup};

/// One solution of the constraint: the angular part `cos * cos(nu phi) + sin * sin(nu phi)`,
/// `[output dim, input dim]` matrices; `sin` is zero for frequency 0.
#[derive(Clone, Debug, PartialEq)]
pub struct Harmonic {
    pub frequency: usize,
    pub cos: DMatrix<f64>,
    pub sin: DMatrix<f64>,
}

impl Harmonic {
    /// The angular part at angle `phi`.
    pub fn at(&self, phi: f64) -> DMatrix<f64> {
        let nu = self.frequency as f64;
        &self.cos * (nu * phi).cos() + &self.sin * (nu * phi).sin()
    }
}

/// Relative size below which a constraint system's eigenvalue counts as zero.
const NULL_TOLERANCE: f64 = 1e-10;

/// Elements whose constraints imply the constraint for the whole group.
fn generators(group: PlanarGroup) -> Vec<O2Element> {
    let mirror = O2Element::new(0.0, true);
    match group {
        PlanarGroup::Cyclic(n) => vec![O2Element::new(std::f64::consts::TAU / n as f64, false)],
        PlanarGroup::Dihedral(n) => vec![
            O2Element::new(std::f64::consts::TAU / n as f64, false),
            mirror,
        ],
        PlanarGroup::So2 => vec![O2Element::new(1.0, false), O2Element::new(2.0, false)],
        PlanarGroup::O2 => vec![
            O2Element::new(1.0, false),
            O2Element::new(2.0, false),
            mirror,
        ],
    }
}

/// An orthonormal basis of the angular solutions of `frequency` from `input` to `output`
/// (both irreps of `group`, checked by the caller). Orthonormal in the coefficients
/// `(cos, sin)`, so that equal weights give kernels of equal energy, and the same basis on
/// every platform (see [`canonical_basis`]).
pub fn harmonics(
    group: PlanarGroup,
    input: Irrep,
    output: Irrep,
    frequency: usize,
) -> Vec<Harmonic> {
    let (d_in, d_out) = (input.dim(group), output.dim(group));
    let d = d_in * d_out;
    // Unknowns: vec(A) then vec(B), column-major; frequency 0 has no B.
    let unknowns = if frequency == 0 { d } else { 2 * d };
    let nu = frequency as f64;
    let mut normal = DMatrix::<f64>::zeros(unknowns, unknowns);
    for g in generators(group) {
        // vec(rho_out X rho_in^T) = (rho_in kron rho_out) vec(X) for orthogonal irreps.
        let m = input.matrix(group, g).kronecker(&output.matrix(group, g));
        let (c, t) = ((nu * g.angle).cos(), (nu * g.angle).sin());
        let s = if g.reflected { -1.0 } else { 1.0 };
        let eye = DMatrix::<f64>::identity(d, d);
        // kappa(theta + s phi) has cos part A c + B t and sin part s (B c - A t).
        let system = if frequency == 0 {
            &eye - &m
        } else {
            let mut l = DMatrix::zeros(2 * d, 2 * d);
            l.view_mut((0, 0), (d, d)).copy_from(&(&eye * c - &m));
            l.view_mut((0, d), (d, d)).copy_from(&(&eye * t));
            l.view_mut((d, 0), (d, d)).copy_from(&(&eye * (-s * t)));
            l.view_mut((d, d), (d, d)).copy_from(&(&eye * (s * c) - &m));
            l
        };
        normal += system.transpose() * system;
    }
    let eigen = SymmetricEigen::new(normal);
    let scale = eigen.eigenvalues.amax().max(1.0);
    let null: Vec<usize> = (0..unknowns)
        .filter(|&i| eigen.eigenvalues[i] <= NULL_TOLERANCE * scale)
        .collect();
    let null = eigen.eigenvectors.select_columns(&null);
    canonical_basis(&null)
        .into_iter()
        .map(|v| Harmonic {
            frequency,
            cos: DMatrix::from_column_slice(d_out, d_in, &v.as_slice()[..d]),
            sin: if frequency == 0 {
                DMatrix::zeros(d_out, d_in)
            } else {
                DMatrix::from_column_slice(d_out, d_in, &v.as_slice()[d..])
            },
        })
        .collect()
}

/// An orthonormal basis of the span of `columns` (orthonormal) that does not depend on which
/// orthonormal basis the eigen solver returned: the projections of the unit vectors e_1, e_2,
/// ... onto the span, orthonormalised in that order (Gram-Schmidt), skipping dependent ones.
fn canonical_basis(columns: &DMatrix<f64>) -> Vec<nalgebra::DVector<f64>> {
    let projector = columns * columns.transpose();
    let mut basis: Vec<nalgebra::DVector<f64>> = Vec::new();
    for i in 0..projector.ncols() {
        if basis.len() == columns.ncols() {
            break;
        }
        let mut v = projector.column(i).into_owned();
        for b in &basis {
            v -= b * b.dot(&v);
        }
        let norm = v.norm();
        if norm > 1e-6 {
            basis.push(v / norm);
        }
    }
    basis
}
