//! Creates that cannot do what a ring needs fail with an error that says why, and
//! leave nothing behind; none of them goes on half-done or aborts the process.
//!
//! - A POSIX create whose init lock cannot be taken (the lock that tells openers the
//!   creator is alive while it initialises the segment). Provoked without hooks in the
//!   library: the creating child installs a seccomp filter that fails every
//!   `fcntl(F_OFD_SETLK)` with `ENOLCK`.
//! - A heap ring too large to allocate: the child lowers its address-space limit
//!   (`RLIMIT_AS`) so that the allocation fails whatever the machine's overcommit
//!   policy, and must get an error, not abort.
//!
//! Each runs in a forked child, so that a filter, a limit or an abort stays there.

// Real processes: Linux only, and not under Miri (no fork).
#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::time::Duration;

use common::{seg_name, shm_path, Outcome, Procs, SegGuard};
use shmlane::{spsc, Error, RingOptions};

const DEADLINE: Duration = Duration::from_secs(30);

/// The `AUDIT_ARCH_*` value of this target, as seccomp reports it.
fn audit_arch() -> Option<u32> {
    if cfg!(target_arch = "x86_64") {
        Some(0xc000_003e) // AUDIT_ARCH_X86_64
    } else if cfg!(target_arch = "aarch64") {
        Some(0xc000_00b7) // AUDIT_ARCH_AARCH64
    } else {
        None
    }
}

/// Makes every later `fcntl(fd, F_OFD_SETLK, ...)` of this process fail with
/// `ENOLCK` (a seccomp filter; `PR_SET_NO_NEW_PRIVS` first, so no privilege is
/// needed). Other system calls, and other `fcntl` commands, go through.
fn fail_ofd_setlk(arch: u32) -> Result<(), String> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let stmt = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k, jf| libc::sock_filter {
        code: JEQ_K,
        jt: 0,
        jf,
        k,
    };
    // struct seccomp_data: nr at 0, arch at 4, args[i] at 16 + 8 i (the command of
    // fcntl is args[1]; its low 32 bits come first on these little-endian targets).
    let filter = [
        stmt(LD_W_ABS, 4),
        jeq(arch, 5), // another ABI: allow
        stmt(LD_W_ABS, 0),
        jeq(libc::SYS_fcntl as u32, 3), // not fcntl: allow
        stmt(LD_W_ABS, 24),
        jeq(libc::F_OFD_SETLK as u32, 1), // another command: allow
        stmt(RET_K, libc::SECCOMP_RET_ERRNO | libc::ENOLCK as u32),
        stmt(RET_K, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1) takes no pointers.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "PR_SET_NO_NEW_PRIVS: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: `prog` points at `filter`, both alive across the call; the kernel copies
    // the program.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(format!("seccomp: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// A create that cannot take its init lock fails, says so, and removes the name: before
/// the fix it went on without the lock, and an opener that looked during the
/// initialisation took the live creator for dead (`Abandoned`; `create_or_open` then
/// removed the ring under it).
#[test]
fn create_fails_when_the_init_lock_cannot_be_taken() {
    let test = "create-init-lock";
    let Some(arch) = audit_arch() else {
        println!("{test}: skipped: the seccomp filter is written for x86_64 and aarch64");
        return;
    };
    let name = seg_name(test);
    let _guard = SegGuard::new(&name);
    let mut procs = Procs::new(test, DEADLINE);
    let child_name = name.clone();
    let creator = procs.spawn("creator, F_OFD_SETLK failing", move || {
        fail_ofd_setlk(arch)?;
        match spsc::create_ring(&child_name, &RingOptions::new(4096)) {
            Ok(()) => Err("created the ring without its init lock".to_string()),
            Err(e @ Error::Io { .. }) => {
                let text = e.to_string();
                if !text.contains("init lock") || !text.contains(&child_name) {
                    return Err(format!("the error does not name the init lock: {text}"));
                }
                if std::path::Path::new(&shm_path(&child_name)).exists() {
                    return Err(format!("the failed create left {child_name} behind"));
                }
                Ok(text)
            }
            Err(e) => Err(format!("expected Error::Io, got {e:?}")),
        }
    });
    println!("{test}: {}", procs.wait_ok(creator));
}

/// A heap ring that cannot be allocated is an error of `channel`, not an abort.
#[test]
fn heap_ring_too_large_to_allocate_is_an_error() {
    let test = "create-heap-alloc";
    let mut procs = Procs::new(test, DEADLINE);
    let child = procs.spawn("heap channel of MAX_CAPACITY", || {
        // 64 GiB of address space: more than this process uses, far less than the
        // 1 TiB ring (an existing mapping over the limit stays; new ones fail).
        let limit = 64 << 30;
        let rl = libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        // SAFETY: `rl` is a valid rlimit for setrlimit to read.
        if unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) } != 0 {
            return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
        }
        match spsc::channel(&RingOptions::new(shmlane::MAX_CAPACITY)) {
            Ok(_) => Err("allocated a 1 TiB heap ring under a 64 GiB limit".to_string()),
            Err(e) => {
                let text = e.to_string();
                if !text.contains("heap") {
                    return Err(format!("the error does not say what failed: {text}"));
                }
                Ok(text)
            }
        }
    });
    let r = procs.wait(child);
    assert_eq!(r.outcome, Outcome::Exited(0), "{r}");
    println!("{test}: {}", r.report);
}
