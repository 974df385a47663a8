//! The measured invariance (or equivariance) error of an ONNX model under the elements of a
//! group acting on the pixel grid: the graph runs on random images and on their rotated and
//! mirrored copies. The error of element `g` is `max |f(g x) - g f(x)| / max |f(x)|` over the
//! images and outputs, the measure of `export_onnx.py`'s manifest; `g f(x) = f(x)` for
//! logits, and moves the pixels of `[batch, channels, n, n]` feature maps.

use std::fmt;
use std::time::Instant;

use equivar::check::element_name;
use equivar::group::Group;
use equivar::space::GridAction;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tract_onnx::prelude::*;

use crate::error::{OnnxError, Result};
use crate::model::{OnnxModel, chain};

/// The most random images one check runs.
pub const MAX_IMAGES: usize = 1024;

/// The error under one group element.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ElementError {
    /// `r1`, `m`, `r1m`, ... (`m` reverses the rows; `r1` is `torch.rot90(x, 1, (2, 3))`).
    pub element: String,
    pub rel_error: f64,
}

/// The measurement of one model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OnnxCheck {
    pub model: String,
    pub group: String,
    pub input_size: usize,
    pub images: usize,
    pub seed: u64,
    /// `[batch, ...]` of the output compared.
    pub output_shape: Vec<usize>,
    /// Whether the output is compared as an image (moved back) or as invariant values.
    pub output_is_image: bool,
    pub errors: Vec<ElementError>,
    pub max_rel_error: f64,
    pub seconds: f64,
}

/// Runs `model` on `images` random `size x size` images (normal, from `seed`) and their
/// copies under every non-identity element of `group`.
pub fn check(
    model: &OnnxModel,
    group: Group,
    size: Option<usize>,
    images: usize,
    seed: u64,
) -> Result<OnnxCheck> {
    let start = Instant::now();
    if !group.acts_on_pixel_grid() {
        return Err(OnnxError::Group {
            group: group.to_string(),
        });
    }
    if !(1..=MAX_IMAGES).contains(&images) {
        return Err(OnnxError::Images(images));
    }
    let n = model.resolve_size(size)?;
    let c = model.input.channels;
    let batch = model.batch(images);
    let runnable = model
        .inference_model(batch, n)?
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(|e| model.shape_error(n, e))?;
    let x = random_images(images, c * n * n, seed);
    let run = |x: &[f32]| run_batched(&runnable, x, batch, [c, n, n]);
    let (reference, shape) = run(&x)?;
    let output_is_image = matches!(shape[..], [_, _, h, w] if h == w && h > 1);
    let scale = reference.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    let mut errors = Vec::new();
    for e in group.elements().filter(|e| *e != group.identity()) {
        let action = GridAction::of(group, e).map_err(|_| OnnxError::Group {
            group: group.to_string(),
        })?;
        let (moved, _) = run(&act(action, &x, n))?;
        let expected = if output_is_image {
            act(action, &reference, shape[2])
        } else {
            reference.clone()
        };
        let diff = moved
            .iter()
            .zip(&expected)
            .fold(0f64, |m, (a, b)| m.max((a - b).abs() as f64));
        errors.push(ElementError {
            element: element_name(e),
            rel_error: if diff == 0.0 { 0.0 } else { diff / scale },
        });
    }
    let max_rel_error = errors.iter().map(|e| e.rel_error).fold(0.0, f64::max);
    Ok(OnnxCheck {
        model: model.name(),
        group: group.to_string(),
        input_size: n,
        images,
        seed,
        output_shape: shape,
        output_is_image,
        errors,
        max_rel_error,
        seconds: start.elapsed().as_secs_f64(),
    })
}

type Runnable = Arc<TypedRunnableModel>;

/// Runs the images in `x` (each `plane` values) through the graph `batch` at a time, the last
/// batch filled with zeros; returns the outputs of the real images and the output's shape
/// with the batch set to the number of images.
fn run_batched(
    runnable: &Runnable,
    x: &[f32],
    batch: usize,
    [c, h, w]: [usize; 3],
) -> Result<(Vec<f32>, Vec<usize>)> {
    let per_image = c * h * w;
    let images = x.len() / per_image;
    let mut out = Vec::new();
    let mut shape = Vec::new();
    for first in (0..images).step_by(batch) {
        let real = batch.min(images - first);
        let mut chunk = x[first * per_image..(first + real) * per_image].to_vec();
        chunk.resize(batch * per_image, 0.0);
        let input =
            Tensor::from_shape(&[batch, c, h, w], &chunk).map_err(|e| OnnxError::Run(chain(&e)))?;
        let result = runnable
            .run(tvec!(input.into()))
            .map_err(|e| OnnxError::Run(chain(&e)))?;
        let output = &result[0];
        let values = output.cast_to::<f32>().map_err(|_| OnnxError::Output {
            name: "0".into(),
            found: format!("{:?}", output.datum_type()),
        })?;
        let values: Vec<f32> = values
            .to_plain_array_view::<f32>()
            .map_err(|e| OnnxError::Run(chain(&e)))?
            .iter()
            .copied()
            .collect();
        let dims = output.shape();
        if dims.first() != Some(&batch) {
            return Err(OnnxError::Output {
                name: "0".into(),
                found: format!("of shape {dims:?}, without the batch as its first axis"),
            });
        }
        let per_output = values.len() / batch;
        out.extend_from_slice(&values[..real * per_output]);
        shape = std::iter::once(images)
            .chain(dims[1..].iter().copied())
            .collect();
    }
    Ok((out, shape))
}

/// Standard normal values (Box-Muller), reproducible from `seed`.
fn random_images(images: usize, per_image: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..images * per_image)
        .map(|_| {
            let u: f64 = 1.0 - rng.random::<f64>();
            let v: f64 = rng.random();
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect()
}

/// `action` applied to every `n x n` plane of `x`.
fn act(action: GridAction, x: &[f32], n: usize) -> Vec<f32> {
    let plane = n * n;
    let mut out = vec![0.0; x.len()];
    for (src, dst) in x.chunks_exact(plane).zip(out.chunks_exact_mut(plane)) {
        for i in 0..n {
            for j in 0..n {
                let (p, q) = action.source(i, j, n);
                dst[i * n + j] = src[p * n + q];
            }
        }
    }
    out
}

impl fmt::Display for OnnxCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} under {} at {} x {}: {} random images (seed {}), output {:?} compared as {}",
            self.model,
            self.group,
            self.input_size,
            self.input_size,
            self.images,
            self.seed,
            self.output_shape,
            if self.output_is_image {
                "feature maps moved back"
            } else {
                "invariant values"
            }
        )?;
        writeln!(f, "{:<8} {:>12}", "element", "rel. error")?;
        for e in &self.errors {
            writeln!(f, "{:<8} {:>12.3e}", e.element, e.rel_error)?;
        }
        writeln!(
            f,
            "max relative error {:.3e} (max |f(g x) - g f(x)| / max |f(x)|); {:.2} s",
            self.max_rel_error, self.seconds
        )
    }
}
