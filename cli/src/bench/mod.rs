//! `shmlane bench`: round-trip latency and one-way throughput of shmlane beside
//! pipes, UNIX stream and seqpacket sockets, TCP loopback, POSIX message queues and
//! the two floors (a raw shared cache line; a futex doorbell), measured in one run
//! with real processes; and the throughput of shmlane's MPMC ring with several
//! producer and consumer processes beside crossbeam's `ArrayQueue` between threads
//! and a shared pipe ([`contention`]).
//!
//! Every measurement: the parent sets up the segment, pipe, socket or queue, forks a
//! producer (pinger) pinned to the first allowed CPU and a consumer (ponger) pinned to
//! the second, and supervises them with a deadline. The children meet at a start
//! barrier in a shared page, run a warm-up, then the timed part; the pinger's samples
//! and the transfer's timestamps come back through that page. A full run repeats the
//! whole suite (interleaved rounds) and reports each figure's median.
//!
//! The mechanisms are one table, [`mechs::MECHANISMS`]; the command line and its help
//! are in [`args`]; the output in [`report`] (table, JSON) and [`plot`] (SVG).

mod args;
mod baselines;
mod contention;
mod mechs;
mod plot;
mod process;
mod report;
mod shm;
mod stats;
mod workload;

use std::fmt;
use std::time::{Duration, Instant};

use shmlane::{Notifier, Wait};

pub(crate) use args::{description, main, Args, Options, EXIT_STATUS};
use baselines::{BufferedStream, ByteStream, ChanRx, ChanTx, Packets, SeqPacket};
use mechs::{Loads, Mech, MechSpec, RingKind, Shape, MECHANISMS, SHAPES};
use process::{fork_child, now_ns, Child, ControlMap, ShmNames, SignalBlock};
use stats::{Curve, Percentiles};
use workload::{Duplex, LatencyPlan, Rx, Span, Tx};

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
    /// Every round-trip row.
    pub(crate) latency: LatencyPlan,
    /// Capacity of each of the two rings of a round trip.
    pub(crate) latency_ring: usize,
    /// Warm-up of a throughput row of messages, at least two laps of the ring.
    pub(crate) warm_ns: u64,
    /// Timed part of a throughput row of messages.
    pub(crate) timed_ns: u64,
    /// Length of the streamed message, and of the one streamed first as a warm-up.
    pub(crate) stream_len: u64,
    pub(crate) stream_warmup: u64,
    /// Warm-up and timed part of an MPMC throughput row.
    pub(crate) contention_warm_ns: u64,
    pub(crate) contention_timed_ns: u64,
    /// Longest time one measurement may take before its children are killed.
    pub(crate) timeout: Duration,
}

const MS: u64 = 1_000_000;

impl Config {
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Config {
                quick,
                rounds: 1,
                latency: LatencyPlan {
                    warm: Span {
                        min: 200,
                        ns: 20 * MS,
                    },
                    timed: Span {
                        min: 1000,
                        ns: 200 * MS,
                    },
                    max_samples: 20_000,
                },
                latency_ring: 64 << 10,
                warm_ns: 30 * MS,
                timed_ns: 200 * MS,
                stream_len: 64 << 20,
                stream_warmup: 8 << 20,
                contention_warm_ns: 30 * MS,
                contention_timed_ns: 150 * MS,
                timeout: Duration::from_secs(20),
            }
        } else {
            Config {
                quick,
                rounds: 3,
                latency: LatencyPlan {
                    warm: Span {
                        min: 2000,
                        ns: 100 * MS,
                    },
                    timed: Span {
                        min: 10_000,
                        ns: 1000 * MS,
                    },
                    max_samples: 100_000,
                },
                latency_ring: 64 << 10,
                warm_ns: 100 * MS,
                timed_ns: 500 * MS,
                stream_len: 256 << 20,
                stream_warmup: 32 << 20,
                contention_warm_ns: 100 * MS,
                contention_timed_ns: 500 * MS,
                timeout: Duration::from_secs(60),
            }
        }
    }

    /// `(warm-up, timed part)` of a throughput row of `len`-byte messages.
    fn spans(&self, len: usize) -> (Span, Span) {
        let laps = 2 * ring_for(Load::Messages(len)) as u64 / len.max(1) as u64;
        (
            Span {
                min: laps.max(1),
                ns: self.warm_ns,
            },
            Span {
                min: 8,
                ns: self.timed_ns,
            },
        )
    }
}

