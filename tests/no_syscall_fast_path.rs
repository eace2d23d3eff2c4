//! Claim: **a round trip between two awake processes makes no system call at all**, on
//! either end, with the default `Wait::Adaptive` and with `Wait::Spin`, on SPSC and MPMC
//! rings, with either notifier.
//!
//! Two processes play ping-pong over two rings, one each way: per round trip each end
//! sends one message and receives (and checks) one, through both APIs (`send` and
//! `reserve`, `recv_ref` and `recv`). In each process the thread that does so runs on a
//! CPU of its own and, after a warm-up, installs a seccomp filter on itself that traps
//! **every** system call but the `write` of a byte to a pipe, by which it says that its
//! window is over (and `rt_sigreturn`, below). Both ends then meet at a barrier in
//! shared memory (spinning: no system call) and run [`ROUND_TRIPS`] round trips. A
//! trapped call does not run: a SIGSYS handler records its number, the round trip and
//! how long that round trip had lasted, and the process reports it.
//!
//! "Awake" is what the test arranges: each end's thread has a CPU of its own and, where
//! the test may (root), real-time priority (`SCHED_FIFO`), so nothing else on the host
//! takes its CPU. Interrupts and the hypervisor still can: on a 2-vCPU VM a vCPU is
//! held up for ~30 µs every few milliseconds, longer than `Wait::Adaptive`'s spin
//! budget (`SPIN_FOR`, 20 µs). A waiter whose peer is held up is not waiting for an
//! awake peer, and the library does what its docs say:
//! - `Wait::Adaptive` yields (`sched_yield`) once it has spun its budget (at least
//!   `MIN_SPIN`): the handler lets such a yield pass (it returns, through
//!   `rt_sigreturn`, and the yield does not run) if it comes `MIN_SPIN` or more into
//!   its round trip, and counts the round trips with one; at most [`MAX_YIELDING`]
//!   (1%) may have one, which the test prints;
//! - a `Wait::Adaptive` waiter parks after `YIELD_UNTIL` (`membarrier`, `futex`), and
//!   its peer then makes the wake-up call (`futex`); any waiter checks its peers' lives
//!   every `LIVENESS_EVERY`: such a call ends the attempt, and the test makes another
//!   (at most [`ATTEMPTS`]).
//!
//! Any other system call fails the test at once: a yield sooner than `MIN_SPIN`, any
//! call of a round trip shorter than `YIELD_UNTIL` (the wake-up call excepted, when
//! the peer parked), or too many yielding round trips. The test passes when a whole
//! window of [`ROUND_TRIPS`] round trips has run on both ends; it prints how many of
//! them yielded, and how long their peer kept them waiting.
//!
//! The control [`filter_traps_every_system_call_but_the_done_write`] shows that the
//! filter traps and names a raw system call, a yield and the library's parking path,
//! lets the one write through, and that reading the clock (which `Wait::Adaptive` does
//! while it spins) is no system call on this host (the vDSO), so the test cannot pass
//! vacuously.

// seccomp filter for x86-64 system call numbers, rdtsc; real processes, so not under Miri.
#![cfg(all(target_os = "linux", target_arch = "x86_64", not(miri)))]

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{check_message, fill_message, seg_name, Gate, Procs, Rng, SegGuard};
use shmlane::wait::{LIVENESS_EVERY, MIN_SPIN, YIELD_UNTIL};
use shmlane::{mpmc, spsc, Notifier, RingOptions, Wait};
use shmlane_support::cpu::{allowed_cpus, pin_to};
use shmlane_support::mem::SharedMap;

/// Round trips per window under the filter, on both ends at once.
const ROUND_TRIPS: u64 = 300_000;
/// Round trips before the filter: the ring's pages are touched, the spin budget learnt.
const WARM_UP: u64 = 20_000;
/// Windows tried before the test gives up on the host letting both ends stay awake.
const ATTEMPTS: u32 = 8;
/// Round trips of a window in which a `Wait::Adaptive` end may yield, each after
/// waiting at least `MIN_SPIN` for a peer held up (1%: on a 2-vCPU VM the host takes a
/// vCPU for ~30 µs every few milliseconds, which makes ~0.03%).
const MAX_YIELDING: u64 = ROUND_TRIPS / 100;
const RING: usize = 64 << 10;
const DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------
// The filter
// ---------------------------------------------------------------------------------

