//! Sealed memfd segments (`memfd_create`), and handing their descriptor to another
//! process over a UNIX socket (`SCM_RIGHTS`).
//!
//! Create: `memfd_create(MFD_ALLOW_SEALING)`, `fchmod` to 0600 or 0660 (a memfd starts
//! out 0777, whatever the umask), `ftruncate`, `fallocate` (its memory is reserved at
//! creation: see `shared.rs`), then
//! `F_ADD_SEALS(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)` before any other process can
//! hold the descriptor, so nobody can ever change the segment's size: a reader can
//! never be cut short by a truncation (a SIGBUS with POSIX shm). Then map it,
//! initialise the header and publish READY.
//!
//! Open: a descriptor without those three seals is refused (`Incompatible`, field
//! `seals`) before anything is mapped: shmlane made every memfd ring sealed, and only a
//! sealed one is safe from truncation. Then its owner and mode are checked (`fstat`,
//! [`check_permissions`]), and the discipline of [`open_object`] follows.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use crate::sys::os::{
    fchmod, fcntl, fstat, ftruncate, memfd_create, mode_t, off_t, Errno, FcntlArg, MFdFlags, Mode,
    SealFlag,
};

use super::backing::MemoryOptions;
use super::shared::{
    check_memory, check_permissions, init_segment, io_err, object_len, on_huge_pages, open_object,
    reserve_file, FdObject, Mapping, MEMFD_MEMORY,
};
use crate::header::{Header, RingParams};
use crate::options::OpenOptions;
use crate::region::DataRegion;
use crate::Error;

/// The seals of every memfd ring.
const SEALS: SealFlag = SealFlag::F_SEAL_SHRINK
    .union(SealFlag::F_SEAL_GROW)
    .union(SealFlag::F_SEAL_SEAL);

/// The longest name `memfd_create` takes (249 bytes, without the NUL).
const MAX_LABEL: usize = 249;

/// A mapped, sealed memfd segment.
#[derive(Debug)]
pub(crate) struct MemfdSegment {
    map: Mapping,
    /// The memfd, kept open so that it can be handed to more peers.
    fd: OwnedFd,
    /// `memfd:<label>`.
    name: String,
    capacity: usize,
}

impl MemfdSegment {
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

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Creates a sealed memfd named `label` (a label only: `/proc/PID/fd` shows it as
/// `/memfd:<label>`) with permission bits `mode` (0600 or 0660), and a ring for
/// `params` in it.
pub(crate) fn create(
    label: &str,
    params: &RingParams,
    mem: &MemoryOptions,
    mode: u32,
) -> Result<MemfdSegment, Error> {
    let name = format!("memfd:{label}");
    if label.len() > MAX_LABEL || label.contains('\0') {
        return Err(Error::InvalidName {
            name,
            reason: "a memfd name has at most 249 bytes and no NUL",
        });
    }
    // Size it.
    let (len, huge) = object_len(params, mem, &name)?;
    let mut flags = MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING;
    if huge.is_some() {
        flags |= MFdFlags::MFD_HUGETLB;
    }
    let fd = memfd_create(label, flags)
        .map_err(|e| on_huge_pages(io_err("memfd_create", &name, e), huge))?;
    fchmod(&fd, Mode::from_bits_truncate(mode as mode_t))
        .map_err(|e| io_err("fchmod", &name, e))?;
    ftruncate(&fd, len as off_t).map_err(|e| io_err("ftruncate", &name, e))?;
    // Reserve its memory (`shared.rs`): no size limit of a filesystem applies to a
    // memfd, but a ring larger than the memory available is refused, and the pages
    // are allocated now rather than at the first write to each. Huge pages are
    // reserved by the mmap below.
    let mut reserved = huge.is_some();
    if !reserved {
        check_memory(&name, MEMFD_MEMORY, len)?;
        reserved = reserve_file(fd.as_fd(), len, &name, MEMFD_MEMORY, None)?;
    }
    // Seal it before anyone else can hold it.
    fcntl(&fd, FcntlArg::F_ADD_SEALS(SEALS)).map_err(|e| io_err("fcntl(F_ADD_SEALS)", &name, e))?;
    // Place it.
    let map =
        Mapping::mmap(fd.as_fd(), len, mem.populate, &name).map_err(|e| on_huge_pages(e, huge))?;
    if !reserved {
        map.reserve_file(fd.as_fd(), &name, MEMFD_MEMORY)?;
    }
    // Init it.
    init_segment(&map, params, mem, &name)?;
    Ok(MemfdSegment {
        map,
        fd,
        name,
        capacity: params.capacity,
    })
}

/// `memfd:<label>` from the descriptor's /proc link (`/memfd:<label> (deleted)`); for a
/// descriptor of something else, what the link shows (`fd 5 (pipe:[1234])`).
fn name_of(fd: BorrowedFd<'_>) -> String {
    let raw = fd.as_raw_fd();
    let Ok(link) = crate::sys::procfs::fd_link(fd) else {
        return format!("fd {raw}");
    };
    let link = link.to_string_lossy();
    match link.strip_prefix("/memfd:") {
        Some(label) => format!(
            "memfd:{}",
            label.strip_suffix(" (deleted)").unwrap_or(label)
        ),
        None => format!("fd {raw} ({link})"),
    }
}

/// Opens the ring in the memfd `fd` as kind `expected_kind`. The memfd must carry the
/// seals `create` puts on it, and an owner and mode that `accept` allows.
pub(crate) fn open(
    fd: OwnedFd,
    expected_kind: u32,
    accept: &OpenOptions,
    ready_wait: Duration,
) -> Result<(MemfdSegment, RingParams), Error> {
    let name = name_of(fd.as_fd());
    let seals = match fcntl(&fd, FcntlArg::F_GET_SEALS) {
        Ok(bits) => SealFlag::from_bits_retain(bits),
        // Not a file that can carry seals at all (a pipe, a socket, a disk file).
        Err(Errno::EINVAL) => SealFlag::empty(),
        Err(e) => return Err(io_err("fcntl(F_GET_SEALS)", &name, e)),
    };
    if !seals.contains(SEALS) {
        return Err(Error::Incompatible {
            name,
            field: "seals",
            found: seals.bits() as u64,
            expected: format!(
                "a memfd sealed with F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL ({:#x}), as \
                 create_memfd makes it: without them a peer could truncate the ring under us",
                SEALS.bits()
            ),
        });
    }
    let st = fstat(&fd).map_err(|e| io_err("fstat", &name, e))?;
    check_permissions(&name, st.st_uid, st.st_mode, accept)?;
    let object = FdObject {
        fd: fd.as_fd(),
        name: &name,
        may_grow: false,
    };
    let (map, params) = open_object(&object, &name, expected_kind, ready_wait)?;
    Ok((
        MemfdSegment {
            map,
            fd,
            name,
            capacity: params.capacity,
        },
        params,
    ))
}
