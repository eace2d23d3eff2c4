//! Round trips across processes: the bench process pings a forked child that
//! copies out, checks and echoes every message; one criterion iteration is one round
//! trip, 8 B and 1 KiB messages.
//!
//! - `shmlane-spin` / `shmlane-adaptive`: two 64 KiB SPSC rings, one per direction,
//!   `Wait::Spin` or the default `Wait::Adaptive` on all four endpoints;
//!   `send(&[u8])` and `recv(&mut Vec<u8>)`.
//! - `pipe`: two pipes (default buffer), `write_all` / `read_exact`.
//! - `unix-socket`: a UNIX stream socket pair, `write_all` / `read_exact`.
//!
//! The spinning row needs two CPUs and is skipped on one.

mod common;

use common::socket_duplex;
use common::{config, pin_bench_process, pipe_duplex, round_trip, shm_duplex, size_label};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use shmlane::{Notifier, Wait};

fn spsc_latency(c: &mut Criterion) {
    let two_cpus = pin_bench_process().is_some();
    let mut group = c.benchmark_group("spsc_latency");
    for len in [8usize, 1024] {
        let label = size_label(len);
        for (name, wait) in [
            ("shmlane-spin", Wait::Spin),
            ("shmlane-adaptive", Wait::Adaptive),
        ] {
            if wait == Wait::Spin && !two_cpus {
                continue;
            }
            let (ours, theirs, _names) = shm_duplex(64 << 10, wait, Notifier::Futex);
            round_trip(
                &mut group,
                BenchmarkId::new(name, &label),
                len,
                ours,
                theirs,
            );
        }
        let (ours, theirs) = pipe_duplex();
        round_trip(
            &mut group,
            BenchmarkId::new("pipe", &label),
            len,
            ours,
            || theirs,
        );
        let (ours, theirs) = socket_duplex();
        round_trip(
            &mut group,
            BenchmarkId::new("unix-socket", &label),
            len,
            ours,
            || theirs,
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = spsc_latency
}
criterion_main!(benches);
