//! `--plot FILE.svg`: the run drawn with plotters' SVG backend (text is written as SVG
//! `<text>`, so no font files are read).
//!
//! - One panel per round-trip message size: each mechanism's latency distribution
//!   as a percentile curve (x: the percentile on a "nines" axis, 1 / (1 - q) on a log
//!   scale, so p50, p90, p99, p99.9 and p99.99 are evenly spaced and the tail is
//!   visible; the last point is the maximum at 1 - 1/samples; y: ns, log).
//! - One panel of one-way throughput by message size (both axes log), the streamed
//!   message as a hollow marker at its length.
//! - A legend shared by all panels: one colour per mechanism; shmlane SPSC solid,
//!   MPMC long dashes, the kernel mechanisms short dashes, the floors dotted.

use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::{CoordTranslate, Shift};
use plotters::element::{DashedPathElement, DottedPathElement};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::mechs::{Mech, MechSpec, RingKind, MECHANISMS};
use super::report::{self, summarize, LatencyFigures, ThroughputFigures};
use super::stats::CURVE_PPM;
use super::{Load, Results};

const WIDTH: u32 = 1240;
const LEGEND_WIDTH: u32 = 250;
/// Top of the round-trip panels' captions, and of the legend.
const LATENCY_TOP: u32 = 72;
const LATENCY_HEIGHT: u32 = 350;
const THROUGHPUT_HEIGHT: u32 = 380;
const FONT: &str = "sans-serif";
/// plotters writes a font size of `n` as `n / 1.24` in the SVG: these give 18, 13,
/// 12, 11 and 10 px.
const TITLE: f64 = 22.3;
const CAPTION: f64 = 16.1;
const HEADING: f64 = 14.9;
const TEXT: f64 = 13.6;
const SMALL: f64 = 12.4;
const BACKGROUND: RGBColor = RGBColor(0xfa, 0xfa, 0xfa);
const GRID: RGBColor = RGBColor(0xdd, 0xdd, 0xdd);
const NOTE: RGBColor = RGBColor(0x44, 0x44, 0x44);

/// Colours by mechanism id: the floors black and grey, shmlane's rings in blues,
/// greens and purples (SPSC) and oranges and reds (MPMC), the kernel paths in the
/// rest; a row the table does not know takes one from `FALLBACK`.
const COLOURS: &[(&str, RGBColor)] = &[
    ("raw-cache-line", RGBColor(0x00, 0x00, 0x00)),
    ("futex-doorbell", RGBColor(0x8a, 0x8a, 0x8a)),
    ("minimal-spsc-ring", RGBColor(0x55, 0x55, 0x55)),
    ("shmlane-spsc-spin", RGBColor(0x1f, 0x5f, 0xbf)),
    ("shmlane-spsc-adaptive", RGBColor(0x2c, 0xa0, 0x2c)),
    ("shmlane-spsc-park-futex", RGBColor(0x7b, 0x4f, 0xc4)),
    ("shmlane-spsc-park-semaphore", RGBColor(0xc8, 0x6d, 0xd7)),
    ("shmlane-mpmc-spin", RGBColor(0xff, 0x7f, 0x0e)),
    ("shmlane-mpmc-adaptive", RGBColor(0xd6, 0x27, 0x28)),
    ("shmlane-mpmc-park-futex", RGBColor(0x8c, 0x56, 0x4b)),
    ("pipe", RGBColor(0xb5, 0xb8, 0x00)),
    ("pipe-busy-poll", RGBColor(0x17, 0xbe, 0xcf)),
    ("pipe-1mib", RGBColor(0xe6, 0xa0, 0x00)),
    ("unix-stream", RGBColor(0x1b, 0x9e, 0x77)),
    ("unix-seqpacket", RGBColor(0xe7, 0x29, 0x8a)),
    ("tcp-loopback", RGBColor(0x5a, 0x5a, 0xa0)),
    ("posix-mqueue", RGBColor(0xa6, 0x76, 0x1d)),
];
const FALLBACK: [RGBColor; 4] = [
    RGBColor(0x4d, 0x4d, 0x4d),
    RGBColor(0x66, 0xa6, 0x1e),
    RGBColor(0x38, 0x6c, 0xb0),
    RGBColor(0xf0, 0x02, 0x7f),
];

