//! The process's allocator: mimalloc, called without its aligned entry
//! points where the alignment asked for is one every mimalloc block has.
//!
//! The `mimalloc` crate's `MiMalloc` passes every request to
//! `mi_malloc_aligned`, whose fast path takes only blocks of at most 1 KiB
//! and whose other requests (any alignment) go through its general aligned
//! path and over-allocation check before the plain allocation. Every block
//! mimalloc hands out is a whole number of 8-byte words from a word-aligned
//! page start, so an alignment of at most 8 needs nothing of that:
//! [`Alloc`] calls `mi_malloc`, `mi_zalloc` and `mi_realloc` for those and
//! the aligned calls for the rest (16 and more). callgrind, 1 worker on
//! `mqtt_v311_anon_phi` ×900: the allocator's own instructions 42 M of
//! 908 M before.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// Alignment every mimalloc block has (a machine word).
const WORD: usize = std::mem::size_of::<usize>();

/// `mi_option_purge_decommits` (mimalloc.h, v3's `mi_option_e`; the
/// crate names no constant for it).
const PURGE_DECOMMITS: mi::mi_option_t = 5;

/// Has mimalloc give memory it purges back with `MADV_FREE` instead of
/// `MADV_DONTNEED`: the kernel takes such pages only when it needs them,
/// so memory used again soon (a burst of flows, the next block of
/// records) is not faulted in and cleared again. `mqtt_small`, one
/// worker: 86 500 page faults before, 48 500 with it (the rest are the
/// first touch of the peak); the pages stay counted in the resident size
/// until the kernel takes them. Called first thing in `main`.
#[allow(unsafe_code)]
pub fn tune() {
    // SAFETY: `mi_option_set` stores an integer in mimalloc's option
    // table; any value is valid for this option (0: reset, not decommit).
    unsafe { mi::mi_option_set(PURGE_DECOMMITS, 0) }
}

/// The global allocator (see the module).
pub struct Alloc;

/// Whether `mi_malloc` of `size` bytes is aligned enough for `align`.
#[inline]
fn plain(align: usize, size: usize) -> bool {
    align <= WORD && align <= size
}

// SAFETY: every method hands the caller's layout to the mimalloc call that
// honours it: the plain calls only for alignments every mimalloc block has
// (`plain`, checked by the tests for sizes up to 64 KiB), the aligned calls
// otherwise. Memory from any of them is freed by `mi_free`, which takes
// blocks of both kinds; `realloc` keeps the alignment of its layout.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Alloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if plain(layout.align(), layout.size()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if plain(layout.align(), layout.size()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the caller's contract).
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: see the impl; `ptr` came from this allocator.
        unsafe {
            if plain(layout.align(), new_size) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;

    #[test]
    fn purges_reset_instead_of_decommitting_once_tuned() {
        // The option's number is the header's, not the crate's: a mimalloc
        // whose options moved would name another option (or none) here.
        // SAFETY: reads an integer from mimalloc's option table.
        assert_eq!(unsafe { mi::mi_option_get(PURGE_DECOMMITS) }, 1);
        tune();
        // SAFETY: as above.
        assert_eq!(unsafe { mi::mi_option_get(PURGE_DECOMMITS) }, 0);
    }

    #[test]
    fn every_size_and_alignment_is_honoured_and_kept_through_realloc() {
        let a = Alloc;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
            let mut size = align;
            while size <= 64 * 1024 {
                let layout = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: a non-zero size; each block is freed with its layout.
                unsafe {
                    for zeroed in [false, true] {
                        let p = if zeroed {
                            a.alloc_zeroed(layout)
                        } else {
                            a.alloc(layout)
                        };
                        assert!(!p.is_null());
                        assert_eq!(p as usize % align, 0, "size {size} align {align}");
                        if zeroed {
                            let s = std::slice::from_raw_parts(p, size);
                            assert!(s.iter().all(|&b| b == 0));
                        }
                        std::ptr::write_bytes(p, 0xa5, size);
                        let grown = size * 3 + 5;
                        let q = a.realloc(p, layout, grown);
                        assert!(!q.is_null());
                        assert_eq!(q as usize % align, 0, "realloc {grown} align {align}");
                        let s = std::slice::from_raw_parts(q, size);
                        assert!(s.iter().all(|&b| b == 0xa5));
                        let big = Layout::from_size_align(grown, align).expect("layout");
                        a.dealloc(q, big);
                    }
                }
                // Every size to 2 KiB, then a spread of odd ones.
                size += if size < 2048 {
                    align
                } else {
                    997 * align.min(8)
                };
                size = size.next_multiple_of(align);
            }
        }
    }
}
