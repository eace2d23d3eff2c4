//! Who may own a segment and what its mode may be, on every backing: segments are
//! created 0600 (0660 with `group_access`) whatever the umask; an endpoint refuses a
//! segment with a wider mode, or owned by another user, with `Error::Permissions`
//! unless it accepts it with `OpenOptions`; `inspect` still describes such segments.
//!
//! The owner checks need a segment of another user: run as root, the test gives its
//! own segments to `nobody` (uid 65534) with `fchown`/`IPC_SET`; run as anyone else,
//! it prints why it skips them.

// Real processes and shared memory: Linux only, and not under Miri (no fork).
#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::fs::{File, Permissions};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use common::backings::{sysv_key, SysVGuard};
use common::{seg_name, shm_path, Procs, SegGuard};
use shmlane::{mpmc, spsc, Error, OpenOptions, RingOptions};

const DEADLINE: Duration = Duration::from_secs(30);
/// The uid the owner tests give segments to (`nobody`).
const OTHER_UID: u32 = 65534;

fn opts() -> RingOptions {
    RingOptions::new(4096)
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The permission bits of the POSIX segment `name`.
fn posix_mode(name: &str) -> u32 {
    std::fs::metadata(shm_path(name)).unwrap().mode() & 0o7777
}

fn chmod_posix(name: &str, mode: u32) {
    std::fs::set_permissions(shm_path(name), Permissions::from_mode(mode)).unwrap();
}

/// `shm_perm` of the SysV segment with `key`.
fn sysv_perm(key: i32) -> (i32, libc::ipc_perm) {
    // SAFETY: shmget takes no pointers; size 0 and no IPC_CREAT only look it up.
    let id = unsafe { libc::shmget(key, 0, 0) };
    assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
    let mut ds = std::mem::MaybeUninit::<libc::shmid_ds>::zeroed();
    // SAFETY: `ds` is a writable shmid_ds for IPC_STAT to fill.
    let r = unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) };
    assert_eq!(r, 0, "IPC_STAT: {}", std::io::Error::last_os_error());
    // SAFETY: IPC_STAT filled it.
    (id, unsafe { ds.assume_init() }.shm_perm)
}

fn sysv_mode(key: i32) -> u32 {
    u32::from(sysv_perm(key).1.mode) & 0o777
}

/// Sets the SysV segment's owner and mode (`IPC_SET`, which takes both).
fn sysv_set(key: i32, uid: u32, mode: u32) {
    let (id, perm) = sysv_perm(key);
    // SAFETY: all-zero is a valid shmid_ds; IPC_SET reads only uid, gid and mode.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    ds.shm_perm.uid = uid;
    ds.shm_perm.gid = perm.gid;
    ds.shm_perm.mode = mode as _;
    // SAFETY: `ds` is a valid shmid_ds for IPC_SET to read.
    let r = unsafe { libc::shmctl(id, libc::IPC_SET, &mut ds) };
    assert_eq!(r, 0, "IPC_SET: {}", std::io::Error::last_os_error());
}

fn fd_mode(fd: &OwnedFd) -> u32 {
    nix::sys::stat::fstat(fd).unwrap().st_mode & 0o7777
}

fn fchmod(fd: &OwnedFd, mode: u32) {
    File::from(fd.try_clone().unwrap())
        .set_permissions(Permissions::from_mode(mode))
        .unwrap();
}

/// Expects `r` to be `Error::Permissions` with that mode and a message that names
/// `option`; returns the message.
fn refused<T>(what: &str, r: Result<T, Error>, mode: u32, option: &str) -> String {
    match r {
        Err(e @ Error::Permissions { mode: m, .. }) if m == mode => {
            let text = e.to_string();
            assert!(
                text.contains(option),
                "{what}: the message does not name {option}: {text}"
            );
            println!("{what}: {text}");
            text
        }
        Err(e) => panic!("{what}: expected Error::Permissions (mode {mode:o}), got {e:?}"),
        Ok(_) => panic!("{what}: opened, expected Error::Permissions (mode {mode:o})"),
    }
}

