//! Precise batch norm: after `Net::recalibrate_batch_norm` the inference-mode network computes
//! what the training-mode network computes with population statistics.

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use equivar::models;
use equivar::nn::{Layer, Net};
use equivar::plan::Exactness;

mod common;

use common::{host, relative_error};

fn training_net(device: &Device) -> Net {
    models::spec("abusing-p4")
        .unwrap()
        .init(28, Exactness::Require, device)
        .unwrap()
}

/// Recalibrated on one batch, the inference network gives exactly the training-mode output on
/// that batch (whose batch norms normalise by that batch's statistics); before recalibration
/// (fresh running statistics 0 and 1) it does not.
#[test]
fn one_batch_recalibration_reproduces_the_training_forward() {
    let device = Device::flex().autodiff();
    device.seed(7);
    let net = training_net(&device);
    let x = Tensor::<4>::random([16, 1, 28, 28], Distribution::Normal(0.5, 1.0), &device);
    let trained = host(net.forward(x.clone()).inner());

    let before = host(net.valid().forward(x.clone().inner()));
    assert!(
        relative_error(&before, &trained) > 1e-2,
        "fresh running statistics should not reproduce the batch statistics"
    );

    let images = net.recalibrate_batch_norm([x.clone()]).unwrap();
    assert_eq!(images, 16);
    let inference = host(net.valid().forward(x.inner()));
    let error = relative_error(&inference, &trained);
    println!(
        "before {:.3e}, after {error:.3e}",
        relative_error(&before, &trained)
    );
    assert!(error <= 1e-4, "relative error {error:.3e}");
}

/// Over several batches the running statistics are the population mean and (biased) variance
/// of the layer's input over all of them, here checked for the first batch norm, whose input
/// (the lifting convolution's output) does not depend on any earlier normalisation.
#[test]
fn statistics_are_those_of_the_whole_population() {
    let device = Device::flex();
    device.seed(11);
    let net = training_net(&device);
    let batches: Vec<Tensor<4>> = [5, 8, 3]
        .iter()
        .map(|&b| Tensor::random([b, 1, 28, 28], Distribution::Normal(0.2, 1.5), &device))
        .collect();
    assert_eq!(net.recalibrate_batch_norm(batches.clone()).unwrap(), 16);

    let lifted = Tensor::cat(
        batches
            .iter()
            .map(|x| net.layers[0].forward(x.clone()))
            .collect(),
        0,
    );
    let Layer::BatchNorm(bn) = &net.layers[1] else {
        panic!("abusing-p4's second layer is a batch norm")
    };
    let fields = bn.field_type.fields;
    let [b, c, h, w] = lifted.dims();
    let per_field: Tensor<2> = lifted
        .reshape([b, fields, c / fields * h * w])
        .swap_dims(0, 1)
        .reshape([fields, b * c / fields * h * w]);
    let mean = per_field.clone().mean_dim(1);
    let variance = (per_field - mean.clone()).square().mean_dim(1);
    let flat = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
    let got_mean: Vec<f32> = bn
        .norm
        .running_mean
        .value()
        .into_data()
        .try_to_vec()
        .unwrap();
    let got_var: Vec<f32> = bn
        .norm
        .running_var
        .value()
        .into_data()
        .try_to_vec()
        .unwrap();
    let (want_mean, want_var) = (flat(mean), flat(variance));
    assert!(
        relative_error(&got_mean, &want_mean) <= 1e-4,
        "{got_mean:?} vs {want_mean:?}"
    );
    assert!(
        relative_error(&got_var, &want_var) <= 1e-4,
        "{got_var:?} vs {want_var:?}"
    );
}

/// No batches is an error, not a silent division by zero.
#[test]
fn recalibration_without_images_is_an_error() {
    let device = Device::flex();
    let net = training_net(&device);
    let error = net
        .recalibrate_batch_norm(Vec::<Tensor<4>>::new())
        .unwrap_err()
        .to_string();
    assert!(error.contains("at least one batch"), "{error}");
}
