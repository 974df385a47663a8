//! A convolution that commutes with the grid's exact symmetries S (the quarter turns, and
//! the mirrors for dihedral groups) computes all output channels of an orbit from one: from
//! `Conv(g . f) = g . Conv(f)` follows `Conv(f) = g^-1 . Conv(g . f)`, so convolving the |S|
//! moved copies of the input with the filter rows of one channel per orbit gives the whole
//! output. As many multiplications, but 1/|S| of the filter to read: one image through
//! `e2-c8` reads 212 MB of expanded filters, and that reading, not the arithmetic, bounds its
//! time; the FFT grid's spectra shrink the same way.
//!
//! Nothing is assumed of the layer: [`OrbitConv::new`] checks the filter and bias against the
//! elements' actions and declines (`None`) where they do not commute.

use equivar_kernels::conv::ConvShape;
use rayon::prelude::*;

use crate::field::SignedPermutation;
use crate::space::GridAction;

/// An element of a convolution's group that maps the pixel grid to itself, with its action
/// on the convolution's input and output channels.
#[derive(Clone, Debug)]
pub struct GridElement {
    pub pixels: GridAction,
    pub input: SignedPermutation,
    pub output: SignedPermutation,
}

/// Largest departure from the symmetry, relative to the filter's largest value, that still
/// counts as symmetric: the steerable bases are sampled in f64 and rounded, so their quarter
/// turns agree to ~1e-7; anything not built symmetric misses by far more.
const SYMMETRY_TOLERANCE: f32 = 1e-5;

