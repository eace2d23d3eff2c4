//! `shmlane bench`: round-trip latency and one-way throughput of shmlane beside a
//! pipe, a UNIX stream socket and the raw shared-cache-line floor, measured in one
//! run with real processes.
//!
//! Every measurement: the parent sets up the segment, pipe or socket, forks a
//! producer (pinger) pinned to the first allowed CPU and a consumer (ponger) pinned to
//! the second, and supervises them with a deadline. The children meet at a start
//! barrier in a shared page, run a warm-up, then the timed part; the pinger's samples
//! and the transfer's timestamps come back through that page. A full run repeats the
//! whole suite (interleaved rounds) and reports each figure's median.

mod baselines;
mod process;
mod report;
mod shm;
mod stats;
mod workload;

use std::fmt;
use std::time::{Duration, Instant};

use shmlane::{Notifier, Wait};

use process::{fork_child, now_ns, Child, ControlMap, ShmNames, SignalBlock};
use stats::Percentiles;
use workload::{Duplex, Rx, Tx};

/// Command-line options of `shmlane bench`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Options {
    /// A short run (well under 30 s) with fewer round trips and bytes, one round.
    pub(crate) quick: bool,
    /// Every figure as JSON on stdout instead of the table.
    pub(crate) json: bool,
}

/// Why the bench (or one row of it) stopped.
#[derive(Debug)]
pub(crate) enum BenchError {
    /// A row cannot be measured here (e.g. a 1 MiB pipe buffer is refused); the
    /// row is reported as skipped.
    Unavailable(String),
    /// A measurement failed: the run stops.
    Failed(String),
    /// SIGINT, SIGTERM or SIGHUP arrived.
    Interrupted(libc::c_int),
}

impl BenchError {
    /// The process exit code for this error.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            BenchError::Interrupted(sig) => 128u8.saturating_add(*sig as u8),
            _ => 1,
        }
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Unavailable(why) => write!(f, "unavailable: {why}"),
            BenchError::Failed(why) => f.write_str(why),
            BenchError::Interrupted(sig) => write!(f, "interrupted by signal {sig}"),
        }
    }
}

impl From<String> for BenchError {
    fn from(s: String) -> Self {
        BenchError::Failed(s)
    }
}

/// How much one run measures.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) quick: bool,
    /// Repetitions of the whole suite; each figure is the median across them.
    pub(crate) rounds: usize,
    /// Timed round trips per latency row, after `warmup_round_trips`.
    pub(crate) round_trips: usize,
    pub(crate) warmup_round_trips: usize,
    /// Capacity of each of the two rings of a round trip.
    pub(crate) latency_ring: usize,
    /// Bytes sent per throughput row of messages under 4 KiB...
    pub(crate) small_volume: u64,
    /// ...and of messages of 4 KiB and more.
    pub(crate) volume: u64,
    /// Length of the streamed message, and of the one streamed first as a warm-up.
    pub(crate) stream_len: u64,
    pub(crate) stream_warmup: u64,
    /// Longest time one measurement may take before its children are killed.
    pub(crate) timeout: Duration,
}

impl Config {
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Config {
                quick,
                rounds: 1,
                round_trips: 20_000,
                warmup_round_trips: 2_000,
                latency_ring: 64 << 10,
                small_volume: 32 << 20,
                volume: 256 << 20,
                stream_len: 256 << 20,
                stream_warmup: 16 << 20,
                timeout: Duration::from_secs(20),
            }
        } else {
            Config {
                quick,
                rounds: 3,
                round_trips: 100_000,
                warmup_round_trips: 10_000,
                latency_ring: 64 << 10,
                small_volume: 128 << 20,
                volume: 1 << 30,
                stream_len: 256 << 20,
                stream_warmup: 32 << 20,
                timeout: Duration::from_secs(60),
            }
        }
    }

    /// `(warm-up messages, timed messages)` for messages of `len` bytes.
    fn message_counts(&self, len: usize) -> (u64, u64) {
        let volume = if len < 4096 {
            self.small_volume
        } else {
            self.volume
        };
        let n = (volume / len as u64).max(1);
        // An eighth of the volume, at most 32 MiB: enough to fault in and cycle every
        // buffer (two laps of the largest ring) before the timed part.
        let warm = (n / 8).min((32 << 20) / len as u64).max(1);
        (warm, n)
    }
}

