//! Gradients of the lifting, group and steerable convs and of the norm and gated
//! nonlinearities against central finite differences, in float64 (this test binary configures
//! the flex device's default float type to f64).
//!
//! Loss `L = sum(layer(x) * r)` for a fixed random `r`. For the convs it is linear in the
//! weights and in the input, so central differences are exact up to rounding and a relative
//! tolerance of 1e-7 leaves a wide margin over f64 rounding (~1e-13) while catching any wrong
//! index. The nonlinearities are smooth away from their kinks, and a step of 1e-5 keeps the
//! differences' truncation error (~1e-10) and rounding (~1e-11) well under the tolerance.

use burn::module::Param;
use burn::tensor::{Device, Distribution, FloatDType, Tensor, TensorData};
use equivar::field::{FeatureType, FieldType};
use equivar::group::Group;
use equivar::nn::{
    FieldLayout, GatedNonlinearity, GroupConv2d, LiftingConv2d, NormFunction, NormNonlinearity,
    R2Conv2d,
};
use equivar::space::Window;

const TOL: f64 = 1e-7;
const EPS: f64 = 1e-3;

fn f64_device() -> Device {
    static CONFIGURE: std::sync::Once = std::sync::Once::new();
    let mut device = Device::flex();
    CONFIGURE.call_once(|| {
        device
            .configure(FloatDType::F64)
            .expect("configure f64 before any tensor")
    });
    device
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap()
}

fn with_entry<const D: usize>(t: &Tensor<D>, index: usize, delta: f64) -> Tensor<D> {
    let mut v = values(t.clone());
    v[index] += delta;
    Tensor::from_data(TensorData::new(v, t.shape()), &t.device())
}

/// Compares autodiff and finite-difference gradients of `loss(weight, bias, x)` for a few
/// entries of each argument.
fn check_gradients<const D: usize>(
    name: &str,
    weight: Tensor<D>,
    bias: Tensor<1>,
    x: Tensor<4>,
    loss: impl Fn(Tensor<D>, Tensor<1>, Tensor<4>) -> Tensor<1>,
) {
    check_gradients_with_step(name, EPS, weight, bias, x, loss)
}

/// [`check_gradients`] with the finite differences' step `eps`.
fn check_gradients_with_step<const D: usize>(
    name: &str,
    eps: f64,
    weight: Tensor<D>,
    bias: Tensor<1>,
    x: Tensor<4>,
    loss: impl Fn(Tensor<D>, Tensor<1>, Tensor<4>) -> Tensor<1>,
) {
    let w_ad = weight.clone().autodiff().require_grad();
    let b_ad = bias.clone().autodiff().require_grad();
    let x_ad = x.clone().autodiff().require_grad();
    let grads = loss(w_ad.clone(), b_ad.clone(), x_ad.clone()).backward();
    let gw = values(w_ad.grad(&grads).unwrap());
    let gb = values(b_ad.grad(&grads).unwrap());
    let gx = values(x_ad.grad(&grads).unwrap());

    let scalar = |w: Tensor<D>, b: Tensor<1>, x: Tensor<4>| values(loss(w, b, x))[0];
    let fd = |f: &dyn Fn(f64) -> f64| (f(eps) - f(-eps)) / (2.0 * eps);
    let mut worst: f64 = 0.0;
    let mut compare = |what: &str, analytic: f64, numeric: f64| {
        let err = (analytic - numeric).abs() / numeric.abs().max(1.0);
        worst = worst.max(err);
        assert!(
            err <= TOL,
            "{name}: d/d{what}: autodiff {analytic} vs finite differences {numeric}"
        );
    };
    let stride = |len: usize| (len / 23).max(1);
    for i in (0..gw.len()).step_by(stride(gw.len())) {
        let n = fd(&|d| scalar(with_entry(&weight, i, d), bias.clone(), x.clone()));
        compare(&format!("weight[{i}]"), gw[i], n);
    }
    for (i, &analytic) in gb.iter().enumerate() {
        let n = fd(&|d| scalar(weight.clone(), with_entry(&bias, i, d), x.clone()));
        compare(&format!("bias[{i}]"), analytic, n);
    }
    for i in (0..gx.len()).step_by(stride(gx.len())) {
        let n = fd(&|d| scalar(weight.clone(), bias.clone(), with_entry(&x, i, d)));
        compare(&format!("input[{i}]"), gx[i], n);
    }
    println!("{name}: max relative gradient error {worst:.2e}");
}

fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// Checks one conv layer: `L = sum(layer(x) * r)` with the layer's weight and bias replaced
/// by the probed values. A macro because the two conv types share fields, not a trait.
macro_rules! check_conv {
    ($name:expr, $template:expr, $x:expr, $r:expr) => {{
        let template = $template;
        let r = $r;
        check_gradients(
            &$name,
            template.weight.val(),
            template.bias.as_ref().unwrap().val(),
            $x,
            |w, b, x| {
                let mut layer = template.clone();
                layer.weight = Param::from_tensor(w);
                layer.bias = Some(Param::from_tensor(b));
                (layer.forward(x) * r.clone().to_device(&layer.weight.val().device())).sum()
            },
        )
    }};
}

