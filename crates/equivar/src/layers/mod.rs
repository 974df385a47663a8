//! The layer contract. Every layer kind lives in one file of this module and says, in one
//! place, everything the library does with it:
//!
//! - [`LayerRule`], on its description (the serializable part of a [`crate::spec::NetSpec`]):
//!   its plan rule (output type, size and exactness from the input type and size, with a
//!   clear error for an input it cannot take) and its construction as a burn module;
//! - [`LayerModule`], on the burn module it builds: forward, export to plain burn layers and
//!   lowering to the frozen model (each may be a clear [`EquivarError::NoLowering`]), and
//!   optionally a forward fused with the next layer (batch norm then ReLU in training).
//!
//! [`crate::plan`], [`crate::check`], [`crate::export`], [`crate::frozen`] and [`Net`] only
//! delegate. A new layer kind is one file here plus one line in each of the two registries
//! below: [`LayerKind`] (the description's `kind` tag) and [`Layer`] (the module; burn's
//! `Module` derive needs the closed set of module types for records and autodiff).
//!
//! [`Net`]: crate::nn::Net

/// Implements [`LayerModule`] for a conv module whose learned parameters expand to a plain
/// conv2d filter (`expanded_filter`, `expanded_bias`) over `geometry.window`, run by
/// `geometry.kernels`: export is that plain conv, the frozen model caches the expansion.
macro_rules! expanded_conv_module {
    ($module:ty) => {
        impl $crate::layers::LayerModule for $module {
            fn forward(&self, x: burn::tensor::Tensor<4>) -> burn::tensor::Tensor<4> {
                <$module>::forward(self, x)
            }

            fn export(&self) -> $crate::error::Result<Option<$crate::export::PlainLayer>> {
                Ok(Some($crate::export::PlainLayer::Conv(
                    $crate::export::plain_conv(
                        self.expanded_filter(),
                        self.expanded_bias(),
                        self.geometry.window,
                    ),
                )))
            }

            fn lower(
                &self,
                frozen: &mut $crate::frozen::FrozenBuilder,
            ) -> $crate::error::Result<()> {
                frozen.conv(
                    self.expanded_filter(),
                    self.expanded_bias(),
                    self.geometry.window,
                    self.geometry.grid_elements(),
                );
                Ok(())
            }

            fn set_kernels(&mut self, kernels: $crate::ops::Kernels) {
                self.geometry.kernels = kernels;
            }
        }
    };
}

mod activation;
mod batch_norm;
mod blur_pool;
mod disco_conv;
mod equivariant_resample;
mod field_dropout;
mod fourier_nonlinearity;
mod gated_nonlinearity;
mod global_avg_pool;
mod group_conv;
mod group_pool;
mod lifting_conv;
mod linear;
mod norm_max_pool;
mod norm_nonlinearity;
mod norm_pool;
mod r2_conv;
mod restrict;
mod spatial_pool;
mod upsample;

pub use activation::Nonlinearity;
pub use batch_norm::BatchNorm;
pub use blur_pool::BlurPool;
pub use disco_conv::DiscoConv;
pub use equivariant_resample::{EquivariantSubsample, EquivariantUpsample};
pub use field_dropout::FieldDropout;
pub use fourier_nonlinearity::FourierNonlinearity;
pub use gated_nonlinearity::GatedNonlinearity;
pub use global_avg_pool::GlobalAvgPool;
pub use group_conv::GroupConv;
pub use group_pool::GroupPool;
pub use lifting_conv::LiftingConv;
pub use linear::Linear;
pub use norm_max_pool::NormMaxPool;
pub use norm_nonlinearity::NormNonlinearity;
pub use norm_pool::NormPool;
pub use r2_conv::R2Conv;
pub use restrict::{Restrict, Restriction};
pub use spatial_pool::{AvgPool, MaxPool};
pub use upsample::Upsample;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{EquivarError, Result};
use crate::export::PlainLayer;
use crate::field::{FeatureType, FieldType, Repr};
use crate::frozen::FrozenBuilder;
use crate::nn;
use crate::ops::Kernels;
use crate::plan::LayerPlan;
use crate::space::Window;
use crate::spec::Domain;