/// A mechanism measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mech {
    /// Two processes spinning on a shared cache line: the floor.
    RawLine,
    /// shmlane's SPSC ring, with this wait strategy on both endpoints and this
    /// notifier for their sleeps.
    Shmlane(Wait, Notifier),
    /// A pipe with the default buffer (a pair of them for round trips).
    Pipe,
    /// A pipe whose buffer is raised to 1 MiB with F_SETPIPE_SZ.
    PipeBig,
    /// A UNIX stream socket pair.
    UnixSocket,
}

impl Mech {
    /// A stable identifier, for JSON.
    pub(crate) fn id(self) -> &'static str {
        match self {
            Mech::RawLine => "raw-cache-line",
            Mech::Shmlane(Wait::Spin, _) => "shmlane-spin",
            Mech::Shmlane(Wait::Yield, _) => "shmlane-yield",
            Mech::Shmlane(Wait::Park, Notifier::Semaphore) => "shmlane-park-semaphore",
            Mech::Shmlane(Wait::Park, _) => "shmlane-park",
            Mech::Shmlane(_, _) => "shmlane-adaptive",
            Mech::Pipe => "pipe",
            Mech::PipeBig => "pipe-1mib",
            Mech::UnixSocket => "unix-socket",
        }
    }

    /// The row's name in the table.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Mech::RawLine => "raw shared cache line (floor)",
            Mech::Shmlane(Wait::Spin, _) => "shmlane SPSC, Wait::Spin",
            Mech::Shmlane(Wait::Yield, _) => "shmlane SPSC, Wait::Yield",
            Mech::Shmlane(Wait::Park, Notifier::Semaphore) => "shmlane, Park, semaphore",
            Mech::Shmlane(Wait::Park, _) => "shmlane, Park, futex",
            Mech::Shmlane(_, _) => "shmlane SPSC, Wait::Adaptive",
            Mech::Pipe => "pipe",
            Mech::PipeBig => "pipe, 1 MiB buffer",
            Mech::UnixSocket => "UNIX stream socket",
        }
    }

    /// Whether both sides busy-poll (hopeless on one CPU).
    fn spins(self) -> bool {
        matches!(self, Mech::RawLine | Mech::Shmlane(Wait::Spin, _))
    }
}

/// The round-trip rows, in order, for each size.
pub(crate) const LATENCY_SIZES: [usize; 2] = [8, 1024];
const LATENCY_MECHS: [Mech; 7] = [
    Mech::RawLine,
    Mech::Shmlane(Wait::Spin, Notifier::Futex),
    Mech::Shmlane(Wait::Adaptive, Notifier::Futex),
    // Parked round trips: every message wakes a sleeper, through each notifier.
    Mech::Shmlane(Wait::Park, Notifier::Futex),
    Mech::Shmlane(Wait::Park, Notifier::Semaphore),
    Mech::Pipe,
    Mech::UnixSocket,
];

/// What a throughput row sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Load {
    /// Many messages of this many bytes.
    Messages(usize),
    /// One message of `Config::stream_len` bytes, written and read in 1 MiB chunks.
    Stream,
}

/// The throughput rows, in order, for each load.
const LOADS: [Load; 5] = [
    Load::Messages(64),
    Load::Messages(4 << 10),
    Load::Messages(64 << 10),
    Load::Messages(1 << 20),
    Load::Stream,
];
const THROUGHPUT_MECHS: [Mech; 6] = [
    Mech::Shmlane(Wait::Adaptive, Notifier::Futex),
    // Both endpoints sleep whenever they would wait: the notifiers under load.
    Mech::Shmlane(Wait::Park, Notifier::Futex),
    Mech::Shmlane(Wait::Park, Notifier::Semaphore),
    Mech::Pipe,
    Mech::PipeBig,
    Mech::UnixSocket,
];

/// shmlane's ring for a load: 1 MiB, or 4 messages' worth if that is more (so a
/// message always fits one record, at most half the ring); 1 MiB for the stream.
pub(crate) fn ring_for(load: Load) -> usize {
    match load {
        Load::Messages(len) => (len * 4).next_power_of_two().max(1 << 20),
        Load::Stream => 1 << 20,
    }
}

/// The machine the run is on.
#[derive(Clone, Debug)]
pub(crate) struct Env {
    pub(crate) pid: u32,
    /// The CPUs of the producer/pinger and of the consumer/ponger, when two are
    /// allowed; else the children are not pinned.
    pub(crate) cpus: Option<[usize; 2]>,
    pub(crate) allowed_cpus: usize,
    pub(crate) cpu_model: String,
    pub(crate) kernel: String,
    /// Median cost of one clock read, in ns (inside every round-trip sample).
    pub(crate) clock_ns: f64,
}

