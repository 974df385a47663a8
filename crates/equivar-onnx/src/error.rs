//! What can go wrong reading, planning or running an ONNX model, each naming the fix.

use std::path::PathBuf;

pub type Result<T, E = OnnxError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "`{path}` is not a readable ONNX model ({problem}); the file may be truncated or \
         corrupt: export it again (e.g. torch.onnx.export) or copy it again"
    )]
    Corrupt { path: PathBuf, problem: String },
    #[error(
        "node `{node}` uses the operator `{op}`{domain}, which equivar's ONNX runtime (tract \
         0.23) does not implement; export the model with standard ONNX operators (opset 9-18) \
         instead"
    )]
    UnsupportedOperator {
        node: String,
        op: String,
        domain: String,
    },
    #[error(
        "the model takes {count} inputs ({names}); equivar audits image models with one input \
         [batch, channels, height, width]"
    )]
    InputCount { count: usize, names: String },
    #[error(
        "input `{name}` has shape {shape}; equivar audits image models whose input is \
         [batch, channels, height, width]"
    )]
    InputShape { name: String, shape: String },
    #[error(
        "input `{name}` has a dynamic spatial size ({height} x {width}); pass --input-size N to \
         audit it on N x N images"
    )]
    DynamicSize {
        name: String,
        height: String,
        width: String,
    },
    #[error(
        "input `{name}` is {height} x {width}; quarter turns and mirrors map only square images \
         to themselves: pass --input-size N to audit it on N x N images"
    )]
    NotSquare {
        name: String,
        height: usize,
        width: usize,
    },
    #[error(
        "input `{name}` has a dynamic channel count (`{dim}`); equivar needs it fixed in the \
         graph (export with a fixed channel axis)"
    )]
    DynamicChannels { name: String, dim: String },
    #[error("input `{name}` is of type {found}; equivar audits models with float32 inputs")]
    InputType { name: String, found: String },
    #[error("--input-size {size} is out of range: {why}")]
    InputSize { size: usize, why: String },
    #[error("the model does not run on {size} x {size} inputs: {problem}")]
    Shapes { size: usize, problem: String },
    #[error("node `{node}` ({op}): {problem}")]
    Node {
        node: String,
        op: String,
        problem: String,
    },
    #[error("running the model failed: {0}")]
    Run(String),
    #[error(
        "the model's output `{name}` is {found}; the invariance check needs a float32 output \
         (logits, or [batch, channels, n, n] feature maps)"
    )]
    Output { name: String, found: String },
    #[error(
        "group `{group}` does not map the pixel grid to itself; use c1, c2, c4, d1, d2 or d4 \
         (e.g. --group c4)"
    )]
    Group { group: String },
    #[error("--images must be in 1..=1024, got {0}")]
    Images(usize),
}
