//! The Lie derivative and the local equivariance error (Gruver et al. 2023; DESIGN.md 2.8):
//! how fast a model's class probabilities change under an infinitesimal continuous
//! transformation of its input, and which layer contributes how much.
//!
//! Each transformation is a one-parameter family `T_t` of affine warps about the image
//! centre, `(T_t x)(p) = x(A_t^-1 p)`, with velocity field `v(p) = d/dt A_t p` at `t = 0`.
//! Its generator on an image is `(L x)(p) = -v(p) . grad x(p)`, the gradient taken by central
//! differences with zero padding: the derivative at `t = 0` of the bilinear warp averaged over
//! `t` and `-t` (the one-sided derivatives of a bilinear warp differ at the pixels
//! themselves). `saturation`, the non-geometric control, is the contrast about each image's
//! mean, `L x = x - mean(x)`.
//!
//! `L f(x) = J_f(x) L x` is computed exactly by reverse mode: one vector-Jacobian product per
//! class (all classes at once on a repeated batch), no finite difference in `t`. The LEE is
//! `mean_images mean_classes |L softmax(f(x))_k|`.
//!
//! Per-layer attribution: with `h_l` the input of layer `l` and `g_l = d softmax_k / d h_l`,
//! let `a_l = <g_l, L h_l>`, the Lie derivative seen from layer `l`'s input (feature maps are
//! transformed spatially, in their own pixels; the group channels of a continuous rotation
//! have no action). Layer `l`'s own Lie derivative pushed through the rest of the network,
//! `J_{>l} (J_l L h_l - L h_{l+1})`, is `a_l - a_{l+1}`; the contributions sum exactly to
//! `a_0 - a_L = L softmax_k` (the invariant output has `L h_L = 0`). The table reports each
//! layer's mean `|a_l - a_{l+1}|`; their sum bounds the end-to-end LEE from above (triangle
//! inequality), with equality when the layers' contributions share signs.

use std::fmt;
use std::str::FromStr;

use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::{EquivarError, Result};
use crate::nn::Net;

/// A one-parameter family of input transformations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LieTransform {
    /// Counter-clockwise as displayed (rows down), one radian per unit.
    Rotation,
    /// One input pixel to the right per unit.
    TranslationX,
    /// One input pixel down per unit.
    TranslationY,
    /// Isotropic scaling about the centre.
    Scale,
    /// Horizontal shear: rows move right in proportion to their distance below the centre.
    Shear,
    /// Stretch along the columns.
    StretchX,
    /// Stretch along the rows.
    StretchY,
    /// Contrast about the image mean: a non-geometric control.
    Saturation,
}

