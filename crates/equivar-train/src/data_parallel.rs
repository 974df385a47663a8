//! equivar classifiers in burn-train's `Learner`: the route to several devices.
//!
//! `equivar train` runs its own loop on one device because it guarantees what burn-train's
//! `Learner` (0.22.1) does not: a resumed run ends exactly where an uninterrupted one does,
//! checkpoints are written atomically with a digest, a NaN stops the run with the last good
//! checkpoint kept, and batch norm is recalibrated between epochs. Users who outgrow one device
//! scale out with burn's own execution strategies (`ExecutionStrategy::MultiDevice`, data
//! parallel with the optimizer on the first device, or `DistributedDataParallel`), not with
//! anything home-made: this module gives what those need, a [`Classifier`] (a [`Net`] as a
//! `TrainStep` / `InferenceStep`) and data loaders of digits moved per a [`Regime`].
//!
//! Batch norm under data parallelism normalises each device's share of a batch by that share's
//! statistics (as PyTorch's `DataParallel` without SyncBN), and burn averages the workers'
//! running statistics (momentum averages of those shares). Call [`Net::recalibrate_batch_norm`]
//! on the trained model before evaluating it, for the population statistics.

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::InMemDataset;
use burn::module::{Content, Module, ModuleDisplay};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Int, Tensor};
use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::MetricDefinition;
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};
use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};
use equivar::nn::Net;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::examples::Examples;
use crate::regime::Regime;

/// A classifier [`Net`] as burn-train sees it: the step is the logits and the mean
/// cross-entropy of a batch, as in `equivar train`.
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct Classifier {
    pub net: Net,
}

/// burn-train prints the model in its summary: its name, input size and depth, not the whole
/// plan.
impl ModuleDisplay for Classifier {
    fn custom_content(&self, content: Content) -> Option<Content> {
        let plan = &self.net.plan;
        content
            .add_formatted(&format!(
                "{} at input size {} ({} layers)",
                plan.model,
                plan.input_size,
                plan.layers.len()
            ))
            .optional()
    }
}

/// Images `[batch, 1, h, w]` (or the sphere grid) and their labels.
#[derive(Clone, Debug)]
pub struct DigitBatch {
    pub images: Tensor<4>,
    pub labels: Tensor<1, Int>,
}

impl Classifier {
    pub fn new(net: Net) -> Self {
        Classifier { net }
    }

    /// Logits, mean cross-entropy and targets of `batch`.
    ///
    /// burn-train's steps cannot return an error; a batch the model cannot take (only possible
    /// if the loader and the model disagree on the input size) panics with equivar's message,
    /// which burn-train catches per worker and reports in `LearningResult::error`.
    pub fn classify(&self, batch: DigitBatch) -> ClassificationOutput {
        let logits = self
            .net
            .logits(batch.images)
            .unwrap_or_else(|error| panic!("{error}"));
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.labels.clone());
        ClassificationOutput::new(loss, logits, batch.labels)
    }
}

impl TrainStep for Classifier {
    type Input = DigitBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: DigitBatch) -> TrainOutput<ClassificationOutput> {
        let output = self.classify(batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl InferenceStep for Classifier {
    type Input = DigitBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: DigitBatch) -> ClassificationOutput {
        self.classify(batch)
    }
}

/// Draws the digits of a batch of example indices, moved per `regime`. The draw is seeded by
/// `seed` and the batch's indices, so it does not depend on which worker thread or device
/// builds the batch (a batch of the same images gets the same rotations).
pub struct DigitBatcher {
    examples: Arc<dyn Examples>,
    regime: Regime,
    seed: u64,
}

impl DigitBatcher {
    pub fn new(examples: Arc<dyn Examples>, regime: Regime, seed: u64) -> Self {
        DigitBatcher {
            examples,
            regime,
            seed,
        }
    }
}

impl Batcher<usize, DigitBatch> for DigitBatcher {
    fn batch(&self, indices: Vec<usize>, device: &Device) -> DigitBatch {
        // FNV-1a over the indices: a cheap, stable seed per batch.
        let mix = indices.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &i| {
            (h ^ i as u64).wrapping_mul(0x0000_0100_0000_01b3)
        });
        let mut rng = StdRng::seed_from_u64(self.seed ^ mix);
        let (images, labels) = self.examples.draw(&indices, self.regime, &mut rng, device);
        DigitBatch { images, labels }
    }
}

