//! Helpers shared by the integration tests that compare two whole networks' outputs.

use burn::tensor::Tensor;

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
