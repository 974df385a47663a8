//! The scale-out route of README "Scaling out": an equivar classifier trained by burn-train's
//! `Learner` with `ExecutionStrategy::MultiDevice` on two CPU devices. burn's Flex backend has
//! one device, so both workers share it; that is still burn's full data-parallel path (one
//! worker thread and one model copy per device, each device's share of the data, gradients
//! gathered and summed on the first device, one optimizer step).

use std::sync::{Arc, Mutex};

use burn::data::dataloader::batcher::Batcher;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Tensor};
use burn::train::{
    ExecutionStrategy, Learner, MultiDeviceOptim, SupervisedTraining, TrainStep, TrainingStrategy,
};
use equivar::nn::Net;
use equivar::spec::Domain;
use equivar_data::Split;
use equivar_train::data_parallel::{
    Classifier, DigitBatch, DigitBatcher, LoaderOptions, digit_loader,
};
use equivar_train::examples::{Examples, examples};
use equivar_train::trainer::build_net;
use equivar_train::{Regime, TrainConfig};

mod common;
use common::flatten;

const LR: f64 = 0.05;

/// The number of trainable parameter tensors.
struct CountTensors(usize);

impl ModuleVisitor for CountTensors {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0 += usize::from(param.is_require_grad());
    }
}

/// A registry model for training, the same weights on every call (and no state shared
/// between calls: burn's running statistics are shared by clones).
fn fresh_net(model: &str, size: usize) -> Net {
    // burn's seed is process-wide: tests running in parallel must not interleave builds.
    static SEEDED: Mutex<()> = Mutex::new(());
    let _seeded = SEEDED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let ad = Device::flex().autodiff();
    ad.seed(11);
    // Parameters initialise lazily: draw them here, under the lock.
    build_net(&TrainConfig::paper(model, size), &ad)
        .unwrap()
        .materialize_params()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn digits(domain: Domain, size: usize, count: usize) -> Arc<dyn Examples> {
    let data = equivar_data::embedded::mnist(Split::Train).unwrap();
    Arc::from(examples(domain, &data, size, Some(count)).unwrap())
}

/// One epoch of 8 digits in batches of 4 on [cpu, cpu] is one step: device 0 takes digits
/// 0..4, device 1 digits 4..8, SGD moves by the sum of their mean-loss gradients, and each batch
/// norm's running statistics become the mean of the two workers' updates (burn's running state
/// averages its per-thread values). The reference computes both on one device with separate
/// model copies: the weights and statistics agree to float32 rounding.
#[test]
fn two_cpu_devices_take_the_step_of_the_summed_gradients() {
    summed_gradient_step("abusing-p4", 28, Domain::Plane);
}

/// The same for the DISCO spherical classifier, on a 64 x 128 grid.
#[test]
fn two_cpu_devices_train_a_sphere_model() {
    summed_gradient_step("spherical-cnn", 64, Domain::Sphere);
}

fn summed_gradient_step(model: &str, size: usize, domain: Domain) {
    let fresh_net = || fresh_net(model, size);
    let before = flatten(&fresh_net());
    assert_eq!(
        before.values,
        flatten(&fresh_net()).values,
        "seeded builds differ"
    );
    let digits = digits(domain, size, 8);
    let options = LoaderOptions {
        batch_size: 4,
        shuffle: None,
        seed: 3,
    };

    let dir = tempfile::tempdir().unwrap();
    let devices = vec![Device::flex(), Device::flex()];
    let strategy = ExecutionStrategy::MultiDevice(devices, MultiDeviceOptim::OptimMainDevice);
    let result = SupervisedTraining::new(
        dir.path(),
        digit_loader(digits.clone(), Regime::Uniform, options),
        digit_loader(digits.clone(), Regime::Upright, options),
    )
    .with_training_strategy(TrainingStrategy::from(strategy))
    .num_epochs(1)
    .launch(Learner::new(
        Classifier::new(fresh_net()),
        SgdConfig::new().init(),
        LR,
    ));
    assert!(result.error.is_none(), "{:?}", result.error);
    let trained = flatten(&result.model.net);

    // The same batches (the loader draws rotations per batch, seeded by its digits).
    let ad = Device::flex().autodiff();
    let batch = |indices: std::ops::Range<usize>| -> DigitBatch {
        DigitBatcher::new(digits.clone(), Regime::Uniform, options.seed)
            .batch(indices.collect(), &ad)
    };
    // Weights: one SGD step along the gradient of the summed losses.
    let reference = Classifier::new(fresh_net());
    let loss = reference.classify(batch(0..4)).loss + reference.classify(batch(4..8)).loss;
    let grads = GradientsParams::from_grads(loss.backward(), &reference);
    let stepped = flatten(&SgdConfig::new().init().step(LR, reference, grads).net);
    // Statistics: each worker's copy updated once by its share, then averaged.
    let worker = |indices| {
        let copy = Classifier::new(fresh_net());
        copy.classify(batch(indices));
        flatten(&copy.net.valid()).values
    };
    let (first, second) = (worker(0..4), worker(4..8));

    assert_eq!(trained.values.len(), stepped.values.len());
    // (The Learner returns the model in evaluation mode: nothing there requires gradients.)
    let expected: Vec<f32> = (0..stepped.values.len())
        .map(|i| match stepped.trainable[i] {
            true => stepped.values[i],
            false => (first[i] + second[i]) / 2.0,
        })
        .collect();
    let moved = max_abs_diff(&before.values, &expected);
    assert!(moved > 1e-3, "the step moved no parameter (max {moved})");
    let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = max_abs_diff(&trained.values, &expected);
    assert!(
        diff <= 1e-5 * scale,
        "two-device step differs from the reference by {diff} (scale {scale})"
    );
}

/// A classifier's train and inference steps agree with `Net::logits` and report the mean
/// cross-entropy, the quantity `equivar train` minimises.
#[test]
fn classifier_steps_report_logits_and_mean_cross_entropy() {
    let device = Device::flex();
    let net = fresh_net("abusing-p4", 28).valid();
    let digits = digits(Domain::Plane, 28, 6);
    let batch = DigitBatcher::new(digits, Regime::Upright, 0).batch((0..6).collect(), &device);
    let classifier = Classifier::new(net.clone());
    let output = burn::train::InferenceStep::step(&classifier, batch.clone());
    let logits = net.logits(batch.images.clone()).unwrap();
    let diff = (output.output.clone() - logits.clone())
        .abs()
        .max()
        .into_scalar::<f64>();
    assert_eq!(diff, 0.0);
    // Mean over the batch of -log softmax at the label, computed here in f64.
    let values = logits.into_data().convert::<f64>();
    let values = values.as_slice::<f64>().unwrap();
    let labels = batch.labels.into_data().convert::<i64>();
    let labels = labels.as_slice::<i64>().unwrap();
    let mut expected = 0.0;
    for (row, &label) in values.chunks(10).zip(labels) {
        let max = row.iter().cloned().fold(f64::MIN, f64::max);
        let log_sum = row.iter().map(|v| (v - max).exp()).sum::<f64>().ln() + max;
        expected += log_sum - row[label as usize];
    }
    expected /= labels.len() as f64;
    let loss = output.loss.into_scalar::<f64>();
    assert!(
        (loss - expected).abs() <= 1e-5 * expected.abs().max(1.0),
        "loss {loss} vs {expected}"
    );
    // The train step's gradients exist for every parameter.
    let ad = Device::flex().autodiff();
    let train_net = fresh_net("abusing-p4", 28);
    let batch = DigitBatch {
        images: Tensor::from_data(batch.images.into_data(), &ad),
        labels: Tensor::from_data(labels_data(labels), &ad),
    };
    let trained = TrainStep::step(&Classifier::new(train_net.clone()), batch);
    let trainable_tensors = {
        let mut count = CountTensors(0);
        train_net.visit(&mut count);
        count.0
    };
    assert!(trainable_tensors > 0);
    assert_eq!(trained.grads.len(), trainable_tensors);
}

fn labels_data(labels: &[i64]) -> burn::tensor::TensorData {
    burn::tensor::TensorData::new(labels.to_vec(), [labels.len()])
}
