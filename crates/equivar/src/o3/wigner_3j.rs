//! Wigner 3j symbols in e3nn's real basis and normalisation, computed (not tabulated).
//!
//! `C[m1, m2, m3]` (shape `(2l1+1, 2l2+1, 2l3+1)`, inputs first, output last) is the
//! invariant tensor: `C = (D1 x D2 x D3) C` for every rotation. It is built from the
//! complex Clebsch-Gordan coefficients (Racah's formula, Condon-Shortley phases) by the change
//! of basis from complex to real harmonics, `Y_real = U Y_complex` with
//! - `Y_{l,m}  = ((-1)^m Y^m + Y^-m) / sqrt(2)`,
//! - `Y_{l,-m} = ((-1)^m Y^m - Y^-m) / (i sqrt(2))` for m > 0,
//!
//! `C = i^(l1 + l2 - l3) (U1 x U2 x conj U3) CG`, which is real, and is finally scaled to
//! unit Frobenius norm (e3nn's normalisation; standard Clebsch-Gordan coefficients sum to
//! `2l3 + 1`). The phase `i^(l1+l2-l3)` gives every block the overall sign of e3nn's
//! construction (`(-i)^(l1+l2-l3)` differs from it exactly when `l1 + l2 + l3` is odd); the
//! tests compare the signs of all blocks up to degree 6 against e3nn's own tensors. The real
//! basis is the textbook one while e3nn's harmonics use `(z, x, y)` as textbook coordinates,
//! but that permutation is a rotation, so the invariant tensors coincide.

use nalgebra::Complex;

use super::{MAX_L, O3Error};

/// The 3j tensor, row-major over `[m1][m2][m3]`.
pub fn wigner_3j(l1: usize, l2: usize, l3: usize) -> Result<Vec<f64>, O3Error> {
    let lmax = l1.max(l2).max(l3);
    if lmax > MAX_L {
        return Err(O3Error::DegreeTooHigh {
            l: lmax,
            what: "3j symbols",
        });
    }
    if l3 < l1.abs_diff(l2) || l3 > l1 + l2 {
        return Err(O3Error::NoCoupling { l1, l2, l3 });
    }
    let (n1, n2, n3) = (2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1);
    let (u1, u2, u3) = (
        real_from_complex(l1),
        real_from_complex(l2),
        real_from_complex(l3),
    );
    // i^k for k = l1 + l2 - l3 (mod 4).
    let phase = match (l1 + l2 + 4 * l3 - l3) % 4 {
        0 => Complex::new(1.0, 0.0),
        1 => Complex::new(0.0, 1.0),
        2 => Complex::new(-1.0, 0.0),
        _ => Complex::new(0.0, -1.0),
    };
    let mut out = vec![0.0; n1 * n2 * n3];
    for a in 0..n1 {
        for b in 0..n2 {
            for c in 0..n3 {
                let mut sum = Complex::new(0.0, 0.0);
                for &(i, x) in &u1[a] {
                    for &(j, y) in &u2[b] {
                        for &(k, z) in &u3[c] {
                            let (m1, m2, m3) = (
                                i as i64 - l1 as i64,
                                j as i64 - l2 as i64,
                                k as i64 - l3 as i64,
                            );
                            if m1 + m2 != m3 {
                                continue;
                            }
                            let cg = clebsch_gordan(l1, m1, l2, m2, l3, m3);
                            sum += x * y * z.conj() * cg;
                        }
                    }
                }
                out[(a * n2 + b) * n3 + c] = (phase * sum).re;
            }
        }
    }
    let norm = out.iter().map(|v| v * v).sum::<f64>().sqrt();
    out.iter_mut().for_each(|v| *v /= norm);
    Ok(out)
}

/// Row `a` (real index `m = a - l`) of `U`: its nonzero entries as (complex index, value).
fn real_from_complex(l: usize) -> Vec<Vec<(usize, Complex<f64>)>> {
    let s = std::f64::consts::FRAC_1_SQRT_2;
    (0..2 * l + 1)
        .map(|a| {
            let m = a as i64 - l as i64;
            let mu = m.unsigned_abs() as usize;
            let sign = if mu.is_multiple_of(2) { 1.0 } else { -1.0 };
            let (plus, minus) = (l + mu, l - mu);
            match m.cmp(&0) {
                std::cmp::Ordering::Equal => vec![(l, Complex::new(1.0, 0.0))],
                // ((-1)^m Y^m + Y^-m) / sqrt(2)
                std::cmp::Ordering::Greater => {
                    vec![
                        (plus, Complex::new(sign * s, 0.0)),
                        (minus, Complex::new(s, 0.0)),
                    ]
                }
                // -i ((-1)^m Y^m - Y^-m) / sqrt(2)
                std::cmp::Ordering::Less => {
                    vec![
                        (plus, Complex::new(0.0, -sign * s)),
                        (minus, Complex::new(0.0, s)),
                    ]
                }
            }
        })
        .collect()
}

/// `<l1 m1 l2 m2 | l3 m3>` by Racah's formula (Condon-Shortley phases).
fn clebsch_gordan(l1: usize, m1: i64, l2: usize, m2: i64, l3: usize, m3: i64) -> f64 {
    let (j1, j2, j3) = (l1 as i64, l2 as i64, l3 as i64);
    let f = |n: i64| factorial(n as usize);
    let prefactor = ((2 * j3 + 1) as f64 * f(j3 + j1 - j2) * f(j3 - j1 + j2) * f(j1 + j2 - j3)
        / f(j1 + j2 + j3 + 1)
        * f(j3 + m3)
        * f(j3 - m3)
        * f(j1 - m1)
        * f(j1 + m1)
        * f(j2 - m2)
        * f(j2 + m2))
    .sqrt();
    let k_min = 0.max(j2 - j3 - m1).max(j1 - j3 + m2);
    let k_max = (j1 + j2 - j3).min(j1 - m1).min(j2 + m2);
    let mut sum = 0.0;
    for k in k_min..=k_max {
        let term = 1.0
            / (f(k)
                * f(j1 + j2 - j3 - k)
                * f(j1 - m1 - k)
                * f(j2 + m2 - k)
                * f(j3 - j2 + m1 + k)
                * f(j3 - j1 - m2 + k));
        sum += if k % 2 == 0 { term } else { -term };
    }
    prefactor * sum
}

fn factorial(n: usize) -> f64 {
    (1..=n).map(|k| k as f64).product()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clebsch_gordan_known_values() {
        // <1 1 1 -1 | 0 0> = 1/sqrt(3); <1/2 ...> not representable; <1 0 1 0 | 2 0> = sqrt(2/3).
        assert!((clebsch_gordan(1, 1, 1, -1, 0, 0) - 1.0 / 3f64.sqrt()).abs() < 1e-15);
        assert!((clebsch_gordan(1, 0, 1, 0, 2, 0) - (2.0f64 / 3.0).sqrt()).abs() < 1e-15);
        assert!((clebsch_gordan(1, 1, 1, 0, 1, 1) - 0.5f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn uncoupled_degrees_are_refused() {
        let e = wigner_3j(1, 1, 3).unwrap_err().to_string();
        assert!(e.contains("1 x 1") && e.contains("0..=2"), "{e}");
    }
}
