//! Rotations of 3D space as 3x3 matrices (f64), in e3nn's conventions: Euler angles are
//! Y-X-Y, `R = Y(alpha) X(beta) Y(gamma)` (gamma applied first); quaternions are `(w, x, y, z)`.

use rand::{Rng, SeedableRng, rngs::StdRng};

/// A 3x3 matrix, row-major: `m[row][col]`.
pub type Mat3 = [[f64; 3]; 3];

pub const IDENTITY: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

/// Rotation by `angle` about the x axis.
pub fn matrix_x(angle: f64) -> Mat3 {
    let (s, c) = angle.sin_cos();
    [[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]]
}

/// Rotation by `angle` about the y axis.
pub fn matrix_y(angle: f64) -> Mat3 {
    let (s, c) = angle.sin_cos();
    [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]
}

/// Rotation by `angle` about the z axis.
pub fn matrix_z(angle: f64) -> Mat3 {
    let (s, c) = angle.sin_cos();
    [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
}

pub fn mat_mul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

pub fn transpose(a: &Mat3) -> Mat3 {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in a.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            out[j][i] = v;
        }
    }
    out
}

pub fn apply(a: &Mat3, v: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|i| a[i][0] * v[0] + a[i][1] * v[1] + a[i][2] * v[2])
}

pub fn determinant(a: &Mat3) -> f64 {
    a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
        - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
        + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
}

pub fn negate(a: &Mat3) -> Mat3 {
    a.map(|row| row.map(|v| -v))
}

/// `Y(alpha) X(beta) Y(gamma)`.
pub fn angles_to_matrix(alpha: f64, beta: f64, gamma: f64) -> Mat3 {
    mat_mul(
        &mat_mul(&matrix_y(alpha), &matrix_x(beta)),
        &matrix_y(gamma),
    )
}

/// The Y-X-Y angles of a rotation: `R e_y = (sin a sin b, cos b, cos a sin b)` gives alpha
/// and beta, and `X(-beta) Y(-alpha) R = Y(gamma)` gives gamma.
pub fn matrix_to_angles(r: &Mat3) -> (f64, f64, f64) {
    let y = [r[0][1], r[1][1], r[2][1]];
    let alpha = y[0].atan2(y[2]);
    let beta = y[1].clamp(-1.0, 1.0).acos();
    let rest = mat_mul(&mat_mul(&matrix_x(-beta), &matrix_y(-alpha)), r);
    let gamma = rest[0][2].atan2(rest[0][0]);
    (alpha, beta, gamma)
}

/// The rotation of a unit quaternion `(w, x, y, z)`; the quaternion is normalised first
/// (the sphere grids' [`crate::space::rotation_from_quaternion`]).
pub fn quaternion_to_matrix(q: [f64; 4]) -> Mat3 {
    crate::space::rotation_from_quaternion(q)
}

/// Uniformly distributed rotations (Haar measure), reproducible from `seed`: Shoemake's
/// uniform unit quaternions from three uniform numbers.
pub fn random_rotations(count: usize, seed: u64) -> Vec<Mat3> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let (u1, u2, u3): (f64, f64, f64) = (rng.random(), rng.random(), rng.random());
            let tau = std::f64::consts::TAU;
            let (a, b) = ((1.0 - u1).sqrt(), u1.sqrt());
            quaternion_to_matrix([
                b * (tau * u3).cos(),
                a * (tau * u2).sin(),
                a * (tau * u2).cos(),
                b * (tau * u3).sin(),
            ])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_diff(a: &Mat3, b: &Mat3) -> f64 {
        (0..9)
            .map(|k| (a[k / 3][k % 3] - b[k / 3][k % 3]).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn angles_round_trip_and_random_rotations_are_rotations() {
        for r in random_rotations(50, 7) {
            assert!((determinant(&r) - 1.0).abs() < 1e-12);
            assert!(max_diff(&mat_mul(&r, &transpose(&r)), &IDENTITY) < 1e-12);
            let (a, b, c) = matrix_to_angles(&r);
            assert!(max_diff(&angles_to_matrix(a, b, c), &r) < 1e-12);
        }
    }
}
