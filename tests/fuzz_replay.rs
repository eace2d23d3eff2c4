//! Replays the fuzz targets' checked-in seeds (`fuzz/seeds/<target>/`: the crash
//! reproducers and a minimised corpus), the seeds the harness writes, and a few
//! thousand deterministic pseudo-random inputs per target through the same entry
//! points as the fuzz targets (`shmlane::fuzzing`, compiled for this test by the
//! `fuzz-harness` feature of the crate's dev-dependency on itself), so that CI runs
//! them on stable.
//!
//! Every input builds a ring in heap memory (`mpmc_header_open`: in a memfd or a POSIX
//! object it removes): no process, no futex wait. Under Miri the seed files are not
//! read (its isolation has no file system) and only a few random inputs and the
//! harness's seeds run.

use std::path::PathBuf;

use shmlane::fuzzing::{Target, TARGETS};

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
fn replay(target: &str, what: &str, f: fn(&[u8]), input: &[u8]) {
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

/// `fuzz/<what>/<target>`: `seeds` (checked in) or `corpus` (the local corpus).
fn fuzz_dir(what: &str, target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(what)
        .join(target)
}

#[test]
#[cfg_attr(
    miri,
    ignore = "reads the seed files: Miri's isolation has no file system"
)]
fn checked_in_seeds() {
    let mut total = 0;
    for Target { name, run, .. } in TARGETS {
        let dir = fuzz_dir("seeds", name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seeds in {}", dir.display());
        for path in &files {
            let input = std::fs::read(path).expect("a seed file");
            let file = path.file_name().unwrap_or_default().to_string_lossy();
            replay(name, &file, run, &input);
        }
        total += files.len();
    }
    println!("replayed {total} seed files");
}

#[test]
fn harness_seeds() {
    for Target { name, run, seeds } in TARGETS {
        let seeds = seeds();
        assert!(!seeds.is_empty(), "{name}: no seeds");
        for (i, s) in seeds.iter().enumerate() {
            replay(name, &format!("seed {i}"), run, s);
        }
    }
}

#[test]
fn random_inputs() {
    for (k, Target { name, run, seeds }) in TARGETS.into_iter().enumerate() {
        let mut rng = Rng(0x5eed_0000_0000_0001 + k as u64);
        let seeds = seeds();
        for case in 0..RANDOM_CASES {
            let len = (rng.next() % RANDOM_MAX_LEN as u64) as usize;
            let mut input: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Half of the inputs start from a seed, with random bytes written over
            // part of it, so that they get past header validation and into the ring.
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
            replay(name, &format!("random case {case}"), run, &input);
        }
    }
}

/// Writes the harness's seeds missing from the local corpus directories
/// (`fuzz/corpus/<target>/seed-<i>`, not tracked: `cargo test --test fuzz_replay --
/// --ignored write_seeds`); `fuzz/run.sh` does it before it fuzzes.
#[test]
#[ignore = "writes into fuzz/corpus; run by fuzz/run.sh"]
fn write_seeds() {
    for Target { name, seeds, .. } in TARGETS {
        let dir = fuzz_dir("corpus", name);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        for (i, s) in seeds().iter().enumerate() {
            // Seeds already written stay as they are (a header seed holds the pid of the
            // process that wrote it: rewriting it would change it for nothing).
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
    let t = TARGETS
        .iter()
        .find(|t| t.name == target)
        .expect("a known target");
    (t.run)(&std::fs::read(path).expect("the input file"));
}