/// A convolution run on one output channel per orbit of S (see the module docs).
#[derive(Clone, Debug)]
pub struct OrbitConv {
    /// Per element `g`: its pixel action and its action on the input channels.
    moves: Vec<(GridAction, SignedPermutation)>,
    /// Per element `g`, the index of `g^-1`.
    inverses: Vec<usize>,
    /// Per output channel `c`: the element `g`, the representative `r` and the sign with
    /// `y[c] = sign * (g^-1 . z_g)[c]`, `z_g[r]` the representatives' output for `g . f`.
    assembly: Vec<(usize, usize, f32)>,
    /// Output channels computed directly, one per orbit.
    representatives: usize,
    /// The representatives' filter rows `[reps, in, k, k]` and biases (for the caller to
    /// take: it runs the convolution).
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl OrbitConv {
    /// The orbit form of the convolution with `weight [c_out, c_in, k, k]` and `bias`, if the
    /// elements are the quarter turns (with or without the mirrors), their channel actions
    /// form a representation, every output orbit has |S| channels and the filter and bias
    /// commute with every element (checked on the generators). Where the mirrors
    /// fail, the quarter turns alone are tried (a batch norm per C16 field folded into a D16
    /// layer before a restriction keeps only those).
    pub fn new(
        elements: &[GridElement],
        weight: &[f32],
        bias: &[f32],
        c_out: usize,
        c_in: usize,
        kernel: usize,
    ) -> Option<Self> {
        Self::for_elements(elements, weight, bias, c_out, c_in, kernel).or_else(|| {
            let turns: Vec<GridElement> = elements
                .iter()
                .filter(|e| !e.pixels.mirror)
                .cloned()
                .collect();
            (turns.len() < elements.len())
                .then(|| Self::for_elements(&turns, weight, bias, c_out, c_in, kernel))
                .flatten()
        })
    }

    fn for_elements(
        elements: &[GridElement],
        weight: &[f32],
        bias: &[f32],
        c_out: usize,
        c_in: usize,
        kernel: usize,
    ) -> Option<Self> {
        let is_bijection = |p: &SignedPermutation, n: usize| {
            let mut seen = vec![false; n];
            p.source.len() == n
                && p.sign.len() == n
                && p.source
                    .iter()
                    .all(|&s| s < n && !std::mem::replace(&mut seen[s], true))
        };
        let rotations = |mirror| {
            (0..4).map(move |q| GridAction {
                quarter_turns: q,
                mirror,
            })
        };
        let wanted: Vec<GridAction> = match elements.len() {
            4 => rotations(false).collect(),
            8 => rotations(false).chain(rotations(true)).collect(),
            _ => return None,
        };
        let index_of = |a: GridAction| elements.iter().position(|e| e.pixels == a);
        if !wanted.iter().all(|&a| index_of(a).is_some())
            || !elements
                .iter()
                .all(|e| is_bijection(&e.input, c_in) && is_bijection(&e.output, c_out))
            || weight.len() != c_out * c_in * kernel * kernel
            || bias.len() != c_out
        {
            return None;
        }
        // Reflections are their own inverses; a quarter turn's is the opposite turn.
        let inverse = |a: GridAction| GridAction {
            quarter_turns: if a.mirror {
                a.quarter_turns
            } else {
                (4 - a.quarter_turns) % 4
            },
            mirror: a.mirror,
        };
        let inverses: Vec<usize> = elements
            .iter()
            .map(|e| index_of(inverse(e.pixels)))
            .collect::<Option<_>>()?;

        if !is_representation(elements)
            || !commutes(elements, &inverses, weight, bias, c_in, kernel)
        {
            return None;
        }

        // Representatives: the first channel of each orbit; every orbit must be free.
        let mut representative = vec![usize::MAX; c_out];
        let mut reps = Vec::new();
        for c in 0..c_out {
            if representative[c] != usize::MAX {
                continue;
            }
            for e in elements {
                let member = e.output.source[c];
                if representative[member] != usize::MAX {
                    return None; // two elements give one channel: the orbit is not free
                }
                representative[member] = reps.len();
            }
            reps.push(c);
        }
        // y[c] = (g^-1 . z_g)[c] = sign * z_g[source_{g^-1}(c)] moved: pick the g whose
        // g^-1 takes c to a representative.
        let assembly = (0..c_out)
            .map(|c| {
                let (g, e_inv) = inverses
                    .iter()
                    .enumerate()
                    .map(|(g, &i)| (g, &elements[i]))
                    .find(|(_, e_inv)| {
                        let source = e_inv.output.source[c];
                        reps[representative[source]] == source
                    })?;
                let r = representative[e_inv.output.source[c]];
                Some((g, r, e_inv.output.sign[c]))
            })
            .collect::<Option<Vec<_>>>()?;
        let patch = c_in * kernel * kernel;
        Some(OrbitConv {
            moves: elements
                .iter()
                .map(|e| (e.pixels, e.input.clone()))
                .collect(),
            inverses,
            assembly,
            representatives: reps.len(),
            weight: reps
                .iter()
                .flat_map(|&c| weight[c * patch..][..patch].iter().copied())
                .collect(),
            bias: reps.iter().map(|&c| bias[c]).collect(),
        })
    }

    /// Whether the orbit form runs convolution `s` faster than the full filter. It reads
    /// 1/|S| of the filter but moves, transforms or unrolls |S| copies of the input, so it
    /// pays where the filter outweighs the input: `c_out k^2 >= 8 (|S| - 1) batch n^2` (on
    /// `e2-c8`, with its 10x10 layers over the line up to batch 65: batch 1 20.5 against
    /// 42.5 ms, batch 2 28.6 / 44.3, batch 8 82.0 / 82.5; with every layer in orbit form at
    /// batch 16, 188 against 159 ms). The grid must be square and the stride 1, so that the
    /// elements map the output grid to itself.
    pub fn pays(&self, s: &ConvShape) -> bool {
        s.height == s.width
            && s.stride == 1
            && s.c_out * s.kernel * s.kernel
                >= 8 * (self.order() - 1) * s.batch * s.height * s.width
    }

    /// Elements in S: the factor by which the batch grows and the output channels shrink.
    pub fn order(&self) -> usize {
        self.moves.len()
    }

    /// Output channels computed directly, one per orbit.
    pub fn representatives(&self) -> usize {
        self.representatives
    }

    /// `g . x` for every element, `x [batch, c_in, n, n]`: `[|S| * batch, c_in, n, n]`,
    /// element-major.
    pub fn moved_inputs(&self, x: &[f32], batch: usize, n: usize) -> Vec<f32> {
        let plane = n * n;
        let c_in = x.len() / (batch * plane);
        let mut out = vec![0.0f32; self.order() * x.len()];
        let tables: Vec<Vec<usize>> = self.moves.iter().map(|(a, _)| a.sources(n)).collect();
        out.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(index, target)| {
                let (g, rest) = (index / (batch * c_in), index % (batch * c_in));
                let (b, c) = (rest / c_in, rest % c_in);
                let channels = &self.moves[g].1;
                let sign = channels.sign[c];
                let from = &x[(b * c_in + channels.source[c]) * plane..][..plane];
                for (t, &s) in target.iter_mut().zip(&tables[g]) {
                    *t = sign * from[s];
                }
            });
        out
    }

