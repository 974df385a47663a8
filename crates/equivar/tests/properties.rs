//! Property tests: the group action on tensors is a homomorphism, and for random layers and
//! random small stacks the static plan agrees with the measured equivariance error.

use burn::tensor::{Device, Distribution, Tensor};
use equivar::check::{equivariance_report, max_errors};
use equivar::field::FieldType;
use equivar::group::Group;
use equivar::layers::{AvgPool, GroupConv, LiftingConv, MaxPool};
use equivar::plan::{Exactness, Plan};
use equivar::space::{GridAction, Window};
use equivar::spec::{LayerKind, NetSpec};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

const EXACT_TOL: f64 = 1e-5;

fn grid_group() -> impl Strategy<Value = Group> {
    prop_oneof![
        Just(Group::cyclic(1)),
        Just(Group::cyclic(2)),
        Just(Group::cyclic(4)),
        Just(Group::dihedral(1)),
        Just(Group::dihedral(2)),
        Just(Group::dihedral(4)),
    ]
}

fn random(device: &Device, shape: [usize; 4], seed: u64) -> Tensor<4> {
    device.seed(seed);
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

proptest! {
    #![proptest_config(Config::with_cases(64))]

    /// act(a) after act(b) equals act(ab), on images (trivial fields) and regular fields.
    #[test]
    fn action_is_a_homomorphism(group in grid_group(), a in 0usize..8, b in 0usize..8,
                                n in 1usize..9, regular in any::<bool>(), seed in any::<u64>()) {
        let device = Device::flex();
        let [a, b] = [a, b].map(|i| group.element(i % group.order()));
        let ty = if regular { FieldType::regular(group, 2) } else { FieldType::trivial(group, 3) };
        let x = random(&device, [2, ty.channels(), n, n], seed);
        let two_steps = ty.act(a, ty.act(b, x.clone()).unwrap()).unwrap();
        let one_step = ty.act(group.compose(a, b), x).unwrap();
        prop_assert_eq!(max_errors(&two_steps, &one_step).0, 0.0);
    }

    /// The index map used for filters and the tensor ops used for feature maps agree.
    #[test]
    fn grid_index_map_matches_tensor_action(group in grid_group(), a in 0usize..8, n in 1usize..7) {
        let device = Device::flex();
        let g = group.element(a % group.order());
        let action = GridAction::of(group, g).unwrap();
        let values: Vec<f32> = (0..n * n).map(|v| v as f32).collect();
        let x = Tensor::<4>::from_data(burn::tensor::TensorData::new(values, [1, 1, n, n]), &device);
        let moved: Vec<f32> = action.apply(x).into_data().try_to_vec::<f32>().unwrap();
        for i in 0..n {
            for j in 0..n {
                let (p, q) = action.source(i, j, n);
                prop_assert_eq!(moved[i * n + j], (p * n + q) as f32);
            }
        }
    }
}

#[derive(Clone, Debug)]
struct LayerChoice {
    kind: u8, // 0 conv, 1 max pool, 2 avg pool
    window: Window,
    fields: usize,
}

fn layer_choice() -> impl Strategy<Value = LayerChoice> {
    (
        0u8..3,
        1usize..=5,
        1usize..=3,
        0usize..=2,
        1usize..=2,
        1usize..=3,
    )
        .prop_map(
            |(kind, kernel, stride, padding, dilation, fields)| LayerChoice {
                kind,
                window: Window {
                    kernel,
                    stride,
                    padding,
                    dilation: if kind == 2 { 1 } else { dilation },
                },
                fields,
            },
        )
}

/// A stack over `group`: the first conv lifts from an image (or, with `regular_input`, the
/// stack starts on regular fields), later convs are group convs.
fn build_spec(group: Group, regular_input: bool, layers: &[LayerChoice]) -> NetSpec {
    let input = if regular_input {
        FieldType::regular(group, 2)
    } else {
        FieldType::trivial(group, 2)
    };
    let mut spec = NetSpec::new("random-stack", input);
    let mut regular = regular_input;
    for (i, layer) in layers.iter().enumerate() {
        let kind = match (layer.kind, regular) {
            (0, false) => LayerKind::from(LiftingConv {
                out_fields: layer.fields,
                window: layer.window,
                bias: true,
            }),
            (0, true) => LayerKind::from(GroupConv {
                out_fields: layer.fields,
                window: layer.window,
                bias: true,
            }),
            (1, _) => LayerKind::from(MaxPool {
                window: layer.window,
            }),
            _ => LayerKind::from(AvgPool {
                window: layer.window,
            }),
        };
        regular |= layer.kind == 0;
        spec = spec.push(format!("layer{i}"), kind);
    }
    spec
}

/// What one random configuration showed.
#[derive(Default, Clone, Copy)]
struct Tally {
    exact: u32,
    approximate: u32,
    /// Approximate by plan, but the flagged layer measured exact because earlier layers fed it
    /// centre-symmetric content (e.g. border pixels that read only padding and hold just the
    /// bias). The plan looks at geometry, not at data, so it is conservative here.
    masked_upstream: u32,
    /// Approximate by plan, but a later layer cancelled the asymmetry end to end.
    cancelled_downstream: u32,
}

/// Fixed unless PROPTEST_RNG_SEED says otherwise, so a CI failure can be replayed exactly.
fn reproducible_config(cases: u32) -> Config {
    let mut config = Config {
        cases,
        max_global_rejects: 100_000,
        ..Config::default()
    };
    if config.rng_seed == RngSeed::Random {
        config.rng_seed = RngSeed::Fixed(0x5EED_2026);
    }
    config
}

/// Runs random configurations until `wanted` valid ones were measured. Checks, on each:
/// - soundness: every layer up to the plan's first inexact one that the plan calls exact
///   measures <= 1e-5 (its prefix network, input to that layer's output);
/// - completeness: the first layer the plan flags measures > 1e-5. For single layers (random
///   input) this must always hold. In stacks, earlier layers can hand the flagged layer
///   symmetric content, so those cases are counted and must stay rare.
fn plan_agrees_with_measurement(max_layers: usize, wanted: u32) -> Tally {
    let device = Device::flex();
    let strategy = (
        prop_oneof![Just(Group::cyclic(4)), Just(Group::dihedral(4))],
        any::<bool>(),
        prop::collection::vec(layer_choice(), 1..=max_layers),
        5usize..=40,
        any::<u64>(),
    );
    let mut runner = TestRunner::new(reproducible_config(wanted));
    let tally = std::cell::Cell::new(Tally::default());
    runner
        .run(&strategy, |(group, regular_input, layers, n, seed)| {
            let spec = build_spec(group, regular_input, &layers);
            let Ok(plan) = Plan::new(&spec, n) else {
                return Err(TestCaseError::reject(
                    "invalid configuration (too small or bad pool padding)",
                ));
            };
            let net = spec.init(n, Exactness::AllowApproximate, &device).unwrap();
            let x = random(&device, [1, spec.input.channels(), n, n], seed);
            let report = equivariance_report(&net, x).unwrap();
            let first_inexact = plan.layers.iter().position(|l| !l.exact);
            let exact_prefix = first_inexact.unwrap_or(plan.layers.len());
            for (i, layer) in report.layers[..exact_prefix].iter().enumerate() {
                prop_assert!(
                    layer.rel_error <= EXACT_TOL,
                    "n={} layer {} exact by plan but measured rel error {:.3e}\n{:#?}",
                    n,
                    i,
                    layer.rel_error,
                    spec.layers
                );
            }
            let mut t = tally.get();
            match first_inexact {
                None => t.exact += 1,
                Some(i) => {
                    t.approximate += 1;
                    if report.layers[i].rel_error <= EXACT_TOL {
                        prop_assert!(
                            i > 0,
                            "n={} layer 0 approximate by plan but measured rel error {:.3e} \
                             on random input\n{:#?}",
                            n,
                            report.layers[i].rel_error,
                            spec.layers
                        );
                        t.masked_upstream += 1;
                    } else if report.max_rel_error <= EXACT_TOL {
                        t.cancelled_downstream += 1;
                    }
                }
            }
            tally.set(t);
            Ok(())
        })
        .unwrap();
    let t = tally.get();
    println!(
        "{} configurations (up to {max_layers} layers): {} exact by plan, {} approximate \
         ({} masked by symmetric upstream content, {} cancelled downstream)",
        t.exact + t.approximate,
        t.exact,
        t.approximate,
        t.masked_upstream,
        t.cancelled_downstream
    );
    assert!(t.exact + t.approximate >= wanted);
    assert!(
        t.exact >= wanted / 10 && t.approximate >= wanted / 10,
        "both outcomes must be exercised"
    );
    assert!(
        t.masked_upstream + t.cancelled_downstream <= t.approximate / 10,
        "the plan's inexact verdicts should almost always show up in the measurement"
    );
    t
}

#[test]
fn plan_agrees_with_measurement_on_single_layers() {
    let t = plan_agrees_with_measurement(1, 250);
    assert_eq!(t.masked_upstream + t.cancelled_downstream, 0);
}

#[test]
fn plan_agrees_with_measurement_on_small_stacks() {
    plan_agrees_with_measurement(4, 250);
}
