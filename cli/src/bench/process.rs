//! The processes of a measurement: shared anonymous memory that forked children
//! inherit, `fork` with CPU pinning, a supervisor that bounds every wait and kills the
//! children on any error, and the removal of segment names. The clock, the mapping,
//! pinning and forking themselves are `shmlane_support`'s, shared with the library's
//! tests and criterion benches; what is here is the bench's side: the control block,
//! the error slots, signals and the supervisor.
//!
//! The bench process itself starts no threads, so a forked child may run any code
//! (allocate, open segments) before it `_exit`s.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(crate) use shmlane_support::clock::now_ns;
pub(crate) use shmlane_support::mem::SharedMap;
use shmlane_support::{cpu, fork};

use super::BenchError;

// ---------------------------------------------------------------------------------
// Clock
// ---------------------------------------------------------------------------------

/// The median cost of one clock read, in ns (the difference of back-to-back reads).
pub(crate) fn clock_overhead_ns() -> f64 {
    let mut d: Vec<u64> = (0..20001)
        .map(|_| {
            let a = now_ns();
            let b = now_ns();
            b - a
        })
        .collect();
    d.sort_unstable();
    d[d.len() / 2] as f64
}

// ---------------------------------------------------------------------------------
// Shared memory between the parent and its children
// ---------------------------------------------------------------------------------

/// Room for a child's error message.
const ERROR_BYTES: usize = 1000;
/// Children of one measurement that can report an error: a pair, or the producers
/// and consumers of an MPMC throughput row (4 + 4).
pub(crate) const MAX_CHILDREN: usize = 8;

/// The control block at the start of a [`ControlMap`]: start barrier, phase flag,
/// timestamps, and each child's error message.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Control {
    /// Endpoints that have arrived at the start barrier.
    ready: AtomicU32,
    /// Set by the consumer once it has taken every warm-up message.
    warm_done: AtomicU32,
    /// `now_ns()` when the producer started the timed transfer.
    pub(crate) t_start: AtomicU64,
    /// `now_ns()` when the consumer had checked the last byte.
    pub(crate) t_end: AtomicU64,
    /// Timed messages the consumer took, or round trips the pinger timed.
    pub(crate) count: AtomicU64,
    /// Length of the message in `error_text[slot]`; written last (Release).
    error_len: [AtomicU32; MAX_CHILDREN],
    error_text: [UnsafeCell<[u8; ERROR_BYTES]>; MAX_CHILDREN],
}

/// Bytes before the latency samples in a [`ControlMap`] (a multiple of the page).
const CONTROL_BYTES: usize = 4 * 4096;
const _: () = assert!(std::mem::size_of::<Control>() <= CONTROL_BYTES);

impl Control {
    /// The start barrier: counts us in, then waits (yielding, so a peer not yet
    /// scheduled can run) until `parties` endpoints are in.
    pub(crate) fn barrier(&self, parties: u32, deadline_ns: u64) -> Result<(), String> {
        // AcqRel / Acquire: what each party did before arriving (opening its endpoint)
        // happens before the others leave the barrier.
        self.ready.fetch_add(1, Ordering::AcqRel);
        while self.ready.load(Ordering::Acquire) < parties {
            if now_ns() > deadline_ns {
                return Err("timed out at the start barrier (peer never arrived)".into());
            }
            std::thread::yield_now();
        }
        Ok(())
    }

    /// The consumer has taken every warm-up message.
    pub(crate) fn set_warm_done(&self) {
        self.warm_done.store(1, Ordering::Release);
    }

    /// Spins until the consumer has taken every warm-up message.
    pub(crate) fn wait_warm_done(&self, deadline_ns: u64) -> Result<(), String> {
        let mut spins = 0u32;
        while self.warm_done.load(Ordering::Acquire) == 0 {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins % 1024 == 0 && now_ns() > deadline_ns {
                return Err("timed out waiting for the consumer to finish the warm-up".into());
            }
        }
        Ok(())
    }

    fn set_error(&self, slot: usize, text: &str) {
        if slot >= MAX_CHILDREN {
            return;
        }
        let n = text.len().min(ERROR_BYTES);
        // SAFETY: only the child of slot `slot` writes this text, once, before it exits;
        // the parent reads it only after reaping that child.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), self.error_text[slot].get().cast(), n)
        };
        // Release: pairs with the Acquire in `error`; the text is written first.
        self.error_len[slot].store(n as u32, Ordering::Release);
    }

    fn error(&self, slot: usize) -> Option<String> {
        let n = self.error_len.get(slot)?.load(Ordering::Acquire) as usize;
        if n == 0 {
            return None;
        }
        let mut bytes = vec![0u8; n.min(ERROR_BYTES)];
        // SAFETY: the writer (a reaped child) is gone; `n <= ERROR_BYTES`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.error_text[slot].get().cast::<u8>(),
                bytes.as_mut_ptr(),
                bytes.len(),
            )
        };
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// A shared [`Control`] block followed by room for `samples` latency samples.
#[derive(Debug)]
pub(crate) struct ControlMap {
    map: SharedMap,
    samples: usize,
}

