//! Repairs for a model that is not exact at an input size: for each layer that breaks
//! exactness there, the smallest change of its window (kernel and padding; stride and
//! dilation kept) that makes it exact at the size it sees, keeping its output size where
//! some change does, so that the layers after it see what they saw. Applied in order, the
//! repairs give an exact plan, unless a layer has none (then the list says which).
//!
//! The other repair keeps every window and moves the stride: each inexact strided layer at
//! stride 1 (exact at every size) followed by an equivariant subsampling at its stride
//! (exact at every size; DESIGN.md 2.9). Its output size is the layer's own,
//! `ceil((n + 2p - d(k-1)) / s)`.

use serde::{Deserialize, Serialize};

use super::{LayerPlan, plan_layers};
use crate::layers::{EquivariantSubsample, LayerKind};
use crate::space::Window;
use crate::spec::{LayerSpec, NetSpec};

/// One layer's new window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowRepair {
    pub layer: String,
    /// The input size the layer sees (with the repairs before it applied).
    pub in_size: usize,
    pub window: Window,
    pub repaired: Window,
    pub out_size: usize,
    pub repaired_out_size: usize,
}

/// One strided layer made stride 1 and followed by an equivariant subsampling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubsamplingRepair {
    pub layer: String,
    pub in_size: usize,
    pub window: Window,
    /// The name of the `equivariant_subsample` layer inserted after it.
    pub subsample: String,
    pub out_size: usize,
}

/// The repairs of one plan, in layer order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Repairs {
    pub windows: Vec<WindowRepair>,
    /// The alternative to `windows`: every inexact strided layer at stride 1, followed by
    /// an equivariant subsampling (see [`apply_subsampling`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsampling: Vec<SubsamplingRepair>,
    /// The first inexact layer that no window change makes exact (e.g. one without a window),
    /// if any: the repairs before it do not make the model exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unrepaired: Option<String>,
}

/// How far kernels and paddings are searched from the layer's own.
const SEARCH: usize = 2;

/// The repairs of `spec` at `input_size`, whose plan is `layers` (empty if it is exact).
pub(super) fn repairs(spec: &NetSpec, input_size: usize, layers: &[LayerPlan]) -> Repairs {
    Repairs {
        subsampling: subsampling_repairs(spec, layers),
        ..window_repairs(spec, input_size)
    }
}

fn subsampling_repairs(spec: &NetSpec, layers: &[LayerPlan]) -> Vec<SubsamplingRepair> {
    layers
        .iter()
        .zip(&spec.layers)
        .filter_map(|(planned, layer)| {
            let window = planned.window.filter(|w| w.stride > 1 && !planned.exact)?;
            // Only layers whose description carries the window can be rewritten.
            with_window(
                &layer.kind,
                Window {
                    stride: 1,
                    ..window
                },
            )?;
            Some(SubsamplingRepair {
                layer: planned.name.clone(),
                in_size: planned.in_size,
                window,
                subsample: format!("{}_subsample", planned.name),
                out_size: planned.out_size,
            })
        })
        .collect()
}

/// `spec` with `repairs.subsampling` applied: each named layer at stride 1, followed by an
/// `equivariant_subsample` at its old stride.
pub fn apply_subsampling(spec: &NetSpec, repairs: &Repairs) -> NetSpec {
    let mut spec = spec.clone();
    for repair in &repairs.subsampling {
        let Some(index) = spec.layers.iter().position(|l| l.name == repair.layer) else {
            continue;
        };
        let stride_one = Window {
            stride: 1,
            ..repair.window
        };
        let Some(kind) = with_window(&spec.layers[index].kind, stride_one) else {
            continue;
        };
        spec.layers[index].kind = kind;
        spec.layers.insert(
            index + 1,
            LayerSpec {
                name: repair.subsample.clone(),
                kind: EquivariantSubsample {
                    stride: repair.window.stride,
                }
                .into(),
            },
        );
    }
    spec
}

fn window_repairs(spec: &NetSpec, input_size: usize) -> Repairs {
    let mut spec = spec.clone();
    let mut found = Repairs::default();
    // Each round repairs the first inexact layer; a repaired layer stays exact.
    for _ in 0..spec.layers.len() {
        let Ok(layers) = plan_layers(&spec, input_size) else {
            break;
        };
        let Some(index) = layers.iter().position(|l| !l.exact) else {
            break;
        };
        let layer = &layers[index];
        let best = layer.window.and_then(|window| {
            candidates(window)
                .filter_map(|repaired| {
                    let kind = with_window(&spec.layers[index].kind, repaired)?;
                    let mut trial = spec.clone();
                    trial.layers[index].kind = kind;
                    let planned = plan_layers(&trial, input_size).ok()?;
                    let out_size = planned[index].out_size;
                    let cost = (
                        out_size != layer.out_size,
                        change(window, repaired),
                        repaired.kernel,
                    );
                    planned[index]
                        .exact
                        .then_some((cost, repaired, out_size, trial))
                })
                .min_by_key(|(cost, ..)| *cost)
        });
        let Some((_, repaired, repaired_out_size, trial)) = best else {
            found.unrepaired = Some(layer.name.clone());
            break;
        };
        found.windows.push(WindowRepair {
            layer: layer.name.clone(),
            in_size: layer.in_size,
            window: layer.window.expect("a repaired layer has a window"),
            repaired,
            out_size: layer.out_size,
            repaired_out_size,
        });
        spec = trial;
    }
    found
}

/// `spec` with `repairs` applied (the layers named; others untouched).
pub fn apply(spec: &NetSpec, repairs: &Repairs) -> NetSpec {
    let mut spec = spec.clone();
    for repair in &repairs.windows {
        for layer in spec.layers.iter_mut().filter(|l| l.name == repair.layer) {
            if let Some(kind) = with_window(&layer.kind, repair.repaired) {
                layer.kind = kind;
            }
        }
    }
    spec
}

/// Windows within [`SEARCH`] of `window`'s kernel and padding, the window itself excluded.
fn candidates(window: Window) -> impl Iterator<Item = Window> {
    let kernels = window.kernel.saturating_sub(SEARCH).max(1)..=window.kernel + SEARCH;
    kernels
        .flat_map(move |kernel| {
            (window.padding.saturating_sub(SEARCH)..=window.padding + SEARCH).map(move |padding| {
                Window {
                    kernel,
                    padding,
                    ..window
                }
            })
        })
        .filter(move |w| *w != window)
}

/// How much a repair changes the window.
fn change(from: Window, to: Window) -> usize {
    from.kernel.abs_diff(to.kernel) + from.padding.abs_diff(to.padding)
}

/// `kind` with its `window` field replaced, for the layer kinds whose description has one
/// (the description format's field name, which model files use too).
fn with_window(kind: &LayerKind, window: Window) -> Option<LayerKind> {
    let mut value = serde_json::to_value(kind).ok()?;
    *value.get_mut("window")? = serde_json::to_value(window).ok()?;
    serde_json::from_value(value).ok()
}
