//! Irreducible representations of O(3) and lists of them, in e3nn's text form and layout.
//!
//! An irrep is `(l, p)`: degree `l` (dimension `2l + 1`) and parity `p = ±1`, written `2e`
//! (p = +1) or `1o` (p = -1); `1y` means `p = (-1)^l`, the parity of the spherical harmonic
//! of that degree. A list `32x0e+16x1o+8x2e` lays its features out block by block in the
//! written order, multiplicity-major inside a block: component `m` of copy `u` of a block at
//! `offset` sits at `offset + u (2l+1) + (m + l)`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::O3Error;

/// Parity of an irrep under the inversion `-I`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Parity {
    /// `o`: the inversion multiplies the features by -1. Ordered first, as in e3nn.
    Odd,
    /// `e`: the inversion leaves the features alone.
    Even,
}

impl Parity {
    /// +1 or -1.
    pub fn sign(self) -> f64 {
        match self {
            Parity::Even => 1.0,
            Parity::Odd => -1.0,
        }
    }

    /// The parity `(-1)^l` of the degree-l spherical harmonics of a polar vector.
    pub fn of_harmonic(l: usize) -> Self {
        if l.is_multiple_of(2) {
            Parity::Even
        } else {
            Parity::Odd
        }
    }

    /// The parity of a product.
    pub fn times(self, other: Parity) -> Parity {
        if self == other {
            Parity::Even
        } else {
            Parity::Odd
        }
    }
}

/// An irrep `(l, p)` of O(3). Ordered like e3nn's tuples: by `l`, then odd before even.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Irrep {
    pub l: usize,
    pub p: Parity,
}

impl Irrep {
    pub fn new(l: usize, p: Parity) -> Self {
        Irrep { l, p }
    }

    /// The irrep of the degree-l spherical harmonics, `(l, (-1)^l)`: `0e`, `1o`, `2e`, ...
    pub fn harmonic(l: usize) -> Self {
        Irrep::new(l, Parity::of_harmonic(l))
    }

    pub fn dim(self) -> usize {
        2 * self.l + 1
    }

    /// The irreps in the tensor product `self x other`: every `l` from `|l1 - l2|` to
    /// `l1 + l2`, with parity `p1 p2`.
    pub fn product(self, other: Irrep) -> impl Iterator<Item = Irrep> {
        let p = self.p.times(other.p);
        (self.l.abs_diff(other.l)..=self.l + other.l).map(move |l| Irrep::new(l, p))
    }
}

impl fmt::Display for Irrep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = match self.p {
            Parity::Even => 'e',
            Parity::Odd => 'o',
        };
        write!(f, "{}{p}", self.l)
    }
}

impl FromStr for Irrep {
    type Err = O3Error;

    fn from_str(text: &str) -> Result<Self, O3Error> {
        let s = text.trim();
        let bad = |reason: &str| O3Error::IrrepsSyntax {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let (digits, p) = s.split_at(s.len().saturating_sub(1));
        let l: usize = digits
            .parse()
            .map_err(|_| bad("an irrep is a degree and a parity, e.g. `0e`, `1o`, `2y`"))?;
        if l > MAX_L {
            return Err(bad(&format!("degrees above {MAX_L} are not supported")));
        }
        let p = match p {
            "e" => Parity::Even,
            "o" => Parity::Odd,
            "y" => Parity::of_harmonic(l),
            _ => return Err(bad("the parity is `e` (even), `o` (odd) or `y` ((-1)^l)")),
        };
        Ok(Irrep::new(l, p))
    }
}

/// The highest degree any `o3` routine accepts: far above what networks use (e3nn stops its
/// spherical harmonics at 12), low enough that factorials and recurrences stay exact in f64.
pub const MAX_L: usize = 40;

/// `mul` copies of one irrep: one block of an [`Irreps`] list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MulIrrep {
    pub mul: usize,
    pub ir: Irrep,
}

impl MulIrrep {
    pub fn dim(self) -> usize {
        self.mul * self.ir.dim()
    }
}

impl fmt::Display for MulIrrep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.mul, self.ir)
    }
}

/// A list of irreps with multiplicities, e.g. `32x0e+16x1o+8x2e`, kept in the written order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Irreps(Vec<MulIrrep>);

/// The result of [`Irreps::sort`], as e3nn's: the sorted list, `p[i]` = the new position of
/// block `i`, and `inv` its inverse (`inv[j]` = the old position of new block `j`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sorted {
    pub irreps: Irreps,
    pub p: Vec<usize>,
    pub inv: Vec<usize>,
}

impl Irreps {
    pub fn new(blocks: Vec<MulIrrep>) -> Self {
        Irreps(blocks)
    }

    /// `1x0e+1x1o+...+1xLy`: the spherical harmonics up to degree `lmax`.
    pub fn spherical_harmonics(lmax: usize) -> Self {
        Irreps(
            (0..=lmax)
                .map(|l| MulIrrep {
                    mul: 1,
                    ir: Irrep::harmonic(l),
                })
                .collect(),
        )
    }