    /// The output `[batch, c_out, m, m]` from the representatives' outputs `z [|S| * batch,
    /// reps, m, m]` (element-major, as [`OrbitConv::moved_inputs`] ordered the inputs), with
    /// `epilogue` applied to every plane.
    pub fn assemble(
        &self,
        z: &[f32],
        batch: usize,
        m: usize,
        epilogue: impl Fn(&mut [f32]) + Sync,
    ) -> Vec<f32> {
        let plane = m * m;
        let (reps, c_out) = (self.representatives(), self.assembly.len());
        // Per element g, the pixel table of g^-1.
        let tables: Vec<Vec<usize>> = self
            .inverses
            .iter()
            .map(|&inverse| self.moves[inverse].0.sources(m))
            .collect();
        let mut out = vec![0.0f32; batch * c_out * plane];
        out.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(index, target)| {
                let (b, c) = (index / c_out, index % c_out);
                let (g, r, sign) = self.assembly[c];
                let from = &z[((g * batch + b) * reps + r) * plane..][..plane];
                for (t, &s) in target.iter_mut().zip(&tables[g]) {
                    *t = sign * from[s];
                }
                epilogue(target);
            });
        out
    }
}

/// Whether the elements' pixel actions are closed under composition and their channel actions
/// compose the same way (`rho(g) rho(h) = rho(gh)`), so that a filter commuting with the
/// generators commutes with every element. D4 acts faithfully on the four pixels of a 2x2
/// grid, so those identify an element.
fn is_representation(elements: &[GridElement]) -> bool {
    let tables: Vec<Vec<usize>> = elements.iter().map(|e| e.pixels.sources(2)).collect();
    // (g . (h . f))_c = s_g[c] s_h[m] f[source_h(m)] with m = source_g(c).
    let composes = |g: &SignedPermutation, h: &SignedPermutation, gh: &SignedPermutation| {
        (0..g.source.len()).all(|c| {
            let m = g.source[c];
            h.source[m] == gh.source[c] && g.sign[c] * h.sign[m] == gh.sign[c]
        })
    };
    elements.iter().zip(&tables).all(|(g, g_table)| {
        elements.iter().zip(&tables).all(|(h, h_table)| {
            // act_g(act_h(x))[p] = x[source_h(source_g(p))]
            let composed: Vec<usize> = g_table.iter().map(|&p| h_table[p]).collect();
            tables
                .iter()
                .position(|t| *t == composed)
                .is_some_and(|gh| {
                    let gh = &elements[gh];
                    composes(&g.input, &h.input, &gh.input)
                        && composes(&g.output, &h.output, &gh.output)
                })
        })
    })
}

