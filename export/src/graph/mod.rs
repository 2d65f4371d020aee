//! A typed, shape-checked graph IR that writes standard ONNX.
//!
//! A [`Graph`] holds values (graph inputs, initializers and node outputs), each with a readable
//! name, an element type and a [`Shape`]. Nodes are appended in topological order by the builder
//! methods, which infer output shapes and reject ill-formed graphs at construction time. The
//! encoder ([`crate::vit`]) and the training-step compiler build on it; the ONNX writer lives in
//! [`crate::onnx`].
//!
//! # Examples
//! ```
//! use patchmix_export::graph::{DType, Graph, Shape};
//! let mut g = Graph::new("tiny");
//! let x = g.input("x", DType::F32, Shape::fixed(&[2, 3]));
//! let w = g.initializer_f32("w", &[3, 4], vec![0.5; 12]);
//! let y = g.matmul(x, w).unwrap();
//! g.output(y, "y");
//! assert_eq!(g.shape(y).as_fixed(), Some(vec![2, 4]));
//! ```

mod compute;
mod dtype;
mod infer;
mod lower;
mod ops;
mod tensor;

pub use compute::Compute;
pub use dtype::{DType, Dim, Shape};
pub use infer::{broadcast, norm_axis};
pub use lower::{Attribute, Lowering, OnnxSink};
pub use ops::{
    COLLECTIVE_DOMAIN, COLLECTIVE_DOMAIN_VERSION, CollectiveKind, CollectiveOp, ElementwiseKind,
    ElementwiseOp, NnKind, NnOp, Op, OpKind, ReduceKind, ReduceOp, ShapeKind, ShapeOp,
};
pub use tensor::TensorData;

/// Errors raised while building a graph.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// Operand shapes or types do not fit an op.
    #[error("shape error: {0}")]
    Shape(String),
    /// An op's gradient is not defined or not implemented for the given operands.
    #[error("cannot differentiate {0}")]
    NotDifferentiable(String),
    /// A name was used twice.
    #[error("duplicate value name `{0}`")]
    DuplicateName(String),
}

/// Index of a value in its graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

/// Where a value comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ValueKind {
    /// A graph input, fed at run time.
    Input,
    /// A constant stored in the model.
    Initializer(TensorData),
    /// Output `index` of node `node`.
    NodeOutput { node: usize, index: usize },
}

/// A value: its name, type, shape and origin.
#[derive(Clone, Debug)]
pub struct Value {
    /// Unique, readable name (written to ONNX).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Shape,
    /// Origin.
    pub kind: ValueKind,
}

/// A node: one op applied to input values, producing output values.
#[derive(Clone, Debug)]
pub struct Node {
    /// The op.
    pub op: Op,
    /// Input values in ONNX order.
    pub inputs: Vec<ValueId>,
    /// Output values in ONNX order.
    pub outputs: Vec<ValueId>,
    /// Unique node name.
    pub name: String,
}

/// A graph under construction.
#[derive(Clone, Debug)]
pub struct Graph {
    /// Model name.
    pub name: String,
    /// All values, indexed by [`ValueId`].
    pub values: Vec<Value>,
    /// Nodes in topological order.
    pub nodes: Vec<Node>,
    /// Graph inputs in order.
    pub inputs: Vec<ValueId>,
    /// Graph outputs in order.
    pub outputs: Vec<ValueId>,
    scope: Vec<String>,
    names: std::collections::HashMap<String, u32>,
    counter: u64,
}

impl Graph {
    /// An empty graph.
    pub fn new(name: &str) -> Graph {
        Graph {
            name: name.to_string(),
            values: Vec::new(),
            nodes: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            scope: Vec::new(),
            names: Default::default(),
            counter: 0,
        }
    }

    /// The value behind an id.
    pub fn value(&self, v: ValueId) -> &Value {
        &self.values[v.0 as usize]
    }

    /// The shape of a value.
    pub fn shape(&self, v: ValueId) -> &Shape {
        &self.value(v).shape
    }

    /// The static dimensions of a value.
    ///
    /// # Errors
    /// [`GraphError::Shape`] if a dimension is symbolic.
    pub fn fixed_shape(&self, v: ValueId) -> Result<Vec<usize>, GraphError> {
        self.shape(v).as_fixed().ok_or_else(|| {
            GraphError::Shape(format!("`{}` has a symbolic shape", self.value(v).name))
        })
    }

    /// The element type of a value.
    pub fn dtype(&self, v: ValueId) -> DType {
        self.value(v).dtype
    }

    /// Looks a value up by name.
    pub fn find(&self, name: &str) -> Option<ValueId> {
        self.names.get(name).map(|&i| ValueId(i))
    }

    /// Runs `f` with `name` pushed on the naming scope (names become `a.b.c/...`).
    pub fn scoped<T>(&mut self, name: &str, f: impl FnOnce(&mut Graph) -> T) -> T {
        self.scope.push(name.to_string());
        let out = f(self);
        self.scope.pop();
        out
    }

    fn fresh_name(&mut self, hint: &str) -> String {
        let prefix = self.scope.join(".");
        loop {
            self.counter += 1;
            let name = if prefix.is_empty() {
                format!("{hint}_{}", self.counter)
            } else {
                format!("{prefix}/{hint}_{}", self.counter)
            };
            if !self.names.contains_key(&name) {
                return name;
            }
        }
    }

