//! POSIX shared-memory segments (`shm_open`, on Linux a file in /dev/shm), and their
//! huge-page form: a file of the same name in a hugetlbfs mount.
//!
//! Create: `O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW` with mode 0600, then `fchmod` to
//! 0600 or 0660 (so the umask plays no part), `ftruncate`, `fallocate` (a ring larger
//! than the space free on /dev/shm is `Error::NoSpace` now, not a SIGBUS later: see
//! `shared.rs`), map, initialise the header, and publish READY. An existing object is never truncated. Open: `fstat` the
//! descriptor and check its owner and mode
//! ([`check_permissions`](super::shared::check_permissions)), then the discipline of
//! [`open_object`](super::shared::open_object) (`fstat` before every mapping, bounded
//! wait for READY, header validation).
//!
//! A POSIX object can be resized by any process that can open it for writing: one that
//! shrinks it under a mapping makes accesses past the new end raise SIGBUS (see the
//! crate's trust model). The owner and mode checks keep that to the owner (and, with
//! group access, its group).

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sys::os::{fchmod, fstat, mode_t, shm_open, shm_unlink, Errno, Mode, OFlag, O_NOFOLLOW};

use super::backing::MemoryOptions;
use super::shared::{
    check_permissions, init_segment, io_err, object_len, on_huge_pages, open_object, pread_header,
    reserve_file, FdObject, Mapping,
};
use crate::header::{Header, RingParams, HEADER_SIZE};
use crate::options::OpenOptions;
use crate::region::DataRegion;
use crate::Error;

/// A mapped POSIX shared-memory segment.
#[derive(Debug)]
pub(crate) struct PosixSegment {
    map: Mapping,
    /// Kept open: endpoints reopen it for their liveness locks (`liveness.rs`).
    file: File,
    name: String,
    capacity: usize,
    /// The hugetlbfs file that holds the segment, if it is not in /dev/shm.
    hugetlbfs_path: Option<PathBuf>,
    unlink_on_drop: bool,
}

impl PosixSegment {
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