/// What a layer's plan rule sees: its name, its input's type and size, and the model's input
/// size (for error messages).
#[derive(Clone, Copy, Debug)]
pub struct PlanInput<'a> {
    pub layer: &'a str,
    pub domain: Domain,
    pub in_type: &'a FeatureType,
    pub in_size: usize,
    pub input_size: usize,
}

/// What a layer's plan rule decides.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanStep {
    pub out_type: FeatureType,
    pub out_size: usize,
    /// `(n + 2p - d(k-1) - 1) mod s` for windowed layers.
    pub remainder: Option<usize>,
    /// Exactly equivariant at this input size.
    pub exact: bool,
}

impl PlanStep {
    /// A layer that keeps size and type and is always exact.
    pub fn same(input: &PlanInput) -> Self {
        PlanStep {
            out_type: input.in_type.clone(),
            out_size: input.in_size,
            remainder: None,
            exact: true,
        }
    }
}

/// The description side of a layer kind: its plan rule and its construction.
pub trait LayerRule {
    /// The sliding window, for layers that subsample the grid (the plan's exactness search
    /// and its error messages use it).
    fn window(&self) -> Option<Window> {
        None
    }

    /// Output type, size and exactness at `input`, or the error naming the problem.
    fn plan(&self, input: &PlanInput) -> Result<PlanStep>;

    /// The burn module, for the types and sizes of its `plan`.
    fn build(&self, plan: &LayerPlan, device: &Device) -> Result<Layer>;
}

/// The module side of a layer kind.
pub trait LayerModule {
    fn forward(&self, x: Tensor<4>) -> Tensor<4>;

    /// The plain burn layer with the same inference output; `None` for the identity (e.g.
    /// dropout).
    fn export(&self) -> Result<Option<PlainLayer>>;

    /// Appends this layer's steps to a frozen model.
    fn lower(&self, frozen: &mut FrozenBuilder) -> Result<()>;

    /// The batch statistics, for the layers that keep them (precise batch norm recalibration
    /// and the trainable-parameter count use them).
    fn batch_norm(&self) -> Option<&dyn BatchStatistics> {
        None
    }

    /// Chooses which implementation runs this layer's heavy ops (convolution, training-mode
    /// batch norm, max pooling, DISCO); layers without such ops ignore it.
    fn set_kernels(&mut self, _kernels: Kernels) {}

    /// This layer and `next` run as one op on `x`, where that is faster and gives the same
    /// output (training-mode batch norm then ReLU); `None` runs them one by one.
    fn forward_fused(&self, _next: &Layer, _x: &Tensor<4>) -> Option<Tensor<4>> {
        None
    }
}

/// A layer that normalises by batch statistics and keeps running ones for inference.
pub trait BatchStatistics {
    /// `x` normalised by its own batch statistics (as in training, the running statistics
    /// untouched), and those statistics as moments that average linearly over batches
    /// (weighted by their images).
    fn batch_moments(&self, x: Tensor<4>) -> (Tensor<4>, Vec<Tensor<1>>);

    /// Sets the running statistics from moments averaged over a whole data set.
    fn set_from_moments(&self, moments: Vec<Tensor<1>>);

    /// Entries of the running statistics (burn counts them as parameters; they are not
    /// trained).
    fn running_len(&self) -> usize;
}

/// Declares the description registry: the `kind`-tagged enum of every layer description,
/// dispatching [`LayerRule`] to the variant's type.
macro_rules! layer_kinds {
    ($($variant:ident($rule:ty) = $label:literal,)*) => {
        /// What a layer does: one variant per layer kind, each that kind's description.
        /// Serialized with a `kind` tag (`"kind": "group_conv"`) next to the fields.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        pub enum LayerKind {
            $($variant($rule),)*
        }

        impl LayerKind {
            /// A short name for tables (the `kind` tag).
            pub fn label(&self) -> &'static str {
                match self {
                    $(LayerKind::$variant(_) => $label,)*
                }
            }

            fn rule(&self) -> &dyn LayerRule {
                match self {
                    $(LayerKind::$variant(rule) => rule,)*
                }
            }
        }

        $(impl From<$rule> for LayerKind {
            fn from(rule: $rule) -> Self {
                LayerKind::$variant(rule)
            }
        })*
    };
}

