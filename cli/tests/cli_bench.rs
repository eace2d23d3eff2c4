//! `shmlane bench` end to end: usage errors exit 2 with the short usage, and a short
//! run (`--quick --only pipe,posix-mqueue`) exits 0, prints JSON that parses, with a
//! figure for each row it ran, and writes an SVG plot (well-formed, with a legend
//! entry and lines for each mechanism).

use std::process::Command;

fn shmlane(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shmlane"))
        .args(args)
        .output()
        .expect("run shmlane")
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["bench", "--fast"][..],
        &["bench", "--plot"],
        &["bench", "--only", "carrier-pigeon"],
        &["bench", "--json=yes"],
    ] {
        let out = shmlane(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("shmlane: "), "{args:?}: {err}");
        assert!(err.contains("Usage: shmlane bench"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_says_what_each_row_measures() {
    let out = shmlane(&["bench", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for id in [
        "raw-cache-line",
        "shmlane-spsc-spin",
        "shmlane-mpmc-adaptive",
        "unix-seqpacket",
        "tcp-loopback",
        "posix-mqueue",
    ] {
        assert!(help.contains(id), "--help lacks {id}");
    }
}

#[test]
fn unwritable_plot_fails_before_measuring() {
    let out = shmlane(&["bench", "--quick", "--plot", "/nonexistent-dir/x.svg"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent-dir/x.svg"), "{err}");
}

/// The value of `"key": ` in a line of the bench's JSON (one field per line).
fn field<'a>(json: &'a str, key: &str) -> Vec<&'a str> {
    let pat = format!("\"{key}\": ");
    json.lines()
        .filter_map(|l| l.trim().strip_prefix(pat.as_str()))
        .map(|v| v.trim_end_matches(','))
        .collect()
}

#[test]
#[cfg_attr(miri, ignore)] // forks and times real processes
fn short_run_prints_json_and_draws_the_plot() {
    let dir = std::env::temp_dir().join(format!("shmlane-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let svg = dir.join("bench.svg");
    let out = shmlane(&[
        "bench",
        "--quick",
        "--json",
        "--only",
        "pipe,posix-mqueue",
        "--plot",
        svg.to_str().expect("utf-8 path"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let json = String::from_utf8(out.stdout).expect("utf-8 JSON");
    assert!(json.trim_start().starts_with('{') && json.trim_end().ends_with('}'));
    // Braces and brackets balance outside strings.
    let (mut depth, mut in_str, mut esc) = (0i32, false, false);
    for c in json.chars() {
        match (in_str, esc, c) {
            (true, true, _) => esc = false,
            (true, false, '\\') => esc = true,
            (true, false, '"') => in_str = false,
            (false, _, '"') => in_str = true,
            (false, _, '{' | '[') => depth += 1,
            (false, _, '}' | ']') => depth -= 1,
            _ => {}
        }
        assert!(depth >= 0);
    }
    assert_eq!(depth, 0, "unbalanced JSON");
    let mechanisms = field(&json, "mechanism");
    // 3 round-trip sizes x 2 mechanisms + 5 throughput loads x 2 mechanisms.
    assert_eq!(mechanisms.len(), 16, "{mechanisms:?}");
    assert!(mechanisms
        .iter()
        .all(|m| *m == "\"pipe\"" || *m == "\"posix-mqueue\""));
    for p50 in field(&json, "p50_ns") {
        assert!(p50.parse::<u64>().expect("p50 is a number") > 0);
    }
    for gb in field(&json, "gb_per_s") {
        assert!(gb.parse::<f64>().expect("GB/s is a number") > 0.0, "{gb}");
    }
    let plot = std::fs::read_to_string(&svg).expect("the plot was written");
    assert!(plot.starts_with("<svg ") && plot.trim_end().ends_with("</svg>"));
    assert!(plot.contains("POSIX message queue"));
    // Well-formed SVG, with each series named in the legend and drawn as a line.
    let doc = roxmltree::Document::parse(&plot).expect("the plot is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for series in ["pipe", "POSIX message queue"] {
        assert!(
            texts.contains(&series),
            "no legend entry {series:?}: {texts:?}"
        );
    }
    for title in [
        "Round trip, 8 B messages",
        "One-way throughput by message size",
    ] {
        assert!(texts.contains(&title), "no panel {title:?}: {texts:?}");
    }
    // The two mechanisms' colours (pipe, posix-mqueue) stroke lines.
    for colour in ["#B5B800", "#A6761D"] {
        let strokes = doc
            .descendants()
            .filter(|n| n.has_tag_name("line") || n.has_tag_name("polyline"))
            .filter(|n| {
                n.attribute("stroke")
                    .is_some_and(|s| s.eq_ignore_ascii_case(colour))
            })
            .count();
        assert!(strokes > 0, "no line in {colour}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The minimal SPSC ring is measured as a row of its own, one-way rows of shmlane get
/// their messages/s over it (this/min), and the targets of issue 20 compare the two.
#[test]
fn the_minimal_ring_is_the_one_way_yardstick() {
    let out = shmlane(&[
        "bench",
        "--quick",
        "--json",
        "--only",
        "minimal-spsc-ring,shmlane-spsc-spin",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let rows = v["throughput"].as_array().expect("throughput rows");
    let minimal: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| r["mechanism"] == "minimal-spsc-ring")
        .collect();
    // Every message size, and no streamed message (it has no streams).
    let sizes: Vec<u64> = minimal
        .iter()
        .map(|r| r["message_bytes"].as_u64().expect("size"))
        .collect();
    assert_eq!(sizes, [64, 4 << 10, 64 << 10, 1 << 20], "{minimal:?}");
    assert!(minimal.iter().all(|r| r["load"] == "messages"));
    let cpus = v["env"]["allowed_cpus"].as_u64().expect("allowed_cpus");
    if cpus < 2 {
        // Both sides spin: skipped on one CPU, and said so.
        assert!(
            minimal.iter().all(|r| r["skipped"].is_string()),
            "{minimal:?}"
        );
        return;
    }
    for r in &minimal {
        assert!(r["msgs_per_s"].as_f64().expect("msgs/s") > 0.0, "{r}");
        assert_eq!(r["vs_minimal_ring"].as_f64(), Some(1.0), "{r}");
    }
    for r in rows
        .iter()
        .filter(|r| r["mechanism"] == "shmlane-spsc-spin")
    {
        let ratio = &r["vs_minimal_ring"];
        if r["load"] == "stream" {
            assert!(ratio.is_null(), "{r}");
        } else {
            let expected = r["msgs_per_s"].as_f64().expect("msgs/s")
                / minimal
                    .iter()
                    .find(|m| m["message_bytes"] == r["message_bytes"])
                    .and_then(|m| m["msgs_per_s"].as_f64())
                    .expect("the minimal ring's row of the same size");
            let got = ratio.as_f64().expect("a ratio");
            assert!((got - expected).abs() < 0.002, "{got} vs {expected}: {r}");
        }
    }
    let targets: Vec<&serde_json::Value> = v["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .filter(|t| {
            t["name"]
                .as_str()
                .is_some_and(|n| n.contains("minimal ring"))
        })
        .collect();
    assert_eq!(targets.len(), 6, "{targets:?}");
    // The Spin ones have both rows here; the Adaptive ones lack theirs.
    for t in &targets {
        let spin = t["name"].as_str().expect("name").contains("Spin");
        assert_eq!(t["value"].is_number(), spin, "{t}");
        assert_eq!(t["rule"], ">= 1", "{t}");
    }
}