/// Makes every later system call of the calling thread (only: no `TSYNC`) trap with
/// SIGSYS, but `write` on descriptor `done_fd` and `rt_sigreturn` (the return from the
/// SIGSYS handler). A call through another architecture's ABI (i386 through int 0x80)
/// kills the process. It cannot be undone.
fn trap_every_call_but_the_done_write(done_fd: i32) -> Result<(), String> {
    shmlane_support::seccomp::trap_every_call_but_write_to(done_fd).map_err(|e| e.to_string())
}

/// The names of the system calls a trap may report.
fn syscall_name(nr: i64) -> &'static str {
    const NAMES: &[(i64, &str)] = &[
        (libc::SYS_read, "read"),
        (libc::SYS_write, "write"),
        (libc::SYS_poll, "poll"),
        (libc::SYS_mmap, "mmap"),
        (libc::SYS_munmap, "munmap"),
        (libc::SYS_brk, "brk"),
        (libc::SYS_rt_sigprocmask, "rt_sigprocmask"),
        (libc::SYS_sched_yield, "sched_yield"),
        (libc::SYS_madvise, "madvise"),
        (libc::SYS_nanosleep, "nanosleep"),
        (libc::SYS_getpid, "getpid"),
        (libc::SYS_kill, "kill"),
        (libc::SYS_fcntl, "fcntl"),
        (libc::SYS_gettid, "gettid"),
        (libc::SYS_futex, "futex"),
        (libc::SYS_clock_gettime, "clock_gettime"),
        (libc::SYS_clock_nanosleep, "clock_nanosleep"),
        (libc::SYS_openat, "openat"),
        (libc::SYS_membarrier, "membarrier"),
        (libc::SYS_futex_waitv, "futex_waitv"),
    ];
    NAMES
        .iter()
        .find(|&&(n, _)| n == nr)
        .map_or("see <asm/unistd_64.h>", |&(_, name)| name)
}

// ---------------------------------------------------------------------------------
// A thread under the filter, and what its SIGSYS handler records
// ---------------------------------------------------------------------------------

// Per process (each child has its own copy): the handler reads and writes only these.
/// The write end of the done pipe.
static DONE_FD: AtomicI32 = AtomicI32::new(-1);
/// The number of the trapped system call; -1 while none was.
static TRAPPED: AtomicI64 = AtomicI64::new(-1);
/// The time stamp counter when the call trapped, and when the round trip it was in began.
static TRAP_TSC: AtomicU64 = AtomicU64::new(0);
static ROUND_TRIP_TSC: AtomicU64 = AtomicU64::new(0);
/// The round trip under way.
static ROUND_TRIP: AtomicU64 = AtomicU64::new(0);
/// A `sched_yield` this many ticks or more into a round trip is let pass (`u64::MAX`:
/// none is): what `Wait::Adaptive` does once it has spun its budget for a peer that
/// does not answer.
static YIELD_AFTER: AtomicU64 = AtomicU64::new(u64::MAX);
/// The yields let pass: how many calls, in how many round trips (the last one's
/// number in `YIELD_LAST`), and the shortest and longest time into their round trip.
static YIELD_CALLS: AtomicU64 = AtomicU64::new(0);
static YIELD_ROUND_TRIPS: AtomicU64 = AtomicU64::new(0);
static YIELD_LAST: AtomicU64 = AtomicU64::new(u64::MAX);
static YIELD_SHORTEST: AtomicU64 = AtomicU64::new(u64::MAX);
static YIELD_LONGEST: AtomicU64 = AtomicU64::new(0);

