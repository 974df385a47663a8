//! The exactness plan of an ONNX graph (DESIGN.md 2.1, 2.10): every Conv, MaxPool,
//! AveragePool and Pad with its window and the size it sees, and whether its sampling grid is
//! symmetric about the image centre there. Exactness of the grids is a property of the
//! windows alone; whether the weights are equivariant is what [`crate::measure`] measures.

use std::fmt;

use equivar::space::Window;
use serde::Serialize;
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use crate::error::{OnnxError, Result};
use crate::model::{OnnxModel, chain, node_name};

/// How far from the audited size [`OnnxPlan::nearest_exact_sizes`] looks on each side.
const SEARCH_RADIUS: usize = 32;

/// One sliding window (or padding) of the graph at the size it sees.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WindowAudit {
    pub node: String,
    pub op: String,
    /// `[rows, columns]`.
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// `[top, left, bottom, right]`, as ONNX orders them.
    pub pads: [usize; 4],
    pub ceil_mode: bool,
    pub in_size: [usize; 2],
    pub out_size: [usize; 2],
    /// `(n + pads - d(k-1) - 1) mod s` per axis: 0 when the grid reaches the far border.
    pub remainder: [usize; 2],
    /// The sampling grid is symmetric about the centre and the same along rows and columns.
    pub exact: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// A node that moves pixels in a way the audit does not analyse (resizing, cropping,
/// transposed convolutions, ...): the plan cannot call the graph exact while it holds one.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UnanalysedNode {
    pub node: String,
    pub op: String,
}

/// The plan of an ONNX graph at one input size.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OnnxPlan {
    pub model: String,
    pub producer: String,
    pub input: String,
    pub channels: usize,
    pub input_size: usize,
    /// Every sampling grid is symmetric and no unanalysed node moves pixels: with equivariant
    /// weights the model is exactly equivariant to quarter turns and mirrors at this size.
    pub exact: bool,
    /// The nearest sizes below and above (within 32) at which every grid is symmetric.
    pub nearest_exact_sizes: Vec<usize>,
    pub layers: Vec<WindowAudit>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unanalysed: Vec<UnanalysedNode>,
}

/// Operators with a sliding window of `kernel_shape`, `strides`, `pads` and `dilations`; the
/// image is their first input.
const WINDOWED: [&str; 6] = [
    "Conv",
    "ConvInteger",
    "QLinearConv",
    "MaxPool",
    "AveragePool",
    "LpPool",
];

/// Operators that move pixels in ways the plan does not model.
const UNANALYSED: [&str; 14] = [
    "ConvTranspose",
    "Resize",
    "Upsample",
    "Slice",
    "GridSample",
    "AffineGrid",
    "SpaceToDepth",
    "DepthToSpace",
    "MaxUnpool",
    "RoiAlign",
    "MaxRoiPool",
    "Col2Im",
    "CenterCropPad",
    "Crop",
];

impl OnnxPlan {
    /// Plans `model` on `size x size` images (the graph's own size when `None`).
    pub fn new(model: &OnnxModel, size: Option<usize>) -> Result<OnnxPlan> {
        let size = model.resolve_size(size)?;
        let (layers, unanalysed) = audit_at(model, size)?;
        let exact = unanalysed.is_empty() && layers.iter().all(|l| l.exact);
        let nearest_exact_sizes = if exact {
            Vec::new()
        } else {
            nearest_exact_sizes(model, size)
        };
        Ok(OnnxPlan {
            model: model.name(),
            producer: model.producer(),
            input: model.input.name.clone(),
            channels: model.input.channels,
            input_size: size,
            exact,
            nearest_exact_sizes,
            layers,
            unanalysed,
        })
    }

    /// The first window that breaks exactness.
    pub fn first_inexact(&self) -> Option<&WindowAudit> {
        self.layers.iter().find(|l| !l.exact)
    }
}

/// The nearest sizes below and above `size` at which every grid is symmetric (sizes at which
/// the graph does not run are skipped).
fn nearest_exact_sizes(model: &OnnxModel, size: usize) -> Vec<usize> {
    let exact_at = |n: usize| {
        audit_at(model, n).is_ok_and(|(layers, unanalysed)| {
            unanalysed.is_empty() && layers.iter().all(|l| l.exact)
        })
    };
    let below = (size.saturating_sub(SEARCH_RADIUS).max(1)..size)
        .rev()
        .find(|&n| exact_at(n));
    let above = (size + 1..=size + SEARCH_RADIUS).find(|&n| exact_at(n));
    below.into_iter().chain(above).collect()
}

