//! Claim: **by default only processes of the same user can have written into a ring one
//! opens**. Segments are created 0600 (0660 with `group_access`) whatever the umask, on
//! every backing; an endpoint refuses a segment with a wider mode, or owned by another
//! user, with `Error::Permissions` unless it accepts it with `OpenOptions`; a SysV
//! segment whose *creator* is another user (or group, when its mode grants group
//! access) is refused too, whoever owns it now; `inspect` still describes such
//! segments.
//!
//! The owner checks need a segment of another user: run as root, the test gives its
//! own segments to `nobody` (uid 65534) with `fchown`/`IPC_SET`; run as anyone else,
//! it prints why it skips them. [`sysv_creator`]: who made a SysV segment.

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

mod sysv_creator {
    //! Who made a SysV segment, not only who owns it now: `shmctl(IPC_SET)` lets a segment's
    //! creator give it to another owner (uid, gid) while the creator (`shm_perm.cuid`, `cgid`)
    //! keeps full access. An open refuses a segment created by another user (and, when its
    //! mode grants group access, by a group the opener is not in) unless it accepts foreign
    //! owners. The creators run in children that switch to other uids: these tests need root
    //! (they print why they skip otherwise).

    use crate::common::backings::{sysv_key, SysVGuard};
    use crate::common::Procs;
    use nix::unistd::{Gid, Uid};
    use shmlane::{spsc, Error, OpenOptions, RingOptions};
    use std::time::Duration;

    const DEADLINE: Duration = Duration::from_secs(30);

    /// The user that plants a ring for another (the attacker of the SysV tests).
    const ATTACKER: u32 = 1001;

    /// A user that opens a ring under a key it expects its own (the victim, when it is not
    /// root).
    const VICTIM: u32 = 1002;

    fn opts() -> RingOptions {
        RingOptions::new(4096)
    }

    /// Whether the owner tests can run: they switch uids, which needs root.
    fn root_or_skip(test: &str) -> bool {
        let euid = nix::unistd::geteuid();
        if !euid.is_root() {
            println!(
                "{test}: skipped: the test switches to other uids (setuid), which needs root, \
             and it runs as uid {euid}"
            );
        }
        euid.is_root()
    }

    /// Makes this (forked) process user `uid`, group `gid`, with no supplementary groups.
    fn become_user(uid: u32, gid: u32) -> Result<(), String> {
        nix::unistd::setgroups(&[]).map_err(|e| format!("setgroups: {e}"))?;
        nix::unistd::setgid(Gid::from_raw(gid)).map_err(|e| format!("setgid({gid}): {e}"))?;
        nix::unistd::setuid(Uid::from_raw(uid)).map_err(|e| format!("setuid({uid}): {e}"))?;
        Ok(())
    }

