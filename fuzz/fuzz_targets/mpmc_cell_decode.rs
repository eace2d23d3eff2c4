//! Arbitrary MPMC record words against `decode_cell`, and arbitrary stamps, record words
//! and cursors read by a consumer whose producers are gone: every read returns a message
//! or an error, and the reads end.
//! The logic is `shmlane::fuzzing::mpmc::cell_decode`, which `tests/fuzz_replay.rs` also
//! drives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shmlane::fuzzing::mpmc::cell_decode(data));
