//! Claim: **a short segment is an error, never a SIGBUS; only a POSIX segment can be
//! shrunk under its users, and memfd rings cannot be**. A segment cut below the length
//! its header claims *before* it is opened gives an error on every open path (each open
//! runs in its own child, so a SIGBUS would show as the child's death by signal); a
//! POSIX segment cut short *after* a peer mapped it does raise SIGBUS in that peer, as
//! the crate's trust model documents; a memfd ring is sealed, so a peer holding it
//! can neither shrink nor grow it, and an open refuses a memfd without the seals or
//! without a valid ring in it.
//!
//! - top level: POSIX segments of both kinds cut before open, sealed-short memfds, and
//!   the documented SIGBUS after a shrink;
//! - [`cut_before_open`]: a POSIX segment cut below its header's length, by name;
//! - [`memfd_seals`]: what the seals stop, and what an open refuses.

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

mod cut_before_open {
    //! A POSIX segment file cut shorter than its header says, opened by name.

    use crate::common::{seg_name, shm_path, Procs, SegGuard};
    use shmlane::{spsc, Error, RingOptions};
    use std::time::Duration;

    const DEADLINE: Duration = Duration::from_secs(30);

    fn opts(capacity: usize) -> RingOptions {
        RingOptions::new(capacity)
    }

    /// A segment file cut shorter than its header says gives an error on open, not a
    /// SIGBUS (the child would die of it and the test report the signal).
    #[test]
    fn truncated_segment_is_an_error_not_sigbus() {
        let test = "sem-trunc";
        let mut procs = Procs::new(test, DEADLINE);
        let mut guards = Vec::new();
        let lens: [u64; 6] = [4096 + 4096 - 8, 4096 + 100, 4096, 4095, 100, 0];
        for (i, len) in lens.into_iter().enumerate() {
            let name = seg_name(&format!("{test}-{i}"));
            guards.push(SegGuard::new(&name));
            drop(spsc::Producer::create(&name, &opts(4096)).unwrap());
            std::fs::OpenOptions::new()
                .write(true)
                .open(shm_path(&name))
                .unwrap()
                .set_len(len)
                .unwrap();
            procs.spawn(&format!("truncated to {len}"), move || {
                let mut out = String::new();
                for (call, r) in [
                    ("Producer::open", spsc::Producer::open(&name).err()),
                    ("Consumer::open", spsc::Consumer::open(&name).err()),
                    (
                        "Consumer::create_or_open",
                        spsc::Consumer::create_or_open(&name, &opts(4096)).err(),
                    ),
                ] {
                    match r {
                        Some(Error::Corrupt {
                            field: "capacity", ..
                        }) if len >= 4096 => {}
                        // Empty: maybe a creator between shm_open and ftruncate, so the
                        // open waits; any other size under a header is final.
                        Some(Error::NotReady { .. } | Error::Abandoned { .. }) if len == 0 => {}
                        Some(Error::Corrupt {
                            field: "segment size",
                            ..
                        }) if len < 4096 => {}
                        Some(e) => return Err(format!("{call}: unexpected error {e:?}")),
                        // An empty segment nobody is making (no creator holds its init
                        // lock) is abandoned: create_or_open takes it over.
                        None if len == 0 && call == "Consumer::create_or_open" => {
                            out = "taken over by create_or_open".to_string();
                            continue;
                        }
                        None => return Err(format!("{call} succeeded on a truncated segment")),
                    }
                    out = format!("{:?}", r.unwrap());
                }
                Ok(out)
            });
        }
        for (len, r) in lens.iter().zip(procs.wait_all_ok()) {
            println!("truncated to {len}: {r}");
        }
    }
}

mod memfd_seals {
    //! Memfd rings are sealed against any change of size, and an open refuses a memfd
    //! without the seals.

    use crate::common;
    use crate::common::{check_message, message, seg_name, Gate, Procs, SegGuard};
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    use nix::sys::memfd::{memfd_create, MFdFlags};
    use shmlane::{spsc, Error, RingOptions, TryRecvError};
    use std::fs::File;
    use std::os::fd::{AsFd, OwnedFd};
    use std::os::unix::fs::FileExt;
    use std::time::Duration;

    const DEADLINE: Duration = Duration::from_secs(30);

    /// How long a gate may take to open (the peer's process must start and set up).
    const GATE: Duration = Duration::from_secs(20);

    /// How an open of a broken segment must fail.
    #[derive(Clone, Copy, Debug)]
    enum Want {
        /// No shmlane magic: `Error::NotARing` (issue 19: before, `Corrupt { field: "magic" }`).
        NotARing,
        Corrupt(&'static str),
        Incompatible(&'static str),
    }

    impl Want {
        fn check(self, e: &Error) -> bool {
            match (self, e) {
                (Want::NotARing, Error::NotARing { .. }) => true,
                (Want::Corrupt(f), Error::Corrupt { field, .. }) => *field == f,
                (Want::Incompatible(f), Error::Incompatible { field, .. }) => field.starts_with(f),
                _ => false,
            }
        }
    }

    fn seals_of(fd: impl AsFd) -> SealFlag {
        SealFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GET_SEALS).expect("F_GET_SEALS"))
    }

