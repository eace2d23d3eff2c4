//! `inspect` of a SysV ring copies its header whole (by the kernel, not by Rust loads
//! of one width over fields of several): every field, 32- and 64-bit, reads as the
//! endpoints wrote it, while a producer in another process keeps writing.

// Real processes and shared memory: Linux only, and not under Miri (no fork).
#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::time::Duration;

use common::backings::{sysv_key, SysVGuard};
use common::Procs;
use shmlane::inspect::{inspect, EndpointRole, RingKind, SegmentState};
use shmlane::{spsc, RingOptions};

#[test]
fn inspect_copies_a_live_sysv_header_field_by_field() {
    let key = sysv_key("inspect-sysv-copy");
    let _guard = SysVGuard::new(key);
    let name = format!("sysv:{:#010x}", key as u32);
    let mut procs = Procs::new("inspect_sysv", Duration::from_secs(30));
    let (ready_r, ready_w) = common::pipe();
    // Opened by the parent once it has looked: the producer stays attached and keeps
    // the header moving until then (a fixed number of sends could end before the
    // parent's last look, and a detached producer's slot has no pid).
    let looked = common::Gate::new();
    let producer = procs.spawn("producer", || {
        let mut tx = spsc::Producer::create_sysv(key, &RingOptions::new(1 << 16))
            .map_err(|e| e.to_string())?;
        drop(ready_w);
        let msg = [3u8; 40];
        let mut sends = 0u64;
        loop {
            for _ in 0..1000 {
                let _ = tx.try_send(&msg);
            }
            sends += 1000;
            if looked.wait(Duration::ZERO) {
                return Ok(format!("{sends} sends while the parent looked"));
            }
            if sends > 200_000_000 {
                return Err("the parent never said it had looked".into());
            }
        }
    });
    // The producer closes its end of the pipe once the ring is made.
    let mut byte = [0u8; 1];
    let _ = nix::unistd::read(&ready_r, &mut byte);
    let pid = procs.pid(producer).as_raw() as u32;
    for _ in 0..200 {
        let info = inspect(&name).expect("inspect");
        assert!(info.is_valid(), "{:?}", info.problems);
        assert_eq!(
            (info.kind, info.state),
            (RingKind::Spsc, SegmentState::Ready)
        );
        assert_eq!((info.capacity, info.max_endpoints), (1 << 16, 2));
        assert!(info.layout_matches);
        assert_eq!(
            (info.creator_pid, info.creator_uid),
            (pid, nix::unistd::geteuid().as_raw())
        );
        let p = info
            .endpoint(EndpointRole::Producer)
            .expect("producer slot");
        assert_eq!(p.pid, pid);
        assert!(info.used.is_some_and(|u| u <= 1 << 16));
    }
    looked.open();
    let r = procs.wait(producer);
    assert!(r.ok(), "{r}");
}