/// The time stamp counter: an instruction, not a system call.
#[inline(always)]
fn rdtsc() -> u64 {
    // SAFETY: RDTSC reads a counter; every x86-64 CPU has it.
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

/// Time stamp counter ticks per nanosecond, measured against the monotonic clock.
fn tsc_per_ns() -> f64 {
    let (c0, t0) = (rdtsc(), Instant::now());
    std::thread::sleep(Duration::from_millis(20));
    (rdtsc() - c0) as f64 / t0.elapsed().as_nanos() as f64
}

/// Says "done" on the done pipe: the one system call the filter lets through.
fn say_done() {
    let byte = 1u8;
    // SAFETY: writes one byte from a live local to a descriptor (a pipe, or -1: EBADF).
    unsafe {
        libc::write(
            DONE_FD.load(Ordering::Acquire),
            (&byte as *const u8).cast(),
            1,
        )
    };
}

/// The SIGSYS handler. A `sched_yield` at least `YIELD_AFTER` into its round trip is
/// counted and let pass: the handler returns, and the call, which did not run, returns
/// `ENOSYS` (a yield's result is ignored). Any other call is recorded, the handler says
/// done and spins until the main thread ends the process.
extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let tsc = rdtsc();
    // SAFETY: the kernel passes a valid siginfo. For a seccomp SIGSYS its union (at
    // offset 16 on 64-bit) holds `_sigsys`: the calling address (8 bytes), then the
    // system call's number (an int, offset 24): `<asm-generic/siginfo.h>`.
    let nr = unsafe { info.cast::<u8>().add(24).cast::<i32>().read() };
    let into = tsc.saturating_sub(ROUND_TRIP_TSC.load(Ordering::Relaxed));
    if i64::from(nr) == libc::SYS_sched_yield && into >= YIELD_AFTER.load(Ordering::Relaxed) {
        YIELD_CALLS.fetch_add(1, Ordering::Relaxed);
        let rt = ROUND_TRIP.load(Ordering::Relaxed);
        if YIELD_LAST.swap(rt, Ordering::Relaxed) != rt {
            YIELD_ROUND_TRIPS.fetch_add(1, Ordering::Relaxed);
            YIELD_SHORTEST.fetch_min(into, Ordering::Relaxed);
        }
        YIELD_LONGEST.fetch_max(into, Ordering::Relaxed);
        return;
    }
    TRAP_TSC.store(tsc, Ordering::Relaxed);
    TRAPPED.store(i64::from(nr), Ordering::Release);
    say_done();
    loop {
        std::hint::spin_loop();
    }
}

/// How a thread under the filter ended.
#[derive(Debug)]
enum Ended {
    /// Its body returned this.
    Returned(Result<u64, String>),
    /// It made system call `nr` in round trip `round_trip`, `into_ns` after that round
    /// trip began.
    Trapped {
        nr: i64,
        round_trip: u64,
        into_ns: u64,
    },
}

/// Handed to a body: installs the filter on its thread when it is ready.
struct Seal {
    done_fd: i32,
}

impl Seal {
    fn seal(&self) -> Result<(), String> {
        trap_every_call_but_the_done_write(self.done_fd)
    }
}

/// Sets the calling thread's policy to `SCHED_FIFO` at `priority`. Whether it could.
fn realtime(priority: i32) -> bool {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid sched_param; pid 0 is the calling thread.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) == 0 }
}

