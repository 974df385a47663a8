//! Real spherical harmonics of many vectors in float32, forward and backward, in e3nn's basis
//! (see `equivar::o3::harmonics`, the f64 reference the tests compare with): textbook real
//! harmonics without the Condon-Shortley phase at `(X, Y, Z) = (z, x, y)`, `component`
//! normalisation, by the recurrences `(X + iY)^m` and `P_l^m(Z, r^2)`.
//!
//! Vectors are rows of `[n, 3]`; the output rows hold degrees `0..=lmax`, `(lmax + 1)^2`
//! numbers each. Rows are split over rayon's threads in chunks.

use rayon::prelude::*;

use crate::Isa;

/// Precomputed factors for one `lmax` and normalisation.
#[derive(Clone, Debug, PartialEq)]
pub struct ShPlan {
    pub lmax: usize,
    /// Evaluate at `v / |v|` (a zero row gives degree 0 and zeros), or the homogeneous
    /// polynomials of `v`.
    pub normalize: bool,
    /// `(2m - 1)!!`.
    double_factorial: Vec<f32>,
    /// `[l][m]`: the factor of `P_l^m C_m` (with sqrt(2) for m > 0) times the per-degree
    /// output scale.
    scale: Vec<Vec<f32>>,
}

impl ShPlan {
    /// `degree_scale[l]` multiplies degree `l` (1 for e3nn's `component`, `1/sqrt(2l+1)` for
    /// `norm`, `1/sqrt(4 pi)` for `integral`).
    pub fn new(lmax: usize, normalize: bool, degree_scale: &[f64]) -> Self {
        assert_eq!(degree_scale.len(), lmax + 1, "one scale per degree");
        let double_factorial = (0..=lmax)
            .scan(1.0f64, |df, m| {
                if m > 0 {
                    *df *= (2 * m - 1) as f64;
                }
                Some(*df as f32)
            })
            .collect();
        let scale = (0..=lmax)
            .map(|l| {
                (0..=l)
                    .map(|m| {
                        let ratio: f64 = ((l - m + 1)..=(l + m)).map(|k| 1.0 / k as f64).product();
                        let k = ((2 * l + 1) as f64 * ratio).sqrt() * degree_scale[l];
                        (if m == 0 {
                            k
                        } else {
                            std::f64::consts::SQRT_2 * k
                        }) as f32
                    })
                    .collect()
            })
            .collect();
        ShPlan {
            lmax,
            normalize,
            double_factorial,
            scale,
        }
    }

    pub fn dim(&self) -> usize {
        (self.lmax + 1) * (self.lmax + 1)
    }

    /// `(2m - 1)!!`, the start of the recurrence in `l` for order `m`.
    pub fn double_factorial(&self, m: usize) -> f32 {
        self.double_factorial[m]
    }

    /// The factor of `P_l^m C_m` (or `S_m`) in the degree-l, order-m output.
    pub fn scale(&self, l: usize, m: usize) -> f32 {
        self.scale[l][m]
    }
}

/// Vectors per rayon task.
const CHUNK: usize = 512;
/// Vectors evaluated together, one per SIMD lane: the recurrences run on `[f32; LANES]`
/// arrays, which the AVX2 build turns into two 8-wide registers per value.
const LANES: usize = 16;
type Lanes = [f32; LANES];

/// `out[n, dim]` from `vectors[n, 3]`.
pub fn forward(plan: &ShPlan, vectors: &[f32]) -> Vec<f32> {
    forward_with(plan, vectors, Isa::for_autovectorized())
}

/// [`forward`] with a chosen build (`isa` must be one this CPU runs).
pub fn forward_with(plan: &ShPlan, vectors: &[f32], isa: Isa) -> Vec<f32> {
    let dim = plan.dim();
    let n = vectors.len() / 3;
    let mut out = vec![0.0f32; n * dim];
    out.par_chunks_mut(CHUNK * dim)
        .zip(vectors.par_chunks(CHUNK * 3))
        .for_each(|(out, v)| forward_chunk_built(isa, plan, v, out));
    out
}

/// `d loss / d vectors [n, 3]` from `d loss / d out [n, dim]`.
pub fn backward(plan: &ShPlan, vectors: &[f32], grad_out: &[f32]) -> Vec<f32> {
    backward_with(plan, vectors, grad_out, Isa::for_autovectorized())
}

