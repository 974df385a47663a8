//! A global allocator for large tensors. It does two things:
//!
//! - **Huge pages**: allocations of 4 MB or more are advised to use transparent huge pages, as
//!   PyTorch's CPU allocator does. Where the kernel's THP mode is `madvise`, a fresh buffer of
//!   tens of megabytes otherwise faults in 4 KB at a time, and on sphere grids those faults
//!   cost more than the arithmetic.
//! - **Block reuse**: freed blocks of 16 MB or more are kept, up to [`CACHE_BYTES`], and handed
//!   to the next request of the same size class. Such blocks sit above glibc's mmap threshold
//!   (at most 32 MB), so without this every training step maps fresh memory that the kernel
//!   must zero page by page. Small blocks are reused by malloc anyway, so without the cache the
//!   cost per pixel jumped where a layer's tensors crossed the threshold. The threshold
//!   itself is fixed at its ceiling (glibc raises it there on its own only after freeing a
//!   large block, which the cache now holds instead).
//!
//! Opt in from a binary:
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOCATOR: equivar_kernels::HugePageAllocator = equivar_kernels::HugePageAllocator;
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static HUGE_PAGES: AtomicBool = AtomicBool::new(true);
static BLOCK_REUSE: AtomicBool = AtomicBool::new(true);

/// Switches the huge-page advice on or off for the whole process (for A/B measurements;
/// `EQUIVAR_HUGE_PAGES=0` in the environment starts it off where this allocator is installed).
pub fn set_huge_pages(enabled: bool) {
    HUGE_PAGES.store(enabled, Ordering::Relaxed);
}

/// Switches the reuse of large freed blocks on or off (`EQUIVAR_BLOCK_REUSE=0` in the
/// environment starts it off where this allocator is installed); switching it off also
/// returns the blocks held now.
pub fn set_block_reuse(enabled: bool) {
    BLOCK_REUSE.store(enabled, Ordering::Relaxed);
    if !enabled && let Ok(blocks) = CACHE.lock().map(|mut c| c.take_all()) {
        release(blocks);
    }
}

/// Allocations of at least this many bytes are advised to use huge pages.
const THRESHOLD: usize = 4 << 20;
const HUGE_PAGE: usize = 2 << 20;
/// Freed blocks of at least this many bytes are kept for reuse.
const REUSE_MIN: usize = 16 << 20;
/// At most this many bytes of freed blocks are held; the oldest go back first.
pub const CACHE_BYTES: usize = 4 << 30;
const CACHE_SLOTS: usize = 32;

/// [`System`], plus `madvise(MADV_HUGEPAGE)` on allocations of 4 MB or more (Linux) and reuse
/// of freed blocks of 16 MB or more.
pub struct HugePageAllocator;

