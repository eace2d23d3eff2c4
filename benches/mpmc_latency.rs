//! MPMC round trips beside SPSC, across processes: the bench process pings a forked
//! child that copies out, checks and echoes every message; one criterion iteration
//! is one round trip, 8 B and 1 KiB messages.
//!
//! - `spsc-spin` / `spsc-adaptive`: two 64 KiB `shmlane::spsc` rings, one per
//!   direction, `Wait::Spin` or the default `Wait::Adaptive` on all four endpoints.
//! - `mpmc-spin` / `mpmc-adaptive`: the same with two `shmlane::mpmc` rings of one
//!   producer and one consumer each, cells of the message size (64 B at least), so
//!   that each message takes one cell: what the MPMC protocol costs uncontended. The
//!   target is MPMC within 1.5x of SPSC.
//!
//! `send(&[u8])` and `recv(&mut Vec<u8>)` throughout. The spinning rows need two CPUs
//! and are skipped on one.

mod common;

use common::{config, mpmc_duplex, pin_bench_process, round_trip, shm_duplex, size_label};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use shmlane::{Notifier, Wait};

const RING: usize = 64 << 10;

fn mpmc_latency(c: &mut Criterion) {
    let two_cpus = pin_bench_process().is_some();
    let mut group = c.benchmark_group("mpmc_latency");
    for len in [8usize, 1024] {
        let label = size_label(len);
        for (name, wait) in [("spin", Wait::Spin), ("adaptive", Wait::Adaptive)] {
            if wait == Wait::Spin && !two_cpus {
                continue;
            }
            let (ours, theirs, _names) = shm_duplex(RING, wait, Notifier::Futex);
            round_trip(
                &mut group,
                BenchmarkId::new(format!("spsc-{name}"), &label),
                len,
                ours,
                theirs,
            );
            let cell = len.next_power_of_two().max(64);
            let (ours, theirs, _names) = mpmc_duplex(RING, cell, wait);
            round_trip(
                &mut group,
                BenchmarkId::new(format!("mpmc-{name}"), &label),
                len,
                ours,
                theirs,
            );
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = mpmc_latency
}
criterion_main!(benches);