impl Env {
    fn detect() -> Self {
        let allowed = process::allowed_cpus();
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Env {
            pid: std::process::id(),
            cpus: (allowed.len() >= 2).then(|| [allowed[0], allowed[1]]),
            allowed_cpus: allowed.len(),
            cpu_model,
            kernel,
            clock_ns: process::clock_overhead_ns(),
        }
    }
}

/// A round-trip row: one `Percentiles` per round.
#[derive(Clone, Debug)]
pub(crate) struct LatencyRow {
    pub(crate) mech: Mech,
    pub(crate) size: usize,
    pub(crate) rounds: Vec<Percentiles>,
    pub(crate) skipped: Option<String>,
}

/// A throughput row: the timed transfer's length per round.
#[derive(Clone, Debug)]
pub(crate) struct ThroughputRow {
    pub(crate) mech: Mech,
    pub(crate) load: Load,
    /// shmlane's ring, or the pipe's buffer (F_GETPIPE_SZ).
    pub(crate) buffer: Option<usize>,
    pub(crate) bytes: u64,
    pub(crate) messages: u64,
    /// Nanoseconds from the producer's start to the consumer's check of the last byte.
    pub(crate) rounds: Vec<u64>,
    pub(crate) skipped: Option<String>,
}

/// Everything one run measured.
#[derive(Clone, Debug)]
pub(crate) struct Results {
    pub(crate) config: Config,
    pub(crate) env: Env,
    pub(crate) latency: Vec<LatencyRow>,
    pub(crate) throughput: Vec<ThroughputRow>,
    pub(crate) elapsed: Duration,
}

/// Runs the bench and prints the table (or JSON) on stdout.
pub(crate) fn run(opts: &Options) -> Result<(), BenchError> {
    let config = Config::new(opts.quick);
    let _signals = SignalBlock::new();
    let env = Env::detect();
    let started = Instant::now();
    let mut results = Results {
        latency: LATENCY_SIZES
            .iter()
            .flat_map(|&size| {
                LATENCY_MECHS.iter().map(move |&mech| LatencyRow {
                    mech,
                    size,
                    rounds: Vec::new(),
                    skipped: None,
                })
            })
            .collect(),
        throughput: LOADS
            .iter()
            .flat_map(|&load| {
                THROUGHPUT_MECHS
                    .iter()
                    // The sleeping rows only where messages are small and many, so
                    // that the consumer sleeps often.
                    .filter(move |&&mech| {
                        !matches!(mech, Mech::Shmlane(Wait::Park, _))
                            || matches!(load, Load::Messages(n) if n <= 4 << 10)
                    })
                    .map(move |&mech| ThroughputRow {
                        mech,
                        load,
                        buffer: None,
                        bytes: 0,
                        messages: 0,
                        rounds: Vec::new(),
                        skipped: None,
                    })
            })
            .collect(),
        config: config.clone(),
        env: env.clone(),
        elapsed: Duration::ZERO,
    };
    if env.cpus.is_none() {
        for row in &mut results.latency {
            if row.mech.spins() {
                row.skipped = Some("needs 2 CPUs (both sides spin)".into());
            }
        }
    }
    let mut runner = Runner {
        config: &config,
        env: &env,
        names: ShmNames::default(),
        next_name: 0,
        progress: Progress::new(config.rounds * (results.latency.len() + results.throughput.len())),
    };
    for round in 0..config.rounds {
        for row in &mut results.latency {
            runner.progress.step(
                round,
                &format!("round trip {} {}", report::size(row.size), row.mech.label()),
            );
            if row.skipped.is_some() {
                continue;
            }
            match runner.latency(row.mech, row.size) {
                Ok(p) => row.rounds.push(p),
                Err(BenchError::Unavailable(why)) => row.skipped = Some(why),
                Err(e) => return Err(runner.fail(e)),
            }
        }
        for row in &mut results.throughput {
            runner.progress.step(
                round,
                &format!(
                    "throughput {} {}",
                    report::load(row.load, &config),
                    row.mech.label()
                ),
            );
            if row.skipped.is_some() {
                continue;
            }
            match runner.throughput(row.mech, row.load) {
                Ok(t) => {
                    row.buffer = t.buffer;
                    row.bytes = t.bytes;
                    row.messages = t.messages;
                    row.rounds.push(t.nanos);
                }
                Err(BenchError::Unavailable(why)) => row.skipped = Some(why),
                Err(e) => return Err(runner.fail(e)),
            }
        }
    }
    runner.progress.done();
    results.elapsed = started.elapsed();
    let out = if opts.json {
        report::json(&results)
    } else {
        report::table(&results)
    };
    print!("{out}");
    Ok(())
}