/// The round-trip message sizes.
pub(crate) const LATENCY_SIZES: [usize; 3] = [8, 1 << 10, 16 << 10];

/// What a throughput row sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Load {
    /// Many messages of this many bytes.
    Messages(usize),
    /// One message of `Config::stream_len` bytes, written and read in 1 MiB chunks.
    Stream,
}

/// The throughput loads, in order.
const LOADS: [Load; 5] = [
    Load::Messages(64),
    Load::Messages(4 << 10),
    Load::Messages(64 << 10),
    Load::Messages(1 << 20),
    Load::Stream,
];

impl Load {
    /// The largest piece the sender hands to the channel at once.
    fn unit(self) -> usize {
        match self {
            Load::Messages(len) => len,
            Load::Stream => workload::STREAM_CHUNK,
        }
    }
}

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
    /// The socket buffer the throughput rows ask for (SO_SNDBUF, SO_RCVBUF).
    pub(crate) socket_buffer: usize,
    pub(crate) mq: baselines::MqLimits,
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
            socket_buffer: baselines::socket_buffer_request(),
            mq: baselines::MqLimits::read(),
        }
    }
}

/// A round-trip row: one summary and one curve per round.
#[derive(Clone, Debug)]
pub(crate) struct LatencyRow {
    pub(crate) spec: &'static MechSpec,
    pub(crate) size: usize,
    pub(crate) rounds: Vec<Percentiles>,
    pub(crate) curves: Vec<Curve>,
    pub(crate) skipped: Option<String>,
}

/// A channel's buffer, as the table shows it.
#[derive(Clone, Debug)]
pub(crate) struct Buffer {
    pub(crate) text: String,
    pub(crate) bytes: u64,
}

impl Buffer {
    fn bytes(bytes: usize) -> Self {
        Buffer {
            text: report::size(bytes),
            bytes: bytes as u64,
        }
    }
}

/// One timed transfer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Transfer {
    pub(crate) nanos: u64,
    pub(crate) bytes: u64,
    pub(crate) messages: u64,
}

/// A throughput row.
#[derive(Clone, Debug)]
pub(crate) struct ThroughputRow {
    pub(crate) spec: &'static MechSpec,
    pub(crate) load: Load,
    pub(crate) buffer: Option<Buffer>,
    /// How the mechanism had to cut the messages, if it did.
    pub(crate) note: Option<String>,
    pub(crate) rounds: Vec<Transfer>,
    pub(crate) skipped: Option<String>,
}

/// An MPMC throughput row: `shape` over one channel, `len`-byte messages.
#[derive(Clone, Debug)]
pub(crate) struct ContentionRow {
    pub(crate) spec: &'static MechSpec,
    pub(crate) len: usize,
    pub(crate) shape: Shape,
    pub(crate) buffer: Option<Buffer>,
    /// Per round: the messages consumed in the timed part, and its length.
    pub(crate) rounds: Vec<Transfer>,
    pub(crate) skipped: Option<String>,
}

/// Everything one run measured.
#[derive(Clone, Debug)]
pub(crate) struct Results {
    pub(crate) config: Config,
    pub(crate) env: Env,
    pub(crate) latency: Vec<LatencyRow>,
    pub(crate) throughput: Vec<ThroughputRow>,
    pub(crate) contention: Vec<ContentionRow>,
    pub(crate) elapsed: Duration,
}

