//! Claim: the library is built in layers, and every `crate::` path in its code points
//! to its own layer or one below (ARCHITECTURE.md and DESIGN's section 2):
//!
//! | rank | layer | files |
//! |---|---|---|
//! | 0 | sys: system calls and the sync shim | `src/sync.rs`, `src/sys/` |
//! | 1 | layout: shared data and its validation, errors | `src/header.rs`, `src/frame.rs`, `src/region.rs`, `src/error.rs`, `src/layout/` |
//! | 2 | protocols: no system call | `src/wait.rs`, `src/message.rs`, `src/stream.rs`, `src/protocol/` |
//! | 3 | setup: segments, liveness, options | `src/options.rs`, `src/segment/`, `src/liveness.rs`, `src/setup.rs`, `src/setup/` |
//! | 4 | endpoints | `src/spsc.rs`, `src/mpmc/`, `src/inspect.rs`, `src/endpoints/` |
//! | 5 | the crate root and the fuzz harness | `src/lib.rs`, `src/fuzzing/` |
//!
//! The test reads every `.rs` file under `src/`, drops comments and string literals,
//! and resolves each `crate::name` (and each name of a `use crate::{...}` group) to the
//! module it comes from: a module of the crate root, or an item the root re-exports
//! (`pub use module::{Item}` in `src/lib.rs`), or an item the root defines (rank 5). A
//! file that no row above places fails the test: a new file must be given its layer.
//!
//! The library does not keep this rule yet everywhere (issue 19 restructures it).
//! [`KNOWN_UPWARD`] lists each upward import there is today, file and target; the test
//! fails on an upward import not listed, and on a listed one that is gone, so the list
//! only shrinks, and the restructuring empties it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// `(file under src/, the module its import points to)` for each upward import the
/// library has today.
const KNOWN_UPWARD: &[(&str, &str)] = &[
    // The cursor flag bits of MPMC and the event word of the waits, which the header
    // lays out: both belong in the layout layer.
    ("header.rs", "mpmc"),
    ("header.rs", "wait"),
    // Grants name the endpoint types and the ring options they were made with.
    ("message.rs", "options"),
    ("message.rs", "spsc"),
    // The stream types default their type parameters to spsc's endpoints.
    ("stream.rs", "spsc"),
];

/// The import cycles between modules of the crate root there are today (each as its
/// sorted members); the test fails on a cycle not listed and on a listed one that is
/// gone.
const KNOWN_CYCLES: &[&[&str]] = &[
    // The header lays out mpmc's and wait's words; wait reads the header; the views
    // (spsc, mpmc) own segments and liveness, which call back into options and setup;
    // grants and streams name the endpoints.
    &[
        "header", "liveness", "message", "mpmc", "options", "segment", "setup", "spsc", "stream",
        "wait",
    ],
];

const LAYERS: [&str; 6] = ["sys", "layout", "protocol", "setup", "endpoints", "root"];

/// The rank of a file, by its path under `src/`.
fn rank_of_file(path: &str) -> Option<usize> {
    let top = path.split('/').next()?;
    let stem = top.strip_suffix(".rs").unwrap_or(top);
    rank_of_module(stem)
}

