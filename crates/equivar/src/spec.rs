//! Model descriptions: a serializable list of named layers over an input field type. A spec
//! holds no tensors, so it can be planned (see [`crate::plan`]) before anything is allocated.

mod file;

use serde::{Deserialize, Serialize};

use crate::field::{FeatureType, FieldType};
use crate::group::{Group, PlanarGroup};
pub use crate::layers::LayerKind;
use crate::layers::{
    AvgPool, BatchNorm, BlurPool, FieldDropout, FourierNonlinearity, GatedNonlinearity,
    GlobalAvgPool, GroupConv, GroupPool, LiftingConv, Linear, MaxPool, Nonlinearity, NormMaxPool,
    NormNonlinearity, NormPool, R2Conv, Restrict, Upsample,
};
use crate::nn::NormFunction;
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

/// Where a model's feature maps live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    /// Square images `n x n`; the input size is `n`.
    #[default]
    Plane,
    /// Equiangular grids of `nlat x 2 nlat` points on the sphere (poles included); the input
    /// size is `nlat`. Channels are scalar fields (group C1); the symmetries are rotations of
    /// the sphere, exact for rotations about the polar axis by whole longitude steps.
    Sphere,
}

impl Domain {
    pub fn is_plane(&self) -> bool {
        *self == Domain::Plane
    }

    /// `[height, width]` of a feature map of size `size`.
    pub fn shape(self, size: usize) -> [usize; 2] {
        match self {
            Domain::Plane => [size, size],
            Domain::Sphere => [size, size.saturating_mul(2)],
        }
    }

    /// Points of a feature map of size `size`, in f64 (no overflow for any planned size).
    pub fn points(self, size: usize) -> f64 {
        let [h, w] = self.shape(size);
        h as f64 * w as f64
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
    /// Plane (the default, left out of files) or sphere.
    #[serde(default, skip_serializing_if = "Domain::is_plane")]
    pub domain: Domain,
    pub input: FeatureType,
    pub layers: Vec<LayerSpec>,
}

impl NetSpec {
    /// An empty model over `input` (e.g. `FieldType::trivial(Group::cyclic(4), 1)` for
    /// grey images and p4, or the feature type `C8: trivial`).
    pub fn new(name: impl Into<String>, input: impl Into<FeatureType>) -> Self {
        NetSpec {
            name: name.into(),
            domain: Domain::Plane,
            input: input.into(),
            layers: Vec::new(),
        }
    }

    /// An empty model on the sphere over `channels` scalar input channels.
    pub fn sphere(name: impl Into<String>, channels: usize) -> Self {
        NetSpec {
            domain: Domain::Sphere,
            ..NetSpec::new(name, FieldType::trivial(Group::trivial(), channels))
        }
    }

    /// The group of the model.
    pub fn group(&self) -> PlanarGroup {
        self.input.group
    }

    /// Appends a layer named `name`.
    pub fn push(mut self, name: impl Into<String>, kind: impl Into<LayerKind>) -> Self {
        self.layers.push(LayerSpec {
            name: name.into(),
            kind: kind.into(),
        });
        self
    }

    /// Appends a layer named `<prefix><k>`, `k` counting the layers of that prefix so far.
    fn push_numbered(self, prefix: &str, kind: impl Into<LayerKind>) -> Self {
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
            LiftingConv {
                out_fields,
                window,
                bias: true,
            },
        )
    }

    pub fn group_conv(self, out_fields: usize, window: Window) -> Self {
        self.push_numbered(
            "conv",
            GroupConv {
                out_fields,
                window,
                bias: true,
            },
        )
    }

    /// A steerable conv to the type `out` (its terms, e.g. `"8x regular + irrep(1)"`, or
    /// the whole type), with bias and escnn's default rings.
    pub fn r2_conv(self, out: &str, window: Window) -> Self {
        self.push_numbered(
            "conv",
            R2Conv {
                out: out.to_string(),
                window,
                bias: true,
                rings: None,
            },
        )
    }

