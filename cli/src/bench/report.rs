//! The bench's output: the table, the targets, and the same figures as JSON.
//!
//! Every ratio is taken between figures of the same run (the VM's noise moves runs
//! by tens of percent; it moves rows of one run much less).

use std::fmt::Write;

use serde::Serialize;
use shmlane::{Notifier, Wait};

use super::mechs::{Mech, RingKind, Shape, SHAPES};
use super::stats::{median, Curve, Percentiles, CURVE_PPM};
use super::{Config, ContentionRow, LatencyRow, Load, Results, ThroughputRow, LATENCY_SIZES};

/// `8 B`, `1 KiB`, `64 KiB`, `1 MiB`, `256 MiB`, ... (exact multiples only; else
/// the smaller unit).
pub(crate) fn size(bytes: usize) -> String {
    size_u64(bytes as u64)
}

pub(crate) fn size_u64(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes;
    let mut unit = 0;
    while unit + 1 < UNITS.len() && v >= 1024 && v % 1024 == 0 {
        v /= 1024;
        unit += 1;
    }
    format!("{v} {}", UNITS[unit])
}

/// A byte count with three significant digits: `512 B`, `12.3 MiB`, `1.50 GiB`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while unit + 1 < UNITS.len() && v >= 1024.0 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if v >= 100.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else if v >= 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.2} {}", UNITS[unit])
    }
}

/// The load's name in the table.
pub(crate) fn load(load: Load, config: &Config) -> String {
    match load {
        Load::Messages(len) => size(len),
        Load::Stream => format!("{} streamed", size_u64(config.stream_len)),
    }
}

fn load_id(load: Load) -> &'static str {
    match load {
        Load::Messages(_) => "messages",
        Load::Stream => "stream",
    }
}

/// A latency row with its medians and ratios.
pub(crate) struct LatencyFigures<'a> {
    pub(crate) row: &'a LatencyRow,
    pub(crate) median: Option<Percentiles>,
    pub(crate) curve: Option<Curve>,
    pub(crate) p50_vs_floor: Option<f64>,
    pub(crate) p99_vs_floor: Option<f64>,
    /// The pipe's p50 over this row's: how many times faster than a pipe.
    pub(crate) pipe_vs_p50: Option<f64>,
}

/// A throughput row with its medians and ratio.
pub(crate) struct ThroughputFigures<'a> {
    pub(crate) row: &'a ThroughputRow,
    /// Median across rounds of each round's figure.
    pub(crate) seconds: Option<f64>,
    pub(crate) bytes: Option<u64>,
    pub(crate) gb_per_s: Option<f64>,
    pub(crate) msgs_per_s: Option<f64>,
    pub(crate) vs_pipe: Option<f64>,
    /// Messages/s over the minimal SPSC ring's at the same message size.
    pub(crate) vs_minimal: Option<f64>,
}

/// An MPMC throughput row with its medians and ratios (each to the row of the same
/// message size and shape).
pub(crate) struct ContentionFigures<'a> {
    pub(crate) row: &'a ContentionRow,
    pub(crate) msgs_per_s: Option<f64>,
    pub(crate) gb_per_s: Option<f64>,
    /// Over crossbeam's ArrayQueue between threads.
    pub(crate) vs_queue: Option<f64>,
    /// Over the shared pipe.
    pub(crate) vs_pipe: Option<f64>,
    /// Over the same mechanism's 1P1C row: how it scales.
    pub(crate) vs_one: Option<f64>,
}

/// MPMC over SPSC, one ring of each kind with one producer and one consumer.
pub(crate) struct MpmcVsSpsc {
    pub(crate) wait: Wait,
    /// Round trips: `(size, p50 ratio, p99 ratio)`.
    pub(crate) round_trip: Vec<(usize, Option<f64>, Option<f64>)>,
    /// One-way messages/s: `(size, ratio)`.
    pub(crate) one_way: Vec<(usize, Option<f64>)>,
}

/// The waits of the MPMC-over-SPSC comparison, with their names.
const COMPARED_WAITS: [(Wait, &str); 3] = [
    (Wait::Spin, "Spin"),
    (Wait::Adaptive, "Adaptive"),
    (Wait::Park, "Park"),
];

fn wait_name(wait: Wait) -> &'static str {
    COMPARED_WAITS
        .iter()
        .find(|(w, _)| *w == wait)
        .map_or("?", |(_, n)| n)
}

/// A target computed from the run.
pub(crate) struct Target {
    name: String,
    value: Option<f64>,
    /// `true`: the value must be at most `threshold`; `false`: at least.
    at_most: bool,
    threshold: f64,
}

