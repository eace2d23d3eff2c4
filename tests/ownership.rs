//! Who made a segment, not only who owns it now, and which file a name names.
//!
//! - SysV: `shmctl(IPC_SET)` lets a segment's creator give it to another owner (uid,
//!   gid) while the creator (`shm_perm.cuid`, `cgid`) keeps full access. An open
//!   refuses a segment created by another user (and, when its mode grants group access,
//!   by a group the opener is not in) unless it accepts foreign owners. The creators run
//!   in children that switch to other uids: the owner tests need root (they print why
//!   they skip otherwise).
//! - `unlink_on_drop`: an endpoint removes its ring's name only while the name still
//!   names its own file, not a ring another process made under the same name since.

// Real processes and shared memory: Linux only, and not under Miri (no fork).
#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::time::Duration;

use common::backings::{sysv_key, SysVGuard};
use common::{seg_name, shm_path, Procs, SegGuard};
use nix::unistd::{Gid, Uid};
use shmlane::{spsc, Error, OpenOptions, RingOptions};

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
        spsc::create_ring_sysv(group_key, &opts().group_access(true)).map_err(|e| e.to_string())?;
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

/// Ring A removes its name when dropped; its name was removed by hand and another
/// process made ring B under it: dropping A leaves B alone.
#[test]
fn unlink_on_drop_spares_a_newer_ring_of_the_same_name() {
    let test = "own-unlink";
    let name = seg_name(test);
    let _guard = SegGuard::new(&name);
    let a = spsc::Producer::create(&name, &opts().unlink_on_drop(true)).unwrap();
    shmlane::remove(&name).unwrap();
    let mut procs = Procs::new(test, DEADLINE);
    let child_name = name.clone();
    let b = procs.spawn("creator of B", move || {
        spsc::create_ring(&child_name, &opts()).map_err(|e| e.to_string())?;
        Ok(String::new())
    });
    procs.wait_ok(b);
    drop(a);
    assert!(
        std::path::Path::new(&shm_path(&name)).exists(),
        "dropping ring A removed the name of ring B"
    );
    let mut tx = spsc::Producer::open(&name).unwrap();
    let mut rx = spsc::Consumer::open(&name).unwrap();
    tx.send(b"still B").unwrap();
    let mut buf = Vec::new();
    rx.try_recv(&mut buf).unwrap();
    assert_eq!(buf, b"still B");

    // And a ring whose name is still its own is removed as asked.
    drop((tx, rx));
    shmlane::remove(&name).unwrap();
    let c = spsc::Producer::create(&name, &opts().unlink_on_drop(true)).unwrap();
    drop(c);
    assert!(
        !std::path::Path::new(&shm_path(&name)).exists(),
        "unlink_on_drop left its own name behind"
    );
}
