//! `--plot FILE.svg`: the run drawn by hand in SVG (no plotting dependency).
//!
//! - One panel per round-trip message size: each mechanism's latency distribution
//!   as a percentile curve (x: the percentile on a "nines" axis, -log10(1 - q), so
//!   p50, p90, p99, p99.9 and p99.99 are evenly spaced and the tail is visible; the
//!   last point is the maximum at 1 - 1/samples; y: ns, log).
//! - One panel of one-way throughput by message size (both axes log), the streamed
//!   message as a hollow marker at its length.
//! - A legend shared by all panels: one colour per mechanism; shmlane SPSC solid,
//!   MPMC dash-dotted, the kernel mechanisms dashed, the floors dotted.

use std::fmt::Write;

use super::mechs::{Mech, RingKind, MECHANISMS};
use super::report::{self, summarize, LatencyFigures, ThroughputFigures};
use super::stats::CURVE_PPM;
use super::{Load, Results};

const WIDTH: f64 = 1240.0;
/// Colours by mechanism id: the floors black and grey, shmlane's rings in blues,
/// greens and purples (SPSC) and oranges and reds (MPMC), the kernel paths in the
/// rest; a row the table does not know takes one from `FALLBACK`.
const COLOURS: &[(&str, &str)] = &[
    ("raw-cache-line", "#000000"),
    ("futex-doorbell", "#8a8a8a"),
    ("shmlane-spsc-spin", "#1f5fbf"),
    ("shmlane-spsc-adaptive", "#2ca02c"),
    ("shmlane-spsc-park-futex", "#7b4fc4"),
    ("shmlane-spsc-park-semaphore", "#c86dd7"),
    ("shmlane-mpmc-spin", "#ff7f0e"),
    ("shmlane-mpmc-adaptive", "#d62728"),
    ("shmlane-mpmc-park-futex", "#8c564b"),
    ("pipe", "#b5b800"),
    ("pipe-busy-poll", "#17becf"),
    ("pipe-1mib", "#e6a000"),
    ("unix-stream", "#1b9e77"),
    ("unix-seqpacket", "#e7298a"),
    ("tcp-loopback", "#5a5aa0"),
    ("posix-mqueue", "#a6761d"),
];
const FALLBACK: [&str; 4] = ["#4d4d4d", "#66a61e", "#386cb0", "#f0027f"];

fn colour(id: &str) -> &'static str {
    if let Some((_, c)) = COLOURS.iter().find(|(k, _)| *k == id) {
        return c;
    }
    let i = MECHANISMS.iter().position(|m| m.id == id).unwrap_or(0);
    FALLBACK[i % FALLBACK.len()]
}

