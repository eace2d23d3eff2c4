//! MPMC operations with a peer writing arbitrary values into the cursors, stamps, record
//! words, attach counters, endpoint states and payloads between them.
//! The logic is `shmlane::fuzzing::mpmc::hostile_peer`, which `tests/fuzz_replay.rs` also
//! drives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shmlane::fuzzing::mpmc::hostile_peer(data));
