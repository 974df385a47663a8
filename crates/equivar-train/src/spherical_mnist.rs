//! `equivar reproduce spherical-mnist`: MNIST digits projected onto the sphere (Cohen et al.
//! 2018, "Spherical CNNs"), classified by the registry's `spherical-cnn` (a DISCO spherical
//! CNN, [`equivar::models::sphere::spec`]) in the three settings of that paper: NR/NR (train
//! and test upright), NR/R (train upright, test randomly rotated) and R/R. Both trainings are
//! ordinary runs of the shared training loop (`OUT/upright`, `OUT/rotated`: checkpointed,
//! resumable); "R" training draws a new uniformly random rotation per image and epoch, the R
//! test set one per image (seeded).
//!
//! Projection: the digit lies on the plane tangent to the sphere at the north pole, and a
//! sphere point at colatitude theta and longitude phi takes the image value at the plane
//! point it maps to under the stereographic projection from the south pole, `r = 2 tan(theta
//! / 2)` in direction phi, with the image's half-width (14 px) at r = 2, i.e. on the equator:
//! the 28 x 28 digit covers the northern hemisphere, bilinearly sampled; the southern one is 0.
//! A rotated digit takes at w the value the upright one has at R^T w.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use burn::tensor::Device;
use equivar::space::{SphereGrid, apply_inverse};
use equivar_data::{Dataset, Split};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::TrainConfig;
use crate::atomic;
use crate::eval::EVAL_BATCH;
use crate::examples::{Examples, SphereDigits};
use crate::regime::Regime;
use crate::reproduce::train_or_resume;
use crate::trainer::{TrainOptions, count_correct, load_run};

/// The registry's classifier (`equivar::models::sphere::spec`).
const MODEL: &str = "spherical-cnn";

/// The seed of the test set's rotations: every model meets the same rotated digits.
const TEST_SEED: u64 = 2;

/// How much to train and test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SphericalProfile {
    pub name: String,
    /// Latitude rings of the input grid (nlat x 2 nlat, equiangular).
    pub nlat: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub train_limit: Option<usize>,
    pub test_limit: Option<usize>,
    pub seed: u64,
}

impl SphericalProfile {
    /// S2CNN's scale: a 60 x 60 grid there, 64 x 128 here, the full MNIST sets, 20 epochs.
    pub fn full() -> Self {
        SphericalProfile {
            name: "full".into(),
            nlat: 64,
            epochs: 20,
            batch_size: 32,
            lr: 2e-3,
            train_limit: None,
            test_limit: None,
            seed: 0,
        }
    }

    /// Under 45 minutes on 2 cores: the same 64 x 128 grid, 8,000 training images (the
    /// embedded subset), 10 epochs, 2,000 test images.
    pub fn quick() -> Self {
        SphericalProfile {
            name: "quick".into(),
            nlat: 64,
            epochs: 10,
            batch_size: 32,
            lr: 2e-3,
            train_limit: Some(8_000),
            test_limit: Some(2_000),
            seed: 0,
        }
    }
}

/// Bilinear sample of a `side x side` image at (row, col), zero outside.
fn bilinear(image: &[f32], side: usize, row: f64, col: f64) -> f32 {
    let (r0, c0) = (row.floor(), col.floor());
    let (fr, fc) = ((row - r0) as f32, (col - c0) as f32);
    let at = |r: f64, c: f64| -> f32 {
        if r < 0.0 || c < 0.0 || r >= side as f64 || c >= side as f64 {
            0.0
        } else {
            image[r as usize * side + c as usize]
        }
    };
    at(r0, c0) * (1.0 - fr) * (1.0 - fc)
        + at(r0, c0 + 1.0) * (1.0 - fr) * fc
        + at(r0 + 1.0, c0) * fr * (1.0 - fc)
        + at(r0 + 1.0, c0 + 1.0) * fr * fc
}