impl Target {
    fn pass(&self) -> Option<bool> {
        self.value.map(|v| {
            if self.at_most {
                v <= self.threshold
            } else {
                v >= self.threshold
            }
        })
    }

    fn rule(&self) -> String {
        format!(
            "{} {}",
            if self.at_most { "<=" } else { ">=" },
            self.threshold
        )
    }
}

pub(crate) struct Summary<'a> {
    pub(crate) latency: Vec<LatencyFigures<'a>>,
    pub(crate) throughput: Vec<ThroughputFigures<'a>>,
    pub(crate) contention: Vec<ContentionFigures<'a>>,
    pub(crate) mpmc_vs_spsc: Vec<MpmcVsSpsc>,
    targets: Vec<Target>,
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn median_of(values: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = values.collect();
    (!v.is_empty()).then(|| median(&v))
}

pub(crate) fn summarize(r: &Results) -> Summary<'_> {
    let medians: Vec<Option<Percentiles>> = r
        .latency
        .iter()
        .map(|row| Percentiles::median_of(&row.rounds))
        .collect();
    let find = |mech: Mech, size: usize| {
        r.latency
            .iter()
            .zip(&medians)
            .find(|(row, _)| row.spec.mech == mech && row.size == size)
            .and_then(|(_, m)| *m)
    };
    let latency: Vec<LatencyFigures<'_>> = r
        .latency
        .iter()
        .zip(&medians)
        .map(|(row, m)| {
            let floor = find(Mech::RawLine, row.size);
            let pipe = find(Mech::Pipe, row.size);
            let p50 = m.map(|m| m.p50 as f64);
            LatencyFigures {
                row,
                median: *m,
                curve: Curve::median_of(&row.curves),
                p50_vs_floor: ratio(p50, floor.map(|f| f.p50 as f64)),
                p99_vs_floor: ratio(m.map(|m| m.p99 as f64), floor.map(|f| f.p99 as f64)),
                pipe_vs_p50: ratio(pipe.map(|p| p.p50 as f64), p50),
            }
        })
        .collect();

    let figures = |row: &ThroughputRow| {
        let rounds = &row.rounds;
        (
            median_of(rounds.iter().map(|t| t.nanos as f64 / 1e9)),
            median_of(rounds.iter().map(|t| t.bytes as f64)).map(|b| b.round() as u64),
            median_of(
                rounds
                    .iter()
                    .map(|t| t.bytes as f64 / t.nanos.max(1) as f64),
            ),
            median_of(
                rounds
                    .iter()
                    .map(|t| t.messages as f64 * 1e9 / t.nanos.max(1) as f64),
            ),
        )
    };
    let pipe_gb = |load: Load| {
        r.throughput
            .iter()
            .find(|row| row.spec.mech == Mech::Pipe && row.load == load)
            .and_then(|row| figures(row).2)
    };
    let minimal_msgs = |load: Load| {
        r.throughput
            .iter()
            .find(|row| row.spec.mech == Mech::MinimalRing && row.load == load)
            .and_then(|row| figures(row).3)
    };
    let throughput: Vec<ThroughputFigures<'_>> = r
        .throughput
        .iter()
        .map(|row| {
            let (seconds, bytes, gb, msgs) = figures(row);
            ThroughputFigures {
                row,
                seconds,
                bytes,
                gb_per_s: gb,
                msgs_per_s: msgs,
                vs_pipe: ratio(gb, pipe_gb(row.load)),
                vs_minimal: ratio(msgs, minimal_msgs(row.load)),
            }
        })
        .collect();

    // The MPMC throughput rows: messages/s, the median across rounds.
    let msgs = |row: &ContentionRow| {
        median_of(
            row.rounds
                .iter()
                .map(|t| t.messages as f64 * 1e9 / t.nanos.max(1) as f64),
        )
    };
    let crowd_rate = |mech: Mech, len: usize, shape: Shape| {
        r.contention
            .iter()
            .find(|c| c.spec.mech == mech && c.len == len && c.shape == shape)
            .and_then(msgs)
    };
    let one_one = SHAPES[0];
    let contention: Vec<ContentionFigures<'_>> = r
        .contention
        .iter()
        .map(|row| {
            let m = msgs(row);
            ContentionFigures {
                row,
                msgs_per_s: m,
                gb_per_s: m.map(|m| m * row.len as f64 / 1e9),
                vs_queue: ratio(m, crowd_rate(Mech::ArrayQueue, row.len, row.shape)),
                vs_pipe: ratio(m, crowd_rate(Mech::Pipe, row.len, row.shape)),
                vs_one: ratio(m, crowd_rate(row.spec.mech, row.len, one_one)),
            }
        })
        .collect();

    let lat_of = |mech: Mech, size: usize| {
        latency
            .iter()
            .find(|l| l.row.spec.mech == mech && l.row.size == size)
            .and_then(|l| l.median)
    };
    let lat = |mech: Mech, size: usize| lat_of(mech, size).map(|m| m.p50 as f64);
    let ring = |kind, wait| Mech::Ring(kind, wait, Notifier::Futex);
    let mpmc_vs_spsc = COMPARED_WAITS
        .iter()
        .map(|&(wait, _)| {
            let (m, sp) = (ring(RingKind::Mpmc, wait), ring(RingKind::Spsc, wait));
            let p = |mech, size, pick: fn(&Percentiles) -> u64| {
                lat_of(mech, size).map(|x| pick(&x) as f64)
            };
            MpmcVsSpsc {
                wait,
                round_trip: LATENCY_SIZES
                    .iter()
                    .map(|&size| {
                        (
                            size,
                            ratio(p(m, size, |x| x.p50), p(sp, size, |x| x.p50)),
                            ratio(p(m, size, |x| x.p99), p(sp, size, |x| x.p99)),
                        )
                    })
                    .collect(),
                one_way: super::contention::SIZES
                    .iter()
                    .map(|&size| {
                        let load = Load::Messages(size);
                        let rate = |mech: Mech| {
                            throughput
                                .iter()
                                .find(|t| t.row.spec.mech == mech && t.row.load == load)
                                .and_then(|t| t.msgs_per_s)
                        };
                        (size, ratio(rate(m), rate(sp)))
                    })
                    .collect(),
            }
        })
        .collect();
    let tput = |mech: Mech, load: Load, pick: fn(&ThroughputFigures<'_>) -> Option<f64>| {
        throughput
            .iter()
            .find(|t| t.row.spec.mech == mech && t.row.load == load)
            .and_then(pick)
    };
    let spsc = |wait, notifier| Mech::Ring(RingKind::Spsc, wait, notifier);
    let adaptive = spsc(Wait::Adaptive, Notifier::Futex);
    let small = Load::Messages(64);
    let big = Load::Messages(1 << 20);
    // Issue 20: one-way messages/s at least the minimal ring's, with either wait.
    let versus_minimal = [64usize, 4 << 10, 64 << 10].into_iter().flat_map(|len| {
        [(Wait::Spin, "Spin"), (Wait::Adaptive, "Adaptive")]
            .into_iter()
            .map(move |(wait, name)| (len, wait, name))
    });
    let minimal_targets: Vec<Target> = versus_minimal
        .map(|(len, wait, name)| Target {
            name: format!("shmlane {} msgs/s / minimal ring, Wait::{name}", size(len)),
            value: ratio(
                tput(spsc(wait, Notifier::Futex), Load::Messages(len), |t| {
                    t.msgs_per_s
                }),
                minimal_msgs(Load::Messages(len)),
            ),
            at_most: false,
            threshold: 1.0,
        })
        .collect();
    let mut targets = vec![
        Target {
            name: "shmlane 8 B round trip p50 / raw floor p50, Wait::Spin".into(),
            value: ratio(
                lat(spsc(Wait::Spin, Notifier::Futex), 8),
                lat(Mech::RawLine, 8),
            ),
            at_most: true,
            threshold: 1.3,
        },
        Target {
            name: "shmlane 8 B round trip p50 / raw floor p50, Wait::Adaptive".into(),
            value: ratio(lat(adaptive, 8), lat(Mech::RawLine, 8)),
            at_most: true,
            threshold: 1.3,
        },
        Target {
            name: "shmlane 8 B round trip p50, Park futex / futex doorbell".into(),
            value: ratio(
                lat(spsc(Wait::Park, Notifier::Futex), 8),
                lat(Mech::FutexDoorbell, 8),
            ),
            at_most: true,
            threshold: 1.1,
        },
        Target {
            name: "shmlane 64 B msgs/s / pipe 64 B msgs/s, Wait::Adaptive".into(),
            value: ratio(
                tput(adaptive, small, |t| t.msgs_per_s),
                tput(Mech::Pipe, small, |t| t.msgs_per_s),
            ),
            at_most: false,
            threshold: 15.0,
        },
        Target {
            name: "shmlane 1 MiB GB/s / pipe 1 MiB GB/s, Wait::Adaptive".into(),
            value: ratio(
                tput(adaptive, big, |t| t.gb_per_s),
                tput(Mech::Pipe, big, |t| t.gb_per_s),
            ),
            at_most: false,
            threshold: 5.0,
        },
        Target {
            name: "MPMC 1P1C 8 B round trip p50 / SPSC p50, Wait::Spin".into(),
            value: ratio(
                lat(ring(RingKind::Mpmc, Wait::Spin), 8),
                lat(ring(RingKind::Spsc, Wait::Spin), 8),
            ),
            at_most: true,
            threshold: 1.5,
        },
        Target {
            name: "MPMC 1P1C 8 B round trip p50 / SPSC p50, Wait::Adaptive".into(),
            value: ratio(
                lat(ring(RingKind::Mpmc, Wait::Adaptive), 8),
                lat(ring(RingKind::Spsc, Wait::Adaptive), 8),
            ),
            at_most: true,
            threshold: 1.5,
        },
        Target {
            name: "MPMC 2P2C 64 B msgs/s, processes / ArrayQueue 1P1C threads".into(),
            value: ratio(
                crowd_rate(ring(RingKind::Mpmc, Wait::Adaptive), 64, SHAPES[1]),
                crowd_rate(Mech::ArrayQueue, 64, one_one),
            ),
            at_most: false,
            threshold: 1.0,
        },
    ];
    targets.extend(minimal_targets);
    Summary {
        latency,
        throughput,
        contention,
        mpmc_vs_spsc,
        targets,
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) => format!("{v:.decimals$}"),
        None => "n/a".into(),
    }
}

