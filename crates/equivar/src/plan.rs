//! The static shape-and-exactness plan: for a model and an input size, each layer's sizes in
//! and out, its field types, and whether it is exactly equivariant at the size it sees
//! (DESIGN.md 2.1: `(n + 2p - d(k-1) - 1) mod s == 0`). Computed from the spec alone, before
//! any tensor exists, so a model that would silently lose exactness is refused up front.

use serde::{Deserialize, Serialize};

mod repair;

pub use repair::{
    Repairs, SubsamplingRepair, WindowRepair, apply as apply_repairs, apply_subsampling,
};

use crate::error::{EquivarError, Result};
use crate::field::{FeatureType, element_label};
use crate::group::O2Element;
use crate::layers::PlanInput;
use crate::space::Window;
use crate::spec::{Domain, NetSpec};

/// The largest input side a plan takes: far beyond any image a model can hold in memory
/// (the memory estimate refuses much less), small enough that no size arithmetic overflows.
pub const MAX_INPUT_SIZE: usize = 1 << 24;

/// Whether building a model requires exact equivariance at its input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Exactness {
    /// Refuse sizes at which some layer breaks equivariance (the default).
    #[default]
    Require,
    /// Build anyway: for studying approximately equivariant models.
    AllowApproximate,
}

/// One layer of a [`Plan`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerPlan {
    pub name: String,
    pub kind: String,
    /// Plane (left out of the JSON) or sphere; sizes are `n` of `n x n` on the plane and
    /// `nlat` of `nlat x 2 nlat` on the sphere.
    #[serde(default, skip_serializing_if = "Domain::is_plane")]
    pub domain: Domain,
    pub in_type: FeatureType,
    pub out_type: FeatureType,
    pub in_size: usize,
    pub out_size: usize,
    /// The sliding window, for convs and pools.
    pub window: Option<Window>,
    /// `(n + 2p - d(k-1) - 1) mod s` at this layer's input size; 0 means the sampling grid
    /// is symmetric about the centre.
    pub remainder: Option<usize>,
    pub exact: bool,
    /// The elements of the layer's group (its input type's) that it commutes with exactly at
    /// this size: the non-identity elements that map the pixel grid to itself, if the layer
    /// is exact; none otherwise. The other elements are approximate. (Empty on the sphere.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exact_under: Vec<String>,
}

/// The plan of a whole model at one input size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub model: String,
    #[serde(default, skip_serializing_if = "Domain::is_plane")]
    pub domain: Domain,
    pub group: String,
    pub input_size: usize,
    pub input_type: FeatureType,
    pub output_type: FeatureType,
    pub output_size: usize,
    /// Every layer is exactly equivariant at this input size.
    pub exact: bool,
    /// The nearest input sizes below and above `input_size` at which the whole model is exact.
    pub nearest_exact_sizes: Vec<usize>,
    /// On the sphere: the model commutes exactly with rotations about the polar axis by
    /// multiples of `360 / polar_steps` degrees (whole longitude steps of its coarsest grid);
    /// other rotations are approximate (measured by `check`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polar_steps: Option<usize>,
    /// On the plane: the elements of the model's group (the output's, after any restriction)
    /// under which the whole model is exactly equivariant at this size (the grid's quarter
    /// turns and mirrors in the group, if every layer is exact).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exact_under: Vec<String>,
    /// On the plane: the elements under which it is only approximately equivariant, as
    /// `check` measures them: a finite group's other elements; for SO(2)/O(2), rotations every
    /// 15 degrees (and their mirrors), standing for all the others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approximate_under: Vec<String>,
    /// On the plane, when the model is not exact at this size: window changes, or strides
    /// moved into equivariant subsamplings, that make it exact here, besides the nearest
    /// exact sizes (see [`Repairs`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repairs: Option<Repairs>,
    pub layers: Vec<LayerPlan>,
}

/// Labels of `elements` without the identity.
fn labels(elements: impl IntoIterator<Item = O2Element>) -> Vec<String> {
    elements
        .into_iter()
        .filter(|g| g.distance(O2Element::identity()) > 1e-9)
        .map(element_label)
        .collect()
}

impl Plan {
    /// Plans `spec` at an `input_size x input_size` input.
    pub fn new(spec: &NetSpec, input_size: usize) -> Result<Plan> {
        if input_size > MAX_INPUT_SIZE {
            return Err(EquivarError::InputTooLarge {
                input_size,
                max: MAX_INPUT_SIZE,
            });
        }
        let layers = plan_layers(spec, input_size).map_err(|e| with_min_input(spec, e))?;
        let exact = layers.iter().all(|l| l.exact);
        let last = layers.last();
        let polar_steps = (!spec.domain.is_plane()).then(|| {
            // Grids only: a pooled 1x1 output does not move under rotations.
            let sizes = layers.iter().map(|l| l.out_size).chain([input_size]);
            spec.domain
                .shape(sizes.filter(|&s| s > 1).min().unwrap_or(input_size))[1]
        });
        let (exact_under, approximate_under) = match (spec.domain, last) {
            (Domain::Plane, Some(last)) => {
                let group = last.out_type.group;
                let on_grid = group.pixel_grid_elements();
                let exact_elements = if exact { on_grid.clone() } else { Vec::new() };
                let approximate = on_grid
                    .into_iter()
                    .filter(|_| !exact)
                    .chain(crate::check::interpolated_elements(group));
                (labels(exact_elements), labels(approximate))
            }
            _ => (Vec::new(), Vec::new()),
        };
        Ok(Plan {
            model: spec.name.clone(),
            domain: spec.domain,
            group: match spec.domain {
                Domain::Plane => spec.group().to_string(),
                Domain::Sphere => "SO(3)".to_string(),
            },
            input_size,
            input_type: spec.input.clone(),
            output_type: last.map_or_else(|| spec.input.clone(), |l| l.out_type.clone()),
            output_size: last.map_or(input_size, |l| l.out_size),
            exact,
            nearest_exact_sizes: nearest_exact_sizes(spec, input_size),
            polar_steps,
            exact_under,
            approximate_under,
            repairs: (spec.domain.is_plane() && !exact)
                .then(|| repair::repairs(spec, input_size, &layers)),
            layers,
        })
    }

