//! POSIX shared-memory segments (`shm_open`, on Linux a file in /dev/shm).
//!
//! Create: `O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW`, then `fchmod(0600)` (so the
//! umask plays no part), `ftruncate`, map, initialise the header, and publish READY.
//! An existing object is never truncated. Open: `fstat` before every mapping, so a
//! segment smaller than its header claims is an error, not a SIGBUS; wait (bounded)
//! for READY; validate the header; then map the whole segment.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::{fchmod, fstat, Mode};

use crate::header::{Header, HeaderFault, RingParams, HEADER_SIZE};
use crate::region::DataRegion;
use crate::Error;

/// How long `open` waits for a creator that is still initialising the segment.
pub(crate) const READY_WAIT: Duration = Duration::from_secs(2);

/// A mapped POSIX shared-memory segment.
#[derive(Debug)]
pub(crate) struct PosixSegment {
    map: MmapRaw,
    /// Kept open: the crash detection to come takes its locks on this descriptor.
    _file: File,
    name: String,
    capacity: usize,
    unlink_on_drop: bool,
}

impl PosixSegment {
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the mapping is page aligned, at least HEADER_SIZE bytes long (checked
        // before mapping), lives as long as `self`, and `Header` is all atomics and
        // padding, valid for any bit pattern.
        unsafe { &*self.map.as_mut_ptr().cast::<Header>() }
    }

    pub(crate) fn data(&self) -> DataRegion {
        // SAFETY: the mapping is HEADER_SIZE + capacity bytes (validated against fstat
        // before mapping); the region after the header is page aligned and lives as
        // long as `self`; capacity is a validated power of two.
        unsafe { DataRegion::new(self.map.as_mut_ptr().add(HEADER_SIZE), self.capacity) }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PosixSegment {
    fn drop(&mut self) {
        if self.unlink_on_drop {
            // The name may already be gone (removed by hand, or by the peer): that is fine.
            let _ = shm_unlink(self.name.as_str());
        }
    }
}

/// Checks a POSIX shared-memory name: one leading '/', no other, 1..=255 bytes
/// after it, not "." or "..", no NUL.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    let Some(rest) = name.strip_prefix('/') else {
        return bad("must start with '/'");
    };
    if rest.is_empty() {
        return bad("must have at least one character after '/'");
    }
    if rest.len() > 255 {
        return bad("must have at most 255 bytes after '/'");
    }
    if rest.contains('/') {
        return bad("must not contain '/' after the first character");
    }
    if rest.contains('\0') {
        return bad("must not contain NUL");
    }
    if rest == "." || rest == ".." {
        return bad("must not be \".\" or \"..\"");
    }
    Ok(())
}

fn io_err(op: &'static str, name: &str, e: Errno) -> Error {
    Error::Io {
        op,
        name: name.to_string(),
        source: std::io::Error::from(e),
    }
}

fn file_len(file: &File, name: &str) -> Result<u64, Error> {
    let st = fstat(file).map_err(|e| io_err("fstat", name, e))?;
    Ok(st.st_size.max(0) as u64)
}

fn map(file: &File, len: usize, name: &str) -> Result<MmapRaw, Error> {
    MmapOptions::new()
        .len(len)
        .map_raw(file)
        .map_err(|source| Error::Io {
            op: "mmap",
            name: name.to_string(),
            source,
        })
}

/// Creates a new segment for `params`; fails with `AlreadyExists` if the name is taken.
pub(crate) fn create(
    name: &str,
    params: &RingParams,
    unlink_on_drop: bool,
) -> Result<PosixSegment, Error> {
    validate_name(name)?;
    let segment_len = HEADER_SIZE as u64 + params.capacity as u64;
    let fd: OwnedFd = match shm_open(
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::S_IRUSR | Mode::S_IWUSR,
    ) {
        Ok(fd) => fd,
        Err(Errno::EEXIST) => {
            return Err(Error::AlreadyExists {
                name: name.to_string(),
            })
        }
        Err(e) => return Err(io_err("shm_open", name, e)),
    };
    let file = File::from(fd);
    // From here on the name is ours: remove it again if anything fails.
    let result = (|| {
        fchmod(&file, Mode::S_IRUSR | Mode::S_IWUSR).map_err(|e| io_err("fchmod", name, e))?;
        file.set_len(segment_len).map_err(|source| Error::Io {
            op: "ftruncate",
            name: name.to_string(),
            source,
        })?;
        let map = map(&file, segment_len as usize, name)?;
        Ok(map)
    })();
    match result {
        Ok(map) => {
            let seg = PosixSegment {
                map,
                _file: file,
                name: name.to_string(),
                capacity: params.capacity,
                unlink_on_drop,
            };
            seg.header().init(params, segment_len);
            Ok(seg)
        }
        Err(e) => {
            let _ = shm_unlink(name);
            Err(e)
        }
    }
}

