//! Writing a [`Graph`] as an ONNX model (opset 17, IR version 8): standard ops in the default domain;
//! only the data-parallel collectives use a custom domain (`ai.patchmix.dist`, imported only when used).
//! Written through the prost-generated `onnx.proto` types that tract-onnx maintains.

use crate::graph::{Attribute, Dim, Graph, Lowering, OnnxSink, TensorData, ValueId, ValueKind};
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

fn value_info(g: &Graph, v: ValueId) -> pb::ValueInfoProto {
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

/// Collects the ONNX nodes and initializers the op families lower to.
struct Emitter {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    /// The custom domains the nodes used, in order of first use (each gets an opset import).
    custom_domains: Vec<&'static str>,
}

fn attribute_proto(name: &str, value: Attribute) -> pb::AttributeProto {
    match value {
        Attribute::Int(i) => attr_int(name, i),
        Attribute::Float(f) => attr_float(name, f),
        Attribute::Ints(ints) => attr_ints(name, ints),
        Attribute::String(s) => attr_string(name, s),
        Attribute::Tensor(t) => attr_tensor(name, tensor_proto("", &[t.len()], &t)),
    }
}

impl OnnxSink for Emitter {
    fn initializer(&mut self, name: String, dims: &[usize], data: TensorData) {
        self.initializers.push(tensor_proto(&name, dims, &data));
    }

    fn node(
        &mut self,
        name: String,
        domain: &'static str,
        op_type: &str,
        inputs: Vec<String>,
        outputs: Vec<String>,
        attributes: Vec<(&'static str, Attribute)>,
    ) {
        if !domain.is_empty() && !self.custom_domains.contains(&domain) {
            self.custom_domains.push(domain);
        }
        self.nodes.push(pb::NodeProto {
            name,
            domain: domain.into(),
            op_type: op_type.into(),
            input: inputs,
            output: outputs,
            attribute: attributes
                .into_iter()
                .map(|(n, v)| attribute_proto(n, v))
                .collect(),
            ..Default::default()
        });
    }
}

/// Converts a graph into an ONNX `ModelProto`.
pub fn to_model_proto(g: &Graph) -> pb::ModelProto {
    let mut e = Emitter {
        nodes: Vec::with_capacity(g.nodes.len()),
        initializers: Vec::new(),
        custom_domains: Vec::new(),
    };
    for v in &g.values {
        if let ValueKind::Initializer(data) = &v.kind {
            let dims = v.shape.as_fixed().expect("initializers are static");
            e.initializers.push(tensor_proto(&v.name, &dims, data));
        }
    }
    for node in &g.nodes {
        let names = |ids: &[ValueId]| -> Vec<String> {
            ids.iter().map(|&v| g.value(v).name.clone()).collect()
        };
        let dtypes = node.inputs.iter().map(|&v| g.dtype(v)).collect();
        node.op.lower(Lowering::new(
            node.name.clone(),
            names(&node.inputs),
            names(&node.outputs),
            dtypes,
            &mut e,
        ));
    }
    let graph = pb::GraphProto {
        name: g.name.clone(),
        node: e.nodes,
        initializer: e.initializers,
        input: g.inputs.iter().map(|&v| value_info(g, v)).collect(),
        output: g.outputs.iter().map(|&v| value_info(g, v)).collect(),
        ..Default::default()
    };
    // A standard-op graph imports the default domain only (and so stays byte-identical to what
    // the writer produced before custom domains existed).
    let opset_import = std::iter::once(pb::OperatorSetIdProto {
        domain: String::new(),
        version: OPSET,
    })
    .chain(
        e.custom_domains
            .iter()
            .map(|&domain| pb::OperatorSetIdProto {
                domain: domain.into(),
                version: custom_domain_version(domain),
            }),
    )
    .collect();
    pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import,
        producer_name: "patchmix-rs".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        ..Default::default()
    }
}

/// The opset version imported for a custom domain.
fn custom_domain_version(domain: &str) -> i64 {
    match domain {
        crate::graph::COLLECTIVE_DOMAIN => crate::graph::COLLECTIVE_DOMAIN_VERSION,
        _ => 1,
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