fn audit_at(model: &OnnxModel, size: usize) -> Result<(Vec<WindowAudit>, Vec<UnanalysedNode>)> {
    let mut inference = model.inference_model(model.batch(1), size)?;
    inference
        .analyse(false)
        .map_err(|e| model.shape_error(size, e))?;
    let mut layers = Vec::new();
    let mut unanalysed = Vec::new();
    for node in &model.graph().node {
        let op = node.op_type.as_str();
        let is_window = WINDOWED.contains(&op);
        if !is_window && op != "Pad" && !UNANALYSED.contains(&op) {
            continue;
        }
        let name = node_name(node);
        let facts = Facts {
            model: &inference,
            name: &name,
            op,
        };
        let shape = facts.input_shape(0)?;
        // Only nodes acting on images: [batch, channels, h, w] with a real plane.
        let Some(&[_, _, h, w]) = shape.as_deref() else {
            if UNANALYSED.contains(&op) || shape.is_none() {
                // Unknown rank: cannot rule out that it moves pixels.
                unanalysed.push(UnanalysedNode {
                    node: name,
                    op: op.into(),
                });
            } else if is_window {
                return Err(facts.problem(format!(
                    "a window over a rank-{} input; the audit covers 2-D images \
                     [batch, channels, h, w]",
                    shape.as_ref().map_or(0, |s| s.len())
                )));
            }
            continue;
        };
        if is_window {
            layers.push(window_audit(node, &facts, [h, w])?);
        } else if op == "Pad" {
            match pad_audit(node, &facts, [h, w])? {
                Some(layer) => layers.push(layer),
                None => unanalysed.push(UnanalysedNode {
                    node: name,
                    op: op.into(),
                }),
            }
        } else if h > 1 || w > 1 {
            unanalysed.push(UnanalysedNode {
                node: name,
                op: op.into(),
            });
        }
    }
    Ok((layers, unanalysed))
}

/// What shape inference found around one node.
struct Facts<'a> {
    model: &'a InferenceModel,
    name: &'a str,
    op: &'a str,
}

impl Facts<'_> {
    fn problem(&self, problem: String) -> OnnxError {
        OnnxError::Node {
            node: self.name.into(),
            op: self.op.into(),
            problem,
        }
    }

    fn fact(&self, input: usize) -> Result<Option<&InferenceFact>> {
        let node = self
            .model
            .node_by_name(self.name)
            .map_err(|e| self.problem(chain(&e)))?;
        match node.inputs.get(input) {
            Some(&outlet) => self
                .model
                .outlet_fact(outlet)
                .map(Some)
                .map_err(|e| self.problem(chain(&e))),
            None => Ok(None),
        }
    }

    /// The concrete shape of input `input`, if inference found one.
    fn input_shape(&self, input: usize) -> Result<Option<Vec<usize>>> {
        Ok(self
            .fact(input)?
            .and_then(|f| f.shape.as_concrete_finite().ok().flatten())
            .map(|s| s.to_vec()))
    }

    /// The constant value of input `input`, if it is one.
    fn input_value(&self, input: usize) -> Result<Option<Arc<Tensor>>> {
        Ok(self.fact(input)?.and_then(|f| f.value.concretize()))
    }
}

fn ints(node: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.clone())
}