/// Advises the whole 2 MB pages inside `[ptr, ptr + size)`; failures leave ordinary pages.
pub(crate) fn advise_huge_pages(ptr: *mut u8, size: usize) {
    #[cfg(target_os = "linux")]
    if !ptr.is_null() && size >= THRESHOLD && HUGE_PAGES.load(Ordering::Relaxed) {
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

/// The size actually allocated for a request: large ones are rounded up to whole huge pages,
/// so that blocks of nearly equal requests are interchangeable. Every call into `System`
/// uses this size, for allocation and release alike.
fn size_class(size: usize) -> usize {
    if size >= REUSE_MIN {
        size.next_multiple_of(HUGE_PAGE)
    } else {
        size
    }
}

fn class_layout(layout: Layout) -> Layout {
    // Rounding up to a multiple of 2 MB keeps the size valid for any alignment it had.
    Layout::from_size_align(size_class(layout.size()), layout.align()).expect("valid layout")
}

#[derive(Clone, Copy)]
struct Block {
    ptr: usize,
    size: usize,
    align: usize,
    /// When it was freed, to return the oldest first.
    age: u64,
}

impl Block {
    fn layout(&self) -> Layout {
        Layout::from_size_align(self.size, self.align).expect("valid layout")
    }
}

/// Freed large blocks, in a fixed array: the allocator must not allocate for itself.
struct BlockCache {
    slots: [Option<Block>; CACHE_SLOTS],
    bytes: usize,
    clock: u64,
}

static CACHE: Mutex<BlockCache> = Mutex::new(BlockCache {
    slots: [None; CACHE_SLOTS],
    bytes: 0,
    clock: 0,
});

impl BlockCache {
    /// A held block of exactly this class, taken out of the cache.
    fn take(&mut self, layout: Layout) -> Option<usize> {
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.is_some_and(|b| b.size == layout.size() && b.align == layout.align()))?;
        let block = slot.take()?;
        self.bytes -= block.size;
        Some(block.ptr)
    }

    /// Keeps `ptr`, returning the blocks that must go back to the system to make room (the
    /// oldest first), or `ptr` itself where it alone exceeds the budget.
    fn put(&mut self, ptr: usize, layout: Layout) -> [Option<Block>; CACHE_SLOTS + 1] {
        let mut released = [None; CACHE_SLOTS + 1];
        self.clock += 1;
        let block = Block {
            ptr,
            size: layout.size(),
            align: layout.align(),
            age: self.clock,
        };
        if block.size > CACHE_BYTES {
            released[0] = Some(block);
            return released;
        }
        let mut n = 0;
        while self.bytes + block.size > CACHE_BYTES || self.slots.iter().all(Option::is_some) {
            let oldest = self
                .slots
                .iter_mut()
                .filter(|s| s.is_some())
                .min_by_key(|s| s.map_or(u64::MAX, |b| b.age))
                .expect("a held block");
            let old = oldest.take().expect("held");
            self.bytes -= old.size;
            released[n] = Some(old);
            n += 1;
        }
        *self.slots.iter_mut().find(|s| s.is_none()).expect("room") = Some(block);
        self.bytes += block.size;
        released
    }

    fn take_all(&mut self) -> [Option<Block>; CACHE_SLOTS] {
        self.bytes = 0;
        std::mem::replace(&mut self.slots, [None; CACHE_SLOTS])
    }
}

/// Whether the environment sets `name` to `0`, read without allocating (this runs inside
/// the allocator).
fn switched_off(name: &std::ffi::CStr) -> bool {
    // SAFETY: getenv reads the environment without allocating; the name is NUL-terminated.
    let value = unsafe { libc::getenv(name.as_ptr()) };
    // SAFETY: a non-null getenv result is a NUL-terminated string.
    !value.is_null() && unsafe { std::ffi::CStr::from_ptr(value) }.to_bytes() == b"0"
}

/// On the first allocation, the environment's A/B switches: `EQUIVAR_HUGE_PAGES=0` (no
/// huge-page advice) and `EQUIVAR_BLOCK_REUSE=0` (no reuse, malloc untouched). With reuse on,
/// glibc's mmap threshold is fixed at 32 MB, its ceiling, so that blocks under 16 MB come
/// from malloc's reused heap rather than fresh mappings, and the heap is trimmed only past
/// 1 GB free at its top. (At 64 MB, one more 230 KB allocation per conv layer and training
/// step set off a trim and a regrowth of the heap every step: 14x the page faults, a training
/// step of `abusing-p4` 15% slower.)
fn first_allocation() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if switched_off(c"EQUIVAR_HUGE_PAGES") {
            HUGE_PAGES.store(false, Ordering::Relaxed);
        }
        if switched_off(c"EQUIVAR_BLOCK_REUSE") {
            BLOCK_REUSE.store(false, Ordering::Relaxed);
            return;
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only sets malloc parameters; no lock of ours is held.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        }
    });
}

