//! System V shared-memory segments: `shmget` with a key, `shmat`, `shmdt`,
//! `shmctl(IPC_STAT / IPC_RMID)`.
//!
//! Create: `shmget(key, len, IPC_CREAT | IPC_EXCL | 0600)` (0660 with group access)
//! sizes and places a zeroed segment in one step (no umask applies; an existing key is
//! never reused), then `shmat`, populate it for writing (its memory is reserved at
//! creation: see `shared.rs`), initialise the header and publish READY. Open:
//! `shmget(key, 0, 0)`, check the owner and mode that `shmctl(IPC_STAT)` reports
//! (`shm_perm.uid`, `shm_perm.mode`: [`check_permissions`]) and the creator
//! (`shm_perm.cuid`, and `shm_perm.cgid` when the mode grants group access:
//! [`check_creator`]), since the creator of a segment can give it to another owner
//! with `shmctl(IPC_SET)` and keeps full access to it; then the discipline of
//! [`open_object`] (`shmctl(IPC_STAT)` before attaching, bounded wait for READY, header
//! validation). A SysV segment cannot change size once made, so what
//! `IPC_STAT` reports is what stays mapped.
//!
//! Removal (`IPC_RMID`) frees the key at once, but the segment lives on, usable by
//! every process that has it attached, until the last of them detaches.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use crate::sys::os::Errno;
use crate::sys::sysv;

use super::backing::MemoryOptions;
use super::shared::{
    check_creator, check_memory, check_permissions, huge_err, init_segment, io_err, object_len,
    open_object, shm_size, shm_stat, Creator, Mapping, Object, SYSV_MEMORY,
};
use crate::header::{Header, RingParams};
use crate::options::OpenOptions;
use crate::region::DataRegion;
use crate::Error;

/// An attached SysV segment.
#[derive(Debug)]
pub(crate) struct SysVSegment {
    map: Mapping,
    shmid: i32,
    /// `sysv:0x<key>`.
    name: String,
    capacity: usize,
    remove_on_drop: bool,
}

impl SysVSegment {
    pub(crate) fn header(&self) -> &Header {
        self.map.header()
    }

    pub(crate) fn data(&self) -> DataRegion {
        self.map.data(self.capacity)
    }

