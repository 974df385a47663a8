//! One layer of a [`super::Net`], built from its spec and plan.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::{
    EquivariantBatchNorm, FieldDropout, GlobalAvgPool, GroupConv2d, GroupPool, InvariantLinear,
    LiftingConv2d, Pointwise, SpatialPool,
};
use crate::error::Result;
use crate::plan::LayerPlan;
use crate::spec::{LayerKind, LayerSpec, Reduce};

/// Any equivar layer.
#[derive(Module, Debug)]
pub enum Layer {
    LiftingConv(LiftingConv2d),
    GroupConv(GroupConv2d),
    SpatialPool(SpatialPool),
    GlobalAvgPool(GlobalAvgPool),
    GroupPool(GroupPool),
    BatchNorm(EquivariantBatchNorm),
    Activation(Pointwise),
    Dropout(FieldDropout),
    Linear(InvariantLinear),
}

impl Layer {
    /// Builds the layer `spec` with the types and sizes of its `plan`.
    pub fn new(spec: &LayerSpec, plan: &LayerPlan, device: &Device) -> Result<Layer> {
        let name = spec.name.clone();
        let ty = plan.in_type;
        Ok(match &spec.kind {
            LayerKind::LiftingConv {
                out_fields,
                window,
                bias,
            } => Layer::LiftingConv(LiftingConv2d::new(
                &name,
                ty,
                *out_fields,
                *window,
                *bias,
                device,
            )?),
            LayerKind::GroupConv {
                out_fields,
                window,
                bias,
            } => Layer::GroupConv(GroupConv2d::new(
                &name,
                ty,
                *out_fields,
                *window,
                *bias,
                device,
            )?),
            LayerKind::MaxPool { window } => Layer::SpatialPool(SpatialPool {
                name,
                reduce: Reduce::Max,
                window: *window,
                field_type: ty,
            }),
            LayerKind::AvgPool { window } => Layer::SpatialPool(SpatialPool {
                name,
                reduce: Reduce::Mean,
                window: *window,
                field_type: ty,
            }),
            LayerKind::GlobalAvgPool => Layer::GlobalAvgPool(GlobalAvgPool {
                name,
                field_type: ty,
            }),
            LayerKind::GroupPool { reduce } => Layer::GroupPool(GroupPool {
                name,
                reduce: *reduce,
                field_type: ty,
            }),
            LayerKind::BatchNorm { epsilon, momentum } => Layer::BatchNorm(
                EquivariantBatchNorm::new(&name, ty, *epsilon, *momentum, device),
            ),
            LayerKind::Activation { function } => Layer::Activation(Pointwise {
                function: *function,
            }),
            LayerKind::FieldDropout { p } => Layer::Dropout(FieldDropout::new(&name, ty, *p)),
            LayerKind::Linear { out_features, bias } => Layer::Linear(InvariantLinear::new(
                &name,
                ty,
                *out_features,
                *bias,
                device,
            )),
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Layer::LiftingConv(l) => l.forward(x),
            Layer::GroupConv(l) => l.forward(x),
            Layer::SpatialPool(l) => l.forward(x),
            Layer::GlobalAvgPool(l) => l.forward(x),
            Layer::GroupPool(l) => l.forward(x),
            Layer::BatchNorm(l) => l.forward(x),
            Layer::Activation(l) => l.forward(x),
            Layer::Dropout(l) => l.forward(x),
            Layer::Linear(l) => l.forward(x),
        }
    }
}
