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
    let producer = procs.spawn("producer", move || {
        let mut tx = spsc::Producer::create_sysv(key, &RingOptions::new(1 << 16))
            .map_err(|e| e.to_string())?;
        drop(ready_w);
        // Keep the header moving until the parent has looked (bounded by the deadline).
        let msg = [3u8; 40];
        for _ in 0..200_000 {
            let _ = tx.try_send(&msg);
        }
        Ok(String::new())
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
    let r = procs.wait(producer);
    assert!(r.ok(), "{r}");
}