/// A ratio with two significant decimals where it is small, fewer where large.
fn times(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}x"),
        Some(v) if v >= 10.0 => format!("{v:.1}x"),
        Some(v) => format!("{v:.2}x"),
        None => "n/a".into(),
    }
}

/// Messages per second: `64.11 M`, `636.4 k`.
fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.1}")
    }
}

/// A duration in ms or s.
fn span(ns: u64) -> String {
    if ns >= 1_000_000_000 {
        format!("{:.1} s", ns as f64 / 1e9)
    } else {
        format!("{} ms", ns / 1_000_000)
    }
}

/// The table, the targets and the run's parameters, for people.
pub(crate) fn table(r: &Results) -> String {
    let s = summarize(r);
    let c = &r.config;
    let e = &r.env;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "shmlane bench{}: {}",
        if c.quick { " --quick" } else { "" },
        if c.rounds == 1 {
            "1 round".to_string()
        } else {
            format!("median of {} interleaved rounds", c.rounds)
        }
    );
    let pinning = match e.cpus {
        Some([a, b]) => format!("producer/pinger pinned to CPU {a}, consumer/ponger to CPU {b}"),
        None => "one CPU: not pinned, spinning rows skipped".into(),
    };
    let _ = writeln!(
        o,
        "host: {}, Linux {}, {} CPUs allowed; {pinning}",
        e.cpu_model, e.kernel, e.allowed_cpus
    );
    let _ = writeln!(
        o,
        "each row: fresh forked processes; every receiver copies each message out and checks it"
    );
    let _ = writeln!(
        o,
        "clock: CLOCK_MONOTONIC, {:.0} ns per read (inside each round-trip sample)",
        e.clock_ns
    );

    let _ = writeln!(
        o,
        "\nRound trip (ping-pong), ns: each row timed for {} (at most {} round trips) after a \
         warm-up;\nshmlane: two {} rings; 'pipe/this' = how many times faster than a pipe",
        span(c.latency.timed.ns),
        c.latency.max_samples,
        size(c.latency_ring)
    );
    let _ = writeln!(
        o,
        "{:<7} {:<31} {:>7} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}",
        "size",
        "mechanism",
        "samples",
        "p50",
        "p99",
        "p99.9",
        "p50/floor",
        "p99/floor",
        "pipe/this"
    );
    let mut last_size = None;
    for l in &s.latency {
        let sz = if last_size == Some(l.row.size) {
            String::new()
        } else {
            size(l.row.size)
        };
        last_size = Some(l.row.size);
        let label = l.row.spec.label;
        match (&l.row.skipped, l.median) {
            (Some(why), _) => {
                let _ = writeln!(o, "{sz:<7} {label:<31} skipped: {why}");
            }
            (None, Some(m)) => {
                let n = l.curve.as_ref().map_or(0, |c| c.samples);
                let _ = writeln!(
                    o,
                    "{sz:<7} {label:<31} {n:>7} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}",
                    m.p50,
                    m.p99,
                    m.p999,
                    times(l.p50_vs_floor),
                    times(l.p99_vs_floor),
                    times(l.pipe_vs_p50)
                );
            }
            (None, None) => {
                let _ = writeln!(o, "{sz:<7} {label:<31} no data");
            }
        }
    }

    let _ = writeln!(
        o,
        "\nOne-way throughput, GB/s = 10^9 B/s, from the producer's first timed send to the \
         consumer's\ncheck of the last byte; messages timed for {} after a warm-up; the stream \
         is one message\nwritten and read in 1 MiB chunks. buffer: shmlane's ring (MPMC: ring / \
         cell size), the pipe's\nor the queue's capacity (depth x message size), the sockets' \
         SO_SNDBUF and SO_RCVBUF",
        span(c.timed_ns)
    );
    let _ = writeln!(
        o,
        "{:<16} {:<31} {:>14} {:>9} {:>8} {:>9} {:>9} {:>9}",
        "size", "mechanism", "buffer", "volume", "GB/s", "msgs/s", "this/pipe", "this/min"
    );
    let mut last_load = None;
    let mut notes: Vec<&str> = Vec::new();
    for t in &s.throughput {
        let ld = if last_load == Some(t.row.load) {
            String::new()
        } else {
            load(t.row.load, c)
        };
        last_load = Some(t.row.load);
        let label = t.row.spec.label;
        if let Some(why) = &t.row.skipped {
            let _ = writeln!(o, "{ld:<16} {label:<31} skipped: {why}");
            continue;
        }
        let mut label = label.to_string();
        if let Some(note) = &t.row.note {
            if !notes.contains(&note.as_str()) {
                notes.push(note);
            }
            let k = notes.iter().position(|n| *n == note.as_str()).unwrap_or(0);
            label.push_str(&"*".repeat(k + 1));
        }
        let buffer = t.row.buffer.as_ref().map_or("-", |b| b.text.as_str());
        let msgs = match (t.row.load, t.msgs_per_s) {
            (Load::Messages(_), Some(m)) => rate(m),
            _ => "-".into(),
        };
        let _ = writeln!(
            o,
            "{ld:<16} {label:<31} {buffer:>14} {:>9} {:>8} {msgs:>9} {:>9} {:>9}",
            t.bytes.map_or("-".into(), human_bytes),
            opt(t.gb_per_s, 3),
            times(t.vs_pipe),
            times(t.vs_minimal)
        );
    }
    for (k, note) in notes.iter().enumerate() {
        let _ = writeln!(o, "{:>3} {note}", "*".repeat(k + 1));
    }
    mpmc_section(&mut o, &s, c, e);

    let _ = writeln!(o, "\nTargets (ratios within this run)");
    for t in &s.targets {
        let verdict = match t.pass() {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "n/a",
        };
        let _ = writeln!(
            o,
            "  {:<60} {:>7} {:>8}  {verdict}",
            t.name,
            opt(t.value, 2),
            t.rule()
        );
    }
    let _ = writeln!(o, "\nrun took {:.1} s", r.elapsed.as_secs_f64());
    o
}

