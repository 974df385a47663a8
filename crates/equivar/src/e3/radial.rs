//! Radial bases of edge lengths (invariant edge features), as e3nn's
//! `soft_one_hot_linspace` computes them, plus NequIP's polynomial cutoff envelope.
//! Written with burn's ops, so autodiff differentiates them on any backend.

use burn::tensor::{Tensor, TensorData};

use crate::o3::O3Error;

/// The shape of each basis function (e3nn's `basis` argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RadialBasis {
    /// `exp(-d^2) / 1.12` with `d` the distance to a centre in units of the spacing.
    Gaussian,
    /// `1.14136 e^2 s(d + 1) s(1 - d)` with the smooth step `s(x) = exp(-1/x)` (x > 0): finite
    /// support of two spacings, infinitely differentiable.
    SmoothFinite,
    /// `sqrt(2/c) sin(n pi x / c) / x` (n = 1..N, c = end - start): the roots of the
    /// spherical Bessel function j0, NequIP's radial basis.
    Bessel,
}

/// `number` basis functions of `x` on `[start, end]`, `[E] -> [E, number]`, as e3nn's
/// `soft_one_hot_linspace(x, start, end, number, basis, cutoff)`: with `cutoff` the centres
/// are the `number` interior points of `number + 2` evenly spaced ones (the functions vanish
/// at both ends; the Bessel basis is cut to zero from `end` on).
pub fn soft_one_hot_linspace(
    x: Tensor<1>,
    start: f64,
    end: f64,
    number: usize,
    basis: RadialBasis,
    cutoff: bool,
) -> Result<Tensor<2>, O3Error> {
    if !(start.is_finite() && end.is_finite() && end > start) || number == 0 {
        return Err(O3Error::InvalidRadialBasis {
            reason: format!(
                "need start < end (finite) and at least one function, got [{start}, {end}] and {number}"
            ),
        });
    }
    let [n] = x.dims();
    let device = x.device();
    let column = x.reshape([n, 1]);
    if basis == RadialBasis::Bessel {
        let c = end - start;
        let roots: Vec<f32> = (1..=number)
            .map(|k| (k as f64 * std::f64::consts::PI / c) as f32)
            .collect();
        let roots =
            Tensor::<1>::from_data(TensorData::new(roots, [number]), &device).reshape([1, number]);
        let shifted = column - start;
        let out = (shifted.clone() * roots).sin() / shifted.clone() * ((2.0 / c).sqrt() as f32);
        return Ok(if cutoff {
            out * shifted.lower_elem(c as f32).float()
        } else {
            out
        });
    }
    let (centres, step): (Vec<f64>, f64) = if cutoff {
        let step = (end - start) / (number + 1) as f64;
        (
            (1..=number).map(|k| start + k as f64 * step).collect(),
            step,
        )
    } else {
        let step = if number > 1 {
            (end - start) / (number - 1) as f64
        } else {
            end - start
        };
        ((0..number).map(|k| start + k as f64 * step).collect(), step)
    };
    let centres: Vec<f32> = centres.iter().map(|&c| c as f32).collect();
    let centres =
        Tensor::<1>::from_data(TensorData::new(centres, [number]), &device).reshape([1, number]);
    let diff = (column - centres) / step as f32;
    Ok(match basis {
        RadialBasis::Gaussian => diff.square().neg().exp() / 1.12,
        _ => {
            soft_unit_step(diff.clone() + 1.0)
                * soft_unit_step(diff.neg() + 1.0)
                * (1.14136 * 2f64.exp()) as f32
        }
    })
}

/// `exp(-1/x)` for `x > 0`, else 0: smooth, with all derivatives 0 at 0.
fn soft_unit_step(x: Tensor<2>) -> Tensor<2> {
    let positive = x.clone().greater_elem(0.0).float();
    // Clamped so that the unused branch never divides by zero (its value is masked anyway).
    (x.clamp_min(1e-30).recip().neg().exp()) * positive
}

/// NequIP's polynomial envelope `u(d)`, `d = r / r_max`: `1 - (p+1)(p+2)/2 d^p + p(p+2) d^(p+1)
/// - p(p+1)/2 d^(p+2)` below `r_max`, 0 above; `u(0) = 1`, and `u` and its first two
/// derivatives vanish at `r_max` (p = 6 in NequIP).
pub fn polynomial_cutoff(r: Tensor<1>, r_max: f64, p: u32) -> Tensor<1> {
    let d = r / r_max as f32;
    let pf = p as f32;
    let inside = d.clone().lower_elem(1.0).float();
    let dp = d.clone().powi_scalar(p as i32);
    let envelope = dp.clone() * (-(pf + 1.0) * (pf + 2.0) / 2.0)
        + dp.clone() * d.clone() * (pf * (pf + 2.0))
        - dp * d.clone() * d * (pf * (pf + 1.0) / 2.0)
        + 1.0;
    envelope * inside
}
