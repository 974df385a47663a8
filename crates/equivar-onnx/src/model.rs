//! An ONNX file, read and checked: every node's operator is one the runtime implements, every
//! value a node reads is defined, and the graph takes one image `[batch, channels, h, w]`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::pb;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as DimValue;
use tract_onnx::prelude::*;

use crate::error::{OnnxError, Result};

/// The largest image side equivar audits: far beyond real inputs, small enough that the shape
/// arithmetic of any graph stays in range.
pub const MAX_INPUT_SIZE: usize = 1 << 16;

/// One axis of the graph's input: fixed by the export, or a named (dynamic) dimension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    Dynamic(String),
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Dynamic(name) if name.is_empty() => write!(f, "?"),
            Dim::Dynamic(name) => write!(f, "{name}"),
        }
    }
}

/// The graph's image input.
#[derive(Clone, Debug)]
pub struct ImageInput {
    pub name: String,
    pub batch: Dim,
    pub channels: usize,
    pub height: Dim,
    pub width: Dim,
}

/// A checked ONNX model.
#[derive(Clone, Debug)]
pub struct OnnxModel {
    path: PathBuf,
    proto: pb::ModelProto,
    /// tract's model of the graph, with no input size yet.
    parsed: InferenceModel,
    pub input: ImageInput,
}

impl OnnxModel {
    /// Reads and checks the ONNX file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|source| OnnxError::Read {
            path: path.clone(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Checks an ONNX model held in memory; `path` names it in messages and locates external
    /// weight files.
    pub fn from_bytes(bytes: &[u8], path: PathBuf) -> Result<Self> {
        let corrupt = |problem: String| OnnxError::Corrupt {
            path: path.clone(),
            problem,
        };
        let proto = pb::ModelProto::decode(bytes).map_err(|e| corrupt(e.to_string()))?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| corrupt("it holds no graph".into()))?;
        check_wiring(graph).map_err(corrupt)?;
        check_operators(graph)?;
        let input = image_input(graph)?;
        // Shapes recorded in the file for inner values and outputs are ignored: they hold
        // only at the size the graph was exported at.
        let dir = path.parent().and_then(|p| p.to_str());
        let parsed = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .with_ignore_output_shapes(true)
            .parse(&proto, dir)
            .map_err(|e| corrupt(chain(&e)))?;
        if let Some(name) = parsed.unresolved_inputs.first() {
            return Err(corrupt(format!(
                "the value `{name}` is read but never defined"
            )));
        }
        Ok(OnnxModel {
            path,
            proto,
            parsed: parsed.model,
            input,
        })
    }

