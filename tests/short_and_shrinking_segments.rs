//! Short segments: a segment cut below the length its header claims *before* it is
//! opened gives an error on every open path, never a SIGBUS (each open runs in its own
//! child, so a SIGBUS would show as the child's death by signal); a POSIX segment cut
//! short *after* a peer mapped it does raise SIGBUS in that peer, as the crate's trust
//! model documents (a memfd cannot be cut: see `fork_backings`).

// Real processes and shared memory: Linux only, and not under Miri (no fork).
#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::fs::{File, Permissions};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::time::Duration;

use common::{seg_name, shm_path, Gate, Outcome, Procs, SegGuard};
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::signal::Signal;
use shmlane::{mpmc, spsc, Error, RingOptions};

const DEADLINE: Duration = Duration::from_secs(30);
const HEADER: u64 = 4096;

fn opts() -> RingOptions {
    RingOptions::new(4096)
}

/// The sizes a segment of length `len` is cut to.
fn cuts(len: u64) -> [(&'static str, u64); 5] {
    [
        ("empty", 0),
        ("one byte", 1),
        ("a byte short of a header", HEADER - 1),
        ("header only", HEADER),
        ("a byte short", len - 1),
    ]
}

/// Whether `e` is the error an open of a segment cut to `size` must give. An empty
/// POSIX segment may be a creator between `shm_open` and `ftruncate`, so the open waits
/// for it and gives `NotReady`; any other size under a header is final.
fn expected(e: &Error, size: u64, may_grow: bool) -> bool {
    match e {
        Error::NotReady { .. } | Error::Abandoned { .. } => size == 0 && may_grow,
        Error::Corrupt { field, .. } => match size {
            0 if may_grow => false,
            s if s < HEADER => *field == "segment size",
            _ => *field == "capacity",
        },
        _ => false,
    }
}

type Open = fn(&str) -> Result<(), Error>;

/// Every open of a named POSIX ring, of both kinds.
const POSIX_OPENS: [(&str, Open); 6] = [
    ("spsc::Producer::open", |n| {
        spsc::Producer::open(n).map(drop)
    }),
    ("spsc::Consumer::open", |n| {
        spsc::Consumer::open(n).map(drop)
    }),
    ("spsc::Consumer::create_or_open", |n| {
        spsc::Consumer::create_or_open(n, &opts()).map(drop)
    }),
    ("mpmc::Producer::open", |n| {
        mpmc::Producer::open(n).map(drop)
    }),
    ("mpmc::Consumer::open", |n| {
        mpmc::Consumer::open(n).map(drop)
    }),
    ("mpmc::Producer::create_or_open", |n| {
        mpmc::Producer::create_or_open(n, &opts()).map(drop)
    }),
];

/// POSIX rings of both kinds, cut before anyone opens them.
#[test]
fn posix_segment_cut_before_open_is_an_error_not_sigbus() {
    let test = "trunc-posix";
    let mut procs = Procs::new(test, DEADLINE);
    let mut guards = Vec::new();
    let mut whats = Vec::new();
    for (kind, create) in [
        ("spsc", spsc::create_ring as fn(&str, &RingOptions) -> _),
        ("mpmc", mpmc::create_ring),
    ] {
        let probe = seg_name(&format!("{test}-{kind}-len"));
        guards.push(SegGuard::new(&probe));
        create(&probe, &opts()).unwrap();
        let len = std::fs::metadata(shm_path(&probe)).unwrap().len();
        for (i, (what, size)) in cuts(len).into_iter().enumerate() {
            let name = seg_name(&format!("{test}-{kind}-{i}"));
            guards.push(SegGuard::new(&name));
            create(&name, &opts()).unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(shm_path(&name))
                .unwrap()
                .set_len(size)
                .unwrap();
            let what = format!("{kind} ring of {len} bytes cut to {size} ({what})");
            whats.push(what.clone());
            procs.spawn(&what.clone(), move || {
                let mut out = String::new();
                // Only the opens of this kind validate down to the size check; the
                // others stop at the kind (or the same size check, for short files).
                for (call, open) in POSIX_OPENS.iter().filter(|(c, _)| c.starts_with(kind)) {
                    match open(&name) {
                        Err(e) if expected(&e, size, true) => out = e.to_string(),
                        Err(e) => return Err(format!("{what}: {call}: unexpected {e:?}")),
                        // An empty segment that no creator is making is abandoned:
                        // create_or_open replaces it with a new ring.
                        Ok(()) if size == 0 && call.ends_with("create_or_open") => {}
                        Ok(()) => return Err(format!("{what}: {call} opened it")),
                    }
                }
                Ok(out)
            });
        }
    }
    for (what, r) in whats.iter().zip(procs.wait_all_ok()) {
        println!("{what}: {r}");
    }
}

/// A memfd holding `bytes` and sized `size`, as shmlane makes one (mode 0600, sealed).
fn sealed_memfd(bytes: &[u8], size: u64) -> OwnedFd {
    let file = File::from(
        memfd_create(
            "shmlane-test",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )
        .unwrap(),
    );
    file.set_permissions(Permissions::from_mode(0o600)).unwrap();
    file.set_len(size).unwrap();
    let n = bytes.len().min(size as usize);
    file.write_all_at(&bytes[..n], 0).unwrap();
    let seals = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL;
    fcntl(&file, FcntlArg::F_ADD_SEALS(seals)).unwrap();
    file.into()
}

/// A sealed memfd cannot be cut once sealed, but one can be sealed short: the same
/// sizes, through `open_fd`. An empty one cannot grow, so it is an error at once.
#[test]
fn memfd_sealed_short_is_an_error_not_sigbus() {
    let test = "trunc-memfd";
    let mut procs = Procs::new(test, DEADLINE);
    let mut whats = Vec::new();
    for (kind, create) in [
        ("spsc", spsc::create_ring_memfd as fn(&RingOptions) -> _),
        ("mpmc", mpmc::create_ring_memfd),
    ] {
        let ring = File::from(create(&opts()).unwrap());
        let len = ring.metadata().unwrap().len();
        let mut bytes = vec![0; len as usize];
        ring.read_exact_at(&mut bytes, 0).unwrap();
        for (what, size) in cuts(len) {
            let fd = sealed_memfd(&bytes, size);
            let what = format!("{kind} memfd of {len} bytes sealed at {size} ({what})");
            whats.push(what.clone());
            procs.spawn(&what.clone(), move || {
                let dup = || fd.try_clone().map_err(|e| e.to_string());
                let r = match kind {
                    "spsc" => [
                        spsc::Producer::open_fd(dup()?).map(drop),
                        spsc::Consumer::open_fd(dup()?).map(drop),
                    ],
                    _ => [
                        mpmc::Producer::open_fd(dup()?).map(drop),
                        mpmc::Consumer::open_fd(dup()?).map(drop),
                    ],
                };
                let mut out = String::new();
                for r in r {
                    match r {
                        Err(e) if expected(&e, size, false) => out = e.to_string(),
                        Err(e) => return Err(format!("{what}: unexpected {e:?}")),
                        Ok(()) => return Err(format!("{what}: opened")),
                    }
                }
                Ok(out)
            });
        }
    }
    for (what, r) in whats.iter().zip(procs.wait_all_ok()) {
        println!("{what}: {r}");
    }
}

/// What no check can prevent, and the trust model documents: a process with write
/// access to a POSIX segment's file cuts it to its header *after* a producer mapped
/// it; the producer's next write into the data region raises SIGBUS.
#[test]
fn posix_segment_cut_after_mapping_raises_sigbus() {
    let test = "trunc-after";
    let name = seg_name(test);
    let _guard = SegGuard::new(&name);
    spsc::create_ring(&name, &opts()).unwrap();
    let mapped = Gate::new();
    let cut = Gate::new();
    let mut procs = Procs::new(test, DEADLINE);
    let child_name = name.clone();
    let producer = procs.spawn("producer", || {
        let mut tx = spsc::Producer::open(&child_name).map_err(|e| e.to_string())?;
        mapped.open();
        cut.expect(DEADLINE, "cut")?;
        tx.send(&[7; 100]).map_err(|e| e.to_string())?;
        Err("send into the cut segment returned".into())
    });
    assert!(mapped.wait(DEADLINE), "the producer did not open the ring");
    std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap()
        .set_len(HEADER)
        .unwrap();
    cut.open();
    let r = procs.wait(producer);
    assert_eq!(r.outcome, Outcome::Signaled(Signal::SIGBUS), "{r}");
    println!("{test}: {r}");
}
