//! The fuzz harness: the entry points of the fuzz targets in `fuzz/` and of the stable
//! test that replays their seeds (`tests/fuzz_replay.rs`).
//!
//! **Not an API.** Compiled only under `cfg(fuzzing)` (cargo-fuzz sets it) or with the
//! `fuzz-harness` feature (which the replay test turns on through the crate's
//! dev-dependency on itself), hidden from the docs, and free to change with the fuzz
//! targets. It lives inside the library because it drives crate-private parts: heap
//! segments, the frame decoders, the header's fields.
//!
//! Each entry point takes arbitrary bytes, builds a ring (in heap memory; for
//! `mpmc_header_open` in a memfd or POSIX object) and panics only when shmlane
//! misbehaves. [`spsc`] holds the SPSC targets, [`mpmc`] the MPMC ones, and a private
//! `common` module what the two share (input decoding, the endpoints' calls on either
//! flavour, the reads of a ring whose producers are gone, the checks once the peers
//! have left, header-field plumbing, the peer's writes). [`TARGETS`] lists them all.

mod common;
pub mod mpmc;
pub mod spsc;

/// A fuzz target: its name, its entry point, and a few valid inputs to start a corpus
/// from.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The name in `fuzz/`: `fuzz_targets/<name>.rs`, `seeds/<name>/`,
    /// `corpus/<name>/`.
    pub name: &'static str,
    /// Arbitrary bytes in; a panic only if shmlane misbehaves.
    pub run: fn(&[u8]),
    /// Valid inputs that reach deep into the target (rings holding records of every
    /// kind, operation sequences that use every call, valid headers).
    pub seeds: fn() -> Vec<Vec<u8>>,
}

/// Every fuzz target, in the order `fuzz/Cargo.toml` lists them.
pub const TARGETS: [Target; 8] = [
    Target {
        name: "frame_decode",
        run: spsc::frame_decode,
        seeds: spsc::frame_seeds,
    },
    Target {
        name: "ring_ops",
        run: spsc::ring_ops,
        seeds: spsc::ring_ops_seeds,
    },
    Target {
        name: "header_open",
        run: spsc::header_open,
        seeds: spsc::header_seeds,
    },
    Target {
        name: "hostile_peer",
        run: spsc::hostile_peer,
        seeds: spsc::hostile_peer_seeds,
    },
    Target {
        name: "mpmc_cell_decode",
        run: mpmc::cell_decode,
        seeds: mpmc::cell_seeds,
    },
    Target {
        name: "mpmc_ring_ops",
        run: mpmc::ring_ops,
        seeds: mpmc::ring_ops_seeds,
    },
    Target {
        name: "mpmc_hostile_peer",
        run: mpmc::hostile_peer,
        seeds: mpmc::hostile_peer_seeds,
    },
    Target {
        name: "mpmc_header_open",
        run: mpmc::header_open,
        seeds: mpmc::header_seeds,
    },
];