fn rows(opts: &Options, config: &Config, env: &Env) -> Results {
    let chosen = |m: &&'static MechSpec| match &opts.only {
        None => true,
        Some(only) => only.iter().any(|o| o.id == m.id),
    };
    let latency = LATENCY_SIZES
        .iter()
        .flat_map(|&size| {
            MECHANISMS
                .iter()
                .filter(chosen)
                .filter(|m| m.latency)
                .map(move |spec| LatencyRow {
                    spec,
                    size,
                    rounds: Vec::new(),
                    curves: Vec::new(),
                    skipped: (env.cpus.is_none() && spec.mech.spins())
                        .then(|| "needs 2 CPUs (both sides spin)".into()),
                })
        })
        .collect();
    let throughput = LOADS
        .iter()
        .flat_map(|&load| {
            MECHANISMS
                .iter()
                .filter(chosen)
                .filter(move |m| match m.loads {
                    Loads::None => false,
                    Loads::Small => matches!(load, Load::Messages(n) if n <= 4 << 10),
                    Loads::Messages => matches!(load, Load::Messages(_)),
                    Loads::All => true,
                })
                .map(move |spec| ThroughputRow {
                    spec,
                    load,
                    buffer: None,
                    note: None,
                    rounds: Vec::new(),
                    skipped: (env.cpus.is_none() && spec.mech.spins())
                        .then(|| "needs 2 CPUs (both sides spin)".into()),
                })
        })
        .collect();
    let contention = contention::SIZES
        .iter()
        .flat_map(|&len| {
            SHAPES.iter().flat_map(move |&shape| {
                MECHANISMS
                    .iter()
                    .filter(chosen)
                    .filter(move |m| m.contention.contains(&shape))
                    .map(move |spec| ContentionRow {
                        spec,
                        len,
                        shape,
                        buffer: None,
                        rounds: Vec::new(),
                        skipped: (env.cpus.is_none() && spec.mech.spins())
                            .then(|| "needs 2 CPUs (it spins)".into()),
                    })
            })
        })
        .collect();
    Results {
        config: config.clone(),
        env: env.clone(),
        latency,
        throughput,
        contention,
        elapsed: Duration::ZERO,
    }
}