    /// `[height, width]` of the input.
    pub fn input_shape(&self) -> [usize; 2] {
        self.domain.shape(self.input_size)
    }

    /// The first layer that is not exact, if any.
    pub fn first_inexact(&self) -> Option<&LayerPlan> {
        self.layers.iter().find(|l| !l.exact)
    }

    /// `Ok` if exact or if approximation is allowed; otherwise the error naming the first
    /// offending layer, its remainder and the nearest exact input sizes.
    pub fn require(&self, exactness: Exactness) -> Result<()> {
        match (exactness, self.first_inexact()) {
            (Exactness::AllowApproximate, _) | (_, None) => Ok(()),
            (Exactness::Require, Some(layer)) => {
                let w = layer.window.expect("only windowed layers can be inexact");
                Err(EquivarError::NotExact {
                    input_size: self.input_size,
                    layer: layer.name.clone(),
                    in_size: layer.in_size,
                    kernel: w.kernel,
                    stride: w.stride,
                    padding: w.padding,
                    dilation: w.dilation,
                    remainder: layer.remainder.unwrap_or(0),
                    nearest: describe_sizes(&self.nearest_exact_sizes),
                })
            }
        }
    }
}

fn describe_sizes(sizes: &[usize]) -> String {
    if sizes.is_empty() {
        "none found".to_string()
    } else {
        sizes
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

/// Plans each layer by its own plan rule (see [`crate::layers`]).
fn plan_layers(spec: &NetSpec, input_size: usize) -> Result<Vec<LayerPlan>> {
    spec.input.validate()?;
    if spec.domain == Domain::Sphere && spec.input.field_type().is_none_or(|t| t.group.order() != 1)
    {
        return Err(EquivarError::FieldTypeMismatch {
            layer: "input".to_string(),
            expected: "scalar channels on the sphere (group C1)".to_string(),
            found: spec.input.to_string(),
            fix: "give a sphere model's input the group C1 and trivial fields".to_string(),
        });
    }
    let mut ty = spec.input.clone();
    let mut size = input_size;
    let mut out = Vec::with_capacity(spec.layers.len());
    for layer in &spec.layers {
        let step = layer.kind.plan(&PlanInput {
            layer: &layer.name,
            domain: spec.domain,
            in_type: &ty,
            in_size: size,
            input_size,
        })?;
        out.push(LayerPlan {
            name: layer.name.clone(),
            kind: layer.kind.label().to_string(),
            domain: spec.domain,
            in_type: ty.clone(),
            out_type: step.out_type.clone(),
            in_size: size,
            out_size: step.out_size,
            window: layer.kind.window(),
            remainder: step.remainder,
            exact: step.exact,
            exact_under: match (spec.domain, step.exact) {
                (Domain::Plane, true) => labels(ty.group.pixel_grid_elements()),
                _ => Vec::new(),
            },
        });
        ty = step.out_type;
        size = step.out_size;
    }
    Ok(out)
}

/// Completes an `InputTooSmall` error with the smallest input size the model accepts.
fn with_min_input(spec: &NetSpec, error: EquivarError) -> EquivarError {
    match error {
        EquivarError::InputTooSmall {
            input_size,
            layer,
            in_size,
            kernel,
            dilation,
            padding,
            span,
            ..
        } => {
            let min_input = (input_size + 1..input_size.saturating_mul(64).max(4096))
                .find(|&n| plan_layers(spec, n).is_ok())
                .unwrap_or(0);
            EquivarError::InputTooSmall {
                input_size,
                layer,
                in_size,
                kernel,
                dilation,
                padding,
                span,
                min_input,
            }
        }
        other => other,
    }
}

fn exact_at(spec: &NetSpec, n: usize) -> bool {
    plan_layers(spec, n).is_ok_and(|layers| layers.iter().all(|l| l.exact))
}

/// The nearest exact input sizes below and above `n` (each if one exists within the period).
/// Exactness repeats with period at most the product of the strides, which bounds the search
/// both ways.
fn nearest_exact_sizes(spec: &NetSpec, n: usize) -> Vec<usize> {
    let period: usize = spec
        .layers
        .iter()
        .filter_map(|l| l.kind.window())
        .map(|w| w.stride.max(1))
        .fold(1usize, |acc, s| acc.saturating_mul(s))
        .min(1 << 16);
    let below = (n.saturating_sub(2 * period + 8).max(1)..n)
        .rev()
        .find(|&m| exact_at(spec, m));
    let above = (n + 1..=n + 2 * period + 8).find(|&m| exact_at(spec, m));
    below.into_iter().chain(above).collect()
}