    /// The file's name, for reports.
    pub fn name(&self) -> String {
        self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// Who wrote the file (`pytorch 2.5.1`), if it says.
    pub fn producer(&self) -> String {
        format!(
            "{} {}",
            self.proto.producer_name, self.proto.producer_version
        )
        .trim()
        .to_string()
    }

    pub(crate) fn graph(&self) -> &pb::GraphProto {
        self.proto.graph.as_ref().expect("checked in from_bytes")
    }

    /// The image side to audit: `requested`, or the size fixed in the graph.
    pub fn resolve_size(&self, requested: Option<usize>) -> Result<usize> {
        let input = &self.input;
        if let Some(size) = requested {
            if !(1..=MAX_INPUT_SIZE).contains(&size) {
                return Err(OnnxError::InputSize {
                    size,
                    why: format!("equivar audits images of 1 to {MAX_INPUT_SIZE} pixels a side"),
                });
            }
            return Ok(size);
        }
        match (&input.height, &input.width) {
            (Dim::Fixed(h), Dim::Fixed(w)) if h == w => Ok(*h),
            (Dim::Fixed(h), Dim::Fixed(w)) => Err(OnnxError::NotSquare {
                name: input.name.clone(),
                height: *h,
                width: *w,
            }),
            (h, w) => Err(OnnxError::DynamicSize {
                name: input.name.clone(),
                height: h.to_string(),
                width: w.to_string(),
            }),
        }
    }

    /// The graph as tract's inference model with the input fixed to `[batch, channels, n, n]`
    /// (a copy of the one parsed once; its weights are shared).
    pub(crate) fn inference_model(&self, batch: usize, size: usize) -> Result<InferenceModel> {
        let mut model = self.parsed.clone();
        let fact = f32::fact([batch, self.input.channels, size, size]);
        model
            .set_input_fact(0, fact.into())
            .map_err(|e| self.shape_error(size, e))?;
        Ok(model)
    }

    /// A failure of shape inference or optimisation at `size`, with the likely cause when the
    /// graph was exported at another size.
    pub(crate) fn shape_error(&self, size: usize, e: TractError) -> OnnxError {
        let traced = match (&self.input.height, &self.input.width) {
            (Dim::Fixed(h), Dim::Fixed(w)) if (*h, *w) != (size, size) => format!(
                " (the graph was exported at {h} x {w} and may hold shapes fixed at that size: \
                 audit it there, or export it with dynamic spatial axes)"
            ),
            _ => String::new(),
        };
        OnnxError::Shapes {
            size,
            problem: format!("{}{traced}", chain(&e)),
        }
    }

    /// The batch the graph takes: its fixed batch, else `wanted`.
    pub(crate) fn batch(&self, wanted: usize) -> usize {
        match self.input.batch {
            Dim::Fixed(b) => b,
            Dim::Dynamic(_) => wanted,
        }
    }
}

/// An error with its causes, on one line.
pub(crate) fn chain(e: &TractError) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// Every value a node reads or the graph returns is an input, an initializer or an earlier
/// node's output (a truncated file loses the tail of this list).
fn check_wiring(graph: &pb::GraphProto) -> std::result::Result<(), String> {
    let mut defined: HashSet<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
    defined.extend(graph.initializer.iter().map(|t| t.name.as_str()));
    for node in &graph.node {
        // Sub-graphs (If, Loop) may read outer values defined later; tract checks those.
        // Sub-graphs (If, Loop) may read outer values defined later; tract checks those.
        let reads_outer_scope = node
            .attribute
            .iter()
            .any(|a| a.g.is_some() || !a.graphs.is_empty());
        if let Some(missing) = node
            .input
            .iter()
            .find(|i| !i.is_empty() && !defined.contains(i.as_str()))
            .filter(|_| !reads_outer_scope)
        {
            return Err(format!(
                "node `{}` ({}) reads `{missing}`, which no input, initializer or earlier node \
                 defines",
                node_name(node),
                node.op_type
            ));
        }
        defined.extend(node.output.iter().map(String::as_str));
    }
    if graph.output.is_empty() {
        return Err("the graph has no outputs".into());
    }
    if let Some(missing) = graph
        .output
        .iter()
        .find(|o| !defined.contains(o.name.as_str()))
    {
        return Err(format!("the output `{}` is never computed", missing.name));
    }
    Ok(())
}

fn check_operators(graph: &pb::GraphProto) -> Result<()> {
    let known = tract_onnx::onnx().op_register;
    match graph
        .node
        .iter()
        .find(|n| !known.0.contains_key(&n.op_type))
    {
        Some(node) => Err(OnnxError::UnsupportedOperator {
            node: node_name(node),
            op: node.op_type.clone(),
            domain: match node.domain.as_str() {
                "" | "ai.onnx" => String::new(),
                d => format!(" (domain `{d}`)"),
            },
        }),
        None => Ok(()),
    }
}

/// A node's name as tract names it: its own, else its first output's.
pub(crate) fn node_name(node: &pb::NodeProto) -> String {
    if !node.name.is_empty() {
        node.name.clone()
    } else {
        node.output.first().cloned().unwrap_or_default()
    }
}

fn image_input(graph: &pb::GraphProto) -> Result<ImageInput> {
    let initialized: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initialized.contains(i.name.as_str()))
        .collect();
    let [input] = inputs[..] else {
        return Err(OnnxError::InputCount {
            count: inputs.len(),
            names: inputs
                .iter()
                .map(|i| format!("`{}`", i.name))
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let name = input.name.clone();
    let Some(pb::type_proto::Value::TensorType(tensor)) =
        input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(OnnxError::InputShape {
            name,
            shape: "no tensor type".into(),
        });
    };
    let float = pb::tensor_proto::DataType::Float as i32;
    if tensor.elem_type != float {
        let found = pb::tensor_proto::DataType::try_from(tensor.elem_type)
            .map_or_else(|_| format!("#{}", tensor.elem_type), |t| format!("{t:?}"));
        return Err(OnnxError::InputType { name, found });
    }
    let dims: Vec<Dim> = tensor
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(DimValue::DimValue(v)) if *v >= 0 => Dim::Fixed(*v as usize),
                    Some(DimValue::DimParam(p)) => Dim::Dynamic(p.clone()),
                    _ => Dim::Dynamic(String::new()),
                })
                .collect()
        })
        .unwrap_or_default();
    let [batch, channels, height, width] = &dims[..] else {
        return Err(OnnxError::InputShape {
            name,
            shape: format!(
                "[{}]",
                dims.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    };
    let channels = match channels {
        Dim::Fixed(c) if *c > 0 => *c,
        other => {
            return Err(OnnxError::DynamicChannels {
                name,
                dim: other.to_string(),
            });
        }
    };
    Ok(ImageInput {
        name,
        batch: batch.clone(),
        channels,
        height: height.clone(),
        width: width.clone(),
    })
}