#[test]
fn conv_gradients_match_finite_differences() {
    let device = f64_device();
    device.seed(5);
    for group in [Group::cyclic(4), Group::dihedral(4)] {
        // lifting: 2 image channels -> 3 regular fields, strided and padded
        let input = FieldType::trivial(group, 2);
        let window = Window::new(3).stride(2).padding(1).dilation(1);
        check_conv!(
            format!("lifting conv {group}"),
            LiftingConv2d::new("lift", input, 3, window, true, &device).unwrap(),
            random([2, input.channels(), 7, 7], &device),
            random([2, 3 * group.order(), 4, 4], &device)
        );

        // group conv: 2 regular fields -> 2 regular fields, dilated
        let input = FieldType::regular(group, 2);
        let window = Window::new(2).padding(1).dilation(2);
        check_conv!(
            format!("group conv {group}"),
            GroupConv2d::new("gconv", input, 2, window, true, &device).unwrap(),
            random([2, input.channels(), 5, 5], &device),
            random([2, 2 * group.order(), 5, 5], &device)
        );
    }
}

#[test]
fn steerable_conv_gradients_match_finite_differences() {
    let device = f64_device();
    device.seed(6);
    // Mixed types (regular, irreps, trivial; the bias lives on the trivial irreps), strided and
    // padded, and a dilated continuous-group case.
    let cases = [
        (
            "C8: regular + irrep(1) + trivial",
            "2x regular + irrep(3) + trivial",
            Window::new(3).stride(2).padding(1),
            7,
        ),
        (
            "O(2): irrep(1,1) + irrep(0,0)",
            "irrep(1,2) + 2x irrep(0,0)",
            Window::new(3).padding(2).dilation(2),
            5,
        ),
    ];
    for (input, output, window, size) in cases {
        let in_type: FeatureType = input.parse().unwrap();
        let out_type: FeatureType = format!("{}: {output}", in_type.group).parse().unwrap();
        let layer = R2Conv2d::new("r2", &in_type, &out_type, window, None, true, &device).unwrap();
        let out_size = window.out_size(size).unwrap();
        let bias = layer.bias.as_ref().unwrap().val();
        let layer = R2Conv2d {
            bias: Some(Param::from_tensor(random(bias.dims(), &device))),
            ..layer
        };
        check_conv!(
            format!("r2 conv {input} -> {output}"),
            layer,
            random([2, in_type.channels(), size, size], &device),
            random([2, out_type.channels(), out_size, out_size], &device)
        );
    }
}

#[test]
fn norm_and_gated_nonlinearity_gradients_match_finite_differences() {
    let device = f64_device();
    device.seed(8);
    let t: FeatureType = "SO(2): 2x irrep(1) + irrep(3) + trivial + regular(2)"
        .parse()
        .unwrap();
    let layout = FieldLayout::of(&t);
    let (fields, channels) = (layout.fields(), layout.channels());
    let x = random([2, channels, 3, 3], &device);
    let r = random([2, channels, 3, 3], &device);
    // `weight`: the norm-ReLU thresholds; `bias`: a shift of every input channel, so the
    // loss is probed along directions that change the norms and along ones that do not.
    for function in [NormFunction::NormRelu, NormFunction::Squash] {
        let template = NormNonlinearity::new("n", layout.clone(), function, true, &device);
        check_gradients_with_step(
            &format!("{} on {t}", function.label()),
            1e-5,
            Tensor::<1>::random([fields], Distribution::Uniform(0.0, 0.5), &device),
            random([channels], &device),
            x.clone(),
            |w, b, x| {
                let device = w.device();
                let mut layer = template.clone();
                if function == NormFunction::NormRelu {
                    layer.threshold = Some(Param::from_tensor(w.clone()));
                }
                let shifted = x + b.reshape([1, channels, 1, 1]);
                // Squash has no threshold: keep `w` in the graph with a zero weight.
                let keep = w.sum().mul_scalar(0.0).reshape([1, 1, 1, 1]);
                ((layer.forward(shifted) + keep) * r.clone().to_device(&device)).sum()
            },
        );
    }
    // The gate: fields, then one gate per field.
    let gate = GatedNonlinearity {
        gated: layout.clone(),
        name: "g".into(),
    };
    let xg = random([2, channels + fields, 3, 3], &device);
    check_gradients_with_step(
        "gated",
        1e-5,
        random([fields], &device),
        random([channels], &device),
        xg,
        |w, b, x| {
            let device = w.device();
            // `w` shifts the gates, `b` the gated fields.
            let shift = Tensor::cat(vec![b, w], 0).reshape([1, channels + fields, 1, 1]);
            (gate.forward(x + shift) * r.clone().to_device(&device)).sum()
        },
    );
}
