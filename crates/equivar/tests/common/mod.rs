//! Helpers shared by the integration tests that compare two whole networks' outputs.

use burn::tensor::{Tensor, TensorData};
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
