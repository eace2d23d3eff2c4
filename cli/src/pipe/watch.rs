//! The watch over the peer: a thread that looks at the ring from outside while the
//! transfer runs, and ends the process when waiting can no longer succeed.
//!
//! The library itself notices a peer that detaches or dies (its OFD lock), within
//! about 50 ms of waiting. This thread is the command's second line, and the keeper of
//! `--timeout` across a whole transfer: every [`PERIOD`] it reads the ring's header
//! through a [`Probe`] (opened once, so it still sees the ring after its name is
//! removed) and, while the main thread is inside a wait on the ring,
//!
//! - if the peer's slot says attached but its process is dead, and the main thread has
//!   waited for at least [`GRACE`] (so that it has polled the ring several times and
//!   found nothing more to read, or no room: a dead peer can still have left data for
//!   a receiver), it exits with [`PEER_GONE`];
//! - if `--timeout` has passed in this one wait, it exits with [`TIMEOUT`].
//!
//! Either way it first removes the ring's name if no live peer is left to do it. The
//! main thread calls [`Watch::finish`] before it exits or reports anything; from then
//! on the watch exits nothing, so the process never has two threads exiting at once.
//!
//! # Interrupts
//!
//! While the watch runs, SIGINT (Ctrl-C), SIGTERM and SIGHUP only raise a flag
//! (signal-hook), which the watch sees within a [`PERIOD`], waiting or not. It then
//! ends the transfer the way the signal asked, leaving the ring as nobody has to clean
//! it up by hand ([`leave_on_interrupt`]):
//!
//! - no live peer attached (none came yet, or it left or died): the end removes the
//!   ring's name, if the name still names the ring it is attached to;
//! - a live peer attached: the ring is left to it. Our process dies with its slot
//!   attached, the peer sees it dead (its lock is free) within a wait, fails with
//!   status 3 and removes the name, being the last. A sender first gives the receiver
//!   [`INTERRUPT_WAIT`] to go: when one signal stops both ends at once (Ctrl-C in a
//!   terminal that runs both), the receiver leaves at once and the sender, seeing it
//!   gone, removes the ring. Without that order each could see the other alive and
//!   leave it behind.
//!
//! Then the process dies of the signal, as it would have without the watch (the
//! shell reports 128 + N). A second signal during that, or any once the watch has
//! finished, takes the default action at once. A signal the command was started with
//! ignored (`nohup`, a background job of a script) stays ignored. Whatever is left
//! anyway (after SIGKILL, or a peer killed meanwhile) is stale, and the next `send` or
//! `recv` on the name takes it over ([`super::take_over_stale`]).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shmlane::inspect::{EndpointInfo, EndpointRole, EndpointState, Probe};

use crate::args::RingName;
use crate::exit::{PEER_GONE, TIMEOUT};

/// How often the watch looks at the ring.
pub const PERIOD: Duration = Duration::from_millis(100);
/// How long the main thread must have waited before a dead peer ends the transfer:
/// ten of the library's 50 ms park slices, after each of which it polls the ring.
pub const GRACE: Duration = Duration::from_millis(500);
/// How long an interrupted sender waits for a live receiver to go before it leaves
/// the ring to it (see the module docs).
pub const INTERRUPT_WAIT: Duration = Duration::from_millis(500);
/// The signals that stop a transfer with clean-up.
const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// What the watch needs to know.
#[derive(Debug)]
pub struct Config {
    /// `"send"` or `"recv"`, for messages.
    pub command: &'static str,
    /// Our role; the peer has the other one.
    pub me: EndpointRole,
    pub name: RingName,
    pub timeout: Option<Duration>,
    /// Start messages on a new line (a progress bar is on the terminal).
    pub newline_first: bool,
}

#[derive(Debug)]
struct Shared {
    config: Config,
    probe: Option<Arc<Probe>>,
    start: Instant,
    /// When the main thread entered the wait it is in, as nanoseconds since `start`
    /// plus one; 0 while it is not waiting on the ring.
    waiting_since: AtomicU64,
    /// Whether the main thread has finished: from then on the watch must not exit the
    /// process. Held by the watch while it exits.
    finished: Mutex<bool>,
    /// Wakes the watch to stop.
    stop: Condvar,
    /// The stop signal that arrived (one of [`STOP_SIGNALS`]), 0 while none has. Set
    /// by the signal handler.
    interrupted: Arc<AtomicUsize>,
    /// Set: a stop signal takes its default action at once (the process dies)
    /// instead of raising [`interrupted`](Self::interrupted). Read by the handler.
    die_now: Arc<AtomicBool>,
}

