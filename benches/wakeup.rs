//! The cost of waking a sleeper: round trips of 8 B messages in which both sides
//! sleep whenever they wait, so every hop wakes a parked receiver (two wake-ups per
//! round trip, each including the sender's wake-up system call).
//!
//! - `shmlane-futex` / `shmlane-semaphore`: two 64 KiB SPSC rings with `Wait::Park`
//!   on every endpoint, created with `Notifier::Futex` / `Notifier::Semaphore`.
//! - `futex-doorbell`: the floor: a sequence word per direction in shared memory,
//!   the receiver in FUTEX_WAIT at once, the sender always calling FUTEX_WAKE.
//! - `pipe`: two pipes; `unix-socket`: a UNIX stream socket pair (blocking reads
//!   sleep in the kernel).

mod common;

use common::{config, doorbell_duplex, pin_bench_process, pipe_duplex, round_trip};
use common::{shm_duplex, socket_duplex};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use shmlane::{Notifier, Wait};

fn wakeup(c: &mut Criterion) {
    pin_bench_process();
    let len = 8;
    let mut group = c.benchmark_group("wakeup_round_trip");
    for (name, notifier) in [
        ("shmlane-futex", Notifier::Futex),
        ("shmlane-semaphore", Notifier::Semaphore),
    ] {
        let (ours, theirs, _names) = shm_duplex(64 << 10, Wait::Park, notifier);
        round_trip(&mut group, BenchmarkId::new(name, "8 B"), len, ours, theirs);
    }
    let (ours, theirs) = doorbell_duplex(len);
    round_trip(
        &mut group,
        BenchmarkId::new("futex-doorbell", "8 B"),
        len,
        ours,
        || theirs,
    );
    let (ours, theirs) = pipe_duplex();
    round_trip(
        &mut group,
        BenchmarkId::new("pipe", "8 B"),
        len,
        ours,
        || theirs,
    );
    let (ours, theirs) = socket_duplex();
    round_trip(
        &mut group,
        BenchmarkId::new("unix-socket", "8 B"),
        len,
        ours,
        || theirs,
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = wakeup
}
criterion_main!(benches);
