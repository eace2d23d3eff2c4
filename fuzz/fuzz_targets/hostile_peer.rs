//! Producer and consumer operations with a peer writing arbitrary values into the
//! cursors, endpoint states, event counts, record headers and payloads between them.
//! The logic is `shmlane::fuzzing::spsc::hostile_peer`, which `tests/fuzz_replay.rs` also
//! drives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shmlane::fuzzing::spsc::hostile_peer(data));