    pub(crate) fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for PosixSegment {
    fn drop(&mut self) {
        if self.unlink_on_drop {
            // The name may already be gone (removed by hand, or by the peer): that is
            // fine. It may also name another ring by now (ours removed, a new one made
            // under its name): that one is not ours to remove.
            unlink_if_ours(&self.name, self.hugetlbfs_path.as_deref(), &self.file);
        }
    }
}

/// The file that the name of a POSIX segment names: `/dev/shm/<name>` (where glibc's
/// `shm_open` and `shm_unlink` resolve it), or its hugetlbfs path.
fn object_path(name: &str, hugetlbfs_path: Option<&Path>) -> PathBuf {
    match hugetlbfs_path {
        Some(path) => path.to_path_buf(),
        None => PathBuf::from(format!("/dev/shm/{}", name.trim_start_matches('/'))),
    }
}

/// Removes the name `name` (or its hugetlbfs path) if it still names the file of
/// `file`: same device and inode. Returns whether it removed it. A name that names
/// another file, or nothing, or that cannot be looked at, stays.
///
/// Between the look and the unlink another process could remove the name and make a
/// new file under it; no call unlinks by name and inode at once. The window is a few
/// system calls wide, and only a process that may remove the name (its owner, or one
/// with write access to the directory) can use it.
fn unlink_if_ours(name: &str, hugetlbfs_path: Option<&Path>, file: &File) -> bool {
    let Ok(ours) = fstat(file) else {
        return false;
    };
    match crate::sys::os::stat(&object_path(name, hugetlbfs_path)) {
        Ok(named) if (named.st_dev, named.st_ino) == (ours.st_dev, ours.st_ino) => {}
        _ => return false,
    }
    match hugetlbfs_path {
        Some(path) => std::fs::remove_file(path).is_ok(),
        None => shm_unlink(name).is_ok(),
    }
}

/// Checks a ring's POSIX shared-memory name. A name is accepted with or without its
/// leading `/` (as the `shmlane` command accepts it): `"frames"` and `"/frames"` name
/// the same ring. After that optional `/` it has 1 to 255 bytes, no other `/`, no NUL,
/// and is not `.` or `..`; anything else is [`Error::InvalidName`], carrying the name
/// as given and the reason.
///
/// ```
/// assert!(shmlane::validate_name("/frames").is_ok());
/// assert!(shmlane::validate_name("frames").is_ok()); // the same ring as "/frames"
/// for bad in ["", "/", "//frames", "a/b", "/..", "nul\0"] {
///     assert!(matches!(
///         shmlane::validate_name(bad),
///         Err(shmlane::Error::InvalidName { .. })
///     ));
/// }
/// ```
pub fn validate_name(name: &str) -> Result<(), Error> {
    canonical_name(name).map(drop)
}

/// The one place a POSIX name is checked and normalised: [`validate_name`]'s rule,
/// returning the name with its leading `/`, as endpoints report it (`name()`) and
/// `inspect` lists it. Every function of the crate that takes a
/// POSIX name calls this first, and so does the `shmlane` command.
///
/// ```
/// assert_eq!(shmlane::canonical_name("frames")?, "/frames");
/// assert_eq!(shmlane::canonical_name("/frames")?, "/frames");
/// assert!(shmlane::canonical_name("a/b").is_err());
/// # Ok::<(), shmlane::Error>(())
/// ```
pub fn canonical_name(name: &str) -> Result<std::borrow::Cow<'_, str>, Error> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    let rest = name.strip_prefix('/').unwrap_or(name);
    if rest.is_empty() {
        return bad("must have at least one character (after the optional leading '/')");
    }
    if rest.len() > 255 {
        return bad("must have at most 255 bytes after the optional leading '/'");
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
    Ok(if name.starts_with('/') {
        std::borrow::Cow::Borrowed(name)
    } else {
        std::borrow::Cow::Owned(format!("/{name}"))
    })
}

/// The hugetlbfs mounts of /proc/mounts, with their page size (the `pagesize=`
/// option, else the default huge page size).
fn hugetlbfs_mounts(default_huge: Option<usize>) -> Vec<(PathBuf, Option<usize>)> {
    let Ok(mounts) = crate::sys::procfs::mounts() else {
        return Vec::new();
    };
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let (_, dir, fstype, options) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            if fstype != "hugetlbfs" {
                return None;
            }
            let size = match options.split(',').find_map(|o| o.strip_prefix("pagesize=")) {
                Some(s) => parse_size(s),
                None => default_huge,
            };
            Some((PathBuf::from(unescape_mount_path(dir)), size))
        })
        .collect()
}

/// `2M`, `1G`, `2048k` → bytes.
fn parse_size(s: &str) -> Option<usize> {
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let shift = match unit {
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        _ => return None,
    };
    digits.parse::<usize>().ok()?.checked_mul(1 << shift)
}

/// /proc/mounts writes space, tab, newline and backslash in paths as `\ooo`.
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where `name` lives in each hugetlbfs mount.
fn hugetlbfs_paths(name: &str) -> impl Iterator<Item = PathBuf> + '_ {
    hugetlbfs_mounts(None)
        .into_iter()
        .map(move |(dir, _)| dir.join(name.trim_start_matches('/')))
}

/// Creates the object `name` exclusively, 0600; in a hugetlbfs mount whose page size is
/// `huge` if that is given. Returns it and its hugetlbfs path.
fn create_object(name: &str, huge: Option<usize>) -> Result<(File, Option<PathBuf>), Error> {
    let Some(huge) = huge else {
        return match shm_open(
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::S_IRUSR | Mode::S_IWUSR,
        ) {
            Ok(fd) => Ok((File::from(fd), None)),
            Err(Errno::EEXIST) => Err(Error::AlreadyExists {
                name: name.to_string(),
            }),
            Err(e) => Err(io_err("shm_open", name, e)),
        };
    };
    let Some((dir, _)) = hugetlbfs_mounts(Some(huge))
        .into_iter()
        .find(|(_, size)| *size == Some(huge))
    else {
        return Err(Error::Io {
            op: "huge pages (hugetlbfs)",
            name: name.to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "a POSIX ring on huge pages lives in a hugetlbfs mount, and /proc/mounts \
                     has none of page size {} KiB: mount one (mount -t hugetlbfs none \
                     /dev/hugepages), or use Backing::Memfd or Backing::SysV",
                    huge / 1024
                ),
            ),
        });
    };
    let path = dir.join(name.trim_start_matches('/'));
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(O_NOFOLLOW)
        .open(&path)
    {
        Ok(file) => Ok((file, Some(path))),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::AlreadyExists {
            name: name.to_string(),
        }),
        Err(source) => Err(Error::Io {
            op: "open (hugetlbfs)",
            name: name.to_string(),
            source,
        }),
    }
}