/// The running watch. Dropping it finishes it.
#[derive(Debug)]
pub struct Watch {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Watch {
    /// Starts watching. Without a probe (the ring could not be inspected) only the
    /// timeout is watched.
    pub fn start(probe: Option<Arc<Probe>>, config: Config) -> Watch {
        let shared = Arc::new(Shared {
            config,
            probe,
            start: Instant::now(),
            waiting_since: AtomicU64::new(0),
            finished: Mutex::new(false),
            stop: Condvar::new(),
            interrupted: Arc::new(AtomicUsize::new(0)),
            die_now: Arc::new(AtomicBool::new(false)),
        });
        catch_stop_signals(&shared.interrupted, &shared.die_now);
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("shmlane-watch".into())
                .spawn(move || watch(&shared))
                .ok()
        };
        Watch { shared, thread }
    }

    /// Runs `f`, a call that may wait on the ring, as a watched wait.
    pub fn wait<T>(&self, f: impl FnOnce() -> T) -> T {
        self.yield_to_interrupt();
        let since = self.shared.start.elapsed().as_nanos() as u64 + 1;
        self.shared.waiting_since.store(since, Ordering::Release);
        let r = f();
        self.shared.waiting_since.store(0, Ordering::Release);
        self.yield_to_interrupt();
        r
    }

    /// If a stop signal has arrived, never returns: the watch is ending the process
    /// (within a [`PERIOD`]), and the main thread must not finish the transfer, or
    /// the watch, meanwhile. Without a watch thread, dies of the signal here.
    fn yield_to_interrupt(&self) {
        let signal = self.shared.interrupted.load(Ordering::SeqCst);
        if signal == 0 {
            return;
        }
        if self.thread.is_none() {
            let _ = signal_hook::low_level::emulate_default_handler(signal as libc::c_int);
            std::process::exit(128 + signal as i32);
        }
        loop {
            std::thread::park();
        }
    }

