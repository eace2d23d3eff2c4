//! Two processes bounce a message back and forth over two SPSC rings and print the
//! round-trip time percentiles.
//!
//! ```text
//! cargo run --release --example pingpong [ROUND_TRIPS] [MESSAGE_BYTES] [RING_BYTES]
//! ```

use std::time::{Duration, Instant};

use shmlane::{spsc, RingOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let size: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(8);
    let ping_name = format!("/shmlane-example-ping-{}", std::process::id());
    let pong_name = format!("/shmlane-example-pong-{}", std::process::id());
    let ring: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(64 << 10);
    let opts = RingOptions::new(ring).unlink_on_drop(true);

    // Create both rings before forking, so neither side waits for the other to create.
    let mut ping_tx = spsc::Producer::create(&ping_name, &opts)?;
    let mut pong_rx = spsc::Consumer::create(&pong_name, &opts)?;

    // SAFETY: the process is single-threaded here, so the child may do anything.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            // The child opens its own ends and echoes every message until the pinger leaves.
            let mut rx = spsc::Consumer::open(&ping_name)?;
            let mut tx = spsc::Producer::open(&pong_name)?;
            let mut buf = Vec::new();
            while rx.recv(&mut buf).is_ok() {
                tx.send(&buf)?;
            }
            std::process::exit(0);
        }
        nix::unistd::ForkResult::Parent { child } => {
            let msg = vec![0x5a; size];
            let mut buf = Vec::with_capacity(size);
            let mut samples = Vec::with_capacity(rounds);
            for i in 0..rounds + rounds / 10 {
                let t = Instant::now();
                ping_tx.send(&msg)?;
                pong_rx.recv(&mut buf)?;
                if i >= rounds / 10 {
                    samples.push(t.elapsed());
                }
                assert_eq!(buf, msg);
            }
            drop(ping_tx); // the child sees Disconnected and exits
            nix::sys::wait::waitpid(child, None)?;
            samples.sort();
            let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
            let show = |d: Duration| format!("{} ns", d.as_nanos());
            println!(
                "{rounds} round trips of {size} B: p50 {}  p99 {}  p99.9 {}",
                show(pct(0.5)),
                show(pct(0.99)),
                show(pct(0.999))
            );
        }
    }
    Ok(())
}