/// Runs `body` on a thread of its own, which may seal itself (the filter) with the
/// [`Seal`] it is given, and waits for it to return or trap. With `cpu`, the body's
/// thread and this one run on that CPU, both at real-time priority if the process may
/// (this one above, so that it ends the process at once when the body is done).
/// Returns how the body ended, and whether it ran at real-time priority. For a child
/// process only: the body's thread never ends, the process must exit.
fn on_a_sealed_thread<F>(cpu: Option<usize>, body: F) -> Result<(Ended, bool), String>
where
    F: FnOnce(&Seal) -> Result<u64, String> + Send + 'static,
{
    let (done_r, done_w): (OwnedFd, OwnedFd) = {
        let (r, w) = common::pipe();
        (r, w)
    };
    DONE_FD.store(done_w.as_raw_fd(), Ordering::Release);
    // SAFETY: a zeroed sigaction is valid; the handler has the SA_SIGINFO signature and
    // touches only atomics, the done pipe and the time stamp counter.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigsys as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) != 0 {
            return Err(format!("sigaction: {}", std::io::Error::last_os_error()));
        }
    }
    let mut rt = false;
    if let Some(cpu) = cpu {
        pin_to(cpu).map_err(|e| e.to_string())?;
        // The body's thread inherits both, and lowers its priority below ours.
        rt = realtime(2);
    }
    let slot: Arc<Mutex<Option<Result<u64, String>>>> = Arc::new(Mutex::new(None));
    let theirs = Arc::clone(&slot);
    let done_fd = done_w.as_raw_fd();
    std::thread::Builder::new()
        .name("sealed".into())
        .spawn(move || {
            if rt {
                realtime(1);
            }
            // The thread's first allocation may map an arena: make it before the filter.
            drop(std::hint::black_box(Vec::<u8>::with_capacity(256)));
            let r =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&Seal { done_fd })))
                    .unwrap_or_else(|_| Err("the body panicked".into()));
            // An uncontended lock: no system call.
            *theirs.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            say_done();
            loop {
                std::hint::spin_loop();
            }
        })
        .map_err(|e| format!("spawn: {e}"))?;
    let mut byte = [0u8; 1];
    loop {
        // SAFETY: reads one byte into a live buffer from the done pipe's read end.
        let n = unsafe { libc::read(done_r.as_raw_fd(), byte.as_mut_ptr().cast(), 1) };
        if n == 1 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if n == 0 || e.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("read of the done pipe: {n} ({e})"));
        }
    }
    let nr = TRAPPED.load(Ordering::Acquire);
    if nr >= 0 {
        let ticks = TRAP_TSC
            .load(Ordering::Relaxed)
            .saturating_sub(ROUND_TRIP_TSC.load(Ordering::Relaxed));
        return Ok((
            Ended::Trapped {
                nr,
                round_trip: ROUND_TRIP.load(Ordering::Relaxed),
                into_ns: (ticks as f64 / ticks_per_ns()) as u64,
            },
            rt,
        ));
    }
    let r = slot
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .ok_or("done without a result")?;
    Ok((Ended::Returned(r), rt))
}

/// Time stamp counter ticks per nanosecond: measured by the test before it forks (the
/// children inherit it).
static TSC_PER_NS: OnceLock<f64> = OnceLock::new();

fn ticks_per_ns() -> f64 {
    *TSC_PER_NS.get_or_init(tsc_per_ns)
}

// ---------------------------------------------------------------------------------
// Ping-pong
// ---------------------------------------------------------------------------------

/// A producer of either ring kind.
trait Put {
    /// Sends message `seq`, as long as `scratch`: by `send` (even `seq`) or `reserve`.
    fn put(&mut self, scratch: &mut [u8], seq: u64) -> Result<(), String>;
    fn set_strategy(&mut self, wait: Wait);
    fn strategy(&self) -> Wait;
}

/// A consumer of either ring kind.
trait Take {
    /// Receives and checks message `seq` of `len` bytes: by `recv_ref` (even `seq`) or
    /// `recv` into `buf`, which must have room (no allocation).
    fn take(&mut self, buf: &mut Vec<u8>, seq: u64, len: usize) -> Result<(), String>;
    fn set_strategy(&mut self, wait: Wait);
    fn strategy(&self) -> Wait;
}

macro_rules! round_trip_calls {
    ($m:ident) => {
        impl Put for $m::Producer {
            fn put(&mut self, scratch: &mut [u8], seq: u64) -> Result<(), String> {
                if seq % 2 == 0 {
                    fill_message(scratch, seq);
                    self.send(scratch).map_err(|e| format!("send {seq}: {e}"))
                } else {
                    let mut grant = self
                        .reserve(scratch.len())
                        .map_err(|e| format!("reserve {seq}: {e}"))?;
                    fill_message(&mut grant, seq);
                    grant.commit();
                    Ok(())
                }
            }
            fn set_strategy(&mut self, wait: Wait) {
                self.set_wait(wait)
            }
            fn strategy(&self) -> Wait {
                self.wait_strategy()
            }
        }

        impl Take for $m::Consumer {
            fn take(&mut self, buf: &mut Vec<u8>, seq: u64, len: usize) -> Result<(), String> {
                if seq % 2 == 0 {
                    let grant = self
                        .recv_ref()
                        .map_err(|e| format!("recv_ref {seq}: {e}"))?;
                    check_message(&grant, seq, len)
                } else {
                    self.recv(buf).map_err(|e| format!("recv {seq}: {e}"))?;
                    check_message(buf, seq, len)
                }
            }
            fn set_strategy(&mut self, wait: Wait) {
                self.set_wait(wait)
            }
            fn strategy(&self) -> Wait {
                self.wait_strategy()
            }
        }
    };
}

