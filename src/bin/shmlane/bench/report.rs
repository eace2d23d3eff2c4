//! The bench's output: the table, the targets, and the same figures as JSON.
//!
//! Every ratio is taken between figures of the same run (the VM's noise moves runs
//! by tens of percent; it moves rows of one run much less).

use std::fmt::Write;

use shmlane::{Notifier, Wait};

use super::stats::{median, Percentiles};
use super::{Config, LatencyRow, Load, Mech, Results, ThroughputRow};

/// `8 B`, `1 KiB`, `64 KiB`, `1 MiB`, `256 MiB`, ...
pub(crate) fn size(bytes: usize) -> String {
    size_u64(bytes as u64)
}

fn size_u64(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes;
    let mut unit = 0;
    while unit + 1 < UNITS.len() && v >= 1024 && v % 1024 == 0 {
        v /= 1024;
        unit += 1;
    }
    format!("{v} {}", UNITS[unit])
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
struct LatencyFigures<'a> {
    row: &'a LatencyRow,
    median: Option<Percentiles>,
    p50_vs_floor: Option<f64>,
    p99_vs_floor: Option<f64>,
}

/// A throughput row with its medians and ratio.
struct ThroughputFigures<'a> {
    row: &'a ThroughputRow,
    nanos: Option<f64>,
    gb_per_s: Option<f64>,
    msgs_per_s: Option<f64>,
    vs_pipe: Option<f64>,
}

/// A target computed from the run.
struct Target {
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

struct Summary<'a> {
    latency: Vec<LatencyFigures<'a>>,
    throughput: Vec<ThroughputFigures<'a>>,
    targets: Vec<Target>,
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn summarize(r: &Results) -> Summary<'_> {
    let medians: Vec<Option<Percentiles>> = r
        .latency
        .iter()
        .map(|row| Percentiles::median_of(&row.rounds))
        .collect();
    let floor = |size: usize| {
        r.latency
            .iter()
            .zip(&medians)
            .find(|(row, _)| row.mech == Mech::RawLine && row.size == size)
            .and_then(|(_, m)| *m)
    };
    let latency: Vec<LatencyFigures<'_>> = r
        .latency
        .iter()
        .zip(&medians)
        .map(|(row, m)| {
            let f = floor(row.size);
            LatencyFigures {
                row,
                median: *m,
                p50_vs_floor: ratio(m.map(|m| m.p50 as f64), f.map(|f| f.p50 as f64)),
                p99_vs_floor: ratio(m.map(|m| m.p99 as f64), f.map(|f| f.p99 as f64)),
            }
        })
        .collect();

    let figures = |row: &ThroughputRow| -> (Option<f64>, Option<f64>, Option<f64>) {
        if row.rounds.is_empty() {
            return (None, None, None);
        }
        let nanos = median(&row.rounds.iter().map(|&n| n as f64).collect::<Vec<_>>());
        (
            Some(nanos),
            Some(row.bytes as f64 / nanos),
            Some(row.messages as f64 / (nanos / 1e9)),
        )
    };
    let pipe = |load: Load| {
        r.throughput
            .iter()
            .find(|row| row.mech == Mech::Pipe && row.load == load)
            .map(figures)
    };
    let throughput: Vec<ThroughputFigures<'_>> = r
        .throughput
        .iter()
        .map(|row| {
            let (nanos, gb, msgs) = figures(row);
            let pipe_gb = pipe(row.load).and_then(|p| p.1);
            ThroughputFigures {
                row,
                nanos,
                gb_per_s: gb,
                msgs_per_s: msgs,
                vs_pipe: ratio(gb, pipe_gb),
            }
        })
        .collect();