/// One digit (pixels in [0, 1], `side x side`) on `grid`, rotated by `rotation` if given.
pub fn project(
    image: &[f32],
    side: usize,
    grid: &SphereGrid,
    rotation: Option<&[[f64; 3]; 3]>,
) -> Vec<f32> {
    let half = side as f64 / 2.0;
    let pixels_per_unit = half / 2.0;
    let mut out = Vec::with_capacity(grid.points());
    for i in 0..grid.nlat {
        for j in 0..grid.nlon {
            let w = grid.unit_vector(i, j);
            let [x, y, z] = rotation.map_or(w, |r| apply_inverse(r, w));
            if z <= 0.0 {
                out.push(0.0);
                continue;
            }
            // Stereographic from the south pole: r = 2 tan(theta / 2) = 2 sin / (1 + cos).
            let scale = 2.0 / (1.0 + z);
            let (u, v) = (x * scale, y * scale);
            let col = half - 0.5 + u * pixels_per_unit;
            let row = half - 0.5 - v * pixels_per_unit;
            out.push(bilinear(image, side, row, col));
        }
    }
    out
}

/// Accuracy (percent) of `net` on `test`, each example moved by its own draw of `regime`
/// (seeded, so every model sees the same rotated test set).
fn accuracy(
    net: &equivar::nn::Net,
    test: &SphereDigits,
    regime: Regime,
    seed: u64,
    device: &Device,
) -> Result<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let indices: Vec<usize> = (0..test.len()).collect();
    let mut correct = 0;
    for chunk in indices.chunks(EVAL_BATCH) {
        let (x, y) = test.draw(chunk, regime, &mut rng, device);
        correct += count_correct(net.logits(x)?, y);
    }
    Ok(100.0 * correct as f64 / test.len().max(1) as f64)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SphericalResults {
    pub study: String,
    pub profile: SphericalProfile,
    pub data: String,
    pub grid: String,
    /// Percent.
    pub nr_nr: f64,
    pub nr_r: f64,
    pub r_r: f64,
    pub train_seconds: f64,
}

/// Runs the three settings and writes `results.json` and `results.md` into `out`.
pub fn reproduce(
    profile: &SphericalProfile,
    out: &Path,
    data_dir: Option<PathBuf>,
    options: &TrainOptions,
) -> Result<SphericalResults> {
    let (_lock, _) = crate::run_dir::RunDir::new(out).lock_and_clean()?;
    let location = equivar_data::DataLocation::resolve(data_dir.as_deref());
    let (test_data, source) = equivar_data::load(Dataset::Mnist, Split::Test, &location)?;
    let grid = SphereGrid::equiangular(profile.nlat, 2 * profile.nlat)?;
    println!(
        "spherical MNIST, profile `{}`: {}x{} equiangular grid, {} epochs, batch {}, Adam lr {}, \
         training images {}, test images {}\ndata: {source}",
        profile.name,
        grid.nlat,
        grid.nlon,
        profile.epochs,
        profile.batch_size,
        profile.lr,
        profile
            .train_limit
            .map_or("all".to_string(), |n| n.to_string()),
        profile
            .test_limit
            .map_or("all".to_string(), |n| n.to_string()),
    );
    let started = Instant::now();
    let device = options.compute.device.clone();
    let base = TrainConfig {
        model: MODEL.to_string(),
        input_size: profile.nlat,
        epochs: profile.epochs,
        batch_size: profile.batch_size,
        lr: profile.lr,
        weight_decay: 0.0,
        // A quarter of the learning rate for the last third of the epochs.
        lr_step: (2 * profile.epochs / 3).max(1),
        lr_gamma: 0.25,
        seed: profile.seed,
        train_limit: profile.train_limit,
        data_dir,
        batch_norm_recalibration: 4096,
        ..TrainConfig::paper(MODEL, profile.nlat)
    };
    let test = SphereDigits::new(&test_data, profile.nlat, profile.test_limit)?;
    let upright_dir = out.join("upright");
    let upright = TrainConfig {
        regime: Regime::Upright,
        ..base.clone()
    };
    train_or_resume(&upright, &upright_dir, options)?;
    let (net, _) = load_run(&upright_dir, &options.compute)?;
    let nr_nr = accuracy(&net, &test, Regime::Upright, TEST_SEED, &device)?;
    let nr_r = accuracy(&net, &test, Regime::Uniform, TEST_SEED, &device)?;
    println!("trained upright: NR/NR {nr_nr:.2}%, NR/R {nr_r:.2}%");
    let rotated_dir = out.join("rotated");
    let rotated = TrainConfig {
        regime: Regime::Uniform,
        ..base
    };
    train_or_resume(&rotated, &rotated_dir, options)?;
    let (net, _) = load_run(&rotated_dir, &options.compute)?;
    let r_r = accuracy(&net, &test, Regime::Uniform, TEST_SEED, &device)?;
    println!("trained rotated: R/R {r_r:.2}%");
    let results = SphericalResults {
        study: "spherical-mnist".into(),
        profile: profile.clone(),
        data: source.to_string(),
        grid: format!("equiangular {}x{}", grid.nlat, grid.nlon),
        nr_nr,
        nr_r,
        r_r,
        train_seconds: started.elapsed().as_secs_f64(),
    };
    atomic::write_results(out, &results, &markdown(&results))?;
    Ok(results)
}