/// The rank of a module of the crate root.
fn rank_of_module(module: &str) -> Option<usize> {
    Some(match module {
        "sync" | "sys" => 0,
        "header" | "frame" | "region" | "error" | "layout" => 1,
        "wait" | "message" | "stream" | "protocol" => 2,
        "options" | "segment" | "liveness" | "setup" => 3,
        "spsc" | "mpmc" | "inspect" | "endpoints" => 4,
        "lib" | "fuzzing" | "loom_internals" => 5,
        _ => return None,
    })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The code of a Rust file without its comments, string and character literals (each
/// replaced by a space), so that a path in a doc comment or a message does not count.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &src[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            let mut depth = 0;
            while i < b.len() {
                if src[i..].starts_with("/*") {
                    depth += 1;
                    i += 2;
                } else if src[i..].starts_with("*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") || rest.starts_with("br\"") {
            // Raw string: r"...", r#"..."#, br"...".
            let start = rest.find('r').expect("r") + 1;
            let hashes = rest[start..].bytes().take_while(|&c| c == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = start + hashes + 1;
            let end = rest[body..]
                .find(&close)
                .map_or(rest.len(), |e| body + e + close.len());
            i += end;
            out.push(' ');
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else if b[i] == b'\'' {
            // A char literal ('a', '\n', '\u{..}', '"') or a lifetime ('a).
            let mut chars = rest[1..].chars();
            let first = chars.next();
            let literal_len = match first {
                Some('\\') => rest[2..].find('\'').map(|k| k + 3),
                Some(c) if chars.next() == Some('\'') => Some(c.len_utf8() + 2),
                _ => None,
            };
            match literal_len {
                Some(n) => {
                    i += n;
                    out.push(' ');
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let c = rest.chars().next().expect("a char");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The first segments of every `crate::` path in `code`: `crate::a::b` gives `a`,
/// `use crate::{a::b, c, d::{e, f}}` gives `a`, `c`, `d`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(k) = code[at..].find("crate::") {
        let start = at + k;
        at = start + "crate::".len();
        // `crate` must be a whole word (not `shmlane_crate::`, say).
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at..];
        if let Some(group) = rest.strip_prefix('{') {
            // A group: the names at depth 0 of the braces.
            let mut depth = 0;
            let mut item = String::new();
            let mut expecting_name = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        if !item.is_empty() {
                            found.push(std::mem::take(&mut item));
                        }
                        expecting_name = true;
                    }
                    c if depth == 0 && expecting_name && (c.is_alphanumeric() || c == '_') => {
                        item.push(c)
                    }
                    _ if depth == 0 && expecting_name && !item.is_empty() => {
                        found.push(std::mem::take(&mut item));
                        expecting_name = false;
                    }
                    _ => {}
                }
            }
            if !item.is_empty() {
                found.push(item);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

/// What the crate root re-exports: item name → the module of the root it comes from.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let code = code_only(lib);
    for stmt in code.split(';') {
        // After any attributes (`#[cfg(...)]`) before it.
        let Some(at) = stmt.find("pub use ") else {
            continue;
        };
        let rest = &stmt[at + "pub use ".len()..];
        let module: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let names = match rest.find('{') {
            Some(open) => rest[open + 1..].trim_end_matches('}').to_string(),
            None => rest.rsplit("::").next().unwrap_or("").to_string(),
        };
        for name in names.split(',') {
            let name = name.trim().rsplit("::").next().unwrap_or("").trim();
            if !name.is_empty() {
                map.insert(name.to_string(), module.clone());
            }
        }
    }
    map
}

/// The strongly connected groups of more than one module in `edges` (module → the
/// modules it imports), each as its sorted members.
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<Vec<String>> {
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(m) = stack.pop() {
            for next in edges.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&String, BTreeSet<String>> =
        edges.keys().map(|m| (m, reach(m))).collect();
    let mut groups = BTreeSet::new();
    for (m, from_m) in &reachable {
        let mut group: Vec<String> = from_m
            .iter()
            .filter(|other| reachable.get(other).is_some_and(|r| r.contains(*m)))
            .cloned()
            .collect();
        if !group.is_empty() {
            if !group.contains(m) {
                group.push((*m).clone());
            }
            group.sort();
            groups.insert(group);
        }
    }
    groups
}

#[test]
fn every_import_points_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let lib = fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    let reexports = root_reexports(&lib);
    assert!(
        reexports.get("Error").map(String::as_str) == Some("error"),
        "the re-exports of src/lib.rs were not read: {reexports:?}"
    );

    let mut unplaced = Vec::new();
    let mut upward = BTreeSet::new();
    let mut imports_seen = 0;
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &files {
        let rel = path
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        let Some(rank) = rank_of_file(&rel) else {
            unplaced.push(rel);
            continue;
        };
        let code = code_only(&fs::read_to_string(path).expect("a source file"));
        for name in crate_paths(&code) {
            imports_seen += 1;
            let module = match rank_of_module(&name) {
                Some(_) => name.clone(),
                None => reexports
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| "lib".to_string()),
            };
            let target = rank_of_module(&module).unwrap_or(5);
            let from = rel.split('/').next().unwrap_or("").trim_end_matches(".rs");
            if from != module {
                edges
                    .entry(from.to_string())
                    .or_default()
                    .insert(module.clone());
            }
            if target > rank {
                upward.insert((rel.clone(), module, rank, target));
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "files in no layer (give each a row in tests/library_layers.rs): {unplaced:?}"
    );
    assert!(
        imports_seen > 100,
        "only {imports_seen} crate:: paths found: the reader is broken"
    );

    let cycles = cycles(&edges);
    let known_cycles: BTreeSet<Vec<String>> = KNOWN_CYCLES
        .iter()
        .map(|c| c.iter().map(|m| m.to_string()).collect())
        .collect();
    let new_cycles: Vec<&Vec<String>> = cycles.difference(&known_cycles).collect();
    let gone_cycles: Vec<&Vec<String>> = known_cycles.difference(&cycles).collect();
    assert!(
        new_cycles.is_empty() && gone_cycles.is_empty(),
        "import cycles not listed in KNOWN_CYCLES: {new_cycles:?}; listed but gone: \
         {gone_cycles:?}"
    );

    let known: BTreeSet<(String, String)> = KNOWN_UPWARD
        .iter()
        .map(|&(f, m)| (f.to_string(), m.to_string()))
        .collect();
    let found: BTreeSet<(String, String)> = upward
        .iter()
        .map(|(f, m, _, _)| (f.clone(), m.clone()))
        .collect();
    let new: Vec<String> = upward
        .iter()
        .filter(|(f, m, _, _)| !known.contains(&(f.clone(), m.clone())))
        .map(|(f, m, from, to)| {
            format!(
                "src/{f} ({}) imports crate::{m} ({})",
                LAYERS[*from], LAYERS[*to]
            )
        })
        .collect();
    let gone: Vec<String> = known
        .difference(&found)
        .map(|(f, m)| format!("(\"{f}\", \"{m}\")"))
        .collect();
    assert!(
        new.is_empty() && gone.is_empty(),
        "upward imports not listed in KNOWN_UPWARD:\n  {}\nlisted in KNOWN_UPWARD but gone \
         (remove them):\n  {}",
        new.join("\n  "),
        gone.join("\n  ")
    );
}

/// The reader itself: comments and strings do not count, groups and paths do.
#[test]
fn the_reader_finds_paths_in_code_only() {
    let code = code_only(
        "use crate::{a::b, c, d::{e, f}};\n\
         // crate::commented\n\
         /// [`crate::doc`]\n\
         let s = \"crate::quoted\"; let r = r#\"crate::raw\"#;\n\
         fn f<'a>(x: &'a u8) -> char { let _ = crate::g::h(x); 'c' }\n\
         /* crate::block */ let y = my_crate::not_ours;",
    );
    assert_eq!(crate_paths(&code), ["a", "c", "d", "g"]);
    let edges: BTreeMap<String, BTreeSet<String>> =
        [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]
            .iter()
            .fold(BTreeMap::new(), |mut m, &(f, t)| {
                m.entry(f.to_string())
                    .or_insert_with(BTreeSet::new)
                    .insert(t.to_string());
                m
            });
    let found: Vec<Vec<String>> = cycles(&edges).into_iter().collect();
    assert_eq!(found, [vec!["a".to_string(), "b".into(), "c".into()]]);
    let map = root_reexports("pub use error::{Error, RecvError};\npub use wait::Wait;");
    assert_eq!(map.get("RecvError").map(String::as_str), Some("error"));
    assert_eq!(map.get("Wait").map(String::as_str), Some("wait"));
}
