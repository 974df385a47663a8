//! Model descriptions: a serializable list of named layers over an input field type. A spec
//! holds no tensors, so it can be planned (see [`crate::plan`]) before anything is allocated.

mod file;

use serde::{Deserialize, Serialize};

use crate::field::FieldType;
use crate::group::Group;
use crate::space::Window;

/// A reduction: over the group axis (group pooling) or over a window (spatial pooling).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduce {
    Max,
    Mean,
}

/// Pointwise nonlinearities. On trivial and regular fields every pointwise function is
/// equivariant, because the group only moves pixels and permutes channels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    LeakyRelu { negative_slope: f64 },
    Elu { alpha: f64 },
    Tanh,
    Sigmoid,
}

/// What a layer does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LayerKind {
    /// Z2 -> G convolution: trivial input fields to regular output fields.
    LiftingConv {
        out_fields: usize,
        window: Window,
        bias: bool,
    },
    /// G -> G convolution: regular fields to regular fields.
    GroupConv {
        out_fields: usize,
        window: Window,
        bias: bool,
    },
    /// Spatial max pooling, channel by channel.
    MaxPool { window: Window },
    /// Spatial average pooling, channel by channel (padding counts as zeros).
    AvgPool { window: Window },
    /// Mean over all pixels: `n x n -> 1 x 1`.
    GlobalAvgPool,
    /// Max or mean over the group axis of each regular field: regular -> trivial fields.
    GroupPool { reduce: Reduce },
    /// Batch norm with statistics, scale and shift shared over the group axis of each field.
    BatchNorm { epsilon: f64, momentum: f64 },
    /// A pointwise nonlinearity.
    Activation { function: Activation },
    /// Drops whole fields (all their components and pixels) with probability `p` in training.
    FieldDropout { p: f64 },
    /// A linear map on invariant (trivial) features of size 1x1: the classifier head.
    Linear { out_features: usize, bias: bool },
}

impl LayerKind {
    /// A short name for tables.
    pub fn label(&self) -> &'static str {
        match self {
            LayerKind::LiftingConv { .. } => "lifting_conv",
            LayerKind::GroupConv { .. } => "group_conv",
            LayerKind::MaxPool { .. } => "max_pool",
            LayerKind::AvgPool { .. } => "avg_pool",
            LayerKind::GlobalAvgPool => "global_avg_pool",
            LayerKind::GroupPool { .. } => "group_pool",
            LayerKind::BatchNorm { .. } => "batch_norm",
            LayerKind::Activation { .. } => "activation",
            LayerKind::FieldDropout { .. } => "field_dropout",
            LayerKind::Linear { .. } => "linear",
        }
    }

    /// The sliding window, for the layers that subsample the grid.
    pub fn window(&self) -> Option<Window> {
        match self {
            LayerKind::LiftingConv { window, .. }
            | LayerKind::GroupConv { window, .. }
            | LayerKind::MaxPool { window }
            | LayerKind::AvgPool { window } => Some(*window),
            _ => None,
        }
    }
}

/// One named layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerSpec {
    pub name: String,
    #[serde(flatten)]
    pub kind: LayerKind,
}

/// A sequential model: an input type and its layers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetSpec {
    pub name: String,
    pub input: FieldType,
    pub layers: Vec<LayerSpec>,
}

impl NetSpec {
    /// An empty model over `input` (e.g. `FieldType::trivial(Group::cyclic(4), 1)` for
    /// grey images and p4).
    pub fn new(name: impl Into<String>, input: FieldType) -> Self {
        NetSpec {
            name: name.into(),
            input,
            layers: Vec::new(),
        }
    }

    /// The group of the model.
    pub fn group(&self) -> Group {
        self.input.group
    }

    /// Appends a layer named `name`.
    pub fn push(mut self, name: impl Into<String>, kind: LayerKind) -> Self {
        self.layers.push(LayerSpec {
            name: name.into(),
            kind,
        });
        self
    }

    /// Appends a layer named `<prefix><k>`, `k` counting the layers of that prefix so far.
    fn push_numbered(self, prefix: &str, kind: LayerKind) -> Self {
        let k = 1 + self
            .layers
            .iter()
            .filter(|l| {
                l.name
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.parse::<usize>().is_ok())
            })
            .count();
        self.push(format!("{prefix}{k}"), kind)
    }

    pub fn lifting_conv(self, out_fields: usize, window: Window) -> Self {
        self.push_numbered(
            "conv",
            LayerKind::LiftingConv {
                out_fields,
                window,
                bias: true,
            },
        )
    }

    pub fn group_conv(self, out_fields: usize, window: Window) -> Self {
        self.push_numbered(
            "conv",
            LayerKind::GroupConv {
                out_fields,
                window,
                bias: true,
            },
        )
    }

    pub fn max_pool(self, window: Window) -> Self {
        self.push_numbered("pool", LayerKind::MaxPool { window })
    }

    pub fn avg_pool(self, window: Window) -> Self {
        self.push_numbered("pool", LayerKind::AvgPool { window })
    }

    pub fn global_avg_pool(self) -> Self {
        self.push("global_avg_pool", LayerKind::GlobalAvgPool)
    }

    pub fn group_pool(self, reduce: Reduce) -> Self {
        self.push("group_pool", LayerKind::GroupPool { reduce })
    }

    /// Batch norm with PyTorch's defaults (epsilon 1e-5, momentum 0.1).
    pub fn batch_norm(self) -> Self {
        self.push_numbered(
            "bn",
            LayerKind::BatchNorm {
                epsilon: 1e-5,
                momentum: 0.1,
            },
        )
    }

    pub fn relu(self) -> Self {
        self.activation(Activation::Relu)
    }

    pub fn activation(self, function: Activation) -> Self {
        self.push_numbered("act", LayerKind::Activation { function })
    }

    pub fn field_dropout(self, p: f64) -> Self {
        self.push_numbered("dropout", LayerKind::FieldDropout { p })
    }

    pub fn linear(self, out_features: usize) -> Self {
        self.push(
            "fc",
            LayerKind::Linear {
                out_features,
                bias: true,
            },
        )
    }
}
