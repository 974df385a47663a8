//! Batch norm on fields of any representation (IID batch norm): on regular fields it equals
//! the inner batch norm; it is equivariant (float32, <= 1e-5 relative) under every group
//! element in training and in inference mode; it normalises each field to unit mean squared
//! norm per component with a zero invariant mean; export, frozen lowering and precise
//! recalibration agree with the module; models with it on irreps are exact end to end.

mod common;

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};
use common::{act_on_channels, host, relative_error};
use equivar::check::equivariance_report;
use equivar::field::FeatureType;
use equivar::group::O2Element;
use equivar::nn::{EquivariantBatchNorm, IidBatchNorm, Layer};
use equivar::plan::Exactness;
use equivar::space::Window;
use equivar::spec::NetSpec;

const EXACT_TOL: f64 = 1e-5;

fn ty(text: &str) -> FeatureType {
    text.parse().unwrap()
}

fn random(shape: [usize; 4], mean: f64, device: &Device) -> Tensor<4> {
    Tensor::random(shape, Distribution::Normal(mean, 1.5), device)
}

fn with_random_affine(mut bn: IidBatchNorm, device: &Device) -> IidBatchNorm {
    let fields = bn.fields();
    bn.gamma = Param::from_tensor(Tensor::random(
        [fields],
        Distribution::Uniform(0.5, 2.0),
        device,
    ));
    if let Some(beta) = &bn.beta {
        let n = beta.val().dims()[0];
        bn.beta = Some(Param::from_tensor(Tensor::random(
            [n],
            Distribution::Normal(0.0, 1.0),
            device,
        )));
    }
    bn
}

#[test]
fn on_regular_fields_it_is_the_inner_batch_norm() {
    let device = Device::flex().autodiff();
    device.seed(1);
    let t = ty("C8: 3x regular");
    let iid = IidBatchNorm::new("iid", &t, 1e-5, 0.1, &device);
    let inner = EquivariantBatchNorm::new("inner", t.field_type().unwrap(), 1e-5, 0.1, &device);
    let x = random([4, t.channels(), 5, 5], 0.7, &device);
    let (a, b) = (host(iid.forward(x.clone())), host(inner.forward(x)));
    let e = relative_error(&a, &b);
    let mean_e = relative_error(
        &host(iid.running_mean.value()),
        &host(inner.norm.running_mean.value().repeat_dim(0, 1))
            .iter()
            .flat_map(|&m| std::iter::repeat_n(m, 8))
            .collect::<Vec<_>>(),
    );
    let var_e = relative_error(
        &host(iid.running_var.value()),
        &host(inner.norm.running_var.value()),
    );
    println!("output {e:.2e}, running mean {mean_e:.2e}, running variance {var_e:.2e}");
    assert!(e <= 1e-5 && mean_e <= 1e-5 && var_e <= 1e-5);
}

