//! The E(3) layers on burn: equivariance in float32 under random rotations and parity, e3nn's
//! gate numbers, and equivar's kernels against burn's generic path (outputs and gradients).

mod common;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use common::{host, relative_error, seeded_values};
use equivar::e3::{self, Activation, Gate, Linear, SphericalHarmonics, TensorProduct};
use equivar::o3::{self, Irreps, Normalization, rotation};
use equivar::ops::Kernels;

fn parse(s: &str) -> Irreps {
    s.parse().unwrap()
}

fn tensor(rows: usize, cols: usize, seed: u64, device: &Device) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(seeded_values(rows * cols, seed), [rows, cols]),
        device,
    )
}

/// max over random rotations R and their improper partners -R of
/// |f(D_in x) - D_out f(x)| / max |f(x)|, in float32.
fn equivariance_error(
    inputs: &[(Irreps, Tensor<2>)],
    out: &Irreps,
    f: impl Fn(&[Tensor<2>]) -> Tensor<2>,
) -> f64 {
    let xs: Vec<Tensor<2>> = inputs.iter().map(|(_, x)| x.clone()).collect();
    let y = f(&xs);
    let mut worst = 0.0f64;
    for r in rotation::random_rotations(3, 17) {
        for q in [r, rotation::negate(&r)] {
            let moved: Vec<Tensor<2>> = inputs
                .iter()
                .map(|(irreps, x)| e3::transform(x.clone(), irreps, &q).unwrap())
                .collect();
            let lhs = host(f(&moved));
            let rhs = host(e3::transform(y.clone(), out, &q).unwrap());
            worst = worst.max(relative_error(&lhs, &rhs));
        }
    }
    worst
}

#[test]
fn layers_are_equivariant_in_float32() {
    let device = Device::flex();
    let n = 40;
    for kernels in [Kernels::Equivar, Kernels::Burn] {
        let sh = SphericalHarmonics::new(3, Normalization::Component, true)
            .unwrap()
            .with_kernels(kernels);
        let vectors = tensor(n, 3, 1, &device);
        let e = equivariance_error(&[(parse("1x1o"), vectors.clone())], sh.irreps_out(), |x| {
            sh.forward(x[0].clone())
        });
        assert!(e <= 1e-5, "{kernels:?} harmonics: {e:e}");

        let features = parse("8x0e+4x1o+2x2e+2x1e");
        let fc = TensorProduct::new(
            o3::TensorProduct::fully_connected(
                features.clone(),
                sh.irreps_out().clone(),
                features.clone(),
            )
            .unwrap(),
            &device,
        )
        .with_kernels(kernels);
        let x = tensor(n, features.dim(), 2, &device);
        let edge = sh.forward(vectors.clone());
        let e = equivariance_error(
            &[
                (features.clone(), x.clone()),
                (sh.irreps_out().clone(), edge.clone()),
            ],
            fc.irreps_out(),
            |x| fc.forward(x[0].clone(), x[1].clone()),
        );
        assert!(e <= 1e-5, "{kernels:?} fully connected: {e:e}");

        let cw = TensorProduct::external(
            o3::TensorProduct::channel_wise(
                features.clone(),
                sh.irreps_out().clone(),
                &parse("0e+1o+2e+1e"),
            )
            .unwrap(),
        )
        .with_kernels(kernels);
        let w = tensor(n, cw.product.weight_numel(), 3, &device);
        let scalars = parse(&format!("{}x0e", cw.product.weight_numel()));
        let e = equivariance_error(
            &[
                (features.clone(), x.clone()),
                (sh.irreps_out().clone(), edge.clone()),
                (scalars, w),
            ],
            cw.irreps_out(),
            |x| cw.forward_with_weights(x[0].clone(), x[1].clone(), x[2].clone()),
        );
        assert!(e <= 1e-5, "{kernels:?} channel-wise: {e:e}");
    }

    let features = parse("8x0e+4x1o+2x2e+2x1e+3x0o");
    let mut linear = Linear::new(
        features.clone(),
        parse("5x0e+3x1o+1x2e+2x0o+1x3o"),
        true,
        &device,
    )
    .unwrap();
    let x = tensor(n, features.dim(), 4, &device);
    // Give the biases a value: zeros would hide a bias on the wrong irreps.
    linear.bias = linear.bias.map(|b| b.map(|t| t + 0.5));
    let e = equivariance_error(&[(features.clone(), x.clone())], &linear.irreps_out, |x| {
        linear.forward(x[0].clone())
    });
    assert!(e <= 1e-5, "linear: {e:e}");

    for kernels in [Kernels::Equivar, Kernels::Burn] {
        let gate = Gate::new(
            parse("4x0e+2x0o"),
            Activation::Tanh,
            parse("3x0e+2x0o"),
            Activation::Tanh,
            parse("2x1o+3x2e"),
        )
        .unwrap()
        .with_kernels(kernels);
        let x = tensor(n, gate.irreps_in().dim(), 5, &device);
        let e = equivariance_error(&[(gate.irreps_in().clone(), x)], gate.irreps_out(), |x| {
            gate.forward(x[0].clone())
        });
        assert!(e <= 1e-5, "{kernels:?} gate: {e:e}");
    }
}