/// One timed transfer.
#[derive(Clone, Copy, Debug)]
struct Transfer {
    nanos: u64,
    bytes: u64,
    messages: u64,
    buffer: Option<usize>,
}

/// A progress line on stderr, when it is a terminal.
#[derive(Debug)]
struct Progress {
    on: bool,
    done: usize,
    total: usize,
}

impl Progress {
    fn new(total: usize) -> Self {
        // SAFETY: isatty only inspects the descriptor.
        let on = unsafe { libc::isatty(2) } == 1;
        Progress { on, done: 0, total }
    }

    fn step(&mut self, round: usize, what: &str) {
        self.done += 1;
        if self.on {
            eprint!(
                "\r\x1b[2K[{}/{}] round {}: {what}",
                self.done,
                self.total,
                round + 1
            );
        }
    }

    fn done(&self) {
        if self.on {
            eprint!("\r\x1b[2K");
        }
    }
}

/// Runs the measurements, one at a time.
struct Runner<'a> {
    config: &'a Config,
    env: &'a Env,
    /// The current measurement's segments (removed after it, and on drop).
    names: ShmNames,
    next_name: u32,
    progress: Progress,
}

impl Runner<'_> {
    /// A fresh segment name: the pid keeps concurrent runs apart.
    fn name(&mut self, what: &str) -> String {
        self.next_name += 1;
        format!("/shmlane-bench-{}-{}-{what}", self.env.pid, self.next_name)
    }

    fn cpu(&self, side: usize) -> Option<usize> {
        self.env.cpus.map(|c| c[side])
    }

    fn deadline_ns(&self) -> u64 {
        now_ns() + self.config.timeout.as_nanos() as u64
    }

    /// Cleans up after a failed measurement and passes the error on.
    fn fail(&mut self, e: BenchError) -> BenchError {
        self.progress.done();
        self.names.remove_all();
        e
    }

    /// Median round-trip times of `len`-byte messages over `mech`.
    fn latency(&mut self, mech: Mech, len: usize) -> Result<Percentiles, BenchError> {
        let map = ControlMap::new(self.config.round_trips)?;
        let deadline = self.deadline_ns();
        let what = format!("round trip, {}, {}", mech.label(), report::size(len));
        let mut children = match mech {
            Mech::RawLine => {
                // The children keep the mapping after the parent's `lines` unmaps it.
                let lines = baselines::RawLines::new(len)?;
                let (a, b) = lines.ends(deadline);
                self.ping_pong(&map, len, deadline, move || Ok(a), move || Ok(b))?
            }
            Mech::Shmlane(wait, notifier) => {
                let (ab, ba) = (self.name("ping"), self.name("pong"));
                let ring = self.config.latency_ring;
                shm::create_ring(&ab, ring, notifier, &mut self.names)?;
                shm::create_ring(&ba, ring, notifier, &mut self.names)?;
                let (ab2, ba2) = (ab.clone(), ba.clone());
                self.ping_pong(
                    &map,
                    len,
                    deadline,
                    move || shm::ShmDuplex::open(&ab, &ba, wait),
                    move || shm::ShmDuplex::open(&ba2, &ab2, wait),
                )?
            }
            Mech::Pipe => {
                let (a, b) = baselines::pipe_pair()?;
                self.ping_pong(&map, len, deadline, move || Ok(a), move || Ok(b))?
            }
            Mech::UnixSocket => {
                let (a, b) = baselines::socket_duplex()?;
                self.ping_pong(&map, len, deadline, move || Ok(a), move || Ok(b))?
            }
            Mech::PipeBig => {
                return Err(BenchError::Unavailable("not a round-trip mechanism".into()))
            }
        };
        process::supervise(&mut children, map.control(), self.config.timeout, &what)?;
        self.names.remove_all();
        Percentiles::of(map.samples())
            .ok_or_else(|| BenchError::Failed(format!("{what}: no samples")))
    }

    /// Forks the ponger (opened by `open_b`) and the pinger (`open_a`).
    fn ping_pong<A: Duplex, B: Duplex>(
        &self,
        map: &ControlMap,
        len: usize,
        deadline: u64,
        open_a: impl FnOnce() -> Result<A, String>,
        open_b: impl FnOnce() -> Result<B, String>,
    ) -> Result<Vec<Child>, BenchError> {
        let (warm, n) = (self.config.warmup_round_trips, self.config.round_trips);
        let ctl = map.control();
        let ponger = fork_child("ponger", 1, self.cpu(1), ctl, move || {
            let mut d = open_b()?;
            ctl.barrier(2, deadline)?;
            workload::pong(&mut d, len, warm + n)
        })?;
        let pinger = fork_child("pinger", 0, self.cpu(0), ctl, move || {
            let mut d = open_a()?;
            ctl.barrier(2, deadline)?;
            workload::pinger(&mut d, map, len, warm, n)
        })?;
        Ok(vec![pinger, ponger])
    }

    /// One timed one-way transfer of `load` over `mech`.
    fn throughput(&mut self, mech: Mech, load: Load) -> Result<Transfer, BenchError> {
        let map = ControlMap::new(0)?;
        let deadline = self.deadline_ns();
        let what = format!(
            "throughput, {}, {}",
            mech.label(),
            report::load(load, self.config)
        );
        let (mut children, buffer) = match mech {
            Mech::Shmlane(wait, notifier) => {
                let ring = ring_for(load);
                let name = self.name("oneway");
                shm::create_ring(&name, ring, notifier, &mut self.names)?;
                let name2 = name.clone();
                let children = self.transfer(
                    &map,
                    load,
                    deadline,
                    move || shm::ShmTx::open(&name, wait),
                    move || shm::ShmRx::open(&name2, wait),
                )?;
                (children, Some(ring))
            }
            Mech::Pipe | Mech::PipeBig => {
                let (rx, tx) = baselines::pipe((mech == Mech::PipeBig).then_some(1 << 20))?;
                let buffer = baselines::pipe_buffer(&tx);
                let children = self.transfer(
                    &map,
                    load,
                    deadline,
                    move || Ok(baselines::FdTx(tx)),
                    move || Ok(baselines::FdRx(rx)),
                )?;
                (children, buffer)
            }
            Mech::UnixSocket => {
                let (a, b) = baselines::socket_pair()?;
                let children = self.transfer(
                    &map,
                    load,
                    deadline,
                    move || Ok(baselines::FdTx(a)),
                    move || Ok(baselines::FdRx(b)),
                )?;
                (children, None)
            }
            Mech::RawLine => {
                return Err(BenchError::Unavailable("not a throughput mechanism".into()))
            }
        };
        let ctl = map.control();
        process::supervise(&mut children, ctl, self.config.timeout, &what)?;
        self.names.remove_all();
        let (t0, t1) = (
            ctl.t_start.load(std::sync::atomic::Ordering::Relaxed),
            ctl.t_end.load(std::sync::atomic::Ordering::Relaxed),
        );
        if t0 == 0 || t1 <= t0 {
            return Err(BenchError::Failed(format!(
                "{what}: no valid timestamps ({t0}, {t1})"
            )));
        }
        let (bytes, messages) = match load {
            Load::Messages(len) => {
                let (_, n) = self.config.message_counts(len);
                (n * len as u64, n)
            }
            Load::Stream => (self.config.stream_len, 1),
        };
        Ok(Transfer {
            nanos: t1 - t0,
            bytes,
            messages,
            buffer,
        })
    }

    /// Forks the consumer (opened by `open_rx`) and the producer (`open_tx`).
    fn transfer<T: Tx, R: Rx>(
        &self,
        map: &ControlMap,
        load: Load,
        deadline: u64,
        open_tx: impl FnOnce() -> Result<T, String>,
        open_rx: impl FnOnce() -> Result<R, String>,
    ) -> Result<Vec<Child>, BenchError> {
        let ctl = map.control();
        let cfg = self.config;
        let consumer = fork_child("consumer", 1, self.cpu(1), ctl, move || {
            let mut r = open_rx()?;
            ctl.barrier(2, deadline)?;
            match load {
                Load::Messages(len) => {
                    let (warm, n) = cfg.message_counts(len);
                    workload::consume(&mut r, ctl, len, warm, n)
                }
                Load::Stream => {
                    workload::consume_stream(&mut r, ctl, cfg.stream_warmup, cfg.stream_len)
                }
            }
        })?;
        let producer = fork_child("producer", 0, self.cpu(0), ctl, move || {
            let mut t = open_tx()?;
            ctl.barrier(2, deadline)?;
            match load {
                Load::Messages(len) => {
                    let (warm, n) = cfg.message_counts(len);
                    workload::produce(&mut t, ctl, len, warm, n, deadline)
                }
                Load::Stream => workload::produce_stream(
                    &mut t,
                    ctl,
                    cfg.stream_warmup,
                    cfg.stream_len,
                    deadline,
                ),
            }
        })?;
        Ok(vec![producer, consumer])
    }
}
