//! Images prepared for one model: scaled to [0, 1], resized once to the model's input size,
//! and turned into (optionally rotated) batches on a device.

use burn::tensor::{Device, Int, Tensor, TensorData};
use equivar_data::LabelledImages;
use equivar_data::transform::{resize_bilinear, rotate_bilinear};

/// `count` single-channel `side x side` images with their labels.
#[derive(Clone, Debug)]
pub struct PreparedImages {
    pub side: usize,
    pixels: Vec<f32>,
    pub labels: Vec<u8>,
}

impl PreparedImages {
    /// The first `limit` images (all if `None`), resized to `side x side`. The images must be
    /// square (the data readers refuse other files, naming them).
    pub fn new(data: &LabelledImages, side: usize, limit: Option<usize>) -> anyhow::Result<Self> {
        anyhow::ensure!(
            data.rows == data.cols && data.rows > 0 && side > 0,
            "images of {}x{} pixels cannot be resized to {side}x{side}: square, non-empty \
             images and sizes only",
            data.rows,
            data.cols
        );
        let count = limit.map_or(data.len(), |l| l.min(data.len()));
        let n_in = data.rows;
        let mut pixels = Vec::with_capacity(count * side * side);
        let mut scaled = vec![0.0f32; n_in * n_in];
        for image in data.pixels.chunks_exact(n_in * n_in).take(count) {
            for (s, &p) in scaled.iter_mut().zip(image) {
                *s = p as f32 / 255.0;
            }
            pixels.extend(resize_bilinear(&scaled, n_in, side));
        }
        Ok(PreparedImages {
            side,
            pixels,
            labels: data.labels[..count].to_vec(),
        })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn image(&self, i: usize) -> &[f32] {
        let len = self.side * self.side;
        &self.pixels[i * len..(i + 1) * len]
    }

    /// The images at `indices`, image k rotated by `degrees[k]`, as `[batch, 1, side, side]`
    /// with their labels.
    ///
    /// # Panics
    /// If an index is out of range or `degrees` and `indices` differ in length.
    pub fn batch(
        &self,
        indices: &[usize],
        degrees: &[f64],
        device: &Device,
    ) -> (Tensor<4>, Tensor<1, Int>) {
        assert_eq!(indices.len(), degrees.len());
        let len = self.side * self.side;
        let mut pixels = vec![0.0f32; indices.len() * len];
        for ((out, &i), &angle) in pixels.chunks_exact_mut(len).zip(indices).zip(degrees) {
            if angle == 0.0 {
                out.copy_from_slice(self.image(i));
            } else {
                rotate_bilinear(self.image(i), self.side, angle, out);
            }
        }
        let labels: Vec<i64> = indices.iter().map(|&i| self.labels[i] as i64).collect();
        let x = Tensor::from_data(
            TensorData::new(pixels, [indices.len(), 1, self.side, self.side]),
            device,
        );
        let y = Tensor::from_data(TensorData::new(labels, [indices.len()]), device);
        (x, y)
    }
}