    let lat = |mech: Mech, size: usize| {
        latency
            .iter()
            .find(|l| l.row.mech == mech && l.row.size == size)
            .and_then(|l| l.p50_vs_floor)
    };
    let tput = |mech: Mech, load: Load, pick: fn(&ThroughputFigures<'_>) -> Option<f64>| {
        throughput
            .iter()
            .find(|t| t.row.mech == mech && t.row.load == load)
            .and_then(pick)
    };
    let shm = Mech::Shmlane(Wait::Adaptive, Notifier::Futex);
    let small = Load::Messages(64);
    let big = Load::Messages(1 << 20);
    let targets = vec![
        Target {
            name: "shmlane 8 B round trip p50 / raw floor p50, Wait::Spin".into(),
            value: lat(Mech::Shmlane(Wait::Spin, Notifier::Futex), 8),
            at_most: true,
            threshold: 1.3,
        },
        Target {
            name: "shmlane 8 B round trip p50 / raw floor p50, Wait::Adaptive".into(),
            value: lat(shm, 8),
            at_most: true,
            threshold: 1.3,
        },
        Target {
            name: "shmlane 64 B msgs/s / pipe 64 B msgs/s".into(),
            value: ratio(
                tput(shm, small, |t| t.msgs_per_s),
                tput(Mech::Pipe, small, |t| t.msgs_per_s),
            ),
            at_most: false,
            threshold: 15.0,
        },
        Target {
            name: "shmlane 1 MiB GB/s / pipe 1 MiB GB/s".into(),
            value: ratio(
                tput(shm, big, |t| t.gb_per_s),
                tput(Mech::Pipe, big, |t| t.gb_per_s),
            ),
            at_most: false,
            threshold: 5.0,
        },
    ];
    Summary {
        latency,
        throughput,
        targets,
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) => format!("{v:.decimals$}"),
        None => "n/a".into(),
    }
}

fn times(v: Option<f64>) -> String {
    match v {
        Some(v) => format!("{v:.2}x"),
        None => "n/a".into(),
    }
}

fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.1}")
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
        "\nRound trip (ping-pong), ns: {} timed after {} warm-up; shmlane: two {} rings",
        c.round_trips,
        c.warmup_round_trips,
        size(c.latency_ring)
    );
    let _ = writeln!(
        o,
        "{:<7} {:<31} {:>8} {:>8} {:>8} {:>10} {:>10}",
        "size", "mechanism", "p50", "p99", "p99.9", "p50/floor", "p99/floor"
    );
    let mut last_size = None;
    for l in &s.latency {
        let sz = if last_size == Some(l.row.size) {
            String::new()
        } else {
            size(l.row.size)
        };
        last_size = Some(l.row.size);
        match (&l.row.skipped, l.median) {
            (Some(why), _) => {
                let _ = writeln!(o, "{sz:<7} {:<31} skipped: {why}", l.row.mech.label());
            }
            (None, Some(m)) => {
                let _ = writeln!(
                    o,
                    "{sz:<7} {:<31} {:>8} {:>8} {:>8} {:>10} {:>10}",
                    l.row.mech.label(),
                    m.p50,
                    m.p99,
                    m.p999,
                    times(l.p50_vs_floor),
                    times(l.p99_vs_floor)
                );
            }
            (None, None) => {
                let _ = writeln!(o, "{sz:<7} {:<31} no data", l.row.mech.label());
            }
        }
    }

    let _ = writeln!(
        o,
        "\nOne-way throughput, GB/s = 10^9 B/s, from the producer's start to the consumer's \
         check of the last byte;\n{} of 64 B messages, {} of larger ones, after a warm-up; \
         the stream is one message written and read in 1 MiB chunks",
        size_u64(c.small_volume),
        size_u64(c.volume)
    );
    let _ = writeln!(
        o,
        "{:<19} {:<29} {:>8} {:>9} {:>8} {:>10} {:>8}",
        "size", "mechanism", "buffer", "volume", "GB/s", "msgs/s", "vs pipe"
    );
    let mut last_load = None;
    for t in &s.throughput {
        let ld = if last_load == Some(t.row.load) {
            String::new()
        } else {
            load(t.row.load, c)
        };
        last_load = Some(t.row.load);
        if let Some(why) = &t.row.skipped {
            let _ = writeln!(o, "{ld:<19} {:<29} skipped: {why}", t.row.mech.label());
            continue;
        }
        let buffer = t.row.buffer.map(size).unwrap_or_else(|| "-".into());
        let msgs = match (t.row.load, t.msgs_per_s) {
            (Load::Messages(_), Some(m)) => rate(m),
            _ => "-".into(),
        };
        let _ = writeln!(
            o,
            "{ld:<19} {:<29} {:>8} {:>9} {:>8} {:>10} {:>8}",
            t.row.mech.label(),
            buffer,
            size_u64(t.row.bytes),
            opt(t.gb_per_s, 3),
            msgs,
            times(t.vs_pipe)
        );
    }

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

