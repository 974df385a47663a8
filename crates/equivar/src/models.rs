//! Reference architectures from the papers, by name.

use crate::error::{EquivarError, Result};
use crate::field::FieldType;
use crate::group::{Group, PlanarGroup};
use crate::layers::EquivariantSubsample;
use crate::space::Window;
use crate::spec::{NetSpec, Reduce};

pub mod e2;
pub mod hnet;
pub mod sphere;

/// A named reference model.
#[derive(Clone, Copy, Debug)]
pub struct ModelInfo {
    pub name: &'static str,
    pub summary: &'static str,
    /// An input size the model plans at (its paper's): `n` of `n x n` images, `nlat` of
    /// `nlat x 2 nlat` sphere grids.
    pub input_size: usize,
    build: fn() -> NetSpec,
}

impl ModelInfo {
    pub fn spec(&self) -> NetSpec {
        (self.build)()
    }
}

/// Every reference model.
pub const MODELS: &[ModelInfo] = &[
    ModelInfo {
        name: "abusing-p4",
        summary: "MNIST P4 G-CNN of Using and Abusing Equivariance (Edixhoven et al. 2023): \
                  10 regular C4 fields, exact at 28, approximate at 27 and 29",
        input_size: 28,
        build: || abusing("abusing-p4", Group::cyclic(4), 10),
    },
    ModelInfo {
        name: "abusing-p4m",
        summary: "the same network over D4 (rotations and mirrors), 10 regular fields",
        input_size: 28,
        build: || abusing("abusing-p4m", Group::dihedral(4), 10),
    },
    ModelInfo {
        name: "abusing-p4-subsample",
        summary: "abusing-p4 with equivariant subsampling (Xu et al. 2021) after a 2x2 \
                  stride-1 max pool: exact under quarter turns at every input size",
        input_size: 28,
        build: || abusing_subsampled("abusing-p4-subsample", Group::cyclic(4), 10),
    },
    ModelInfo {
        name: "abusing-p4m-subsample",
        summary: "the same over D4: exact under quarter turns and mirrors at every size",
        input_size: 28,
        build: || abusing_subsampled("abusing-p4m-subsample", Group::dihedral(4), 10),
    },
    ModelInfo {
        name: "abusing-z2",
        summary: "its Z2 baseline: the same network with plain convolutions (group C1), \
                  20 channels to match the P4 parameter count",
        input_size: 28,
        build: || abusing("abusing-z2", Group::trivial(), 20),
    },
    ModelInfo {
        name: "cohen-p4cnn",
        summary: "P4CNN of Cohen & Welling 2016 for MNIST-rot: 7 p4 layers of 10 fields, no \
                  padding, 2x2 max pool after layer 2, 4x4 top layer, rotation max pool",
        input_size: 28,
        build: || cohen("cohen-p4cnn", Group::cyclic(4), 10),
    },
    ModelInfo {
        name: "cohen-z2cnn",
        summary: "Z2CNN of Cohen & Welling 2016: the same network with plain convolutions and \
                  20 channels",
        input_size: 28,
        build: || cohen("cohen-z2cnn", Group::trivial(), 20),
    },
    ModelInfo {
        name: "e2-c8",
        summary: "MNIST-rot E2SFCNN of Weiler & Cesa 2019 over C8: six steerable convs of \
                  33-135 regular fields (9x9, 7x7, 5x5), inner batch norm, ELU, group max \
                  pool, 3-layer head; exact under quarter turns at 28, 45 degrees approximate",
        input_size: 28,
        build: || e2_model("e2-c8", PlanarGroup::Cyclic(8), None),
    },
    ModelInfo {
        name: "e2-c16",
        summary: "the same network over C16 (the paper's \"C16\"): 24-96 regular fields",
        input_size: 28,
        build: || e2_model("e2-c16", PlanarGroup::Cyclic(16), None),
    },
    ModelInfo {
        name: "e2-d16c16",
        summary: "the same network over D16 restricted to C16 after conv 5 (the paper's \
                  \"D16|5 C16\", 0.682% test error): 16-45 D16 fields, then 96 C16 fields",
        input_size: 28,
        build: || {
            e2_model(
                "e2-d16c16",
                PlanarGroup::Dihedral(16),
                Some(PlanarGroup::Cyclic(16)),
            )
        },
    },
    ModelInfo {
        name: "e2-c8-quick",
        summary: "e2-c8 at a quarter of its widths (9-34 C8 fields, about a sixteenth of the work): \
                  the rotated-MNIST quick profile's C8 model",
        input_size: 28,
        build: || e2_quick_model("e2-c8-quick", PlanarGroup::Cyclic(8), None),
    },
    ModelInfo {
        name: "e2-c16-quick",
        summary: "e2-c16 at a quarter of its widths (6-24 C16 fields)",
        input_size: 28,
        build: || e2_quick_model("e2-c16-quick", PlanarGroup::Cyclic(16), None),
    },
    ModelInfo {
        name: "e2-d16c16-quick",
        summary: "e2-d16c16 at a quarter of its widths (4-12 D16 fields, then 24 C16 fields)",
        input_size: 28,
        build: || {
            e2_quick_model(
                "e2-d16c16-quick",
                PlanarGroup::Dihedral(16),
                Some(PlanarGroup::Cyclic(16)),
            )
        },
    },
    ModelInfo {
        name: "hnet",
        summary: "Harmonic Network of Worrall et al. 2017 for MNIST-rot: SO(2) features of \
                  rotation orders 0 and 1 (8, 16, 32 per order), 5x5 steerable convs, \
                  norm-ReLU, norm batch norm, mean pools; exact under quarter turns at 28",
        input_size: 28,
        build: || hnet::hnet("hnet", hnet::HNET_WIDTHS),
    },
    ModelInfo {
        name: "abusing-c8",
        summary: "abusing-p4 over C8 with steerable convs: 9 regular C8 fields (the width \
                  nearest abusing-p4's parameter count), exact under quarter turns at 28, \
                  45-degree turns approximate at every size",
        input_size: 28,
        build: || abusing_steerable("abusing-c8", PlanarGroup::Cyclic(8), 9),
    },
    ModelInfo {
        name: "spherical-cnn",
        summary: "spherical MNIST classifier of DISCO convolutions (equivar's, in the setting \
                  of Cohen et al. 2018): 4 convs of 16, 32, 32, 64 channels with isotropic \
                  filters, 3 halvings, quadrature mean, linear head; nlat a multiple of 8",
        input_size: 64,
        build: || sphere::spec("spherical-cnn", [16, 32, 32, 64], 10),
    },
];