/// Returns blocks the cache no longer holds to the system.
fn release(blocks: impl IntoIterator<Item = Option<Block>>) {
    for block in blocks.into_iter().flatten() {
        // SAFETY: each block was allocated by `System` with exactly this layout and is no
        // longer in the cache, so nobody else can hand it out.
        unsafe { System.dealloc(block.ptr as *mut u8, block.layout()) }
    }
}

fn reusable(layout: Layout) -> bool {
    layout.size() >= REUSE_MIN && BLOCK_REUSE.load(Ordering::Relaxed)
}

/// A held block for `layout` (already a class layout), if there is one.
fn reuse(layout: Layout) -> Option<*mut u8> {
    if !reusable(layout) {
        return None;
    }
    CACHE.lock().ok()?.take(layout).map(|p| p as *mut u8)
}

// SAFETY: blocks come from `System` with the class layout of the request and go back to it
// with the same layout; a cached block is held by the cache alone until it is handed out
// again, whole, for a request of the same class layout; the advice changes how pages are
// backed, never which addresses are valid.
unsafe impl GlobalAlloc for HugePageAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        first_allocation();
        let layout = class_layout(layout);
        if let Some(ptr) = reuse(layout) {
            return ptr;
        }
        // SAFETY: a valid, non-zero-size layout, as the caller promises.
        let ptr = unsafe { System.alloc(layout) };
        advise_huge_pages(ptr, layout.size());
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        first_allocation();
        let layout = class_layout(layout);
        if let Some(ptr) = reuse(layout) {
            // SAFETY: the block holds layout.size() writable bytes.
            unsafe { ptr.write_bytes(0, layout.size()) };
            return ptr;
        }
        // SAFETY: as in alloc.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        advise_huge_pages(ptr, layout.size());
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let layout = class_layout(layout);
        if reusable(layout)
            && let Ok(mut cache) = CACHE.lock()
        {
            let released = cache.put(ptr as usize, layout);
            drop(cache);
            release(released);
            return;
        }
        // SAFETY: allocated by `System` with this class layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = class_layout(layout);
        let new = class_layout(Layout::from_size_align(new_size, layout.align()).expect("valid"));
        if old.size() == new.size() {
            return ptr;
        }
        if reusable(old) || reusable(new) {
            // Through alloc and dealloc, so that large blocks pass through the cache.
            // SAFETY: `new` is a valid non-zero layout; both blocks hold at least the copied
            // bytes, and `ptr` was allocated with `layout`.
            unsafe {
                let fresh = self.alloc(new);
                if !fresh.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, fresh, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                return fresh;
            }
        }
        // SAFETY: allocated by `System` with `old` (small sizes are their own class).
        let fresh = unsafe { System.realloc(ptr, old, new.size()) };
        advise_huge_pages(fresh, new.size());
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_blocks_of_one_class_are_reused_and_the_budget_holds() {
        let mut cache = BlockCache {
            slots: [None; CACHE_SLOTS],
            bytes: 0,
            clock: 0,
        };
        let l = |mb: usize| Layout::from_size_align(mb << 20, 64).unwrap();
        assert!(cache.put(1, l(20)).iter().all(Option::is_none));
        assert_eq!(cache.take(l(22)), None, "another class");
        assert_eq!(cache.take(l(20)), Some(1));
        assert_eq!(cache.take(l(20)), None, "taken once");
        // Filling past the budget returns the oldest blocks first.
        let big = (CACHE_BYTES / 3) >> 20;
        for ptr in 1..=3 {
            assert!(cache.put(ptr, l(big)).iter().all(Option::is_none));
        }
        let released: Vec<usize> = cache
            .put(4, l(big))
            .iter()
            .flatten()
            .map(|b| b.ptr)
            .collect();
        assert_eq!(released, vec![1]);
        assert!(cache.bytes <= CACHE_BYTES);
        assert_eq!(size_class(17 << 20), 18 << 20);
        assert_eq!(size_class(1000), 1000);
    }
}
