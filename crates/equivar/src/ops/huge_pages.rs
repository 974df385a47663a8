//! A global allocator that asks for transparent huge pages on large allocations, as
//! PyTorch's CPU allocator does: where the kernel's THP mode is `madvise`, a fresh buffer of
//! tens of megabytes otherwise faults in 4 KB at a time, and on sphere grids those faults
//! cost more than the arithmetic. Opt in from a binary:
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOCATOR: equivar::ops::HugePageAllocator = equivar::ops::HugePageAllocator;
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Switches the advice on or off for the whole process (for A/B measurements; the CLI reads
/// `EQUIVAR_HUGE_PAGES=0`).
pub fn set_huge_pages(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Allocations of at least this many bytes are advised to use huge pages.
const THRESHOLD: usize = 4 << 20;
const HUGE_PAGE: usize = 2 << 20;

/// [`System`], plus `madvise(MADV_HUGEPAGE)` on allocations of 4 MB or more (Linux).
pub struct HugePageAllocator;

/// Advises the whole 2 MB pages inside `[ptr, ptr + size)`; failures leave ordinary pages.
pub(crate) fn advise_huge_pages(ptr: *mut u8, size: usize) {
    #[cfg(target_os = "linux")]
    if !ptr.is_null() && size >= THRESHOLD && ENABLED.load(Ordering::Relaxed) {
        let start = ptr as usize;
        let aligned = (start + HUGE_PAGE - 1) & !(HUGE_PAGE - 1);
        let usable = (start + size).saturating_sub(aligned) & !(HUGE_PAGE - 1);
        if usable > 0 {
            // SAFETY: the range lies inside an allocation of `size` bytes at `ptr`, and is only
            // advised, never accessed.
            unsafe {
                libc::madvise(aligned as *mut libc::c_void, usable, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, size);
}

// SAFETY: every method forwards to `System` with the same arguments; the advice changes how
// pages are backed, never which addresses are valid.
unsafe impl GlobalAlloc for HugePageAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let ptr = unsafe { System.alloc(layout) };
        advise_huge_pages(ptr, layout.size());
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        advise_huge_pages(ptr, layout.size());
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        advise_huge_pages(new, new_size);
        new
    }
}
