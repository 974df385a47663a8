//! Measuring equivariance: apply every group element to the input, run the model, and compare
//! each layer's output with the transformed output of the untransformed input. The error at
//! layer `d` is that of the network up to `d` (the paper's `Phi_d`).
//!
//! On the plane the elements that map the pixel grid to itself act exactly (the plan says
//! where the model is exact under them); the group's other rotations (45 degrees in C8, a
//! sweep of angles in SO(2)) move pixels by bilinear interpolation, so the model is only
//! approximately equivariant under them: their errors are reported apart.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::fmt;

pub mod lie;
pub mod sphere;

use crate::error::Result;
use crate::field::element_label;
use crate::group::{Element, O2Element, PlanarGroup};
use crate::nn::Net;
use crate::plan::LayerPlan;
use crate::spec::Domain;

/// Error of the network up to one layer, over all group elements.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerError {
    pub name: String,
    pub kind: String,
    pub out_size: usize,
    pub exact_by_plan: bool,
    /// `max_g max |g.Phi(x) - Phi(g.x)|`.
    pub max_abs_error: f64,
    /// `max_g max |g.Phi(x) - Phi(g.x)| / max |Phi(x)|`.
    pub rel_error: f64,
    /// The same over the interpolated rotations (none if the group has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpolated_rel_error: Option<f64>,
}

/// End-to-end error under one group element.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ElementError {
    pub element: String,
    pub max_abs_error: f64,
    pub rel_error: f64,
}

/// The equivariance report of a model on one input.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EquivarianceReport {
    pub model: String,
    #[serde(default, skip_serializing_if = "Domain::is_plane")]
    pub domain: Domain,
    pub group: String,
    pub input_size: usize,
    pub exact_by_plan: bool,
    /// End to end, over all group elements.
    pub max_abs_error: f64,
    pub max_rel_error: f64,
    pub elements: Vec<ElementError>,
    /// End to end under each interpolated rotation of the group (not exact by construction:
    /// the image and the kernels are sampled on the pixel grid).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interpolated: Vec<ElementError>,
    pub layers: Vec<LayerError>,
}

/// `(max |a - b|, max |a - b| / max(|a|, |b|))`, with `0 / 0 = 0`.
pub fn max_errors(a: &Tensor<4>, b: &Tensor<4>) -> (f64, f64) {
    let abs = (a.clone() - b.clone()).abs().max().into_scalar::<f64>();
    let scale = a
        .clone()
        .abs()
        .max()
        .into_scalar::<f64>()
        .max(b.clone().abs().max().into_scalar::<f64>());
    let rel = if abs == 0.0 { 0.0 } else { abs / scale };
    (abs, rel)
}

/// A readable name of a group element: `e`, `r1` (one rotation by 360/N degrees), `m` (the
/// mirror), `r1m` (mirror, then rotation).
pub fn element_name(e: Element) -> String {
    match (e.rotation, e.reflected) {
        (0, false) => "e".to_string(),
        (0, true) => "m".to_string(),
        (a, false) => format!("r{a}"),
        (a, true) => format!("r{a}m"),
    }
}

/// How one symmetry moves the input (`None`) and each layer's output (`Some(layer)`).
type Action<'a> = Box<dyn Fn(Option<&LayerPlan>, Tensor<4>) -> Result<Tensor<4>> + 'a>;

/// The name of `g` in a report: on the groups that map the pixel grid to itself (C1, C2, C4,
/// D1, D2, D4) the G-CNN names `r1`, `m`, ...; elsewhere the angle, `r(90)m`.
fn report_name(group: PlanarGroup, g: O2Element) -> String {
    match group.rotation_order() {
        Some(n) if 4 % n == 0 => element_name(Element {
            rotation: group.index_of(g).map_or(0, |i| i % n),
            reflected: g.reflected,
        }),
        _ => element_label(g),
    }
}

