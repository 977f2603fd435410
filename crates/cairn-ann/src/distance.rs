//! Inner products, the one distance the index needs: vectors are stored L2-normalised, so the
//! inner product is the cosine similarity. On x86-64 with AVX2 and FMA (checked once at run
//! time, the build targets plain x86-64) the product runs eight lanes at a time with fused
//! multiply-adds; elsewhere a portable loop with eight accumulators that compilers vectorise.
//!
//! [`dot4`] scores four vectors against one query in one pass: four independent streams of
//! loads keep more of a walk's cache misses in flight than one vector after another. Each of
//! its four results is computed by exactly the operations [`dot`] performs, so a vector scores
//! the same bits whichever path scored it (ties between equal vectors stay ties).

/// The inner product of `a` and `b` (over the shorter length).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_fma() {
            // SAFETY: the CPU supports the features `dot_avx2` is compiled for.
            return unsafe { dot_avx2::<1>(a, [b]) }[0];
        }
    }
    dot_portable(a, b)
}

/// The inner products of `q` with each of four vectors, each equal to `dot(q, v[i])`.
#[inline]
pub(crate) fn dot4(q: &[f32], v: [&[f32]; 4]) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_fma() {
            // SAFETY: the CPU supports the features `dot_avx2` is compiled for.
            return unsafe { dot_avx2::<4>(q, v) };
        }
    }
    v.map(|v| dot_portable(q, v))
}

/// True when the CPU has AVX2 and FMA (the answer is cached after the first call).
#[cfg(target_arch = "x86_64")]
#[inline]
fn avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// `v` scaled to unit length; `None` for a non-finite vector. The zero vector stays zero.
pub fn normalized(v: &[f32]) -> Option<Vec<f32>> {
    if v.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let norm = dot_portable(v, v).sqrt();
    if !norm.is_finite() {
        return None;
    }
    let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    Some(v.iter().map(|x| x * scale).collect())
}

/// Asks the CPU to start loading the first `lines` cache lines of `data`: the walk calls it
/// for the neighbours it is about to score and for the list it will read next.
#[inline]
pub(crate) fn prefetch<T>(data: &[T], lines: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let start = data.as_ptr().cast::<i8>();
        for offset in (0..std::mem::size_of_val(data)).step_by(64).take(lines) {
            // SAFETY: the address lies inside `data`, and a prefetch never changes memory.
            unsafe { _mm_prefetch(start.add(offset), _MM_HINT_T0) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, lines);
}

/// The portable inner product: eight independent accumulators so the loop vectorises.
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The inner products of `q` with `N` vectors, interleaved: per vector two 256-bit
/// accumulators taking alternate blocks of eight lanes, a last odd block into the first, then
/// the scalar tail; the same sequence whatever `N`, so `dot` and `dot4` agree bit for bit.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2<const N: usize>(q: &[f32], v: [&[f32]; N]) -> [f32; N] {
    use std::arch::x86_64::*;
    let n = v.iter().fold(q.len(), |n, v| n.min(v.len()));
    let pq = q.as_ptr();
    let mut i = 0;
    // SAFETY: every load reads 8 floats at an offset at most `n - 8`, inside all the slices.
    unsafe {
        let mut even = [_mm256_setzero_ps(); N];
        let mut odd = [_mm256_setzero_ps(); N];
        while i + 16 <= n {
            let (x0, x1) = (_mm256_loadu_ps(pq.add(i)), _mm256_loadu_ps(pq.add(i + 8)));
            for j in 0..N {
                let p = v[j].as_ptr();
                even[j] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(p.add(i)), even[j]);
                odd[j] = _mm256_fmadd_ps(x1, _mm256_loadu_ps(p.add(i + 8)), odd[j]);
            }
            i += 16;
        }
        if i + 8 <= n {
            let x0 = _mm256_loadu_ps(pq.add(i));
            for j in 0..N {
                even[j] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(v[j].as_ptr().add(i)), even[j]);
            }
            i += 8;
        }
        let mut out = [0f32; N];
        for j in 0..N {
            let s = _mm256_add_ps(even[j], odd[j]);
            let x = _mm_add_ps(_mm256_extractf128_ps::<1>(s), _mm256_castps256_ps128(s));
            let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
            let x = _mm_add_ss(x, _mm_shuffle_ps::<1>(x, x));
            let mut sum = _mm_cvtss_f32(x);
            for t in i..n {
                sum += q[t] * v[j][t];
            }
            out[j] = sum;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_matches_the_naive_sum() {
        for len in [0, 1, 7, 8, 31, 32, 33, 384, 389] {
            let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - naive).abs() < 1e-3, "len {len}");
            assert!((dot_portable(&a, &b) - naive).abs() < 1e-3, "len {len}");
            let c: Vec<f32> = (0..len).map(|i| (i as f32 * 0.53).sin()).collect();
            let four = dot4(&a, [&b, &c, &a, &b]);
            assert_eq!(four.map(f32::to_bits), [dot(&a, &b), dot(&a, &c), dot(&a, &a), dot(&a, &b)].map(f32::to_bits));
        }
    }

    #[test]
    fn normalising_refuses_non_finite_vectors() {
        let v = normalized(&[3.0, 4.0]).unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert_eq!(normalized(&[0.0, 0.0]).unwrap(), [0.0, 0.0]);
        assert!(normalized(&[f32::NAN, 1.0]).is_none());
        assert!(normalized(&[f32::MAX, f32::MAX]).is_none());
    }
}
