//! Memory that a parent and the children it forks share.

use std::io;

use crate::os_error;

/// A `MAP_SHARED | MAP_ANONYMOUS` mapping, zero-filled. Made before `fork`, it is the
/// same memory in the parent and in every child. Unmapped when dropped, unless
/// [`leak`](SharedMap::leak)ed.
#[derive(Debug)]
pub struct SharedMap {
    /// Page aligned; `len` bytes, readable and writable, mapped while `self` lives.
    ptr: *mut u8,
    /// At least 1.
    len: usize,
}

impl SharedMap {
    /// Maps `len` bytes (at least one page).
    pub fn new(len: usize) -> io::Result<Self> {
        let len = len.max(1);
        // SAFETY: an anonymous mapping at an address the kernel chooses touches no
        // memory of ours.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(os_error(&format!("mmap of {len} shared bytes")));
        }
        Ok(SharedMap { ptr: p.cast(), len })
    }

    /// The start of the mapping (page aligned).
    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// The length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: it is at least one byte long).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps the mapping for the rest of the process and returns its start: for
    /// memory that endpoints reach through raw pointers with no lifetime.
    pub fn leak(self) -> *mut u8 {
        let p = self.ptr;
        std::mem::forget(self);
        p
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are the mapping made in `new`, unmapped only here; no
        // reference into it outlives `self` in this process (children have their own
        // address space).
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn zeroed_and_writable() {
        let m = super::SharedMap::new(10_000).expect("mmap");
        assert_eq!(m.len(), 10_000);
        assert_eq!(m.ptr() as usize % 4096, 0);
        // SAFETY: inside the mapping, which lives until the end of the test.
        unsafe {
            assert_eq!(m.ptr().add(9_999).read(), 0);
            m.ptr().add(9_999).write(7);
            assert_eq!(m.ptr().add(9_999).read(), 7);
        }
    }
}