/// The symmetries `check` measures a model under, each with its name: on the plane every
/// element of its group that maps the pixel grid to itself, but the identity; on the sphere
/// the rotations about the polar axis by whole longitude steps of the coarsest grid (exact by
/// construction).
fn symmetries(net: &Net) -> Vec<(String, Action<'_>)> {
    let plan = &net.plan;
    match plan.domain {
        Domain::Plane => {
            let group = net.spec.group();
            plane_actions(net, group.pixel_grid_elements())
        }
        Domain::Sphere => {
            let steps = plan.polar_steps.unwrap_or(1);
            (1..steps)
                .map(|k| {
                    let act: Action = Box::new(move |_: Option<&LayerPlan>, t: Tensor<4>| {
                        // Each grid's longitudes are a multiple of `steps`; a 1x1 output
                        // (pooled) does not move.
                        let nlon = t.dims()[3];
                        Ok(if nlon.is_multiple_of(steps) {
                            t.roll_dim(k * (nlon / steps), 3)
                        } else {
                            t
                        })
                    });
                    let degrees = 360.0 * k as f64 / steps as f64;
                    (format!("rz({degrees:.4})"), act)
                })
                .collect()
        }
    }
}

/// The actions of `elements` (but the identity, and those a restriction inside the model
/// leaves out) on the input and every layer's output.
fn plane_actions(net: &Net, elements: Vec<O2Element>) -> Vec<(String, Action<'_>)> {
    let plan = &net.plan;
    let group = net.spec.group();
    elements
        .into_iter()
        .filter(|&g| g != O2Element::identity())
        .filter(|&g| plan.layers.iter().all(|l| l.out_type.group.contains(g)))
        .map(|g| {
            let act: Action = Box::new(move |layer: Option<&LayerPlan>, t| {
                layer.map_or(&plan.input_type, |l| &l.out_type).act(g, t)
            });
            (report_name(group, g), act)
        })
        .collect()
}

/// Rotations a continuous group samples for the interpolated check: every 15 degrees.
const SWEEP_STEPS: usize = 24;

/// The group's elements that the pixel grid does not carry: for C_N and D_N the rest of the
/// group, for SO(2) and O(2) a sweep of rotations every 15 degrees (with the mirror for O(2)).
pub(crate) fn interpolated_elements(group: PlanarGroup) -> Vec<O2Element> {
    let on_grid = group.pixel_grid_elements();
    let candidates = match group.rotation_order() {
        Some(_) => group.elements(),
        None => group.even_samples(if group.has_reflections() {
            2 * SWEEP_STEPS
        } else {
            SWEEP_STEPS
        }),
    };
    candidates
        .into_iter()
        .filter(|g| on_grid.iter().all(|h| g.distance(*h) > 1e-9))
        .collect()
}

/// Per layer the worst `(abs, rel)` error over a set of actions, and the end-to-end error per
/// action.
type Measured = (Vec<(f64, f64)>, Vec<ElementError>);

