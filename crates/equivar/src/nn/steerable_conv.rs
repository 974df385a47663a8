//! The steerable convolution between feature types of any representations (Weiler & Cesa
//! 2019): its filter is a learned combination of a steerable kernel basis
//! ([`crate::kernels::steerable`]), expanded into a plain conv2d filter at every forward.
//!
//! A feature type is a sum of terms `count x rho`. For each pair (output term, input term) the
//! layer learns `[out count, in count, basis elements]` coefficients over the basis between the
//! two representations (built once per distinct pair); a pair without equivariant kernels
//! contributes zeros. The bias lives on the output's trivial irreps only (any other constant
//! would not commute with the group).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use burn::module::{Module, Param};
use burn::tensor::{DType, Device, Distribution, Tensor, TensorData};

use super::check_channels;
use crate::error::{EquivarError, Result};
use crate::field::{FeatureType, ReprKind};
use crate::frozen::GridElement;
use crate::group::{Irrep, PlanarGroup, Representation};
use crate::kernels::steerable::{Ring, SteerableBasis, default_rings};
use crate::ops::{self, Kernels};
use crate::space::{PixelAction, Window};

/// The learned coefficients of one (output term, input term) pair and their basis.
#[derive(Clone, Debug)]
struct Block {
    out_term: usize,
    in_term: usize,
    /// Where this block's `[out count * in count * elements]` coefficients start.
    offset: usize,
    elements: usize,
    basis: Arc<SampledBasis>,
}

/// A basis sampled as conv filters, with its total squared norm (for the initialisation).
#[derive(Debug)]
struct SampledBasis {
    /// `[elements, out dim * in dim * k * k]` (see [`SteerableBasis::filters`]).
    filters: Vec<f32>,
    elements: usize,
    energy: f64,
    /// The filters as tensors on the devices (and in the dtypes) that used them: uploading
    /// the host copy at every forward cost more than the expansion's matmul (116 MB for
    /// D16's 7x7 regular basis).
    uploaded: Mutex<Vec<(Device, DType, Tensor<2>)>>,
}

impl SampledBasis {
    fn new(filters: Vec<f32>, elements: usize) -> Self {
        // Eight independent sums: one running sum is a chain of dependent adds, 30 ms for
        // D16's 29 million values.
        let mut lanes = [0.0f64; 8];
        let chunks = filters.chunks_exact(8);
        let tail: f64 = chunks.remainder().iter().map(|&v| (v as f64).powi(2)).sum();
        for chunk in chunks {
            for (lane, &v) in lanes.iter_mut().zip(chunk) {
                *lane += (v as f64) * (v as f64);
            }
        }
        let energy = lanes.iter().sum::<f64>() + tail;
        SampledBasis {
            filters,
            elements,
            energy,
            uploaded: Mutex::new(Vec::new()),
        }
    }

    /// The filters `[elements, out dim * in dim * k * k]` on `device` in `dtype`, uploaded
    /// once per device and dtype.
    fn tensor(&self, device: &Device, dtype: DType) -> Tensor<2> {
        let mut uploaded = self.uploaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, t)) = uploaded.iter().find(|(d, t, _)| d == device && *t == dtype) {
            return t.clone();
        }
        let width = self.filters.len() / self.elements.max(1);
        let t = Tensor::<2>::from_data(
            TensorData::new(self.filters.clone(), [self.elements, width]),
            (device, dtype),
        );
        uploaded.push((device.clone(), dtype, t.clone()));
        t
    }
}

/// One output term's bias: its trivial irreps, as columns of its change of basis.
#[derive(Clone, Debug)]
struct BiasTerm {
    offset: usize,
    /// `[trivial irreps, dim]`.
    columns: Vec<f32>,
    trivial: usize,
}