layer_kinds! {
    LiftingConv(LiftingConv) = "lifting_conv",
    GroupConv(GroupConv) = "group_conv",
    MaxPool(MaxPool) = "max_pool",
    AvgPool(AvgPool) = "avg_pool",
    GlobalAvgPool(GlobalAvgPool) = "global_avg_pool",
    GroupPool(GroupPool) = "group_pool",
    BatchNorm(BatchNorm) = "batch_norm",
    Activation(Nonlinearity) = "activation",
    FieldDropout(FieldDropout) = "field_dropout",
    Linear(Linear) = "linear",
    DiscoConv(DiscoConv) = "disco_conv",
    R2Conv(R2Conv) = "r2_conv",
    Restrict(Restrict) = "restrict",
    NormNonlinearity(NormNonlinearity) = "norm_nonlinearity",
    GatedNonlinearity(GatedNonlinearity) = "gated_nonlinearity",
    NormPool(NormPool) = "norm_pool",
    FourierNonlinearity(FourierNonlinearity) = "fourier_nonlinearity",
    NormMaxPool(NormMaxPool) = "norm_max_pool",
    BlurPool(BlurPool) = "blur_pool",
    Upsample(Upsample) = "upsample",
    EquivariantSubsample(EquivariantSubsample) = "equivariant_subsample",
    EquivariantUpsample(EquivariantUpsample) = "equivariant_upsample",
}

impl LayerKind {
    /// The sliding window, for the layers that subsample the grid.
    pub fn window(&self) -> Option<Window> {
        self.rule().window()
    }

    /// The layer's plan rule.
    pub fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        self.rule().plan(input)
    }

    /// The layer's module, for the types and sizes of its `plan`.
    pub fn build(&self, plan: &LayerPlan, device: &Device) -> Result<Layer> {
        self.rule().build(plan, device)
    }
}

/// Declares the module registry: the burn module enum, dispatching [`LayerModule`].
macro_rules! layer_modules {
    ($($variant:ident($module:ty),)*) => {
        /// Any equivar layer module. (Variant names are part of saved checkpoints.)
        #[derive(Module, Debug)]
        pub enum Layer {
            $($variant($module),)*
        }

        impl Layer {
            fn module(&self) -> &dyn LayerModule {
                match self {
                    $(Layer::$variant(m) => m,)*
                }
            }

            fn module_mut(&mut self) -> &mut dyn LayerModule {
                match self {
                    $(Layer::$variant(m) => m,)*
                }
            }
        }
    };
}

layer_modules! {
    LiftingConv(nn::LiftingConv2d),
    GroupConv(nn::GroupConv2d),
    SpatialPool(nn::SpatialPool),
    GlobalAvgPool(nn::GlobalAvgPool),
    GroupPool(nn::GroupPool),
    BatchNorm(nn::EquivariantBatchNorm),
    Activation(nn::Pointwise),
    Dropout(nn::FieldDropout),
    Linear(nn::InvariantLinear),
    Disco(nn::DiscoConvS2),
    R2Conv(nn::R2Conv2d),
    Restrict(Restriction),
    NormNonlinearity(nn::NormNonlinearity),
    Gated(nn::GatedNonlinearity),
    NormPool(nn::NormPool),
    Fourier(nn::FourierPointwise),
    IidBatchNorm(nn::IidBatchNorm),
    NormMaxPool(nn::NormMaxPool),
    BlurPool(nn::BlurPool),
    Upsample(nn::Upsample),
    CanonicalResample(nn::CanonicalResample),
}

