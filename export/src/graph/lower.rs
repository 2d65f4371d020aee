//! The vocabulary in which an op family describes its ONNX lowering, independent of the
//! protobuf types: attributes, constant operands written as initializers, and (for composites)
//! extra nodes. The ONNX writer (`crate::onnx`, feature `onnx`) implements [`OnnxSink`] and
//! calls [`Op::lower`](super::Op::lower) once per IR node.

use super::dtype::DType;
use super::tensor::TensorData;

/// An ONNX attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Attribute {
    /// `INT`.
    Int(i64),
    /// `FLOAT`.
    Float(f32),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `STRING`.
    String(&'static str),
    /// `TENSOR`, 1-D, unnamed (ConstantOfShape's `value`).
    Tensor(TensorData),
}

/// Where lowered nodes and initializers go (implemented by the ONNX writer).
pub trait OnnxSink {
    /// Adds an initializer.
    fn initializer(&mut self, name: String, dims: &[usize], data: TensorData);
    /// Appends a node of operator `op_type` in `domain` (`""`: the default ONNX domain).
    fn node(
        &mut self,
        name: String,
        domain: &'static str,
        op_type: &str,
        inputs: Vec<String>,
        outputs: Vec<String>,
        attributes: Vec<(&'static str, Attribute)>,
    );
}

/// One IR node being lowered: its name, the names of its inputs and outputs, the element types
/// of its inputs, and the sink its ONNX nodes go to.
///
/// # Examples
/// ```
/// use patchmix_export::graph::{
///     Attribute, DType, ElementwiseOp, Lowering, OnnxSink, Op, ShapeOp, TensorData,
/// };
/// #[derive(Default)]
/// struct Listing(Vec<String>);
/// impl OnnxSink for Listing {
///     fn initializer(&mut self, name: String, _: &[usize], _: TensorData) {
///         self.0.push(format!("init {name}"));
///     }
///     fn node(&mut self, name: String, _: &'static str, op: &str, ins: Vec<String>, _: Vec<String>,
///             _: Vec<(&'static str, Attribute)>) {
///         self.0.push(format!("{op} {name}({})", ins.join(", ")));
///     }
/// }
/// let mut out = Listing::default();
/// let reshape = Op::from(ShapeOp::Reshape { shape: vec![-1] });
/// let io = |s: &str| vec![s.to_string()];
/// reshape.lower(Lowering::new("r".into(), io("x"), io("y"), vec![DType::F32], &mut out));
/// assert_eq!(out.0, ["init r/shape", "Reshape r(x, r/shape)"]);
/// let gelu = Op::from(ElementwiseOp::GeluErf);
/// gelu.lower(Lowering::new("g".into(), io("x"), io("y"), vec![DType::F32], &mut out));
/// assert_eq!(out.0.len(), 2 + 3 + 5); // three scalar constants, five nodes
/// ```
pub struct Lowering<'a> {
    /// The node's name (the names of its constant operands and extra nodes derive from it).
    pub name: String,
    /// Input names in ONNX order; constant operands are appended by [`Lowering::i64_operand`].
    pub inputs: Vec<String>,
    /// Output names in ONNX order.
    pub outputs: Vec<String>,
    /// Element types of the IR inputs.
    pub input_dtypes: Vec<DType>,
    /// Attributes of the main node.
    pub attributes: Vec<(&'static str, Attribute)>,
    sink: &'a mut dyn OnnxSink,
}

impl<'a> Lowering<'a> {
    /// Starts lowering the node `name`.
    pub fn new(
        name: String,
        inputs: Vec<String>,
        outputs: Vec<String>,
        input_dtypes: Vec<DType>,
        sink: &'a mut dyn OnnxSink,
    ) -> Lowering<'a> {
        Lowering {
            name,
            inputs,
            outputs,
            input_dtypes,
            attributes: Vec::new(),
            sink,
        }
    }

    /// Adds an attribute to the main node.
    pub fn attr(&mut self, name: &'static str, value: Attribute) {
        self.attributes.push((name, value));
    }

    /// Appends a 1-D i64 constant operand (an initializer named `{node}/{what}`), as ONNX wants
    /// for shapes, axes, pads and split sizes since opset 13.
    pub fn i64_operand(&mut self, what: &str, values: &[i64]) {
        let name = format!("{}/{what}", self.name);
        self.sink.initializer(
            name.clone(),
            &[values.len()],
            TensorData::I64(values.to_vec()),
        );
        self.inputs.push(name);
    }

    /// Adds a scalar float initializer named `{node}/{what}` and returns its name.
    pub fn scalar(&mut self, what: &str, dtype: DType, value: f64) -> String {
        let name = format!("{}/{what}", self.name);
        self.sink
            .initializer(name.clone(), &[], TensorData::float_scalar(dtype, value));
        name
    }

    /// Appends a single-output helper node named (and outputting) `{node}/{what}`; returns the
    /// output's name.
    pub fn helper(&mut self, what: &str, op_type: &str, inputs: Vec<String>) -> String {
        let name = format!("{}/{what}", self.name);
        self.sink.node(
            name.clone(),
            "",
            op_type,
            inputs,
            vec![name.clone()],
            Vec::new(),
        );
        name
    }

    /// Writes the main node with the node's name, inputs, outputs and attributes.
    pub fn emit(self, op_type: &str) {
        self.emit_in_domain("", op_type);
    }

    /// Writes the main node as an operator of a custom `domain` (see
    /// [`COLLECTIVE_DOMAIN`](super::COLLECTIVE_DOMAIN)).
    pub fn emit_in_domain(self, domain: &'static str, op_type: &str) {
        self.sink.node(
            self.name,
            domain,
            op_type,
            self.inputs,
            self.outputs,
            self.attributes,
        );
    }
}
