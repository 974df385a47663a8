//! 2x2, stride-2 max pooling of NCHW f32 planes for training, keeping which of the four
//! values won (a byte per output) for the backward. burn's generic pool (any window, a 3D
//! path, an integer index tensor, a scalar scatter backward) took a tenth of an `abusing-p4`
//! training step for the one pool it has.
//!
//! As burn defines it: the output is `floor(H / 2) x floor(W / 2)` (an odd last row or column
//! is dropped), the first maximum in the order (0,0), (0,1), (1,0), (1,1) wins ties, and a NaN
//! wins over numbers.

use rayon::prelude::*;

use crate::Isa;

/// `planes` planes of `height x width`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolShape {
    pub planes: usize,
    pub height: usize,
    pub width: usize,
}

impl PoolShape {
    pub fn out_height(&self) -> usize {
        self.height / 2
    }

    pub fn out_width(&self) -> usize {
        self.width / 2
    }

    fn out_plane(&self) -> usize {
        self.out_height() * self.out_width()
    }
}

/// `(value, index)` of the first maximum of two candidates, a NaN counting as the maximum.
#[inline(always)]
fn first_max(a: (f32, u8), b: (f32, u8)) -> (f32, u8) {
    if b.0 > a.0 || (b.0.is_nan() && !a.0.is_nan()) {
        b
    } else {
        a
    }
}

/// The max of `[top-left, top-right, bottom-left, bottom-right]` and its index (0-3): pairs,
/// then the pairs' winners, which picks the first maximum as a left-to-right scan would.
#[inline(always)]
fn winner(v: [f32; 4]) -> (f32, u8) {
    first_max(
        first_max((v[0], 0), (v[1], 1)),
        first_max((v[2], 2), (v[3], 3)),
    )
}

/// The pooled planes and, per output, the index (0-3) of the value it took.
pub fn max_2x2(s: &PoolShape, x: &[f32]) -> (Vec<f32>, Vec<u8>) {
    assert_eq!(
        x.len(),
        s.planes * s.height * s.width,
        "max pool: input length for {s:?}"
    );
    let plane_out = s.out_plane();
    let mut y = vec![0.0f32; s.planes * plane_out];
    let mut won = vec![0u8; s.planes * plane_out];
    if plane_out == 0 {
        return (y, won);
    }
    let isa = Isa::for_autovectorized();
    y.par_chunks_mut(plane_out)
        .zip(won.par_chunks_mut(plane_out))
        .zip(x.par_chunks(s.height * s.width))
        .for_each(|((y, won), plane)| pool_plane_built(isa, s, plane, y, won));
    (y, won)
}

/// One plane of [`max_2x2`].
#[inline(always)]
fn pool_plane<const FMA: bool>(s: &PoolShape, plane: &[f32], y: &mut [f32], won: &mut [u8]) {
    let ow = s.out_width();
    for (oy, (y_row, won_row)) in y
        .chunks_exact_mut(ow)
        .zip(won.chunks_exact_mut(ow))
        .enumerate()
    {
        let top = &plane[2 * oy * s.width..][..2 * ow];
        let bottom = &plane[(2 * oy + 1) * s.width..][..2 * ow];
        for (ox, (o, w)) in y_row.iter_mut().zip(won_row.iter_mut()).enumerate() {
            let v = [
                top[2 * ox],
                top[2 * ox + 1],
                bottom[2 * ox],
                bottom[2 * ox + 1],
            ];
            (*o, *w) = winner(v);
        }
    }
}

isa_builds! {
    fn pool_plane_built(s: &PoolShape, plane: &[f32], y: &mut [f32], won: &mut [u8]) = pool_plane::<FMA>
}

/// The input gradient of [`max_2x2`]: each output's gradient goes to the value it took.
pub fn max_2x2_backward(s: &PoolShape, dy: &[f32], won: &[u8]) -> Vec<f32> {
    let plane_out = s.out_plane();
    assert_eq!(
        dy.len(),
        s.planes * plane_out,
        "max pool: output-gradient length"
    );
    assert_eq!(won.len(), dy.len(), "max pool: one winner per output");
    let len = s.planes * s.height * s.width;
    if plane_out == 0 {
        return vec![0.0; len];
    }
    let isa = Isa::for_autovectorized();
    // Each plane zeroed by its own task, then the winners' gradients scattered into it.
    crate::par_zeroed(len, s.height * s.width, |i, plane| {
        let (dy, won) = (
            &dy[i * plane_out..][..plane_out],
            &won[i * plane_out..][..plane_out],
        );
        unpool_plane_built(isa, s, dy, won, plane)
    })
}

/// One plane of [`max_2x2_backward`].
#[inline(always)]
fn unpool_plane<const FMA: bool>(s: &PoolShape, dy: &[f32], won: &[u8], plane: &mut [f32]) {
    let ow = s.out_width();
    for (oy, (g_row, w_row)) in dy.chunks_exact(ow).zip(won.chunks_exact(ow)).enumerate() {
        let (upper, lower) = plane[2 * oy * s.width..].split_at_mut(s.width);
        let (top, bottom) = (&mut upper[..2 * ow], &mut lower[..2 * ow]);
        for (ox, (&g, &k)) in g_row.iter().zip(w_row).enumerate() {
            let pick = |slot: u8| if k == slot { g } else { 0.0 };
            top[2 * ox] = pick(0);
            top[2 * ox + 1] = pick(1);
            bottom[2 * ox] = pick(2);
            bottom[2 * ox + 1] = pick(3);
        }
    }
}

isa_builds! {
    fn unpool_plane_built(s: &PoolShape, dy: &[f32], won: &[u8], plane: &mut [f32]) = unpool_plane::<FMA>
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against plain loops over the definition, on odd and even sizes, with ties and a NaN.
    #[test]
    fn pooling_and_its_gradient_match_the_definition() {
        for (planes, height, width) in [(3, 4, 6), (2, 5, 7), (1, 2, 2), (2, 1, 3)] {
            let s = PoolShape {
                planes,
                height,
                width,
            };
            let mut x: Vec<f32> = (0..planes * height * width)
                .map(|i| ((i * 7) % 5) as f32 - 2.0)
                .collect();
            if x.len() > 5 {
                x[5] = f32::NAN;
            }
            let (y, won) = max_2x2(&s, &x);
            let dy: Vec<f32> = (0..y.len()).map(|i| i as f32 + 1.0).collect();
            let dx = max_2x2_backward(&s, &dy, &won);
            let (oh, ow) = (s.out_height(), s.out_width());
            let mut want_dx = vec![0.0f32; x.len()];
            for p in 0..planes {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let at = |dy_: usize, dx_: usize| {
                            p * height * width + (2 * oy + dy_) * width + 2 * ox + dx_
                        };
                        let order = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
                        let mut best = order[0];
                        for &i in &order[1..] {
                            let (v, b) = (x[i], x[best]);
                            if v > b || (v.is_nan() && !b.is_nan()) {
                                best = i;
                            }
                        }
                        let o = p * oh * ow + oy * ow + ox;
                        let (got, want) = (y[o], x[best]);
                        assert!(
                            got == want || (got.is_nan() && want.is_nan()),
                            "{s:?} y[{o}]"
                        );
                        want_dx[best] = dy[o];
                    }
                }
            }
            assert_eq!(dx, want_dx, "{s:?} dx");
        }
    }
}
