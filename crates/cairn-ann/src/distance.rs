//! Inner products, the one distance the index needs: vectors are stored L2-normalised, so the
//! inner product is the cosine similarity. On x86-64 with AVX2 and FMA (checked once at run
//! time, the build targets plain x86-64) the product runs eight lanes at a time with fused
//! multiply-adds; elsewhere a portable loop with eight accumulators that compilers vectorise.

/// The inner product of `a` and `b` (over the shorter length).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features `dot_avx2` is compiled for.
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot_portable(a, b)
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

/// Asks the CPU to start loading `data` into cache: the graph walk calls it for the next
/// neighbour's vector while it scores the current one.
#[inline]
pub(crate) fn prefetch(data: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // A vector of 384 floats spans 24 cache lines; the first few cover the start of the
        // product, the hardware prefetcher follows the rest.
        for line in data.chunks(16).take(4) {
            // SAFETY: a prefetch of a valid address has no effect on memory.
            unsafe { _mm_prefetch(line.as_ptr().cast::<i8>(), _MM_HINT_T0) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
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

/// The inner product with 256-bit fused multiply-adds, four accumulators deep.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut i = 0;
    // SAFETY: every load reads 8 floats at an offset at most `n - 8`, inside both slices.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 4];
        while i + 32 <= n {
            for (j, a) in acc.iter_mut().enumerate() {
                let off = i + 8 * j;
                *a = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(off)), _mm256_loadu_ps(pb.add(off)), *a);
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc[0]);
            i += 8;
        }
        let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let x = _mm_add_ps(_mm256_extractf128_ps::<1>(s), _mm256_castps256_ps128(s));
        let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
        let x = _mm_add_ss(x, _mm_shuffle_ps::<1>(x, x));
        let mut sum = _mm_cvtss_f32(x);
        while i < n {
            sum += a[i] * b[i];
            i += 1;
        }
        sum
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