/// Creates a new segment for `params` with permission bits `mode` (0600 or 0660); fails
/// with `AlreadyExists` if the name is taken.
pub(crate) fn create(
    name: &str,
    params: &RingParams,
    mem: &MemoryOptions,
    mode: u32,
    unlink_on_drop: bool,
) -> Result<PosixSegment, Error> {
    let name = &*canonical_name(name)?;
    // Size it.
    let (len, huge) = object_len(params, mem, name)?;
    let (file, hugetlbfs_path) = create_object(name, huge)?;
    // From here on the name is ours: remove it again if anything fails.
    let placed = (|| {
        // While we make it, we hold the lock on its init byte: an opener that finds it
        // unready and the lock free knows we died (`Error::Abandoned`). Taken at once,
        // but an opener may come between `shm_open` and here: it waits a grace period.
        take_init_lock(&file, name)?;
        fchmod(&file, Mode::from_bits_truncate(mode as mode_t))
            .map_err(|e| io_err("fchmod", name, e))?;
        file.set_len(len as u64).map_err(|source| Error::Io {
            op: "ftruncate",
            name: name.to_string(),
            source,
        })?;
        // The magic next, before anything slow: it tells a file of ours from another
        // program's. Should we die from here on, our file has the magic and the init
        // lock free: `Error::Abandoned`, which `create_or_open` replaces. A file of
        // zeros with the lock free is never replaced (`Error::NotARing`): zeros are
        // what we leave only if we die in the two system calls since `ftruncate`, and
        // what any other program's file may hold. (An empty file, what we leave if we
        // die before `ftruncate`, holds nothing to lose and is replaced.) hugetlbfs
        // files take no `write`: theirs is written by `init`, after the reservation.
        if hugetlbfs_path.is_none() {
            use std::os::unix::fs::FileExt;
            file.write_all_at(&crate::header::MAGIC.to_ne_bytes(), 0)
                .map_err(|source| Error::Io {
                    op: "pwrite (magic)",
                    name: name.to_string(),
                    source,
                })?;
        }
        // Reserve its memory, so that a ring larger than the space free is an error
        // now, not a SIGBUS at the write that reaches past it (`shared.rs`).
        let filesystem = match &hugetlbfs_path {
            Some(path) => path.parent().unwrap_or(path).display().to_string(),
            None => "/dev/shm".to_string(),
        };
        let reserved = reserve_file(file.as_fd(), len, name, &filesystem, huge)?;
        // Place it.
        let map = Mapping::mmap(file.as_fd(), len, mem.populate, name)
            .map_err(|e| on_huge_pages(e, huge))?;
        if !reserved {
            map.reserve_file(file.as_fd(), name, &filesystem)?;
        }
        // Init it.
        init_segment(&map, params, mem, name)?;
        Ok(map)
    })();
    crate::sys::ofd::unlock(file.as_fd(), crate::liveness::init_lock_byte());
    match placed {
        Ok(map) => Ok(PosixSegment {
            map,
            file,
            name: name.to_string(),
            capacity: params.capacity,
            hugetlbfs_path,
            unlink_on_drop,
        }),
        Err(e) => {
            unlink_if_ours(name, hugetlbfs_path.as_deref(), &file);
            Err(e)
        }
    }
}