/// The MPMC section of the table: MPMC over SPSC with one producer and one consumer,
/// then the throughput with several of each.
fn mpmc_section(o: &mut String, s: &Summary<'_>, c: &Config, e: &super::Env) {
    let measured = |m: &&MpmcVsSpsc| {
        m.round_trip.iter().any(|r| r.1.is_some() || r.2.is_some())
            || m.one_way.iter().any(|r| r.1.is_some())
    };
    let compared: Vec<&MpmcVsSpsc> = s.mpmc_vs_spsc.iter().filter(measured).collect();
    if !compared.is_empty() {
        let _ = writeln!(
            o,
            "\nMPMC / SPSC, one producer and one consumer per ring (rows above): round-trip \
             p50 and p99\n(above 1 = MPMC slower), one-way msgs/s (below 1 = MPMC slower)"
        );
        let mut head = format!("{:<9}", "wait");
        for &len in &LATENCY_SIZES {
            let _ = write!(head, " {:>15}", format!("{} p50 / p99", size(len)));
        }
        for &len in &super::contention::SIZES {
            let _ = write!(head, " {:>14}", format!("{} msgs/s", size(len)));
        }
        let _ = writeln!(o, "{head}");
        for m in compared {
            let mut line = format!("{:<9}", wait_name(m.wait));
            for (_, p50, p99) in &m.round_trip {
                let _ = write!(
                    line,
                    " {:>15}",
                    format!("{} / {}", times(*p50), times(*p99))
                );
            }
            for (_, r) in &m.one_way {
                let _ = write!(line, " {:>14}", times(*r));
            }
            let _ = writeln!(o, "{line}");
        }
    }
    if s.contention.is_empty() {
        return;
    }
    let pinning = match e.cpus {
        Some([a, b]) => format!("producers pinned to CPU {a}, consumers to CPU {b}"),
        None => "one CPU: not pinned".into(),
    };
    let text = format!(
        "MPMC throughput: P producers and C consumers on one channel, shmlane's ring and \
         the pipe between processes, ArrayQueue between threads; {pinning}. msgs/s = \
         messages consumed in {} after a {} warm-up; every consumer copies out and checks \
         every message (producer id, each producer's order, length, last byte), and the \
         messages taken must equal those sent. shmlane's endpoints wait with the default \
         Wait::Adaptive (4P4C is 8 processes on {} CPUs: spinning would starve them); \
         Wait::Spin at 1P1C only. Ratios to the row of the same size and shape \
         (AQ: ArrayQueue), and to the row's own 1P1C.",
        span(c.contention_timed_ns),
        span(c.contention_warm_ns),
        e.allowed_cpus
    );
    let _ = writeln!(o, "\n{}", super::args::wrap(&text, 96, 0));
    let _ = writeln!(
        o,
        "{:<6} {:<5} {:<31} {:>14} {:>9} {:>7} {:>10} {:>9} {:>7}",
        "size", "shape", "mechanism", "buffer", "msgs/s", "GB/s", "this/AQ", "this/pipe", "/1P1C"
    );
    let mut last: Option<(usize, Shape)> = None;
    for t in &s.contention {
        let key = (t.row.len, t.row.shape);
        let (sz, shape) = match last {
            Some((l, sh)) if l == key.0 && sh == key.1 => (String::new(), String::new()),
            Some((l, _)) if l == key.0 => (String::new(), t.row.shape.to_string()),
            _ => (size(t.row.len), t.row.shape.to_string()),
        };
        last = Some(key);
        let label = t.row.spec.label;
        if let Some(why) = &t.row.skipped {
            let _ = writeln!(o, "{sz:<6} {shape:<5} {label:<31} skipped: {why}");
            continue;
        }
        let buffer = t.row.buffer.as_ref().map_or("-", |b| b.text.as_str());
        let _ = writeln!(
            o,
            "{sz:<6} {shape:<5} {label:<31} {buffer:>14} {:>9} {:>7} {:>10} {:>9} {:>7}",
            t.msgs_per_s.map_or("n/a".into(), rate),
            opt(t.gb_per_s, 3),
            times(t.vs_queue),
            times(t.vs_pipe),
            times(t.vs_one)
        );
    }
}