/// Each creation mode, under umasks that would narrow or widen it: the mode is 0600,
/// or 0660 with `group_access`, on every backing. Each umask in its own child (the
/// umask is per process).
#[test]
fn creation_mode_ignores_the_umask() {
    let test = "perm-umask";
    let mut procs = Procs::new(test, DEADLINE);
    for umask in [0o077, 0o000, 0o027, 0o777] {
        procs.spawn(&format!("umask {umask:03o}"), move || {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
            let mut out = String::new();
            for group in [false, true] {
                let want = if group { 0o660 } else { 0o600 };
                let o = opts().group_access(group);
                // POSIX.
                let name = seg_name(&format!("{test}-{umask:o}-{group}"));
                let _guard = SegGuard::new(&name);
                spsc::create_ring(&name, &o).map_err(|e| e.to_string())?;
                let posix = posix_mode(&name);
                // SysV.
                let key = sysv_key(&format!("{test}-{umask:o}-{group}"));
                let _sysv = SysVGuard::new(key);
                mpmc::create_ring_sysv(key, &o).map_err(|e| e.to_string())?;
                let sysv = sysv_mode(key);
                // memfd.
                let fd = spsc::create_ring_memfd(&o).map_err(|e| e.to_string())?;
                let memfd = fd_mode(&fd);
                if (posix, sysv, memfd) != (want, want, want) {
                    return Err(format!(
                        "group_access({group}): posix {posix:o}, sysv {sysv:o}, memfd \
                         {memfd:o}, expected {want:o}"
                    ));
                }
                // And the creator's own kind of peer opens it.
                let accept = OpenOptions::new().group_access(group);
                drop(spsc::Consumer::open_with(&name, &accept).map_err(|e| e.to_string())?);
                drop(mpmc::Consumer::open_sysv_with(key, &accept).map_err(|e| e.to_string())?);
                drop(spsc::Consumer::open_fd_with(fd, &accept).map_err(|e| e.to_string())?);
                out += &format!("group_access({group}): {want:o}; ");
            }
            Ok(out)
        });
    }
    for r in procs.wait_all_ok() {
        println!("{test}: {r}");
    }
}