/// [`backward`] with a chosen build.
pub fn backward_with(plan: &ShPlan, vectors: &[f32], grad_out: &[f32], isa: Isa) -> Vec<f32> {
    let dim = plan.dim();
    let n = vectors.len() / 3;
    let mut grad = vec![0.0f32; n * 3];
    grad.par_chunks_mut(CHUNK * 3)
        .zip(vectors.par_chunks(CHUNK * 3))
        .zip(grad_out.par_chunks(CHUNK * dim))
        .for_each(|((grad, v), gy)| backward_chunk_built(isa, plan, v, gy, grad));
    grad
}

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    // mul_add is one instruction only where FMA is enabled (else a libm call).
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// Loads up to LANES vectors as (X, Y, Z) = (z, x, y) lanes, normalised where the plan says
/// so; `r2` is |v|^2 (1 on the unit sphere, 0 for a zero vector) and `inv_norm` 1/|v|.
#[inline(always)]
fn load(plan: &ShPlan, v: &[f32]) -> ([Lanes; 3], Lanes, Lanes) {
    let (mut c, mut r2, mut inv_norm) = ([[0.0; LANES]; 3], [0.0; LANES], [0.0; LANES]);
    for (lane, v) in v.chunks_exact(3).enumerate() {
        let n2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
        let (scale, r) = if !plan.normalize {
            (1.0, n2)
        } else if n2 > 0.0 {
            (1.0 / n2.sqrt(), 1.0)
        } else {
            (0.0, 0.0)
        };
        c[0][lane] = v[2] * scale;
        c[1][lane] = v[0] * scale;
        c[2][lane] = v[1] * scale;
        r2[lane] = r;
        inv_norm[lane] = scale;
    }
    (c, r2, inv_norm)
}

/// The harmonics of up to LANES vectors into `blk[k][lane]`.
#[inline(always)]
fn eval_lanes<const FMA: bool>(plan: &ShPlan, x: &[Lanes; 3], r2: &Lanes, blk: &mut [Lanes]) {
    let [cx, cy, cz] = x;
    let (mut c, mut s) = ([1.0f32; LANES], [0.0f32; LANES]);
    for m in 0..=plan.lmax {
        if m > 0 {
            for i in 0..LANES {
                let c1 = madd::<FMA>(cx[i], c[i], -cy[i] * s[i]);
                s[i] = madd::<FMA>(cx[i], s[i], cy[i] * c[i]);
                c[i] = c1;
            }
        }
        let (mut p0, mut p1) = ([0.0f32; LANES], [plan.double_factorial[m]; LANES]);
        for l in m..=plan.lmax {
            if l > m {
                let inv = 1.0 / (l - m) as f32;
                let (a, b) = ((2 * l - 1) as f32 * inv, (l + m - 1) as f32 * inv);
                for i in 0..LANES {
                    let p2 = madd::<FMA>(a * cz[i], p1[i], -b * r2[i] * p0[i]);
                    p0[i] = p1[i];
                    p1[i] = p2;
                }
            }
            let k = plan.scale[l][m];
            let centre = l * l + l;
            for i in 0..LANES {
                blk[centre + m][i] = k * p1[i] * c[i];
            }
            if m > 0 {
                for i in 0..LANES {
                    blk[centre - m][i] = k * p1[i] * s[i];
                }
            }
        }
    }
}

#[inline(always)]
fn forward_chunk<const FMA: bool>(plan: &ShPlan, vectors: &[f32], out: &mut [f32]) {
    let dim = plan.dim();
    let mut blk = vec![[0.0f32; LANES]; dim];
    for (v, out) in vectors.chunks(3 * LANES).zip(out.chunks_mut(dim * LANES)) {
        let (x, r2, _) = load(plan, v);
        eval_lanes::<FMA>(plan, &x, &r2, &mut blk);
        for (lane, row) in out.chunks_exact_mut(dim).enumerate() {
            for (y, b) in row.iter_mut().zip(&blk) {
                *y = b[lane];
            }
        }
    }
}

isa_builds! {
    fn forward_chunk_built(plan: &ShPlan, vectors: &[f32], out: &mut [f32]) = forward_chunk::<FMA>
}

