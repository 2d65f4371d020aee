//! Resizing the learned position embedding to another token grid, exactly as the original
//! PatchMix ViT (DINO's `interpolate_pos_encoding`): PyTorch's bicubic interpolation
//! (`mode='bicubic'`, `align_corners=False`, A = −0.75) with `scale_factor = (g + 0.1) / G`,
//! which is linear in the embedding, so it becomes one constant matrix and a `MatMul` — and
//! gradients flow through it like through any other `MatMul`.

use crate::graph::{Graph, GraphError, ShapeOp, TensorData, ValueId};

const CUBIC_A: f64 = -0.75;

fn cubic_near(x: f64) -> f64 {
    ((CUBIC_A + 2.0) * x - (CUBIC_A + 3.0)) * x * x + 1.0
}

fn cubic_far(x: f64) -> f64 {
    ((CUBIC_A * x - 5.0 * CUBIC_A) * x + 8.0 * CUBIC_A) * x - 4.0 * CUBIC_A
}

/// The 1-D bicubic resize from `src` to `dst` samples as a row-major `[dst, src]` matrix,
/// with PyTorch's source coordinates `(d + 0.5)·src/(dst + 0.1) − 0.5` and border clamping.
///
/// # Examples
/// ```
/// let m = patchmix_export::vit::bicubic_matrix(4, 2);
/// assert_eq!(m.len(), 8);
/// // Each output sample is an affine combination of the inputs.
/// assert!((m[..4].iter().sum::<f64>() - 1.0).abs() < 1e-12);
/// ```
pub fn bicubic_matrix(src: usize, dst: usize) -> Vec<f64> {
    let scale = src as f64 / (dst as f64 + 0.1);
    let mut m = vec![0.0; dst * src];
    for d in 0..dst {
        let x = scale * (d as f64 + 0.5) - 0.5;
        let i = x.floor();
        let t = x - i;
        let w = [
            cubic_far(t + 1.0),
            cubic_near(t),
            cubic_near(1.0 - t),
            cubic_far(2.0 - t),
        ];
        for (k, wk) in w.iter().enumerate() {
            let j = (i as i64 - 1 + k as i64).clamp(0, src as i64 - 1) as usize;
            m[d * src + j] += wk;
        }
    }
    m
}

/// The 2-D resize of a `src`×`src` token grid to `dst`×`dst` (row-major tokens) as a
/// `[dst², src²]` matrix: the Kronecker product of the 1-D matrix with itself.
///
/// # Examples
/// ```
/// let m = patchmix_export::vit::grid_resize_matrix(14, 6);
/// assert_eq!(m.len(), 36 * 196);
/// ```
pub fn grid_resize_matrix(src: usize, dst: usize) -> Vec<f64> {
    let m = bicubic_matrix(src, dst);
    let (n_src, n_dst) = (src * src, dst * dst);
    let mut k = vec![0.0; n_dst * n_src];
    for (r, row) in k.chunks_mut(n_src).enumerate() {
        let (ry, rx) = (r / dst, r % dst);
        for (c, v) in row.iter_mut().enumerate() {
            let (cy, cx) = (c / src, c % src);
            *v = m[ry * src + cy] * m[rx * src + cx];
        }
    }
    k
}

/// A position embedding `[1, 1 + src², D]` resized to `[1, 1 + dst², D]`: the CLS row is kept
/// and the patch rows go through [`grid_resize_matrix`]. Equal grids return `pos_embed`
/// itself, as the original does.
///
/// # Errors
/// [`GraphError`] when `pos_embed` does not have the stated shape.
pub fn resized_pos_embed(
    g: &mut Graph,
    pos_embed: ValueId,
    src: usize,
    dst: usize,
    dim: usize,
) -> Result<ValueId, GraphError> {
    let want = [1, 1 + src * src, dim];
    if g.fixed_shape(pos_embed)? != want {
        return Err(GraphError::Shape(format!(
            "pos_embed has shape {:?}, expected {want:?}",
            g.fixed_shape(pos_embed)?
        )));
    }
    if src == dst {
        return Ok(pos_embed);
    }
    let n = (1 + src * src) as i64;
    let slice = |g: &mut Graph, s: i64, e: i64| {
        g.op1(
            ShapeOp::Slice {
                starts: vec![s],
                ends: vec![e],
                axes: vec![1],
            },
            &[pos_embed],
        )
    };
    let cls = slice(g, 0, 1)?;
    let patches = slice(g, 1, n)?;
    let patches = g.reshape(patches, &[(src * src) as i64, dim as i64])?;
    let data: Vec<f64> = grid_resize_matrix(src, dst);
    let data = match g.dtype(pos_embed) {
        crate::graph::DType::F64 => TensorData::F64(data),
        _ => TensorData::F32(data.iter().map(|&v| v as f32).collect()),
    };
    let m = g.constant(
        &format!("pos_resize_{src}_to_{dst}"),
        &[dst * dst, src * src],
        data,
    );
    let resized = g.matmul(m, patches)?;
    let resized = g.reshape(resized, &[1, (dst * dst) as i64, dim as i64])?;
    g.op1(ShapeOp::Concat { axis: 1 }, &[cls, resized])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows 0 and 3 of `torch.nn.functional.interpolate` on a 4×4 grid resized to 2×2 with
    /// `scale_factor=2.1/4, mode='bicubic'` (PyTorch 2.15, float64), read off as the matrix
    /// applied to the 16 flattened inputs.
    #[test]
    fn matches_pytorch_bicubic_on_a_4x4_to_2x2_grid() {
        let torch_row0 = [
            0.30638155496883196,
            0.293660172035252,
            -0.046524288282563726,
            0.0,
            0.293660172035252,
            0.28146699839207556,
            -0.04459253593861154,
            0.0,
            -0.046524288282563726,
            -0.04459253593861154,
            0.007064751010938928,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
        ];
        let torch_row3 = [
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.01225361861607399,
            -0.08523072504069279,
            -0.037718957715322396,
            0.0,
            -0.08523072504069279,
            0.5928270430608213,
            0.26235630588657693,
            0.0,
            -0.037718957715322396,
            0.26235630588657693,
            0.11610609206198004,
        ];
        let k = grid_resize_matrix(4, 2);
        for (r, want) in [(0, torch_row0), (3, torch_row3)] {
            for (c, w) in want.iter().enumerate() {
                assert!(
                    (k[r * 16 + c] - w).abs() < 1e-12,
                    "row {r} col {c}: {} vs {w}",
                    k[r * 16 + c]
                );
            }
        }
    }

    #[test]
    fn rows_sum_to_one() {
        for (s, d) in [(14, 6), (8, 3), (2, 1), (16, 7)] {
            let k = grid_resize_matrix(s, d);
            for row in k.chunks(s * s) {
                assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn equal_grids_keep_the_embedding() {
        let mut g = Graph::new("t");
        let pe = g.input(
            "pe",
            crate::graph::DType::F32,
            crate::graph::Shape::fixed(&[1, 5, 3]),
        );
        assert_eq!(resized_pos_embed(&mut g, pe, 2, 2, 3).unwrap(), pe);
        let r = resized_pos_embed(&mut g, pe, 2, 1, 3).unwrap();
        assert_eq!(g.fixed_shape(r).unwrap(), vec![1, 2, 3]);
        assert!(resized_pos_embed(&mut g, pe, 3, 1, 3).is_err());
    }
}