impl ControlMap {
    pub(crate) fn new(samples: usize) -> Result<Self, String> {
        let map = SharedMap::new(CONTROL_BYTES + samples * 8).map_err(|e| e.to_string())?;
        // Touch every page now, in the parent: the children then take no page fault
        // when they write their samples.
        for off in (0..map.len()).step_by(4096) {
            // SAFETY: `off < len`; the children are not forked yet.
            unsafe { map.ptr().add(off).write_volatile(0) };
        }
        Ok(ControlMap { map, samples })
    }

    pub(crate) fn control(&self) -> &Control {
        // SAFETY: the mapping is page aligned, at least CONTROL_BYTES long, lives as long
        // as `self`, and all-zero bytes (as mmap gives) are a valid `Control`: atomics
        // and byte arrays.
        unsafe { &*self.map.ptr().cast::<Control>() }
    }

    /// Stores the latency samples and their count (called by the pinger child).
    pub(crate) fn write_samples(&self, samples: &[u64]) -> Result<(), String> {
        if samples.len() > self.samples {
            return Err(format!(
                "{} samples, room for {}",
                samples.len(),
                self.samples
            ));
        }
        // SAFETY: the sample area is `self.samples * 8` bytes after CONTROL_BYTES, 8-byte
        // aligned; only the pinger writes it, and the parent reads it after reaping it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                samples.as_ptr(),
                self.map.ptr().add(CONTROL_BYTES).cast::<u64>(),
                samples.len(),
            )
        };
        // Release: pairs with the Acquire in `samples` (the parent reads after reaping
        // the child anyway; this keeps the pairing explicit).
        self.control()
            .count
            .store(samples.len() as u64, Ordering::Release);
        Ok(())
    }

    /// The latency samples the pinger stored (read by the parent after the children
    /// exited).
    pub(crate) fn samples(&self) -> Vec<u64> {
        let n = (self.control().count.load(Ordering::Acquire) as usize).min(self.samples);
        let mut v = vec![0u64; n];
        // SAFETY: as in `write_samples`, `n <= self.samples`; the writer has exited.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.map.ptr().add(CONTROL_BYTES).cast::<u64>(),
                v.as_mut_ptr(),
                v.len(),
            )
        };
        v
    }
}

// ---------------------------------------------------------------------------------
// CPUs
// ---------------------------------------------------------------------------------

/// The CPUs this process may run on (none if the kernel does not say).
pub(crate) fn allowed_cpus() -> Vec<usize> {
    cpu::allowed_cpus().unwrap_or_default()
}