// ---------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------

/// `v` rounded to `decimals` decimals, as the JSON gives it; `None` if it is not a
/// finite number (JSON has no NaN or infinity).
fn round(v: Option<f64>, decimals: i32) -> Option<f64> {
    let scale = 10f64.powi(decimals);
    v.filter(|v| v.is_finite())
        .map(|v| (v * scale).round() / scale)
}

/// Every figure of the run, as `bench --json` prints it.
#[derive(Serialize)]
struct RunJson<'a> {
    shmlane_version: &'static str,
    config: ConfigJson,
    env: EnvJson<'a>,
    latency: Vec<LatencyJson<'a>>,
    throughput: Vec<ThroughputJson<'a>>,
    mpmc_vs_spsc: Vec<MpmcVsSpscJson>,
    /// The rows' identifier is "id" here ("mechanism" in the other sections).
    contention: Vec<ContentionJson<'a>>,
    targets: Vec<TargetJson>,
    elapsed_s: Option<f64>,
}

#[derive(Serialize)]
struct ConfigJson {
    quick: bool,
    rounds: u64,
    round_trip_warmup_ns: u64,
    round_trip_timed_ns: u64,
    round_trip_max_samples: u64,
    latency_ring_bytes: u64,
    throughput_warmup_ns: u64,
    throughput_timed_ns: u64,
    stream_bytes: u64,
    stream_warmup_bytes: u64,
    contention_warmup_ns: u64,
    contention_timed_ns: u64,
    timeout_s: u64,
}