// ---------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------

/// A JSON value, printed with two-space indentation (arrays of scalars on one line).
enum J {
    Null,
    Bool(bool),
    Int(u64),
    Num(f64, usize),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(&'static str, J)>),
}

impl J {
    fn num(v: Option<f64>, decimals: usize) -> J {
        match v {
            Some(v) if v.is_finite() => J::Num(v, decimals),
            _ => J::Null,
        }
    }

    fn str(s: impl Into<String>) -> J {
        J::Str(s.into())
    }

    fn opt_str(s: &Option<String>) -> J {
        s.as_ref().map_or(J::Null, |s| J::str(s.clone()))
    }

    fn is_scalar(&self) -> bool {
        !matches!(self, J::Arr(_) | J::Obj(_))
    }

    fn write(&self, o: &mut String, indent: usize) {
        let pad = |o: &mut String, n: usize| o.push_str(&" ".repeat(n));
        match self {
            J::Null => o.push_str("null"),
            J::Bool(b) => o.push_str(if *b { "true" } else { "false" }),
            J::Int(i) => {
                let _ = write!(o, "{i}");
            }
            J::Num(v, d) => {
                let _ = write!(o, "{v:.d$}");
            }
            J::Str(s) => {
                o.push('"');
                for ch in s.chars() {
                    match ch {
                        '"' => o.push_str("\\\""),
                        '\\' => o.push_str("\\\\"),
                        '\n' => o.push_str("\\n"),
                        c if (c as u32) < 0x20 => {
                            let _ = write!(o, "\\u{:04x}", c as u32);
                        }
                        c => o.push(c),
                    }
                }
                o.push('"');
            }
            J::Arr(items) if items.iter().all(J::is_scalar) => {
                o.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        o.push_str(", ");
                    }
                    item.write(o, indent);
                }
                o.push(']');
            }
            J::Arr(items) => {
                o.push_str("[\n");
                for (i, item) in items.iter().enumerate() {
                    pad(o, indent + 2);
                    item.write(o, indent + 2);
                    o.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                pad(o, indent);
                o.push(']');
            }
            J::Obj(fields) => {
                o.push_str("{\n");
                for (i, (k, v)) in fields.iter().enumerate() {
                    pad(o, indent + 2);
                    let _ = write!(o, "\"{k}\": ");
                    v.write(o, indent + 2);
                    o.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
                }
                pad(o, indent);
                o.push('}');
            }
        }
    }
}

fn percentiles_json(p: &Percentiles) -> J {
    J::Obj(vec![
        ("min_ns", J::Int(p.min)),
        ("p50_ns", J::Int(p.p50)),
        ("p99_ns", J::Int(p.p99)),
        ("p999_ns", J::Int(p.p999)),
        ("max_ns", J::Int(p.max)),
        ("mean_ns", J::Num(p.mean, 1)),
    ])
}

