//! The DISCO convolution tensor psi: for a filter basis on a cap of radius `cutoff`, the
//! value of basis function k, centred on row point (theta_t, phi = 0), at column point
//! (theta_i, phi_j), times a quadrature weight, normalised per (t, k):
//!
//! ```text
//! psi[t, k, (i, j)] = f_k(R_t^-1 w_ij) q / Z[t, k],   Z[t, k] = sum_ij |f_k(R_t^-1 w_ij)| q_i
//! ```
//!
//! with R_t the rotation about the y axis taking the north pole to colatitude theta_t, and
//! q the column grid's weight q_i (a convolution: psi integrates over its input) or the row
//! grid's weight q_t (a transposed convolution: the integral runs over the rows, its input).
//! Dividing by Z makes every basis response a weighted average, independent of resolution
//! and latitude. A row point at longitude phi_p sees the same pattern shifted by p * stride
//! columns (stride = column nlon / row nlon), so psi is stored once per row latitude, sparse:
//! in CSR by (t, k) for the convolution's gather and by column ring i for its adjoint.

use std::fmt;

use rayon::prelude::*;

use crate::error::{EquivarError, Result};
use crate::kernels::FilterBasis;
use crate::space::SphereGrid;
use equivar_kernels::disco::{PsiEntry, Rings, SparsePsi};

/// Which grid's quadrature weight multiplies the basis values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quadrature {
    /// The columns' (a convolution from the column grid to the row grid).
    Columns,
    /// The rows' (a transposed convolution from the row grid to the column grid).
    Rows,
}

/// The sparse tensor psi, shared by a layer's forward and backward: the geometry it was
/// computed from and the entries the kernels read.
pub struct DiscoPsi {
    pub rows: SphereGrid,
    pub columns: SphereGrid,
    pub basis: FilterBasis,
    pub cutoff: f64,
    pub quadrature: Quadrature,
    pub sparse: SparsePsi,
}

impl fmt::Debug for DiscoPsi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DiscoPsi {{ rows: {} {}x{}, columns: {} {}x{}, {:?}, cutoff {:.5}, nnz {} }}",
            self.rows.kind,
            self.rows.nlat,
            self.rows.nlon,
            self.columns.kind,
            self.columns.nlat,
            self.columns.nlon,
            self.basis,
            self.cutoff,
            self.nnz()
        )
    }
}

impl DiscoPsi {
    /// Precomputes psi. Errors name the problem: longitudes that do not divide, a cutoff
    /// that is not in (0, pi), or one so small that some row point's cap holds no column
    /// point.
    pub fn new(
        rows: &SphereGrid,
        columns: &SphereGrid,
        basis: FilterBasis,
        cutoff: f64,
        quadrature: Quadrature,
    ) -> Result<Self> {
        basis.validate()?;
        let invalid = |reason: String| EquivarError::InvalidLayer {
            layer: format!(
                "DISCO {}x{} -> {}x{}",
                columns.nlat, columns.nlon, rows.nlat, rows.nlon
            ),
            reason,
        };
        if !columns.nlon.is_multiple_of(rows.nlon) {
            return Err(invalid(format!(
                "the longitudes of the finer grid ({}) must be a multiple of the coarser's ({}), \
                 so that a shift of the coarse grid is a whole number of fine steps; e.g. 64x128 \
                 -> 32x64",
                columns.nlon, rows.nlon
            )));
        }
        if !(cutoff.is_finite() && cutoff > 0.0 && cutoff < std::f64::consts::PI) {
            return Err(invalid(format!(
                "the cutoff must be an angle in (0, pi) radians, got {cutoff}"
            )));
        }
        let k_size = basis.size();
        let cos_cutoff = cutoff.cos();
        let q_rows = rows.weights();
        let q_cols = columns.weights();
        let col_theta = columns.colatitudes();
        // Per row latitude: its entries per basis function, in column (ring, lon) order.
        let per_row: Vec<Result<Vec<Vec<PsiEntry>>>> = rows
            .colatitudes()
            .par_iter()
            .enumerate()
            .map(|(t, &theta_out)| {
                let (sin_o, cos_o) = theta_out.sin_cos();
                let mut by_k: Vec<Vec<(u32, u32, f64)>> = vec![Vec::new(); k_size];
                let mut norm = vec![0.0f64; k_size];
                for (i, &theta_in) in col_theta.iter().enumerate() {
                    if (theta_in - theta_out).abs() > cutoff {
                        continue;
                    }
                    let (sin_i, cos_i) = theta_in.sin_cos();
                    for j in 0..columns.nlon {
                        let (sin_p, cos_p) = columns.longitude(j).sin_cos();
                        let (x, y, z) = (sin_i * cos_p, sin_i * sin_p, cos_i);
                        // R_y(-theta_out) applied to the column point.
                        let zr = sin_o * x + cos_o * z;
                        if zr < cos_cutoff {
                            continue;
                        }
                        let xr = cos_o * x - sin_o * z;
                        let r = zr.clamp(-1.0, 1.0).acos();
                        let phi = y.atan2(xr);
                        basis.for_each_nonzero(r, phi, cutoff, |k, value| {
                            if value.abs() <= ROUNDING_RESIDUE {
                                return;
                            }
                            norm[k] += value.abs() * q_cols[i];
                            by_k[k].push((i as u32, j as u32, value));
                        });
                    }
                }
                if norm.iter().all(|z| *z == 0.0) {
                    return Err(invalid(format!(
                        "the cutoff {cutoff:.5} rad covers no point of the {}x{} grid around \
                         colatitude {theta_out:.5}; use a cutoff of at least the grid's latitude \
                         spacing ({:.5} rad)",
                        columns.nlat,
                        columns.nlon,
                        columns.latitude_spacing()
                    )));
                }
                Ok(by_k
                    .into_iter()
                    .zip(&norm)
                    .map(|(entries, &z)| {
                        let q_row = q_rows[t];
                        entries
                            .into_iter()
                            .map(|(ring, lon, value)| {
                                let q = match quadrature {
                                    Quadrature::Columns => q_cols[ring as usize],
                                    Quadrature::Rows => q_row,
                                };
                                PsiEntry {
                                    ring,
                                    lon,
                                    value: (value * q / z) as f32,
                                }
                            })
                            .collect()
                    })
                    .collect())
            })
            .collect();

        let mut per_row_entries = Vec::with_capacity(rows.nlat * k_size);
        for row in per_row {
            per_row_entries.extend(row?);
        }
        let rings = |g: &SphereGrid| Rings {
            nlat: g.nlat,
            nlon: g.nlon,
        };
        Ok(DiscoPsi {
            rows: rows.clone(),
            columns: columns.clone(),
            basis,
            cutoff,
            quadrature,
            sparse: SparsePsi::new(rings(rows), rings(columns), k_size, per_row_entries),
        })
    }