/// The table in the paper's form, beside S2CNN's numbers.
pub fn markdown(r: &SphericalResults) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Spherical MNIST: profile `{}`\n", r.profile.name);
    let _ = writeln!(
        s,
        "DISCO spherical CNN (4 isotropic DISCO convolutions, {} grid halved 3 times, \
         quadrature-weighted global average, linear head); {} epochs, batch {}, Adam lr {}; \
         data: {}. Total time {:.1} min.\n",
        r.grid,
        r.profile.epochs,
        r.profile.batch_size,
        r.profile.lr,
        r.data,
        r.train_seconds / 60.0
    );
    let _ = writeln!(s, "| setting | accuracy (%) | S2CNN (Cohen et al. 2018) |");
    let _ = writeln!(s, "|---|---|---|");
    let _ = writeln!(s, "| NR/NR | {:.2} | 96 |", r.nr_nr);
    let _ = writeln!(s, "| NR/R | {:.2} | 93.4 |", r.nr_r);
    let _ = writeln!(s, "| R/R | {:.2} | 95 |", r.r_r);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_puts_the_digit_on_the_northern_hemisphere() {
        let side = 28;
        let mut image = vec![0.0f32; side * side];
        // A bright pixel block at the image centre.
        for r in 12..16 {
            for c in 12..16 {
                image[r * side + c] = 1.0;
            }
        }
        let grid = SphereGrid::equiangular(32, 64).unwrap();
        let upright = project(&image, side, &grid, None);
        // The north pole sees the centre; the south pole and the whole southern half are 0.
        assert!(upright[0] > 0.9, "{}", upright[0]);
        assert!(
            upright[(grid.nlat - 1) * grid.nlon..]
                .iter()
                .all(|v| *v == 0.0)
        );
        // Turning the sphere upside down (rotation by pi about x) moves it to the south pole.
        let flip = [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]];
        let flipped = project(&image, side, &grid, Some(&flip));
        assert!(flipped[(grid.nlat - 1) * grid.nlon] > 0.9);
        assert!(flipped[0] == 0.0);
        // A polar rotation by whole longitude steps is a column shift of the projection.
        let steps = 8;
        let angle = 2.0 * std::f64::consts::PI * steps as f64 / grid.nlon as f64;
        let (s, c) = angle.sin_cos();
        let rz = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]];
        let mut textured = image.clone();
        textured[5 * side + 20] = 0.7;
        let turned = project(&textured, side, &grid, Some(&rz));
        let shifted = grid.shift_longitude(&project(&textured, side, &grid, None), steps as i64);
        let diff = turned
            .iter()
            .zip(&shifted)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff < 1e-5, "{diff}");
    }
}
