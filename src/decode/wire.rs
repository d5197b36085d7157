//! Byte helpers shared by the header views.
//!
//! Every view's `new_checked` has validated the length before a getter calls
//! these, so the indexing below cannot go out of bounds in a checked view.

/// Big-endian `u16` at `at`.
#[inline(always)]
pub(crate) fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

/// Big-endian `u32` at `at`.
#[inline(always)]
pub(crate) fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

/// Big-endian `u16` at `at`, or `None` past the end (for slices no view
/// has validated).
#[inline(always)]
pub(crate) fn be16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([
        *d.get(at)?,
        *d.get(at.checked_add(1)?)?,
    ]))
}
