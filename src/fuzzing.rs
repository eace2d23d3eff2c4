//! Entry points for the fuzz targets in `fuzz/` and for the stable tests that replay
//! their corpora (`tests/fuzz_replay.rs`). Not an API: hidden from the docs, and free to
//! change with the fuzz targets.
