//! Decomposing an orthogonal representation of a finite group into irreps: for each irrep
//! `psi`, the maps `P_i = (dim psi / |G|) sum_g psi(g)[i, 0] rho(g)` send any vector `v` to
//! vectors `P_0 v, ..., P_{d-1} v` on which `rho` acts exactly as `psi` (or to zero), since
//! `rho(h) P_i = sum_k psi(h)[k, i] P_k`. Copies are taken from the standard basis vectors
//! until the multiplicity (from the characters) is reached, each made orthogonal to the
//! copies before it (the complement of an invariant subspace is invariant, so it stays a copy).

use nalgebra::{DMatrix, DVector};

use super::irrep::Irrep;
use super::planar::{O2Element, PlanarGroup};
use crate::error::EquivarError;

/// Irreps (grouped, in [`PlanarGroup::irreps`] order) and the orthogonal `Q` with
/// `rho(g) = Q (sum of irreps)(g) Q^T`, for an orthogonal representation `rho` of dimension
/// `dim` of a finite group.
pub(crate) fn decompose(
    group: PlanarGroup,
    rho: &dyn Fn(O2Element) -> DMatrix<f64>,
    dim: usize,
) -> Result<(Vec<Irrep>, DMatrix<f64>), EquivarError> {
    let elements = group.elements();
    let order = elements.len() as f64;
    let matrices: Vec<DMatrix<f64>> = elements.iter().map(|&g| rho(g)).collect();
    let mut irreps = Vec::new();
    let mut columns: Vec<DVector<f64>> = Vec::new();
    for psi in group.irreps(0) {
        let d = psi.dim(group);
        let characters: Vec<f64> = elements.iter().map(|&g| psi.character(group, g)).collect();
        let overlap: f64 = matrices
            .iter()
            .zip(&characters)
            .map(|(m, chi)| m.trace() * chi)
            .sum::<f64>()
            / order;
        let multiplicity = (overlap / psi.endomorphism_dim(group) as f64).round() as usize;
        if multiplicity == 0 {
            continue;
        }
        let psi_at: Vec<DMatrix<f64>> = elements.iter().map(|&g| psi.matrix(group, g)).collect();
        let projector = |i: usize| -> DMatrix<f64> {
            let mut p = DMatrix::zeros(dim, dim);
            for (m, s) in matrices.iter().zip(&psi_at) {
                p += m * s[(i, 0)];
            }
            p * (d as f64 / order)
        };
        let projectors: Vec<DMatrix<f64>> = (0..d).map(projector).collect();
        let mut found = 0;
        for t in 0..dim {
            if found == multiplicity {
                break;
            }
            let mut copy: Vec<DVector<f64>> =
                projectors.iter().map(|p| p.column(t).into()).collect();
            for w in copy.iter_mut() {
                for prev in &columns {
                    *w -= prev * prev.dot(w);
                }
            }
            // A copy's Gram matrix is c * I (Schur): its first vector's norm decides.
            let norm = copy[0].norm();
            if norm < 1e-8 {
                continue;
            }
            columns.extend(copy.into_iter().map(|w| w / norm));
            irreps.push(psi);
            found += 1;
        }
        if found != multiplicity {
            return Err(EquivarError::InvalidRepresentation {
                group: group.to_string(),
                reason: format!(
                    "found {found} of the {multiplicity} copies of {} its characters promise: \
                     the matrices are not an orthogonal representation",
                    psi.label(group)
                ),
            });
        }
    }
    if columns.len() != dim {
        return Err(EquivarError::InvalidRepresentation {
            group: group.to_string(),
            reason: format!(
                "its irreps span {} of {dim} dimensions: the matrices are not an orthogonal \
                 representation",
                columns.len()
            ),
        });
    }
    Ok((irreps, DMatrix::from_columns(&columns)))
}
