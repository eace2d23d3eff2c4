//! Arbitrary header fields: opening refuses them, or gives a ring that works.
//! The logic is `shmlane::fuzzing::spsc::header_open`, which `tests/fuzz_replay.rs` also
//! drives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shmlane::fuzzing::spsc::header_open(data));