    /// Gives the SysV segment of `key` to `uid`:`gid` with `mode` (`IPC_SET`, as its
    /// creator may, whoever owns it).
    fn hand_over(key: i32, uid: u32, gid: u32, mode: u32) -> Result<(), String> {
        // SAFETY: shmget takes no pointers; size 0 and no IPC_CREAT only look it up.
        let id = unsafe { libc::shmget(key, 0, 0) };
        if id < 0 {
            return Err(format!("shmget: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: all-zero is a valid shmid_ds; IPC_SET reads only uid, gid and mode.
        let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
        ds.shm_perm.uid = uid;
        ds.shm_perm.gid = gid;
        ds.shm_perm.mode = mode as _;
        // SAFETY: `ds` is a valid shmid_ds for IPC_SET to read.
        if unsafe { libc::shmctl(id, libc::IPC_SET, &mut ds) } != 0 {
            return Err(format!("IPC_SET: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// `shm_perm` of the segment of `key`: (uid, gid, cuid, cgid, mode).
    fn perm(key: i32) -> (u32, u32, u32, u32, u32) {
        // SAFETY: as in `hand_over`.
        let id = unsafe { libc::shmget(key, 0, 0) };
        assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
        let mut ds = std::mem::MaybeUninit::<libc::shmid_ds>::zeroed();
        // SAFETY: `ds` is a writable shmid_ds for IPC_STAT to fill.
        let r = unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) };
        assert_eq!(r, 0, "IPC_STAT: {}", std::io::Error::last_os_error());
        // SAFETY: IPC_STAT filled it.
        let p = unsafe { ds.assume_init() }.shm_perm;
        (p.uid, p.gid, p.cuid, p.cgid, u32::from(p.mode) & 0o777)
    }

    /// Expects `r` to be `Error::Permissions` whose message names each of `words`.
    fn refused<T>(what: &str, r: Result<T, Error>, words: &[&str]) -> Result<String, String> {
        match r {
            Err(e @ Error::Permissions { .. }) => {
                let text = e.to_string();
                for w in words {
                    if !text.contains(w) {
                        return Err(format!("{what}: the message does not name {w:?}: {text}"));
                    }
                }
                Ok(text)
            }
            Err(e) => Err(format!("{what}: expected Error::Permissions, got {e:?}")),
            Ok(_) => Err(format!("{what}: opened, expected Error::Permissions")),
        }
    }

    /// A user plants a SysV ring under the key root will use and hands it to root with
    /// `IPC_SET`: root's open refuses it, naming the creator uid and the opt-in, and
    /// opens it only with `foreign_owner(true)`.
    #[test]
    fn sysv_ring_handed_to_root_is_refused() {
        let test = "own-sysv-root";
        if !root_or_skip(test) {
            return;
        }
        let key = sysv_key(test);
        let _guard = SysVGuard::new(key);
        let mut procs = Procs::new(test, DEADLINE);
        let attacker = procs.spawn("attacker (uid 1001)", move || {
            become_user(ATTACKER, ATTACKER)?;
            spsc::create_ring_sysv(key, &opts()).map_err(|e| e.to_string())?;
            // The creator may give its segment to anyone, root included.
            hand_over(key, 0, 0, 0o600)?;
            Ok(String::new())
        });
        procs.wait_ok(attacker);
        assert_eq!(perm(key), (0, 0, ATTACKER, ATTACKER, 0o600), "the handover");

        let text = refused(
            "root opens the ring planted by uid 1001",
            spsc::Consumer::open_sysv(key),
            &[
                "creator uid 1001",
                "shm_perm.cuid",
                "OpenOptions::foreign_owner(true)",
            ],
        )
        .unwrap();
        println!("{test}: {text}");
        refused(
            "root's create_or_open",
            spsc::Consumer::create_or_open_sysv(key, &opts()),
            &["shm_perm.cuid"],
        )
        .unwrap();
        // Accepted explicitly, it opens.
        let foreign = OpenOptions::new().foreign_owner(true);
        drop(spsc::Consumer::open_sysv_with(key, &foreign).unwrap());
    }

    /// The same between two ordinary users: uid 1001 plants, uid 1002 opens. And the
    /// group: a ring its creator shares with its group (0660) is refused when the creator
    /// group (`cgid`) is not one of the opener's groups, even when the creator is the
    /// opener's own uid; a 0600 ring grants the group nothing, so its `cgid` is not
    /// checked.
    #[test]
    fn sysv_creator_must_be_the_opener() {
        let test = "own-sysv-users";
        if !root_or_skip(test) {
            return;
        }
        let key = sysv_key(test);
        let group_key = sysv_key(&format!("{test}-group"));
        let private_key = sysv_key(&format!("{test}-private"));
        let _guards = (
            SysVGuard::new(key),
            SysVGuard::new(group_key),
            SysVGuard::new(private_key),
        );
        let mut procs = Procs::new(test, DEADLINE);
        let attacker = procs.spawn("attacker (uid 1001)", move || {
            become_user(ATTACKER, ATTACKER)?;
            spsc::create_ring_sysv(key, &opts()).map_err(|e| e.to_string())?;
            hand_over(key, VICTIM, VICTIM, 0o600)?;
            Ok(String::new())
        });
        procs.wait_ok(attacker);
        // The victim's own uid, but running with the attacker's group as its egid (a
        // setgid program, say): the group that 0660 lets in is not the victim's.
        let other_group = procs.spawn("uid 1002, gid 1001", move || {
            become_user(VICTIM, ATTACKER)?;
            spsc::create_ring_sysv(group_key, &opts().group_access(true))
                .map_err(|e| e.to_string())?;
            spsc::create_ring_sysv(private_key, &opts()).map_err(|e| e.to_string())?;
            Ok(String::new())
        });
        procs.wait_ok(other_group);
        assert_eq!(perm(key), (VICTIM, VICTIM, ATTACKER, ATTACKER, 0o600));
        assert_eq!(perm(group_key), (VICTIM, ATTACKER, VICTIM, ATTACKER, 0o660));

        let victim = procs.spawn("victim (uid 1002)", move || {
            become_user(VICTIM, VICTIM)?;
            let mut out = refused(
                "uid 1002 opens the ring planted by uid 1001",
                spsc::Consumer::open_sysv(key),
                &["creator uid 1001", "shm_perm.cuid", "foreign_owner(true)"],
            )?;
            let group = OpenOptions::new().group_access(true);
            out += "\n";
            out += &refused(
                "uid 1002 opens its own 0660 ring made with gid 1001",
                spsc::Producer::open_sysv_with(group_key, &group),
                &["creator gid 1001", "shm_perm.cgid", "foreign_owner(true)"],
            )?;
            // No group access, nothing to check of the group.
            drop(spsc::Producer::open_sysv(private_key).map_err(|e| e.to_string())?);
            // Accepted explicitly, both open.
            let foreign = OpenOptions::new().foreign_owner(true);
            drop(spsc::Consumer::open_sysv_with(key, &foreign).map_err(|e| e.to_string())?);
            drop(
                spsc::Producer::open_sysv_with(group_key, &group.foreign_owner(true))
                    .map_err(|e| e.to_string())?,
            );
            Ok(out)
        });
        println!("{test}: {}", procs.wait_ok(victim));
    }
}
