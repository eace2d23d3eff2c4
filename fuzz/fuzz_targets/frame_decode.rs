//! Arbitrary bytes as a ring's data region, with arbitrary cursors, read by a consumer
//! whose producer is gone: every read returns a message or an error, and the reads end.
//! The logic is `shmlane::fuzzing::spsc::frame_decode`, which `tests/fuzz_replay.rs` also
//! drives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shmlane::fuzzing::spsc::frame_decode(data));