#[derive(Serialize)]
struct EnvJson<'a> {
    cpu_model: &'a str,
    kernel: &'a str,
    allowed_cpus: u64,
    pinned_cpus: Option<[u64; 2]>,
    clock_read_ns: Option<f64>,
    socket_buffer_bytes: u64,
    mqueue_msg_max: u64,
    mqueue_msgsize_max: u64,
}

#[derive(Serialize)]
struct PercentilesJson {
    min_ns: u64,
    p50_ns: u64,
    p99_ns: u64,
    p999_ns: u64,
    max_ns: u64,
    mean_ns: Option<f64>,
}

impl From<&Percentiles> for PercentilesJson {
    fn from(p: &Percentiles) -> Self {
        PercentilesJson {
            min_ns: p.min,
            p50_ns: p.p50,
            p99_ns: p.p99,
            p999_ns: p.p999,
            max_ns: p.max,
            mean_ns: round(Some(p.mean), 1),
        }
    }
}

#[derive(Serialize)]
struct CurveJson<'a> {
    samples: u64,
    quantiles: Vec<Option<f64>>,
    ns: &'a [u64],
}

#[derive(Serialize)]
struct LatencyJson<'a> {
    mechanism: &'static str,
    label: &'static str,
    message_bytes: u64,
    skipped: Option<&'a str>,
    median: Option<PercentilesJson>,
    p50_vs_floor: Option<f64>,
    p99_vs_floor: Option<f64>,
    pipe_p50_vs_p50: Option<f64>,
    curve: Option<CurveJson<'a>>,
    rounds: Vec<PercentilesJson>,
}

