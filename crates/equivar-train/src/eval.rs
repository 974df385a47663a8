//! Accuracy under rotation: the test set rotated (bilinear, about the centre) by 0, 10, ...,
//! 350 degrees, as in Using and Abusing Equivariance; on the sphere, turned about the x axis
//! (see [`crate::examples`]).

use burn::tensor::Device;
use equivar::nn::Net;
use equivar::ops::{self, Kernels};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::examples::Examples;
use crate::trainer::count_correct;

/// Images per forward pass during evaluation.
pub const EVAL_BATCH: usize = 500;

/// Accuracy (percent) of one model at each test angle (degrees).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RotationCurve {
    pub label: String,
    pub angles: Vec<f64>,
    pub accuracy: Vec<f64>,
    pub test_images: usize,
}

impl RotationCurve {
    pub fn mean(&self) -> f64 {
        self.accuracy.iter().sum::<f64>() / self.accuracy.len() as f64
    }

    /// The accuracy at `degrees`, if it was measured.
    pub fn at(&self, degrees: f64) -> Option<f64> {
        accuracy_at(&self.angles, &self.accuracy, degrees)
    }

    /// Largest minus smallest accuracy over 0, 90, 180 and 270 degrees (percentage points).
    pub fn quarter_turn_spread(&self) -> Option<f64> {
        quarter_turn_spread(&self.angles, &self.accuracy)
    }
}

fn accuracy_at(angles: &[f64], accuracy: &[f64], degrees: f64) -> Option<f64> {
    angles
        .iter()
        .position(|&a| (a - degrees).abs() < 1e-9)
        .map(|i| accuracy[i])
}

/// Largest minus smallest of `accuracy` at 0, 90, 180 and 270 degrees; None if one is missing.
pub fn quarter_turn_spread(angles: &[f64], accuracy: &[f64]) -> Option<f64> {
    let quarter: Option<Vec<f64>> = [0.0, 90.0, 180.0, 270.0]
        .iter()
        .map(|&a| accuracy_at(angles, accuracy, a))
        .collect();
    let quarter = quarter?;
    let max = quarter.iter().cloned().fold(f64::MIN, f64::max);
    let min = quarter.iter().cloned().fold(f64::MAX, f64::min);
    Some(max - min)
}

/// 0, 10, ..., 350 degrees.
pub fn paper_angles() -> Vec<f64> {
    (0..36).map(|i| 10.0 * i as f64).collect()
}

/// Accuracy of `net` (in evaluation mode) on `test` rotated by each angle.
pub fn rotation_curve(
    net: &Net,
    test: &dyn Examples,
    angles: &[f64],
    label: &str,
    device: &Device,
    progress: bool,
) -> anyhow::Result<RotationCurve> {
    let bar = ProgressBar::with_draw_target(
        Some(angles.len() as u64),
        if progress {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("eval    {bar:30.magenta/white} {pos}/{len} angles {msg}")
            .expect("fixed template")
            .progress_chars("=> "),
    );
    let indices: Vec<usize> = (0..test.len()).collect();
    // On the CPU with equivar's kernels, the frozen model (same function, tested to 1e-5;
    // filters expanded once, batch norm folded): faster than the module. A model with a
    // layer that has no frozen lowering runs as the module.
    let frozen = (net.kernels != Kernels::Burn && ops::is_flex(device))
        .then(|| net.to_frozen().ok())
        .flatten();
    let mut accuracy = Vec::with_capacity(angles.len());
    for &angle in angles {
        let mut correct = 0;
        for chunk in indices.chunks(EVAL_BATCH) {
            let (x, y) = test.at_angles(chunk, &vec![angle; chunk.len()], device);
            let logits = match &frozen {
                Some(frozen) => frozen.tensor_logits(x)?,
                None => net.logits(x)?,
            };
            correct += count_correct(logits, y);
        }
        let acc = 100.0 * correct as f64 / test.len() as f64;
        bar.set_message(format!("{angle:>3} deg: {acc:.2}%"));
        bar.inc(1);
        accuracy.push(acc);
    }
    bar.finish_and_clear();
    Ok(RotationCurve {
        label: label.to_string(),
        angles: angles.to_vec(),
        accuracy,
        test_images: test.len(),
    })
}