/// Whether `W(g v) rho_in(g) = rho_out(g) W(v)` and `b = rho_out(g) b` for the generators (the
/// quarter turn, and the mirror if present; [`is_representation`] extends it to all), to
/// [`SYMMETRY_TOLERANCE`] of the largest value. Per output channel `c` and input channel
/// `c'` with `rho_in(g)`'s entry `s_in[c']` at `(c', d)`, `d = source_in(c')`:
/// `s_in[c'] W[c, c'](g v) = s_out[c] W[source_out(c), d](v)`.
fn commutes(
    elements: &[GridElement],
    inverses: &[usize],
    weight: &[f32],
    bias: &[f32],
    c_in: usize,
    kernel: usize,
) -> bool {
    let largest = |v: &[f32]| v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let weight_tolerance = SYMMETRY_TOLERANCE * largest(weight);
    let bias_tolerance = SYMMETRY_TOLERANCE * largest(bias).max(largest(weight));
    let taps = kernel * kernel;
    let c_out = bias.len();
    let generator = |a: GridAction| {
        (a.quarter_turns, a.mirror) == (1, false) || (a.quarter_turns, a.mirror) == (0, true)
    };
    elements
        .iter()
        .zip(inverses)
        .filter(|(e, _)| generator(e.pixels))
        .all(|(e, &inv)| {
            // W(g v) = W[source of g^-1 at v].
            let turned = elements[inv].pixels.sources(kernel);
            let bias_ok = (0..c_out).all(|c| {
                (bias[c] - e.output.sign[c] * bias[e.output.source[c]]).abs() <= bias_tolerance
            });
            bias_ok
                && (0..c_out).into_par_iter().all(|c| {
                    let (s_out, c_src) = (e.output.sign[c], e.output.source[c]);
                    (0..c_in).all(|ci| {
                        let (s_in, d) = (e.input.sign[ci], e.input.source[ci]);
                        let left = &weight[(c * c_in + ci) * taps..][..taps];
                        let right = &weight[(c_src * c_in + d) * taps..][..taps];
                        (0..taps).all(|v| {
                            (s_in * left[turned[v]] - s_out * right[v]).abs() <= weight_tolerance
                        })
                    })
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use equivar_kernels::conv;

    /// A representation of C4 that permutes with signs: the regular one conjugated by
    /// `diag(d)`, `rho(r^q) = D P(r^q) D`, repeated `copies` times.
    fn signed_regular(q: usize, d: [f32; 4], copies: usize) -> SignedPermutation {
        let mut p = SignedPermutation {
            source: Vec::new(),
            sign: Vec::new(),
        };
        for copy in 0..copies {
            for c in 0..4 {
                let src = (c + 4 - q) % 4;
                p.source.push(copy * 4 + src);
                p.sign.push(d[c] * d[src]);
            }
        }
        p
    }

    /// Input: a trivial channel, a sign channel (`(-1)^q`) and a signed regular field;
    /// output: two signed regular fields.
    fn elements() -> Vec<GridElement> {
        (0..4)
            .map(|q| {
                let field = signed_regular(q, [1.0, -1.0, -1.0, 1.0], 1);
                let mut input = SignedPermutation {
                    source: vec![0, 1],
                    sign: vec![1.0, if q % 2 == 0 { 1.0 } else { -1.0 }],
                };
                input.source.extend(field.source.iter().map(|s| s + 2));
                input.sign.extend(field.sign);
                GridElement {
                    pixels: GridAction {
                        quarter_turns: q,
                        mirror: false,
                    },
                    input,
                    output: signed_regular(q, [1.0, 1.0, -1.0, -1.0], 2),
                }
            })
            .collect()
    }

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32) / 500.0 - 1.0)
            .collect()
    }

    /// The group average of `w`: `(1/|S|) sum_g rho_out(g)^T W(g v) rho_in(g)`, which
    /// commutes with every element.
    fn symmetrized(
        w: &[f32],
        elements: &[GridElement],
        c_out: usize,
        c_in: usize,
        k: usize,
    ) -> Vec<f32> {
        let taps = k * k;
        let mut out = vec![0.0f32; w.len()];
        for (e, g_inv) in elements.iter().zip([0, 3, 2, 1]) {
            let turned = elements[g_inv].pixels.sources(k);
            // (rho_out^T M rho_in)[c, d] = s_out[e] s_in[c'] M[e, c'] with
            // source_out(e) = c and source_in(c') = d.
            for eo in 0..c_out {
                let c = e.output.source[eo];
                for ci in 0..c_in {
                    let d = e.input.source[ci];
                    let sign = e.output.sign[eo] * e.input.sign[ci];
                    for v in 0..taps {
                        out[(c * c_in + d) * taps + v] +=
                            sign * w[(eo * c_in + ci) * taps + turned[v]] / elements.len() as f32;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_orbit_form_computes_the_convolution() {
        let (c_in, c_out, k, n, batch) = (6, 8, 3, 5, 2);
        let elements = elements();
        let weight = symmetrized(&values(c_out * c_in * k * k, 1), &elements, c_out, c_in, k);
        // b = rho_out(g) b: a bias per field, constant over the orbit up to the signs
        // (d_c of the conjugation: 1, 1, -1, -1).
        let bias: Vec<f32> = [0.3f32, -0.7]
            .iter()
            .flat_map(|b| [*b, *b, -*b, -*b])
            .collect();
        let orbit = OrbitConv::new(&elements, &weight, &bias, c_out, c_in, k)
            .expect("the averaged filter commutes");
        assert_eq!((orbit.order(), orbit.representatives()), (4, 2));

        let x = values(batch * c_in * n * n, 2);
        let s = ConvShape {
            batch,
            c_in,
            height: n,
            width: n,
            c_out,
            kernel: k,
            stride: 1,
            padding: 1,
            dilation: 1,
        };
        let relu = |y: &mut [f32]| y.iter_mut().for_each(|v| *v = v.max(0.0));
        let want = conv::forward_then(&s, &x, &weight, Some(&bias), relu);
        let moved = orbit.moved_inputs(&x, batch, n);
        let reps = ConvShape {
            batch: 4 * batch,
            c_out: 2,
            ..s
        };
        let z = conv::forward_then(&reps, &moved, &orbit.weight, Some(&orbit.bias), |_| {});
        let got = orbit.assemble(&z, batch, n, relu);
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let worst = got
            .iter()
            .zip(&want)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst <= 1e-5 * scale,
            "largest difference {worst:e} of {scale}"
        );
    }

    #[test]
    fn declines_what_does_not_commute_or_is_not_free() {
        let (c_in, c_out, k) = (6, 8, 3);
        let elements = elements();
        let raw = values(c_out * c_in * k * k, 1);
        let weight = symmetrized(&raw, &elements, c_out, c_in, k);
        let bias = vec![0.0; c_out];
        assert!(OrbitConv::new(&elements, &weight, &bias, c_out, c_in, k).is_some());
        // The filter before averaging, one value of the averaged one moved, an uneven bias.
        assert!(OrbitConv::new(&elements, &raw, &bias, c_out, c_in, k).is_none());
        let mut nudged = weight.clone();
        nudged[17] += 1e-3;
        assert!(OrbitConv::new(&elements, &nudged, &bias, c_out, c_in, k).is_none());
        let mut uneven = bias.clone();
        uneven[1] = 0.5;
        assert!(OrbitConv::new(&elements, &weight, &uneven, c_out, c_in, k).is_none());
        // Not the four quarter turns; an output action whose orbits have two channels (a
        // filter averaged over it commutes, but its orbits are not free).
        assert!(OrbitConv::new(&elements[..2], &weight, &bias, c_out, c_in, k).is_none());
        // Channel actions that are not a representation (one sign of the half turn's output
        // action flipped), though the filter commutes with the quarter turn and the orbits
        // stay free.
        let mut broken = elements.clone();
        broken[2].output.sign[0] *= -1.0;
        assert!(OrbitConv::new(&broken, &weight, &bias, c_out, c_in, k).is_none());
        let mut paired = elements.clone();
        for e in &mut paired {
            let q = e.pixels.quarter_turns;
            e.output = signed_regular(2 * (q % 2), [1.0; 4], 2);
        }
        let weight = symmetrized(&raw, &paired, c_out, c_in, k);
        assert!(OrbitConv::new(&paired, &weight, &bias, c_out, c_in, k).is_none());
    }
}
