//! Replays the fuzz targets' checked-in corpora (`fuzz/corpus/<target>/`) and a few
//! thousand deterministic pseudo-random inputs per target through the same entry
//! points as the fuzz targets (`shmlane::fuzzing`, `shmlane::fuzzing_mpmc`), so that CI
//! runs them on stable.
//!
//! Every input builds a ring in heap memory: no segment, no process, no futex wait.
//! Under Miri the corpus files are not read (its isolation has no file system) and
//! only a few random inputs and the seeds run.

use std::path::PathBuf;

use shmlane::{fuzzing, fuzzing_mpmc};

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 8] = [
    ("frame_decode", fuzzing::frame_decode),
    ("ring_ops", fuzzing::ring_ops),
    ("header_open", fuzzing::header_open),
    ("hostile_peer", fuzzing::hostile_peer),
    ("mpmc_cell_decode", fuzzing_mpmc::cell_decode),
    ("mpmc_ring_ops", fuzzing_mpmc::ring_ops),
    ("mpmc_hostile_peer", fuzzing_mpmc::hostile_peer),
    ("mpmc_header_open", fuzzing_mpmc::header_open),
];

/// The seeds of a target, from the module that has it.
fn seeds_of(target: &str) -> Vec<Vec<u8>> {
    if target.starts_with("mpmc_") {
        fuzzing_mpmc::seeds(target)
    } else {
        fuzzing::seeds(target)
    }
}

/// Random inputs per target (and their longest length).
const RANDOM_CASES: usize = if cfg!(miri) { 6 } else { 3000 };
const RANDOM_MAX_LEN: usize = if cfg!(miri) { 300 } else { 2000 };

/// xorshift64*: deterministic, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Runs `f` on `input`; on a panic, says which input it was (and writes it out, so it
/// can be replayed with `cargo fuzz run <target> <file>`).
fn replay(target: &str, what: &str, f: Target, input: &[u8]) {
    // `SHMLANE_FUZZ_REPLAY_LOG=1`: name each input before it runs (to find one that
    // hangs).
    if !cfg!(miri) && std::env::var_os("SHMLANE_FUZZ_REPLAY_LOG").is_some() {
        eprintln!("{target}: {what}");
    }
    let r = std::panic::catch_unwind(|| f(input));
    if let Err(e) = r {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let mut hint = String::new();
        if !cfg!(miri) {
            let path = std::env::temp_dir().join(format!("shmlane-fuzz-{target}-failure"));
            if std::fs::write(&path, input).is_ok() {
                hint = format!(" (input written to {})", path.display());
            }
        }
        panic!("{target}: {what} failed: {msg}{hint}");
    }
}

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target)
}

#[test]
#[cfg_attr(
    miri,
    ignore = "reads the corpus files: Miri's isolation has no file system"
)]
fn checked_in_corpus() {
    let mut total = 0;
    for (target, f) in TARGETS {
        let dir = corpus_dir(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus in {}", dir.display());
        for path in &files {
            let input = std::fs::read(path).expect("a corpus file");
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            replay(target, &name, f, &input);
        }
        total += files.len();
    }
    println!("replayed {total} corpus files");
}

#[test]
fn seeds() {
    for (target, f) in TARGETS {
        let seeds = seeds_of(target);
        assert!(!seeds.is_empty(), "{target}: no seeds");
        for (i, s) in seeds.iter().enumerate() {
            replay(target, &format!("seed {i}"), f, s);
        }
    }
}

#[test]
fn random_inputs() {
    for (k, (target, f)) in TARGETS.into_iter().enumerate() {
        let mut rng = Rng(0x5eed_0000_0000_0001 + k as u64);
        for case in 0..RANDOM_CASES {
            let len = (rng.next() % RANDOM_MAX_LEN as u64) as usize;
            let mut input: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Half of the inputs start from a seed, with random bytes written over
            // part of it, so that they get past header validation and into the ring.
            let seeds = seeds_of(target);
            if case % 2 == 1 && !seeds.is_empty() {
                let mut s = seeds[case / 2 % seeds.len()].clone();
                let at = (rng.next() % s.len().max(1) as u64) as usize;
                let n = (rng.next() % 16) as usize;
                for b in s.iter_mut().skip(at).take(n) {
                    *b = rng.next() as u8;
                }
                if rng.next() % 2 == 0 {
                    s.extend_from_slice(&input[..len / 4]);
                }
                input = s;
            }
            replay(target, &format!("random case {case}"), f, &input);
        }
    }
}

/// Writes the seeds missing from the corpus directories (`cargo test --test fuzz_replay
/// -- --ignored write_seeds`), for a fresh corpus; `fuzz/run.sh` does it.
#[test]
#[ignore = "writes into fuzz/corpus; run by fuzz/run.sh"]
fn write_seeds() {
    for (target, _) in TARGETS {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        for (i, s) in seeds_of(target).iter().enumerate() {
            // Seeds already checked in stay as they are (a header seed holds the pid of
            // the process that wrote it: rewriting it would change it for nothing).
            let path = dir.join(format!("seed-{i}"));
            if !path.exists() {
                std::fs::write(path, s).expect("write a seed");
            }
        }
    }
}

/// Replays one file given in `SHMLANE_FUZZ_REPLAY=<target>:<path>` (for debugging).
#[test]
#[cfg_attr(miri, ignore = "reads a file")]
fn replay_one() {
    let Ok(spec) = std::env::var("SHMLANE_FUZZ_REPLAY") else {
        return;
    };
    let (target, path) = spec.split_once(':').expect("<target>:<path>");
    let f = TARGETS
        .iter()
        .find(|(t, _)| *t == target)
        .expect("a known target")
        .1;
    f(&std::fs::read(path).expect("the input file"));
}