impl LieTransform {
    pub const ALL: [LieTransform; 8] = [
        LieTransform::Rotation,
        LieTransform::TranslationX,
        LieTransform::TranslationY,
        LieTransform::Scale,
        LieTransform::Shear,
        LieTransform::StretchX,
        LieTransform::StretchY,
        LieTransform::Saturation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LieTransform::Rotation => "rotation",
            LieTransform::TranslationX => "translation_x",
            LieTransform::TranslationY => "translation_y",
            LieTransform::Scale => "scale",
            LieTransform::Shear => "shear",
            LieTransform::StretchX => "stretch_x",
            LieTransform::StretchY => "stretch_y",
            LieTransform::Saturation => "saturation",
        }
    }

    /// A comma-separated list: the names above, `translation` (x and y), `stretch` (x and
    /// y) or `all`.
    pub fn parse_list(text: &str) -> Result<Vec<LieTransform>> {
        let mut out = Vec::new();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let add: Vec<LieTransform> = match word {
                "all" => Self::ALL.to_vec(),
                "translation" => vec![LieTransform::TranslationX, LieTransform::TranslationY],
                "stretch" => vec![LieTransform::StretchX, LieTransform::StretchY],
                other => vec![other.parse()?],
            };
            for t in add {
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
        if out.is_empty() {
            return Err(unknown_transform(text));
        }
        Ok(out)
    }

    fn is_geometric(self) -> bool {
        self != LieTransform::Saturation
    }

    /// The velocity `(d col/dt, d row/dt)` at pixel `(row, col)` of an `n x n` map whose
    /// pixels are `pixel` input pixels wide.
    fn velocity(self, row: usize, col: usize, n: usize, pixel: f64) -> (f64, f64) {
        let c = (n as f64 - 1.0) / 2.0;
        let (u, w) = (col as f64 - c, row as f64 - c);
        match self {
            // x right, y up: (dx, dy) = (-y, x); rows run down, so (du, dw) = (w, -u).
            LieTransform::Rotation => (w, -u),
            LieTransform::TranslationX => (1.0 / pixel, 0.0),
            LieTransform::TranslationY => (0.0, 1.0 / pixel),
            LieTransform::Scale => (u, w),
            LieTransform::Shear => (w, 0.0),
            LieTransform::StretchX => (u, 0.0),
            LieTransform::StretchY => (0.0, w),
            LieTransform::Saturation => (0.0, 0.0),
        }
    }

    /// The generator applied to feature maps `[batch, channels, n, n]` whose pixels are
    /// `pixel` input pixels wide (`1` for the input). Constant: no gradient flows through it.
    pub fn generator(self, x: &Tensor<4>, pixel: f64) -> Tensor<4> {
        let x = x.clone().detach();
        let [b, c, h, w] = x.dims();
        let device = x.device();
        if self == LieTransform::Saturation {
            let mean = x
                .clone()
                .reshape([b, c * h * w])
                .mean_dim(1)
                .reshape([b, 1, 1, 1]);
            return x - mean;
        }
        if h != w {
            // Not reached from equivar models (square maps); a zero generator is the honest
            // answer for maps without a spatial centre.
            return x.zeros_like();
        }
        let n = h;
        let field = |axis: usize| -> Tensor<4> {
            let values: Vec<f32> = (0..n * n)
                .map(|k| {
                    let (du, dw) = self.velocity(k / n, k % n, n, pixel);
                    (if axis == 0 { du } else { dw }) as f32
                })
                .collect();
            Tensor::from_data(TensorData::new(values, [1, 1, n, n]), &device)
        };
        // Central differences with zero padding.
        let padded = x.pad((1, 1, 1, 1), PadMode::Constant(0.0));
        let d_col = (padded.clone().slice([0..b, 0..c, 1..n + 1, 2..n + 2])
            - padded.clone().slice([0..b, 0..c, 1..n + 1, 0..n]))
            * 0.5;
        let d_row = (padded.clone().slice([0..b, 0..c, 2..n + 2, 1..n + 1])
            - padded.slice([0..b, 0..c, 0..n, 1..n + 1]))
            * 0.5;
        -(d_col * field(0) + d_row * field(1))
    }
}

fn unknown_transform(word: &str) -> EquivarError {
    EquivarError::UnknownTransform(word.to_string())
}

impl FromStr for LieTransform {
    type Err = EquivarError;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| unknown_transform(s))
    }
}

/// `d/dt f(T_t x)` at `t = 0`, `[batch, outputs]`, for a function of a batch of images that
/// treats each image alone. Exact: one vector-Jacobian product per output.
pub fn lie_derivative(
    f: impl Fn(Tensor<4>) -> Tensor<2>,
    x: &Tensor<4>,
    transform: LieTransform,
) -> Tensor<2> {
    let direction = transform.generator(x, 1.0);
    let x = x.clone().detach().without_autodiff();
    let outputs = f(x.clone()).dims()[1];
    let [b, c, h, w] = x.dims();
    // All outputs at once: the batch repeated once per output.
    let repeated = x.repeat_dim(0, outputs).autodiff().require_grad();
    let y = f(repeated.clone());
    let pick = one_hot_rows(outputs, b, &y.device());
    let grads = (y * pick).sum().backward();
    let g = repeated
        .grad(&grads)
        .expect("the input requires its gradient")
        .reshape([outputs, b, c * h * w]);
    let d = direction.reshape([1, b, c * h * w]);
    (g * d).sum_dim(2).reshape([outputs, b]).transpose()
}

/// `[outputs * batch, outputs]`: row `k * batch + i` selects output `k`.
fn one_hot_rows(outputs: usize, batch: usize, device: &Device) -> Tensor<2> {
    let mut values = vec![0.0f32; outputs * batch * outputs];
    for k in 0..outputs {
        for i in 0..batch {
            values[(k * batch + i) * outputs + k] = 1.0;
        }
    }
    Tensor::from_data(TensorData::new(values, [outputs * batch, outputs]), device)
}

/// The local equivariance error of a classifier `f` (logits) at `x` under `transform`:
/// `mean_images mean_classes |L softmax(f(x))_k|`.
pub fn local_equivariance_error(
    f: impl Fn(Tensor<4>) -> Tensor<2>,
    x: &Tensor<4>,
    transform: LieTransform,
) -> f64 {
    let l = lie_derivative(|x| softmax(f(x), 1), x, transform);
    l.abs().mean().into_scalar::<f64>()
}

