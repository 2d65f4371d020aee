//! Writing a [`Graph`] as a standard ONNX model (opset 17, IR version 8, default domain only),
//! through the prost-generated `onnx.proto` types that tract-onnx maintains.

use crate::graph::{DType, Dim, Graph, Op, TensorData, ValueKind};
use std::path::Path;
use tract_onnx::pb;

/// The ONNX opset the writer targets.
pub const OPSET: i64 = 17;
/// The ONNX IR version the writer targets.
pub const IR_VERSION: i64 = 8;

/// Errors while writing a model.
#[derive(Debug, thiserror::Error)]
pub enum OnnxWriteError {
    /// The file could not be written.
    #[error("cannot write ONNX model {path}: {source}")]
    Io {
        /// The target path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn tensor_proto(name: &str, dims: &[usize], data: &TensorData) -> pb::TensorProto {
    let raw: Vec<u8> = match data {
        TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::Bool(v) => v.iter().map(|&b| b as u8).collect(),
    };
    pb::TensorProto {
        name: name.to_string(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: data.dtype().onnx_code(),
        raw_data: raw,
        ..Default::default()
    }
}

fn i64_tensor(name: &str, v: &[i64]) -> pb::TensorProto {
    tensor_proto(name, &[v.len()], &TensorData::I64(v.to_vec()))
}

fn dim_proto(d: Dim) -> pb::tensor_shape_proto::Dimension {
    use pb::tensor_shape_proto::dimension::Value;
    let value = match d.as_fixed() {
        Some(n) => Value::DimValue(n as i64),
        None => Value::DimParam(d.to_string()),
    };
    pb::tensor_shape_proto::Dimension {
        value: Some(value),
        ..Default::default()
    }
}

fn value_info(g: &Graph, v: crate::graph::ValueId) -> pb::ValueInfoProto {
    let val = g.value(v);
    let shape = pb::TensorShapeProto {
        dim: val.shape.0.iter().map(|&d| dim_proto(d)).collect(),
    };
    pb::ValueInfoProto {
        name: val.name.clone(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: val.dtype.onnx_code(),
                shape: Some(shape),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn attr_int(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn attr_float(name: &str, f: f32) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Float as i32,
        f,
        ..Default::default()
    }
}

fn attr_ints(name: &str, ints: Vec<i64>) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints,
        ..Default::default()
    }
}

fn attr_string(name: &str, s: &str) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::String as i32,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn attr_tensor(name: &str, t: pb::TensorProto) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Tensor as i32,
        t: Some(t),
        ..Default::default()
    }
}

struct Emitter {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
}

impl Emitter {
    fn node(
        &mut self,
        name: String,
        op: &str,
        inputs: Vec<String>,
        outputs: Vec<String>,
        attribute: Vec<pb::AttributeProto>,
    ) {
        self.nodes.push(pb::NodeProto {
            name,
            op_type: op.into(),
            input: inputs,
            output: outputs,
            attribute,
            ..Default::default()
        });
    }

    /// Adds a 1-D i64 constant operand named after its node.
    fn i64_operand(&mut self, node: &str, what: &str, v: &[i64]) -> String {
        let name = format!("{node}/{what}");
        self.initializers.push(i64_tensor(&name, v));
        name
    }

    fn scalar_operand(&mut self, node: &str, what: &str, dtype: DType, value: f64) -> String {
        let name = format!("{node}/{what}");
        self.initializers.push(tensor_proto(
            &name,
            &[],
            &TensorData::float_scalar(dtype, value),
        ));
        name
    }
}

