//! Claim: **zero-copy grants and typed messages do what they say**: a `WriteGrant` is
//! committed whole, short (`commit_len`) or not at all (dropped); a `ReadGrant` is
//! released on drop; `send_pod` / `recv_pod` carry a value of a plain type and refuse
//! a message of another size.
//!
//! Over the private heap backing, two threads: the same code paths as between
//! processes, small enough for Miri. (MPMC grants: `try_and_timed_calls.rs`
//! `mpmc_threads`.)

use shmlane::{spsc, RecvError, RingOptions, TryRecvError};

/// Options for a ring of `capacity` bytes. Under Miri: symmetric fences (Miri has no
/// `membarrier` system call); endpoints park on the futex as they do outside Miri.
fn opts(capacity: usize) -> RingOptions {
    RingOptions::new(capacity).asymmetric_fences(!cfg!(miri))
}

#[test]
fn grants_commit_len_and_abort() {
    let (mut tx, mut rx) = spsc::channel(&opts(1024)).unwrap();
    {
        let mut g = tx.reserve(100).unwrap();
        g[..3].copy_from_slice(b"abc");
        // Dropped uncommitted: publishes nothing.
    }
    let mut g = tx.reserve(100).unwrap();
    g[..3].copy_from_slice(b"xyz");
    assert!(g.commit_len(101).is_err());
    let mut g = tx.reserve(100).unwrap();
    g[..3].copy_from_slice(b"xyz");
    g.commit_len(3).unwrap();
    assert!(matches!(
        tx.reserve(600),
        Err(shmlane::SendError::TooLarge { .. })
    ));
    assert_eq!(&*rx.recv_ref().unwrap(), b"xyz");
    assert!(matches!(rx.try_recv_ref(), Err(TryRecvError::Empty)));
}

#[test]
fn pod_round_trip_and_mismatch() {
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Quote {
        price: f64,
        qty: u32,
        venue: u32,
    }
    let (mut tx, mut rx) = spsc::channel(&opts(256)).unwrap();
    let q = Quote {
        price: 1.5,
        qty: 7,
        venue: 3,
    };
    tx.send_pod(&q).unwrap();
    assert_eq!(rx.recv_pod::<Quote>().unwrap(), q);
    tx.send(b"short").unwrap();
    assert_eq!(
        rx.recv_pod::<Quote>(),
        Err(RecvError::SizeMismatch {
            expected: 16,
            found: 5
        })
    );
}
