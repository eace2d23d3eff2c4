//! Claim: **zero-copy grants and typed messages do what they say**: a `WriteGrant` is
//! committed whole, short (`commit_len`) or not at all (dropped); a `ReadGrant` is
//! released on drop; `send_pod` / `recv_pod` carry a value of a plain type and refuse
//! a message of another size; `ReadGrant::as_pod` reads one in place, in SPSC and MPMC
//! rings, for any type aligned to 8 bytes or less (messages start 8-byte aligned), and
//! refuses a message of another size or a start not aligned for the type.
//!
//! Over the private heap backing, two threads: the same code paths as between
//! processes, small enough for Miri. (MPMC grants: `try_and_timed_calls.rs`
//! `mpmc_threads`.)

use shmlane::bytemuck::{self, PodCastError};
use shmlane::{mpmc, spsc, RecvError, RingOptions, TryRecvError};

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

/// Grant payloads are aligned as the docs of `ReadGrant` say: 8 bytes in SPSC, the
/// cell size (at least 8) in MPMC, whatever the lengths of the messages before; so a
/// type of alignment 8 can be viewed in place (`bytemuck::from_bytes`) on either kind,
/// and one of alignment 16 on an MPMC ring with cells of 16 bytes or more.
#[test]
fn grants_are_aligned_as_documented() {
    let (mut tx, mut rx) = spsc::channel(&opts(4096)).unwrap();
    for len in (0..200).map(|i| (i * 37) % 300) {
        let mut w = tx.reserve(len.max(8)).unwrap();
        assert_eq!(w.as_ptr() as usize % 8, 0, "SPSC WriteGrant of {len} bytes");
        w[..8].copy_from_slice(&(len as u64).to_le_bytes());
        w.commit();
        let r = rx.recv_ref().unwrap();
        assert_eq!(r.as_ptr() as usize % 8, 0, "SPSC ReadGrant of {len} bytes");
        let word: &u64 = bytemuck::from_bytes(&r[..8]);
        assert_eq!(*word, len as u64);
    }
    for cell in [8usize, 16, 64, 8192] {
        let (mut tx, mut rx) = shmlane::mpmc::channel(&opts(1 << 15).cell_size(cell)).unwrap();
        let align = cell.min(4096);
        for len in (0..100).map(|i| 1 + (i * 53) % (3 * cell).min(4000)) {
            let w = tx.reserve(len).unwrap();
            assert_eq!(
                w.as_ptr() as usize % align,
                0,
                "MPMC cell {cell}: WriteGrant"
            );
            w.commit();
            let r = rx.recv_ref().unwrap();
            assert_eq!(
                r.as_ptr() as usize % align,
                0,
                "MPMC cell {cell}: ReadGrant"
            );
        }
    }
}

/// `recv_pod` copies: the value comes out of the ring whatever its alignment (read
/// unaligned), and the message is released.
#[test]
fn recv_pod_copies_a_value_of_any_alignment() {
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    #[bytemuck(crate = "shmlane::bytemuck")]
    #[repr(C, align(16))]
    struct Wide([u64; 2]);
    let (mut tx, mut rx) = spsc::channel(&opts(256)).unwrap();
    for i in 0..100u64 {
        tx.send(&[1u8; 3]).unwrap();
        tx.send_pod(&Wide([i, !i])).unwrap();
        rx.recv(&mut Vec::new()).unwrap();
        assert_eq!(rx.recv_pod::<Wide>().unwrap(), Wide([i, !i]));
    }
    assert_eq!(rx.try_recv(&mut Vec::new()), Err(TryRecvError::Empty));
}

/// Two words, alignment 8.
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[bytemuck(crate = "shmlane::bytemuck")]
#[repr(C)]
struct Pair {
    a: u64,
    b: u64,
}

/// Sixteen bytes that need 16-byte alignment.
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[bytemuck(crate = "shmlane::bytemuck")]
#[repr(C, align(16))]
struct Wide {
    x: [u32; 4],
}

/// Sends `Pair`s and `Wide`s through `send`, reads each in place through `recv_ref`
/// (a closure over the consumer that gives the message's bytes to `look`), and checks
/// what `as_pod` says of each.
macro_rules! as_pod_reads_in_place {
    ($tx:ident, $rx:ident) => {{
        let mut wide_ok = 0;
        let mut wide_refused = 0;
        for i in 0..64u64 {
            $tx.send_pod(&Pair { a: i, b: !i }).unwrap();
            let g = $rx.recv_ref().unwrap();
            assert_eq!(
                g.as_ptr() as usize % 8,
                0,
                "message {i} starts 8-byte aligned"
            );
            assert_eq!(*g.as_pod::<Pair>().unwrap(), Pair { a: i, b: !i });
            // The same bytes read as another size: refused, never misread.
            assert_eq!(g.as_pod::<u64>(), Err(PodCastError::SizeMismatch));
            drop(g);

            if i % 2 == 1 {
                // A 12-byte message first: in SPSC a record of 24 bytes (header and
                // payload padded to 8), which moves the next one by 8 mod 16, so
                // Wide lands on both residues.
                $tx.send(b"twelve bytes").unwrap();
                assert_eq!(&*$rx.recv_ref().unwrap(), b"twelve bytes");
            }
            let w = Wide { x: [i as u32; 4] };
            $tx.send_pod(&w).unwrap();
            let g = $rx.recv_ref().unwrap();
            if g.as_ptr() as usize % 16 == 0 {
                assert_eq!(*g.as_pod::<Wide>().unwrap(), w);
                wide_ok += 1;
            } else {
                assert_eq!(
                    g.as_pod::<Wide>(),
                    Err(PodCastError::TargetAlignmentGreaterAndInputNotAligned)
                );
                wide_refused += 1;
            }
        }
        (wide_ok, wide_refused)
    }};
}

#[test]
fn as_pod_reads_in_place_in_spsc() {
    let (mut tx, mut rx) = spsc::channel(&opts(4096)).unwrap();
    let (ok, refused) = as_pod_reads_in_place!(tx, rx);
    // SPSC records are 8-byte aligned (an 8-byte header, then the payload): both
    // cases occur across the ring.
    assert!(
        ok > 0 && refused > 0,
        "{ok} read in place, {refused} refused"
    );
}

#[test]
fn as_pod_reads_in_place_in_mpmc() {
    // Cells of 16 bytes: every message starts at a cell, so 16-byte aligned.
    let (mut tx, mut rx) = mpmc::channel(&opts(4096).cell_size(16)).unwrap();
    let (ok, refused) = as_pod_reads_in_place!(tx, rx);
    assert_eq!((ok, refused), (64, 0));
}
