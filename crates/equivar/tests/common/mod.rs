//! Helpers shared by the integration tests: comparing outputs, seeded inputs.
// Each test binary uses some of them.
#![allow(dead_code)]

use burn::tensor::{Device, Tensor, TensorData};
use equivar::field::FeatureType;
use equivar::group::O2Element;

/// A tensor's values on the host.
pub fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// `max |got - want| / max |want|`.
pub fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
    let diff = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs() as f64));
    diff / scale.max(1e-30)
}

/// `rho(g)` applied to every pixel's channels, no pixel moving: how the group acts on the
/// output of a map that works pixel by pixel (the field-wise layers' tests).
#[allow(dead_code)] // not every test binary that shares this module uses it
pub fn act_on_channels(t: &FeatureType, g: O2Element, x: &Tensor<4>) -> Tensor<4> {
    let m = t.representation().unwrap().matrix(g);
    let [b, c, h, w] = x.dims();
    let values = host(x.clone());
    let mut out = vec![0.0f32; values.len()];
    for n in 0..b {
        for i in 0..c {
            for j in 0..c {
                let a = m[(i, j)] as f32;
                if a == 0.0 {
                    continue;
                }
                for p in 0..h * w {
                    out[(n * c + i) * h * w + p] += a * values[(n * c + j) * h * w + p];
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(out, [b, c, h, w]), &x.device())
}

/// Deterministic normal-ish values from `seed` (not the device's shared generator, which
/// tests running in parallel would interleave).
pub fn seeded_values(len: usize, seed: u64) -> Vec<f32> {
    (0..len)
        .map(|k| {
            let u = ((k as f64 + 1.0) * 12.9898 + seed as f64 * 78.233).sin() * 43758.5453;
            let v = ((k as f64 + 1.0) * 39.3468 + seed as f64 * 11.135).sin() * 24634.6345;
            let (u, v) = (u - u.floor(), v - v.floor());
            ((-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect()
}

/// A tensor of [`seeded_values`].
pub fn seeded_tensor(shape: [usize; 4], seed: u64, device: &Device) -> Tensor<4> {
    let len = shape.iter().product();
    Tensor::from_data(TensorData::new(seeded_values(len, seed), shape), device)
}
