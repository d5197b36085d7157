//! Cache hints: asking the CPU to load memory the next steps will read,
//! without waiting for it.
//!
//! Owns: the one `unsafe` prefetch instruction of the crate. Nothing here
//! changes what any code computes; it only changes when memory arrives.

/// Asks the CPU to load the first `len` bytes of `bytes` (fewer when it
/// is shorter) into its cache, without waiting for them. A record walk
/// reads one header per record, and each header's place is known only
/// from the one before, so the walk would wait for memory once per
/// record; asked for [`crate::capture::PREFETCH_AHEAD`] bytes early, the headers (and
/// the packets the workers read next) are in the cache when reached.
/// Only a hint: nothing is read, a byte not yet mapped is skipped.
#[inline]
pub fn prefetch(bytes: &[u8], len: usize) {
    for chunk in bytes.get(..len).unwrap_or(bytes).chunks(64) {
        line(chunk.as_ptr());
    }
}

/// Asks the CPU to load every cache line of `value` (a flow's slot, an
/// index group) that a coming lookup will read.
#[inline]
pub fn prefetch_value<T>(value: &T) {
    let start = (value as *const T).cast::<u8>();
    let size = std::mem::size_of::<T>();
    let mut off = 0;
    while off < size {
        line(start.wrapping_add(off));
        off += 64;
    }
    // The last line, when `value` does not start on a line boundary.
    if size > 0 {
        line(start.wrapping_add(size - 1));
    }
}

#[inline]
fn line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: PREFETCHT0 is a hint (Intel SDM vol. 2, PREFETCHh): it reads
    // nothing architecturally and never faults, whatever the address. SSE
    // is part of x86_64's baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