/// Opens an existing segment of kind `expected_kind`, waiting up to `ready_wait` for a
/// creator that is still initialising it.
pub(crate) fn open(
    name: &str,
    expected_kind: u32,
    ready_wait: Duration,
) -> Result<(PosixSegment, RingParams), Error> {
    validate_name(name)?;
    let fd = match shm_open(
        name,
        OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => {
            return Err(Error::NotFound {
                name: name.to_string(),
            })
        }
        Err(e) => return Err(io_err("shm_open", name, e)),
    };
    let file = File::from(fd);
    let start = Instant::now();
    let mut backoff = Duration::from_micros(50);
    // Between the creator's shm_open and its ftruncate the object is empty: wait.
    loop {
        if file_len(&file, name)? >= HEADER_SIZE as u64 {
            break;
        }
        if start.elapsed() >= ready_wait {
            return Err(Error::NotReady {
                name: name.to_string(),
                state: 0,
                waited: start.elapsed(),
            });
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_millis(20));
    }
    let header_map = map(&file, HEADER_SIZE, name)?;
    // SAFETY: the mapping is HEADER_SIZE bytes of a file at least that long (fstat
    // above; a later truncation by another process is outside our model, see the
    // crate docs), page aligned, and `Header` is valid for any bit pattern.
    let header = unsafe { &*header_map.as_mut_ptr().cast::<Header>() };
    let params = loop {
        let len = file_len(&file, name)?;
        match header.validate(expected_kind, len) {
            Ok(params) => break params,
            Err(HeaderFault::NotReady { state })
                if state != crate::header::STATE_POISONED && start.elapsed() < ready_wait =>
            {
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_millis(20));
            }
            Err(fault) => return Err(fault_to_error(name, fault, start.elapsed())),
        }
    };
    let segment_len = HEADER_SIZE + params.capacity;
    // fstat once more right before the full mapping: `validate` checked the length,
    // and an object can only be shrunk by someone with write access to it.
    if file_len(&file, name)? < segment_len as u64 {
        return Err(Error::Corrupt {
            name: name.to_string(),
            field: "capacity",
            value: params.capacity as u64,
            reason: "the segment file is smaller than header + capacity",
        });
    }
    let map = map(&file, segment_len, name)?;
    drop(header_map);
    Ok((
        PosixSegment {
            map,
            _file: file,
            name: name.to_string(),
            capacity: params.capacity,
            unlink_on_drop: false,
        },
        params,
    ))
}

pub(crate) fn fault_to_error(name: &str, fault: HeaderFault, waited: Duration) -> Error {
    let name = name.to_string();
    match fault {
        HeaderFault::Incompatible {
            field,
            found,
            expected,
        } => Error::Incompatible {
            name,
            field,
            found,
            expected,
        },
        HeaderFault::Corrupt {
            field,
            value,
            reason,
        } => Error::Corrupt {
            name,
            field,
            value,
            reason,
        },
        HeaderFault::NotReady { state } => Error::NotReady {
            name,
            state,
            waited,
        },
    }
}

/// Removes the segment `name`. Endpoints that have it mapped keep working; the name
/// is free for a new `create` at once.
pub(crate) fn remove(name: &str) -> Result<(), Error> {
    validate_name(name)?;
    match shm_unlink(name) {
        Ok(()) => Ok(()),
        Err(Errno::ENOENT) => Err(Error::NotFound {
            name: name.to_string(),
        }),
        Err(e) => Err(io_err("shm_unlink", name, e)),
    }
}
