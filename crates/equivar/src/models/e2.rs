//! The MNIST-rot network of Weiler & Cesa 2019 ("General E(2)-Equivariant Steerable CNNs",
//! `E2SFCNN` in QUVA-Lab/e2cnn_experiments), as ../shared/peers/E2-ARCHITECTURE.md specifies
//! it: six steerable convolutions between regular fields of C_N (9x9, then four 7x7 with
//! padding 3, then 5x5), each followed by inner batch norm and ELU, 2x2 max pools after blocks
//! 2 and 4, group max pooling after block 6, and a head of three linear layers with batch norm,
//! ELU and dropout 0.3. At 28x28 the maps go 28 -> 20 -> 10 -> 5 -> 1 and every pooling grid
//! is symmetric, so the network is exact under quarter turns; rotations by other multiples of
//! 360/N degrees are approximate (the image and the kernels are sampled on the pixel grid).

use crate::field::FeatureType;
use crate::group::PlanarGroup;
use crate::layers::Linear;
use crate::space::Window;
use crate::spec::{Activation, NetSpec, Reduce};

/// The paper's base widths, for |G| = 16.
pub const BASE_WIDTHS: [usize; 6] = [24, 32, 36, 36, 64, 96];

/// `--fixparams`: width `C` scaled to `int(C / sqrt(|G| / 16))` so that models of different
/// groups have about the same number of parameters.
pub fn fixparams_widths(order: usize, base: [usize; 6]) -> [usize; 6] {
    base.map(|c| (c as f64 / (order as f64 / 16.0).sqrt()).floor() as usize)
}

/// The paper's widths for a model over C_N or D_N, restricted to `after` (if any) after conv
/// 5: block 6 is sized for the subgroup.
pub fn paper_widths(group: PlanarGroup, after: Option<PlanarGroup>) -> [usize; 6] {
    let order = |g: PlanarGroup| g.order().unwrap_or(16);
    let mut widths = fixparams_widths(order(group), BASE_WIDTHS);
    if let Some(sub) = after {
        widths[5] = fixparams_widths(order(sub), BASE_WIDTHS)[5];
    }
    widths
}

/// The network over `group` with `fields` regular fields per block and a head of `hidden`
/// units (96 in the paper); with `restrict_to`, the features are read as fields of that
/// subgroup after conv 5 (the paper's "D16|5 C16": D16 -> C16, each D16 regular field becoming
/// two C16 regular fields).
pub fn e2sfcnn(
    name: &str,
    group: PlanarGroup,
    fields: [usize; 6],
    restrict_to: Option<PlanarGroup>,
    hidden: usize,
) -> NetSpec {
    let input = FeatureType {
        group,
        terms: vec![(1, crate::field::ReprKind::Trivial)],
    };
    let elu = Activation::Elu { alpha: 1.0 };
    let regular = |f: usize| format!("{f}x regular");
    let windows = [
        Window::new(9),
        Window::new(7).padding(3),
        Window::new(7).padding(3),
        Window::new(7).padding(3),
        Window::new(7).padding(3),
        Window::new(5),
    ];
    let mut spec = NetSpec::new(name, input);
    for (block, (&f, &window)) in fields.iter().zip(&windows).enumerate() {
        spec = spec.r2_conv(&regular(f), window);
        if let (4, Some(sub)) = (block, restrict_to) {
            spec = spec.restrict(&sub.to_string());
        }
        spec = spec.batch_norm();
        if block == 1 || block == 3 {
            spec = spec.max_pool(Window::new(2).stride(2));
        }
        if block == 5 {
            spec = spec.group_pool(Reduce::Max);
        }
        spec = spec.activation(elu);
    }
    // The paper's global max pool; the map is 1x1 here at 28 (and the mean is the max).
    let linear = |out_features| Linear {
        out_features,
        bias: true,
    };
    spec.global_avg_pool()
        .field_dropout(0.3)
        .push("fc1", linear(hidden))
        .batch_norm()
        .activation(elu)
        .field_dropout(0.3)
        .push("fc2", linear(hidden))
        .batch_norm()
        .activation(elu)
        .field_dropout(0.3)
        .push("fc3", linear(10))
}
