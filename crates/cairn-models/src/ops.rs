//! The few dense kernels a BERT encoder needs, on row-major `f32` buffers. Matrix products go
//! to the `gemm` crate (runtime-dispatched SIMD, parallel through the caller's rayon pool).

use gemm::Parallelism;
use rayon::prelude::*;

/// Rows per parallel task in row-wise kernels: enough work to amortise scheduling.
const ROWS_PER_TASK: usize = 64;

/// `out[m×n] = x[m×k] · wᵀ + bias`, where `w` is `[n×k]` row-major (PyTorch's Linear layout);
/// the shapes follow from the lengths (`n` = bias length).
pub fn linear(x: &[f32], w: &[f32], bias: &[f32], out: &mut [f32], par: Parallelism) {
    let n = bias.len();
    let k = w.len() / n;
    let m = x.len() / k;
    assert!(w.len() == n * k && x.len() == m * k && out.len() == m * n, "linear: inconsistent shapes");
    for row in out.chunks_exact_mut(n) {
        row.copy_from_slice(bias);
    }
    // SAFETY: every pointer addresses a buffer whose length was checked above for the
    // given shapes and strides; `out` does not alias the inputs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            true,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// `out[m×n] = scale · a[m×k] · b[n×k]ᵀ` with explicit row strides (views into wider rows).
#[allow(clippy::too_many_arguments)]
pub fn matmul_t(
    a: &[f32],
    a_rs: usize,
    b: &[f32],
    b_rs: usize,
    m: usize,
    k: usize,
    n: usize,
    scale: f32,
    out: &mut [f32],
) {
    assert!(a.len() >= (m - 1) * a_rs + k && b.len() >= (n - 1) * b_rs + k && out.len() >= m * n);
    // SAFETY: bounds asserted above; `out` is a separate buffer.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            a_rs as isize,
            b.as_ptr(),
            b_rs as isize,
            1,
            0.0,
            scale,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// `out[m×n] = p[m×k] · v[k×n]`, `v` rows `v_rs` apart (a view into wider rows).
#[allow(clippy::too_many_arguments)]
pub fn matmul(p: &[f32], v: &[f32], v_rs: usize, m: usize, k: usize, n: usize, out: &mut [f32], out_rs: usize) {
    assert!(p.len() >= m * k && v.len() >= (k - 1) * v_rs + n && out.len() >= (m - 1) * out_rs + n);
    // SAFETY: bounds asserted above; `out` is a separate buffer.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            out_rs as isize,
            false,
            p.as_ptr(),
            1,
            k as isize,
            v.as_ptr(),
            1,
            v_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// In place: `x = LayerNorm(x + residual)` over rows of width `gamma.len()`, rows in parallel
/// on the current rayon pool.
pub fn add_layer_norm(x: &mut [f32], residual: &[f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = gamma.len();
    x.par_chunks_mut(n * ROWS_PER_TASK).zip(residual.par_chunks(n * ROWS_PER_TASK)).for_each(|(rows, res)| {
        for (row, res) in rows.chunks_exact_mut(n).zip(res.chunks_exact(n)) {
            let mut mean = 0.0f32;
            for (v, r) in row.iter_mut().zip(res) {
                *v += r;
                mean += *v;
            }
            mean /= n as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                *v = (*v - mean) * inv * g + b;
            }
        }
    });
}

/// In place: BERT's erf-based GELU, in parallel chunks on the current rayon pool.
pub fn gelu(x: &mut [f32]) {
    x.par_chunks_mut(16 * 1024).for_each(|chunk| {
        for v in chunk {
            *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
        }
    });
}

/// erf by Abramowitz and Stegun 7.1.26: branch-free, absolute error below 1.5e-7 (well
/// inside f32 noise for an activation), several times faster than a correctly rounded erf.
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * (-a * a).exp();
    y.copysign(x)
}

/// In place: softmax over `row`.
pub fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_matches_a_naive_product() {
        let (m, k, n) = (3, 5, 4);
        let x: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.1).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i as f32 - 7.0) * 0.05).collect();
        let b: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let mut out = vec![0.0; m * n];
        linear(&x, &w, &b, &mut out, Parallelism::None);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum::<f32>() + b[j];
                assert!((out[i * n + j] - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn erf_is_accurate() {
        for i in -400..=400 {
            let x = i as f32 / 100.0;
            assert!((erf(x) - libm::erff(x)).abs() < 3e-7, "{x}");
        }
    }

    #[test]
    fn layer_norm_and_softmax() {
        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        add_layer_norm(&mut x, &[0.0; 4], &[1.0; 4], &[0.0; 4], 1e-12);
        assert!(x.iter().sum::<f32>().abs() < 1e-5);
        let mut r = vec![1.0, 1.0, f32::NEG_INFINITY];
        softmax(&mut r);
        assert_eq!(r, vec![0.5, 0.5, 0.0]);
    }
}
