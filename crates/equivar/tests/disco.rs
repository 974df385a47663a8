//! DISCO convolutions on the sphere (the slice kernels' own tests against plain loops are in
//! equivar-kernels): layers against a dense
//! reference computed from the definition (every output point rotated on its own, no psi),
//! gradients against burn's autodiff of a select / scatter-add formulation, exact
//! equivariance under longitude shifts, and named errors.

use std::f64::consts::PI;
use std::sync::Arc;

use burn::module::Param;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use equivar::kernels::{DiscoPsi, FilterBasis, Quadrature};
use equivar::nn::{DiscoConfig, DiscoConvS2, DiscoConvTransposeS2};
use equivar::ops::{self, Kernels};
use equivar::space::SphereGrid;

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn relative_error(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
    diff / scale.max(1e-30)
}

fn as_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|x| *x as f64).collect()
}

/// Deterministic pseudo-random values in [-1, 1).
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn grids() -> Vec<(SphereGrid, SphereGrid, FilterBasis)> {
    let pl = FilterBasis::piecewise_linear(3, 3).unwrap();
    vec![
        (
            SphereGrid::equiangular(9, 20).unwrap(),
            SphereGrid::equiangular(9, 20).unwrap(),
            pl,
        ),
        // Downsampling by 2 in longitude, odd latitude counts.
        (
            SphereGrid::equiangular(13, 24).unwrap(),
            SphereGrid::equiangular(7, 12).unwrap(),
            pl,
        ),
        (
            SphereGrid::gauss_legendre(10, 36).unwrap(),
            SphereGrid::gauss_legendre(5, 12).unwrap(),
            FilterBasis::harmonic(2, 3).unwrap(),
        ),
        (
            SphereGrid::equiangular(12, 40).unwrap(),
            SphereGrid::equiangular(12, 40).unwrap(),
            FilterBasis::piecewise_linear(5, 1).unwrap(),
        ),
    ]
}

fn cutoff(a: &SphereGrid, b: &SphereGrid) -> f64 {
    2.0 * a.latitude_spacing().max(b.latitude_spacing())
}

/// Rotates `v` by R_y(-theta) R_z(-phi): the frame of a filter centred at (theta, phi).
fn into_filter_frame(v: [f64; 3], theta: f64, phi: f64) -> (f64, f64) {
    let (sp, cp) = phi.sin_cos();
    let (x1, y1, z1) = (cp * v[0] + sp * v[1], -sp * v[0] + cp * v[1], v[2]);
    let (st, ct) = theta.sin_cos();
    let (x2, y2, z2) = (ct * x1 - st * z1, y1, st * x1 + ct * z1);
    (z2.clamp(-1.0, 1.0).acos(), y2.atan2(x2))
}

/// The basis responses `[K]` at centre (theta, phi) of a signal on `grid`, straight from the
/// definition: basis values times quadrature weights, over sum |basis| * weights.
fn responses(
    grid: &SphereGrid,
    signal: &[f64],
    basis: FilterBasis,
    cutoff: f64,
    theta: f64,
    phi: f64,
) -> Vec<f64> {
    let k = basis.size();
    let (mut sum, mut norm) = (vec![0.0; k], vec![0.0; k]);
    for i in 0..grid.nlat {
        for j in 0..grid.nlon {
            let (r, a) = into_filter_frame(grid.unit_vector(i, j), theta, phi);
            let q = grid.weights()[i];
            basis.for_each_nonzero(r, a, cutoff, |kk, v| {
                sum[kk] += v * q * signal[i * grid.nlon + j];
                norm[kk] += v.abs() * q;
            });
        }
    }
    sum.iter()
        .zip(&norm)
        .map(|(s, z)| if *z > 0.0 { s / z } else { 0.0 })
        .collect()
}

fn weight_and_bias(
    layer_weight: &Param<Tensor<3>>,
    bias: &Option<Param<Tensor<1>>>,
) -> (Vec<f64>, Vec<f64>) {
    let w = as_f64(&host(layer_weight.val()));
    let b = bias
        .as_ref()
        .map(|b| as_f64(&host(b.val())))
        .unwrap_or_default();
    (w, b)
}

