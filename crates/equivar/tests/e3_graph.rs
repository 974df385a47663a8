//! Radial bases against e3nn's numbers, radius graphs against brute force, scatter sums.

mod common;

use burn::tensor::{Device, Tensor, TensorData};
use common::host;
use equivar::e3::graph::{radius_graph, scatter_mean, scatter_sum};
use equivar::e3::radial::{RadialBasis, polynomial_cutoff, soft_one_hot_linspace};

fn lengths(values: &[f32], device: &Device) -> Tensor<1> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
}

#[test]
fn radial_bases_equal_e3nns() {
    let device = Device::flex();
    // e3nn 0.6.0, soft_one_hot_linspace(r, 0, 5, 8, basis, cutoff=True) in float64 at
    // r = 0.3, 1.0, 2.2, 4.9, 5.0 (printed with the peers venv on 2026-12-06).
    let r = [0.3f32, 1.0, 2.2, 4.9, 5.0];
    let smooth_finite: [[f64; 8]; 5] = [
        [0.6672684602742595, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [
            0.032603519975454465,
            1.0501018930813242,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
        ],
        [
            0.0,
            0.0,
            7.031868606502297e-11,
            1.137707651121665,
            0.0,
            0.0,
            0.0,
            0.0,
        ],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.018820932999091135],
        [0.0; 8],
    ];
    let gaussian_row2 = [
        0.00013985160171252315,
        0.019160034892928918,
        0.3552517146885754,
        0.8914297136764342,
        0.30272554219146663,
        0.013913040887798708,
        8.653784845719669e-05,
        7.284523714972009e-08,
    ];
    let bessel_row0 = [
        0.39503449669828017,
        0.7760746994094897,
        1.1296220689878023,
        1.443152013607473,
        1.7055575786723092,
        1.9075429162195305,
        2.041952594968227,
        2.1040250850397717,
    ];
    let bessel_row3 = [
        0.008104532946037276,
        -0.016177081003145452,
        0.024185785512139513,
        -0.03209903977515152,
        0.03988561379282737,
        -0.047514777514866546,
        0.05495642211749156,
        -0.06218117882921987,
    ];
    let close = |got: &[f32], want: &[f64], what: &str| {
        for (k, (&a, &b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a as f64 - b).abs() <= 2e-6 * (1.0 + b.abs()),
                "{what}[{k}]: {a} vs {b}"
            );
        }
    };
    let y = host(
        soft_one_hot_linspace(
            lengths(&r, &device),
            0.0,
            5.0,
            8,
            RadialBasis::SmoothFinite,
            true,
        )
        .unwrap(),
    );
    for (i, row) in smooth_finite.iter().enumerate() {
        close(
            &y[i * 8..(i + 1) * 8],
            row,
            &format!("smooth_finite r={}", r[i]),
        );
    }
    let y = host(
        soft_one_hot_linspace(
            lengths(&r, &device),
            0.0,
            5.0,
            8,
            RadialBasis::Gaussian,
            true,
        )
        .unwrap(),
    );
    close(&y[16..24], &gaussian_row2, "gaussian r=2.2");
    let y = host(
        soft_one_hot_linspace(lengths(&r, &device), 0.0, 5.0, 8, RadialBasis::Bessel, true)
            .unwrap(),
    );
    close(&y[0..8], &bessel_row0, "bessel r=0.3");
    close(&y[24..32], &bessel_row3, "bessel r=4.9");
    close(&y[32..40], &[0.0; 8], "bessel r=5 (cut)");
    let e = soft_one_hot_linspace(
        lengths(&r, &device),
        5.0,
        5.0,
        8,
        RadialBasis::Gaussian,
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("start < end"), "{e}");
}

#[test]
fn polynomial_cutoff_is_smooth_and_vanishes_at_the_cutoff() {
    let device = Device::flex();
    let r = [0.0f32, 1.0, 2.5, 4.999, 5.0, 6.0];
    let u = host(polynomial_cutoff(lengths(&r, &device), 5.0, 6));
    assert!((u[0] - 1.0).abs() < 1e-6);
    assert!(u[1] < 1.0 && u[1] > u[2] && u[2] > 0.0);
    assert!(u[3].abs() < 1e-6 && u[4] == 0.0 && u[5] == 0.0);
    // d = 0.5: 1 - 28/64 + 48/128 - 21/256 by the formula (p = 6).
    let expected = 1.0 - 28.0 / 64.0 + 48.0 / 128.0 - 21.0 / 256.0;
    assert!((u[2] as f64 - expected).abs() < 1e-6, "{}", u[2]);
}

/// Deterministic points in a box.
fn points(n: usize, seed: u64, size: f32) -> Vec<[f32; 3]> {
    let mut state = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..n)
        .map(|_| [next() * size, next() * size - size / 2.0, next() * size])
        .collect()
}

#[test]
fn radius_graph_equals_brute_force() {
    let positions = points(300, 3, 6.0);
    // Three graphs; points of different graphs never connect, even where they overlap.
    let graph: Vec<usize> = (0..300).map(|i| i % 3).collect();
    for radius in [0.7f32, 1.5, 2.0] {
        let edges = radius_graph(&positions, &graph, radius).unwrap();
        let mut expected = Vec::new();
        for i in 0..300 {
            for j in 0..300 {
                let d2: f32 = (0..3)
                    .map(|a| (positions[i][a] - positions[j][a]).powi(2))
                    .sum();
                if i != j && graph[i] == graph[j] && d2 <= radius * radius {
                    expected.push((i, j));
                }
            }
        }
        let got: Vec<(usize, usize)> = edges
            .target
            .iter()
            .copied()
            .zip(edges.source.iter().copied())
            .collect();
        assert_eq!(got, expected, "radius {radius}");
        assert!(!got.is_empty());
    }
    let e = radius_graph(&positions, &graph[..10], 1.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("300 positions but 10 graph numbers"), "{e}");
    let e = radius_graph(&[[0.0, f32::NAN, 0.0]], &[0], 1.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("point 0"), "{e}");
    let e = radius_graph(&positions, &graph, 0.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("positive"), "{e}");
}

#[test]
fn scatter_sums_and_means_add_up() {
    let device = Device::flex().autodiff();
    let values = Tensor::<2>::from_data(
        TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], [4, 2]),
        &device,
    )
    .require_grad();
    let index = [2usize, 0, 2, 2];
    let idx = Tensor::from_data(
        TensorData::new(index.iter().map(|&i| i as i64).collect::<Vec<_>>(), [4]),
        &device,
    );
    let sum = scatter_sum(values.clone(), idx, 3);
    assert_eq!(host(sum.clone()), vec![3.0, 4.0, 0.0, 0.0, 13.0, 16.0]);
    let mean = scatter_mean(values.clone(), &index, 3);
    let m = host(mean.clone());
    assert!((m[4] - 13.0 / 3.0).abs() < 1e-6 && m[2] == 0.0 && m[0] == 3.0);
    // d sum(mean) / d values = 1 / count of the value's slot.
    let g = mean.sum().backward();
    let dv = host(values.grad(&g).unwrap());
    assert!(
        (dv[0] - 1.0 / 3.0).abs() < 1e-6 && (dv[2] - 1.0).abs() < 1e-6,
        "{dv:?}"
    );
}
