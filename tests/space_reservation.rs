//! A ring's memory is reserved when it is created: a ring larger than the free space of
//! its filesystem is an error at creation (`Error::NoSpace`, naming the filesystem, the
//! size asked and the space free), never a SIGBUS at the first write past the space.
//!
//! Each test runs in a forked child that makes a private mount namespace and mounts a
//! small tmpfs over /dev/shm there, so nothing outside the child sees it. That needs
//! root (CAP_SYS_ADMIN): run as anyone else, or where `unshare` is refused (a
//! container without the capability), the tests print why they skip.

// Real processes, mounts and shared memory: Linux only, and not under Miri (no fork).
#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::ffi::CString;
use std::time::Duration;

use common::{Outcome, Procs};
use shmlane::{spsc, Error, RingOptions};

const DEADLINE: Duration = Duration::from_secs(60);
/// The size of the tmpfs mounted over /dev/shm.
const TMPFS: u64 = 8 << 20;

/// What a child reports when it cannot make its namespace: the test then skips.
const SKIP: &str = "skip: ";

/// Makes this (forked, single-threaded) process's mounts private and mounts a tmpfs of
/// `TMPFS` bytes over /dev/shm. `Err` with the reason where that is not allowed.
fn small_dev_shm() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("not root: mounting a small tmpfs needs CAP_SYS_ADMIN".into());
    }
    // SAFETY: unshare takes no pointers; this child has one thread.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNS): {}",
            std::io::Error::last_os_error()
        ));
    }
    let root = CString::new("/").unwrap();
    // SAFETY: NUL-terminated strings that outlive the call, null where unused.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(format!(
            "mount --make-rprivate /: {}",
            std::io::Error::last_os_error()
        ));
    }
    let (src, dir, fstype) = (
        CString::new("tmpfs").unwrap(),
        CString::new("/dev/shm").unwrap(),
        CString::new("tmpfs").unwrap(),
    );
    let data = CString::new(format!("size={TMPFS},mode=1777")).unwrap();
    // SAFETY: as above.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            dir.as_ptr(),
            fstype.as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(format!(
            "mount -t tmpfs /dev/shm: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Runs `body` in a child with a small /dev/shm; fails the test if the child fails or
/// dies (a SIGBUS is what this file is about), prints the reason if it skipped.
fn in_small_dev_shm(test: &str, body: impl FnOnce() -> Result<String, String>) {
    // One at a time: a child forked while another test's thread holds a lock (the
    // environment lock of a spawn, say) could never take it.
    let _serial = common::heavy();
    let mut procs = Procs::new(test, DEADLINE);
    let child = procs.spawn(test, || match small_dev_shm() {
        Ok(()) => body(),
        Err(why) => Ok(format!("{SKIP}{why}")),
    });
    let result = procs.wait(child);
    assert_eq!(
        result.outcome,
        Outcome::Exited(0),
        "{test}: the child failed (a SIGBUS means the ring was not reserved): {result}"
    );
    if let Some(why) = result.report.strip_prefix(SKIP) {
        eprintln!("{test}: skipped: {why}");
    }
}

/// Files left in /dev/shm (the child's small one).
fn dev_shm_entries() -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_ring_larger_than_its_tmpfs_is_an_error_at_creation() {
    in_small_dev_shm("reserve_posix", || {
        let name = format!("/shmlane-test-reserve-{}", std::process::id());
        let big = 64 << 20;
        match spsc::Producer::create(&name, &RingOptions::new(big)) {
            Err(Error::NoSpace {
                name: n,
                filesystem,
                asked,
                free,
                ..
            }) => {
                if n != name || filesystem != "/dev/shm" || asked < big as u64 {
                    return Err(format!(
                        "NoSpace with the wrong context: {n} {filesystem} asked {asked}"
                    ));
                }
                match free {
                    Some(free) if free <= TMPFS => {}
                    other => return Err(format!("free space reported as {other:?}")),
                }
            }
            Err(e) => return Err(format!("create of {big} bytes failed otherwise: {e}")),
            Ok(mut tx) => {
                // What a user saw: writing into the ring dies once the tmpfs is full.
                let chunk = vec![7u8; 64 << 10];
                for _ in 0..(big / chunk.len()) {
                    if tx.try_send(&chunk).is_err() {
                        break;
                    }
                }
                return Err(format!(
                    "create of a {big}-byte ring on an {TMPFS}-byte tmpfs returned Ok"
                ));
            }
        }
        // The failed create left nothing behind.
        let left = dev_shm_entries();
        if !left.is_empty() {
            return Err(format!("the failed create left {left:?} in /dev/shm"));
        }
        // The message says what to fix.
        let e = spsc::Producer::create(&name, &RingOptions::new(big))
            .err()
            .unwrap();
        let msg = e.to_string();
        for want in ["/dev/shm", &format!("{}", big + 4096), "free"] {
            if !msg.contains(want) {
                return Err(format!("the message does not say {want:?}: {msg}"));
            }
        }

        // A ring that fits is made, and carries more than the tmpfs holds.
        let small = 1 << 20;
        let mut tx = spsc::Producer::create(&name, &RingOptions::new(small))
            .map_err(|e| format!("create of a ring that fits: {e}"))?;
        let mut rx = spsc::Consumer::open(&name).map_err(|e| format!("open: {e}"))?;
        let mut buf = Vec::new();
        let mut carried = 0u64;
        let mut msg = vec![0u8; 60 << 10];
        for i in 0u64.. {
            if carried >= 2 * TMPFS {
                break;
            }
            msg.iter_mut()
                .enumerate()
                .for_each(|(j, b)| *b = (i as usize + j) as u8);
            tx.send(&msg).map_err(|e| format!("send {i}: {e}"))?;
            rx.recv(&mut buf).map_err(|e| format!("recv {i}: {e}"))?;
            if buf != msg {
                return Err(format!("message {i} came back different"));
            }
            carried += msg.len() as u64;
        }
        drop((tx, rx));
        let _ = shmlane::remove(&name);
        Ok(format!("carried {carried} bytes"))
    });
}

#[test]
fn a_memfd_ring_does_not_live_in_dev_shm() {
    // A memfd is a file of the kernel's internal tmpfs mount, which has no size limit:
    // the size of /dev/shm does not bound it (memory and memory-cgroup limits do, and
    // the reservation turns those into an error at creation too).
    in_small_dev_shm("reserve_memfd", || {
        let big = 64 << 20;
        let (mut tx, fd) = spsc::Producer::create_memfd(&RingOptions::new(big))
            .map_err(|e| format!("create_memfd of {big} bytes: {e}"))?;
        let mut rx = spsc::Consumer::open_fd(fd).map_err(|e| format!("open_fd: {e}"))?;
        let msg = vec![5u8; 1 << 20];
        let mut buf = Vec::new();
        for i in 0..(2 * big / msg.len()) {
            tx.send(&msg).map_err(|e| format!("send {i}: {e}"))?;
            rx.recv(&mut buf).map_err(|e| format!("recv {i}: {e}"))?;
        }
        Ok("a 64 MiB memfd ring beside an 8 MiB /dev/shm".into())
    });
}

#[test]
fn memfd_and_sysv_rings_larger_than_memory_are_refused() {
    // No filesystem limits them: the memory available does. A 1 TiB ring is refused
    // at creation (before, it was made, and the writer was OOM-killed partway).
    let huge = 1usize << 40;
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemAvailable:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map(|kb| kb * 1024);
    if available.is_none_or(|a| a >= huge as u64 / 2) {
        eprintln!("skipped: this machine has about 1 TiB of memory available, or no MemAvailable");
        return;
    }
    match spsc::Producer::create_memfd(&RingOptions::new(huge)) {
        Err(Error::NoSpace { asked, free, .. }) => {
            assert!(asked > huge as u64 && free.is_some_and(|f| f < asked))
        }
        Err(e) => panic!("a 1 TiB memfd ring failed otherwise: {e}"),
        Ok(_) => {
            panic!("a 1 TiB memfd ring was made on a machine with {available:?} bytes available")
        }
    }
    let key = common::backings::sysv_key("reserve-sysv");
    let _guard = common::backings::SysVGuard::new(key);
    match spsc::Producer::create_sysv(key, &RingOptions::new(huge)) {
        Err(Error::NoSpace { asked, .. }) => assert!(asked > huge as u64),
        Err(e) => panic!("a 1 TiB SysV ring failed otherwise: {e}"),
        Ok(_) => {
            panic!("a 1 TiB SysV ring was made on a machine with {available:?} bytes available")
        }
    }
}
