//! Arbitrary sequences of producer and consumer operations on one ring, checked against
//! a model of the messages that must come out.
//! The logic is `shmlane::fuzzing::spsc::ring_ops`, which `tests/fuzz_replay.rs` also
//! drives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shmlane::fuzzing::spsc::ring_ops(data));