/// One layer's share of the LEE.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerLee {
    pub name: String,
    pub kind: String,
    pub out_size: usize,
    /// `mean |a_l - a_{l+1}|` over images and classes (see the module docs).
    pub lee: f64,
}

/// The LEE of one transformation, end to end and per layer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransformLee {
    pub transform: LieTransform,
    pub lee: f64,
    /// Per layer (empty for `saturation`, which has no action on feature maps).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerLee>,
    /// The sum of the layers' LEEs (>= `lee`; equal when their contributions share signs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers_sum: Option<f64>,
    /// `mean |sum_l (a_l - a_{l+1}) - L softmax|`: zero but for rounding, as the
    /// contributions telescope (a check of the backward passes, not of the model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution_residual: Option<f64>,
}

/// The Lie derivative report of a model on a batch of images.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LieReport {
    pub model: String,
    pub input_size: usize,
    pub images: usize,
    pub transforms: Vec<TransformLee>,
}

/// Images per chunk of the layer-by-layer backward passes (times the classes).
const CHUNK: usize = 16;

/// The LEE of `net` (a classifier, evaluated in inference mode) at `x` under each of
/// `transforms`, with the per-layer attribution.
pub fn lie_report(net: &Net, x: &Tensor<4>, transforms: &[LieTransform]) -> Result<LieReport> {
    // The warps act on square pixel grids about their centre; sphere grids have none.
    if !net.spec.domain.is_plane() {
        return Err(EquivarError::NotOnThePlane {
            context: "the Lie derivative".into(),
            model: net.plan.model.clone(),
        });
    }
    net.check_input(x)?;
    let net = net.valid();
    let x = x.clone().without_autodiff();
    let [b, _, n, _] = x.dims();
    let out = net.plan.output_size;
    if out != 1 {
        return Err(EquivarError::not_a_classifier(
            format!("the Lie derivative of model `{}`", net.plan.model),
            vec![b, net.plan.output_type.channels(), out, out],
        ));
    }
    let mut sums: Vec<Accumulator> = transforms
        .iter()
        .map(|_| Accumulator::new(net.layers.len()))
        .collect();
    for start in (0..b).step_by(CHUNK) {
        let len = CHUNK.min(b - start);
        let chunk = x.clone().narrow(0, start, len);
        // Inputs of every layer, then the output.
        let mut maps = vec![chunk.clone()];
        maps.extend(net.forward_layers(chunk)?);
        let gradients = class_gradients(&net, &maps);
        for (t, sum) in transforms.iter().zip(&mut sums) {
            // a[l]: [len, classes], the Lie derivative seen from layer l's input.
            let a: Vec<Vec<f64>> = maps
                .iter()
                .zip(&gradients)
                .enumerate()
                .map(|(l, (h, g))| {
                    if l > 0 && !t.is_geometric() {
                        return vec![0.0; g.classes * len];
                    }
                    let pixel = n as f64 / h.dims()[2] as f64;
                    g.inner(&t.generator(h, pixel))
                })
                .collect();
            sum.add(&a);
        }
    }
    let transforms = transforms
        .iter()
        .zip(sums)
        .map(|(&t, sum)| sum.finish(t, &net))
        .collect();
    Ok(LieReport {
        model: net.plan.model.clone(),
        input_size: n,
        images: b,
        transforms,
    })
}

/// `d softmax_k / d h_l` for every class `k` and layer input `h_l` (and the output).
struct ClassGradients {
    classes: usize,
    /// `[classes * batch, ...]`, class-major.
    grad: Tensor<4>,
}

impl ClassGradients {
    /// `<grad, direction>` per image and class, `[image * classes + class]`.
    fn inner(&self, direction: &Tensor<4>) -> Vec<f64> {
        let [b, c, h, w] = direction.dims();
        let g = self.grad.clone().reshape([self.classes, b, c * h * w]);
        let d = direction.clone().reshape([1, b, c * h * w]);
        let per_class: Vec<f32> = (g * d)
            .sum_dim(2)
            .reshape([self.classes, b])
            .transpose()
            .into_data()
            .try_to_vec()
            .expect("float data");
        per_class.into_iter().map(f64::from).collect()
    }
}

