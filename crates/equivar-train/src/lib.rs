//! Training and evaluation of equivar models: the `equivar train`, `eval` and `reproduce`
//! commands are thin layers over this crate.

pub mod atomic;
pub mod bench;
pub mod bench_disco;
pub mod bench_o3;
pub mod bench_segnn;
pub mod config;
pub mod data_parallel;
pub mod e2_mnist_rot;
pub mod eval;
pub mod examples;
pub mod images;
pub mod lie_plot;
pub mod plot;
pub mod qm9;
pub mod regime;
pub mod reproduce;
pub mod run_dir;
pub mod segnn_qm9;
pub mod spherical_mnist;
pub mod trainer;

pub use config::TrainConfig;
pub use regime::Regime;