fn colour(id: &str) -> RGBColor {
    if let Some((_, c)) = COLOURS.iter().find(|(k, _)| *k == id) {
        return *c;
    }
    let i = MECHANISMS.iter().position(|m| m.id == id).unwrap_or(0);
    FALLBACK[i % FALLBACK.len()]
}

/// How a mechanism's family is stroked.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stroke {
    Solid,
    /// `(dash, gap)` in pixels.
    Dashed(u32, u32),
    Dotted,
}

fn stroke(mech: Mech) -> Stroke {
    match mech {
        Mech::RawLine | Mech::FutexDoorbell | Mech::MinimalRing => Stroke::Dotted,
        Mech::Ring(RingKind::Spsc, ..) => Stroke::Solid,
        Mech::Ring(..) => Stroke::Dashed(12, 4),
        _ => Stroke::Dashed(5, 4),
    }
}

type DrawResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// A line through `points` on `area` (in its coordinates), stroked as `mech`'s family.
fn path<CT>(
    area: &DrawingArea<SVGBackend<'_>, CT>,
    points: &[CT::From],
    colour: RGBColor,
    mech: Mech,
) -> DrawResult
where
    CT: CoordTranslate,
    CT::From: Clone + 'static,
{
    let style = colour.stroke_width(2);
    let points = points.to_vec();
    match stroke(mech) {
        Stroke::Solid => area.draw(&PathElement::new(points, style))?,
        Stroke::Dashed(dash, gap) => {
            area.draw(&DashedPathElement::new(points, dash, gap, style))?
        }
        Stroke::Dotted => area.draw(&DottedPathElement::new(points, 0, 4, move |c| {
            Circle::new(c, 1, colour.filled())
        }))?,
    }
    Ok(())
}

/// Decades covering `[lo, hi]`: `(10^floor(log lo), 10^ceil(log hi))`, at least one
/// apart, and the powers of ten between, for the ticks.
fn decades(lo: f64, hi: f64) -> ((f64, f64), Vec<f64>) {
    let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let b = b.max(a + 1);
    let ticks = (a..=b).map(|k| 10f64.powi(k)).collect();
    ((10f64.powi(a), 10f64.powi(b)), ticks)
}

/// The smallest and largest of `values`, if any.
fn span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
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

/// The x of p50 on the nines axis: 1 / (1 - 0.5).
const P50: f64 = 2.0;

/// The label of `x` = 1 / (1 - q) on the nines axis.
fn nines_label(x: f64) -> String {
    if (x - P50).abs() < 1e-6 {
        return "p50".into();
    }
    match x.log10().round() as i32 {
        i32::MIN..=0 => "min".into(),
        1 => "p90".into(),
        2 => "p99".into(),
        k => format!("p99.{}", "9".repeat((k - 2) as usize)),
    }
}

/// The points of a latency curve: (1 / (1 - q), ns).
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
            n
        } else {
            let tail = 1.0 - ppm as f64 / 1e6;
            // A quantile is meaningful only with at least 1 / (1 - q) samples.
            if tail * n < 1.0 {
                continue;
            }
            1.0 / tail
        };
        pts.push((x, ns as f64));
    }
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}

/// A panel's axes: `x` and `y` ranges with their ticks, labels and titles.
struct Axes<'a, X, Y> {
    caption: String,
    x: X,
    y: Y,
    x_label: &'a dyn Fn(&f64) -> String,
    y_label: &'a dyn Fn(&f64) -> String,
    x_desc: &'a str,
    y_desc: &'a str,
}

/// A panel on the SVG, with `X` and `Y` axes.
type Panel<'b, X, Y> = ChartContext<
    'b,
    SVGBackend<'b>,
    Cartesian2d<<X as AsRangedCoord>::CoordDescType, <Y as AsRangedCoord>::CoordDescType>,
>;

/// Draws a panel's frame, grid, ticks and titles on `area`, and returns its chart.
fn panel<'b, X, Y>(
    area: &DrawingArea<SVGBackend<'b>, Shift>,
    axes: Axes<'_, X, Y>,
) -> DrawResult<Panel<'b, X, Y>>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .caption(
            axes.caption,
            (FONT, CAPTION).into_font().style(FontStyle::Bold),
        )
        .margin_left(6)
        .margin_right(20)
        .x_label_area_size(42)
        .y_label_area_size(62)
        .build_cartesian_2d(axes.x, axes.y)?;
    chart.plotting_area().fill(&WHITE)?;
    chart
        .configure_mesh()
        .x_labels(32)
        .y_labels(32)
        .x_label_formatter(axes.x_label)
        .y_label_formatter(axes.y_label)
        .x_desc(axes.x_desc)
        .y_desc(axes.y_desc)
        .label_style((FONT, SMALL))
        .axis_desc_style((FONT, TEXT))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(NOTE)
        .draw()?;
    Ok(chart)
}