    pub fn kernel_size(&self) -> usize {
        self.basis.size()
    }

    pub fn nnz(&self) -> usize {
        self.sparse.nnz()
    }
}

/// Basis values at most this large are taken for the exact zeros they stand for. The bases
/// are bounded by 1; a point exactly on the edge of a hat function (the cap's boundary one
/// latitude spacing away, a node between two hats) or on a zero of a harmonic gets 1e-31 to
/// 1e-11 from the rounding of `acos` and the trigonometric functions instead of 0. Kept, they
/// were a quarter of psi at 128x256; rows next to a pole read a whole extra ring, every
/// equator row the rings either side, at full cost in the kernels; and a (t, k) made only of
/// them (the pole rows' outer hats at 128x256, empty at 64x128) was normalised into an average
/// of whichever points rounding had kept. Dropping a value this small moves an output by at
/// most 1e-9 of one input point's weight.
const ROUNDING_RESIDUE: f64 = 1e-9;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_normalised_averages() {
        let grid = SphereGrid::equiangular(16, 32).unwrap();
        let basis = FilterBasis::piecewise_linear(3, 3).unwrap();
        let psi = DiscoPsi::new(
            &grid,
            &grid,
            basis,
            2.0 * grid.latitude_spacing(),
            Quadrature::Columns,
        )
        .unwrap();
        for t in 0..grid.nlat {
            for k in 0..basis.size() {
                let row = psi.sparse.row(t, k);
                let sum: f32 = row.iter().map(|e| e.value).sum();
                assert!(
                    row.is_empty() || (sum - 1.0).abs() < 1e-5,
                    "t {t} k {k}: {sum}"
                );
            }
            // The centre function always sees the row point itself.
            assert!(!psi.sparse.row(t, 0).is_empty());
        }
        let by_ring: usize = (0..grid.nlat).map(|i| psi.sparse.ring(i).len()).sum();
        assert_eq!(by_ring, psi.nnz());
    }

    /// With the cap one latitude spacing wide (the default), the rings above and below a
    /// row point sit exactly on the cap's edge, where every basis function is 0. Rounding
    /// gave them values of 1e-31 to 1e-11: rows read one to three extra rings, and the pole
    /// rows' outer hats (made of nothing else) were normalised into averages of ring 1.
    #[test]
    fn rows_read_no_ring_through_rounding_residue() {
        let grid = SphereGrid::equiangular(128, 256).unwrap();
        let basis = FilterBasis::piecewise_linear(3, 3).unwrap();
        let psi = DiscoPsi::new(
            &grid,
            &grid,
            basis,
            grid.latitude_spacing(),
            Quadrature::Columns,
        )
        .unwrap();
        let rings_read = |t: usize| -> std::collections::BTreeSet<u32> {
            (0..basis.size())
                .flat_map(|k| psi.sparse.row(t, k).iter().map(|e| e.ring))
                .collect()
        };
        for t in [1, 2, 30, 63, 64, 100, 126] {
            assert_eq!(rings_read(t), [t as u32].into(), "row {t}");
        }
        assert_eq!(rings_read(0), [0].into());
        for k in 1..basis.size() {
            assert!(
                psi.sparse.row(0, k).is_empty(),
                "pole row, basis function {k}"
            );
        }
    }

    #[test]
    fn invalid_configurations_are_named() {
        let fine = SphereGrid::equiangular(16, 32).unwrap();
        let odd = SphereGrid::equiangular(8, 12).unwrap();
        let basis = FilterBasis::piecewise_linear(3, 1).unwrap();
        let e = DiscoPsi::new(&odd, &fine, basis, 0.3, Quadrature::Columns).unwrap_err();
        assert!(e.to_string().contains("multiple"), "{e}");
        let coarse = SphereGrid::equiangular(8, 16).unwrap();
        let e = DiscoPsi::new(&coarse, &fine, basis, 1e-6, Quadrature::Columns).unwrap_err();
        assert!(e.to_string().contains("covers no point"), "{e}");
        assert!(DiscoPsi::new(&fine, &fine, basis, -1.0, Quadrature::Columns).is_err());
    }
}