    /// A peer that holds the memfd tries to shrink it, grow it, and add a write seal:
    /// every attempt fails with EPERM, and the ring goes on working for both ends (a
    /// shrink would have made the readers' accesses SIGBUS; a child killed by a signal
    /// fails the test).
    #[test]
    fn memfd_seals_stop_a_peer_from_truncating() {
        const N: u64 = 2000;
        let test = "bk-memfd-trunc";
        let fd = spsc::create_ring_memfd(&RingOptions::new(4096)).unwrap();
        let len = File::from(fd.try_clone().unwrap())
            .metadata()
            .unwrap()
            .len();
        assert_eq!(len, 4096 + 4096);
        assert_eq!(
            seals_of(&fd),
            SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL
        );
        let tried = Gate::new();
        let mut procs = Procs::new(test, DEADLINE);
        procs.spawn("hostile consumer", || {
            let file = File::from(fd.try_clone().map_err(|e| e.to_string())?);
            let mut out = String::new();
            for (what, to) in [
                ("shrink to 0", 0),
                ("shrink by a page", 4096),
                ("grow", 1 << 20),
            ] {
                match file.set_len(to) {
                    Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                        out += &format!("{what}: {e}; ")
                    }
                    other => return Err(format!("ftruncate ({what}): {other:?}, expected EPERM")),
                }
            }
            match fcntl(&file, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_WRITE)) {
                Err(nix::errno::Errno::EPERM) => out += "F_ADD_SEALS: EPERM; ",
                other => return Err(format!("F_ADD_SEALS: {other:?}, expected EPERM")),
            }
            assert_eq!(file.metadata().map_err(|e| e.to_string())?.len(), len);
            tried.open();
            let mut rx = spsc::Consumer::open_fd(file.into()).map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            for seq in 0..N {
                rx.recv(&mut buf).map_err(|e| format!("recv {seq}: {e}"))?;
                check_message(&buf, seq, (seq % 3000) as usize)?;
            }
            Ok(out)
        });
        procs.spawn("producer", || {
            tried.expect(GATE, "truncation tried")?;
            let mut tx = spsc::Producer::open_fd(fd.try_clone().map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            for seq in 0..N {
                tx.send(&message(seq, (seq % 3000) as usize))
                    .map_err(|e| format!("send {seq}: {e}"))?;
            }
            Ok(String::new())
        });
        let reports = procs.wait_all_ok();
        println!("{test}: {}", reports[0]);
    }

    /// The bytes of a fresh memfd ring of `capacity` (for copying into other files).
    fn ring_bytes(capacity: usize) -> Vec<u8> {
        let fd = spsc::create_ring_memfd(&RingOptions::new(capacity)).unwrap();
        let file = File::from(fd);
        let mut bytes = vec![0; 4096 + capacity];
        file.read_exact_at(&mut bytes, 0).unwrap();
        bytes
    }

    /// A memfd holding `bytes`, sized `len`, with `seals` added, mode 0600 as shmlane
    /// makes it (a memfd starts out 0777, which an open refuses before the seals).
    fn memfd_with(bytes: &[u8], len: u64, seals: SealFlag) -> OwnedFd {
        let fd = memfd_create(
            "shmlane-test",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )
        .unwrap();
        let file = File::from(fd);
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .unwrap();
        file.set_len(len).unwrap();
        let n = bytes.len().min(len as usize);
        file.write_all_at(&bytes[..n], 0).unwrap();
        fcntl(&file, FcntlArg::F_ADD_SEALS(seals)).unwrap();
        file.into()
    }

    /// Descriptors that are not sealed memfds, or sealed memfds that do not hold a
    /// valid ring, are refused with errors that say why; nothing is mapped past the end.
    #[test]
    fn memfd_without_seals_or_valid_header_is_refused() {
        let all = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL;
        let ring = ring_bytes(4096);
        let full = ring.len() as u64;
        let mut bad_magic = ring.clone();
        bad_magic[..8].copy_from_slice(b"NOTSHMLN");
        let posix = seg_name("bk-memfd-posix");
        let _posix_guard = SegGuard::new(&posix);
        drop(spsc::Producer::create(&posix, &RingOptions::new(4096)).unwrap());
        let (pipe_r, _pipe_w) = common::pipe();
        let cases: Vec<(&str, OwnedFd, Want)> = vec![
            (
                "no seals",
                memfd_with(&ring, full, SealFlag::empty()),
                Want::Incompatible("seals"),
            ),
            (
                "shrink and grow seals, not F_SEAL_SEAL",
                memfd_with(&ring, full, SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW),
                Want::Incompatible("seals"),
            ),
            (
                "a POSIX shm object",
                File::options()
                    .read(true)
                    .write(true)
                    .open(common::shm_path(&posix))
                    .unwrap()
                    .into(),
                Want::Incompatible("seals"),
            ),
            ("a pipe", pipe_r, Want::Incompatible("seals")),
            (
                "sealed at 100 bytes",
                memfd_with(&ring, 100, all),
                Want::Corrupt("segment size"),
            ),
            (
                "sealed shorter than header + capacity",
                memfd_with(&ring, full - 8, all),
                Want::Corrupt("capacity"),
            ),
            ("magic", memfd_with(&bad_magic, full, all), Want::NotARing),
        ];
        for (what, fd, want) in cases {
            let dup = fd.try_clone().unwrap();
            for (call, r) in [
                ("Producer::open_fd", spsc::Producer::open_fd(fd).err()),
                ("Consumer::open_fd", spsc::Consumer::open_fd(dup).err()),
            ] {
                match r {
                    Some(e) if want.check(&e) => println!("{what:>40}: {call}: {e}"),
                    other => panic!("{what}: {call} gave {other:?}, expected {want:?}"),
                }
            }
        }
        // The same ring, sealed as shmlane seals it, opens.
        let good = memfd_with(&ring, full, all);
        let mut rx = spsc::Consumer::open_fd(good).unwrap();
        assert_eq!(rx.try_recv(&mut Vec::new()), Err(TryRecvError::Empty));
        assert!(rx.name().starts_with("memfd:shmlane-test"), "{}", rx.name());
    }
}