/// Converts a graph into an ONNX `ModelProto`.
pub fn to_model_proto(g: &Graph) -> pb::ModelProto {
    let mut e = Emitter {
        nodes: Vec::with_capacity(g.nodes.len()),
        initializers: Vec::new(),
    };
    for v in &g.values {
        if let ValueKind::Initializer(data) = &v.kind {
            let dims = v.shape.as_fixed().expect("initializers are static");
            e.initializers.push(tensor_proto(&v.name, &dims, data));
        }
    }
    for node in &g.nodes {
        let mut ins: Vec<String> = node
            .inputs
            .iter()
            .map(|&v| g.value(v).name.clone())
            .collect();
        let outs: Vec<String> = node
            .outputs
            .iter()
            .map(|&v| g.value(v).name.clone())
            .collect();
        let nm = node.name.clone();
        let mut attrs = Vec::new();
        match &node.op {
            Op::Gelu => {
                // Exact GELU in the pattern ONNX Runtime fuses: x·0.5·(1 + erf(x/√2)).
                let dt = g.dtype(node.inputs[0]);
                let sqrt2 = e.scalar_operand(&nm, "sqrt2", dt, std::f64::consts::SQRT_2);
                let one = e.scalar_operand(&nm, "one", dt, 1.0);
                let half = e.scalar_operand(&nm, "half", dt, 0.5);
                let x = ins[0].clone();
                let (d, f, a, m) = (
                    format!("{nm}/div"),
                    format!("{nm}/erf"),
                    format!("{nm}/add"),
                    format!("{nm}/mul"),
                );
                e.node(
                    d.clone(),
                    "Div",
                    vec![x.clone(), sqrt2],
                    vec![d.clone()],
                    vec![],
                );
                e.node(f.clone(), "Erf", vec![d], vec![f.clone()], vec![]);
                e.node(a.clone(), "Add", vec![f, one], vec![a.clone()], vec![]);
                e.node(m.clone(), "Mul", vec![x, a], vec![m.clone()], vec![]);
                e.node(nm.clone(), "Mul", vec![m, half], outs, vec![]);
                continue;
            }
            Op::Cast { to } => attrs.push(attr_int("to", to.onnx_code() as i64)),
            Op::Reshape { shape } => ins.push(e.i64_operand(&nm, "shape", shape)),
            Op::Transpose { perm } => {
                attrs.push(attr_ints("perm", perm.iter().map(|&p| p as i64).collect()))
            }
            Op::Slice { starts, ends, axes } => {
                ins.push(e.i64_operand(&nm, "starts", starts));
                ins.push(e.i64_operand(&nm, "ends", ends));
                ins.push(e.i64_operand(&nm, "axes", axes));
            }
            Op::Concat { axis } => attrs.push(attr_int("axis", *axis)),
            Op::Split { axis, sizes } => {
                attrs.push(attr_int("axis", *axis));
                ins.push(e.i64_operand(&nm, "split", sizes));
            }
            Op::Pad { pads } => ins.push(e.i64_operand(&nm, "pads", pads)),
            Op::Expand { shape } => ins.push(e.i64_operand(&nm, "shape", shape)),
            Op::Unsqueeze { axes } => ins.push(e.i64_operand(&nm, "axes", axes)),
            Op::Gather { axis } => attrs.push(attr_int("axis", *axis)),
            Op::ScatterNdAdd => attrs.push(attr_string("reduction", "add")),
            Op::ReduceSum { axes, keepdims } => {
                ins.push(e.i64_operand(&nm, "axes", axes));
                attrs.push(attr_int("keepdims", *keepdims as i64));
            }
            Op::ReduceMean { axes, keepdims } => {
                attrs.push(attr_ints("axes", axes.clone()));
                attrs.push(attr_int("keepdims", *keepdims as i64));
            }
            Op::Gemm {
                trans_a,
                trans_b,
                alpha,
                beta,
            } => {
                if *trans_a {
                    attrs.push(attr_int("transA", 1));
                }
                if *trans_b {
                    attrs.push(attr_int("transB", 1));
                }
                if *alpha != 1.0 {
                    attrs.push(attr_float("alpha", *alpha));
                }
                if *beta != 1.0 {
                    attrs.push(attr_float("beta", *beta));
                }
            }
            Op::Softmax { axis } | Op::LogSoftmax { axis } => attrs.push(attr_int("axis", *axis)),
            Op::LayerNorm { axis, epsilon } => {
                attrs.push(attr_int("axis", *axis));
                attrs.push(attr_float("epsilon", *epsilon));
            }
            Op::Zeros { shape, dtype } => {
                ins.push(e.i64_operand(&nm, "shape", shape));
                let zero = match dtype {
                    DType::F64 => TensorData::F64(vec![0.0]),
                    DType::I64 => TensorData::I64(vec![0]),
                    DType::Bool => TensorData::Bool(vec![false]),
                    _ => TensorData::F32(vec![0.0]),
                };
                attrs.push(attr_tensor("value", tensor_proto("", &[1], &zero)));
            }
            Op::Add
            | Op::Sub
            | Op::Mul
            | Op::Div
            | Op::Pow
            | Op::Max
            | Op::Greater
            | Op::Where
            | Op::Neg
            | Op::Sqrt
            | Op::Exp
            | Op::Log
            | Op::Erf
            | Op::Relu
            | Op::Reciprocal
            | Op::Identity
            | Op::StopGradient
            | Op::MatMul => {}
        }
        e.node(nm, node.op.onnx_type(), ins, outs, attrs);
    }
    let graph = pb::GraphProto {
        name: g.name.clone(),
        node: e.nodes,
        initializer: e.initializers,
        input: g.inputs.iter().map(|&v| value_info(g, v)).collect(),
        output: g.outputs.iter().map(|&v| value_info(g, v)).collect(),
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "patchmix-rs".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        ..Default::default()
    }
}

/// Serialises a graph to ONNX protobuf bytes.
pub fn to_onnx_bytes(g: &Graph) -> Vec<u8> {
    use prost::Message;
    to_model_proto(g).encode_to_vec()
}

/// Writes a graph as an ONNX file, atomically (temp file, fsync, rename).
///
/// # Errors
/// [`OnnxWriteError::Io`] naming the path.
pub fn write_onnx(g: &Graph, path: &Path) -> Result<(), OnnxWriteError> {
    let bytes = to_onnx_bytes(g);
    crate::atomic::write_atomic(path, &bytes).map_err(|source| OnnxWriteError::Io {
        path: path.display().to_string(),
        source,
    })
}