/// Every figure of the run as one JSON object.
pub(crate) fn json(r: &Results) -> String {
    let s = summarize(r);
    let c = &r.config;
    let e = &r.env;
    let config = J::Obj(vec![
        ("quick", J::Bool(c.quick)),
        ("rounds", J::Int(c.rounds as u64)),
        ("round_trips", J::Int(c.round_trips as u64)),
        ("warmup_round_trips", J::Int(c.warmup_round_trips as u64)),
        ("latency_ring_bytes", J::Int(c.latency_ring as u64)),
        ("small_message_volume_bytes", J::Int(c.small_volume)),
        ("message_volume_bytes", J::Int(c.volume)),
        ("stream_bytes", J::Int(c.stream_len)),
        ("stream_warmup_bytes", J::Int(c.stream_warmup)),
        ("timeout_s", J::Int(c.timeout.as_secs())),
    ]);
    let env = J::Obj(vec![
        ("cpu_model", J::str(e.cpu_model.clone())),
        ("kernel", J::str(e.kernel.clone())),
        ("allowed_cpus", J::Int(e.allowed_cpus as u64)),
        (
            "pinned_cpus",
            match e.cpus {
                Some([a, b]) => J::Arr(vec![J::Int(a as u64), J::Int(b as u64)]),
                None => J::Null,
            },
        ),
        ("clock_read_ns", J::Num(e.clock_ns, 1)),
    ]);
    let latency = J::Arr(
        s.latency
            .iter()
            .map(|l| {
                J::Obj(vec![
                    ("mechanism", J::str(l.row.mech.id())),
                    ("label", J::str(l.row.mech.label())),
                    ("message_bytes", J::Int(l.row.size as u64)),
                    ("skipped", J::opt_str(&l.row.skipped)),
                    (
                        "median",
                        l.median.as_ref().map_or(J::Null, percentiles_json),
                    ),
                    ("p50_vs_floor", J::num(l.p50_vs_floor, 3)),
                    ("p99_vs_floor", J::num(l.p99_vs_floor, 3)),
                    (
                        "rounds",
                        J::Arr(l.row.rounds.iter().map(percentiles_json).collect()),
                    ),
                ])
            })
            .collect(),
    );
    let throughput = J::Arr(
        s.throughput
            .iter()
            .map(|t| {
                J::Obj(vec![
                    ("mechanism", J::str(t.row.mech.id())),
                    ("label", J::str(t.row.mech.label())),
                    ("load", J::str(load_id(t.row.load))),
                    (
                        "message_bytes",
                        J::Int(match t.row.load {
                            Load::Messages(len) => len as u64,
                            Load::Stream => c.stream_len,
                        }),
                    ),
                    (
                        "buffer_bytes",
                        t.row.buffer.map_or(J::Null, |b| J::Int(b as u64)),
                    ),
                    ("skipped", J::opt_str(&t.row.skipped)),
                    ("bytes", J::Int(t.row.bytes)),
                    ("messages", J::Int(t.row.messages)),
                    ("seconds", J::num(t.nanos.map(|n| n / 1e9), 6)),
                    ("gb_per_s", J::num(t.gb_per_s, 4)),
                    ("msgs_per_s", J::num(t.msgs_per_s, 0)),
                    ("vs_pipe", J::num(t.vs_pipe, 3)),
                    (
                        "rounds_ns",
                        J::Arr(t.row.rounds.iter().map(|&n| J::Int(n)).collect()),
                    ),
                ])
            })
            .collect(),
    );
    let targets = J::Arr(
        s.targets
            .iter()
            .map(|t| {
                J::Obj(vec![
                    ("name", J::str(t.name.clone())),
                    ("value", J::num(t.value, 3)),
                    ("rule", J::str(t.rule())),
                    ("pass", t.pass().map_or(J::Null, J::Bool)),
                ])
            })
            .collect(),
    );
    let root = J::Obj(vec![
        ("shmlane_version", J::str(env!("CARGO_PKG_VERSION"))),
        ("config", config),
        ("env", env),
        ("latency", latency),
        ("throughput", throughput),
        ("targets", targets),
        ("elapsed_s", J::Num(r.elapsed.as_secs_f64(), 2)),
    ]);
    let mut o = String::new();
    root.write(&mut o, 0);
    o.push('\n');
    o
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
    }

    #[test]
    fn json_escapes() {
        let mut o = String::new();
        J::Obj(vec![
            ("a", J::str("x\"y\\\n\u{1}")),
            ("b", J::Arr(vec![J::Int(1), J::Null])),
        ])
        .write(&mut o, 0);
        assert_eq!(
            o,
            "{\n  \"a\": \"x\\\"y\\\\\\n\\u0001\",\n  \"b\": [1, null]\n}"
        );
    }
}