round_trip_calls!(spsc);
round_trip_calls!(mpmc);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Spsc,
    Mpmc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// Sends first, on the "ping" ring; receives the answer on the "pong" ring.
    Pinger,
    /// Answers each ping at once.
    Ponger,
}

/// Two flags on lines of their own in memory shared by the two ends: a barrier that
/// needs no system call.
#[derive(Clone, Copy)]
struct Barrier(*mut u8);

// SAFETY: the pointer is to a shared mapping that outlives the test's children, and
// is only used through atomics.
unsafe impl Send for Barrier {}

impl Barrier {
    fn flag(&self, side: Side) -> &AtomicU64 {
        let at = if side == Side::Pinger { 0 } else { 128 };
        // SAFETY: the mapping is at least a page long, page-aligned, and lives as long
        // as the process (the children inherit it and never unmap it).
        unsafe { &*self.0.add(at).cast::<AtomicU64>() }
    }

    /// Says `side` is here and spins until the other is.
    fn meet(&self, side: Side) {
        let other = if side == Side::Pinger {
            Side::Ponger
        } else {
            Side::Pinger
        };
        self.flag(side).store(1, Ordering::Release);
        while self.flag(other).load(Ordering::Acquire) == 0 {
            std::hint::spin_loop();
        }
    }
}

/// Round trips `from..to` of one end. Message lengths come from two generators that
/// both ends draw from in the same order.
#[allow(clippy::too_many_arguments)]
fn play(
    side: Side,
    tx: &mut impl Put,
    rx: &mut impl Take,
    sizes: &mut (Rng, Rng),
    scratch: &mut [u8; 64],
    buf: &mut Vec<u8>,
    from: u64,
    to: u64,
) -> Result<(), String> {
    for seq in from..to {
        ROUND_TRIP.store(seq, Ordering::Relaxed);
        ROUND_TRIP_TSC.store(rdtsc(), Ordering::Relaxed);
        let (ping, pong) = (sizes.0.range(16, 64), sizes.1.range(16, 64));
        match side {
            Side::Pinger => {
                tx.put(&mut scratch[..ping], seq)?;
                rx.take(buf, seq, pong)?;
            }
            Side::Ponger => {
                rx.take(buf, seq, ping)?;
                tx.put(&mut scratch[..pong], seq)?;
            }
        }
    }
    Ok(())
}

/// One end: warm up, seal, meet the peer, run the window. Returns the window's
/// length in time stamp counter ticks.
fn end(
    side: Side,
    mut tx: impl Put,
    mut rx: impl Take,
    wait: Wait,
    barrier: Barrier,
    seal: &Seal,
) -> Result<u64, String> {
    if wait == Wait::Adaptive {
        // Not set: the default is what is tested.
        if tx.strategy() != Wait::Adaptive || rx.strategy() != Wait::Adaptive {
            return Err("the default wait strategy is not Wait::Adaptive".into());
        }
    } else {
        tx.set_strategy(wait);
        rx.set_strategy(wait);
    }
    let mut sizes = (Rng::new(0x7069_6e67), Rng::new(0x706f_6e67));
    let mut scratch = [0u8; 64];
    let mut buf = Vec::with_capacity(4096);
    play(
        side,
        &mut tx,
        &mut rx,
        &mut sizes,
        &mut scratch,
        &mut buf,
        0,
        WARM_UP,
    )?;
    if wait == Wait::Adaptive {
        let ticks = MIN_SPIN.as_nanos() as f64 * ticks_per_ns();
        YIELD_AFTER.store(ticks as u64, Ordering::Relaxed);
    }
    seal.seal()?;
    // From here on any system call but the done write traps.
    barrier.meet(side);
    let t0 = rdtsc();
    play(
        side,
        &mut tx,
        &mut rx,
        &mut sizes,
        &mut scratch,
        &mut buf,
        WARM_UP,
        WARM_UP + ROUND_TRIPS,
    )?;
    let ticks = rdtsc() - t0;
    // Not dropped: a drop detaches (system calls); the claim is about round trips. The
    // process exits right after.
    std::mem::forget(tx);
    std::mem::forget(rx);
    Ok(ticks)
}

