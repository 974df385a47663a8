//! ReLU and its backward for training, split over the threads: burn's run on one thread,
//! and took a twentieth of an `abusing-p4` training step while the other core idled.
//!
//! As burn defines them: a value `<= 0` becomes 0 (a NaN stays NaN), and the gradient passes
//! where the output is not `<= 0`.

use rayon::prelude::*;

/// Values per task: enough to pay for a task, few enough to share a small map.
const MIN_PER_TASK: usize = 1 << 14;

/// `max(x, 0)` value by value, as burn's `relu`.
pub fn relu(x: &[f32]) -> Vec<f32> {
    x.par_iter()
        .with_min_len(MIN_PER_TASK)
        .map(|&v| relu_of(v))
        .collect()
}

/// One value's ReLU, as burn's: a NaN stays NaN.
#[inline(always)]
pub(crate) fn relu_of(v: f32) -> f32 {
    if v <= 0.0 { 0.0 } else { v }
}

/// Whether the gradient passes a ReLU whose output (or input) is `y`, as burn's.
#[inline(always)]
pub(crate) fn relu_passes(y: f32) -> bool {
    y > 0.0 || y.is_nan()
}

/// The input gradient of [`relu`] from its output `y` and output gradient `dy`, as burn's
/// `relu_backward`.
pub fn relu_backward(y: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(y.len(), dy.len(), "relu_backward: y and dy of one shape");
    y.par_iter()
        .zip(dy)
        .with_min_len(MIN_PER_TASK)
        .map(|(&y, &g)| if relu_passes(y) { g } else { 0.0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the definition on every kind of value, over several tasks' worth.
    #[test]
    fn relu_and_its_backward_follow_burns_definition() {
        let specials = [
            0.0,
            -0.0,
            1.5,
            -2.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e-40,
        ];
        let x: Vec<f32> = (0..3 * MIN_PER_TASK + 7)
            .map(|i| specials[i % specials.len()] * if i % 3 == 0 { 1.0 } else { -0.5 })
            .collect();
        let y = relu(&x);
        let dy: Vec<f32> = (0..x.len()).map(|i| i as f32 + 0.25).collect();
        let dx = relu_backward(&y, &dy);
        for (i, &v) in x.iter().enumerate() {
            let want = if v.is_nan() || v > 0.0 { v } else { 0.0 };
            assert!(
                y[i].to_bits() == want.to_bits() || (want.is_nan() && y[i].is_nan()),
                "relu({v}) = {}",
                y[i]
            );
            let pass = y[i] > 0.0 || y[i].is_nan();
            assert_eq!(dx[i], if pass { dy[i] } else { 0.0 }, "gradient at {v}");
        }
    }
}
