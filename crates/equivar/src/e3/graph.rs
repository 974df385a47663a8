//! Graphs of point clouds: radius graphs by a cell list, and the sums over edges and nodes that
//! message passing needs (burn ops, so autodiff differentiates them on any backend).

use std::collections::HashMap;

use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};

use crate::o3::O3Error;

/// Directed edges `source -> target`, sorted by target, then source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Edges {
    pub source: Vec<usize>,
    pub target: Vec<usize>,
}

impl Edges {
    pub fn len(&self) -> usize {
        self.source.len()
    }

    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }

    /// `[E]` index tensors for `select` / [`scatter_sum`].
    pub fn tensors(&self, device: &Device) -> (Tensor<1, Int>, Tensor<1, Int>) {
        let as_tensor = |v: &[usize]| {
            let v: Vec<i64> = v.iter().map(|&i| i as i64).collect();
            Tensor::<1, Int>::from_data(TensorData::new(v.clone(), [v.len()]), device)
        };
        (as_tensor(&self.source), as_tensor(&self.target))
    }
}

/// Every ordered pair of distinct points of the same graph (`graph[i]` numbers the graph of
/// point `i`) at distance at most `radius`, found through a grid of cells of side `radius`
/// (each point is compared with the points of its 27 neighbouring cells only).
pub fn radius_graph(
    positions: &[[f32; 3]],
    graph: &[usize],
    radius: f32,
) -> Result<Edges, O3Error> {
    let bad = |reason: String| Err(O3Error::InvalidGraph { reason });
    if !(radius.is_finite() && radius > 0.0) {
        return bad(format!(
            "the radius must be positive and finite, got {radius}"
        ));
    }
    if graph.len() != positions.len() {
        return bad(format!(
            "{} positions but {} graph numbers: give one per point",
            positions.len(),
            graph.len()
        ));
    }
    if let Some(i) = positions
        .iter()
        .position(|p| p.iter().any(|c| !c.is_finite()))
    {
        return bad(format!(
            "point {i} has a non-finite coordinate {:?}",
            positions[i]
        ));
    }
    let cell = |p: &[f32; 3]| p.map(|c| (c / radius).floor() as i64);
    let mut cells: HashMap<(usize, [i64; 3]), Vec<usize>> = HashMap::new();
    for (i, p) in positions.iter().enumerate() {
        cells.entry((graph[i], cell(p))).or_default().push(i);
    }
    let r2 = radius * radius;
    let mut edges = Edges::default();
    let mut neighbours = Vec::new();
    for (i, p) in positions.iter().enumerate() {
        let c = cell(p);
        neighbours.clear();
        for dx in -1..=1 {
            for dy in -1..=1 {
                for dz in -1..=1 {
                    if let Some(list) = cells.get(&(graph[i], [c[0] + dx, c[1] + dy, c[2] + dz])) {
                        neighbours.extend(list.iter().copied().filter(|&j| {
                            j != i && {
                                let q = positions[j];
                                let d2 = (p[0] - q[0]).powi(2)
                                    + (p[1] - q[1]).powi(2)
                                    + (p[2] - q[2]).powi(2);
                                d2 <= r2
                            }
                        }));
                    }
                }
            }
        }
        neighbours.sort_unstable();
        for &j in &neighbours {
            edges.source.push(j);
            edges.target.push(i);
        }
    }
    Ok(edges)
}

/// `out[index[e]] += values[e]`: `[E, d] -> [n, d]` (messages summed at their targets, node
/// features pooled per graph).
pub fn scatter_sum(values: Tensor<2>, index: Tensor<1, Int>, n: usize) -> Tensor<2> {
    let [_, d] = values.dims();
    Tensor::<2>::zeros([n, d], &values.device()).select_assign(
        0,
        index,
        values,
        IndexingUpdateOp::Add,
    )
}

/// The mean of the values sent to each of the `n` slots (0 where none arrives).
pub fn scatter_mean(values: Tensor<2>, index: &[usize], n: usize) -> Tensor<2> {
    let device = values.device();
    let mut counts = vec![0.0f32; n];
    for &i in index {
        counts[i] += 1.0;
    }
    let inverse: Vec<f32> = counts
        .iter()
        .map(|&c| if c > 0.0 { 1.0 / c } else { 0.0 })
        .collect();
    let idx: Vec<i64> = index.iter().map(|&i| i as i64).collect();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [index.len()]), &device);
    scatter_sum(values, idx, n)
        * Tensor::<1>::from_data(TensorData::new(inverse, [n]), &device).reshape([n, 1])
}