/// `(stroke width, dash array)` for a mechanism's family.
fn stroke(mech: Mech) -> (f64, &'static str) {
    match mech {
        Mech::RawLine | Mech::FutexDoorbell => (1.6, "2 3"),
        Mech::Ring(RingKind::Spsc, ..) => (2.2, ""),
        Mech::Ring(..) => (2.0, "10 3 3 3"),
        _ => (1.5, "7 3"),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A plotting area and the (already transformed) data range it shows.
struct Frame {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn px(&self, v: f64) -> f64 {
        self.x + (v - self.x0) / (self.x1 - self.x0).max(1e-9) * self.w
    }

    fn py(&self, v: f64) -> f64 {
        self.y + self.h - (v - self.y0) / (self.y1 - self.y0).max(1e-9) * self.h
    }

    fn contains_x(&self, v: f64) -> bool {
        v >= self.x0 - 1e-9 && v <= self.x1 + 1e-9
    }

    /// The frame, its title, the axis titles, and horizontal grid lines at `yticks`
    /// (value, label) and vertical ones at `xticks`.
    fn draw(
        &self,
        o: &mut String,
        title: &str,
        xtitle: &str,
        ytitle: &str,
        xticks: &[(f64, String)],
        yticks: &[(f64, String)],
    ) {
        let _ = writeln!(
            o,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#ffffff" stroke="#444444"/>"##,
            self.x, self.y, self.w, self.h
        );
        for (v, label) in yticks {
            let y = self.py(*v);
            let _ = writeln!(
                o,
                r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#dddddd"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="10">{}</text>"##,
                self.x,
                self.x + self.w,
                self.x - 4.0,
                y + 3.5,
                esc(label)
            );
        }
        for (v, label) in xticks {
            let x = self.px(*v);
            let _ = writeln!(
                o,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#dddddd"/>"##,
                self.y,
                self.y + self.h
            );
            for (i, part) in label.split('\n').enumerate() {
                let _ = writeln!(
                    o,
                    r##"<text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"##,
                    self.y + self.h + 13.0 + 11.0 * i as f64,
                    esc(part)
                );
            }
        }
        let _ = writeln!(
            o,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"##,
            self.x + self.w / 2.0,
            self.y - 8.0,
            esc(title)
        );
        let _ = writeln!(
            o,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"##,
            self.x + self.w / 2.0,
            self.y + self.h + 38.0,
            esc(xtitle)
        );
        let (tx, ty) = (self.x - 44.0, self.y + self.h / 2.0);
        let _ = writeln!(
            o,
            r##"<text x="{tx:.1}" y="{ty:.1}" text-anchor="middle" font-size="11" transform="rotate(-90 {tx:.1} {ty:.1})">{}</text>"##,
            esc(ytitle)
        );
    }

    /// A polyline through `points` (data coordinates).
    fn line(
        &self,
        o: &mut String,
        points: &[(f64, f64)],
        colour: &str,
        (width, dash): (f64, &str),
    ) {
        if points.is_empty() {
            return;
        }
        let pts: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", self.px(x), self.py(y)))
            .collect();
        let dash = if dash.is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{dash}""#)
        };
        let _ = writeln!(
            o,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="{width}"{dash} stroke-linejoin="round"/>"#,
            pts.join(" ")
        );
        for &(x, y) in points {
            let _ = writeln!(
                o,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.2" fill="{colour}"/>"#,
                self.px(x),
                self.py(y)
            );
        }
    }
}

/// Decade ticks covering `[lo, hi]` (log10 values), labelled by `label(10^k)`.
fn decades(lo: f64, hi: f64, label: impl Fn(f64) -> String) -> Vec<(f64, String)> {
    (lo.floor() as i32..=hi.ceil() as i32)
        .map(|k| (k as f64, label(10f64.powi(k))))
        .collect()
}

fn ns_label(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{} µs", ns / 1e3)
    } else {
        format!("{ns} ns")
    }
}

fn gb_label(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_string()
    }
}

/// The points of a latency curve: (nines, log10 ns).
fn curve_points(l: &LatencyFigures<'_>) -> Vec<(f64, f64)> {
    let Some(c) = &l.curve else {
        return Vec::new();
    };
    let n = c.samples.max(1) as f64;
    let mut pts = Vec::new();
    for (i, &ppm) in CURVE_PPM.iter().enumerate() {
        let Some(&ns) = c.ns.get(i) else { continue };
        if ns == 0 {
            continue;
        }
        let x = if ppm >= 1_000_000 {
            // The maximum: the 1-in-n point.
            n.log10()
        } else {
            let tail = 1.0 - ppm as f64 / 1e6;
            // A quantile is meaningful only with at least 1 / (1 - q) samples.
            if tail * n < 1.0 {
                continue;
            }
            -tail.log10()
        };
        pts.push((x, (ns as f64).log10()));
    }
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}

fn nines_label(x: i32) -> String {
    match x {
        i32::MIN..=0 => "min".into(),
        1 => "p90".into(),
        2 => "p99".into(),
        k => format!("p99.{}", "9".repeat((k - 2) as usize)),
    }
}

