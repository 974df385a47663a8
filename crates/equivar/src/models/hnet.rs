//! Harmonic Networks (Worrall, Garbin, Turmukhambetov & Brostow 2017) for MNIST-rot, in
//! equivar's steerable layers. Their network (the authors' `deep_mnist`): three blocks of two
//! 5x5 convolutions with rotation orders 0 and 1 (8, 16, 32 complex features per order), a
//! norm-ReLU after the first conv of each block and a norm batch norm after the second, a 2x2
//! mean pool between blocks, and a last 5x5 conv to 10 order-0 features averaged over the
//! image (1.69% test error in the paper).
//!
//! Read as SO(2) feature types: a complex feature of rotation order 1 is an `irrep(1)` field,
//! and one of order 0 is two invariant (trivial) fields (its real and imaginary parts).
//! Two changes, both because equivar's fields are real: the last layer gives 10 real
//! invariant fields instead of the magnitudes of 10 complex ones, and the norm-ReLU acts on
//! each real order-0 part alone (not on the complex pair). The learned filters are the
//! steerable basis of the SO(2) irreps (Gaussian rings x circular harmonics, escnn's
//! defaults), where H-Nets learn a free radial profile per ring and a phase offset.
//!
//! At 28x28: 28 -> 14 -> 7 with every conv padded by 2 and the pools on even sizes, so the
//! network is exact under quarter turns and mirrors of the grid; the other rotations are
//! approximate (the kernels and the image are sampled on pixels).

use crate::field::{FeatureType, ReprKind};
use crate::group::PlanarGroup;
use crate::space::Window;
use crate::spec::NetSpec;

/// The paper's widths: complex features per rotation order in each block.
pub const HNET_WIDTHS: [usize; 3] = [8, 16, 32];

/// The H-Net with `widths` complex features per rotation order in its three blocks.
pub fn hnet(name: &str, widths: [usize; 3]) -> NetSpec {
    let input = FeatureType {
        group: PlanarGroup::So2,
        terms: vec![(1, ReprKind::Trivial)],
    };
    let conv = Window::new(5).padding(2);
    let mut spec = NetSpec::new(name, input);
    for (block, &n) in widths.iter().enumerate() {
        if block > 0 {
            spec = spec.avg_pool(Window::new(2).stride(2));
        }
        let features = format!("{}x trivial + {n}x irrep(1)", 2 * n);
        spec = spec
            .r2_conv(&features, conv)
            .norm_relu()
            .r2_conv(&features, conv)
            .batch_norm();
    }
    spec.r2_conv("10x trivial", conv).global_avg_pool()
}