/// How a [`digit_loader`] orders and sizes its batches.
#[derive(Clone, Copy, Debug)]
pub struct LoaderOptions {
    pub batch_size: usize,
    /// Shuffle the examples every epoch with this seed; `None` keeps their order.
    pub shuffle: Option<u64>,
    /// Seed of the rotations drawn per batch.
    pub seed: u64,
}

/// A burn data loader over every example of `examples`, drawn per `regime`. burn-train's
/// multi-device strategies split it into one contiguous share per device.
pub fn digit_loader(
    examples: Arc<dyn Examples>,
    regime: Regime,
    options: LoaderOptions,
) -> Arc<dyn DataLoader<DigitBatch>> {
    let indices = InMemDataset::new((0..examples.len()).collect::<Vec<_>>());
    let builder = DataLoaderBuilder::new(DigitBatcher::new(examples, regime, options.seed))
        .batch_size(options.batch_size);
    match options.shuffle {
        Some(seed) => builder.shuffle(seed).build(indices),
        None => builder.build(indices),
    }
}

/// A progress bar per split for burn-train (on stderr, hidden when it is not a terminal),
/// instead of its plain renderer's line per batch. Metrics come at the end, in the summary
/// (`SupervisedTraining::summary`).
pub struct BarRenderer {
    bar: ProgressBar,
    epochs: usize,
    epoch: usize,
}

impl Default for BarRenderer {
    fn default() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>18} {bar:30.green/white} {pos}/{len} [{elapsed} < {eta}]",
            )
            .expect("a fixed template"),
        );
        BarRenderer {
            bar,
            epochs: 0,
            epoch: 0,
        }
    }
}

impl BarRenderer {
    /// An empty bar of `length` items for the next split or test.
    fn restart(&self, length: usize, message: String) {
        self.bar.reset();
        self.bar.set_length(length as u64);
        self.bar.set_message(message);
    }
}

impl MetricsRendererTraining for BarRenderer {
    fn update_train(&mut self, _state: MetricState) {}

    fn update_valid(&mut self, _state: MetricState) {}
}

impl MetricsRendererEvaluation for BarRenderer {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}
}

impl MetricsRenderer for BarRenderer {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, _definition: MetricDefinition) {}
}

impl TrainingProgressLogger for BarRenderer {
    fn start(&mut self, epochs: usize, starting: usize, _items: Option<usize>, _: Option<&str>) {
        (self.epochs, self.epoch) = (epochs, starting);
    }

    fn update_epoch(&mut self, epoch: usize) {
        self.epoch = epoch;
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        let message = format!("epoch {}/{} {split}", self.epoch.max(1), self.epochs);
        self.restart(total_items, message);
    }

    fn update_split(&mut self, items_processed: usize) {
        self.bar.set_position(items_processed as u64);
    }

    fn end_split(&mut self) {}

    fn end(&mut self) {
        self.bar.finish_and_clear();
    }

    fn log_event_training(&mut self, event: String) {
        self.bar.println(event);
    }
}

impl EvaluationProgressLogger for BarRenderer {
    fn start_global_progress(&mut self, _total_tests: usize) {}

    fn start_test(&mut self, name: &str, total_items: usize) {
        self.restart(total_items, name.to_string());
    }

    fn update_test_progress(&mut self, items_processed: usize) {
        self.bar.set_position(items_processed as u64);
    }

    fn end_test(&mut self) {}

    fn end_global_progress(&mut self) {
        self.bar.finish_and_clear();
    }

    fn log_event_evaluation(&mut self, event: String) {
        self.bar.println(event);
    }
}