/// Runs the bench and prints the table (or JSON) on stdout; draws the plot.
pub(crate) fn run(opts: &Options) -> Result<(), BenchError> {
    // Fail before a long run, not after it, if the plot cannot be written.
    let plot_file = match &opts.plot {
        Some(path) => Some(std::fs::File::create(path).map_err(|e| {
            BenchError::Failed(format!("cannot write the plot to {}: {e}", path.display()))
        })?),
        None => None,
    };
    let result = measure(opts);
    let results = match result {
        Ok(r) => r,
        Err(e) => {
            if let Some(path) = &opts.plot {
                drop(plot_file);
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    let out = if opts.json {
        report::json(&results)
    } else {
        report::table(&results)
    };
    crate::output::print(&out).map_err(|f| BenchError::Failed(f.message))?;
    if let (Some(path), Some(mut file)) = (&opts.plot, plot_file) {
        use std::io::Write;
        let svg = plot::svg(&results).map_err(BenchError::Failed)?;
        file.write_all(svg.as_bytes())
            .and_then(|()| file.flush())
            .map_err(|e| {
                BenchError::Failed(format!("writing the plot to {}: {e}", path.display()))
            })?;
        if !opts.json {
            crate::output::print(&format!("plot: {}\n", path.display()))
                .map_err(|f| BenchError::Failed(f.message))?;
        }
    }
    Ok(())
}

fn measure(opts: &Options) -> Result<Results, BenchError> {
    let config = Config::new(opts.quick);
    let _signals = SignalBlock::new();
    let env = Env::detect();
    let started = Instant::now();
    let mut results = rows(opts, &config, &env);
    let mut runner = Runner {
        config: &config,
        env: &env,
        names: ShmNames::default(),
        next_name: 0,
        progress: Progress::new(
            config.rounds
                * (results.latency.len() + results.throughput.len() + results.contention.len()),
        ),
    };
    for round in 0..config.rounds {
        for row in &mut results.latency {
            runner.progress.step(
                round,
                &format!("round trip {} {}", report::size(row.size), row.spec.label),
            );
            if row.skipped.is_some() {
                continue;
            }
            match runner.latency(row.spec.mech, row.size) {
                Ok((p, c)) => {
                    row.rounds.push(p);
                    row.curves.push(c);
                }
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
                    row.spec.label
                ),
            );
            if row.skipped.is_some() {
                continue;
            }
            match runner.throughput(row.spec.mech, row.load) {
                Ok((t, setup)) => {
                    row.buffer = setup.buffer;
                    row.note = setup.note;
                    row.rounds.push(t);
                }
                Err(BenchError::Unavailable(why)) => row.skipped = Some(why),
                Err(e) => return Err(runner.fail(e)),
            }
        }
        for row in &mut results.contention {
            runner.progress.step(
                round,
                &format!(
                    "MPMC throughput {} {} {}",
                    report::size(row.len),
                    row.shape,
                    row.spec.label
                ),
            );
            if row.skipped.is_some() {
                continue;
            }
            match runner.contention(row.spec.mech, row.len, row.shape) {
                Ok((t, setup)) => {
                    row.buffer = setup.buffer;
                    row.rounds.push(t);
                }
                Err(BenchError::Unavailable(why)) => row.skipped = Some(why),
                Err(e) => return Err(runner.fail(e)),
            }
        }
    }
    runner.progress.done();
    results.elapsed = started.elapsed();
    Ok(results)
}

/// How a throughput row's channel was set up.
#[derive(Debug, Default)]
struct Setup {
    buffer: Option<Buffer>,
    note: Option<String>,
}

/// The progress line on stderr, when it is a terminal: rows done of all, the time
/// spent, and the row being measured. Redrawn at each row only, with no ticker thread:
/// the measurements fork, and a thread holding the terminal's lock at a fork would
/// leave the child unable to print.
#[derive(Debug)]
struct Progress {
    bar: indicatif::ProgressBar,
    /// Rows started.
    started: u64,
}

impl Progress {
    /// The line's template: `[42s] [###>----] 12/40 round 1: throughput 64 B pipe`,
    /// 12 rows done and the 13th running.
    const TEMPLATE: &'static str = "[{elapsed}] [{bar:30}] {pos}/{len} {wide_msg}";

    fn new(total: usize) -> Self {
        use std::io::IsTerminal;
        let target = if std::io::stderr().is_terminal() {
            indicatif::ProgressDrawTarget::stderr()
        } else {
            indicatif::ProgressDrawTarget::hidden()
        };
        Progress::to(target, total)
    }

    fn to(target: indicatif::ProgressDrawTarget, total: usize) -> Self {
        let style = indicatif::ProgressStyle::with_template(Self::TEMPLATE)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("#>-");
        let bar =
            indicatif::ProgressBar::with_draw_target(Some(total as u64), target).with_style(style);
        Progress { bar, started: 0 }
    }

    /// Starts the next row, `what` in `round` (from 0): the one before it is done.
    fn step(&mut self, round: usize, what: &str) {
        self.bar.set_position(self.started);
        self.bar.set_message(format!("round {}: {what}", round + 1));
        self.started += 1;
    }

    /// Clears the line (the table follows, or an error).
    fn done(&self) {
        self.bar.finish_and_clear();
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
    /// A fresh segment or queue name: the pid keeps concurrent runs apart.
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

    /// The round-trip times of `len`-byte messages over `mech`.
    fn latency(&mut self, mech: Mech, len: usize) -> Result<(Percentiles, Curve), BenchError> {
        let map = ControlMap::new(self.config.latency.max_samples)?;
        let deadline = self.deadline_ns();
        let what = format!(
            "round trip, {}, {}",
            MECHANISMS
                .iter()
                .find(|m| m.mech == mech)
                .map_or("?", |m| m.label),
            report::size(len)
        );
        let mut children = match mech {
            Mech::RawLine | Mech::FutexDoorbell => {
                // The children keep the mapping after the parent's `lines` unmaps it.
                let lines = baselines::RawLines::new(len)?;
                let (a, b) = lines.ends(mech == Mech::FutexDoorbell, deadline);
                self.ping_pong(&map, len, deadline, move || Ok(a), move || Ok(b))?
            }
            Mech::MinimalRing => {
                // The children keep the mappings after the parent drops them.
                let ring = self.config.latency_ring;
                let (ab, ba) = (
                    baselines::minimal_ring(ring, len)?,
                    baselines::minimal_ring(ring, len)?,
                );
                let ((ab_tx, ab_rx), (ba_tx, ba_rx)) = (ab.ends(deadline), ba.ends(deadline));
                let a = baselines::MinDuplex {
                    tx: ab_tx,
                    rx: ba_rx,
                };
                let b = baselines::MinDuplex {
                    tx: ba_tx,
                    rx: ab_rx,
                };
                self.ping_pong(&map, len, deadline, move || Ok(a), move || Ok(b))?
            }
            Mech::Ring(kind, wait, notifier) => match kind {
                RingKind::Spsc => {
                    self.ring_ping_pong::<shm::Spsc>(&map, len, deadline, wait, notifier)?
                }
                RingKind::Mpmc => {
                    self.ring_ping_pong::<shm::Mpmc>(&map, len, deadline, wait, notifier)?
                }
            },
            Mech::Pipe => {
                let (a, b) = baselines::pipe_duplex()?;
                self.ping_pong(&map, len, deadline, move || Ok(a), move || Ok(b))?
            }
            Mech::PipePolled => {
                let (a, b) = baselines::polled_pipe_duplex()?;
                self.ping_pong(&map, len, deadline, move || Ok(a), move || Ok(b))?
            }
            Mech::UnixStream => {
                let pair = baselines::socket_pair(libc::SOCK_STREAM)?;
                let (a, b) = baselines::socket_duplex(pair, ByteStream)?;
                self.ping_pong(&map, len, deadline, move || Ok(a), move || Ok(b))?
            }
            Mech::UnixSeqpacket => {
                let pair = baselines::socket_pair(libc::SOCK_SEQPACKET)?;
                let max = baselines::seqpacket_max(&pair.0).min(len);
                let (a, b) = baselines::socket_duplex(pair, |f| Packets::new(SeqPacket(f), max))?;
                self.ping_pong(&map, len, deadline, move || Ok(a), move || Ok(b))?
            }
            Mech::Tcp => {
                let (a, b) = baselines::socket_duplex(baselines::tcp_pair()?, ByteStream)?;
                self.ping_pong(&map, len, deadline, move || Ok(a), move || Ok(b))?
            }
            Mech::Mqueue => {
                let names = [self.name("mq-ping"), self.name("mq-pong")];
                let (a, b) = baselines::mq_duplex(names, len)?;
                self.ping_pong(&map, len, deadline, move || Ok(a), move || Ok(b))?
            }
            Mech::PipeBig | Mech::ArrayQueue => {
                return Err(BenchError::Unavailable("not a round-trip mechanism".into()))
            }
        };
        process::supervise(&mut children, map.control(), self.config.timeout, &what)?;
        self.names.remove_all();
        let mut samples = map.samples();
        let curve = Curve::of(&mut samples)
            .ok_or_else(|| BenchError::Failed(format!("{what}: no samples")))?;
        let p = Percentiles::of(samples)
            .ok_or_else(|| BenchError::Failed(format!("{what}: no samples")))?;
        Ok((p, curve))
    }

    /// Creates two rings of kind `R` and forks a round trip over them.
    fn ring_ping_pong<R: shm::Ring>(
        &mut self,
        map: &ControlMap,
        len: usize,
        deadline: u64,
        wait: Wait,
        notifier: Notifier,
    ) -> Result<Vec<Child>, BenchError> {
        let (ab, ba) = (self.name("ping"), self.name("pong"));
        let ring = self.config.latency_ring;
        shm::create_ring::<R>(&ab, ring, len, notifier, &mut self.names)?;
        shm::create_ring::<R>(&ba, ring, len, notifier, &mut self.names)?;
        let (ab2, ba2) = (ab.clone(), ba.clone());
        self.ping_pong(
            map,
            len,
            deadline,
            move || shm::ShmDuplex::<R>::open(&ab, &ba, wait),
            move || shm::ShmDuplex::<R>::open(&ba2, &ab2, wait),
        )
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
        let plan = self.config.latency;
        let ctl = map.control();
        let ponger = fork_child("ponger", 1, self.cpu(1), ctl, move || {
            let mut d = open_b()?;
            ctl.barrier(2, deadline)?;
            workload::pong(&mut d, len)
        })?;
        let pinger = fork_child("pinger", 0, self.cpu(0), ctl, move || {
            let mut d = open_a()?;
            ctl.barrier(2, deadline)?;
            workload::pinger(&mut d, map, len, &plan)
        })?;
        Ok(vec![pinger, ponger])
    }

    /// One timed one-way transfer of `load` over `mech`.
    fn throughput(&mut self, mech: Mech, load: Load) -> Result<(Transfer, Setup), BenchError> {
        let map = ControlMap::new(0)?;
        let deadline = self.deadline_ns();
        let what = format!(
            "throughput, {}, {}",
            MECHANISMS
                .iter()
                .find(|m| m.mech == mech)
                .map_or("?", |m| m.label),
            report::load(load, self.config)
        );
        let unit = load.unit();
        let sockbuf = self.env.socket_buffer;
        let (mut children, setup) = match mech {
            Mech::MinimalRing => {
                let Load::Messages(len) = load else {
                    return Err(BenchError::Unavailable(
                        "the minimal ring has no streams".into(),
                    ));
                };
                let capacity = ring_for(load);
                let ring = baselines::minimal_ring(capacity, len)?;
                let (tx, rx) = ring.ends(deadline);
                let children = self.transfer(
                    &map,
                    load,
                    deadline,
                    move || Ok(baselines::MinTx(tx)),
                    move || Ok(baselines::MinRx(rx)),
                )?;
                let buffer = Some(Buffer::bytes(capacity));
                (children, Setup { buffer, note: None })
            }
            Mech::Ring(kind, wait, notifier) => match kind {
                RingKind::Spsc => {
                    self.ring_transfer::<shm::Spsc>(&map, load, deadline, wait, notifier)?
                }
                RingKind::Mpmc => {
                    self.ring_transfer::<shm::Mpmc>(&map, load, deadline, wait, notifier)?
                }
            },
            Mech::Pipe | Mech::PipeBig => {
                let (rx, tx) = baselines::pipe((mech == Mech::PipeBig).then_some(1 << 20))?;
                let buffer = baselines::pipe_buffer(&tx).map(Buffer::bytes);
                let children = self.transfer(
                    &map,
                    load,
                    deadline,
                    move || Ok(ChanTx(ByteStream(tx))),
                    move || Ok(ChanRx(BufferedStream::new(rx))),
                )?;
                (children, Setup { buffer, note: None })
            }
            Mech::UnixStream | Mech::Tcp => {
                let (a, b) = if mech == Mech::Tcp {
                    baselines::tcp_pair()?
                } else {
                    baselines::socket_pair(libc::SOCK_STREAM)?
                };
                baselines::set_socket_buffers(&a, sockbuf)?;
                baselines::set_socket_buffers(&b, sockbuf)?;
                let children = self.transfer(
                    &map,
                    load,
                    deadline,
                    move || Ok(ChanTx(ByteStream(a))),
                    move || Ok(ChanRx(BufferedStream::new(b))),
                )?;
                let buffer = Some(Buffer::bytes(sockbuf));
                (children, Setup { buffer, note: None })
            }
            Mech::UnixSeqpacket => {
                let (a, b) = baselines::socket_pair(libc::SOCK_SEQPACKET)?;
                baselines::set_socket_buffers(&a, sockbuf)?;
                baselines::set_socket_buffers(&b, sockbuf)?;
                let limit = baselines::seqpacket_max(&a);
                let max = limit.min(unit);
                let note = (unit > max).then(|| {
                    format!(
                        "UNIX seqpacket socket: {} pieces sent as packets of {} (the most \
                         a {} send buffer takes)",
                        report::size(unit),
                        report::size(max),
                        report::size(sockbuf)
                    )
                });
                let children = self.transfer(
                    &map,
                    load,
                    deadline,
                    move || Ok(ChanTx(Packets::new(SeqPacket(a), max))),
                    move || Ok(ChanRx(Packets::new(SeqPacket(b), max))),
                )?;
                let buffer = Some(Buffer::bytes(sockbuf));
                (children, Setup { buffer, note })
            }
            Mech::Mqueue => {
                let (depth, msgsize) = self.env.mq.queue_for(unit);
                let name = self.name("mq");
                let tx = baselines::Mq::create(&name, depth, msgsize)?;
                let rx = tx.try_dup()?;
                let note = (unit > msgsize).then(|| {
                    format!(
                        "POSIX message queue: {} pieces sent as {} queue messages of {} \
                         (fs.mqueue.msgsize_max)",
                        report::size(unit),
                        unit.div_ceil(msgsize),
                        report::size(msgsize)
                    )
                });
                let children = self.transfer(
                    &map,
                    load,
                    deadline,
                    move || Ok(ChanTx(Packets::new(tx, msgsize))),
                    move || Ok(ChanRx(Packets::new(rx, msgsize))),
                )?;
                let buffer = Some(Buffer {
                    text: format!("{depth} x {}", report::size(msgsize)),
                    bytes: (depth * msgsize) as u64,
                });
                (children, Setup { buffer, note })
            }
            Mech::RawLine | Mech::FutexDoorbell | Mech::PipePolled | Mech::ArrayQueue => {
                return Err(BenchError::Unavailable("not a throughput mechanism".into()))
            }
        };
        let ctl = map.control();
        process::supervise(&mut children, ctl, self.config.timeout, &what)?;
        self.names.remove_all();
        use std::sync::atomic::Ordering::Relaxed;
        let (t0, t1, count) = (
            ctl.t_start.load(Relaxed),
            ctl.t_end.load(Relaxed),
            ctl.count.load(Relaxed),
        );
        if t0 == 0 || t1 <= t0 || count == 0 {
            return Err(BenchError::Failed(format!(
                "{what}: no valid timestamps or count ({t0}, {t1}, {count})"
            )));
        }
        let bytes = match load {
            Load::Messages(len) => count * len as u64,
            Load::Stream => self.config.stream_len,
        };
        let transfer = Transfer {
            nanos: t1 - t0,
            bytes,
            messages: count,
        };
        Ok((transfer, setup))
    }

    /// Creates a ring of kind `R` and forks a one-way transfer over it.
    fn ring_transfer<R: shm::Ring>(
        &mut self,
        map: &ControlMap,
        load: Load,
        deadline: u64,
        wait: Wait,
        notifier: Notifier,
    ) -> Result<(Vec<Child>, Setup), BenchError> {
        let ring = ring_for(load);
        let name = self.name("oneway");
        shm::create_ring::<R>(&name, ring, load.unit(), notifier, &mut self.names)?;
        let name2 = name.clone();
        let children = self.transfer(
            map,
            load,
            deadline,
            move || shm::ShmTx::<R>::open(&name, wait),
            move || shm::ShmRx::<R>::open(&name2, wait),
        )?;
        let buffer = if R::CELLS {
            let cell = shm::cell_size(ring, load.unit());
            Buffer {
                text: format!("{} / {}", report::size(ring), report::size(cell)),
                bytes: ring as u64,
            }
        } else {
            Buffer::bytes(ring)
        };
        let setup = Setup {
            buffer: Some(buffer),
            note: None,
        };
        Ok((children, setup))
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
                Load::Messages(len) => workload::consume(&mut r, ctl, len),
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
                    let (warm, timed) = cfg.spans(len);
                    workload::produce(&mut t, ctl, len, warm, timed, deadline)
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

#[cfg(test)]
mod tests {
    use super::Progress;
    use crate::pipe::progress::tests::Screen;

    #[test]
    fn progress_counts_rows_done() {
        let screen = Screen::default();
        let mut p = Progress::to(screen.target(), 3);
        p.step(0, "round trip 64 B pipe");
        let line = screen.last();
        assert!(
            line.contains("] 0/3 round 1: round trip 64 B pipe"),
            "{line}"
        );
        p.step(0, "throughput 64 B pipe");
        p.step(1, "round trip 64 B pipe");
        let line = screen.last();
        assert!(
            line.contains("] 2/3 round 2: round trip 64 B pipe"),
            "{line}"
        );
        assert!(line.starts_with("[0s] [####################>"), "{line}");
        p.done();
        assert!(p.bar.is_finished());
    }
}