/// Whether a system call (other than a yield let pass), `into_ns` into a round trip,
/// is one the library makes only when its peer is held up long (so the peer was not
/// awake): `Wait::Adaptive` parks once it has waited `YIELD_UNTIL`, and any waiter
/// checks its peers' lives (a system call) every `LIVENESS_EVERY` of waiting.
fn peer_was_held_up(wait: Wait, into_ns: u64) -> bool {
    let parks = wait == Wait::Adaptive && into_ns >= YIELD_UNTIL.as_nanos() as u64;
    parks || into_ns >= LIVENESS_EVERY.as_nanos() as u64
}

/// One end's role in a child: opens its endpoints, runs [`end`] on a sealed thread and
/// reports `clean ...`, `held-up ...` (a call the library makes only for a peer held
/// up long) or `trapped nr=N ...` (any other call).
fn role(
    kind: Kind,
    side: Side,
    wait: Wait,
    names: &(String, String),
    cpu: usize,
    barrier: Barrier,
) -> Result<String, String> {
    let (ping, pong) = names.clone();
    let (ended, rt) = on_a_sealed_thread(Some(cpu), move |seal| {
        let open = |e: shmlane::Error| format!("{side:?}: open: {e}");
        match (kind, side) {
            (Kind::Spsc, Side::Pinger) => {
                let tx = spsc::Producer::open(&ping).map_err(open)?;
                let rx = spsc::Consumer::open(&pong).map_err(open)?;
                end(side, tx, rx, wait, barrier, seal)
            }
            (Kind::Spsc, Side::Ponger) => {
                let rx = spsc::Consumer::open(&ping).map_err(open)?;
                let tx = spsc::Producer::open(&pong).map_err(open)?;
                end(side, tx, rx, wait, barrier, seal)
            }
            (Kind::Mpmc, Side::Pinger) => {
                let tx = mpmc::Producer::open(&ping).map_err(open)?;
                let rx = mpmc::Consumer::open(&pong).map_err(open)?;
                end(side, tx, rx, wait, barrier, seal)
            }
            (Kind::Mpmc, Side::Ponger) => {
                let rx = mpmc::Consumer::open(&ping).map_err(open)?;
                let tx = mpmc::Producer::open(&pong).map_err(open)?;
                end(side, tx, rx, wait, barrier, seal)
            }
        }
    })?;
    match ended {
        Ended::Returned(Ok(ticks)) => {
            let us = |ticks: u64| ticks as f64 / ticks_per_ns() / 1e3;
            let yielding = YIELD_ROUND_TRIPS.load(Ordering::Relaxed);
            let report =
                format!(
                "{side:?}: ns_per_round_trip={:.0} realtime={rt} yielding_round_trips={yielding} \
                 yield_calls={} first_yield_after_us={:.1} longest_wait_us={:.1}",
                ticks as f64 / ticks_per_ns() / ROUND_TRIPS as f64,
                YIELD_CALLS.load(Ordering::Relaxed),
                if yielding == 0 { 0.0 } else { us(YIELD_SHORTEST.load(Ordering::Relaxed)) },
                us(YIELD_LONGEST.load(Ordering::Relaxed)),
            );
            if yielding > MAX_YIELDING {
                return Err(format!(
                    "{report}: more than {MAX_YIELDING} of {ROUND_TRIPS} round trips yielded \
                     (each after waiting at least MIN_SPIN for its peer)"
                ));
            }
            Ok(format!("clean {report}"))
        }
        Ended::Returned(Err(e)) => Err(e),
        Ended::Trapped {
            nr,
            round_trip,
            into_ns,
        } => {
            let what = format!(
                "{side:?} made system call {nr} ({}) in round trip {round_trip} ({} of the \
                 window), {into_ns} ns into it, with Wait::{wait:?} (realtime={rt})",
                syscall_name(nr),
                round_trip as i64 - WARM_UP as i64,
            );
            // Judged by the parent, which sees both ends: a wake-up call is right when
            // the peer registered to park.
            if peer_was_held_up(wait, into_ns) {
                Ok(format!("held-up {what}"))
            } else {
                Ok(format!("trapped nr={nr} {what}"))
            }
        }
    }
}

