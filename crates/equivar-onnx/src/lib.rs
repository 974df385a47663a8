//! Audit of models written by other frameworks (DESIGN.md 2.10): read any ONNX graph, plan
//! the exactness of its sampling grids at the size each window sees ([`OnnxPlan`]), and
//! measure its invariance error under the quarter turns and mirrors of the pixel grid by
//! running it ([`check`], on tract, a pure-Rust ONNX runtime).
//!
//! ```no_run
//! use equivar_onnx::{OnnxModel, OnnxPlan};
//! let model = OnnxModel::open("resnet-32.onnx")?;
//! let plan = OnnxPlan::new(&model, None)?;
//! println!("{plan}");
//! let measured = equivar_onnx::check(&model, "c4".parse()?, None, 4, 0)?;
//! println!("{measured}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod audit;
mod error;
mod measure;
mod model;

pub use audit::{OnnxPlan, UnanalysedNode, WindowAudit};
pub use error::{OnnxError, Result};
pub use measure::{ElementError, MAX_IMAGES, OnnxCheck, check};
pub use model::{Dim, ImageInput, MAX_INPUT_SIZE, OnnxModel};
