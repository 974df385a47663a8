//! Representations of the planar groups as direct sums of irreps up to an orthogonal change of
//! basis: `rho(g) = Q (psi_1(g) + ... + psi_n(g)) Q^T`. Trivial, irreps, regular (the change
//! of basis is the group's Fourier transform), quotient `G/H` (a permutation of cosets,
//! decomposed), band-limited regular representations of SO(2) and O(2), direct sums,
//! restriction to a subgroup, characters. Pure mathematics in f64.

use nalgebra::DMatrix;

use super::irrep::Irrep;
use super::planar::{O2Element, PlanarGroup};
use crate::error::EquivarError;

#[derive(Clone, Debug, PartialEq)]
pub struct Representation {
    group: PlanarGroup,
    name: String,
    irreps: Vec<Irrep>,
    /// `Q`, orthogonal.
    change_of_basis: DMatrix<f64>,
}

fn invalid(group: PlanarGroup, reason: impl Into<String>) -> EquivarError {
    EquivarError::InvalidRepresentation {
        group: group.to_string(),
        reason: reason.into(),
    }
}

/// `blocks[0] + blocks[1] + ...` as one block-diagonal matrix.
fn block_diagonal(blocks: &[DMatrix<f64>]) -> DMatrix<f64> {
    let n: usize = blocks.iter().map(|b| b.nrows()).sum();
    let mut out = DMatrix::zeros(n, n);
    let mut at = 0;
    for b in blocks {
        out.view_mut((at, at), (b.nrows(), b.ncols())).copy_from(b);
        at += b.nrows();
    }
    out
}

impl Representation {
    /// `Q (sum of irreps) Q^T` as a representation of `group` named `name`. `Q` must be
    /// orthogonal and match the irreps' total dimension.
    pub fn from_irreps(
        group: PlanarGroup,
        name: impl Into<String>,
        irreps: Vec<Irrep>,
        change_of_basis: DMatrix<f64>,
    ) -> Result<Self, EquivarError> {
        group.validate()?;
        for irrep in &irreps {
            irrep.validate(group)?;
        }
        let dim: usize = irreps.iter().map(|i| i.dim(group)).sum();
        let q = &change_of_basis;
        if q.nrows() != dim || q.ncols() != dim {
            return Err(invalid(
                group,
                format!(
                    "the change of basis is {}x{}, but the irreps add up to {dim} dimensions",
                    q.nrows(),
                    q.ncols()
                ),
            ));
        }
        let defect = (q.transpose() * q - DMatrix::identity(dim, dim)).amax();
        if defect > 1e-9 {
            return Err(invalid(
                group,
                format!("the change of basis is not orthogonal (|Q^T Q - I| = {defect:.1e})"),
            ));
        }
        Ok(Representation {
            group,
            name: name.into(),
            irreps,
            change_of_basis,
        })
    }

    /// Direct sum of `irreps` in the irreps' own basis.
    fn of_irreps(group: PlanarGroup, name: String, irreps: Vec<Irrep>) -> Self {
        let dim = irreps.iter().map(|i| i.dim(group)).sum();
        Representation {
            group,
            name,
            irreps,
            change_of_basis: DMatrix::identity(dim, dim),
        }
    }

    pub fn trivial(group: PlanarGroup) -> Result<Self, EquivarError> {
        Ok(Self::of_irreps(
            group.validate()?,
            "trivial".into(),
            vec![Irrep::new(0, 0)],
        ))
    }

    pub fn irrep(group: PlanarGroup, irrep: Irrep) -> Result<Self, EquivarError> {
        let irrep = irrep.validate(group.validate()?)?;
        Ok(Self::of_irreps(group, irrep.label(group), vec![irrep]))
    }