/// Takes the init lock of the object `file` that this process has just created as
/// `name`. Without it an opener that looks while we initialise the segment would take
/// us for dead (`Error::Abandoned`, and `create_or_open` would remove the ring under
/// us), so a lock that cannot be taken fails the create.
///
/// It is free unless another open file description locked the byte between our
/// `shm_open` and here: a `shmlane rm --stale` sweep that locks whole headers, or a
/// process that is no shmlane creator. An error of `fcntl` itself (`ENOLCK`, a
/// security module) is the other way to fail: `tests/create_and_open.rs` provokes that
/// one with a seccomp filter.
fn take_init_lock(file: &File, name: &str) -> Result<(), Error> {
    let op = "fcntl(F_OFD_SETLK) of the init lock";
    match crate::sys::ofd::try_lock(file.as_fd(), crate::liveness::init_lock_byte()) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::Io {
            op,
            name: name.to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "another process holds a lock on the init lock byte of the segment this \
                 create has just made (a `shmlane rm --stale` sweep, or a process that is \
                 no shmlane creator), so openers could not tell that its creator is alive; \
                 the segment was removed again: try again",
            ),
        }),
        Err(e) => Err(Error::Io {
            op,
            name: name.to_string(),
            source: std::io::Error::new(
                std::io::Error::from(e).kind(),
                format!(
                    "{e}: cannot take the init lock that tells openers the creator of a \
                     segment is alive while it initialises it (open file description \
                     locks); the segment was removed again"
                ),
            ),
        }),
    }
}

/// Opens the object `name`: in /dev/shm, else in a hugetlbfs mount.
fn open_object_file(name: &str) -> Result<(File, Option<PathBuf>), Error> {
    match shm_open(
        name,
        OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => return Ok((File::from(fd), None)),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(io_err("shm_open", name, e)),
    }
    for path in hugetlbfs_paths(name) {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(O_NOFOLLOW)
            .open(&path)
        {
            Ok(file) => return Ok((file, Some(path))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    op: "open (hugetlbfs)",
                    name: name.to_string(),
                    source,
                })
            }
        }
    }
    Err(Error::NotFound {
        name: name.to_string(),
    })
}

/// Opens an existing segment of kind `expected_kind` whose owner and mode `accept`
/// allows, waiting up to `ready_wait` for a creator that is still initialising it.
pub(crate) fn open(
    name: &str,
    expected_kind: u32,
    accept: &OpenOptions,
    ready_wait: Duration,
) -> Result<(PosixSegment, RingParams), Error> {
    let name = &*canonical_name(name)?;
    let (file, hugetlbfs_path) = open_object_file(name)?;
    let st = fstat(&file).map_err(|e| io_err("fstat", name, e))?;
    check_permissions(name, st.st_uid, st.st_mode, accept)?;
    let object = FdObject {
        fd: file.as_fd(),
        name,
        may_grow: true,
    };
    let (map, params) = open_object(&object, name, expected_kind, ready_wait)?;
    Ok((
        PosixSegment {
            map,
            file,
            name: name.to_string(),
            capacity: params.capacity,
            hugetlbfs_path,
            unlink_on_drop: false,
        },
        params,
    ))
}