/// One window: fresh rings, two ends. `Ok(summary)` if both ran it clean, `Err(why)`
/// if it ended because a peer was held up. Panics on any other trap or failure.
fn attempt(
    test: &str,
    kind: Kind,
    wait: Wait,
    notifier: Notifier,
    cpus: [usize; 2],
) -> Result<String, String> {
    let names = (
        seg_name(&format!("{test}-ping")),
        seg_name(&format!("{test}-pong")),
    );
    let _ping = SegGuard::new(&names.0);
    let _pong = SegGuard::new(&names.1);
    let opts = RingOptions::new(RING).notifier(notifier);
    for name in [&names.0, &names.1] {
        match kind {
            Kind::Spsc => spsc::create_ring(name, &opts),
            Kind::Mpmc => mpmc::create_ring(name, &opts),
        }
        .unwrap_or_else(|e| panic!("{test}: create {name}: {e}"));
    }
    let shared = SharedMap::new(4096).expect("shared barrier");
    let barrier = Barrier(shared.ptr());
    let finished = Gate::new();
    let mut procs = Procs::new(test, DEADLINE);
    for (side, cpu) in [(Side::Pinger, cpus[0]), (Side::Ponger, cpus[1])] {
        let (names, finished) = (&names, &finished);
        procs.spawn(&format!("{side:?}"), move || {
            let r = role(kind, side, wait, names, cpu, barrier);
            finished.open();
            r
        });
    }
    // Block until one end is done (no waking up meanwhile, which would take a CPU from
    // an end), then collect both.
    finished.wait(DEADLINE);
    let reports = procs.wait_all_ok();
    let all = reports.join("\n  ");
    if reports.iter().all(|r| r.starts_with("clean")) {
        return Ok(all);
    }
    for (i, r) in reports.iter().enumerate() {
        let Some(rest) = r.strip_prefix("trapped nr=") else {
            continue;
        };
        let nr: i64 = rest
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("trapped nr=N");
        // A wake-up call (FUTEX_WAKE, or sem_post, a futex call underneath) is what the
        // library makes when its peer has registered to park, which a `Wait::Adaptive`
        // peer held up for YIELD_UNTIL does before its first call (membarrier or futex).
        let peer_parked = wait == Wait::Adaptive && reports[1 - i].starts_with("held-up");
        assert!(
            nr == libc::SYS_futex && peer_parked,
            "{test}: a round trip between awake processes made a system call:\n  {all}"
        );
    }
    Err(all)
}

fn round_trips_make_no_system_call(test: &str, kind: Kind, wait: Wait, notifier: Notifier) {
    let _serial = common::heavy();
    let cpus = allowed_cpus().expect("sched_getaffinity");
    if cpus.len() < 2 {
        eprintln!("{test}: skipped: two awake ends need two CPUs, this process may use {cpus:?}");
        return;
    }
    // Measured before forking: the children inherit it.
    let _ = ticks_per_ns();
    let mut held_up = Vec::new();
    for n in 1..=ATTEMPTS {
        match attempt(test, kind, wait, notifier, [cpus[0], cpus[1]]) {
            Ok(summary) => {
                println!(
                    "{test}: attempt {n}: {ROUND_TRIPS} round trips under the filter on both \
                     ends (each end sent and received {ROUND_TRIPS} messages); no system call \
                     but the yields counted (each in a round trip whose peer kept it waiting \
                     MIN_SPIN or more):\n  {summary}"
                );
                for h in &held_up {
                    println!("{test}: earlier attempt ended by a held-up peer: {h}");
                }
                return;
            }
            Err(why) => held_up.push(format!("attempt {n}: {why}")),
        }
    }
    panic!(
        "{test}: in {ATTEMPTS} attempts no window of {ROUND_TRIPS} round trips ran to its end; \
         each ended when a peer was held up long enough to park or to have its life checked \
         (is the host too busy for two awake processes?):\n{}",
        held_up.join("\n")
    );
}

#[test]
fn spsc_adaptive_round_trips_make_no_system_call() {
    round_trips_make_no_system_call(
        "nosys-spsc-adaptive",
        Kind::Spsc,
        Wait::Adaptive,
        Notifier::Futex,
    );
}

#[test]
fn spsc_spin_round_trips_make_no_system_call() {
    round_trips_make_no_system_call("nosys-spsc-spin", Kind::Spsc, Wait::Spin, Notifier::Futex);
}

