//! The sender makes no futex system call per message while the receiver spins.
//!
//! The producer child installs a seccomp filter that kills the process (SIGSYS) on
//! any `futex` or `futex_waitv` system call, then sends 200,000 messages with
//! `Wait::Spin` to a consumer child that spins too. If the library made one futex call
//! on that path, the producer would die and the test fail. Controls in the same file
//! show that the filter does kill on a futex call (a raw one, and the library's own
//! parking path), and lets other system calls through, so the test cannot pass
//! vacuously.

// seccomp filter for x86-64 system call numbers; real processes, so not under Miri.
#![cfg(all(target_os = "linux", target_arch = "x86_64", not(miri)))]

mod common;

use std::time::{Duration, Instant};

use common::{check_message, fill_message, seg_name, Gate, Outcome, Procs, Rng, SegGuard};
use nix::sys::signal::Signal;
use shmlane::{spsc, Notifier, RingOptions, Wait};

const N: u64 = 200_000;
const RING: usize = 64 << 10;
const DEADLINE: Duration = Duration::from_secs(60);

/// `AUDIT_ARCH_X86_64` from `<linux/audit.h>`: EM_X86_64 | 64-bit | little-endian.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// x32 system calls have this bit set in their number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// Offsets in `struct seccomp_data`.
const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// Makes every later `futex` / `futex_waitv` system call of this process kill it with
/// SIGSYS. For a child process only: it cannot be undone.
fn forbid_futex() -> Result<(), String> {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    let kill = libc::SECCOMP_RET_KILL_PROCESS;
    let allow = libc::SECCOMP_RET_ALLOW;
    let mut filter = vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, SECCOMP_DATA_ARCH),
        // Another architecture (i386 through int 0x80): allow; we only police x86-64.
        jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET | BPF_K, allow),
        stmt(BPF_LD | BPF_W | BPF_ABS, SECCOMP_DATA_NR),
    ];
    let forbidden = [
        libc::SYS_futex as u32,
        libc::SYS_futex as u32 | X32_SYSCALL_BIT,
        libc::SYS_futex_waitv as u32,
        libc::SYS_futex_waitv as u32 | X32_SYSCALL_BIT,
    ];
    for nr in forbidden {
        // Equal: fall through to the kill; else skip it.
        filter.push(jump(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1));
        filter.push(stmt(BPF_RET | BPF_K, kill));
    }
    filter.push(stmt(BPF_RET | BPF_K, allow));
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: plain prctl calls; `prog` points to `filter`, which outlives the call
    // (the kernel copies the program).
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(format!(
                "PR_SET_NO_NEW_PRIVS: {}",
                std::io::Error::last_os_error()
            ));
        }
        if libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        ) != 0
        {
            return Err(format!(
                "PR_SET_SECCOMP: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Message length of message `seq`: 16..=64 bytes (room for seq and checksum).
fn len_of(rng: &mut Rng) -> usize {
    rng.range(16, 64)
}

#[test]
fn spinning_sender_makes_no_futex_call() {
    sender_makes_no_futex_call("nofutex", Notifier::Futex);
}

/// The same with the semaphore notifier: `sem_post` is a futex call underneath, so the
/// filter proves that no semaphore is posted either.
#[test]
fn spinning_sender_makes_no_semaphore_call() {
    sender_makes_no_futex_call("nofutex-sem", Notifier::Semaphore);
}

fn sender_makes_no_futex_call(test: &str, notifier: Notifier) {
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    let (created, ready) = (Gate::new(), Gate::new());
    let mut procs = Procs::new(test, DEADLINE);
    procs.spawn("consumer", || {
        let opts = RingOptions::new(RING).wait(Wait::Spin).notifier(notifier);
        let mut rx = spsc::Consumer::create(&name, &opts)
            .map_err(|e| format!("create: {e}"))?;
        assert_eq!(rx.wait_strategy(), Wait::Spin);
        let mut sizes = Rng::new(7);
        let before = shmlane::wait::futex_calls();
        created.open();
        ready.open();
        let t0 = Instant::now();
        for seq in 0..N {
            let len = len_of(&mut sizes);
            let grant = rx.recv_ref().map_err(|e| format!("message {seq}: {e}"))?;
            check_message(&grant, seq, len)?;
        }
        let secs = t0.elapsed().as_secs_f64();
        let after = shmlane::wait::futex_calls();
        if after != before {
            return Err(format!(
                "the spinning consumer made futex calls: (wake, wait) {before:?} -> {after:?}"
            ));
        }
        Ok(format!(
            "consumer: {N} messages in {secs:.3} s ({:.2} M msg/s); futex calls (wake, wait) {before:?} -> {after:?}",
            N as f64 / secs / 1e6
        ))
    });
    procs.spawn("producer", || {
        created.expect(Duration::from_secs(20), "ring created")?;
        // Everything that may allocate or make system calls happens before the filter.
        let mut tx = spsc::Producer::open(&name).map_err(|e| format!("open: {e}"))?;
        tx.set_wait(Wait::Spin);
        let mut sizes = Rng::new(7);
        let mut buf = [0u8; 64];
        ready.expect(Duration::from_secs(20), "consumer spinning")?;
        let before = shmlane::wait::futex_calls();
        forbid_futex()?;
        // From here on a futex call kills this process with SIGSYS.
        for seq in 0..N {
            let len = len_of(&mut sizes);
            if seq % 2 == 0 {
                fill_message(&mut buf[..len], seq);
                tx.send(&buf[..len])
                    .map_err(|e| format!("send {seq}: {e}"))?;
            } else {
                let mut grant = tx
                    .reserve(len)
                    .map_err(|e| format!("reserve {seq}: {e}"))?;
                fill_message(&mut grant, seq);
                grant.commit();
            }
        }
        let after = shmlane::wait::futex_calls();
        // Not dropped: the drop may notify, and the check is about the sends. The
        // process ends with _exit right after this role returns.
        std::mem::forget(tx);
        if after != before {
            return Err(format!(
                "the spinning producer counted futex calls: (wake, wait) {before:?} -> {after:?}"
            ));
        }
        Ok(format!(
            "producer: {N} messages under the no-futex filter; futex calls (wake, wait) {before:?} -> {after:?}"
        ))
    });
    let reports = procs.wait_all_ok();
    println!("{}\n{}", reports[1], reports[0]);
}

/// Positive controls: under the same filter, a raw futex call, a futex_waitv call and
/// the library's own parking path each kill the process with SIGSYS.
#[test]
fn filter_kills_on_futex() {
    let test = "nofutex-control";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    let mut procs = Procs::new(test, DEADLINE);
    let raw = procs.spawn("raw futex wake", || {
        let word = 0u32;
        forbid_futex()?;
        // SAFETY: FUTEX_WAKE on a valid, aligned u32; it only uses the address as a key.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex,
                &word as *const u32,
                libc::FUTEX_WAKE,
                1,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            )
        };
        Err(format!("futex returned {r}: the filter let it through"))
    });
    let waitv = procs.spawn("raw futex_waitv", || {
        forbid_futex()?;
        // SAFETY: futex_waitv with no waiters; the kernel would reject the arguments
        // (EINVAL) if the filter let the call through.
        let r = unsafe { libc::syscall(libc::SYS_futex_waitv, 0usize, 0u32, 0u32, 0usize, 0u32) };
        Err(format!(
            "futex_waitv returned {r}: the filter let it through"
        ))
    });
    let parked = procs.spawn("library parks", || {
        let mut rx = spsc::Consumer::create(&name, &RingOptions::new(4096).wait(Wait::Park))
            .map_err(|e| format!("create: {e}"))?;
        let mut buf = Vec::new();
        forbid_futex()?;
        let r = rx.recv_timeout(&mut buf, Duration::from_millis(100));
        Err(format!(
            "a parked recv_timeout returned {r:?} without a futex call (counted {:?})",
            shmlane::wait::futex_calls()
        ))
    });
    let allowed = procs.spawn("other system calls", || {
        forbid_futex()?;
        // getpid, clock_gettime, sched_yield, nanosleep and write stay allowed.
        let pid = std::process::id();
        let t0 = Instant::now();
        std::thread::yield_now();
        std::thread::sleep(Duration::from_millis(1));
        Ok(format!("pid {pid} alive after {:?}", t0.elapsed()))
    });
    for idx in [raw, waitv, parked] {
        let r = procs.wait(idx);
        assert_eq!(
            r.outcome,
            Outcome::Signaled(Signal::SIGSYS),
            "the filter did not kill on a futex call: {r}"
        );
    }
    let r = procs.wait(allowed);
    assert!(
        r.ok(),
        "the filter killed a process that made no futex call: {r}"
    );
}