#[test]
fn convolution_matches_the_dense_definition() {
    let device = Device::flex();
    for (fine, coarse, basis) in grids() {
        let config = DiscoConfig::new(2, 3, fine.clone(), coarse.clone(), basis)
            .with_cutoff(cutoff(&fine, &coarse));
        let mut conv: DiscoConvS2 = config.init_conv(&device).unwrap();
        conv.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![0.1f32, -0.2, 0.3], [3]),
            &device,
        )));
        let batch = 2;
        let x = values(batch * 2 * fine.points(), 3);
        let got = host(conv.forward(Tensor::from_data(
            TensorData::new(x.clone(), [batch, 2, fine.nlat, fine.nlon]),
            &device,
        )));
        let (w, b) = weight_and_bias(&conv.weight, &conv.bias);
        let k = basis.size();
        let mut want = vec![0.0; batch * 3 * coarse.points()];
        for n in 0..batch {
            for t in 0..coarse.nlat {
                for p in 0..coarse.nlon {
                    let (theta, phi) = (coarse.colatitudes()[t], coarse.longitude(p));
                    for c in 0..2 {
                        let plane = &as_f64(&x[(n * 2 + c) * fine.points()..][..fine.points()]);
                        let r = responses(&fine, plane, basis, config.cutoff(), theta, phi);
                        for o in 0..3 {
                            let out = &mut want[((n * 3 + o) * coarse.nlat + t) * coarse.nlon + p];
                            if c == 0 {
                                *out = b[o];
                            }
                            *out += (0..k)
                                .map(|kk| w[(o * 2 + c) * k + kk] * r[kk])
                                .sum::<f64>();
                        }
                    }
                }
            }
        }
        let e = relative_error(&got, &want);
        assert!(e <= 1e-5, "{:?}: {e:.2e}", conv.psi);
    }
}

#[test]
fn transposed_convolution_matches_the_dense_definition() {
    let device = Device::flex();
    for (fine, coarse, basis) in grids() {
        let config = DiscoConfig::new(2, 3, coarse.clone(), fine.clone(), basis)
            .with_cutoff(cutoff(&fine, &coarse));
        let conv: DiscoConvTransposeS2 = config.init_transpose(&device).unwrap();
        let x = values(2 * coarse.points(), 4);
        let got = host(conv.forward(Tensor::from_data(
            TensorData::new(x.clone(), [1, 2, coarse.nlat, coarse.nlon]),
            &device,
        )));
        let (w, b) = weight_and_bias(&conv.weight, &conv.bias);
        let k = basis.size();
        let cut = config.cutoff();
        // Normalisers per coarse ring and basis function, over the fine grid.
        let norms: Vec<Vec<f64>> = (0..coarse.nlat)
            .map(|t| {
                let mut z = vec![0.0; k];
                for i in 0..fine.nlat {
                    for j in 0..fine.nlon {
                        let (r, a) =
                            into_filter_frame(fine.unit_vector(i, j), coarse.colatitudes()[t], 0.0);
                        basis.for_each_nonzero(r, a, cut, |kk, v| {
                            z[kk] += v.abs() * fine.weights()[i]
                        });
                    }
                }
                z
            })
            .collect();
        let mut want = vec![0.0; 3 * fine.points()];
        for o in 0..3 {
            for i in 0..fine.nlat {
                for j in 0..fine.nlon {
                    let mut sum = b[o];
                    for t in 0..coarse.nlat {
                        for p in 0..coarse.nlon {
                            let (r, a) = into_filter_frame(
                                fine.unit_vector(i, j),
                                coarse.colatitudes()[t],
                                coarse.longitude(p),
                            );
                            basis.for_each_nonzero(r, a, cut, |kk, v| {
                                for c in 0..2 {
                                    sum += w[(o * 2 + c) * k + kk] * v * coarse.weights()[t]
                                        / norms[t][kk]
                                        * x[(c * coarse.nlat + t) * coarse.nlon + p] as f64;
                                }
                            });
                        }
                    }
                    want[(o * fine.nlat + i) * fine.nlon + j] = sum;
                }
            }
        }
        let e = relative_error(&got, &want);
        assert!(e <= 1e-5, "{:?}: {e:.2e}", conv.psi);
    }
}