    /// Stops the watch; after this returns it exits nothing. If the watch is exiting
    /// the process at this moment, or a stop signal has arrived (the watch then ends
    /// the process), this never returns.
    pub fn finish(&mut self) {
        if self.thread.is_some() {
            self.yield_to_interrupt();
        }
        // From now on a stop signal kills at once: nothing watches for it.
        self.shared.die_now.store(true, Ordering::SeqCst);
        {
            let mut finished = lock(&self.shared.finished);
            *finished = true;
            self.shared.stop.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Whether `signal` is ignored in this process (`SIG_IGN`, as `nohup` and a script's
/// background jobs start commands): then it stays ignored.
fn ignored(signal: libc::c_int) -> bool {
    let mut old = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null new action only reads the current one into `old`, a writable
    // sigaction.
    if unsafe { libc::sigaction(signal, std::ptr::null(), old.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: sigaction succeeded and filled it (and zeroed is a valid sigaction).
    unsafe { old.assume_init() }.sa_sigaction == libc::SIG_IGN
}

/// Makes each stop signal not ignored raise `interrupted` (to its number) unless
/// `die_now` is set, in which case it takes its default action. The order of the two
/// registrations matters: the default action is tried first. A registration that
/// fails leaves the signal's default action, which only skips the clean-up.
fn catch_stop_signals(interrupted: &Arc<AtomicUsize>, die_now: &Arc<AtomicBool>) {
    for signal in STOP_SIGNALS {
        if ignored(signal) {
            continue;
        }
        if signal_hook::flag::register_conditional_default(signal, die_now.clone()).is_ok() {
            let _ = signal_hook::flag::register_usize(signal, interrupted.clone(), signal as usize);
        }
    }
}

fn signal_name(signal: usize) -> String {
    let n = signal as libc::c_int;
    signal_hook::low_level::signal_name(n).map_or_else(|| format!("signal {n}"), str::to_string)
}

/// What an end interrupted by a signal does with the ring before it dies (see the
/// module docs): removes the name if no live peer is attached and the name still
/// names our ring, else leaves the ring to the peer. Returns what it did, for the
/// message.
fn leave_on_interrupt(shared: &Shared) -> String {
    let cfg = &shared.config;
    let Some(probe) = &shared.probe else {
        return String::new();
    };
    let peer_role = peer_of(cfg.me);
    let wait = if cfg.me == EndpointRole::Producer {
        INTERRUPT_WAIT
    } else {
        Duration::ZERO
    };
    let deadline = Instant::now() + wait;
    loop {
        let Ok(info) = probe.read() else {
            return String::new();
        };
        let peer = info
            .endpoint(peer_role)
            .filter(|p| p.state == EndpointState::Attached && p.alive);
        match peer {
            None => {
                // Our ring still under its name (not removed, not replaced by a new
                // transfer's): ours to remove.
                if super::open_probe(&cfg.name, cfg.me).is_some() && cfg.name.remove().is_ok() {
                    return format!("; removed ring {}", cfg.name);
                }
                return String::new();
            }
            Some(p) if Instant::now() >= deadline => {
                return format!(
                    "; the {} (pid {}) removes ring {} once it sees this end gone",
                    role_word(peer_role),
                    p.pid,
                    cfg.name
                );
            }
            Some(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn lock(m: &Mutex<bool>) -> std::sync::MutexGuard<'_, bool> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn role_word(role: EndpointRole) -> &'static str {
    match role {
        EndpointRole::Producer => "sender",
        EndpointRole::Consumer => "receiver",
        _ => "peer",
    }
}

/// The peer's role.
pub fn peer_of(me: EndpointRole) -> EndpointRole {
    match me {
        EndpointRole::Producer => EndpointRole::Consumer,
        _ => EndpointRole::Producer,
    }
}

/// What the watch decides after one look.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Wait,
    /// Exit with this status and message; remove the name first if asked.
    Exit {
        code: u8,
        message: String,
        remove: bool,
    },
}

/// The decision of one look, from how long the main thread has waited (`None`: it is
/// not waiting), the peer's slot (`None`: unknown) and the ring's fill level.
pub fn judge(
    me: EndpointRole,
    waited: Option<Duration>,
    peer: Option<EndpointInfo>,
    used: Option<u64>,
    timeout: Option<Duration>,
) -> Verdict {
    let Some(waited) = waited else {
        return Verdict::Wait;
    };
    let who = role_word(peer_of(me));
    if let Some(p) = peer {
        if p.state == EndpointState::Attached && !p.alive && waited >= GRACE {
            // A receiver drains what a dead sender left before giving up; with
            // inconsistent cursors it gives up after a longer wait.
            let drained = me != EndpointRole::Consumer || used == Some(0) || waited >= GRACE * 4;
            if drained {
                return Verdict::Exit {
                    code: PEER_GONE,
                    message: format!(
                        "the {who} (pid {}) died without finishing the transfer",
                        p.pid
                    ),
                    remove: true,
                };
            }
        }
    }
    match timeout {
        Some(t) if waited >= t => {
            let secs = format!("{:.1} s", t.as_secs_f64());
            let (message, remove) = match peer {
                Some(p) if p.state == EndpointState::Attached && p.alive => (
                    match me {
                        EndpointRole::Producer => {
                            format!(
                                "timed out: the {who} (pid {}) made no room for {secs}",
                                p.pid
                            )
                        }
                        _ => format!(
                            "timed out: the {who} (pid {}) sent nothing for {secs}",
                            p.pid
                        ),
                    },
                    false,
                ),
                Some(p) if p.state == EndpointState::Vacant => {
                    (format!("timed out: no {who} came within {secs}"), true)
                }
                Some(_) => (format!("timed out after {secs}: the {who} is gone"), true),
                None => (
                    format!("timed out after {secs} waiting for the {who}"),
                    false,
                ),
            };
            Verdict::Exit {
                code: TIMEOUT,
                message,
                remove,
            }
        }
        _ => Verdict::Wait,
    }
}

fn watch(shared: &Shared) {
    let cfg = &shared.config;
    loop {
        {
            let finished = lock(&shared.finished);
            let (finished, _) = shared
                .stop
                .wait_timeout_while(finished, PERIOD, |f| !*f)
                .unwrap_or_else(|e| e.into_inner());
            if *finished {
                return;
            }
        }
        let signal = shared.interrupted.load(Ordering::SeqCst);
        if signal != 0 {
            // A second signal kills at once, clean-up or not.
            shared.die_now.store(true, Ordering::SeqCst);
            let finished = lock(&shared.finished);
            if *finished {
                return;
            }
            let done = leave_on_interrupt(shared);
            let nl = if cfg.newline_first { "\n" } else { "" };
            eprintln!(
                "{nl}shmlane {}: interrupted by {}{done}",
                cfg.command,
                signal_name(signal)
            );
            // Holding `finished`: the main thread cannot exit meanwhile. Die of the
            // signal, as without the watch; exit with its status if that fails.
            let _ = signal_hook::low_level::emulate_default_handler(signal as libc::c_int);
            std::process::exit(128 + signal as i32);
        }
        let since = shared.waiting_since.load(Ordering::Acquire);
        let waited = (since != 0).then(|| {
            shared
                .start
                .elapsed()
                .saturating_sub(Duration::from_nanos(since - 1))
        });
        if waited.is_none() {
            continue;
        }
        let info = shared.probe.as_ref().and_then(|p| p.read().ok());
        let peer = info
            .as_ref()
            .and_then(|i| i.endpoint(peer_of(cfg.me)))
            .copied();
        let used = info.as_ref().and_then(|i| i.used);
        if let Verdict::Exit {
            code,
            message,
            remove,
        } = judge(cfg.me, waited, peer, used, cfg.timeout)
        {
            let finished = lock(&shared.finished);
            if *finished {
                return;
            }
            let nl = if cfg.newline_first { "\n" } else { "" };
            eprintln!("{nl}shmlane {}: {message}", cfg.command);
            if remove {
                let _ = cfg.name.remove();
            }
            // Holding `finished`: the main thread cannot exit meanwhile.
            std::process::exit(code.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(state: EndpointState, alive: bool) -> Option<EndpointInfo> {
        // EndpointInfo is non-exhaustive: take one from a real ring.
        let name = format!("/shmlane-test-watch-{}", std::process::id());
        let _ = shmlane::remove(&name);
        let tx = shmlane::spsc::Producer::create(&name, &shmlane::RingOptions::new(4096))
            .expect("create");
        let mut e = *shmlane::inspect::inspect(&name)
            .expect("inspect")
            .endpoint(EndpointRole::Producer)
            .expect("producer slot");
        drop(tx);
        let _ = shmlane::remove(&name);
        e.state = state;
        e.alive = alive;
        e.pid = 4242;
        Some(e)
    }

    #[test]
    fn verdicts() {
        let ms = Duration::from_millis;
        let c = EndpointRole::Consumer;
        let p = EndpointRole::Producer;
        let dead = peer(EndpointState::Attached, false);
        let alive = peer(EndpointState::Attached, true);
        let vacant = peer(EndpointState::Vacant, false);
        // Not waiting: nothing to judge.
        assert_eq!(judge(c, None, dead, Some(0), Some(ms(1))), Verdict::Wait);
        // A dead peer ends the wait after the grace, once the ring is drained.
        assert_eq!(judge(c, Some(ms(100)), dead, Some(0), None), Verdict::Wait);
        assert_eq!(judge(c, Some(ms(600)), dead, Some(64), None), Verdict::Wait);
        assert!(matches!(
            judge(c, Some(ms(600)), dead, Some(0), None),
            Verdict::Exit { code: PEER_GONE, remove: true, ref message } if message.contains("sender (pid 4242)")
        ));
        assert!(matches!(
            judge(c, Some(ms(2100)), dead, Some(64), None),
            Verdict::Exit {
                code: PEER_GONE,
                ..
            }
        ));
        assert!(matches!(
            judge(p, Some(ms(600)), dead, Some(64), None),
            Verdict::Exit { code: PEER_GONE, ref message, .. } if message.contains("receiver")
        ));
        // Timeouts: a live peer keeps the ring, a missing one does not.
        assert_eq!(
            judge(p, Some(ms(900)), alive, None, Some(ms(1000))),
            Verdict::Wait
        );
        assert!(matches!(
            judge(p, Some(ms(1000)), alive, None, Some(ms(1000))),
            Verdict::Exit { code: TIMEOUT, remove: false, ref message } if message.contains("made no room")
        ));
        assert!(matches!(
            judge(c, Some(ms(1000)), vacant, None, Some(ms(1000))),
            Verdict::Exit { code: TIMEOUT, remove: true, ref message } if message.contains("no sender came")
        ));
        assert!(matches!(
            judge(c, Some(ms(1000)), None, None, Some(ms(1000))),
            Verdict::Exit {
                code: TIMEOUT,
                remove: false,
                ..
            }
        ));
    }
}