    /// Reads the features from here on as a feature type of `subgroup` (e.g. `"C16"`).
    pub fn restrict(self, subgroup: &str) -> Self {
        self.push_numbered(
            "restrict",
            Restrict {
                subgroup: subgroup.to_string(),
            },
        )
    }

    /// For each field and window, the field's vector of largest norm (any representation).
    pub fn norm_max_pool(self, window: Window) -> Self {
        self.push_numbered("pool", NormMaxPool { window })
    }

    /// A Gaussian blur of `sigma` pixels at `stride` (antialiased average pooling).
    pub fn blur_pool(self, sigma: f64, stride: usize) -> Self {
        self.push_numbered("pool", BlurPool { sigma, stride })
    }

    /// Bilinear upsampling by `scale` (half-pixel sampling).
    pub fn upsample(self, scale: usize) -> Self {
        self.push_numbered(
            "upsample",
            Upsample {
                scale,
                align_corners: false,
            },
        )
    }

    pub fn max_pool(self, window: Window) -> Self {
        self.push_numbered("pool", MaxPool { window })
    }

    pub fn avg_pool(self, window: Window) -> Self {
        self.push_numbered("pool", AvgPool { window })
    }

    pub fn global_avg_pool(self) -> Self {
        self.push("global_avg_pool", GlobalAvgPool {})
    }

    pub fn group_pool(self, reduce: Reduce) -> Self {
        self.push("group_pool", GroupPool { reduce })
    }

    /// Batch norm with PyTorch's defaults (epsilon 1e-5, momentum 0.1).
    pub fn batch_norm(self) -> Self {
        self.push_numbered(
            "bn",
            BatchNorm {
                epsilon: 1e-5,
                momentum: 0.1,
            },
        )
    }

    pub fn relu(self) -> Self {
        self.activation(Activation::Relu)
    }

    pub fn activation(self, function: Activation) -> Self {
        self.push_numbered("act", Nonlinearity { function })
    }

    /// Norm-ReLU on every field, with a learned threshold per field.
    pub fn norm_relu(self) -> Self {
        self.push_numbered(
            "act",
            NormNonlinearity {
                function: NormFunction::NormRelu,
                bias: true,
            },
        )
    }

    /// Squash on every field: its norm `n` becomes `n^2 / (1 + n^2)`.
    pub fn squash(self) -> Self {
        self.push_numbered(
            "act",
            NormNonlinearity {
                function: NormFunction::Squash,
                bias: false,
            },
        )
    }

    /// Gates every field by the sigmoid of a trivial gate field; the gates are the input's
    /// last term (see [`GatedNonlinearity`]).
    pub fn gated(self) -> Self {
        self.push_numbered("gate", GatedNonlinearity {})
    }

    /// `function` on the samples of every regular(L) (or regular, trivial) field, with the
    /// default number of samples for the band limit.
    pub fn fourier(self, function: Activation) -> Self {
        self.push_numbered(
            "act",
            FourierNonlinearity {
                function,
                samples: None,
            },
        )
    }

    /// The norm of every field, as invariant fields.
    pub fn norm_pool(self) -> Self {
        self.push("norm_pool", NormPool {})
    }

    pub fn field_dropout(self, p: f64) -> Self {
        self.push_numbered("dropout", FieldDropout { p })
    }

    /// A DISCO convolution on the sphere to `out_channels` channels, dividing the grid by
    /// `downsample` (1 keeps it), with `basis` on a cap of `cutoff_spacings` latitude spacings
    /// of the output grid.
    pub fn disco_conv(
        self,
        out_channels: usize,
        downsample: usize,
        basis: crate::kernels::FilterBasis,
        cutoff_spacings: f64,
    ) -> Self {
        self.push_numbered(
            "disco",
            crate::layers::DiscoConv {
                out_channels,
                downsample,
                basis,
                cutoff_spacings,
                bias: true,
            },
        )
    }

    pub fn linear(self, out_features: usize) -> Self {
        self.push(
            "fc",
            Linear {
                out_features,
                bias: true,
            },
        )
    }
}
