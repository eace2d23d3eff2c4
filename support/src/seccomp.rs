//! The seccomp filters of the library's system-call tests, built with seccompiler, for
//! x86-64 and aarch64. Each applies to the calling thread only and cannot be undone:
//! call it in a forked child, on the thread to be watched.

use std::collections::BTreeMap;
use std::io;

use seccompiler::{
    apply_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

fn install(
    rules: Vec<(i64, Vec<SeccompRule>)>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> io::Result<()> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> = rules.into_iter().collect();
    let arch = if cfg!(target_arch = "x86_64") {
        TargetArch::x86_64
    } else if cfg!(target_arch = "aarch64") {
        TargetArch::aarch64
    } else {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the seccomp filters are built for x86_64 and aarch64 only",
        ));
    };
    let program: BpfProgram = SeccompFilter::new(rules, mismatch, matched, arch)
        .and_then(BpfProgram::try_from)
        .map_err(|e| io::Error::other(format!("building the seccomp filter: {e}")))?;
    // apply_filter sets PR_SET_NO_NEW_PRIVS, then installs the program for this
    // thread (no TSYNC).
    apply_filter(&program)
        .map_err(|e| io::Error::other(format!("installing the seccomp filter: {e}")))
}

fn rule(arg: u8, len: SeccompCmpArgLen, op: SeccompCmpOp, value: u64) -> io::Result<SeccompRule> {
    SeccompCondition::new(arg, len, op, value)
        .and_then(|c| SeccompRule::new(vec![c]))
        .map_err(|e| io::Error::other(format!("building a seccomp rule: {e}")))
}

/// Makes every later system call of the calling thread trap with SIGSYS, except
/// `rt_sigreturn` (the return from a SIGSYS handler) and `write` on descriptor
/// `done_fd`. A call from another architecture's ABI kills the process.
pub fn trap_every_call_but_write_to(done_fd: i32) -> io::Result<()> {
    install(
        vec![
            (libc::SYS_rt_sigreturn, vec![]),
            (
                libc::SYS_write,
                vec![rule(
                    0,
                    SeccompCmpArgLen::Qword,
                    SeccompCmpOp::Eq,
                    done_fd as u64,
                )?],
            ),
        ],
        SeccompAction::Trap,
        SeccompAction::Allow,
    )
}

/// Makes every later `futex` call of the calling thread whose operation carries
/// `FUTEX_CLOCK_REALTIME` kill the process with SIGSYS; every other call passes.
pub fn kill_on_realtime_futex() -> io::Result<()> {
    let realtime = libc::FUTEX_CLOCK_REALTIME as u64;
    install(
        vec![(
            libc::SYS_futex,
            vec![rule(
                1,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::MaskedEq(realtime),
                realtime,
            )?],
        )],
        SeccompAction::Allow,
        SeccompAction::KillProcess,
    )
}

/// Makes every later `fcntl(fd, F_OFD_SETLK, ...)` of the calling thread fail with
/// `ENOLCK`; other calls, and other `fcntl` commands, go through.
pub fn fail_ofd_setlk() -> io::Result<()> {
    install(
        vec![(
            libc::SYS_fcntl,
            vec![rule(
                1,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                libc::F_OFD_SETLK as u64,
            )?],
        )],
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOLCK as u32),
    )
}

/// Makes the calling thread's first later call of system call `nr` (a `libc::SYS_*`)
/// kill the process with SIGSYS; every other call passes. For a process that must die
/// at a chosen step of what it does (a ring creation cut short after its `ftruncate`).
pub fn kill_on_call(nr: i64) -> io::Result<()> {
    install(
        vec![(nr, vec![])],
        SeccompAction::Allow,
        SeccompAction::KillProcess,
    )
}