/// A POSIX segment whose mode was widened is refused by every open, with a message
/// that says what to accept, and opens with that opt-in; `create_or_open` follows its
/// `RingOptions`.
#[test]
fn posix_wide_mode_is_refused_unless_accepted() {
    let name = seg_name("perm-posix-mode");
    let _guard = SegGuard::new(&name);
    spsc::create_ring(&name, &opts()).unwrap();
    assert_eq!(posix_mode(&name), 0o600);
    drop(spsc::Consumer::open(&name).unwrap());

    // Group bits: group_access accepts them, on either side.
    chmod_posix(&name, 0o660);
    refused(
        "0660, open",
        spsc::Consumer::open(&name),
        0o660,
        "OpenOptions::group_access(true)",
    );
    refused(
        "0660, create_or_open",
        spsc::Producer::create_or_open(&name, &opts()),
        0o660,
        "group_access(true)",
    );
    drop(spsc::Consumer::open_with(&name, &OpenOptions::new().group_access(true)).unwrap());
    drop(spsc::Producer::create_or_open(&name, &opts().group_access(true)).unwrap());
    drop(
        spsc::Producer::create_or_open(
            &name,
            &opts().open_options(OpenOptions::new().group_access(true)),
        )
        .unwrap(),
    );

    // Bits for every user: only accept_mode takes them.
    for mode in [0o644, 0o666, 0o604] {
        chmod_posix(&name, mode);
        let option = format!("OpenOptions::accept_mode({mode:#o})");
        let text = refused("open", spsc::Producer::open(&name), mode, &option);
        assert!(text.contains("every user"), "{text}");
        refused(
            "open_with(group_access)",
            spsc::Producer::open_with(&name, &OpenOptions::new().group_access(true)),
            mode,
            &option,
        );
        refused(
            "create_or_open(group_access)",
            spsc::Consumer::create_or_open(&name, &opts().group_access(true)),
            mode,
            &option,
        );
        drop(spsc::Producer::open_with(&name, &OpenOptions::new().accept_mode(mode)).unwrap());
        drop(spsc::Producer::open_with(&name, &OpenOptions::new().accept_mode(0o777)).unwrap());
        drop(
            spsc::Consumer::create_or_open(
                &name,
                &opts().open_options(OpenOptions::new().accept_mode(mode)),
            )
            .unwrap(),
        );
    }

    // MPMC endpoints get the same constructors.
    chmod_posix(&name, 0o666);
    let mpmc_name = seg_name("perm-posix-mode-mpmc");
    let _mpmc_guard = SegGuard::new(&mpmc_name);
    mpmc::create_ring(&mpmc_name, &opts()).unwrap();
    chmod_posix(&mpmc_name, 0o666);
    refused(
        "mpmc open",
        mpmc::Consumer::open(&mpmc_name),
        0o666,
        "accept_mode(0o666)",
    );
    drop(mpmc::Consumer::open_with(&mpmc_name, &OpenOptions::new().accept_mode(0o666)).unwrap());

    // Inspection is not opening for use: it describes the segment as it is.
    let info = shmlane::inspect::inspect(&name).unwrap();
    assert_eq!(info.mode, 0o666);
    assert!(info.is_valid(), "{:?}", info.problems);
}

/// SysV: the mode `shmctl(IPC_SET)` gives a segment is checked the same way.
#[test]
fn sysv_wide_mode_is_refused_unless_accepted() {
    let key = sysv_key("perm-sysv-mode");
    let _guard = SysVGuard::new(key);
    spsc::create_ring_sysv(key, &opts()).unwrap();
    assert_eq!(sysv_mode(key), 0o600);
    let me = nix::unistd::geteuid().as_raw();
    drop(spsc::Consumer::open_sysv(key).unwrap());
    sysv_set(key, me, 0o660);
    refused(
        "sysv 0660",
        spsc::Consumer::open_sysv(key),
        0o660,
        "group_access(true)",
    );
    drop(spsc::Consumer::open_sysv_with(key, &OpenOptions::new().group_access(true)).unwrap());
    drop(spsc::Producer::create_or_open_sysv(key, &opts().group_access(true)).unwrap());
    sysv_set(key, me, 0o666);
    refused(
        "sysv 0666",
        spsc::Producer::open_sysv(key),
        0o666,
        "accept_mode(0o666)",
    );
    refused(
        "sysv 0666, create_or_open",
        spsc::Producer::create_or_open_sysv(key, &opts().group_access(true)),
        0o666,
        "accept_mode(0o666)",
    );
    drop(spsc::Producer::open_sysv_with(key, &OpenOptions::new().accept_mode(0o666)).unwrap());
    let info = shmlane::inspect::inspect(&format!("sysv:{:#010x}", key as u32)).unwrap();
    assert_eq!(info.mode, 0o666);
}