/// Pins the calling thread (the whole process if it has one thread) to `cpu`.
pub(crate) fn pin_to(cpu: usize) -> Result<(), String> {
    cpu::pin_to(cpu).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------------

/// The signals the parent takes synchronously (with `sigtimedwait`) while it runs
/// the bench: a child's exit, and the requests to stop.
fn handled_signals() -> libc::sigset_t {
    // SAFETY: `sigemptyset` initialises the set; `sigaddset` adds valid signals to it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGCHLD, libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

fn mask(how: libc::c_int) {
    let set = handled_signals();
    // SAFETY: a valid set; the process is single-threaded, so sigprocmask is the
    // process's mask.
    unsafe { libc::sigprocmask(how, &set, std::ptr::null_mut()) };
}

/// Blocks SIGCHLD, SIGINT, SIGTERM and SIGHUP while it lives, so that the supervisor
/// takes them with `sigtimedwait`: Ctrl-C kills the children (they get it too) and
/// lets the parent remove the segments before it exits.
#[derive(Debug)]
pub(crate) struct SignalBlock(());

impl SignalBlock {
    pub(crate) fn new() -> Self {
        mask(libc::SIG_BLOCK);
        SignalBlock(())
    }
}

impl Drop for SignalBlock {
    fn drop(&mut self) {
        mask(libc::SIG_UNBLOCK);
    }
}

/// Waits up to `timeout` for one of the handled signals.
fn wait_signal(timeout: Duration) -> Option<libc::c_int> {
    let set = handled_signals();
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: valid set and timespec; a null siginfo pointer is allowed.
    let r = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    (r > 0).then_some(r)
}

// ---------------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------------

/// A forked child. Dropped while still running, it is killed and reaped.
#[derive(Debug)]
pub(crate) struct Child {
    proc: fork::Child,
    role: &'static str,
    /// Its error slot in the [`Control`] block.
    slot: usize,
}

impl Child {
    fn kill(&mut self) {
        let _ = self.proc.kill();
    }
}

/// Forks a child that pins itself to `cpu`, runs `body`, and exits: status 0 if
/// `body` returns `Ok`, `fork::EXIT_ERR` with the message in `ctl` if it returns an
/// error, `fork::EXIT_PANIC` with the panic message in `ctl` if it panics. In the
/// parent, `body` is dropped unrun (closing whatever it captured).
pub(crate) fn fork_child<F>(
    role: &'static str,
    slot: usize,
    cpu: Option<usize>,
    ctl: &Control,
    body: F,
) -> Result<Child, String>
where
    F: FnOnce() -> Result<(), String>,
{
    // SAFETY: this process is single-threaded (the bench starts no threads), so the
    // child inherits no lock held by another thread; it closes nothing.
    let proc = unsafe {
        fork::fork(&[], || {
            mask(libc::SIG_UNBLOCK);
            let (code, text) = fork::run_role(|| {
                if let Some(cpu) = cpu {
                    pin_to(cpu)?;
                }
                body().map(|()| String::new())
            });
            if code != 0 {
                ctl.set_error(slot, &text);
            }
            code
        })
    }
    .map_err(|e| e.to_string())?;
    Ok(Child { proc, role, slot })
}

/// Reaps whichever children have exited (without waiting). `Ok(true)` once every
/// child has exited with status 0; a child that failed, or with `early` any child
/// that exited at all, kills the others and returns the error.
fn reap(
    children: &mut [Child],
    ctl: &Control,
    what: &str,
    early: bool,
) -> Result<bool, BenchError> {
    let mut failed = None;
    for (i, c) in children.iter_mut().enumerate() {
        if c.proc.status().is_some() {
            continue;
        }
        match c.proc.try_wait() {
            Ok(Some(st)) if early || !st.success() => failed = failed.or(Some(i)),
            Ok(_) => {}
            Err(e) => return Err(BenchError::Failed(format!("{what}: {e}"))),
        }
    }
    if let Some(i) = failed {
        for c in children.iter_mut() {
            c.kill();
        }
        let c = &children[i];
        let mut status = c.proc.status().map(|s| s.to_string()).unwrap_or_default();
        if early {
            status.push_str(" before the measurement ended");
        }
        let msg = match ctl.error(c.slot) {
            Some(e) => format!("{what}: the {} {status}: {e}", c.role),
            None => format!("{what}: the {} {status}", c.role),
        };
        return Err(BenchError::Failed(msg));
    }
    Ok(children.iter().all(|c| c.proc.status().is_some()))
}

/// Kills the children on a stop signal.
fn on_signal(children: &mut [Child], signal: Option<libc::c_int>) -> Result<(), BenchError> {
    match signal {
        Some(s) if s != libc::SIGCHLD => {
            for c in children.iter_mut() {
                c.kill();
            }
            Err(BenchError::Interrupted(s))
        }
        _ => Ok(()),
    }
}

/// Waits for every child to exit with status 0, for at most `timeout`. On a child's
/// failure, a timeout or a stop signal, kills the others and returns the error.
pub(crate) fn supervise(
    children: &mut [Child],
    ctl: &Control,
    timeout: Duration,
    what: &str,
) -> Result<(), BenchError> {
    let deadline = Instant::now() + timeout;
    loop {
        if reap(children, ctl, what, false)? {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            for c in children.iter_mut() {
                c.kill();
            }
            return Err(BenchError::Failed(format!(
                "{what}: did not finish within {} s; children killed",
                timeout.as_secs()
            )));
        }
        on_signal(children, wait_signal(deadline - now))?;
    }
}

/// While the children run a measurement that the parent times itself (they exit only
/// when told to stop): waits until `until`, or until `done()` holds if given (polled
/// every millisecond; without it the parent sleeps through, so it takes no CPU time
/// from the children). `Ok(true)`: `done()` held; `Ok(false)`: `until` came. A child
/// that exits in the meantime, or a stop signal, kills the children and returns the
/// error.
pub(crate) fn watch(
    children: &mut [Child],
    ctl: &Control,
    until: Instant,
    what: &str,
    done: Option<&dyn Fn() -> bool>,
) -> Result<bool, BenchError> {
    loop {
        reap(children, ctl, what, true)?;
        if done.is_some_and(|d| d()) {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= until {
            return Ok(false);
        }
        let mut nap = until - now;
        if done.is_some() {
            nap = nap.min(Duration::from_millis(1));
        }
        on_signal(children, wait_signal(nap))?;
    }
}

// ---------------------------------------------------------------------------------
// Segment names
// ---------------------------------------------------------------------------------

/// The shared-memory names this run created; removed by [`remove_all`] and on drop
/// (so also when the run fails or panics).
///
/// [`remove_all`]: ShmNames::remove_all
#[derive(Debug, Default)]
pub(crate) struct ShmNames(Vec<String>);

impl ShmNames {
    pub(crate) fn add(&mut self, name: String) {
        self.0.push(name);
    }

    pub(crate) fn remove_all(&mut self) {
        for name in self.0.drain(..) {
            // NotFound is fine: nothing left to remove.
            let _ = shmlane::remove(&name);
        }
    }
}

impl Drop for ShmNames {
    fn drop(&mut self) {
        self.remove_all();
    }
}
