//! Huge pages for the index's large arrays. A graph walk reads vectors and link lists at
//! random across the whole index: with 4 KiB pages nearly every such read also misses the TLB
//! and walks the page tables, which at a million 384-dimensional vectors costs about as much
//! as the read. Linux backs a region with 2 MiB pages when the process asks
//! (`madvise(MADV_HUGEPAGE)`; transparent huge pages' default mode serves only regions that
//! asked), so the arrays ask as they are allocated, before their pages are first written.
//! It is advice: where the kernel declines, or on other systems, nothing changes.

/// Asks for huge pages under `v`'s buffer (the whole 2 MiB pages inside its capacity); call it
/// after allocating or growing, before writing, for the pages written next to be huge.
pub(crate) fn advise_huge<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = v.as_ptr() as usize;
        let end = start + v.capacity() * std::mem::size_of::<T>();
        let (from, to) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if to > from {
            // SAFETY: the range lies inside `v`'s allocation, and this advice changes how its
            // memory is backed, never what it holds.
            unsafe { libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

/// Appends `values` to `v`, asking for huge pages whenever that grows its buffer.
pub(crate) fn extend_huge<T: Clone>(v: &mut Vec<T>, values: &[T]) {
    if v.capacity() - v.len() < values.len() {
        v.reserve(values.len());
        advise_huge(v);
    }
    v.extend_from_slice(values);
}