#[derive(Serialize)]
struct ThroughputJson<'a> {
    mechanism: &'static str,
    label: &'static str,
    load: &'static str,
    message_bytes: u64,
    buffer: Option<&'a str>,
    buffer_bytes: Option<u64>,
    note: Option<&'a str>,
    skipped: Option<&'a str>,
    bytes: Option<u64>,
    seconds: Option<f64>,
    gb_per_s: Option<f64>,
    msgs_per_s: Option<f64>,
    vs_pipe: Option<f64>,
    vs_minimal_ring: Option<f64>,
    rounds: Vec<ThroughputRoundJson>,
}

#[derive(Serialize)]
struct ThroughputRoundJson {
    ns: u64,
    bytes: u64,
    messages: u64,
}

#[derive(Serialize)]
struct ContentionJson<'a> {
    id: &'static str,
    label: &'static str,
    between: &'static str,
    message_bytes: u64,
    producers: u64,
    consumers: u64,
    buffer: Option<&'a str>,
    skipped: Option<&'a str>,
    msgs_per_s: Option<f64>,
    gb_per_s: Option<f64>,
    vs_array_queue: Option<f64>,
    vs_pipe: Option<f64>,
    vs_1p1c: Option<f64>,
    rounds: Vec<ContentionRoundJson>,
}

#[derive(Serialize)]
struct ContentionRoundJson {
    ns: u64,
    messages: u64,
}

#[derive(Serialize)]
struct MpmcVsSpscJson {
    wait: &'static str,
    round_trip: Vec<RoundTripRatioJson>,
    one_way_msgs: Vec<OneWayRatioJson>,
}

#[derive(Serialize)]
struct RoundTripRatioJson {
    message_bytes: u64,
    p50_ratio: Option<f64>,
    p99_ratio: Option<f64>,
}

#[derive(Serialize)]
struct OneWayRatioJson {
    message_bytes: u64,
    ratio: Option<f64>,
}

#[derive(Serialize)]
struct TargetJson {
    name: String,
    value: Option<f64>,
    rule: String,
    pass: Option<bool>,
}