/// `sum_k g_k dY_k / dv` for up to LANES vectors: the recurrences differentiated alongside
/// the values (gradients in (X, Y, Z); X = z, Y = x, Z = y).
#[inline(always)]
fn backward_chunk<const FMA: bool>(
    plan: &ShPlan,
    vectors: &[f32],
    grad_out: &[f32],
    grad: &mut [f32],
) {
    let dim = plan.dim();
    let mut g = vec![[0.0f32; LANES]; dim];
    for ((v, gy), grad) in vectors
        .chunks(3 * LANES)
        .zip(grad_out.chunks(dim * LANES))
        .zip(grad.chunks_mut(3 * LANES))
    {
        let (x, r2, inv_norm) = load(plan, v);
        for (lane, row) in gy.chunks_exact(dim).enumerate() {
            for (gk, &v) in g.iter_mut().zip(row) {
                gk[lane] = v;
            }
        }
        let [cx, cy, cz] = &x;
        // d/d(X, Y, Z) of r^2 (as a function of the point the polynomials are evaluated at).
        let dr2 = [
            cx.map(|v| 2.0 * v),
            cy.map(|v| 2.0 * v),
            cz.map(|v| 2.0 * v),
        ];
        let (mut c, mut s) = ([1.0f32; LANES], [0.0f32; LANES]);
        // Gradients of C_m and S_m in (X, Y) (they do not depend on Z).
        let (mut dc, mut ds) = ([[0.0f32; LANES]; 2], [[0.0f32; LANES]; 2]);
        let mut acc = [[0.0f32; LANES]; 3];
        for m in 0..=plan.lmax {
            if m > 0 {
                for i in 0..LANES {
                    let c1 = cx[i] * c[i] - cy[i] * s[i];
                    let s1 = cx[i] * s[i] + cy[i] * c[i];
                    let dc1x = c[i] + cx[i] * dc[0][i] - cy[i] * ds[0][i];
                    let dc1y = cx[i] * dc[1][i] - s[i] - cy[i] * ds[1][i];
                    let ds1x = s[i] + cx[i] * ds[0][i] + cy[i] * dc[0][i];
                    let ds1y = cx[i] * ds[1][i] + c[i] + cy[i] * dc[1][i];
                    (c[i], s[i]) = (c1, s1);
                    (dc[0][i], dc[1][i], ds[0][i], ds[1][i]) = (dc1x, dc1y, ds1x, ds1y);
                }
            }
            // P and its gradient in (X, Y, Z).
            let (mut p0, mut p1) = ([0.0f32; LANES], [plan.double_factorial[m]; LANES]);
            let (mut dp0, mut dp1) = ([[0.0f32; LANES]; 3], [[0.0f32; LANES]; 3]);
            for l in m..=plan.lmax {
                if l > m {
                    let inv = 1.0 / (l - m) as f32;
                    let (a, b) = ((2 * l - 1) as f32 * inv, (l + m - 1) as f32 * inv);
                    for i in 0..LANES {
                        let p2 = a * cz[i] * p1[i] - b * r2[i] * p0[i];
                        for d in 0..3 {
                            let dz = if d == 2 { p1[i] } else { 0.0 };
                            let dp2 = a * (dz + cz[i] * dp1[d][i])
                                - b * (dr2[d][i] * p0[i] + r2[i] * dp0[d][i]);
                            dp0[d][i] = dp1[d][i];
                            dp1[d][i] = dp2;
                        }
                        p0[i] = p1[i];
                        p1[i] = p2;
                    }
                }
                let k = plan.scale[l][m];
                let centre = l * l + l;
                // d(k P C) = k (C dP + P dC); dC has no Z part.
                for i in 0..LANES {
                    let w = g[centre + m][i] * k;
                    acc[0][i] = madd::<FMA>(w, c[i] * dp1[0][i] + p1[i] * dc[0][i], acc[0][i]);
                    acc[1][i] = madd::<FMA>(w, c[i] * dp1[1][i] + p1[i] * dc[1][i], acc[1][i]);
                    acc[2][i] = madd::<FMA>(w, c[i] * dp1[2][i], acc[2][i]);
                }
                if m > 0 {
                    for i in 0..LANES {
                        let w = g[centre - m][i] * k;
                        acc[0][i] = madd::<FMA>(w, s[i] * dp1[0][i] + p1[i] * ds[0][i], acc[0][i]);
                        acc[1][i] = madd::<FMA>(w, s[i] * dp1[1][i] + p1[i] * ds[1][i], acc[1][i]);
                        acc[2][i] = madd::<FMA>(w, s[i] * dp1[2][i], acc[2][i]);
                    }
                }
            }
        }
        for (lane, out) in grad.chunks_exact_mut(3).enumerate() {
            // (X, Y, Z) = (z, x, y) back to (x, y, z).
            let mut d = [acc[1][lane], acc[2][lane], acc[0][lane]];
            if plan.normalize {
                // Y(v / |v|): the tangential part over |v| (zero for a zero vector).
                let u = [x[1][lane], x[2][lane], x[0][lane]];
                let radial = d[0] * u[0] + d[1] * u[1] + d[2] * u[2];
                d = [0, 1, 2].map(|a| (d[a] - radial * u[a]) * inv_norm[lane]);
            }
            out.copy_from_slice(&d);
        }
    }
}

isa_builds! {
    fn backward_chunk_built(plan: &ShPlan, vectors: &[f32], grad_out: &[f32], grad: &mut [f32]) = backward_chunk::<FMA>
}