/// Everything but the learned tensors: types, window, bases.
#[derive(Clone, Debug)]
pub struct SteerableGeometry {
    pub name: String,
    pub in_type: FeatureType,
    pub out_type: FeatureType,
    pub window: Window,
    /// Which implementation runs the conv.
    pub kernels: Kernels,
    /// `(count, dim)` of each term.
    in_terms: Vec<(usize, usize)>,
    out_terms: Vec<(usize, usize)>,
    blocks: Vec<Block>,
    bias_terms: Vec<Option<BiasTerm>>,
    weight_len: usize,
    bias_len: usize,
}

/// What a sampled basis depends on: the group, the two representations, kernel size,
/// dilation and the rings (as bits).
type BasisKey = (PlanarGroup, ReprKind, ReprKind, usize, usize, Vec<[u64; 3]>);

/// The sampled bases of the layers alive in this process, shared: the E2 models' four 7x7
/// layers between regular fields use one basis (116 MB for D16) instead of four. Weak, so a
/// basis goes when the last layer using it does.
fn shared_filters(
    key: BasisKey,
    build: impl FnOnce() -> Result<SampledBasis>,
) -> Result<Arc<SampledBasis>> {
    static CACHE: OnceLock<Mutex<HashMap<BasisKey, Weak<SampledBasis>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .and_then(Weak::upgrade)
    {
        return Ok(found);
    }
    let filters = Arc::new(build()?);
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    map.retain(|_, v| v.strong_count() > 0);
    map.insert(key, Arc::downgrade(&filters));
    Ok(filters)
}

/// `(count, representation)` of each term of `t`.
fn terms(t: &FeatureType) -> Result<Vec<(usize, ReprKind, Representation)>> {
    t.terms
        .iter()
        .map(|&(count, kind)| Ok((count, kind, kind.representation(t.group)?)))
        .collect()
}

impl SteerableGeometry {
    /// The group's elements that map the pixel grid to itself, with their actions on the
    /// input and output channels, for the frozen model's orbit form; empty if one of them
    /// mixes channels.
    pub fn grid_elements(&self) -> Vec<GridElement> {
        self.in_type
            .group
            .pixel_grid_elements()
            .into_iter()
            .map(|g| {
                let PixelAction::Exact(pixels) = PixelAction::of(g) else {
                    return None;
                };
                Some(GridElement {
                    pixels,
                    input: self.in_type.signed_permutation(g)?,
                    output: self.out_type.signed_permutation(g)?,
                })
            })
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default()
    }