/// The SVG document for the run.
pub(crate) fn svg(r: &Results) -> String {
    let s = summarize(r);
    let c = &r.config;
    let e = &r.env;
    let sizes: Vec<usize> = {
        let mut v: Vec<usize> = s.latency.iter().map(|l| l.row.size).collect();
        v.dedup();
        v
    };
    // Mechanisms that have a figure, in table order.
    let present: Vec<&'static super::mechs::MechSpec> = MECHANISMS
        .iter()
        .filter(|m| {
            s.latency
                .iter()
                .any(|l| l.row.spec.id == m.id && l.curve.is_some())
                || s.throughput
                    .iter()
                    .any(|t| t.row.spec.id == m.id && t.gb_per_s.is_some())
        })
        .collect();

    let legend_w = 250.0;
    let plots_w = WIDTH - legend_w - 20.0;
    let lat_top: f64 = 92.0;
    let lat_h = 260.0;
    let tp_top = lat_top + lat_h + 90.0;
    let tp_h: f64 = 300.0;
    let height = (tp_top + tp_h + 80.0).max(lat_top + 24.0 * present.len() as f64 + 40.0);

    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(o, r##"<rect width="100%" height="100%" fill="#fafafa"/>"##);
    let _ = writeln!(
        o,
        r#"<text x="20" y="30" font-size="18" font-weight="bold">shmlane bench{}: round-trip latency and one-way throughput</text>"#,
        if c.quick { " --quick" } else { "" }
    );
    let pinning = match e.cpus {
        Some([a, b]) => format!("pinned to CPUs {a} and {b}"),
        None => "not pinned (one CPU)".into(),
    };
    let _ = writeln!(
        o,
        r#"<text x="20" y="50" font-size="11">{}</text>"#,
        esc(&format!(
            "{}, Linux {}, {}; {}; every receiver copies each message out and checks it; \
             fresh processes per row",
            e.cpu_model,
            e.kernel,
            pinning,
            if c.rounds == 1 {
                "1 round".to_string()
            } else {
                format!("medians of {} rounds", c.rounds)
            }
        ))
    );

    // Round-trip panels.
    let all_lat: Vec<Vec<(f64, f64)>> = s.latency.iter().map(curve_points).collect();
    let ys = all_lat.iter().flatten().map(|p| p.1);
    let (ymin, ymax) = ys.fold((f64::MAX, f64::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (y0, y1) = if ymin <= ymax {
        (ymin.floor(), ymax.ceil().max(ymin.floor() + 1.0))
    } else {
        (1.0, 6.0)
    };
    let xmax = all_lat
        .iter()
        .flatten()
        .map(|p| p.0)
        .fold(3.0f64, f64::max)
        .ceil();
    let gap = 70.0;
    let n = sizes.len().max(1) as f64;
    let panel_w = (plots_w - 100.0 - gap * (n - 1.0)) / n;
    for (i, &size) in sizes.iter().enumerate() {
        let f = Frame {
            x: 70.0 + i as f64 * (panel_w + gap),
            y: lat_top,
            w: panel_w,
            h: lat_h,
            x0: 0.0,
            x1: xmax,
            y0,
            y1,
        };
        // No label at 0 (the minimum): p50 sits 0.3 to its right.
        let xticks: Vec<(f64, String)> = std::iter::once((0.5f64.log10().abs(), "p50".into()))
            .chain((1..=xmax as i32).map(|k| (k as f64, nines_label(k))))
            .collect();
        f.draw(
            &mut o,
            &format!("Round trip, {} messages", report::size(size)),
            "percentile (left edge: minimum; last point: maximum)",
            "round trip (log)",
            &xticks,
            &decades(y0, y1, ns_label),
        );
        for (l, pts) in s.latency.iter().zip(&all_lat) {
            if l.row.size == size {
                f.line(&mut o, pts, colour(l.row.spec.id), stroke(l.row.spec.mech));
            }
        }
    }

    // Throughput panel.
    let x_of = |t: &ThroughputFigures<'_>| match t.row.load {
        Load::Messages(len) => (len as f64).log2(),
        Load::Stream => (c.stream_len as f64).log2(),
    };
    let gbs: Vec<f64> = s
        .throughput
        .iter()
        .filter_map(|t| t.gb_per_s)
        .filter(|g| *g > 0.0)
        .map(f64::log10)
        .collect();
    let (g0, g1) = gbs
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &g| (lo.min(g), hi.max(g)));
    let (g0, g1) = if g0 <= g1 {
        (g0.floor(), g1.ceil().max(g0.floor() + 1.0))
    } else {
        (-2.0, 2.0)
    };
    let mut loads: Vec<Load> = s.throughput.iter().map(|t| t.row.load).collect();
    loads.dedup();
    let xs: Vec<f64> = s.throughput.iter().map(x_of).collect();
    let (tx0, tx1) = xs
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    let (tx0, tx1) = if tx0 <= tx1 {
        (tx0 - 0.5, tx1 + 0.5)
    } else {
        (5.0, 21.0)
    };
    let f = Frame {
        x: 70.0,
        y: tp_top,
        w: plots_w - 100.0,
        h: tp_h,
        x0: tx0,
        x1: tx1,
        y0: g0,
        y1: g1,
    };
    let xticks: Vec<(f64, String)> = loads
        .iter()
        .map(|&l| match l {
            Load::Messages(len) => ((len as f64).log2(), report::size(len)),
            Load::Stream => (
                (c.stream_len as f64).log2(),
                format!(
                    "{}\n(one message, streamed)",
                    report::size_u64(c.stream_len)
                ),
            ),
        })
        .collect();
    f.draw(
        &mut o,
        "One-way throughput by message size",
        "message size (log)",
        "GB/s = 10^9 B/s (log)",
        &xticks,
        &decades(g0, g1, gb_label),
    );
    for m in &present {
        let rows: Vec<&ThroughputFigures<'_>> = s
            .throughput
            .iter()
            .filter(|t| t.row.spec.id == m.id)
            .collect();
        let line: Vec<(f64, f64)> = rows
            .iter()
            .filter(|t| matches!(t.row.load, Load::Messages(_)))
            .filter_map(|t| {
                t.gb_per_s
                    .filter(|g| *g > 0.0)
                    .map(|g| (x_of(t), g.log10()))
            })
            .filter(|p| f.contains_x(p.0))
            .collect();
        let col = colour(m.id);
        f.line(&mut o, &line, col, stroke(m.mech));
        for t in rows.iter().filter(|t| t.row.load == Load::Stream) {
            if let Some(g) = t.gb_per_s.filter(|g| *g > 0.0) {
                let _ = writeln!(
                    o,
                    r##"<circle cx="{:.1}" cy="{:.1}" r="4.5" fill="#ffffff" stroke="{col}" stroke-width="2"/>"##,
                    f.px(x_of(t)),
                    f.py(g.log10())
                );
            }
        }
    }

    // Legend.
    let lx = WIDTH - legend_w;
    let _ = writeln!(
        o,
        r#"<text x="{lx:.1}" y="{:.1}" font-size="12" font-weight="bold">mechanism</text>"#,
        lat_top - 8.0
    );
    for (i, m) in present.iter().enumerate() {
        let y = lat_top + 12.0 + 22.0 * i as f64;
        let (w, dash) = stroke(m.mech);
        let dash = if dash.is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{dash}""#)
        };
        let _ = writeln!(
            o,
            r#"<line x1="{lx:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{}" stroke-width="{w}"{dash}/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
            lx + 30.0,
            colour(m.id),
            lx + 36.0,
            y + 4.0,
            esc(m.label)
        );
    }
    let ly = lat_top + 22.0 * present.len() as f64 + 30.0;
    for (i, line) in [
        "solid: shmlane SPSC; dash-dot:",
        "MPMC; dashed: kernel mechanisms;",
        "dotted: the floors.",
        "Hollow marker: the streamed",
        "message. Details and ratios:",
        "shmlane bench --help and the table.",
    ]
    .iter()
    .enumerate()
    {
        let _ = writeln!(
            o,
            r##"<text x="{lx:.1}" y="{:.1}" font-size="10" fill="#444444">{line}</text>"##,
            ly + 13.0 * i as f64
        );
    }
    o.push_str("</svg>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(ns_label(100.0), "100 ns");
        assert_eq!(ns_label(10_000.0), "10 µs");
        assert_eq!(gb_label(0.01), "0.01");
        assert_eq!(gb_label(10.0), "10");
        assert_eq!(nines_label(4), "p99.99");
        assert_eq!(esc("a<b&c"), "a&lt;b&amp;c");
    }
}