/// An E2SFCNN at the paper's widths.
fn e2_model(name: &str, group: PlanarGroup, restrict_to: Option<PlanarGroup>) -> NetSpec {
    e2::e2sfcnn(
        name,
        group,
        e2::paper_widths(group, restrict_to),
        restrict_to,
        96,
    )
}

/// An E2SFCNN at a quarter of the paper's widths (rounded up), the same head.
fn e2_quick_model(name: &str, group: PlanarGroup, restrict_to: Option<PlanarGroup>) -> NetSpec {
    let widths = e2::paper_widths(group, restrict_to).map(|w| w.div_ceil(4));
    e2::e2sfcnn(name, group, widths, restrict_to, 96)
}

/// The spec of the reference model `name`, or of the description in the file `name` (a
/// path ending in `.json` or `.toml`, or any existing file).
pub fn spec(name: &str) -> Result<NetSpec> {
    if let Some(model) = MODELS.iter().find(|m| m.name == name) {
        return Ok(model.spec());
    }
    let path = std::path::Path::new(name);
    let looks_like_file = [".json", ".toml"].iter().any(|e| name.ends_with(e)) || path.is_file();
    if looks_like_file {
        return NetSpec::from_file(path);
    }
    Err(EquivarError::UnknownModel {
        name: name.to_string(),
        known: MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", "),
    })
}