    /// The regular representation of a finite group, `rho(g) e_h = e_{gh}` on the group axis of
    /// [`PlanarGroup::elements`]; its change of basis is the Fourier transform: column
    /// `(psi, copy c, row i)` holds `h -> sqrt(dim psi / |G|) psi(h)[i, c]`. Each irrep appears
    /// `dim / endomorphism_dim` times (once for the 2-dim irreps of C_N).
    pub fn regular(group: PlanarGroup) -> Result<Self, EquivarError> {
        let order = group.validate()?.order().ok_or_else(|| {
            invalid(
                group,
                "a continuous group has no finite regular representation; band-limit it to a \
                 maximum frequency L (`regular(L)` in a feature type, \
                 Representation::band_limited_regular)",
            )
        })?;
        let elements = group.elements();
        let mut irreps = Vec::new();
        let mut columns = Vec::new();
        for psi in group.irreps(0) {
            let d = psi.dim(group);
            let scale = (d as f64 / order as f64).sqrt();
            let matrices: Vec<DMatrix<f64>> =
                elements.iter().map(|&h| psi.matrix(group, h)).collect();
            for copy in 0..d / psi.endomorphism_dim(group) {
                irreps.push(psi);
                for i in 0..d {
                    columns.push(nalgebra::DVector::from_iterator(
                        order,
                        matrices.iter().map(|m| scale * m[(i, copy)]),
                    ));
                }
            }
        }
        let q = DMatrix::from_columns(&columns);
        Self::from_irreps(group, "regular", irreps, q)
    }

    /// The permutation representation of a finite group on the cosets `gH` of a subgroup `sub`
    /// (C_N / C_M, D_N / C_M, D_N / D_M: M dividing N), decomposed into irreps. The cosets are
    /// numbered by their first element on the group axis.
    pub fn quotient(group: PlanarGroup, sub: PlanarGroup) -> Result<Self, EquivarError> {
        let elements = group.validate()?.elements();
        if elements.is_empty() || sub.order().is_none() || !group.has_subgroup(sub.validate()?) {
            return Err(invalid(
                group,
                format!(
                    "the quotient by {sub} needs finite groups with {sub} a subgroup of \
                     {group} (C_M in C_N, C_M or D_M in D_N, with M dividing N)"
                ),
            ));
        }
        let coset_of = |g: O2Element| -> usize {
            sub.elements()
                .iter()
                .filter_map(|&h| group.index_of(g.compose(h)))
                .min()
                .expect("g h is an element of the group for every h of a subgroup")
        };
        let mut cosets: Vec<usize> = elements.iter().map(|&g| coset_of(g)).collect();
        cosets.sort_unstable();
        cosets.dedup();
        let rho = |g: O2Element| -> DMatrix<f64> {
            let mut m = DMatrix::zeros(cosets.len(), cosets.len());
            for (col, &x) in cosets.iter().enumerate() {
                let image = coset_of(g.compose(elements[x]));
                let row = cosets.binary_search(&image).expect("cosets are closed");
                m[(row, col)] = 1.0;
            }
            m
        };
        let (irreps, q) = super::decompose::decompose(group, &rho, cosets.len())?;
        Self::from_irreps(group, format!("quotient({group}/{sub})"), irreps, q)
    }

    /// The regular representation of SO(2) or O(2) cut off at `max_frequency` (or a finite
    /// group's, cut off there): every irrep up to that frequency, as often as in the regular
    /// representation, in Fourier coordinates. [`Representation::sampling_matrix`] maps them
    /// to a function's values at sampled group elements (Fourier nonlinearities).
    pub fn band_limited_regular(
        group: PlanarGroup,
        max_frequency: usize,
    ) -> Result<Self, EquivarError> {
        let group = group.validate()?;
        let irreps: Vec<Irrep> = group
            .irreps(max_frequency)
            .into_iter()
            .filter(|i| i.frequency <= max_frequency)
            .flat_map(|i| std::iter::repeat_n(i, i.dim(group) / i.endomorphism_dim(group)))
            .collect();
        Ok(Self::of_irreps(
            group,
            format!("regular(max frequency {max_frequency})"),
            irreps,
        ))
    }