/// The gradients of every softmax output with respect to every layer's input, by
/// vector-Jacobian products layer by layer, all classes at once on the repeated batch.
fn class_gradients(net: &Net, maps: &[Tensor<4>]) -> Vec<ClassGradients> {
    let logits = maps.last().expect("the output").clone();
    let [b, classes, _, _] = logits.dims();
    let z = logits.reshape([b, classes]);
    let s = softmax(z, 1);
    // d s_k / d z_j = s_k (delta_kj - s_j): for class k, rows k * b + i.
    let mut rows = Vec::with_capacity(classes);
    let eye = Tensor::<2>::eye(classes, &s.device());
    for k in 0..classes {
        let s_k = s.clone().narrow(1, k, 1);
        let delta = eye.clone().narrow(0, k, 1);
        rows.push(s_k.clone() * (delta - s.clone()));
    }
    let mut grad = Tensor::cat(rows, 0).reshape([classes * b, classes, 1, 1]);
    let mut out = vec![ClassGradients {
        classes,
        grad: grad.clone(),
    }];
    for (layer, input) in net.layers.iter().zip(maps).rev() {
        let leaf = input
            .clone()
            .repeat_dim(0, classes)
            .autodiff()
            .require_grad();
        let y = layer.forward(leaf.clone());
        let grads = (y * grad.clone()).sum().backward();
        grad = leaf
            .grad(&grads)
            .unwrap_or_else(|| leaf.clone().without_autodiff().zeros_like());
        out.push(ClassGradients {
            classes,
            grad: grad.clone(),
        });
    }
    out.reverse();
    out
}

/// Running sums over image chunks of one transformation's per-layer terms.
struct Accumulator {
    end_to_end: f64,
    layers: Vec<f64>,
    residual: f64,
    terms: usize,
}

impl Accumulator {
    fn new(layers: usize) -> Self {
        Accumulator {
            end_to_end: 0.0,
            layers: vec![0.0; layers],
            residual: 0.0,
            terms: 0,
        }
    }

    /// `a[l][image * classes + class]` for the layer inputs `l = 0..=L`.
    fn add(&mut self, a: &[Vec<f64>]) {
        for (e, &end_to_end) in a[0].iter().enumerate() {
            self.end_to_end += end_to_end.abs();
            let mut sum = 0.0;
            for (l, total) in self.layers.iter_mut().enumerate() {
                let c = a[l][e] - a[l + 1][e];
                *total += c.abs();
                sum += c;
            }
            self.residual += (sum - end_to_end).abs();
        }
        self.terms += a[0].len();
    }

    fn finish(self, transform: LieTransform, net: &Net) -> TransformLee {
        let mean = |v: f64| v / self.terms.max(1) as f64;
        let geometric = transform.is_geometric();
        let layers: Vec<LayerLee> = if geometric {
            net.plan
                .layers
                .iter()
                .zip(&self.layers)
                .map(|(plan, &total)| LayerLee {
                    name: plan.name.clone(),
                    kind: plan.kind.clone(),
                    out_size: plan.out_size,
                    lee: mean(total),
                })
                .collect()
        } else {
            Vec::new()
        };
        TransformLee {
            transform,
            lee: mean(self.end_to_end),
            layers_sum: geometric.then(|| layers.iter().map(|l| l.lee).sum()),
            attribution_residual: geometric.then(|| mean(self.residual)),
            layers,
        }
    }
}

impl fmt::Display for LieReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "local equivariance error of `{}` at {}x{} over {} images \
             (mean over classes of |d/dt softmax|, per unit of t)",
            self.model, self.input_size, self.input_size, self.images
        )?;
        for t in &self.transforms {
            writeln!(f, "  {:<14} LEE {:.4e}", t.transform.name(), t.lee)?;
        }
        for t in self.transforms.iter().filter(|t| !t.layers.is_empty()) {
            writeln!(
                f,
                "\n  {} per layer (each layer's own Lie derivative through the rest):",
                t.transform.name()
            )?;
            let total = t.layers_sum.unwrap_or(0.0).max(f64::MIN_POSITIVE);
            for l in &t.layers {
                let bar = "#".repeat((40.0 * l.lee / total).round() as usize);
                writeln!(
                    f,
                    "    {:<18} {:<20} {:>5} {:>11.4e} {:>6.1}%  {bar}",
                    l.name,
                    l.kind,
                    l.out_size,
                    l.lee,
                    100.0 * l.lee / total
                )?;
            }
            writeln!(
                f,
                "    sum of layers {:.4e} (end to end {:.4e}; contributions of opposite signs \
                 cancel in the end-to-end value)",
                t.layers_sum.unwrap_or(0.0),
                t.lee
            )?;
        }
        Ok(())
    }
}