impl Layer {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.module().forward(x)
    }

    /// This layer and `next` as one op, where they fuse (see [`LayerModule::forward_fused`]).
    pub fn forward_fused(&self, next: &Layer, x: &Tensor<4>) -> Option<Tensor<4>> {
        self.module().forward_fused(next, x)
    }

    pub fn export(&self) -> Result<Option<PlainLayer>> {
        self.module().export()
    }

    pub fn lower(&self, frozen: &mut FrozenBuilder) -> Result<()> {
        self.module().lower(frozen)
    }

    pub fn batch_norm(&self) -> Option<&dyn BatchStatistics> {
        self.module().batch_norm()
    }

    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.module_mut().set_kernels(kernels)
    }
}

// Helpers shared by the plan rules.

pub(crate) fn invalid(layer: &str, reason: impl Into<String>) -> EquivarError {
    EquivarError::InvalidLayer {
        layer: layer.to_string(),
        reason: reason.into(),
    }
}

/// The input as G-CNN fields of representation `repr` (a finite group acting on the pixel
/// grid); otherwise the mismatch error with `fix`.
pub(crate) fn expect_repr(input: &PlanInput, repr: Repr, fix: &str) -> Result<FieldType> {
    let expected = match repr {
        Repr::Trivial => "trivial (invariant) fields",
        Repr::Regular => "regular fields",
    };
    if let Some(t) = input.in_type.field_type().filter(|t| t.repr == repr) {
        return Ok(t);
    }
    Err(EquivarError::FieldTypeMismatch {
        layer: input.layer.to_string(),
        expected: expected.to_string(),
        found: input.in_type.to_string(),
        fix: fix.to_string(),
    })
}

/// `Ok` on the plane; on the sphere the error naming the layer: its windows slide over a
/// square pixel grid.
pub(crate) fn expect_plane(input: &PlanInput) -> Result<()> {
    if input.domain.is_plane() {
        return Ok(());
    }
    Err(invalid(
        input.layer,
        "this layer slides a window over square images and works on the plane only; on the \
         sphere use `disco_conv` (with `downsample` to subsample)",
    ))
}

/// No lowering of a `kind` layer to `target`, with the fix (the model names the layer).
pub(crate) fn no_lowering(kind: &str, target: &str, fix: &str) -> EquivarError {
    EquivarError::NoLowering {
        layer: String::new(),
        kind: kind.to_string(),
        target: target.to_string(),
        fix: fix.to_string(),
    }
}

/// `t`, if its group maps the pixel grid to itself (what the G-CNN convs' filter rotations
/// need); otherwise the error saying which groups do.
pub(crate) fn on_pixel_grid(t: FieldType) -> Result<FieldType> {
    if t.group.acts_on_pixel_grid() {
        Ok(t)
    } else {
        Err(EquivarError::GroupNotOnGrid {
            group: t.group.to_string(),
            n: t.group.rotations(),
        })
    }
}

/// The G-CNN view of a planned layer's input, which its plan rule has checked.
pub(crate) fn plan_fields(plan: &LayerPlan) -> Result<FieldType> {
    plan.in_type.field_type().ok_or_else(|| {
        invalid(
            &plan.name,
            format!(
                "this layer takes trivial or regular fields of a finite group, not `{}`",
                plan.in_type
            ),
        )
    })
}

/// The plan step of a layer sliding `window` over its input: convs need the grid condition
/// (`exact_pool: false`), pools only a mirror-symmetric set of in-image taps.
pub(crate) fn windowed(
    input: &PlanInput,
    window: Window,
    out_type: FeatureType,
    exact_pool: bool,
) -> Result<PlanStep> {
    window.validate().map_err(|r| invalid(input.layer, r))?;
    let size = input.in_size;
    let out_size = window.out_size(size).ok_or(EquivarError::InputTooSmall {
        input_size: input.input_size,
        layer: input.layer.to_string(),
        in_size: size,
        kernel: window.kernel,
        dilation: window.dilation,
        padding: window.padding,
        span: window.span(),
        min_input: 0, // filled in by the plan, which can search sizes
    })?;
    let exact = if exact_pool {
        window.is_exact_pool(size)
    } else {
        window.is_exact(size)
    };
    Ok(PlanStep {
        out_type,
        out_size,
        remainder: Some(window.remainder(size)),
        exact,
    })
}