    fn new(
        name: &str,
        in_type: &FeatureType,
        out_type: &FeatureType,
        window: Window,
        rings: Option<&[Ring]>,
    ) -> Result<Self> {
        let (k, dilation) = (window.kernel, window.dilation);
        let rings = match rings {
            Some(r) => r.to_vec(),
            None => default_rings(k, dilation)?,
        };
        let ins = terms(in_type)?;
        let outs = terms(out_type)?;
        let mut bases: HashMap<(ReprKind, ReprKind), Arc<SampledBasis>> = HashMap::new();
        let mut blocks = Vec::new();
        let mut offset = 0;
        for (o, (out_count, out_kind, rho_out)) in outs.iter().enumerate() {
            for (i, (in_count, in_kind, rho_in)) in ins.iter().enumerate() {
                let filters = match bases.get(&(*out_kind, *in_kind)) {
                    Some(f) => f.clone(),
                    None => {
                        let key = (
                            in_type.group,
                            *in_kind,
                            *out_kind,
                            k,
                            dilation,
                            rings
                                .iter()
                                .map(|r| [r.radius, r.sigma, r.max_frequency].map(f64::to_bits))
                                .collect(),
                        );
                        let f = shared_filters(key, || {
                            let basis =
                                SteerableBasis::with_rings(rho_in, rho_out, k, dilation, &rings)?;
                            let filters = basis.filters();
                            let elements = filters.len() / (rho_out.dim() * rho_in.dim() * k * k);
                            Ok(SampledBasis::new(filters, elements))
                        })?;
                        bases.insert((*out_kind, *in_kind), f.clone());
                        f
                    }
                };
                let elements = filters.elements;
                if elements == 0 {
                    continue;
                }
                blocks.push(Block {
                    out_term: o,
                    in_term: i,
                    offset,
                    elements,
                    basis: filters,
                });
                offset += out_count * in_count * elements;
            }
        }
        if blocks.is_empty() {
            return Err(EquivarError::InvalidLayer {
                layer: name.to_string(),
                reason: format!(
                    "no equivariant {k}x{k} kernel maps `{in_type}` to `{out_type}` (every \
                     pair of representations has an empty basis); change the output type, or \
                     use a larger kernel (more rings and frequencies)"
                ),
            });
        }
        let mut bias_len = 0;
        let bias_terms = outs
            .iter()
            .map(|(count, _, rho)| {
                let trivial_at: Vec<usize> = rho
                    .irreps()
                    .iter()
                    .scan(0, |at, irrep| {
                        let here = *at;
                        *at += irrep.dim(rho.group());
                        Some((here, *irrep))
                    })
                    .filter(|(_, irrep)| *irrep == Irrep::new(0, 0))
                    .map(|(at, _)| at)
                    .collect();
                if trivial_at.is_empty() {
                    return None;
                }
                let q = rho.change_of_basis();
                let columns = trivial_at
                    .iter()
                    .flat_map(|&c| (0..rho.dim()).map(move |r| q[(r, c)] as f32))
                    .collect();
                let term = BiasTerm {
                    offset: bias_len,
                    columns,
                    trivial: trivial_at.len(),
                };
                bias_len += count * trivial_at.len();
                Some(term)
            })
            .collect();
        Ok(SteerableGeometry {
            name: name.to_string(),
            in_type: in_type.clone(),
            out_type: out_type.clone(),
            window,
            kernels: Kernels::default(),
            in_terms: ins.iter().map(|(c, _, rho)| (*c, rho.dim())).collect(),
            out_terms: outs.iter().map(|(c, _, rho)| (*c, rho.dim())).collect(),
            blocks,
            bias_terms,
            weight_len: offset,
            bias_len,
        })
    }

    /// Learned coefficients in all.
    pub fn weight_len(&self) -> usize {
        self.weight_len
    }

    /// Learned biases in all (one per trivial irrep of each output field).
    pub fn bias_len(&self) -> usize {
        self.bias_len
    }

    /// Generalised He initialisation: each output term's coefficients are normal with the
    /// variance that gives its filter rows the squared norm a He-initialised dense filter has
    /// in expectation (2 per output channel), whatever the basis sizes.
    fn init_weight(&self, device: &Device) -> Tensor<1> {
        let mut energy = vec![0.0f64; self.out_terms.len()];
        for b in &self.blocks {
            let (in_count, _) = self.in_terms[b.in_term];
            energy[b.out_term] += in_count as f64 * b.basis.energy;
        }
        let parts: Vec<Tensor<1>> = self
            .blocks
            .iter()
            .map(|b| {
                let (out_count, out_dim) = self.out_terms[b.out_term];
                let (in_count, _) = self.in_terms[b.in_term];
                let std = (2.0 * out_dim as f64 / energy[b.out_term]).sqrt();
                Tensor::random(
                    [out_count * in_count * b.elements],
                    Distribution::Normal(0.0, std),
                    device,
                )
            })
            .collect();
        Tensor::cat(parts, 0)
    }

