//! Large messages across processes: 16 MiB messages, each far larger than the
//! 1 MiB shmlane ring and the pipe and socket buffers, so every mechanism moves it in
//! pieces while both processes work at once. One criterion iteration is one message,
//! copied out and checked by the receiver; `Throughput::Bytes` gives bytes per second.
//!
//! - `shmlane-send`: `send(&[u8])` of the whole message (the ring cuts it into
//!   fragments of a quarter ring) and `recv(&mut Vec<u8>)` reassembling it.
//! - `shmlane-stream`: `stream(len)` written in 1 MiB `write_all`s, `recv_stream()`
//!   read with 1 MiB `read_exact`s into the receiver's buffer (`io::Write` /
//!   `io::Read`).
//! - `pipe-1mib`: a pipe with a 1 MiB buffer (F_SETPIPE_SZ); `pipe`: the default
//!   64 KiB; `unix-socket`: a UNIX stream socket pair, buffers raised to 4 MiB (or
//!   wmem_max); all `write_all` / `read_exact` of the whole message.

mod common;

use std::io::{Read, Write};

use common::{config, one_way, pin_bench_process, pipe, size_label, socket_pair_tuned};
use common::{Fd, RingName, Rx, Tx};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shmlane::spsc::{Consumer, Producer};
use shmlane::{RecvError, RingOptions};

const CHUNK: usize = 1 << 20;

/// A producer that sends each message as a stream of 1 MiB writes.
struct StreamTx(Producer);

/// A consumer that reads each message as a stream, in 1 MiB reads.
struct StreamRx(Consumer);

impl Tx for StreamTx {
    fn send(&mut self, msg: &[u8]) {
        let mut w = self.0.stream(msg.len() as u64).expect("stream");
        for chunk in msg.chunks(CHUNK) {
            w.write_all(chunk).expect("stream write");
        }
        w.finish().expect("stream finish");
    }
}

impl Rx for StreamRx {
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> bool {
        let mut r = match self.0.recv_stream() {
            Ok(r) => r,
            Err(RecvError::Disconnected) => return false,
            Err(e) => panic!("recv_stream: {e}"),
        };
        assert_eq!(r.len(), len as u64, "stream length");
        buf.resize(len, 0);
        for chunk in buf.chunks_mut(CHUNK) {
            r.read_exact(chunk).expect("stream read");
        }
        true
    }
}

fn large_messages(c: &mut Criterion) {
    pin_bench_process();
    let len = 16 << 20;
    let label = size_label(len);
    let mut group = c.benchmark_group("large_messages");
    group.throughput(Throughput::Bytes(len as u64));
    group.sample_size(10);

    let opts = RingOptions::new(1 << 20);
    {
        let ring = RingName::new("send");
        let tx = Producer::create(&ring.0, &opts).expect("create ring");
        let name = ring.0.clone();
        one_way(
            &mut group,
            BenchmarkId::new("shmlane-send", &label),
            len,
            tx,
            move || Consumer::open(&name).expect("open ring"),
        );
    }
    {
        let ring = RingName::new("stream");
        let tx = StreamTx(Producer::create(&ring.0, &opts).expect("create ring"));
        let name = ring.0.clone();
        one_way(
            &mut group,
            BenchmarkId::new("shmlane-stream", &label),
            len,
            tx,
            move || StreamRx(Consumer::open(&name).expect("open ring")),
        );
    }
    for (id, buffer) in [("pipe-1mib", Some(1 << 20)), ("pipe", None)] {
        let (rx, tx) = pipe(buffer);
        one_way(
            &mut group,
            BenchmarkId::new(id, &label),
            len,
            Fd(tx),
            move || Fd(rx),
        );
    }
    let (a, b) = socket_pair_tuned();
    one_way(
        &mut group,
        BenchmarkId::new("unix-socket", &label),
        len,
        Fd(a),
        move || Fd(b),
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = large_messages
}
criterion_main!(benches);