/// Removes the segment `name` if nobody uses it: we take the lock of every byte of
/// its header at once (so no endpoint holds its slot, no creator its init byte, and
/// none can take one while we look), `unused` agrees on its header (a copy read with
/// `pread`, never through a mapping: the owner may truncate the file at any moment,
/// and a mapping would turn that into a SIGBUS of the sweeping process), and the name
/// still names the file we locked. Returns whether it removed it. An
/// endpoint that opened the segment before and attaches after sees it unlinked and
/// gives up (`setup::still_linked`).
pub(crate) fn remove_if_unused(
    name: &str,
    unused: impl FnOnce(&Header) -> bool,
) -> Result<bool, Error> {
    let name = &*canonical_name(name)?;
    let (file, hugetlbfs_path) = match open_object_file(name) {
        Ok(f) => f,
        Err(Error::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    let fd = file.as_fd();
    match crate::sys::ofd::try_lock_range(fd, 0, HEADER_SIZE as i64) {
        Ok(true) => {}
        Ok(false) => return Ok(false),
        Err(e) => return Err(io_err("fcntl(F_OFD_SETLK)", name, e)),
    }
    let st = fstat(fd).map_err(|e| io_err("fstat", name, e))?;
    if (st.st_size as u64) >= HEADER_SIZE as u64 {
        // A copy: the owner may truncate the file while we read it.
        let mut copy = pread_header(&file, name)?;
        if !unused(copy.header()) {
            return Ok(false);
        }
    }
    let path = hugetlbfs_path
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/dev/shm/{}", &name[1..])));
    match crate::sys::os::stat(&path) {
        Ok(now) if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino) => {}
        _ => return Ok(false), // replaced meanwhile: not the one we looked at
    }
    let removed = match &hugetlbfs_path {
        Some(path) => std::fs::remove_file(path).map_err(|source| Error::Io {
            op: "unlink (hugetlbfs)",
            name: name.to_string(),
            source,
        }),
        None => shm_unlink(name).map_err(|e| io_err("shm_unlink", name, e)),
    };
    // Closing `file` lets the locks go.
    removed.map(|()| true)
}

/// Removes the segment `name` (from /dev/shm, else from a hugetlbfs mount). Endpoints
/// that have it mapped keep working; the name is free for a new `create` at once.
pub(crate) fn remove(name: &str) -> Result<(), Error> {
    let name = &*canonical_name(name)?;
    match shm_unlink(name) {
        Ok(()) => return Ok(()),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(io_err("shm_unlink", name, e)),
    }
    for path in hugetlbfs_paths(name) {
        match std::fs::remove_file(&path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    op: "unlink (hugetlbfs)",
                    name: name.to_string(),
                    source,
                })
            }
        }
    }
    Err(Error::NotFound {
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_sizes_and_paths() {
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("64k"), Some(64 << 10));
        assert_eq!(parse_size("2"), None);
        assert_eq!(parse_size("2X"), None);
        assert_eq!(
            unescape_mount_path("/mnt/huge\\040pages"),
            "/mnt/huge pages"
        );
        assert_eq!(unescape_mount_path("/a\\\\b\\01"), "/a\\\\b\\01");
    }

    /// `remove_if_unused` reads a copy of the header: the owner truncating the file
    /// while the sweeper looks at it cannot raise SIGBUS in the sweeper (it did when
    /// the header was read through a mapping). A forked child does it, so that a
    /// SIGBUS is its death, not the test binary's.
    #[test]
    #[cfg_attr(miri, ignore = "shared memory and fork: Miri isolates the OS")]
    fn a_truncation_during_the_sweep_is_no_sigbus() {
        // Test code, not the library's: it forks and reaps a child with nix and ends it
        // with libc's `_exit` directly (no wrapper in `crate::sys` serves only a test;
        // `.ci/run` lets lines marked `sys-exempt` name them).
        use libc::_exit; // sys-exempt: a test's fork

        use nix::sys::wait::{waitpid, WaitStatus}; // sys-exempt: a test's fork

        use nix::unistd::{fork, ForkResult}; // sys-exempt: a test's fork

        let name = format!("/shmlane-test-truncated-sweep-{}", std::process::id());
        let params = RingParams::new(crate::header::KIND_SPSC, 4096, 1 << 20, 0).unwrap();
        let seg = create(&name, &params, &MemoryOptions::default(), 0o600, false).unwrap();
        // SAFETY: the child runs the sweep step and ends with _exit.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let path = format!("/dev/shm/{}", &name[1..]);
                let r = remove_if_unused(&name, |h| {
                    // The owner truncates it between the sweeper's fstat and its look.
                    let _ = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_len(0));
                    h.magic.load(crate::sync::Ordering::Relaxed) == 0
                });
                // SAFETY: _exit ends the child without unwinding into the harness.
                unsafe { _exit(if matches!(r, Ok(false)) { 0 } else { 1 }) }
            }
            ForkResult::Parent { child } => {
                let status = waitpid(child, None).unwrap();
                drop(seg);
                let _ = shm_unlink(name.as_str());
                assert_eq!(status, WaitStatus::Exited(child, 0), "the sweeping child");
            }
        }
    }
}
