//! Arbitrary MPMC header fields in a memfd or POSIX segment of arbitrary length: opening
//! refuses them, or gives a ring that works.
//! The logic is `shmlane::fuzzing::mpmc::header_open`, which `tests/fuzz_replay.rs` also
//! drives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shmlane::fuzzing::mpmc::header_open(data));
