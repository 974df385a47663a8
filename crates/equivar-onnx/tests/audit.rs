//! The audit against ONNX files written by PyTorch and escnn (made by
//! `../shared/peers/export_onnx.py`; torch's own invariance errors in fixtures/manifest.json).

use std::path::{Path, PathBuf};

use equivar_onnx::{OnnxError, OnnxModel, OnnxPlan};
use prost::Message;
use tract_onnx::pb;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn open(name: &str) -> OnnxModel {
    OnnxModel::open(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn plan(name: &str) -> OnnxPlan {
    OnnxPlan::new(&open(name), None).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn inexact_nodes(plan: &OnnxPlan) -> Vec<&str> {
    plan.layers
        .iter()
        .filter(|l| !l.exact)
        .map(|l| l.node.as_str())
        .collect()
}

#[test]
fn p4_nets_are_exact_at_28_and_not_at_29_where_the_max_pool_breaks() {
    for net in ["escnn-p4", "torch-p4"] {
        let exact = plan(&format!("{net}-28.onnx"));
        assert!(exact.exact, "{net} at 28:\n{exact}");
        assert_eq!(exact.input_size, 28);
        assert_eq!(exact.layers.len(), 8, "7 convs and a max-pool:\n{exact}");
        let inexact = plan(&format!("{net}-29.onnx"));
        assert!(!inexact.exact, "{net} at 29:\n{inexact}");
        assert_eq!(inexact_nodes(&inexact), ["/body/body.6/MaxPool"]);
        let pool = inexact.first_inexact().unwrap();
        assert_eq!(
            (
                pool.op.as_str(),
                pool.in_size,
                pool.out_size,
                pool.remainder
            ),
            ("MaxPool", [29, 29], [14, 14], [1, 1])
        );
        assert_eq!(inexact.nearest_exact_sizes, [28, 30]);
        let text = inexact.to_string();
        assert!(
            text.contains("NOT exact at 29: `/body/body.6/MaxPool`"),
            "{text}"
        );
    }
}

#[test]
fn resnet_is_exact_at_33_and_not_at_32_where_the_stride_2_convs_break() {
    let exact = plan("resnet-33.onnx");
    assert!(exact.exact, "{exact}");
    let inexact = plan("resnet-32.onnx");
    assert!(!inexact.exact);
    assert_eq!(
        inexact_nodes(&inexact),
        [
            "/stages/stages.1/short/Conv",
            "/stages/stages.1/conv1/Conv",
            "/stages/stages.2/short/Conv",
            "/stages/stages.2/conv1/Conv",
        ]
    );
    assert!(
        inexact
            .layers
            .iter()
            .filter(|l| !l.exact)
            .all(|l| l.stride == [2, 2])
    );
    // Two stride-2 stages: exact iff n = 1 mod 4 (DESIGN.md 2.1).
    assert_eq!(inexact.nearest_exact_sizes, [29, 33]);
}

#[test]
fn the_plan_follows_input_size_on_a_graph_traced_at_another() {
    let model = open("escnn-p4-28.onnx");
    for (n, exact) in [(26, true), (27, false), (29, false), (30, true)] {
        let plan = OnnxPlan::new(&model, Some(n)).unwrap();
        assert_eq!(plan.exact, exact, "at {n}:\n{plan}");
        assert_eq!(plan.layers[0].in_size, [n, n]);
    }
}

/// torch's invariance errors from the manifest, per element.
fn manifest(name: &str) -> Vec<(String, f64)> {
    let text = std::fs::read_to_string(fixture("manifest.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    ["r1", "r2", "r3"]
        .iter()
        .map(|e| {
            let v = json[name]["rel_invariance_error"][e].as_f64().unwrap();
            (e.to_string(), v)
        })
        .collect()
}

#[test]
fn measured_rotation_errors_reproduce_torchs_within_a_factor_of_two() {
    // Each figure is a max over 4 random images, as torch's are; its spread from draw to draw
    // is large (up to 2x), so the median of 7 draws stands for ours.
    for name in [
        "escnn-p4-28.onnx",
        "escnn-p4-29.onnx",
        "torch-p4-28.onnx",
        "torch-p4-29.onnx",
        "resnet-32.onnx",
        "resnet-33.onnx",
    ] {
        let model = open(name);
        let draws: Vec<_> = (0..7)
            .map(|seed| equivar_onnx::check(&model, "c4".parse().unwrap(), None, 4, seed).unwrap())
            .collect();
        for (i, (element, torch)) in manifest(name).into_iter().enumerate() {
            let mut ours: Vec<f64> = draws.iter().map(|d| d.errors[i].rel_error).collect();
            ours.sort_by(f64::total_cmp);
            let median = ours[3];
            assert_eq!(draws[0].errors[i].element, element);
            let agrees = if torch < 1e-6 {
                median < 1e-6
            } else {
                (0.5..=2.0).contains(&(median / torch))
            };
            assert!(
                agrees,
                "{name} {element}: ours {median:.3e} (median of {ours:?}), torch {torch:.3e}"
            );
        }
    }
}

#[test]
fn a_c4_net_at_its_exact_size_is_invariant_to_quarter_turns_but_not_mirrors() {
    let model = open("escnn-p4-28.onnx");
    let check = equivar_onnx::check(&model, "d4".parse().unwrap(), None, 4, 0).unwrap();
    let names: Vec<_> = check.errors.iter().map(|e| e.element.as_str()).collect();
    assert_eq!(names, ["r1", "r2", "r3", "m", "r1m", "r2m", "r3m"]);
    for e in &check.errors {
        if e.element.ends_with('m') {
            assert!(
                e.rel_error > 1e-2,
                "{e:?}: a C4 net is not mirror-invariant"
            );
        } else {
            assert!(e.rel_error <= 1e-5, "{e:?}");
        }
    }
    assert_eq!(check.output_shape, [4, 10]);
    assert!(!check.output_is_image);
}

fn proto(name: &str) -> pb::ModelProto {
    pb::ModelProto::decode(&std::fs::read(fixture(name)).unwrap()[..]).unwrap()
}

fn write(dir: &tempfile::TempDir, name: &str, model: &pb::ModelProto) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    path
}

#[test]
fn truncated_files_are_clear_errors() {
    let bytes = std::fs::read(fixture("resnet-32.onnx")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Cuts inside the weights, inside the node list and just before the end.
    for keep in [bytes.len() / 10, bytes.len() / 2, bytes.len() - 7] {
        let path = dir.path().join("cut.onnx");
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let err = OnnxModel::open(&path).unwrap_err();
        assert!(matches!(err, OnnxError::Corrupt { .. }), "{keep}: {err}");
        assert!(err.to_string().contains("truncated or corrupt"), "{err}");
    }
    let missing = OnnxModel::open(dir.path().join("absent.onnx")).unwrap_err();
    assert!(matches!(missing, OnnxError::Read { .. }), "{missing}");
}

#[test]
fn an_unsupported_operator_is_named_with_its_node() {
    let mut model = proto("torch-p4-28.onnx");
    let graph = model.graph.as_mut().unwrap();
    let relu = graph.node.iter_mut().find(|n| n.op_type == "Relu").unwrap();
    relu.op_type = "FancyActivation".into();
    relu.domain = "com.example".into();
    let node = relu.name.clone();
    let dir = tempfile::tempdir().unwrap();
    let err = OnnxModel::open(write(&dir, "fancy.onnx", &model)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("`{node}`"))
            && text.contains("`FancyActivation` (domain `com.example`)"),
        "{text}"
    );
}

fn set_spatial_dims(model: &mut pb::ModelProto, h: &str, w: &str) {
    use pb::tensor_shape_proto::dimension::Value;
    let input = &mut model.graph.as_mut().unwrap().input[0];
    let Some(pb::type_proto::Value::TensorType(t)) = input.r#type.as_mut().unwrap().value.as_mut()
    else {
        unreachable!()
    };
    let dims = &mut t.shape.as_mut().unwrap().dim;
    for (axis, value) in [(2, h), (3, w)] {
        dims[axis].value = Some(match value.parse::<i64>() {
            Ok(v) => Value::DimValue(v),
            Err(_) => Value::DimParam(value.into()),
        });
    }
}

#[test]
fn a_dynamic_or_oblong_input_needs_input_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = proto("resnet-32.onnx");
    set_spatial_dims(&mut model, "height", "width");
    let dynamic = OnnxModel::open(write(&dir, "dynamic.onnx", &model)).unwrap();
    let err = OnnxPlan::new(&dynamic, None).unwrap_err();
    assert!(err.to_string().contains("pass --input-size N"), "{err}");
    let plan = OnnxPlan::new(&dynamic, Some(33)).unwrap();
    assert!(plan.exact);
    set_spatial_dims(&mut model, "32", "33");
    let oblong = OnnxModel::open(write(&dir, "oblong.onnx", &model)).unwrap();
    let err = equivar_onnx::check(&oblong, "c4".parse().unwrap(), None, 4, 0).unwrap_err();
    assert!(matches!(err, OnnxError::NotSquare { .. }), "{err}");
    for bad in [0, equivar_onnx::MAX_INPUT_SIZE + 1] {
        let err = OnnxPlan::new(&dynamic, Some(bad)).unwrap_err();
        assert!(matches!(err, OnnxError::InputSize { .. }), "{err}");
    }
}

#[test]
fn asymmetric_same_padding_is_named() {
    // SAME_UPPER on a 2x2/2 pool pads only after the image when the size is odd.
    let mut model = proto("escnn-p4-29.onnx");
    let graph = model.graph.as_mut().unwrap();
    let pool = graph
        .node
        .iter_mut()
        .find(|n| n.op_type == "MaxPool")
        .unwrap();
    pool.attribute.retain(|a| a.name != "pads");
    pool.attribute.push(pb::AttributeProto {
        name: "auto_pad".into(),
        r#type: pb::attribute_proto::AttributeType::String as i32,
        s: b"SAME_UPPER".to_vec(),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let model = OnnxModel::open(write(&dir, "same.onnx", &model)).unwrap();
    let plan = OnnxPlan::new(&model, None).unwrap();
    let pool = plan.first_inexact().unwrap();
    assert_eq!(
        (pool.pads, pool.out_size),
        ([0, 0, 1, 1], [15, 15]),
        "{plan}"
    );
    assert!(
        pool.problem
            .as_ref()
            .unwrap()
            .contains("asymmetric padding"),
        "{plan}"
    );
    // At 28 SAME_UPPER pads nothing: exact.
    assert!(OnnxPlan::new(&model, Some(28)).unwrap().exact);
}

/// A one-node graph `y = op(x)` on `[batch, 1, n, n]` images.
fn one_node(op: &str, attributes: Vec<pb::AttributeProto>, n: i64) -> pb::ModelProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let image = |name: &str, dims: Vec<Value>| pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .into_iter()
                        .map(|v| Dimension {
                            value: Some(v),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let dims = vec![
        Value::DimParam("batch".into()),
        Value::DimValue(1),
        Value::DimValue(n),
        Value::DimValue(n),
    ];
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(pb::GraphProto {
            node: vec![pb::NodeProto {
                input: vec!["x".into()],
                output: vec!["y".into()],
                name: "the_op".into(),
                op_type: op.into(),
                attribute: attributes,
                ..Default::default()
            }],
            input: vec![image("x", dims)],
            output: vec![image("y", vec![])],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn ints(name: &str, values: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

#[test]
fn image_outputs_are_moved_back_before_comparing() {
    let dir = tempfile::tempdir().unwrap();
    // A pixelwise op commutes with every element: zero error under D4, output compared as an
    // image (an invariance comparison would fail).
    let relu = OnnxModel::open(write(&dir, "relu.onnx", &one_node("Relu", vec![], 9))).unwrap();
    let check = equivar_onnx::check(&relu, "d4".parse().unwrap(), None, 3, 1).unwrap();
    assert!(check.output_is_image);
    assert_eq!(check.output_shape, [3, 1, 9, 9]);
    assert_eq!(check.max_rel_error, 0.0, "{check}");
    // A 2x2/2 max-pool: exact where the plan says so (28), not at 29.
    let pool = one_node(
        "MaxPool",
        vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
        28,
    );
    let pool = OnnxModel::open(write(&dir, "pool.onnx", &pool)).unwrap();
    for (n, exact) in [(28, true), (29, false)] {
        let plan = OnnxPlan::new(&pool, Some(n)).unwrap();
        let check = equivar_onnx::check(&pool, "d4".parse().unwrap(), Some(n), 4, 0).unwrap();
        assert_eq!(plan.exact, exact);
        if exact {
            assert_eq!(check.max_rel_error, 0.0, "{check}");
        } else {
            assert!(check.max_rel_error > 0.1, "{check}");
        }
    }
}

#[test]
fn bad_groups_and_image_counts_are_refused() {
    let model = open("resnet-33.onnx");
    let err = equivar_onnx::check(&model, "c8".parse().unwrap(), None, 4, 0).unwrap_err();
    assert!(matches!(err, OnnxError::Group { .. }), "{err}");
    for images in [0, equivar_onnx::MAX_IMAGES + 1] {
        let err = equivar_onnx::check(&model, "c4".parse().unwrap(), None, images, 0).unwrap_err();
        assert!(matches!(err, OnnxError::Images(_)), "{err}");
    }
}