    fn push_value(&mut self, name: String, dtype: DType, shape: Shape, kind: ValueKind) -> ValueId {
        let id = ValueId(self.values.len() as u32);
        self.names.insert(name.clone(), id.0);
        self.values.push(Value {
            name,
            dtype,
            shape,
            kind,
        });
        id
    }

    /// Declares a graph input. Panics only on a duplicate name, a programming error; use
    /// [`Graph::try_input`] for user-supplied names.
    pub fn input(&mut self, name: &str, dtype: DType, shape: Shape) -> ValueId {
        self.try_input(name, dtype, shape)
            .expect("duplicate graph input name")
    }

    /// Declares a graph input.
    ///
    /// # Errors
    /// [`GraphError::DuplicateName`] if the name is taken.
    pub fn try_input(
        &mut self,
        name: &str,
        dtype: DType,
        shape: Shape,
    ) -> Result<ValueId, GraphError> {
        if self.names.contains_key(name) {
            return Err(GraphError::DuplicateName(name.to_string()));
        }
        let id = self.push_value(name.to_string(), dtype, shape, ValueKind::Input);
        self.inputs.push(id);
        Ok(id)
    }

    /// Adds a constant tensor under a unique name derived from `hint`.
    pub fn constant(&mut self, hint: &str, dims: &[usize], data: TensorData) -> ValueId {
        assert_eq!(
            dims.iter().product::<usize>(),
            data.len(),
            "constant `{hint}` size mismatch"
        );
        let name = if self.names.contains_key(hint) {
            self.fresh_name(hint)
        } else {
            hint.to_string()
        };
        let dtype = data.dtype();
        self.push_value(
            name,
            dtype,
            Shape::fixed(dims),
            ValueKind::Initializer(data),
        )
    }

    /// Adds an f32 initializer.
    pub fn initializer_f32(&mut self, name: &str, dims: &[usize], data: Vec<f32>) -> ValueId {
        self.constant(name, dims, TensorData::F32(data))
    }

    /// A scalar constant (shape `[]`) of the given float type. Half-precision scalars are an
    /// f32 constant and a `Cast` (which ONNX Runtime folds), so initializers stay f32/f64.
    pub fn scalar(&mut self, dtype: DType, value: f64) -> ValueId {
        let hint = self.fresh_name("const");
        let c = self.constant(&hint, &[], TensorData::float_scalar(dtype, value));
        if self.dtype(c) == dtype {
            return c;
        }
        self.op1(ElementwiseOp::Cast { to: dtype }, &[c])
            .expect("a scalar Cast between float types is well-formed")
    }

    /// A scalar constant with the element type of `like`.
    pub fn scalar_like(&mut self, like: ValueId, value: f64) -> ValueId {
        let dt = self.dtype(like);
        self.scalar(dt, value)
    }

    /// Marks a value as a graph output under `name` (renaming it).
    pub fn output(&mut self, v: ValueId, name: &str) {
        let old = std::mem::replace(&mut self.values[v.0 as usize].name, name.to_string());
        self.names.remove(&old);
        self.names.insert(name.to_string(), v.0);
        self.outputs.push(v);
    }

    /// Appends a node and returns its outputs.
    ///
    /// # Errors
    /// [`GraphError::Shape`] when the operands do not fit the op.
    pub fn node(
        &mut self,
        op: impl Into<Op>,
        inputs: &[ValueId],
        n_outputs: usize,
    ) -> Result<Vec<ValueId>, GraphError> {
        let op = op.into();
        let shapes: Vec<(DType, Shape)> = inputs
            .iter()
            .map(|&v| (self.dtype(v), self.shape(v).clone()))
            .collect();
        let refs: Vec<(DType, &Shape)> = shapes.iter().map(|(d, s)| (*d, s)).collect();
        let outs = infer::infer(&op, &refs, n_outputs).map_err(|e| {
            GraphError::Shape(format!(
                "{} in {}: {e}",
                op.onnx_type(),
                self.scope.join(".")
            ))
        })?;
        let node_index = self.nodes.len();
        let hint = op.onnx_type().to_string();
        let name = self.fresh_name(&hint);
        let mut ids = Vec::with_capacity(outs.len());
        for (index, (dtype, shape)) in outs.into_iter().enumerate() {
            let vname = if index == 0 {
                name.clone()
            } else {
                format!("{name}:{index}")
            };
            ids.push(self.push_value(
                vname,
                dtype,
                shape,
                ValueKind::NodeOutput {
                    node: node_index,
                    index,
                },
            ));
        }
        self.nodes.push(Node {
            op,
            inputs: inputs.to_vec(),
            outputs: ids.clone(),
            name,
        });
        Ok(ids)
    }

    /// Appends a single-output node.
    ///
    /// # Errors
    /// As [`Graph::node`].
    pub fn op1(&mut self, op: impl Into<Op>, inputs: &[ValueId]) -> Result<ValueId, GraphError> {
        Ok(self.node(op, inputs, 1)?[0])
    }

    /// The producer node of a value, if any.
    pub fn producer(&self, v: ValueId) -> Option<usize> {
        match self.value(v).kind {
            ValueKind::NodeOutput { node, .. } => Some(node),
            _ => None,
        }
    }

    /// Counts nodes by ONNX op type (for reports).
    pub fn op_histogram(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let mut h = std::collections::BTreeMap::new();
        for n in &self.nodes {
            *h.entry(n.op.onnx_type()).or_insert(0) += 1;
        }
        h
    }
}
