//! Arbitrary operations of several MPMC producers and consumers on one ring (grants,
//! writers and readers held open while the others run), checked against a model of the
//! ring that predicts every result.
//! The logic is `shmlane::fuzzing::mpmc::ring_ops`, which `tests/fuzz_replay.rs` also
//! drives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shmlane::fuzzing::mpmc::ring_ops(data));