/// The MNIST network of "Using and Abusing Equivariance" (DESIGN.md 2.1): lifting conv and
/// group conv (3x3, p1) + BN + ReLU, a 2x2/2 max pool, four more 3x3 p1 group convs, a 4x4 p0
/// group conv, global average over space, max over the group, Linear(fields -> 10).
/// At 28: 28 -> 14 -> 11, exact; at 27 or 29 the pool's grid is off centre.
///
/// Parameters (abusing-p4): 24,810. The authors' code reports 24,990: its first layer takes
/// 3 input channels (MNIST replicated to RGB), adding 2 * 10 * 3 * 3 = 180 weights.
pub fn abusing(name: &str, group: Group, fields: usize) -> NetSpec {
    abusing_with(name, group, fields, |spec| {
        spec.max_pool(Window::new(2).stride(2))
    })
}

/// [`abusing`] with its 2x2/2 max pool split into a 2x2 stride-1 max pool and an
/// equivariant subsampling (Xu et al. 2021): exact under the group's quarter turns and mirrors
/// at every input size. At 28: 28 -> 27 -> 14 -> 11; at 29: 29 -> 28 -> 14 -> 11.
pub fn abusing_subsampled(name: &str, group: Group, fields: usize) -> NetSpec {
    abusing_with(name, group, fields, |spec| {
        spec.max_pool(Window::new(2))
            .push("subsample1", EquivariantSubsample { stride: 2 })
    })
}

fn abusing_with(
    name: &str,
    group: Group,
    fields: usize,
    pool: impl FnOnce(NetSpec) -> NetSpec,
) -> NetSpec {
    let conv3 = Window::new(3).padding(1);
    let spec = NetSpec::new(name, FieldType::trivial(group, 1))
        .lifting_conv(fields, conv3)
        .batch_norm()
        .relu()
        .group_conv(fields, conv3)
        .batch_norm()
        .relu();
    let mut spec = pool(spec);
    for _ in 0..4 {
        spec = spec.group_conv(fields, conv3).batch_norm().relu();
    }
    spec.group_conv(fields, Window::new(4))
        .batch_norm()
        .relu()
        .global_avg_pool()
        .group_pool(Reduce::Max)
        .linear(10)
}

/// [`abusing`] over any group of the plane with steerable convs between regular fields (the
/// lifting conv from the trivial input, the group convs between regular fields): the Using
/// and Abusing study beyond the pixel grid's own rotations. The windows and the pool are the
/// same, so the exact sizes are too; rotations outside the grid's are approximate anywhere.
pub fn abusing_steerable(name: &str, group: PlanarGroup, fields: usize) -> NetSpec {
    let conv3 = Window::new(3).padding(1);
    let regular = format!("{fields}x regular");
    let input = crate::field::FeatureType {
        group,
        terms: vec![(1, crate::field::ReprKind::Trivial)],
    };
    let mut spec = NetSpec::new(name, input)
        .r2_conv(&regular, conv3)
        .batch_norm()
        .relu()
        .r2_conv(&regular, conv3)
        .batch_norm()
        .relu()
        .max_pool(Window::new(2).stride(2));
    for _ in 0..4 {
        spec = spec.r2_conv(&regular, conv3).batch_norm().relu();
    }
    spec.r2_conv(&regular, Window::new(4))
        .batch_norm()
        .relu()
        .global_avg_pool()
        .group_pool(Reduce::Max)
        .linear(10)
}

/// P4CNN / Z2CNN of Cohen & Welling 2016 (DESIGN.md 2.2) for 28x28 MNIST-rot: 3x3 valid convs
/// with BN, ReLU and field dropout 0.3, a 2x2 max pool after layer 2, a 4x4 top layer with
/// 10 output fields (one per class), then max over the group: 28 -> 26 -> 24 -> 12 -> 10 ->
/// 8 -> 6 -> 4 -> 1.
pub fn cohen(name: &str, group: Group, fields: usize) -> NetSpec {
    let conv3 = Window::new(3);
    let block = |spec: NetSpec| spec.batch_norm().relu().field_dropout(0.3);
    let mut spec =
        block(NetSpec::new(name, FieldType::trivial(group, 1)).lifting_conv(fields, conv3));
    spec = block(spec.group_conv(fields, conv3)).max_pool(Window::new(2).stride(2));
    for _ in 0..4 {
        spec = block(spec.group_conv(fields, conv3));
    }
    spec.group_conv(10, Window::new(4)).group_pool(Reduce::Max)
}