#[test]
fn mpmc_adaptive_round_trips_make_no_system_call() {
    round_trips_make_no_system_call(
        "nosys-mpmc-adaptive",
        Kind::Mpmc,
        Wait::Adaptive,
        Notifier::Futex,
    );
}

#[test]
fn mpmc_spin_round_trips_make_no_system_call() {
    round_trips_make_no_system_call("nosys-mpmc-spin", Kind::Mpmc, Wait::Spin, Notifier::Futex);
}

/// The semaphore notifier: `sem_post` is a futex call underneath, so a window proves
/// that no semaphore is posted either.
#[test]
fn spsc_adaptive_round_trips_with_semaphores_make_no_system_call() {
    round_trips_make_no_system_call(
        "nosys-spsc-sem",
        Kind::Spsc,
        Wait::Adaptive,
        Notifier::Semaphore,
    );
}

#[test]
fn mpmc_adaptive_round_trips_with_semaphores_make_no_system_call() {
    round_trips_make_no_system_call(
        "nosys-mpmc-sem",
        Kind::Mpmc,
        Wait::Adaptive,
        Notifier::Semaphore,
    );
}

/// Controls: under the filter a raw system call, a yield and the library's parking path
/// each trap and are named; the done write passes; and reading the clock, which a
/// spinning `Wait::Adaptive` does, is no system call here (the vDSO).
#[test]
fn filter_traps_every_system_call_but_the_done_write() {
    let _serial = common::heavy();
    let test = "nosys-control";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    let _ = ticks_per_ns();
    let mut procs = Procs::new(test, DEADLINE);
    /// Runs `body` sealed in a child; reports how it ended.
    fn sealed(
        body: impl FnOnce(&Seal) -> Result<u64, String> + Send + 'static,
    ) -> Result<String, String> {
        let (ended, _) = on_a_sealed_thread(None, body)?;
        Ok(match ended {
            Ended::Returned(r) => format!("returned {r:?}"),
            Ended::Trapped { nr, .. } => format!("trapped {nr} {}", syscall_name(nr)),
        })
    }
    let getpid = procs.spawn("getpid", || {
        sealed(|seal| {
            seal.seal()?;
            // SAFETY: getpid has no arguments.
            Ok(unsafe { libc::getpid() } as u64)
        })
    });
    let yields = procs.spawn("sched_yield", || {
        sealed(|seal| {
            seal.seal()?;
            std::thread::yield_now();
            Ok(0)
        })
    });
    let n = name.clone();
    let parks = procs.spawn("library parks", move || {
        sealed(move |seal| {
            let mut rx = spsc::Consumer::create(&n, &RingOptions::new(4096).wait(Wait::Park))
                .map_err(|e| format!("create: {e}"))?;
            let mut buf = Vec::with_capacity(64);
            seal.seal()?;
            let r = rx.recv_timeout(&mut buf, Duration::from_millis(100));
            Err(format!(
                "a parked recv_timeout returned {r:?} without a system call"
            ))
        })
    });
    let passes = procs.spawn("done write and clock", || {
        sealed(|seal| {
            seal.seal()?;
            let t0 = Instant::now();
            let mut spins = 0u64;
            while t0.elapsed() < Duration::from_millis(2) {
                spins += 1;
            }
            Ok(spins)
        })
    });
    let reports = procs.wait_all_ok();
    println!("{}", reports.join("\n"));
    assert_eq!(
        reports[getpid],
        format!("trapped {} getpid", libc::SYS_getpid),
        "a raw getpid was not trapped"
    );
    assert_eq!(
        reports[yields],
        format!("trapped {} sched_yield", libc::SYS_sched_yield),
        "a yield was not trapped"
    );
    // Asymmetric fences (the default) pay with membarrier before the futex wait.
    assert!(
        reports[parks] == format!("trapped {} membarrier", libc::SYS_membarrier)
            || reports[parks] == format!("trapped {} futex", libc::SYS_futex),
        "the library's parking path was not trapped: {}",
        reports[parks]
    );
    assert!(
        reports[passes].starts_with("returned Ok("),
        "the done write or a clock read under the filter trapped: {} (a clock read that \
         is a system call on this host would make every spinning wait one)",
        reports[passes]
    );
}