/// Runs `net` on `x` moved by each action and compares every layer with the moved reference:
/// per layer the worst `(abs, rel)` error, and the end-to-end error per action.
fn measure(
    net: &Net,
    x: &Tensor<4>,
    reference: &[Tensor<4>],
    actions: Vec<(String, Action<'_>)>,
) -> Result<Measured> {
    let plan = &net.plan;
    let mut per_layer = vec![(0.0f64, 0.0f64); plan.layers.len()];
    let mut elements = Vec::new();
    for (name, act) in actions {
        let moved = net.forward_layers(act(None, x.clone())?)?;
        let mut last = (0.0, 0.0);
        for ((worst, out), (plan_layer, moved_out)) in per_layer
            .iter_mut()
            .zip(reference)
            .zip(plan.layers.iter().zip(&moved))
        {
            let expected = act(Some(plan_layer), out.clone())?;
            last = max_errors(&expected, moved_out);
            *worst = (worst.0.max(last.0), worst.1.max(last.1));
        }
        elements.push(ElementError {
            element: name,
            max_abs_error: last.0,
            rel_error: last.1,
        });
    }
    Ok((per_layer, elements))
}

/// Measures the equivariance of `net` on input `x` under every element of its group that
/// acts exactly (on the sphere: every exact polar rotation), and on the plane under the
/// group's interpolated rotations apart.
pub fn equivariance_report(net: &Net, x: Tensor<4>) -> Result<EquivarianceReport> {
    let plan = &net.plan;
    let reference = net.forward_layers(x.clone())?;
    let (exact, elements) = measure(net, &x, &reference, symmetries(net))?;
    let (approximate, interpolated) = match plan.domain {
        Domain::Plane => {
            let actions = plane_actions(net, interpolated_elements(net.spec.group()));
            if actions.is_empty() {
                (Vec::new(), Vec::new())
            } else {
                measure(net, &x, &reference, actions)?
            }
        }
        Domain::Sphere => (Vec::new(), Vec::new()),
    };
    let layers: Vec<LayerError> = plan
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| LayerError {
            name: l.name.clone(),
            kind: l.kind.clone(),
            out_size: l.out_size,
            exact_by_plan: l.exact,
            max_abs_error: exact[i].0,
            rel_error: exact[i].1,
            interpolated_rel_error: approximate.get(i).map(|e| e.1),
        })
        .collect();
    Ok(EquivarianceReport {
        model: plan.model.clone(),
        domain: plan.domain,
        group: plan.group.clone(),
        input_size: plan.input_size,
        exact_by_plan: plan.exact,
        max_abs_error: elements.iter().map(|e| e.max_abs_error).fold(0.0, f64::max),
        max_rel_error: elements.iter().map(|e| e.rel_error).fold(0.0, f64::max),
        elements,
        interpolated,
        layers,
    })
}

/// Asserts that `net` is equivariant on `x` to relative error `tol`, at every layer and
/// under every group element; the panic message shows the report.
pub fn assert_equivariant(net: &Net, x: Tensor<4>, tol: f64) {
    let report = equivariance_report(net, x).unwrap_or_else(|e| panic!("{e}"));
    let worst = report
        .layers
        .iter()
        .map(|l| l.rel_error)
        .fold(0.0, f64::max);
    assert!(
        worst <= tol,
        "model `{}` is not equivariant to relative error {tol:e}:\n{report}",
        report.model
    );
}

impl fmt::Display for EquivarianceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [h, w] = self.domain.shape(self.input_size);
        let under = match self.domain {
            Domain::Plane => self.group.clone(),
            Domain::Sphere => "rotations about the polar axis by whole longitude steps".into(),
        };
        writeln!(
            f,
            "equivariance of `{}` under {under} at {h}x{w} (exact by plan: {})",
            self.model,
            if self.exact_by_plan { "yes" } else { "no" }
        )?;
        let interpolated = !self.interpolated.is_empty();
        write!(
            f,
            "  {:<18} {:<16} {:>5} {:>6} {:>12} {:>12}",
            "layer", "kind", "size", "exact", "max abs err", "rel err"
        )?;
        if interpolated {
            write!(f, " {:>14}", "interp rel err")?;
        }
        writeln!(f)?;
        for l in &self.layers {
            write!(
                f,
                "  {:<18} {:<16} {:>5} {:>6} {:>12.3e} {:>12.3e}",
                l.name,
                l.kind,
                l.out_size,
                if l.exact_by_plan { "yes" } else { "NO" },
                l.max_abs_error,
                l.rel_error
            )?;
            if let Some(e) = l.interpolated_rel_error {
                write!(f, " {e:>14.3e}")?;
            }
            writeln!(f)?;
        }
        write!(f, "  end to end, per element:")?;
        for e in &self.elements {
            write!(f, " {}={:.2e}", e.element, e.rel_error)?;
        }
        writeln!(f)?;
        if interpolated {
            write!(f, "  end to end, interpolated rotations (bilinear):")?;
            for e in &self.interpolated {
                write!(f, " {}={:.2e}", e.element, e.rel_error)?;
            }
            writeln!(f)?;
        }
        write!(
            f,
            "  end to end: max abs error {:.3e}, max rel error {:.3e}",
            self.max_abs_error, self.max_rel_error
        )
    }
}
