//! Lifting (Z2 -> G) and group (G -> G) convolutions: the learned filter bank is expanded
//! into its transformed copies by a precomputed gather, then one plain conv2d runs.

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::check_channels;
use crate::error::Result;
use crate::field::{FieldType, SignedPermutation};
use crate::frozen::GridElement;
use crate::kernels::FilterExpansion;
use crate::ops::{self, Kernels};
use crate::space::{GridAction, Window};

/// What lifting and group convs share: types, window and the expansion index maps.
#[derive(Clone, Debug)]
pub struct GConvGeometry {
    pub name: String,
    pub in_type: FieldType,
    pub out_type: FieldType,
    pub window: Window,
    pub expansion: FilterExpansion,
    /// Which implementation runs the conv.
    pub kernels: Kernels,
}

impl GConvGeometry {
    /// The group's elements with their pixel and channel actions, for the frozen model's
    /// orbit form (empty for a group that does not act on the pixel grid).
    pub fn grid_elements(&self) -> Vec<GridElement> {
        let group = self.in_type.group;
        group
            .elements()
            .map(|e| {
                Some(GridElement {
                    pixels: GridAction::of(group, e).ok()?,
                    input: SignedPermutation::unsigned(self.in_type.channel_permutation(e)),
                    output: SignedPermutation::unsigned(self.out_type.channel_permutation(e)),
                })
            })
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default()
    }

    fn new(name: &str, in_type: FieldType, out_fields: usize, window: Window) -> Result<Self> {
        Ok(GConvGeometry {
            name: name.to_string(),
            in_type,
            out_type: FieldType::regular(in_type.group, out_fields),
            window,
            expansion: FilterExpansion::new(in_type, out_fields, window.kernel)?,
            kernels: Kernels::default(),
        })
    }

    /// He initialisation (uniform, gain sqrt(2), fan_in counting every input channel the
    /// filter sees) for the learned bank and zero biases: signals keep their scale through
    /// ReLU stacks, so a randomly initialised model is a meaningful equivariance probe.
    /// (PyTorch's default, +-1/sqrt(fan_in), shrinks activations ~3x per layer.)
    fn init<const D: usize>(
        &self,
        shape: [usize; D],
        bias: bool,
        device: &Device,
    ) -> (Param<Tensor<D>>, Option<Param<Tensor<1>>>) {
        let k2 = self.window.kernel * self.window.kernel;
        let fan_in = self.in_type.channels() * k2;
        let init = Initializer::KaimingUniform {
            gain: 2f64.sqrt(),
            fan_out_only: false,
        };
        let weight = init.init_with(shape, Some(fan_in), None, device);
        let bias = bias.then(|| Initializer::Zeros.init([self.out_type.fields], device));
        (weight, bias)
    }

    fn index(values: &[i64], device: &Device) -> Tensor<1, Int> {
        Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
    }

    /// The expanded conv2d filter bank `[out_fields * |G|, in_channels, k, k]`.
    fn expand_filter(&self, weight_flat: Tensor<1>) -> Tensor<4> {
        let device = weight_flat.device();
        let index = Self::index(&self.expansion.filter_index, &device);
        weight_flat
            .select(0, index)
            .reshape(self.expansion.expanded_shape)
    }

    /// One bias per field, repeated over the group axis.
    fn expand_bias(&self, bias: Tensor<1>) -> Tensor<1> {
        let device = bias.device();
        bias.select(0, Self::index(&self.expansion.bias_index, &device))
    }

    /// The plain conv2d filter bank `[out_fields * |G|, in_channels, k, k]` of a learned bank.
    fn filter<const D: usize>(&self, weight: &Param<Tensor<D>>) -> Tensor<4> {
        self.expand_filter(weight.val().reshape([self.expansion.weight_len]))
    }

    /// The plain conv2d bias of a learned per-field bias.
    fn bias(&self, bias: &Option<Param<Tensor<1>>>) -> Option<Tensor<1>> {
        bias.as_ref().map(|b| self.expand_bias(b.val()))
    }

    fn forward<const D: usize>(
        &self,
        x: Tensor<4>,
        weight: &Param<Tensor<D>>,
        bias: &Option<Param<Tensor<1>>>,
    ) -> Tensor<4> {
        check_channels(&self.name, self.in_type.channels(), &x);
        let w = self.window;
        ops::conv2d(
            x,
            self.filter(weight),
            self.bias(bias),
            w.stride,
            w.padding,
            w.dilation,
            self.kernels,
        )
    }
}

/// Z2 -> G convolution (Cohen & Welling 2016): trivial input fields (e.g. image channels) to
/// regular output fields. Output field `o`, component `g`, correlates the input with the
/// learned filter `o` moved by `g`.
#[derive(Module, Debug)]
pub struct LiftingConv2d {
    /// Learned filters `[out_fields, in_channels, k, k]`.
    pub weight: Param<Tensor<4>>,
    /// One bias per output field, shared over the group `[out_fields]`.
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub geometry: GConvGeometry,
}

impl LiftingConv2d {
    pub fn new(
        name: &str,
        in_type: FieldType,
        out_fields: usize,
        window: Window,
        bias: bool,
        device: &Device,
    ) -> Result<Self> {
        let geometry = GConvGeometry::new(name, in_type, out_fields, window)?;
        let k = window.kernel;
        let (weight, bias) = geometry.init([out_fields, in_type.channels(), k, k], bias, device);
        Ok(LiftingConv2d {
            weight,
            bias,
            geometry,
        })
    }

    /// The plain conv2d filter bank this layer applies.
    pub fn expanded_filter(&self) -> Tensor<4> {
        self.geometry.filter(&self.weight)
    }

    /// The plain conv2d bias this layer applies.
    pub fn expanded_bias(&self) -> Option<Tensor<1>> {
        self.geometry.bias(&self.bias)
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.geometry.forward(x, &self.weight, &self.bias)
    }
}

/// G -> G convolution: regular fields to regular fields. Output component `g` uses the
/// learned filter moved by `g` in space with its group axis permuted by the regular
/// representation (for C4 a cyclic roll).
#[derive(Module, Debug)]
pub struct GroupConv2d {
    /// Learned filters `[out_fields, in_fields, |G|, k, k]`.
    pub weight: Param<Tensor<5>>,
    /// One bias per output field, shared over the group `[out_fields]`.
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub geometry: GConvGeometry,
}

impl GroupConv2d {
    pub fn new(
        name: &str,
        in_type: FieldType,
        out_fields: usize,
        window: Window,
        bias: bool,
        device: &Device,
    ) -> Result<Self> {
        let geometry = GConvGeometry::new(name, in_type, out_fields, window)?;
        let k = window.kernel;
        let shape = [out_fields, in_type.fields, in_type.group.order(), k, k];
        let (weight, bias) = geometry.init(shape, bias, device);
        Ok(GroupConv2d {
            weight,
            bias,
            geometry,
        })
    }

    /// The plain conv2d filter bank this layer applies.
    pub fn expanded_filter(&self) -> Tensor<4> {
        self.geometry.filter(&self.weight)
    }

    /// The plain conv2d bias this layer applies.
    pub fn expanded_bias(&self) -> Option<Tensor<1>> {
        self.geometry.bias(&self.bias)
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.geometry.forward(x, &self.weight, &self.bias)
    }
}