/// Every figure of the run as one JSON object.
pub(crate) fn json(r: &Results) -> String {
    let s = summarize(r);
    let c = &r.config;
    let e = &r.env;
    let config = ConfigJson {
        quick: c.quick,
        rounds: c.rounds as u64,
        round_trip_warmup_ns: c.latency.warm.ns,
        round_trip_timed_ns: c.latency.timed.ns,
        round_trip_max_samples: c.latency.max_samples as u64,
        latency_ring_bytes: c.latency_ring as u64,
        throughput_warmup_ns: c.warm_ns,
        throughput_timed_ns: c.timed_ns,
        stream_bytes: c.stream_len,
        stream_warmup_bytes: c.stream_warmup,
        contention_warmup_ns: c.contention_warm_ns,
        contention_timed_ns: c.contention_timed_ns,
        timeout_s: c.timeout.as_secs(),
    };
    let env = EnvJson {
        cpu_model: &e.cpu_model,
        kernel: &e.kernel,
        allowed_cpus: e.allowed_cpus as u64,
        pinned_cpus: e.cpus.map(|[a, b]| [a as u64, b as u64]),
        clock_read_ns: round(Some(e.clock_ns), 1),
        socket_buffer_bytes: e.socket_buffer as u64,
        mqueue_msg_max: e.mq.msg_max as u64,
        mqueue_msgsize_max: e.mq.msgsize_max as u64,
    };
    let latency = s
        .latency
        .iter()
        .map(|l| LatencyJson {
            mechanism: l.row.spec.id,
            label: l.row.spec.label,
            message_bytes: l.row.size as u64,
            skipped: l.row.skipped.as_deref(),
            median: l.median.as_ref().map(PercentilesJson::from),
            p50_vs_floor: round(l.p50_vs_floor, 3),
            p99_vs_floor: round(l.p99_vs_floor, 3),
            pipe_p50_vs_p50: round(l.pipe_vs_p50, 3),
            curve: l.curve.as_ref().map(|c| CurveJson {
                samples: c.samples as u64,
                quantiles: CURVE_PPM
                    .iter()
                    .map(|&q| round(Some(q as f64 / 1e6), 4))
                    .collect(),
                ns: &c.ns,
            }),
            rounds: l.row.rounds.iter().map(PercentilesJson::from).collect(),
        })
        .collect();
    let throughput = s
        .throughput
        .iter()
        .map(|t| ThroughputJson {
            mechanism: t.row.spec.id,
            label: t.row.spec.label,
            load: load_id(t.row.load),
            message_bytes: match t.row.load {
                Load::Messages(len) => len as u64,
                Load::Stream => c.stream_len,
            },
            buffer: t.row.buffer.as_ref().map(|b| b.text.as_str()),
            buffer_bytes: t.row.buffer.as_ref().map(|b| b.bytes),
            note: t.row.note.as_deref(),
            skipped: t.row.skipped.as_deref(),
            bytes: t.bytes,
            seconds: round(t.seconds, 6),
            gb_per_s: round(t.gb_per_s, 4),
            msgs_per_s: round(t.msgs_per_s, 0),
            vs_pipe: round(t.vs_pipe, 3),
            vs_minimal_ring: round(t.vs_minimal, 3),
            rounds: t
                .row
                .rounds
                .iter()
                .map(|r| ThroughputRoundJson {
                    ns: r.nanos,
                    bytes: r.bytes,
                    messages: r.messages,
                })
                .collect(),
        })
        .collect();
    let contention = s
        .contention
        .iter()
        .map(|t| ContentionJson {
            id: t.row.spec.id,
            label: t.row.spec.label,
            between: if t.row.spec.mech == Mech::ArrayQueue {
                "threads"
            } else {
                "processes"
            },
            message_bytes: t.row.len as u64,
            producers: t.row.shape.producers as u64,
            consumers: t.row.shape.consumers as u64,
            buffer: t.row.buffer.as_ref().map(|b| b.text.as_str()),
            skipped: t.row.skipped.as_deref(),
            msgs_per_s: round(t.msgs_per_s, 0),
            gb_per_s: round(t.gb_per_s, 4),
            vs_array_queue: round(t.vs_queue, 3),
            vs_pipe: round(t.vs_pipe, 3),
            vs_1p1c: round(t.vs_one, 3),
            rounds: t
                .row
                .rounds
                .iter()
                .map(|r| ContentionRoundJson {
                    ns: r.nanos,
                    messages: r.messages,
                })
                .collect(),
        })
        .collect();
    let mpmc_vs_spsc = s
        .mpmc_vs_spsc
        .iter()
        .map(|m| MpmcVsSpscJson {
            wait: wait_name(m.wait),
            round_trip: m
                .round_trip
                .iter()
                .map(|&(size, p50, p99)| RoundTripRatioJson {
                    message_bytes: size as u64,
                    p50_ratio: round(p50, 3),
                    p99_ratio: round(p99, 3),
                })
                .collect(),
            one_way_msgs: m
                .one_way
                .iter()
                .map(|&(size, r)| OneWayRatioJson {
                    message_bytes: size as u64,
                    ratio: round(r, 3),
                })
                .collect(),
        })
        .collect();
    let targets = s
        .targets
        .iter()
        .map(|t| TargetJson {
            name: t.name.clone(),
            value: round(t.value, 3),
            rule: t.rule(),
            pass: t.pass(),
        })
        .collect();
    crate::output::json(&RunJson {
        shmlane_version: env!("CARGO_PKG_VERSION"),
        config,
        env,
        latency,
        throughput,
        mpmc_vs_spsc,
        contention,
        targets,
        elapsed_s: round(Some(r.elapsed.as_secs_f64()), 2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size(8), "8 B");
        assert_eq!(size(1024), "1 KiB");
        assert_eq!(size(64 << 10), "64 KiB");
        assert_eq!(size(1 << 20), "1 MiB");
        assert_eq!(size(1000), "1000 B");
        assert_eq!(size_u64(256 << 20), "256 MiB");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 29), "1.50 GiB");
        assert_eq!(human_bytes(123 << 20), "123 MiB");
    }
}