/// Gradients of the custom autodiff ops equal burn's autodiff of the select / scatter-add
/// formulation, for the input of both the gather and the scatter.
#[test]
fn gradients_match_burns_autodiff_of_the_generic_path() {
    let device = Device::flex().autodiff();
    for (fine, coarse, basis) in grids() {
        let psi = Arc::new(
            DiscoPsi::new(
                &coarse,
                &fine,
                basis,
                cutoff(&fine, &coarse),
                Quadrature::Columns,
            )
            .unwrap(),
        );
        let planes = 2;
        let x = || {
            Tensor::<3>::from_data(
                TensorData::new(
                    values(planes * fine.points(), 5),
                    [planes, fine.nlat, fine.nlon],
                ),
                &device,
            )
            .require_grad()
        };
        let out_shape = [planes, basis.size(), coarse.nlat, coarse.nlon];
        let r = Tensor::<4>::random(out_shape, Distribution::Normal(0.0, 1.0), &device);
        let (x1, x2) = (x(), x());
        let g1 = (ops::disco_gather(x1.clone(), &psi, Kernels::Equivar) * r.clone())
            .sum()
            .backward();
        let g2 = (ops::disco_gather(x2.clone(), &psi, Kernels::Burn) * r.clone())
            .sum()
            .backward();
        let (d1, d2) = (host(x1.grad(&g1).unwrap()), host(x2.grad(&g2).unwrap()));
        let e = relative_error(&d1, &as_f64(&d2));
        assert!(e <= 1e-5, "gather gradient {e:.2e}");

        let y = || {
            Tensor::<4>::from_data(
                TensorData::new(values(r.shape().num_elements(), 6), out_shape),
                &device,
            )
            .require_grad()
        };
        let s = Tensor::<3>::random(
            [planes, fine.nlat, fine.nlon],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let (y1, y2) = (y(), y());
        let g1 = (ops::disco_scatter(y1.clone(), &psi, Kernels::Equivar) * s.clone())
            .sum()
            .backward();
        let g2 = (ops::disco_scatter(y2.clone(), &psi, Kernels::Burn) * s.clone())
            .sum()
            .backward();
        let (d1, d2) = (host(y1.grad(&g1).unwrap()), host(y2.grad(&g2).unwrap()));
        let e = relative_error(&d1, &as_f64(&d2));
        assert!(e <= 1e-5, "scatter gradient {e:.2e}");
    }
}

/// Whole-layer gradients (input, weight, bias) with equivar's kernels equal those with burn's
/// generic path.
#[test]
fn layer_gradients_are_the_same_on_both_paths() {
    let device = Device::flex().autodiff();
    let (fine, coarse) = (
        SphereGrid::equiangular(12, 24).unwrap(),
        SphereGrid::equiangular(6, 12).unwrap(),
    );
    let basis = FilterBasis::piecewise_linear(3, 3).unwrap();
    let mut conv = DiscoConfig::new(3, 4, fine.clone(), coarse.clone(), basis)
        .with_cutoff(cutoff(&fine, &coarse))
        .init_conv(&device)
        .unwrap();
    let mut up = DiscoConfig::new(4, 2, coarse.clone(), fine.clone(), basis)
        .with_cutoff(cutoff(&fine, &coarse))
        .init_transpose(&device)
        .unwrap();
    let x = Tensor::<4>::from_data(
        TensorData::new(
            values(2 * 3 * fine.points(), 7),
            [2, 3, fine.nlat, fine.nlon],
        ),
        &device,
    );
    let mut run = |kernels| {
        conv.kernels = kernels;
        up.kernels = kernels;
        let x = x.clone().require_grad();
        let y = up.forward(burn::tensor::activation::relu(conv.forward(x.clone())));
        let grads = y.square().sum().backward();
        let mut all = host(x.grad(&grads).unwrap());
        all.extend(host(conv.weight.grad(&grads).unwrap()));
        all.extend(host(conv.bias.as_ref().unwrap().grad(&grads).unwrap()));
        all.extend(host(up.weight.grad(&grads).unwrap()));
        all
    };
    let fast = run(Kernels::Equivar);
    let generic = run(Kernels::Burn);
    let e = relative_error(&fast, &as_f64(&generic));
    assert!(e <= 1e-5, "layer gradients differ by {e:.2e}");
}

/// Rotating the input about the polar axis by whole output-grid steps rotates the output by
/// the same angle, exactly, for the convolution and the transposed convolution.
#[test]
fn longitude_shifts_commute_exactly() {
    let device = Device::flex();
    let (fine, coarse) = (
        SphereGrid::equiangular(16, 32).unwrap(),
        SphereGrid::equiangular(8, 16).unwrap(),
    );
    for basis in [
        FilterBasis::piecewise_linear(3, 3).unwrap(),
        FilterBasis::harmonic(2, 3).unwrap(),
    ] {
        let conv = DiscoConfig::new(2, 3, fine.clone(), coarse.clone(), basis)
            .init_conv(&device)
            .unwrap();
        let up = DiscoConfig::new(3, 2, coarse.clone(), fine.clone(), basis)
            .init_transpose(&device)
            .unwrap();
        let x = values(2 * 2 * fine.points(), 8);
        let tensor = |v: Vec<f32>, g: &SphereGrid, c| {
            Tensor::<4>::from_data(TensorData::new(v, [2, c, g.nlat, g.nlon]), &device)
        };
        for steps in [1i64, 3, -5] {
            // One coarse step is two fine steps.
            let shifted_in = fine.shift_longitude(&x, 2 * steps);
            let y = host(conv.forward(tensor(x.clone(), &fine, 2)));
            let y_shifted = host(conv.forward(tensor(shifted_in, &fine, 2)));
            let want = coarse.shift_longitude(&y, steps);
            let e = relative_error(&y_shifted, &as_f64(&want));
            assert!(e <= 1e-5, "conv, {steps} steps: {e:.2e}");

            let z = host(up.forward(tensor(y.clone(), &coarse, 3)));
            let z_shifted = host(up.forward(tensor(coarse.shift_longitude(&y, steps), &coarse, 3)));
            let e = relative_error(&z_shifted, &as_f64(&fine.shift_longitude(&z, 2 * steps)));
            assert!(e <= 1e-5, "transpose, {steps} steps: {e:.2e}");
        }
    }
}

#[test]
fn invalid_configurations_and_inputs_are_named() {
    let device = Device::flex();
    let basis = FilterBasis::piecewise_linear(3, 3).unwrap();
    let fine = SphereGrid::equiangular(16, 32).unwrap();
    let odd = SphereGrid::equiangular(8, 12).unwrap();
    let e = DiscoConfig::new(1, 1, fine.clone(), odd, basis)
        .init_conv(&device)
        .unwrap_err();
    assert!(e.to_string().contains("multiple"), "{e}");
    let coarse = SphereGrid::equiangular(8, 16).unwrap();
    let e = DiscoConfig::new(1, 1, fine.clone(), coarse, basis)
        .with_cutoff(1e-7)
        .init_conv(&device)
        .unwrap_err();
    assert!(e.to_string().contains("covers no point"), "{e}");
    let e = DiscoConfig::new(0, 1, fine.clone(), fine.clone(), basis)
        .init_conv(&device)
        .unwrap_err();
    assert!(e.to_string().contains("at least one input"), "{e}");
    let conv = DiscoConfig::new(2, 1, fine.clone(), fine.clone(), basis)
        .init_conv(&device)
        .unwrap();
    let e = conv
        .try_forward(Tensor::zeros([1, 2, 16, 30], &device))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[batch >= 1, 2, 16, 32]"), "{e}");
    let _ = PI;
}

/// Under general rotations the isotropic layer's error is discretisation error: it falls
/// several-fold per doubling of the grid (measured: 7.2e-3, 1.2e-3, 2.1e-4 at 32x64, 64x128,
/// 128x256), while polar rotations stay exact.
#[test]
fn so3_equivariance_error_falls_with_resolution() {
    use equivar::check::sphere::disco_equivariance;
    let report = disco_equivariance(
        "disco-s2-iso",
        &[[32, 64], [64, 128]],
        2,
        0,
        &Device::flex(),
        Kernels::Equivar,
    )
    .unwrap();
    let (coarse, fine) = (&report.grids[0], &report.grids[1]);
    println!("{report}");
    assert!(coarse.polar_rel_error <= 1e-5 && fine.polar_rel_error <= 1e-5);
    assert!(fine.so3_rel_error < coarse.so3_rel_error / 3.0, "{report}");
    assert!(fine.so3_rel_error < 5e-3, "{report}");
    assert!(
        disco_equivariance(
            "disco-nope",
            &[[8, 16]],
            1,
            0,
            &Device::flex(),
            Kernels::Equivar
        )
        .is_err()
    );
}