    pub(crate) fn cell_table(&self, params: &RingParams) -> crate::region::CellTable {
        self.map.cell_table(params)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for SysVSegment {
    fn drop(&mut self) {
        if self.remove_on_drop {
            // By id, not by key: the key may name a newer segment by now, but the id
            // names this segment alone. The kernel frees an id only when its segment
            // is removed and its last attachment gone, and `map` (ours) is still
            // attached here, so the id cannot have been given to a newer segment:
            // unlike `unlink_on_drop` of a POSIX name, nothing to compare first. Then
            // `map` drops and detaches; the segment goes with its last attachment.
            let _ = sysv::remove(self.shmid);
        }
    }
}

/// How endpoints and errors name the SysV segment of `key`: `sysv:0x1234abcd`, the
/// key as `ipcs -m` prints it.
pub(crate) fn segment_name(key: i32) -> String {
    format!("sysv:{:#010x}", key as u32)
}

/// Key 0 is `IPC_PRIVATE`: `shmget` would make a new segment that no peer can find.
fn check_key(key: i32) -> Result<(), Error> {
    if key == sysv::IPC_PRIVATE {
        return Err(Error::InvalidName {
            name: segment_name(key),
            reason: "SysV key 0 is IPC_PRIVATE: a segment no peer can open by its key",
        });
    }
    Ok(())
}

/// A SysV key derived from an existing file and a project id, as `ftok(3)` derives it:
/// programs that agree on the path and the id agree on the key. The file's inode and
/// device number make the key, so it changes if the file is replaced, and two paths
/// can (rarely) give the same key.
///
/// ```
/// let key = shmlane::ftok("/tmp", 7)?;
/// assert_eq!(key, shmlane::ftok("/tmp", 7)?);
/// assert_ne!(key, shmlane::ftok("/tmp", 8)?);
/// # Ok::<(), shmlane::Error>(())
/// ```
pub fn ftok(path: impl AsRef<Path>, id: u8) -> Result<i32, Error> {
    let path = path.as_ref();
    let name = path.display().to_string();
    if id == 0 {
        return Err(Error::InvalidOptions {
            reason: "ftok: the project id must not be 0".to_string(),
        });
    }
    let Ok(cpath) = CString::new(path.as_os_str().as_bytes()) else {
        return Err(Error::InvalidName {
            name,
            reason: "must not contain NUL",
        });
    };
    sysv::ftok(&cpath, id).map_err(|e| io_err("ftok", &name, e))
}

/// Creates a new segment with `key` for `params`, permission bits `mode` (0600 or
/// 0660); fails with `AlreadyExists` if the key is taken.
pub(crate) fn create(
    key: i32,
    params: &RingParams,
    mem: &MemoryOptions,
    mode: u32,
    remove_on_drop: bool,
) -> Result<SysVSegment, Error> {
    check_key(key)?;
    let name = segment_name(key);
    // Size it and place it: shmget makes it zeroed, of its final size.
    let (len, huge) = object_len(params, mem, &name)?;
    if huge.is_none() {
        check_memory(&name, SYSV_MEMORY, len)?;
    }
    let shmid = match sysv::create(key, len, mode, huge.is_some()) {
        Ok(shmid) => shmid,
        Err(e) => {
            return Err(match (e, huge) {
                (Errno::EEXIST, _) => Error::AlreadyExists { name },
                (e, Some(huge)) => huge_err("shmget(SHM_HUGETLB)", &name, e, huge),
                (e, None) => io_err("shmget", &name, e),
            })
        }
    };
    // From here on the key is ours: remove the segment again if anything fails.
    let placed = (|| {
        let map = Mapping::shmat(shmid, len, &name)?;
        if huge.is_some() {
            // shmget(SHM_HUGETLB) reserved the huge pages.
            if mem.populate {
                map.populate(&name)?;
            }
        } else {
            // Reserve its memory (`shared.rs`): allocate every page now, so that
            // running out is an error here, not a fault in the middle of a transfer.
            // This populates it as `populate` asks, too.
            map.reserve(&name, SYSV_MEMORY, None)?;
        }
        // Init it.
        init_segment(&map, params, mem, &name)?;
        Ok(map)
    })();
    match placed {
        Ok(map) => Ok(SysVSegment {
            map,
            shmid,
            name,
            capacity: params.capacity,
            remove_on_drop,
        }),
        Err(e) => {
            let _ = sysv::remove(shmid);
            Err(e)
        }
    }
}

/// The id of the existing segment with `key`.
fn lookup(key: i32, name: &str) -> Result<i32, Error> {
    check_key(key)?;
    // Size 0 and no IPC_CREAT: find, never make.
    sysv::lookup(key).map_err(|e| match e {
        Errno::ENOENT => Error::NotFound {
            name: name.to_string(),
        },
        e => io_err("shmget", name, e),
    })
}

/// A SysV segment being opened.
struct ShmObject<'a> {
    shmid: i32,
    name: &'a str,
}

impl Object for ShmObject<'_> {
    fn size(&self) -> Result<u64, Error> {
        Ok(shm_size(self.shmid, self.name)? as u64)
    }

    fn map(&self, len: usize) -> Result<Mapping, Error> {
        Mapping::shmat(self.shmid, len, self.name)
    }

    fn may_grow(&self) -> bool {
        false
    }
}

/// Opens the existing segment with `key` as a ring of kind `expected_kind`, if `accept`
/// allows its owner and mode, waiting up to `ready_wait` for a creator that is still
/// initialising it.
pub(crate) fn open(
    key: i32,
    expected_kind: u32,
    accept: &OpenOptions,
    ready_wait: Duration,
) -> Result<(SysVSegment, RingParams), Error> {
    let name = segment_name(key);
    let shmid = lookup(key, &name)?;
    // The low 9 bits of shm_perm.mode are the permissions (SHM_DEST, SHM_LOCKED above).
    let perm = shm_stat(shmid, &name)?.shm_perm;
    let mode = u32::from(perm.mode) & 0o777;
    check_permissions(&name, perm.uid, mode, accept)?;
    let creator = Creator {
        uid: perm.cuid,
        gid: perm.cgid,
    };
    check_creator(&name, perm.uid, mode, creator, accept)?;
    let object = ShmObject { shmid, name: &name };
    let (map, params) = open_object(&object, &name, expected_kind, ready_wait)?;
    Ok((
        SysVSegment {
            map,
            shmid,
            capacity: params.capacity,
            name,
            remove_on_drop: false,
        },
        params,
    ))
}

/// Marks the segment with `key` for removal (`IPC_RMID`).
pub(crate) fn remove(key: i32) -> Result<(), Error> {
    let name = segment_name(key);
    let shmid = lookup(key, &name)?;
    sysv::remove(shmid).map_err(|e| match e {
        // Removed by someone else since we looked it up.
        Errno::EINVAL | Errno::EIDRM => Error::NotFound { name },
        e => io_err("shmctl(IPC_RMID)", &name, e),
    })
}
