//! `equivar reproduce spherical-mnist`: MNIST digits projected onto the sphere (Cohen et al.
//! 2018, "Spherical CNNs"), classified by a DISCO spherical CNN
//! ([`equivar::models::sphere::SphericalCnn`]) in the three settings of that paper:
//! NR/NR (train and test upright), NR/R (train upright, test randomly rotated) and R/R.
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
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use equivar::models::sphere::{SphericalCnn, SphericalCnnConfig};
use equivar::space::{SphereGrid, apply_inverse, rotation_from_quaternion};
use equivar_data::{Dataset, LabelledImages, Split};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::trainer::count_correct;

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

/// Digits on the sphere: `[n, nlat * nlon]` values and labels.
pub struct SphereImages {
    pub grid: SphereGrid,
    pub values: Vec<f32>,
    pub labels: Vec<u8>,
}

impl SphereImages {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn batch(&self, indices: &[usize], device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        let points = self.grid.points();
        let mut values = Vec::with_capacity(indices.len() * points);
        for &i in indices {
            values.extend_from_slice(&self.values[i * points..][..points]);
        }
        let x = Tensor::from_data(
            TensorData::new(values, [indices.len(), 1, self.grid.nlat, self.grid.nlon]),
            device,
        );
        let labels: Vec<i64> = indices.iter().map(|&i| self.labels[i] as i64).collect();
        let y = Tensor::from_data(TensorData::new(labels, [indices.len()]), device);
        (x, y)
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

fn random_rotation(rng: &mut StdRng) -> [[f64; 3]; 3] {
    rotation_from_quaternion(std::array::from_fn(|_| StandardNormal.sample(rng)))
}

/// Projects the first `limit` digits, each rotated by its own random rotation if `rotate`.
pub fn project_all(
    data: &LabelledImages,
    grid: &SphereGrid,
    limit: Option<usize>,
    rotate: bool,
    seed: u64,
) -> SphereImages {
    let n = limit.map_or(data.labels.len(), |l| l.min(data.labels.len()));
    let side = data.rows;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut values = Vec::with_capacity(n * grid.points());
    for i in 0..n {
        let image: Vec<f32> = data.pixels[i * side * side..][..side * side]
            .iter()
            .map(|p| *p as f32 / 255.0)
            .collect();
        let rotation = rotate.then(|| random_rotation(&mut rng));
        values.extend(project(&image, side, grid, rotation.as_ref()));
    }
    SphereImages {
        grid: grid.clone(),
        values,
        labels: data.labels[..n].to_vec(),
    }
}

/// Trains a classifier on `train`; returns it in inference mode.
fn train(
    profile: &SphericalProfile,
    train: &SphereImages,
    label: &str,
    progress: bool,
) -> Result<SphericalCnn> {
    let device = Device::flex();
    let ad = device.clone().autodiff();
    ad.seed(profile.seed);
    let mut net = SphericalCnnConfig::new(profile.nlat, 10).init(&ad)?;
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let mut rng = StdRng::seed_from_u64(profile.seed);
    for epoch in 0..profile.epochs {
        let started = Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut rng);
        // A quarter of the learning rate for the last third of the epochs.
        let lr = if epoch >= 2 * profile.epochs / 3 {
            profile.lr / 4.0
        } else {
            profile.lr
        };
        let (mut loss_sum, mut correct) = (0.0, 0usize);
        for chunk in order.chunks(profile.batch_size) {
            let (x, y) = train.batch(chunk, &ad);
            let logits = net.forward(x);
            let loss = loss_fn.forward(logits.clone(), y.clone());
            let value = loss.clone().into_scalar::<f64>();
            anyhow::ensure!(
                value.is_finite(),
                "the loss became {value} at epoch {}; lower the learning rate",
                epoch + 1
            );
            loss_sum += value * chunk.len() as f64;
            correct += count_correct(logits, y);
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(lr, net, grads);
        }
        if progress {
            eprintln!(
                "  [{label}] epoch {:>2}/{}: loss {:.4}, train acc {:.2}%, {:.0} img/s",
                epoch + 1,
                profile.epochs,
                loss_sum / train.len() as f64,
                100.0 * correct as f64 / train.len() as f64,
                train.len() as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    // Precise batch norm over (up to) 4096 training images, in training order.
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.shuffle(&mut rng);
    order.truncate(4096);
    let batches = order
        .chunks(profile.batch_size)
        .map(|chunk| train.batch(chunk, &ad).0);
    Ok(net.recalibrate_batch_norm(batches).valid())
}

/// Accuracy in percent.
fn accuracy(net: &SphericalCnn, test: &SphereImages) -> f64 {
    let device = Device::flex();
    let indices: Vec<usize> = (0..test.len()).collect();
    let correct: usize = indices
        .chunks(256)
        .map(|chunk| {
            let (x, y) = test.batch(chunk, &device);
            count_correct(net.forward(x), y)
        })
        .sum();
    100.0 * correct as f64 / test.len().max(1) as f64
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
    progress: bool,
) -> Result<SphericalResults> {
    let (_lock, _) = crate::run_dir::RunDir::new(out).lock_and_clean()?;
    let location = equivar_data::DataLocation::resolve(data_dir.as_deref());
    let (train_data, source) = equivar_data::load(Dataset::Mnist, Split::Train, &location)?;
    let (test_data, _) = equivar_data::load(Dataset::Mnist, Split::Test, &location)?;
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
    let train_nr = project_all(&train_data, &grid, profile.train_limit, false, 0);
    let train_r = project_all(&train_data, &grid, profile.train_limit, true, 1);
    let test_nr = project_all(&test_data, &grid, profile.test_limit, false, 0);
    let test_r = project_all(&test_data, &grid, profile.test_limit, true, 2);

    let upright = train(profile, &train_nr, "NR", progress)?;
    let (nr_nr, nr_r) = (accuracy(&upright, &test_nr), accuracy(&upright, &test_r));
    println!("trained upright: NR/NR {nr_nr:.2}%, NR/R {nr_r:.2}%");
    let rotated = train(profile, &train_r, "R", progress)?;
    let r_r = accuracy(&rotated, &test_r);
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
    atomic::write_json(&out.join("results.json"), &results)?;
    atomic::write(&out.join("results.md"), markdown(&results).as_bytes())?;
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
