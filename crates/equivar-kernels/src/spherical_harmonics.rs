//! Real spherical harmonics of many vectors in float32, forward and backward, in e3nn's basis
//! (see `equivar::o3::harmonics`, the f64 reference the tests compare with): textbook real
//! harmonics without the Condon-Shortley phase at `(X, Y, Z) = (z, x, y)`, `component`
//! normalisation, by the recurrences `(X + iY)^m` and `P_l^m(Z, r^2)`.
//!
//! Vectors are rows of `[n, 3]`; the output rows hold degrees `0..=lmax`, `(lmax + 1)^2`
//! numbers each. Rows are split over rayon's threads in chunks.

use rayon::prelude::*;

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

const CHUNK: usize = 256;

/// `out[n, dim]` from `vectors[n, 3]`.
pub fn forward(plan: &ShPlan, vectors: &[f32]) -> Vec<f32> {
    let dim = plan.dim();
    let n = vectors.len() / 3;
    let mut out = vec![0.0f32; n * dim];
    out.par_chunks_mut(CHUNK * dim)
        .zip(vectors.par_chunks(CHUNK * 3))
        .for_each(|(out, v)| {
            for (y, v) in out.chunks_exact_mut(dim).zip(v.chunks_exact(3)) {
                eval(plan, [v[0], v[1], v[2]], y, None);
            }
        });
    out
}

/// `d loss / d vectors [n, 3]` from `d loss / d out [n, dim]`.
pub fn backward(plan: &ShPlan, vectors: &[f32], grad_out: &[f32]) -> Vec<f32> {
    let dim = plan.dim();
    let n = vectors.len() / 3;
    let mut grad = vec![0.0f32; n * 3];
    grad.par_chunks_mut(CHUNK * 3)
        .zip(vectors.par_chunks(CHUNK * 3))
        .zip(grad_out.par_chunks(CHUNK * dim))
        .for_each(|((grad, v), gy)| {
            let mut y = vec![0.0f32; dim];
            let mut dy = vec![[0.0f32; 3]; dim];
            for ((g, v), gy) in grad
                .chunks_exact_mut(3)
                .zip(v.chunks_exact(3))
                .zip(gy.chunks_exact(dim))
            {
                eval(plan, [v[0], v[1], v[2]], &mut y, Some(&mut dy));
                let mut acc = [0.0f32; 3];
                for (d, &w) in dy.iter().zip(gy) {
                    for a in 0..3 {
                        acc[a] += w * d[a];
                    }
                }
                g.copy_from_slice(&acc);
            }
        });
    grad
}

/// One vector: values into `y`, and their gradients into `dy` when asked for.
#[inline]
fn eval(plan: &ShPlan, v: [f32; 3], y: &mut [f32], mut dy: Option<&mut [[f32; 3]]>) {
    let norm = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    let (u, r2) = if plan.normalize {
        if norm == 0.0 {
            y.fill(0.0);
            y[0] = plan.scale[0][0];
            if let Some(d) = dy {
                d.fill([0.0; 3]);
            }
            return;
        }
        (v.map(|c| c / norm), 1.0)
    } else {
        (v, norm * norm)
    };
    let (cx, cy, cz) = (u[2], u[0], u[1]);
    // Gradients in (x, y, z) of X = z, Y = x, Z = y and r^2.
    const DX: [f32; 3] = [0.0, 0.0, 1.0];
    const DY: [f32; 3] = [1.0, 0.0, 0.0];
    const DZ: [f32; 3] = [0.0, 1.0, 0.0];
    let dr2 = u.map(|c| 2.0 * c);
    let want = dy.is_some();
    let (mut c, mut s) = (1.0f32, 0.0f32);
    let (mut dc, mut ds) = ([0.0f32; 3], [0.0f32; 3]);
    for m in 0..=plan.lmax {
        if m > 0 {
            let (c1, s1) = (cx * c - cy * s, cx * s + cy * c);
            if want {
                let dc1 = [0, 1, 2].map(|i| DX[i] * c + cx * dc[i] - DY[i] * s - cy * ds[i]);
                let ds1 = [0, 1, 2].map(|i| DX[i] * s + cx * ds[i] + DY[i] * c + cy * dc[i]);
                (dc, ds) = (dc1, ds1);
            }
            (c, s) = (c1, s1);
        }
        let (mut p0, mut p1) = (0.0f32, plan.double_factorial[m]);
        let (mut dp0, mut dp1) = ([0.0f32; 3], [0.0f32; 3]);
        for l in m..=plan.lmax {
            if l > m {
                let (a, b) = ((2 * l - 1) as f32, (l + m - 1) as f32);
                let inv = 1.0 / (l - m) as f32;
                let p2 = (a * cz * p1 - b * r2 * p0) * inv;
                if want {
                    let dp2 = [0, 1, 2].map(|i| {
                        (a * (DZ[i] * p1 + cz * dp1[i]) - b * (dr2[i] * p0 + r2 * dp0[i])) * inv
                    });
                    (dp0, dp1) = (dp1, dp2);
                }
                (p0, p1) = (p1, p2);
            }
            let k = plan.scale[l][m];
            let centre = l * l + l;
            y[centre + m] = k * p1 * c;
            if m > 0 {
                y[centre - m] = k * p1 * s;
            }
            if let Some(d) = dy.as_deref_mut() {
                d[centre + m] = [0, 1, 2].map(|i| k * (c * dp1[i] + p1 * dc[i]));
                if m > 0 {
                    d[centre - m] = [0, 1, 2].map(|i| k * (s * dp1[i] + p1 * ds[i]));
                }
            }
        }
    }
    if plan.normalize
        && let Some(d) = dy
    {
        // d/dv of Y(v / |v|): the tangential part of the polynomial's gradient over |v|.
        let inv = 1.0 / norm;
        for g in d.iter_mut() {
            let radial = g[0] * u[0] + g[1] * u[1] + g[2] * u[2];
            *g = [0, 1, 2].map(|i| (g[i] - radial * u[i]) * inv);
        }
    }
}
