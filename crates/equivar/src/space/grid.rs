//! The exact action of planar symmetry groups on square pixel grids.

use burn::tensor::Tensor;

use crate::error::{EquivarError, Result};
use crate::group::{Element, Group};

/// How one group element moves pixels: an optional mirror, then `quarter_turns`
/// counter-clockwise rotations by 90 degrees in the convention of `torch.rot90`
/// (`rot90(x) = x.flip(last).transpose(-2, -1)`), about the grid's centre.
///
/// Coordinates: `x` along the columns, `y` up (against the rows). The mirror is the one of
/// [`crate::group::planar`], across the x axis, `(x, y) -> (x, -y)`: it reverses the rows.
///
/// Acting with `g` maps a signal `f` to `f(g^-1 x)`; for `D_N` and `C_N` with N | 4 this
/// permutes pixels exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GridAction {
    pub quarter_turns: usize,
    pub mirror: bool,
}

impl GridAction {
    /// The action of `e` in `group` on the pixel grid.
    pub fn of(group: Group, e: Element) -> Result<Self> {
        if !group.acts_on_pixel_grid() {
            return Err(EquivarError::GroupNotOnGrid {
                group: group.to_string(),
                n: group.rotations(),
            });
        }
        Ok(GridAction {
            quarter_turns: e.rotation * (4 / group.rotations()),
            mirror: e.reflected,
        })
    }

    /// The identity action.
    pub fn identity() -> Self {
        GridAction {
            quarter_turns: 0,
            mirror: false,
        }
    }

    /// For an `n x n` grid: the pixel `(row, col)` of the input that lands on `(i, j)` of the
    /// output, i.e. `act(x)[i][j] = x[source(i, j)]`.
    pub fn source(self, i: usize, j: usize, n: usize) -> (usize, usize) {
        let (mut p, mut q) = (i, j);
        for _ in 0..self.quarter_turns % 4 {
            // one counter-clockwise quarter turn: out[i][j] = in[j][n-1-i]
            (p, q) = (q, n - 1 - p);
        }
        if self.mirror {
            p = n - 1 - p;
        }
        (p, q)
    }

    /// For each pixel of an `n x n` map moved by this action (row-major), the pixel of the
    /// original it comes from: [`Self::source`] for the whole grid.
    pub fn sources(self, n: usize) -> Vec<usize> {
        (0..n * n)
            .map(|p| {
                let (i, j) = self.source(p / n, p % n, n);
                i * n + j
            })
            .collect()
    }

    /// Applies the action to the last two (spatial) axes of a tensor. Odd numbers of quarter
    /// turns need square grids.
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        let (row, col) = (D - 2, D - 1);
        let mut x = if self.mirror { x.flip([row]) } else { x };
        for _ in 0..self.quarter_turns % 4 {
            x = x.flip([col]).swap_dims(row, col);
        }
        x
    }
}