#[test]
fn it_normalises_and_is_equivariant_in_training_and_inference() {
    let device = Device::flex().autodiff();
    device.seed(2);
    for text in [
        "SO(2): 2x irrep(1) + irrep(3) + 2x trivial + regular(2)",
        "O(2): irrep(1,1) + irrep(0,0) + irrep(1,0) + regular(1)",
        "C8: regular + irrep(1) + irrep(4) + quotient(C2) + trivial",
        "D4: regular + irrep(1,1) + irrep(0,2) + quotient(C2)",
    ] {
        let t = ty(text);
        let bn = IidBatchNorm::new("bn", &t, 1e-5, 0.1, &device);
        let x = random([4, t.channels(), 3, 4], 0.8, &device);
        // With the initial scale 1 and shift 0: unit mean squared norm per component, and a
        // zero mean on every field's trivial irreps (the projection of the mean).
        let (_, mean_after, var_after) =
            bn.forward_batch_stats(bn.forward_batch_stats(x.clone()).0);
        let (mean_max, var_dev) = (
            host(mean_after).iter().fold(0.0f32, |m, v| m.max(v.abs())),
            host(var_after)
                .iter()
                .fold(0.0f32, |m, v| m.max((v - 1.0).abs())),
        );
        assert!(
            mean_max < 1e-5 && var_dev < 1e-4,
            "{text}: mean {mean_max}, var {var_dev}"
        );

        let bn = with_random_affine(bn, &device);
        let elements: Vec<O2Element> = match t.group.order() {
            Some(_) => t.group.elements(),
            None => (0..12)
                .map(|i| {
                    O2Element::new(
                        0.3 + 0.53 * i as f64,
                        t.group.has_reflections() && i % 2 == 1,
                    )
                })
                .collect(),
        };
        let fx = bn.forward(x.clone());
        let inference = bn.valid();
        let x_plain = x.clone().inner();
        let fx_plain = inference.forward(x_plain.clone());
        let mut worst = 0.0f64;
        for g in elements {
            let got = host(bn.forward(act_on_channels(&t, g, &x)));
            let want = host(act_on_channels(&t, g, &fx));
            let e = relative_error(&got, &want);
            assert!(e <= EXACT_TOL, "{text}, training, {g:?}: {e:e}");
            let got = host(inference.forward(act_on_channels(&t, g, &x_plain)));
            let want = host(act_on_channels(&t, g, &fx_plain));
            let e2 = relative_error(&got, &want);
            assert!(e2 <= EXACT_TOL, "{text}, inference, {g:?}: {e2:e}");
            worst = worst.max(e).max(e2);
        }
        println!(
            "{text}: max rel error {worst:.2e}, normalised mean {mean_max:.1e}, var {var_dev:.1e}"
        );
    }
}

fn irrep_model() -> NetSpec {
    NetSpec::new("t", ty("SO(2): trivial"))
        .r2_conv(
            "2x irrep(1) + irrep(2) + trivial + regular(1)",
            Window::new(5).padding(2),
        )
        .batch_norm()
        .norm_relu()
        .r2_conv("irrep(1) + 2x trivial", Window::new(3).stride(2))
        .batch_norm()
}

#[test]
fn models_export_freeze_and_recalibrate() {
    let device = Device::flex().autodiff();
    device.seed(3);
    let size = 13;
    let net = irrep_model()
        .init(size, Exactness::Require, &device)
        .unwrap();
    assert!(
        net.layers
            .iter()
            .any(|l| matches!(l, Layer::IidBatchNorm(_)))
    );
    let x = random([6, 1, size, size], 0.3, &device);
    // Training mode is exact end to end too (batch statistics are invariant).
    let trained = host(net.forward(x.clone()).inner());
    let images = net.recalibrate_batch_norm([x.clone()]).unwrap();
    assert_eq!(images, 6);
    let valid = net.valid();
    let x = x.inner();
    let want = host(valid.forward(x.clone()));
    let recalibrated = relative_error(&want, &trained);
    let exported = host(valid.export().unwrap().forward(x.clone()));
    let (frozen, _) = valid
        .to_frozen()
        .unwrap()
        .forward(&host(x.clone()), [6, 1, size, size])
        .unwrap();
    let (e, f) = (
        relative_error(&exported, &want),
        relative_error(&frozen, &want),
    );
    let report = equivariance_report(&valid, x).unwrap();
    println!(
        "recalibrated vs training {recalibrated:.2e}, export {e:.2e}, frozen {f:.2e}, grid \
         elements {:.2e}",
        report.max_rel_error
    );
    assert!(recalibrated <= 1e-4, "{recalibrated:e}");
    assert!(e <= 1e-5 && f <= 1e-5, "export {e:e}, frozen {f:e}");
    assert!(report.max_rel_error <= EXACT_TOL, "{report}");
    // Running statistics are not trainable parameters.
    // Batch norms: a scale per field and a shift per trivial irrep (5 + 2, then 3 + 2); the
    // norm-ReLU: a threshold per field (5).
    let others = 5 + 2 + 3 + 2 + 5;
    let convs: usize = net
        .layers
        .iter()
        .filter_map(|l| match l {
            Layer::R2Conv(c) => Some(c.geometry.weight_len() + c.geometry.bias_len()),
            _ => None,
        })
        .sum();
    assert_eq!(net.trainable_params(), convs + others);
}