/// The SVG document for the run.
pub(crate) fn svg(r: &Results) -> Result<String, String> {
    let mut out = String::new();
    draw(r, &mut out).map_err(|e| format!("drawing the plot: {e}"))?;
    Ok(out)
}

fn draw(r: &Results, out: &mut String) -> DrawResult {
    let s = summarize(r);
    let c = &r.config;
    let e = &r.env;
    let sizes: Vec<usize> = {
        let mut v: Vec<usize> = s.latency.iter().map(|l| l.row.size).collect();
        v.dedup();
        v
    };
    // Mechanisms that have a figure, in table order.
    let present: Vec<&'static MechSpec> = MECHANISMS
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
    let height = (LATENCY_TOP + LATENCY_HEIGHT + THROUGHPUT_HEIGHT + 20)
        .max(LATENCY_TOP + 22 * present.len() as u32 + 130);

    let root = SVGBackend::with_string(out, (WIDTH, height)).into_drawing_area();
    root.fill(&BACKGROUND)?;
    let title = format!(
        "shmlane bench{}: round-trip latency and one-way throughput",
        if c.quick { " --quick" } else { "" }
    );
    root.draw(&Text::new(
        title,
        (20, 14),
        (FONT, TITLE).into_font().style(FontStyle::Bold),
    ))?;
    let pinning = match e.cpus {
        Some([a, b]) => format!("pinned to CPUs {a} and {b}"),
        None => "not pinned (one CPU)".into(),
    };
    let rounds = if c.rounds == 1 {
        "1 round".to_string()
    } else {
        format!("medians of {} rounds", c.rounds)
    };
    let subtitle = format!(
        "{}, Linux {}, {pinning}; {rounds}; every receiver copies each message out and \
         checks it; fresh processes per row",
        e.cpu_model, e.kernel
    );
    root.draw(&Text::new(subtitle, (20, 40), (FONT, TEXT)))?;

    let (plots, legend) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
    let (_, body) = plots.split_vertically(LATENCY_TOP);
    let (latency, throughput) = body.split_vertically(LATENCY_HEIGHT);

    // Round-trip panels, all on the same axes.
    let curves: Vec<Vec<(f64, f64)>> = s.latency.iter().map(curve_points).collect();
    let (ns_range, ns_ticks) = match span(curves.iter().flatten().map(|p| p.1)) {
        Some((lo, hi)) => decades(lo, hi),
        None => decades(10.0, 1e6),
    };
    // At least to p99.9.
    let nines = curves
        .iter()
        .flatten()
        .map(|p| p.0)
        .fold(1e3f64, f64::max)
        .log10()
        .ceil() as i32;
    let nines_ticks: Vec<f64> = std::iter::once(P50)
        .chain((1..=nines).map(|k| 10f64.powi(k)))
        .collect();
    let panels = latency.split_evenly((1, sizes.len().max(1)));
    for (area, &size) in panels.iter().zip(&sizes) {
        let mut chart = panel(
            area,
            Axes {
                caption: format!("Round trip, {} messages", report::size(size)),
                x: (1.0..10f64.powi(nines))
                    .log_scale()
                    .with_key_points(nines_ticks.clone()),
                y: (ns_range.0..ns_range.1)
                    .log_scale()
                    .with_key_points(ns_ticks.clone()),
                x_label: &|x| nines_label(*x),
                y_label: &|y| ns_label(*y),
                x_desc: "percentile (left edge: min; last point: max)",
                y_desc: "round trip (log)",
            },
        )?;
        for (l, pts) in s.latency.iter().zip(&curves) {
            if l.row.size != size || pts.is_empty() {
                continue;
            }
            let col = colour(l.row.spec.id);
            path(chart.plotting_area(), pts, col, l.row.spec.mech)?;
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 2, col.filled())))?;
        }
    }

    // Throughput panel.
    let bytes_of = |t: &ThroughputFigures<'_>| match t.row.load {
        Load::Messages(len) => len as f64,
        Load::Stream => c.stream_len as f64,
    };
    let mut loads: Vec<Load> = s.throughput.iter().map(|t| t.row.load).collect();
    loads.dedup();
    let load_bytes: Vec<f64> = loads
        .iter()
        .map(|l| match *l {
            Load::Messages(len) => len as f64,
            Load::Stream => c.stream_len as f64,
        })
        .collect();
    // Half an octave of room on either side.
    let (x0, x1) = span(load_bytes.iter().copied()).unwrap_or((32.0, 2e6));
    let x_range = x0 / 2f64.sqrt()..x1 * 2f64.sqrt();
    let gbs = s.throughput.iter().filter_map(|t| t.gb_per_s);
    let (gb_range, gb_ticks) = match span(gbs.filter(|g| *g > 0.0)) {
        Some((lo, hi)) => decades(lo, hi),
        None => decades(0.01, 100.0),
    };
    let stream_len = c.stream_len as f64;
    let x_label = move |x: &f64| {
        let bytes = x.round() as u64;
        if loads.contains(&Load::Stream) && bytes == c.stream_len {
            format!("{} (streamed)", report::size_u64(bytes))
        } else {
            report::size_u64(bytes)
        }
    };
    let area = throughput.margin(20, 10, 0, 0);
    let mut chart = panel(
        &area,
        Axes {
            caption: "One-way throughput by message size".into(),
            x: x_range.log_scale().base(2.0).with_key_points(load_bytes),
            y: (gb_range.0..gb_range.1)
                .log_scale()
                .with_key_points(gb_ticks),
            x_label: &x_label,
            y_label: &|g| gb_label(*g),
            x_desc: "message size (log)",
            y_desc: "GB/s = 10^9 B/s (log)",
        },
    )?;
    for m in &present {
        let rows: Vec<&ThroughputFigures<'_>> = s
            .throughput
            .iter()
            .filter(|t| t.row.spec.id == m.id)
            .collect();
        let line: Vec<(f64, f64)> = rows
            .iter()
            .filter(|t| matches!(t.row.load, Load::Messages(_)))
            .filter_map(|t| t.gb_per_s.filter(|g| *g > 0.0).map(|g| (bytes_of(t), g)))
            .collect();
        let col = colour(m.id);
        path(chart.plotting_area(), &line, col, m.mech)?;
        chart.draw_series(line.iter().map(|&p| Circle::new(p, 2, col.filled())))?;
        let streamed = rows
            .iter()
            .filter(|t| t.row.load == Load::Stream)
            .filter_map(|t| t.gb_per_s.filter(|g| *g > 0.0));
        for g in streamed {
            chart.draw_series([
                Circle::new((stream_len, g), 5, WHITE.filled()),
                Circle::new((stream_len, g), 5, col.stroke_width(2)),
            ])?;
        }
    }

    // Legend.
    legend.draw(&Text::new(
        "mechanism",
        (0, LATENCY_TOP as i32 - 2),
        (FONT, HEADING).into_font().style(FontStyle::Bold),
    ))?;
    let mut y = LATENCY_TOP as i32 + 20;
    for m in &present {
        path(&legend, &[(0, y), (30, y)], colour(m.id), m.mech)?;
        legend.draw(&Text::new(
            m.label,
            (36, y),
            TextStyle::from((FONT, TEXT)).pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        y += 22;
    }
    y += 8;
    for line in [
        "solid: shmlane SPSC; long dashes:",
        "MPMC; short dashes: kernel mechanisms;",
        "dotted: the floors.",
        "Hollow marker: the streamed",
        "message. Details and ratios:",
        "shmlane bench --help and the table.",
    ] {
        legend.draw(&Text::new(
            line,
            (0, y),
            (FONT, SMALL).into_font().color(&NOTE),
        ))?;
        y += 13;
    }
    root.present()?;
    Ok(())
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
        assert_eq!(nines_label(1e4), "p99.99");
        assert_eq!(nines_label(10.0), "p90");
        assert_eq!(nines_label(1.0), "min");
        assert_eq!(nines_label(P50), "p50");
        assert_eq!(
            decades(150.0, 2e4),
            ((100.0, 1e5), vec![100.0, 1e3, 1e4, 1e5])
        );
        assert_eq!(decades(1.0, 1.0).0, (1.0, 10.0));
    }
}