#[test]
fn gate_matches_e3nn() {
    for kernels in [Kernels::Equivar, Kernels::Burn] {
        let gate = Gate::new(
            parse("32x0e"),
            Activation::Silu,
            parse("32x0e"),
            Activation::Sigmoid,
            parse("32x1o"),
        )
        .unwrap()
        .with_kernels(kernels);
        assert_eq!(gate.irreps_in().to_string(), "32x0e+32x0e+32x1o");
        assert_eq!(gate.irreps_out().to_string(), "32x0e+32x1o");
        let device = Device::flex();
        let x: Vec<f32> = (0..gate.irreps_in().dim())
            .map(|i| ((i + 1) as f64).sin() as f32)
            .collect();
        let y = host(gate.forward(Tensor::from_data(
            TensorData::new(x, [1, gate.irreps_in().dim()]),
            &device,
        )));
        // e3nn 0.6.0 (../shared/peers/e3nn-results-2026-11-29.txt, case silu_sigmoid).
        let head = [
            0.987353989513,
            1.088439820471,
            0.12682901585,
            -0.405820048219,
            -0.446177093191,
            -0.202030991522,
            0.726546719133,
            1.211028550352,
        ];
        for (a, b) in y.iter().zip(head) {
            assert!((*a as f64 - b).abs() < 2e-6, "{kernels:?}: {a} vs {b}");
        }
        let sum: f64 = y.iter().map(|&v| v as f64).sum();
        let sq: f64 = y.iter().map(|&v| (v as f64).powi(2)).sum();
        assert!(
            (sum - 7.906513485565298).abs() < 1e-4 && (sq - 59.27031123218592).abs() < 1e-4,
            "{kernels:?}: {sum} {sq}"
        );
    }
    // e3nn puts odd gates first: 8x0e scalars with 4x0o gates read 4x0o+8x0e+4x1o.
    let odd = Gate::new(
        parse("8x0e"),
        Activation::Silu,
        parse("4x0o"),
        Activation::Tanh,
        parse("4x1o"),
    )
    .unwrap();
    assert_eq!(odd.irreps_in().to_string(), "4x0o+8x0e+4x1o");
    assert_eq!(odd.irreps_out().to_string(), "8x0e+4x1e");
    // Bad gates name the problem.
    let e = Gate::new(
        parse("8x0e"),
        Activation::Silu,
        parse("3x0e"),
        Activation::Sigmoid,
        parse("4x1o"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("3 gates for 4 gated"), "{e}");
    let e = Gate::new(
        parse("8x0o"),
        Activation::Silu,
        parse(""),
        Activation::Sigmoid,
        parse(""),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("odd scalars need an odd or even activation"),
        "{e}"
    );
}

/// Gradients through equivar's kernels equal burn's autodiff of the generic path.
#[test]
fn kernel_gradients_equal_burns_autodiff() {
    let device = Device::flex().autodiff();
    let n = 90;
    let vectors = || tensor(n, 3, 7, &device).require_grad();
    for lmax in [2, 6] {
        let r = tensor(n, (lmax + 1) * (lmax + 1), 8, &device);
        let mut grads = Vec::new();
        for kernels in [Kernels::Equivar, Kernels::Burn] {
            let sh = SphericalHarmonics::new(lmax, Normalization::Component, true)
                .unwrap()
                .with_kernels(kernels);
            let v = vectors();
            let g = (sh.forward(v.clone()) * r.clone()).sum().backward();
            grads.push(host(v.grad(&g).unwrap()));
        }
        let e = relative_error(&grads[0], &grads[1]);
        assert!(e <= 1e-5, "harmonics lmax {lmax}: {e:e}");
    }

    let mut grads = Vec::new();
    for kernels in [Kernels::Equivar, Kernels::Burn] {
        let gate = Gate::new(
            parse("5x0e+2x0o"),
            Activation::Tanh,
            parse("3x0e+4x0o"),
            Activation::Tanh,
            parse("3x1o+2x2e+2x1e"),
        )
        .unwrap()
        .with_kernels(kernels);
        let x = tensor(n, gate.irreps_in().dim(), 14, &device).require_grad();
        let r = tensor(n, gate.irreps_out().dim(), 15, &device);
        let y = gate.forward(x.clone());
        let out = host(y.clone());
        let g = (y * r).sum().backward();
        grads.push((out, host(x.grad(&g).unwrap())));
    }
    for (name, a, b) in [
        ("gate output", &grads[0].0, &grads[1].0),
        ("gate dx", &grads[0].1, &grads[1].1),
    ] {
        let e = relative_error(a, b);
        assert!(e <= 1e-5, "{name}: {e:e}");
    }
    // SiLU scalars and sigmoid gates (the e3nn case): their slopes too.
    let mut grads = Vec::new();
    for kernels in [Kernels::Equivar, Kernels::Burn] {
        let gate = Gate::new(
            parse("6x0e"),
            Activation::Silu,
            parse("5x0e"),
            Activation::Sigmoid,
            parse("3x1o+2x2e"),
        )
        .unwrap()
        .with_kernels(kernels);
        let x = tensor(n, gate.irreps_in().dim(), 16, &device).require_grad();
        let r = tensor(n, gate.irreps_out().dim(), 17, &device);
        let g = (gate.forward(x.clone()) * r).sum().backward();
        grads.push(host(x.grad(&g).unwrap()));
    }
    let e = relative_error(&grads[0], &grads[1]);
    assert!(e <= 1e-5, "silu/sigmoid gate dx: {e:e}");

    let features = parse("6x0e+4x1o+2x2e");
    let sh = parse("1x0e+1x1o+1x2e");
    for channel_wise in [false, true] {
        let product = if channel_wise {
            o3::TensorProduct::channel_wise(features.clone(), sh.clone(), &features).unwrap()
        } else {
            o3::TensorProduct::fully_connected(features.clone(), sh.clone(), features.clone())
                .unwrap()
        };
        let r = tensor(n, product.irreps_out().dim(), 9, &device);
        let mut results = Vec::new();
        for kernels in [Kernels::Equivar, Kernels::Burn] {
            let x1 = tensor(n, features.dim(), 10, &device).require_grad();
            let x2 = tensor(n, sh.dim(), 11, &device).require_grad();
            let w_rows = tensor(n, product.weight_numel(), 12, &device).require_grad();
            let w_shared = Tensor::<1>::from_data(
                TensorData::new(
                    seeded_values(product.weight_numel(), 13),
                    [product.weight_numel()],
                ),
                &device,
            )
            .require_grad();
            let tp = TensorProduct::external(product.clone()).with_kernels(kernels);
            let y = if channel_wise {
                tp.forward_with_weights(x1.clone(), x2.clone(), w_rows.clone())
            } else {
                equivar::ops::tensor_product(
                    x1.clone(),
                    x2.clone(),
                    equivar::ops::TpWeights::Shared(w_shared.clone()),
                    tp.product.plan(),
                    kernels,
                )
            };
            let out = host(y.clone());
            let g = (y * r.clone()).sum().backward();
            let dw = if channel_wise {
                host(w_rows.grad(&g).unwrap())
            } else {
                host(w_shared.grad(&g).unwrap())
            };
            results.push((
                out,
                host(x1.grad(&g).unwrap()),
                host(x2.grad(&g).unwrap()),
                dw,
            ));
        }
        let (a, b) = (&results[0], &results[1]);
        for (name, x, y) in [
            ("output", &a.0, &b.0),
            ("dx1", &a.1, &b.1),
            ("dx2", &a.2, &b.2),
            ("dw", &a.3, &b.3),
        ] {
            let e = relative_error(x, y);
            assert!(e <= 1e-5, "channel_wise {channel_wise} {name}: {e:e}");
        }
    }
}

#[test]
fn instance_norm_is_equivariant_and_normalises_each_graph_alone() {
    let device = Device::flex();
    let irreps = parse("6x0e+3x1o+2x2e+2x0o");
    let norm = equivar::e3::InstanceNorm::new(irreps.clone(), &device);
    let n = 30;
    let graph: Vec<usize> = (0..n).map(|i| if i < 12 { 0 } else { 1 }).collect();
    let x = tensor(n, irreps.dim(), 21, &device) * 3.0 + 1.0;
    let e = equivariance_error(&[(irreps.clone(), x.clone())], &irreps, |x| {
        norm.forward(x[0].clone(), &graph, 2)
    });
    assert!(e <= 1e-5, "instance norm: {e:e}");
    // Per graph: scalars have mean 0 and mean square 1; each other copy's mean square is 1.
    let y = host(norm.forward(x.clone(), &graph, 2));
    let dim = irreps.dim();
    for (g, rows) in [(0, 0..12), (1, 12..30)] {
        let count = rows.len() as f32;
        for c in 0..6 {
            let mean: f32 = rows.clone().map(|r| y[r * dim + c]).sum::<f32>() / count;
            let sq: f32 = rows.clone().map(|r| y[r * dim + c].powi(2)).sum::<f32>() / count;
            assert!(
                mean.abs() < 1e-5 && (sq - 1.0).abs() < 1e-3,
                "graph {g} scalar {c}: {mean} {sq}"
            );
        }
        // The first 1o copy: components 6..9.
        let sq: f32 = rows
            .clone()
            .map(|r| (6..9).map(|k| y[r * dim + k].powi(2)).sum::<f32>() / 3.0)
            .sum::<f32>()
            / count;
        assert!((sq - 1.0).abs() < 1e-3, "graph {g} vector: {sq}");
    }
    // Graph 0's output does not depend on graph 1's nodes.
    let mut other = host(x.clone());
    for v in &mut other[12 * dim..] {
        *v *= -7.0;
    }
    let y2 = host(norm.forward(
        Tensor::from_data(TensorData::new(other, [n, dim]), &device),
        &graph,
        2,
    ));
    assert_eq!(&y[..12 * dim], &y2[..12 * dim]);
}

/// A two-layer interatomic network: equivariant under rotations, the inversion and
/// translations of the positions.
#[test]
fn convolutions_are_e3_equivariant() {
    use equivar::e3::{Convolution, graph::radius_graph};
    let device = Device::flex();
    let n = 24;
    let positions: Vec<[f32; 3]> = seeded_values(n * 3, 31)
        .chunks(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    let graph: Vec<usize> = (0..n).map(|i| i / 12).collect();
    let edges = radius_graph(&positions, &graph, 1.8).unwrap();
    assert!(edges.len() > 2 * n, "{} edges", edges.len());
    let gate = Gate::new(
        parse("8x0e"),
        Activation::Silu,
        parse("6x0e"),
        Activation::Sigmoid,
        parse("4x1o+2x2e"),
    )
    .unwrap();
    let conv1 = Convolution::new(
        parse("5x0e"),
        gate.irreps_in().clone(),
        2,
        1.8,
        8,
        16,
        4.0,
        &device,
    )
    .unwrap();
    let conv2 = Convolution::new(
        gate.irreps_out().clone(),
        parse("3x0e+2x1o+1x1e"),
        2,
        1.8,
        8,
        16,
        4.0,
        &device,
    )
    .unwrap();
    let species = tensor(n, 5, 32, &device);
    let net = |pos: Tensor<2>| {
        let h = gate.forward(conv1.forward(species.clone(), pos.clone(), &edges));
        conv2.forward(h, pos, &edges)
    };
    let flat: Vec<f32> = positions.iter().flatten().copied().collect();
    let pos = Tensor::<2>::from_data(TensorData::new(flat, [n, 3]), &device);
    let y = net(pos.clone());
    let scale = host(y.clone()).iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.1, "the network's output is {scale} at most");
    let out = parse("3x0e+2x1o+1x1e");
    let shift = Tensor::<2>::from_data(TensorData::new(vec![0.7f32, -1.3, 2.1], [1, 3]), &device);
    for r in rotation::random_rotations(3, 41) {
        for q in [r, rotation::negate(&r)] {
            let moved = e3::transform(pos.clone(), &parse("1x1o"), &q).unwrap() + shift.clone();
            let lhs = host(net(moved));
            let rhs = host(e3::transform(y.clone(), &out, &q).unwrap());
            let e = relative_error(&lhs, &rhs);
            assert!(e <= 1e-5, "convolution network: {e:e}");
        }
    }
    let e = Convolution::new(parse("5x0e"), parse("1x0e"), 2, 0.0, 8, 16, 4.0, &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("r_max > 0"), "{e}");
}

/// SEGNN's prediction is invariant under rotations, the inversion and translations of the
/// molecules, and each molecule's prediction ignores the other molecules of the batch.
#[test]
fn segnn_is_e3_invariant() {
    use equivar::e3::graph::radius_graph;
    use equivar::e3::segnn::{GraphBatch, Pooling, Segnn, SegnnConfig};
    let device = Device::flex();
    let n = 20;
    let positions: Vec<[f32; 3]> = seeded_values(n * 3, 51)
        .chunks(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    let graph: Vec<usize> = (0..n).map(|i| usize::from(i >= 9)).collect();
    let edges = radius_graph(&positions, &graph, 2.0).unwrap();
    let config = SegnnConfig {
        input: parse("5x0e"),
        hidden: parse("8x0e+4x1o+2x2e"),
        lmax_attr: 2,
        layers: 2,
        outputs: 1,
        instance_norm: true,
        pooling: Pooling::Mean,
        raw_edge_vectors: false,
    };
    let model = Segnn::new(&config, &device).unwrap();
    let types: Vec<f32> = (0..n)
        .flat_map(|i| (0..5).map(move |k| if k == i % 5 { 1.0 } else { 0.0 }))
        .collect();
    let features = Tensor::<2>::from_data(TensorData::new(types, [n, 5]), &device);
    let flat: Vec<f32> = positions.iter().flatten().copied().collect();
    let pos = Tensor::<2>::from_data(TensorData::new(flat, [n, 3]), &device);
    let predict = |positions: Tensor<2>| {
        host(model.forward(&GraphBatch {
            positions,
            features: features.clone(),
            graph: graph.clone(),
            graphs: 2,
            edges: edges.clone(),
        }))
    };
    let y = predict(pos.clone());
    assert_eq!(y.len(), 2);
    assert!(
        y.iter().all(|v| v.is_finite()) && y.iter().any(|v| v.abs() > 1e-3),
        "{y:?}"
    );
    let shift = Tensor::<2>::from_data(TensorData::new(vec![1.5f32, -0.4, 3.0], [1, 3]), &device);
    for r in rotation::random_rotations(2, 61) {
        for q in [r, rotation::negate(&r)] {
            let moved = e3::transform(pos.clone(), &parse("1x1o"), &q).unwrap() + shift.clone();
            let e = relative_error(&predict(moved), &y);
            assert!(e <= 1e-5, "SEGNN: {e:e}");
        }
    }
}

#[test]
fn segnn_with_raw_edge_vectors_is_translation_but_not_rotation_invariant() {
    use equivar::e3::graph::radius_graph;
    use equivar::e3::segnn::{GraphBatch, Pooling, Segnn, SegnnConfig};
    let device = Device::flex();
    device.seed(5);
    let n = 12;
    let positions: Vec<[f32; 3]> = seeded_values(n * 3, 71)
        .chunks(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    let graph = vec![0usize; n];
    let edges = radius_graph(&positions, &graph, 2.0).unwrap();
    let config = SegnnConfig {
        input: parse("5x0e"),
        hidden: parse("8x0e"),
        lmax_attr: 0,
        layers: 2,
        outputs: 1,
        instance_norm: true,
        pooling: Pooling::Sum,
        raw_edge_vectors: true,
    };
    let model = Segnn::new(&config, &device).unwrap();
    let types: Vec<f32> = (0..n)
        .flat_map(|i| (0..5).map(move |k| if k == i % 5 { 1.0 } else { 0.0 }))
        .collect();
    let features = Tensor::<2>::from_data(TensorData::new(types, [n, 5]), &device);
    let flat: Vec<f32> = positions.iter().flatten().copied().collect();
    let pos = Tensor::<2>::from_data(TensorData::new(flat, [n, 3]), &device);
    let predict = |positions: Tensor<2>| {
        host(model.forward(&GraphBatch {
            positions,
            features: features.clone(),
            graph: graph.clone(),
            graphs: 1,
            edges: edges.clone(),
        }))
    };
    let y = predict(pos.clone());
    let shift = Tensor::<2>::from_data(TensorData::new(vec![1.5f32, -0.4, 3.0], [1, 3]), &device);
    let e = relative_error(&predict(pos.clone() + shift), &y);
    assert!(e <= 1e-5, "translation: {e:e}");
    let r = rotation::random_rotations(1, 3)[0];
    let turned = e3::transform(pos, &parse("1x1o"), &r).unwrap();
    let e = relative_error(&predict(turned), &y);
    assert!(e > 1e-3, "a rotation should change the output, error {e:e}");
}

#[test]
fn nequip_is_e3_invariant_and_sums_atomic_contributions() {
    use equivar::e3::graph::radius_graph;
    use equivar::e3::nequip::{Nequip, NequipConfig};
    use equivar::e3::segnn::GraphBatch;
    let device = Device::flex();
    device.seed(9);
    let n = 16;
    let positions: Vec<[f32; 3]> = seeded_values(n * 3, 81)
        .chunks(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    let graph: Vec<usize> = (0..n).map(|i| usize::from(i >= 7)).collect();
    let edges = radius_graph(&positions, &graph, 1.8).unwrap();
    let config = NequipConfig {
        input: parse("5x0e"),
        hidden: parse("8x0e+4x1o+2x1e+2x2e"),
        lmax: 2,
        r_max: 1.8,
        basis: 6,
        radial_hidden: 8,
        layers: 2,
        neighbours: 3.0,
        outputs: 2,
    };
    let model = Nequip::new(&config, &device).unwrap();
    let types: Vec<f32> = (0..n)
        .flat_map(|i| (0..5).map(move |k| if k == (i * 3) % 5 { 1.0 } else { 0.0 }))
        .collect();
    let features = Tensor::<2>::from_data(TensorData::new(types, [n, 5]), &device);
    let flat: Vec<f32> = positions.iter().flatten().copied().collect();
    let pos = Tensor::<2>::from_data(TensorData::new(flat, [n, 3]), &device);
    let batch = |positions: Tensor<2>, graph: Vec<usize>, graphs| GraphBatch {
        positions,
        features: features.clone(),
        graph,
        graphs,
        edges: edges.clone(),
    };
    let y = host(model.forward(&batch(pos.clone(), graph.clone(), 2)));
    assert_eq!(y.len(), 4);
    assert!(y.iter().any(|v| v.abs() > 1e-3), "{y:?}");
    // Sum pooling: the two molecules as one graph give the sum of their outputs.
    let joined = host(model.forward(&batch(pos.clone(), vec![0; n], 1)));
    for k in 0..2 {
        let sum = y[k] + y[2 + k];
        assert!(
            (joined[k] - sum).abs() <= 1e-5 * sum.abs().max(1.0),
            "{joined:?} vs {y:?}"
        );
    }
    let shift = Tensor::<2>::from_data(TensorData::new(vec![-0.3f32, 2.2, 0.9], [1, 3]), &device);
    for r in rotation::random_rotations(2, 91) {
        for q in [r, rotation::negate(&r)] {
            let moved = e3::transform(pos.clone(), &parse("1x1o"), &q).unwrap() + shift.clone();
            let e = relative_error(&host(model.forward(&batch(moved, graph.clone(), 2))), &y);
            assert!(e <= 1e-5, "NequIP: {e:e}");
        }
    }
    let bad = NequipConfig {
        hidden: parse("4x1o"),
        ..config
    };
    assert!(Nequip::new(&bad, &device).is_err());
}

#[test]
fn model_files_build_molecular_models_and_bad_files_are_refused() {
    use equivar::e3::molecule::{ModelFileError, MoleculeModelConfig};
    let device = Device::flex();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    for name in ["segnn-qm9.json", "segnn-qm9-quick.json", "nequip-qm9.json"] {
        let config = MoleculeModelConfig::from_file(&dir.join(name)).unwrap();
        assert_eq!(config.input(), &parse("5x0e"), "{name}");
        assert_eq!(config.outputs(), 1);
        config.init(&device).unwrap();
        let text = serde_json::to_string(&config).unwrap();
        assert_eq!(
            serde_json::from_str::<MoleculeModelConfig>(&text).unwrap(),
            config
        );
    }
    let tmp = std::env::temp_dir().join(format!("equivar-model-{}.json", std::process::id()));
    for (text, needle) in [
        (r#"{"kind": "schnet"}"#, "schnet"),
        (
            r#"{"kind": "segnn", "input": "5x0e", "hidden": "8x0e", "lmax_attr": 1, "layers": 1, "outputs": 1, "width": 3}"#,
            "width",
        ),
        (
            r#"{"kind": "segnn", "input": "5x0e", "hidden": "8x9q", "lmax_attr": 1, "layers": 1, "outputs": 1}"#,
            "8x9q",
        ),
    ] {
        std::fs::write(&tmp, text).unwrap();
        let error = MoleculeModelConfig::from_file(&tmp).unwrap_err();
        assert!(matches!(error, ModelFileError::Invalid { .. }), "{error}");
        assert!(error.to_string().contains(needle), "{error}");
    }
    std::fs::remove_file(&tmp).unwrap();
    assert!(matches!(
        MoleculeModelConfig::from_file(&dir.join("no-such-model.json")),
        Err(ModelFileError::Read { .. })
    ));
}

#[test]
fn batch_norm_normalises_the_batch_keeps_running_statistics_and_is_equivariant() {
    use equivar::e3::BatchNorm;
    let irreps = parse("3x0e+2x1o+1x2e+2x0e");
    let n = 40;
    let ad = Device::flex().autodiff();
    let norm = BatchNorm::new(irreps.clone(), &ad);
    // Offsets and scales per column so the statistics are far from 0 and 1.
    let raw = host(tensor(n, irreps.dim(), 7, &Device::flex()));
    let shifted: Vec<f32> = raw
        .iter()
        .enumerate()
        .map(|(i, v)| 3.0 * v + if i % irreps.dim() < 3 { 2.0 } else { 0.0 })
        .collect();
    let x = Tensor::<2>::from_data(TensorData::new(shifted.clone(), [n, irreps.dim()]), &ad);
    let y = host(norm.forward(x.clone()));
    // Training: every 0e column has mean 0, every copy a mean square of 1 over the batch.
    let dim = irreps.dim();
    let column_mean = |c: usize| (0..n).map(|r| y[r * dim + c]).sum::<f32>() / n as f32;
    for c in 0..3 {
        assert!(
            column_mean(c).abs() < 1e-5,
            "0e column {c}: mean {}",
            column_mean(c)
        );
    }
    let copy_mean_square = |start: usize, d: usize| {
        (0..n)
            .map(|r| {
                (start..start + d)
                    .map(|c| y[r * dim + c].powi(2))
                    .sum::<f32>()
                    / d as f32
            })
            .sum::<f32>()
            / n as f32
    };
    for (start, d) in [(0, 1), (3, 3), (6, 3), (9, 5), (14, 1)] {
        let ms = copy_mean_square(start, d);
        assert!((ms - 1.0).abs() < 1e-3, "copy at {start}: mean square {ms}");
    }
    // The running mean moved a tenth of the way to the batch mean of the first 0e column.
    let batch_mean = (0..n).map(|r| shifted[r * dim]).sum::<f32>() / n as f32;
    let running = host(norm.running_mean.value_sync().reshape([1, 5]));
    assert!(
        (running[0] - 0.1 * batch_mean).abs() < 1e-5,
        "{running:?} vs {batch_mean}"
    );
    // Evaluation uses the running statistics: (x - mean) / sqrt(var + eps) for a 0e column.
    let eval = norm.valid();
    let plain = Tensor::<2>::from_data(TensorData::new(shifted.clone(), [n, dim]), &Device::flex());
    let z = host(eval.forward(plain.clone()));
    let var = host(eval.running_var.value().reshape([1, irreps.num_irreps()]));
    let expected = (shifted[0] - running[0]) / (var[0] + 1e-5).sqrt();
    assert!(
        (z[0] - expected).abs() < 1e-5 * expected.abs().max(1.0),
        "{} vs {expected}",
        z[0]
    );
    // Both modes commute with rotations and the inversion (statistics are invariant).
    for r in rotation::random_rotations(2, 5) {
        for q in [r, rotation::negate(&r)] {
            let turned = e3::transform(plain.clone(), &irreps, &q).unwrap();
            let lhs = host(eval.forward(turned.clone()));
            let rhs = host(e3::transform(eval.forward(plain.clone()), &irreps, &q).unwrap());
            assert!(relative_error(&lhs, &rhs) <= 1e-5, "evaluation mode");
            let train = BatchNorm::new(irreps.clone(), &ad);
            let lhs = host(train.forward(turned.clone()));
            let rhs = host(e3::transform(train.forward(plain.clone()), &irreps, &q).unwrap());
            // (`plain` is on the plain device: evaluation mode there; on the autodiff one:)
            let lhs_ad = host(train.forward(Tensor::from_data(
                TensorData::new(host(turned), [n, dim]),
                &ad,
            )));
            let rhs_ad = host(
                e3::transform(
                    train.forward(Tensor::from_data(
                        TensorData::new(shifted.clone(), [n, dim]),
                        &ad,
                    )),
                    &irreps,
                    &q,
                )
                .unwrap(),
            );
            assert!(relative_error(&lhs, &rhs) <= 1e-5);
            assert!(relative_error(&lhs_ad, &rhs_ad) <= 1e-5, "training mode");
        }
    }
}

#[test]
fn layer_norm_normalises_each_node_alone_and_is_equivariant() {
    use equivar::e3::LayerNorm;
    let device = Device::flex();
    let irreps = parse("4x0e+3x1o+2x2e");
    let dim = irreps.dim();
    let n = 6;
    let norm = LayerNorm::new(irreps.clone(), &device);
    let x = tensor(n, dim, 17, &device) * 5.0 + 1.0;
    let y = host(norm.forward(x.clone()));
    for r in 0..n {
        let row = &y[r * dim..(r + 1) * dim];
        let mean: f32 = row[..4].iter().sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-5, "node {r}: 0e mean {mean}");
        let ms = |a: usize, b: usize| row[a..b].iter().map(|v| v * v).sum::<f32>() / (b - a) as f32;
        for (a, b) in [(0, 4), (4, 13), (13, 23)] {
            assert!(
                (ms(a, b) - 1.0).abs() < 1e-3,
                "node {r}, block {a}..{b}: {}",
                ms(a, b)
            );
        }
    }
    // A node's output does not depend on the other nodes.
    let first = host(norm.forward(x.clone().narrow(0, 0, 1)));
    assert!(relative_error(&first, &y[..dim]) <= 1e-6);
    for r in rotation::random_rotations(2, 8) {
        for q in [r, rotation::negate(&r)] {
            let lhs = host(norm.forward(e3::transform(x.clone(), &irreps, &q).unwrap()));
            let rhs = host(e3::transform(norm.forward(x.clone()), &irreps, &q).unwrap());
            assert!(relative_error(&lhs, &rhs) <= 1e-5);
        }
    }
}

#[test]
fn norm_activation_scales_each_copy_by_its_norm_and_is_equivariant() {
    use equivar::e3::NormActivation;
    let device = Device::flex();
    let irreps = parse("2x0e+1x0o+2x1o+1x2e");
    let dim = irreps.dim();
    let layer = NormActivation::new(irreps.clone(), Activation::Silu, true, false, &device);
    // A 1o copy (3, 4, 0) has norm 5: it becomes (3, 4, 0) silu(5) / 5; a zero copy stays 0.
    let mut row = vec![0.0f32; dim];
    row[0] = -2.0;
    row[3..6].copy_from_slice(&[3.0, 4.0, 0.0]);
    let y = host(layer.forward(Tensor::from_data(TensorData::new(row, [1, dim]), &device)));
    let silu = |z: f32| z / (1.0 + (-z).exp());
    assert!((y[0] - (-2.0 * silu(2.0) / 2.0)).abs() < 1e-6, "{}", y[0]);
    assert!(
        (y[3] - 3.0 * silu(5.0) / 5.0).abs() < 1e-6 && (y[4] - 4.0 * silu(5.0) / 5.0).abs() < 1e-6
    );
    assert!(y[6..9].iter().all(|v| *v == 0.0) && y.iter().all(|v| v.is_finite()));
    let x = tensor(8, dim, 23, &device);
    for (normalize, bias) in [(true, false), (false, true)] {
        let layer = NormActivation::new(irreps.clone(), Activation::Tanh, normalize, bias, &device);
        for r in rotation::random_rotations(2, 13) {
            for q in [r, rotation::negate(&r)] {
                let lhs = host(layer.forward(e3::transform(x.clone(), &irreps, &q).unwrap()));
                let rhs = host(e3::transform(layer.forward(x.clone()), &irreps, &q).unwrap());
                assert!(
                    relative_error(&lhs, &rhs) <= 1e-5,
                    "normalize {normalize}, bias {bias}"
                );
            }
        }
    }
}
