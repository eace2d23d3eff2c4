//! One-way throughput across processes by message size (64 B, 4 KiB, 64 KiB,
//! 1 MiB): the bench process sends a batch of messages to a forked child that copies
//! out and checks each one and acknowledges the batch; one criterion iteration is one
//! message, `Throughput::Bytes` gives bytes per second.
//!
//! - `shmlane`: one SPSC ring of 1 MiB (4 MiB for 1 MiB messages, so that a message
//!   is one record), the default `Wait::Adaptive`; `send` / `recv` into a `Vec`.
//! - `minimal-ring`: the yardstick, `shmlane_support::minimal_ring` (a byte ring
//!   with a published `tail` and `head` and nothing else, both sides spinning), of
//!   the same capacity as shmlane's ring.
//! - `pipe`: the default 64 KiB buffer; `pipe-1mib`: raised with F_SETPIPE_SZ.
//! - `unix-socket`: a UNIX stream socket pair, SO_SNDBUF and SO_RCVBUF raised
//!   to 4 MiB (or net.core.wmem_max / rmem_max if lower).
//!
//! The pipe and socket consumers read through a 64 KiB buffer (`BufReader`): one
//! `read` takes every message already queued, and each is then copied out of it.

mod common;

use common::{config, one_way, pin_bench_process, pipe, size_label, socket_pair_tuned};
use common::{BufFd, Fd, RingName};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shmlane::spsc::{Consumer, Producer};
use shmlane::RingOptions;
use shmlane_support::clock::now_ns;
use shmlane_support::minimal_ring::MinimalRing;

fn spsc_throughput(c: &mut Criterion) {
    pin_bench_process();
    for len in [64usize, 4 << 10, 64 << 10, 1 << 20] {
        let label = size_label(len);
        let mut group = c.benchmark_group(format!("spsc_throughput/{label}"));
        group.throughput(Throughput::Bytes(len as u64));

        let ring = RingName::new("oneway");
        let capacity = (4 * len).next_power_of_two().max(1 << 20);
        let tx = Producer::create(&ring.0, &RingOptions::new(capacity)).expect("create ring");
        let name = ring.0.clone();
        one_way(
            &mut group,
            BenchmarkId::new("shmlane", &label),
            len,
            tx,
            move || Consumer::open(&name).expect("open ring"),
        );

        // The child gives up on a wait after an hour: the bench's watchdog ends a run
        // that hangs long before.
        let minimal = MinimalRing::new(capacity).expect("minimal ring");
        let (tx, rx) = minimal.ends(now_ns() + 3_600_000_000_000);
        one_way(
            &mut group,
            BenchmarkId::new("minimal-ring", &label),
            len,
            tx,
            move || rx,
        );
        // The parent's end used the mapping until here; the child keeps its own.
        drop(minimal);

        for (id, buffer) in [("pipe", None), ("pipe-1mib", Some(1 << 20))] {
            let (rx, tx) = pipe(buffer);
            one_way(
                &mut group,
                BenchmarkId::new(id, &label),
                len,
                Fd(tx),
                move || BufFd::new(rx),
            );
        }

        let (a, b) = socket_pair_tuned();
        one_way(
            &mut group,
            BenchmarkId::new("unix-socket", &label),
            len,
            Fd(a),
            move || BufFd::new(b),
        );
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets = spsc_throughput
}
criterion_main!(benches);