/// memfd: a memfd ring is 0600; one `fchmod`ed wider is refused unless accepted.
#[test]
fn memfd_wide_mode_is_refused_unless_accepted() {
    let fd = spsc::create_ring_memfd(&opts()).unwrap();
    assert_eq!(fd_mode(&fd), 0o600);
    drop(spsc::Consumer::open_fd(fd.try_clone().unwrap()).unwrap());
    fchmod(&fd, 0o666);
    refused(
        "memfd 0666",
        spsc::Consumer::open_fd(fd.try_clone().unwrap()),
        0o666,
        "accept_mode(0o666)",
    );
    drop(
        spsc::Consumer::open_fd_with(
            fd.try_clone().unwrap(),
            &OpenOptions::new().accept_mode(0o666),
        )
        .unwrap(),
    );
    let (tx, fd) = mpmc::Producer::create_memfd(&opts().group_access(true)).unwrap();
    assert_eq!(fd_mode(&fd), 0o660);
    refused(
        "mpmc memfd 0660",
        mpmc::Consumer::open_fd(fd.try_clone().unwrap()),
        0o660,
        "group_access(true)",
    );
    drop(mpmc::Consumer::open_fd_with(fd, &OpenOptions::new().group_access(true)).unwrap());
    drop(tx);
}

/// A segment owned by another user is refused, root included, unless the opener
/// accepts a foreign owner; on every backing. Needs root to give a segment away.
#[test]
fn foreign_owner_is_refused_unless_accepted() {
    if !is_root() {
        println!(
            "skipped: giving a segment to another user (fchown, IPC_SET) needs root, and \
             this test runs as uid {}",
            nix::unistd::geteuid()
        );
        return;
    }
    let owner = "OpenOptions::foreign_owner(true)";
    // POSIX, in a child, so that every open is by a process that did not create it.
    let name = seg_name("perm-owner");
    let _guard = SegGuard::new(&name);
    spsc::create_ring(&name, &opts()).unwrap();
    std::os::unix::fs::chown(shm_path(&name), Some(OTHER_UID), None).unwrap();
    let key = sysv_key("perm-owner");
    let _sysv = SysVGuard::new(key);
    spsc::create_ring_sysv(key, &opts()).unwrap();
    sysv_set(key, OTHER_UID, 0o600);
    let fd = spsc::create_ring_memfd(&opts()).unwrap();
    std::os::unix::fs::fchown(&fd, Some(OTHER_UID), None).unwrap();

    let mut procs = Procs::new("perm-owner", DEADLINE);
    let child_fd = fd.try_clone().unwrap();
    procs.spawn("opener (root)", move || {
        let text = refused("posix", spsc::Consumer::open(&name), 0o600, owner);
        assert!(text.contains(&format!("uid {OTHER_UID}")), "{text}");
        refused(
            "posix, create_or_open",
            spsc::Consumer::create_or_open(&name, &opts().group_access(true)),
            0o600,
            owner,
        );
        refused("sysv", spsc::Consumer::open_sysv(key), 0o600, owner);
        refused(
            "memfd",
            spsc::Consumer::open_fd(child_fd.try_clone().unwrap()),
            0o600,
            owner,
        );
        let foreign = OpenOptions::new().foreign_owner(true);
        drop(spsc::Consumer::open_with(&name, &foreign).map_err(|e| e.to_string())?);
        drop(
            spsc::Consumer::create_or_open(&name, &opts().open_options(foreign))
                .map_err(|e| e.to_string())?,
        );
        drop(spsc::Consumer::open_sysv_with(key, &foreign).map_err(|e| e.to_string())?);
        drop(spsc::Consumer::open_fd_with(child_fd, &foreign).map_err(|e| e.to_string())?);
        // Both at once: another owner and a wider mode need both opt-ins.
        chmod_posix(&name, 0o644);
        refused(
            "posix 0644, foreign owner accepted",
            spsc::Consumer::open_with(&name, &foreign),
            0o644,
            "accept_mode(0o644)",
        );
        drop(
            spsc::Consumer::open_with(&name, &foreign.accept_mode(0o644))
                .map_err(|e| e.to_string())?,
        );
        let info = shmlane::inspect::inspect(&name).map_err(|e| e.to_string())?;
        if (info.owner_uid, info.mode) != (OTHER_UID, 0o644) {
            return Err(format!("inspect: {info:?}"));
        }
        Ok(String::new())
    });
    procs.wait_all_ok();
    drop(fd);
}
