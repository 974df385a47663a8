//! The sampling window of a convolution or pooling layer, and the exactness condition of
//! "Using and Abusing Equivariance" (Edixhoven, Lengyel, van Gemert 2023).

use serde::{Deserialize, Serialize};

/// Kernel, stride, symmetric padding and dilation of a sliding window (square).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
}

impl Window {
    /// A `kernel x kernel` window with stride 1, no padding, no dilation.
    pub fn new(kernel: usize) -> Self {
        Window {
            kernel,
            stride: 1,
            padding: 0,
            dilation: 1,
        }
    }

    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }

    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }

    pub fn dilation(mut self, dilation: usize) -> Self {
        self.dilation = dilation;
        self
    }

    /// Pixels covered by one window: `d(k-1) + 1`.
    pub fn span(&self) -> usize {
        self.dilation * (self.kernel - 1) + 1
    }

    /// Output size for an `n x n` input, `(n + 2p - d(k-1) - 1)/s + 1`, or `None` when the
    /// window does not fit.
    pub fn out_size(&self, n: usize) -> Option<usize> {
        (n + 2 * self.padding)
            .checked_sub(self.span())
            .map(|free| free / self.stride + 1)
    }

    /// `(n + 2p - d(k-1) - 1) mod s`: zero iff the sampling grid touches both borders, i.e. is
    /// symmetric about the image centre, which is when the layer commutes exactly with 90-degree
    /// rotations and mirrors. Meaningful only when the window fits.
    pub fn remainder(&self, n: usize) -> usize {
        (n + 2 * self.padding).saturating_sub(self.span()) % self.stride
    }

    /// Whether the layer is exactly equivariant at input size `n` (stride 1 always is).
    pub fn is_exact(&self, n: usize) -> bool {
        self.remainder(n) == 0
    }

    /// Exactness of a *pooling* layer at input size `n`. A pool weighs every tap alike (max, or
    /// a sum over a fixed divisor), so it only needs each window's set of in-image taps to be
    /// the mirror image of the opposite window's set. The grid condition
    /// [`Window::is_exact`] implies this; with padding the converse fails when the
    /// off-centre taps fall only on padding (e.g. `n = 5`, kernel 3, dilation 2, stride 3,
    /// padding 1: windows read pixels {1, 3} either way). Convolutions, whose taps carry
    /// different weights, need the grid condition itself.
    pub fn is_exact_pool(&self, n: usize) -> bool {
        let Some(m) = self.out_size(n) else {
            return false;
        };
        // The grid condition implies it (above); checking it first keeps this O(1) for exact
        // sizes, and an inexact size fails at the first window that lies inside the image.
        if self.is_exact(n) {
            return true;
        }
        let taps = |j: usize| -> Vec<usize> {
            (0..self.kernel)
                .filter_map(|t| {
                    (self.stride * j + self.dilation * t)
                        .checked_sub(self.padding)
                        .filter(|&x| x < n)
                })
                .collect()
        };
        (0..m).all(|j| {
            let mut mirrored: Vec<usize> = taps(m - 1 - j).iter().map(|&x| n - 1 - x).collect();
            mirrored.sort_unstable();
            taps(j) == mirrored
        })
    }

    /// Checks the parameters are usable: positive kernel, stride and dilation.
    pub fn validate(&self) -> Result<(), String> {
        if self.kernel == 0 || self.stride == 0 || self.dilation == 0 {
            return Err(format!(
                "kernel ({}), stride ({}) and dilation ({}) must all be at least 1",
                self.kernel, self.stride, self.dilation
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_examples() {
        // The MNIST net's 2x2/2 max pool: 28 exact, 27 and 29 not.
        let pool = Window::new(2).stride(2);
        assert!(pool.is_exact(28));
        assert!(!pool.is_exact(27));
        assert!(!pool.is_exact(29));
        assert_eq!(pool.out_size(28), Some(14));
        // final 4x4 conv: 14 -> 11
        assert_eq!(Window::new(4).out_size(14), Some(11));
        // a 3x3/2 p1 conv needs odd sizes
        let conv = Window::new(3).stride(2).padding(1);
        assert!(conv.is_exact(33) && !conv.is_exact(32));
        assert_eq!(Window::new(5).dilation(2).out_size(8), None);
    }

    #[test]
    fn pools_can_be_exact_through_padding() {
        let w = Window::new(3).dilation(2).stride(3).padding(1);
        assert!(!w.is_exact(5));
        assert!(w.is_exact_pool(5));
        // without padding the two conditions coincide
        for n in 5..40 {
            let w = Window::new(2).stride(2);
            assert_eq!(w.is_exact(n), w.is_exact_pool(n));
        }
    }
}
