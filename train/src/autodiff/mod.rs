//! Reverse-mode automatic differentiation on the graph IR.
//!
//! [`backward`] appends gradient nodes to a graph, built by one rule per op type
//! ([`rules::gradient`]; each op family's rules are exhaustive `match`es, so an op without a
//! rule does not compile). Rules emit standard ONNX ops only. Only nodes on a path from a
//! differentiated input to the loss get gradient code: passes whose outputs are cut by
//! [`ElementwiseOp::StopGradient`](patchmix_export::graph::ElementwiseOp) cost nothing
//! backwards. Fan-out gradients are accumulated with `Add`, and broadcasting ops
//! reduce their gradients back to the operand shapes.

pub mod rules;
mod util;

pub use rules::differentiable_input;
pub use util::{sum_all, unbroadcast, zeros_like};

use patchmix_export::graph::{Graph, GraphError, ValueId};
use std::collections::HashMap;

/// Appends the gradient of the scalar `loss` with respect to each of `wrt` and returns the
/// gradient values (zeros for inputs the loss does not depend on).
///
/// # Errors
/// [`GraphError::NotDifferentiable`] when an op on the path has no rule for its operands, or
/// [`GraphError::Shape`] when a shape needed by a rule is symbolic.
///
/// # Examples
/// ```
/// use patchmix_export::graph::{DType, Graph, Shape};
/// use patchmix_train::autodiff::backward;
/// let mut g = Graph::new("sq");
/// let x = g.input("x", DType::F32, Shape::fixed(&[3]));
/// let y = g.mul(x, x).unwrap();
/// let l = g.reduce_sum(y, &[0], false).unwrap();
/// let grads = backward(&mut g, l, &[x]).unwrap();
/// assert_eq!(g.fixed_shape(grads[0]).unwrap(), vec![3]);
/// ```
pub fn backward(g: &mut Graph, loss: ValueId, wrt: &[ValueId]) -> Result<Vec<ValueId>, GraphError> {
    let n_nodes = g.nodes.len();
    let n_values = g.values.len();
    // Values that depend on a differentiated input through differentiable edges.
    let mut depends = vec![false; n_values];
    for &w in wrt {
        depends[w.0 as usize] = true;
    }
    for node in &g.nodes[..n_nodes] {
        let hit = node
            .inputs
            .iter()
            .enumerate()
            .any(|(j, v)| depends[v.0 as usize] && differentiable_input(&node.op, j));
        if hit {
            for o in &node.outputs {
                depends[o.0 as usize] = true;
            }
        }
    }
    let mut pending: HashMap<ValueId, Vec<ValueId>> = HashMap::new();
    let one = g.scalar_like(loss, 1.0);
    pending.insert(loss, vec![one]);
    for ni in (0..n_nodes).rev() {
        let node = g.nodes[ni].clone();
        if !node.outputs.iter().any(|o| pending.contains_key(o)) {
            continue;
        }
        let needs: Vec<bool> = node
            .inputs
            .iter()
            .enumerate()
            .map(|(j, v)| depends[v.0 as usize] && differentiable_input(&node.op, j))
            .collect();
        if !needs.iter().any(|&b| b) {
            continue;
        }
        let mut dys = Vec::with_capacity(node.outputs.len());
        for o in &node.outputs {
            let list = pending.remove(o).unwrap_or_default();
            dys.push(util::sum_grads(g, &list)?);
        }
        let dxs = g.scoped(&format!("grad/{}", node.name), |g| {
            rules::gradient(g, &node, &dys, &needs)
        })?;
        for ((v, need), dx) in node.inputs.iter().zip(&needs).zip(dxs) {
            if let (true, Some(dx)) = (*need, dx) {
                pending.entry(*v).or_default().push(dx);
            }
        }
    }
    wrt.iter()
        .map(|w| match pending.remove(w) {
            Some(list) => util::sum_grads(g, &list).map(|v| v.expect("non-empty list")),
            None => zeros_like(g, *w),
        })
        .collect()
}