    pub fn blocks(&self) -> &[MulIrrep] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Total dimension: the feature vector's length.
    pub fn dim(&self) -> usize {
        self.0.iter().map(|b| b.dim()).sum()
    }

    /// Number of irreps counted with multiplicity.
    pub fn num_irreps(&self) -> usize {
        self.0.iter().map(|b| b.mul).sum()
    }

    /// Copies of `ir` over all blocks (e.g. the `0e` scalars that may carry biases).
    pub fn count(&self, ir: Irrep) -> usize {
        self.0.iter().filter(|b| b.ir == ir).map(|b| b.mul).sum()
    }

    /// The highest degree, or `None` for an empty list.
    pub fn lmax(&self) -> Option<usize> {
        self.0.iter().map(|b| b.ir.l).max()
    }

    /// Where each block starts in the feature vector.
    pub fn offsets(&self) -> Vec<usize> {
        self.0
            .iter()
            .scan(0, |offset, b| {
                let start = *offset;
                *offset += b.dim();
                Some(start)
            })
            .collect()
    }

    /// Merges neighbouring blocks of the same irrep and drops empty blocks; does not sort.
    pub fn simplify(&self) -> Irreps {
        let mut out: Vec<MulIrrep> = Vec::new();
        for b in &self.0 {
            match out.last_mut() {
                Some(last) if last.ir == b.ir => last.mul += b.mul,
                _ if b.mul > 0 => out.push(*b),
                _ => {}
            }
        }
        Irreps(out)
    }

    /// Sorts the blocks by irrep (stable: equal irreps keep their order), as e3nn's `sort`.
    pub fn sort(&self) -> Sorted {
        let mut inv: Vec<usize> = (0..self.0.len()).collect();
        inv.sort_by_key(|&i| (self.0[i].ir, i));
        let mut p = vec![0; inv.len()];
        for (new, &old) in inv.iter().enumerate() {
            p[old] = new;
        }
        let irreps = Irreps(inv.iter().map(|&i| self.0[i]).collect());
        Sorted { irreps, p, inv }
    }

    /// Whether some block (of any multiplicity) is this irrep.
    pub fn contains(&self, ir: Irrep) -> bool {
        self.0.iter().any(|b| b.ir == ir)
    }
}

impl fmt::Display for Irreps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            write!(f, "{b}")?;
        }
        Ok(())
    }
}

impl FromStr for Irreps {
    type Err = O3Error;

    /// Parses e3nn's text form: blocks `MULxIR` or `IR` (multiplicity 1) joined by `+`,
    /// spaces allowed; the empty string is the empty list.
    fn from_str(text: &str) -> Result<Self, O3Error> {
        if text.trim().is_empty() {
            return Ok(Irreps::default());
        }
        let mut blocks = Vec::new();
        for part in text.split('+') {
            let part = part.trim();
            let (mul, ir) = match part.split_once('x') {
                Some((mul, ir)) => {
                    let mul = mul.trim().parse().map_err(|_| O3Error::IrrepsSyntax {
                        text: text.to_string(),
                        reason: format!("`{part}`: the multiplicity before `x` is not a number"),
                    })?;
                    (mul, ir)
                }
                None => (1, part),
            };
            let ir = ir.parse::<Irrep>().map_err(|e| match e {
                O3Error::IrrepsSyntax { reason, .. } => O3Error::IrrepsSyntax {
                    text: text.to_string(),
                    reason: format!("`{part}`: {reason}"),
                },
                other => other,
            })?;
            blocks.push(MulIrrep { mul, ir });
        }
        Ok(Irreps(blocks))
    }
}

impl TryFrom<String> for Irreps {
    type Error = O3Error;
    fn try_from(s: String) -> Result<Self, O3Error> {
        s.parse()
    }
}

impl From<Irreps> for String {
    fn from(irreps: Irreps) -> String {
        irreps.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_block_and_the_fix() {
        let e = "16x1o+4xq".parse::<Irreps>().unwrap_err().to_string();
        assert!(
            e.contains("`4xq`") && e.contains("degree and a parity"),
            "{e}"
        );
        let e = "ax1o".parse::<Irreps>().unwrap_err().to_string();
        assert!(e.contains("multiplicity"), "{e}");
        let e = "1z".parse::<Irreps>().unwrap_err().to_string();
        assert!(e.contains("`e` (even)"), "{e}");
        let e = "2x99e".parse::<Irreps>().unwrap_err().to_string();
        assert!(e.contains("above 40"), "{e}");
    }

    #[test]
    fn offsets_follow_the_layout() {
        let irreps: Irreps = "2x0e+3x1o+1x2e".parse().unwrap();
        assert_eq!(irreps.offsets(), vec![0, 2, 11]);
        assert_eq!(irreps.dim(), 16);
        let products: Vec<String> = Irrep::harmonic(2)
            .product("1o".parse().unwrap())
            .map(|i| i.to_string())
            .collect();
        assert_eq!(products, ["1o", "2o", "3o"]);
    }
}