fn int(node: &pb::NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

fn string(node: &pb::NodeProto, name: &str) -> Option<String> {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// A pair of attribute values, one per spatial axis; `default` when absent.
fn pair(facts: &Facts, values: Option<Vec<i64>>, what: &str, default: usize) -> Result<[usize; 2]> {
    match values.as_deref() {
        None | Some([]) => Ok([default; 2]),
        Some(&[a, b]) if a >= 1 && b >= 1 => Ok([a as usize, b as usize]),
        Some(v) => Err(facts.problem(format!(
            "{what} {v:?}: expected two positive values, one per spatial axis"
        ))),
    }
}

fn window_audit(node: &pb::NodeProto, facts: &Facts, in_size: [usize; 2]) -> Result<WindowAudit> {
    let kernel = match ints(node, "kernel_shape") {
        Some(k) => pair(facts, Some(k), "kernel_shape", 1)?,
        // Conv may leave the kernel to its weights: [out, in/groups, kh, kw].
        None => match facts.input_shape(weight_input(facts.op))?.as_deref() {
            Some(&[_, _, kh, kw]) => [kh, kw],
            _ => {
                return Err(facts.problem(
                    "no kernel_shape and no weight tensor of shape [out, in, kh, kw]".into(),
                ));
            }
        },
    };
    let stride = pair(facts, ints(node, "strides"), "strides", 1)?;
    let dilation = pair(facts, ints(node, "dilations"), "dilations", 1)?;
    let ceil_mode = int(node, "ceil_mode").unwrap_or(0) != 0;
    let span = [0, 1].map(|a| dilation[a] * (kernel[a] - 1) + 1);
    let pads = match string(node, "auto_pad").as_deref() {
        None | Some("NOTSET") | Some("") => match ints(node, "pads").as_deref() {
            None | Some([]) => [0; 4],
            Some(&[t, l, b, r]) if [t, l, b, r].iter().all(|&p| p >= 0) => {
                [t, l, b, r].map(|p| p as usize)
            }
            Some(p) => {
                return Err(facts.problem(format!(
                    "pads {p:?}: expected four non-negative values [top, left, bottom, right]"
                )));
            }
        },
        Some("VALID") => [0; 4],
        // Total padding so the output is ceil(n / s); the odd pixel goes after (UPPER) or
        // before (LOWER).
        Some(mode @ ("SAME_UPPER" | "SAME_LOWER")) => {
            let total = [0, 1].map(|a| {
                let out = in_size[a].div_ceil(stride[a]);
                ((out - 1) * stride[a] + span[a]).saturating_sub(in_size[a])
            });
            let small = total.map(|t| t / 2);
            let large = [0, 1].map(|a| total[a] - small[a]);
            if mode == "SAME_UPPER" {
                [small[0], small[1], large[0], large[1]]
            } else {
                [large[0], large[1], small[0], small[1]]
            }
        }
        Some(other) => return Err(facts.problem(format!("unknown auto_pad `{other}`"))),
    };
    let mut out_size = [0; 2];
    let mut remainder = [0; 2];
    for a in 0..2 {
        let padded = in_size[a] + pads[a] + pads[a + 2];
        let Some(free) = padded.checked_sub(span[a]) else {
            return Err(facts.problem(format!(
                "its window spans {} pixels but the padded input is {padded}",
                span[a]
            )));
        };
        out_size[a] = if ceil_mode {
            // The extra window is dropped when it would start in the far padding.
            let out = free.div_ceil(stride[a]) + 1;
            if (out - 1) * stride[a] >= in_size[a] + pads[a] {
                out - 1
            } else {
                out
            }
        } else {
            free / stride[a] + 1
        };
        remainder[a] = free % stride[a];
    }
    Ok(WindowAudit {
        node: facts.name.into(),
        op: facts.op.into(),
        kernel,
        stride,
        dilation,
        pads,
        ceil_mode,
        in_size,
        out_size,
        remainder,
        exact: true,
        problem: None,
    }
    .with_verdict())
}

fn weight_input(op: &str) -> usize {
    // QLinearConv: x, x_scale, x_zero_point, w, ...
    if op == "QLinearConv" { 3 } else { 1 }
}

impl WindowAudit {
    /// `self` with `problem` and `exact` set from its window.
    fn with_verdict(mut self) -> Self {
        self.problem = grid_problem(&self);
        self.exact = self.problem.is_none();
        self
    }
}

/// Why the sampling grid is not symmetric about the centre, or `None` when it is.
fn grid_problem(g: &WindowAudit) -> Option<String> {
    let is_pool = g.op.ends_with("Pool");
    const AXES: [&str; 2] = ["rows", "columns"];
    for (a, axis) in AXES.iter().enumerate() {
        let (before, after) = (g.pads[a], g.pads[a + 2]);
        if before != after {
            return Some(format!(
                "asymmetric padding along the {axis}: {before} before, {after} after"
            ));
        }
    }
    for (a, axis_name) in AXES.iter().enumerate() {
        let axis = Window {
            kernel: g.kernel[a],
            stride: g.stride[a],
            padding: g.pads[a],
            dilation: g.dilation[a],
        };
        // A pool weighs its taps alike, so a mirrored set of in-image taps suffices (see
        // `Window::is_exact_pool`); a conv needs the grid itself symmetric.
        let exact = if is_pool && !g.ceil_mode {
            axis.is_exact_pool(g.in_size[a])
        } else {
            axis.is_exact(g.in_size[a])
        };
        if !exact {
            return Some(format!(
                "the grid along the {axis_name} stops {} pixel{} short of the far border ({} + {} \
                 - {} is not a multiple of stride {})",
                g.remainder[a],
                if g.remainder[a] == 1 { "" } else { "s" },
                g.in_size[a],
                2 * g.pads[a],
                axis.span(),
                g.stride[a],
            ));
        }
    }
    let same = |v: [usize; 2]| v[0] == v[1];
    if !same(g.in_size) || !same(g.out_size) || !same(g.stride) {
        return Some(format!(
            "rows and columns are sampled differently (input {}x{}, stride {}x{}, output \
             {}x{}): quarter turns do not map the grid to itself",
            g.in_size[0], g.in_size[1], g.stride[0], g.stride[1], g.out_size[0], g.out_size[1]
        ));
    }
    if is_pool && (!same(g.kernel) || !same(g.dilation)) {
        return Some(format!(
            "a {}x{} pooling window: quarter turns map it to a {}x{} one",
            g.kernel[0], g.kernel[1], g.kernel[1], g.kernel[0]
        ));
    }
    None
}

/// A Pad node as a 1x1 window with its padding, when its pads are constants; `None` when
/// they are computed at run time (or restricted to `axes`) and cannot be read here.
fn pad_audit(
    node: &pb::NodeProto,
    facts: &Facts,
    in_size: [usize; 2],
) -> Result<Option<WindowAudit>> {
    let pads: Vec<i64> = match ints(node, "pads") {
        Some(p) => p,
        None => {
            if node.input.get(3).is_some_and(|a| !a.is_empty()) {
                return Ok(None);
            }
            match facts.input_value(1)? {
                Some(t) => match t.cast_to::<i64>() {
                    Ok(t) => match t.to_plain_array_view::<i64>() {
                        Ok(v) => v.iter().copied().collect(),
                        Err(_) => return Ok(None),
                    },
                    Err(_) => return Ok(None),
                },
                None => return Ok(None),
            }
        }
    };
    // [x1_begin, ..., x4_begin, x1_end, ..., x4_end]; negative pads crop.
    let &[_, _, top, left, _, _, bottom, right] = &pads[..] else {
        return Err(facts.problem(format!(
            "pads {pads:?}: expected 8 values for a [batch, channels, h, w] input"
        )));
    };
    if [top, left, bottom, right].iter().any(|&p| p < 0) {
        return Ok(None);
    }
    let pads = [top, left, bottom, right].map(|p| p as usize);
    let out_size = [
        in_size[0] + pads[0] + pads[2],
        in_size[1] + pads[1] + pads[3],
    ];
    Ok(Some(
        WindowAudit {
            node: facts.name.into(),
            op: facts.op.into(),
            kernel: [1, 1],
            stride: [1, 1],
            dilation: [1, 1],
            pads,
            ceil_mode: false,
            in_size,
            out_size,
            remainder: [0, 0],
            exact: true,
            problem: None,
        }
        .with_verdict(),
    ))
}

impl fmt::Display for OnnxPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let by = if self.producer.is_empty() {
            String::new()
        } else {
            format!(" (written by {})", self.producer)
        };
        writeln!(
            f,
            "{}{by}: input `{}` {} x {} x {}",
            self.model, self.input, self.channels, self.input_size, self.input_size
        )?;
        let width = self
            .layers
            .iter()
            .map(|l| l.node.len())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(
            f,
            "{:<width$}  {:<11} {:>6} {:>6} {:>9} {:>4} {:>9} {:>9} {:>4}  exact",
            "node", "op", "kernel", "stride", "pads", "dil", "in", "out", "rem"
        )?;
        let dims = |v: [usize; 2]| {
            if v[0] == v[1] {
                v[0].to_string()
            } else {
                format!("{}x{}", v[0], v[1])
            }
        };
        for l in &self.layers {
            let pads = if l.pads.iter().all(|&p| p == l.pads[0]) {
                l.pads[0].to_string()
            } else {
                l.pads.map(|p| p.to_string()).join(",")
            };
            writeln!(
                f,
                "{:<width$}  {:<11} {:>6} {:>6} {:>9} {:>4} {:>9} {:>9} {:>4}  {}",
                l.node,
                l.op,
                dims(l.kernel),
                dims(l.stride),
                pads,
                dims(l.dilation),
                format!("{}x{}", l.in_size[0], l.in_size[1]),
                format!("{}x{}", l.out_size[0], l.out_size[1]),
                dims(l.remainder),
                match &l.problem {
                    None => "yes".to_string(),
                    Some(p) => format!("NO: {p}"),
                }
            )?;
        }
        for u in &self.unanalysed {
            writeln!(
                f,
                "{:<width$}  {:<11} moves pixels in a way the plan does not analyse",
                u.node, u.op
            )?;
        }
        if self.exact {
            writeln!(
                f,
                "exact at {}: every sampling grid is symmetric, so with equivariant weights the \
                 model commutes with quarter turns and mirrors (`equivar check --onnx` measures \
                 whether it does)",
                self.input_size
            )
        } else {
            let culprits: Vec<String> = self
                .layers
                .iter()
                .filter(|l| !l.exact)
                .map(|l| format!("`{}`", l.node))
                .chain(
                    self.unanalysed
                        .iter()
                        .map(|u| format!("`{}` (not analysed)", u.node)),
                )
                .collect();
            let nearest = if self.nearest_exact_sizes.is_empty() {
                format!("none within {SEARCH_RADIUS}")
            } else {
                self.nearest_exact_sizes
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(" and ")
            };
            writeln!(
                f,
                "NOT exact at {}: {}; nearest exact sizes: {nearest}",
                self.input_size,
                culprits.join(", ")
            )
        }
    }
}
