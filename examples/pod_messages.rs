//! Typed plain-old-data messages: a producer thread sends `Quote` structs, a consumer
//! reads them back as the same type. `send_pod` copies the value's bytes into the
//! ring and `recv_pod` copies them out into a new `Quote` (read unaligned, so any
//! alignment works): one copy each way, no serialisation. For a zero-copy read,
//! `recv_ref` and `bytemuck::from_bytes` view the bytes in place; payloads are 8-byte
//! aligned in SPSC rings and cell-aligned in MPMC ones (see `ReadGrant`).
//!
//! ```text
//! cargo run --example pod_messages
//! ```

use shmlane::{spsc, RingOptions};

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Quote {
    instrument: u32,
    venue: u32,
    bid: f64,
    ask: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A heap ring between two threads; `Producer::create` / `Consumer::open` give the
    // same API between processes.
    let (mut tx, mut rx) = spsc::channel(&RingOptions::new(4096))?;
    let producer = std::thread::spawn(move || -> Result<(), shmlane::SendError> {
        for i in 0..1000u32 {
            let q = Quote {
                instrument: i,
                venue: i % 4,
                bid: 1.0 + i as f64,
                ask: 1.5 + i as f64,
            };
            tx.send_pod(&q)?;
        }
        Ok(())
    });
    let mut spread = 0.0;
    for i in 0..1000u32 {
        let q: Quote = rx.recv_pod()?;
        assert_eq!(q.instrument, i);
        spread += q.ask - q.bid;
    }
    producer.join().expect("producer thread")?;
    println!("1000 quotes, mean spread {:.3}", spread / 1000.0);
    Ok(())
}