    /// The plain conv2d filter `[out channels, in channels, k, k]` of learned `weight`.
    pub fn filter(&self, weight: Tensor<1>) -> Tensor<4> {
        let (device, dtype) = (weight.device(), weight.dtype());
        let k = self.window.kernel;
        let mut rows = Vec::with_capacity(self.out_terms.len());
        for (o, &(out_count, out_dim)) in self.out_terms.iter().enumerate() {
            let columns: Vec<Tensor<4>> = self
                .in_terms
                .iter()
                .enumerate()
                .map(|(i, &(in_count, in_dim))| {
                    let shape = [out_count * out_dim, in_count * in_dim, k, k];
                    let Some(b) = self
                        .blocks
                        .iter()
                        .find(|b| b.out_term == o && b.in_term == i)
                    else {
                        return Tensor::zeros(shape, &device);
                    };
                    let n = out_count * in_count * b.elements;
                    let coefficients = weight
                        .clone()
                        .narrow(0, b.offset, n)
                        .reshape([out_count * in_count, b.elements]);
                    let basis = b.basis.tensor(&device, dtype);
                    // [oc * ic, od * id * kk] -> [oc, od, ic, id * kk]
                    coefficients
                        .matmul(basis)
                        .reshape([out_count, in_count, out_dim, in_dim * k * k])
                        .swap_dims(1, 2)
                        .reshape(shape)
                })
                .collect();
            rows.push(Tensor::cat(columns, 1));
        }
        Tensor::cat(rows, 0)
    }

    /// The plain conv2d bias `[out channels]` of learned `bias` (zero on non-trivial irreps).
    pub fn bias(&self, bias: Tensor<1>) -> Tensor<1> {
        let (device, dtype) = (bias.device(), bias.dtype());
        let parts: Vec<Tensor<1>> = self
            .out_terms
            .iter()
            .zip(&self.bias_terms)
            .map(|(&(count, dim), term)| match term {
                None => Tensor::zeros([count * dim], &device),
                Some(t) => {
                    let columns = Tensor::<2>::from_data(
                        TensorData::new(t.columns.clone(), [t.trivial, dim]),
                        (&device, dtype),
                    );
                    bias.clone()
                        .narrow(0, t.offset, count * t.trivial)
                        .reshape([count, t.trivial])
                        .matmul(columns)
                        .reshape([count * dim])
                }
            })
            .collect();
        Tensor::cat(parts, 0)
    }
}

/// A steerable convolution between two feature types of one planar group.
#[derive(Module, Debug)]
pub struct R2Conv2d {
    /// The coefficients of every (output term, input term) basis, flat.
    pub weight: Param<Tensor<1>>,
    /// One bias per trivial irrep of each output field (none if the output has none).
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub geometry: SteerableGeometry,
}

impl R2Conv2d {
    /// The layer from `in_type` to `out_type` with a `window`-sized filter (escnn 1.0's rings
    /// for its kernel size and dilation unless `rings` are given).
    pub fn new(
        name: &str,
        in_type: &FeatureType,
        out_type: &FeatureType,
        window: Window,
        rings: Option<&[Ring]>,
        bias: bool,
        device: &Device,
    ) -> Result<Self> {
        let geometry = SteerableGeometry::new(name, in_type, out_type, window, rings)?;
        let weight = Param::from_tensor(geometry.init_weight(device));
        let bias = (bias && geometry.bias_len > 0)
            .then(|| Param::from_tensor(Tensor::zeros([geometry.bias_len], device)));
        Ok(R2Conv2d {
            weight,
            bias,
            geometry,
        })
    }

    /// The plain conv2d filter bank this layer applies.
    pub fn expanded_filter(&self) -> Tensor<4> {
        self.geometry.filter(self.weight.val())
    }

    /// The plain conv2d bias this layer applies.
    pub fn expanded_bias(&self) -> Option<Tensor<1>> {
        self.bias.as_ref().map(|b| self.geometry.bias(b.val()))
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let g = &self.geometry;
        check_channels(&g.name, g.in_type.channels(), &x);
        let w = g.window;
        ops::conv2d(
            x,
            self.expanded_filter(),
            self.expanded_bias(),
            w.stride,
            w.padding,
            w.dilation,
            g.kernels,
        )
    }
}
