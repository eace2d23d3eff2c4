//! Streams a file of any size from one process to another through a small ring, with
//! `io::Write` on one side and `io::Read` on the other: memory stays bounded by the
//! ring, not by the file.
//!
//! ```text
//! cargo run --release --example file_transfer -- SOURCE DESTINATION [RING_BYTES]
//! ```

use std::fs::File;
use std::io::{self, BufReader};
use std::time::Instant;

use shmlane::{spsc, RingOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(src), Some(dst)) = (args.first(), args.get(1)) else {
        eprintln!("usage: file_transfer SOURCE DESTINATION [RING_BYTES]");
        std::process::exit(2);
    };
    let ring: usize = args
        .get(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1 << 20);
    let name = format!("/shmlane-example-file-{}", std::process::id());
    let mut tx = spsc::Producer::create(&name, &RingOptions::new(ring).unlink_on_drop(true))?;
    let len = std::fs::metadata(src)?.len();
    let started = Instant::now();

    // SAFETY: single-threaded here.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            let mut rx = spsc::Consumer::open(&name)?;
            let mut reader = rx.recv_stream()?;
            let mut out = File::create(dst)?;
            let copied = io::copy(&mut reader, &mut out)?;
            assert_eq!(copied, reader.len());
            std::process::exit(0);
        }
        nix::unistd::ForkResult::Parent { child } => {
            let mut writer = tx.stream(len)?;
            io::copy(
                &mut BufReader::with_capacity(1 << 20, File::open(src)?),
                &mut writer,
            )?;
            writer.finish()?;
            let status = nix::sys::wait::waitpid(child, None)?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{len} bytes in {secs:.3} s: {:.2} GB/s through a {ring}-byte ring ({status:?})",
                len as f64 / secs / 1e9
            );
        }
    }
    Ok(())
}