    /// The direct sum `parts[0] + parts[1] + ...` (all of one group).
    pub fn direct_sum(parts: &[Representation]) -> Result<Self, EquivarError> {
        let first = parts
            .first()
            .ok_or_else(|| EquivarError::InvalidRepresentation {
                group: "-".into(),
                reason: "a direct sum needs at least one representation".into(),
            })?;
        if let Some(other) = parts.iter().find(|p| p.group != first.group) {
            return Err(invalid(
                first.group,
                format!(
                    "a direct sum is of one group, but `{}` is of {}",
                    other.name, other.group
                ),
            ));
        }
        let irreps = parts.iter().flat_map(|p| p.irreps.clone()).collect();
        let blocks: Vec<DMatrix<f64>> = parts.iter().map(|p| p.change_of_basis.clone()).collect();
        let name = parts
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(" + ");
        Ok(Representation {
            group: first.group,
            name,
            irreps,
            change_of_basis: block_diagonal(&blocks),
        })
    }

    /// This representation seen by the subgroup `sub` (D16 -> C16, O(2) -> SO(2), C8 -> C4,
    /// ...): the same matrices on `sub`'s elements, decomposed into `sub`'s irreps.
    pub fn restrict(&self, sub: PlanarGroup) -> Result<Self, EquivarError> {
        if !self.group.has_subgroup(sub.validate()?) {
            return Err(invalid(
                self.group,
                format!(
                    "{sub} is not a subgroup of it, so `{}` cannot be restricted to it",
                    self.name
                ),
            ));
        }
        let mut irreps = Vec::new();
        let mut blocks = Vec::new();
        for psi in &self.irreps {
            let (parts, q) = psi.restrict(self.group, sub);
            irreps.extend(parts);
            blocks.push(q);
        }
        Ok(Representation {
            group: sub,
            name: format!("{} restricted to {sub}", self.name),
            irreps,
            change_of_basis: &self.change_of_basis * block_diagonal(&blocks),
        })
    }

    pub fn group(&self) -> PlanarGroup {
        self.group
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The irreps of the direct sum, in order.
    pub fn irreps(&self) -> &[Irrep] {
        &self.irreps
    }

    /// `Q`.
    pub fn change_of_basis(&self) -> &DMatrix<f64> {
        &self.change_of_basis
    }

    pub fn dim(&self) -> usize {
        self.change_of_basis.nrows()
    }

    /// The irreps' block-diagonal matrix at `g` (the representation in the irreps' basis).
    pub fn irreps_matrix(&self, g: O2Element) -> DMatrix<f64> {
        let blocks: Vec<DMatrix<f64>> = self
            .irreps
            .iter()
            .map(|i| i.matrix(self.group, g))
            .collect();
        block_diagonal(&blocks)
    }

    /// `rho(g)`.
    pub fn matrix(&self, g: O2Element) -> DMatrix<f64> {
        let q = &self.change_of_basis;
        q * self.irreps_matrix(g) * q.transpose()
    }

    /// `trace rho(g)` (the sum of the irreps' characters: a change of basis keeps the trace).
    pub fn character(&self, g: O2Element) -> f64 {
        self.irreps.iter().map(|i| i.character(self.group, g)).sum()
    }

    /// The values at `elements` of the functions on the group whose Fourier coefficients are
    /// this representation's coordinates (in the irreps' basis): row s, column `(psi, copy c,
    /// row i)` is `sqrt(dim psi) psi(g_s)[i, c]`. With these, acting by `rho(h)` on the
    /// coefficients shifts the function: `f_{rho(h) x}(g) = f_x(h^-1 g)`.
    pub fn sampling_matrix(&self, elements: &[O2Element]) -> DMatrix<f64> {
        let group = self.group;
        let mut out = DMatrix::zeros(elements.len(), self.dim());
        let mut col = 0;
        let mut copies = std::collections::HashMap::new();
        for psi in &self.irreps {
            let d = psi.dim(group);
            let copy = copies.entry(*psi).or_insert(0usize);
            // Copies beyond the irrep's multiplicity in the regular representation repeat.
            let c = *copy % (d / psi.endomorphism_dim(group));
            *copy += 1;
            for (s, &g) in elements.iter().enumerate() {
                let m = psi.matrix(group, g);
                for i in 0..d {
                    out[(s, col + i)] = (d as f64).sqrt() * m[(i, c)];
                }
            }
            col += d;
        }
        out
    }
}
