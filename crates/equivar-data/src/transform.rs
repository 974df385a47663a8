//! Image transforms on square single-channel images stored row-major as `f32`.
//!
//! Both use bilinear interpolation with pixel centres at integer coordinates. Rotation is about
//! the image centre `((n-1)/2, (n-1)/2)`, counter-clockwise as displayed (row 0 at the top) for
//! positive angles, with zero fill; at multiples of 90 degrees it is exactly the grid rotation
//! of `equivar::space::GridAction` (torch's `rot90` convention).

/// Bilinear resize of an `n_in x n_in` image to `n_out x n_out`, with half-pixel alignment
/// (pixel centres of both grids cover the same square, like `align_corners=False`), clamped at
/// the borders. Resizing to the same size is the identity.
///
/// # Panics
/// If `src` does not hold `n_in * n_in` values (a caller's bug; the data readers check shapes).
pub fn resize_bilinear(src: &[f32], n_in: usize, n_out: usize) -> Vec<f32> {
    assert_eq!(src.len(), n_in * n_in, "resize: image is not {n_in}x{n_in}");
    if n_in == n_out {
        return src.to_vec();
    }
    let scale = n_in as f64 / n_out as f64;
    let coord = |i: usize| ((i as f64 + 0.5) * scale - 0.5).clamp(0.0, (n_in - 1) as f64);
    let mut out = vec![0.0; n_out * n_out];
    for i in 0..n_out {
        let y = coord(i);
        for j in 0..n_out {
            out[i * n_out + j] = sample(src, n_in, y, coord(j));
        }
    }
    out
}

/// Rotates an `n x n` image by `degrees` about its centre into `out` (zero fill outside).
///
/// # Panics
/// If `src` or `out` does not hold `n * n` values.
pub fn rotate_bilinear(src: &[f32], n: usize, degrees: f64, out: &mut [f32]) {
    assert_eq!(src.len(), n * n, "rotate: image is not {n}x{n}");
    assert_eq!(out.len(), n * n, "rotate: output is not {n}x{n}");
    let (sin, cos) = snapped_sin_cos(degrees.to_radians());
    let c = (n as f64 - 1.0) / 2.0;
    for i in 0..n {
        let y = i as f64 - c;
        for j in 0..n {
            let x = j as f64 - c;
            // Output pixel p reads the input at R(-angle) p, in display coordinates (y down).
            let src_x = c + x * cos - y * sin;
            let src_y = c + x * sin + y * cos;
            out[i * n + j] = sample(src, n, src_y, src_x);
        }
    }
}

/// sin and cos with values within 1e-12 of 0 or +-1 made exact, so that rotations by
/// multiples of 90 degrees land exactly on the pixel grid.
fn snapped_sin_cos(radians: f64) -> (f64, f64) {
    let snap = |v: f64| {
        let r = v.round();
        if (v - r).abs() < 1e-12 { r } else { v }
    };
    let (s, c) = radians.sin_cos();
    (snap(s), snap(c))
}

/// Bilinear sample at `(y, x)`; taps outside the image read 0.
fn sample(src: &[f32], n: usize, y: f64, x: f64) -> f32 {
    let (y0, x0) = (y.floor(), x.floor());
    let (fy, fx) = ((y - y0) as f32, (x - x0) as f32);
    let tap = |dy: f64, dx: f64| -> f32 {
        let (r, c) = (y0 + dy, x0 + dx);
        if r < 0.0 || c < 0.0 || r >= n as f64 || c >= n as f64 {
            0.0
        } else {
            src[r as usize * n + c as usize]
        }
    };
    let mut v = 0.0;
    for (dy, wy) in [(0.0, 1.0 - fy), (1.0, fy)] {
        for (dx, wx) in [(0.0, 1.0 - fx), (1.0, fx)] {
            let w = wy * wx;
            if w != 0.0 {
                v += w * tap(dy, dx);
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> Vec<f32> {
        (0..n * n).map(|v| (v * 7 % 13) as f32 / 13.0).collect()
    }

    /// torch.rot90(x, k=1, dims=(-2, -1)): out[i][j] = x[j][n-1-i].
    fn rot90(src: &[f32], n: usize) -> Vec<f32> {
        let mut out = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                out[i * n + j] = src[j * n + (n - 1 - i)];
            }
        }
        out
    }

    #[test]
    fn rotation_by_multiples_of_90_is_the_grid_rotation() {
        for n in [5, 6, 27, 28, 29] {
            let img = ramp(n);
            let mut expected = img.clone();
            for quarter in 1..4 {
                expected = rot90(&expected, n);
                let mut out = vec![0.0; n * n];
                rotate_bilinear(&img, n, 90.0 * quarter as f64, &mut out);
                assert_eq!(out, expected, "n={n}, {} degrees", 90 * quarter);
            }
        }
    }

    #[test]
    fn rotation_by_zero_and_360_is_the_identity() {
        let img = ramp(28);
        for angle in [0.0, 360.0, -360.0] {
            let mut out = vec![0.0; 28 * 28];
            rotate_bilinear(&img, 28, angle, &mut out);
            assert_eq!(out, img);
        }
    }

    #[test]
    fn rotation_is_area_preserving_in_the_interior() {
        // A blob in the middle keeps (almost) its mass under a 30-degree rotation.
        let n = 29;
        let mut img = vec![0.0; n * n];
        for i in 10..19 {
            for j in 12..17 {
                img[i * n + j] = 1.0;
            }
        }
        let mut out = vec![0.0; n * n];
        rotate_bilinear(&img, n, 30.0, &mut out);
        let (a, b): (f32, f32) = (img.iter().sum(), out.iter().sum());
        assert!((a - b).abs() / a < 0.02, "mass {a} -> {b}");
    }

    #[test]
    fn resize_keeps_constants_and_identity() {
        assert_eq!(resize_bilinear(&ramp(28), 28, 28), ramp(28));
        for n_out in [27, 29, 14, 56] {
            let out = resize_bilinear(&vec![0.25; 28 * 28], 28, n_out);
            assert!(out.iter().all(|v| (v - 0.25).abs() < 1e-6));
        }
    }

    #[test]
    fn resize_commutes_with_rot90() {
        let img = ramp(28);
        for n_out in [27, 29] {
            let a = rot90(&resize_bilinear(&img, 28, n_out), n_out);
            let b = resize_bilinear(&rot90(&img, 28), 28, n_out);
            let max = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(max < 1e-6, "n_out={n_out}: {max}");
        }
    }
}
