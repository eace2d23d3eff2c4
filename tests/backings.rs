//! The backings beside POSIX shm, between real processes: disconnection on every
//! backing; SysV segments (corrupted headers, removal while attached, `ftok`, the
//! `create_or_open` election); sealed memfds (a peer that tries to truncate or grow
//! one, descriptors without the seals, handover over `SCM_RIGHTS`); and the memory
//! options (huge pages where the system has none, pre-faulting, locking).
//!
//! Every SysV segment a test makes is removed by a guard (`ipcs -m` shows nothing
//! afterwards); memfds go with their last descriptor.

// Real processes and shared memory: Linux only, and not under Miri (no fork).
#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::backings::{sysv_key, Kind, SysVGuard, TestRing, KINDS};
use common::{check_message, message, offsets, seg_name, Gate, Procs, SegGuard};
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use shmlane::{spsc, Backing, Error, RecvError, RingOptions, SendError, TryRecvError};

const DEADLINE: Duration = Duration::from_secs(30);
/// How long a gate may take to open (the peer's process must start and set up).
const GATE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------
// SysV helpers: the test reaches into a segment as a buggy peer would
// ---------------------------------------------------------------------------------

/// The id of the SysV segment with `key`, if there is one.
fn shm_id(key: i32) -> Option<i32> {
    // SAFETY: shmget takes no pointers; size 0 and no IPC_CREAT only look it up.
    let id = unsafe { libc::shmget(key, 0, 0) };
    (id >= 0).then_some(id)
}

/// `shmctl(IPC_STAT)` of segment `id`: `(size, attachments, marked for removal)`, or
/// `None` once the segment is gone.
fn shm_stat(id: i32) -> Option<(usize, libc::shmatt_t, bool)> {
    let mut ds = std::mem::MaybeUninit::<libc::shmid_ds>::zeroed();
    // SAFETY: `ds` is a writable shmid_ds for IPC_STAT to fill.
    if unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: IPC_STAT filled it (and all-zero is a valid shmid_ds anyway).
    let ds = unsafe { ds.assume_init() };
    // SHM_DEST (<linux/shm.h>; libc does not define it): marked for removal.
    const SHM_DEST: u32 = 0o1000;
    let dest = u32::from(ds.shm_perm.mode) & SHM_DEST != 0;
    Some((ds.shm_segsz, ds.shm_nattch, dest))
}

/// Writes `bytes` at `offset` of the SysV segment with `key` (attach, copy, detach).
fn sysv_poke(key: i32, offset: usize, bytes: &[u8]) {
    let id = shm_id(key).expect("segment exists");
    let (size, _, _) = shm_stat(id).expect("IPC_STAT");
    assert!(offset + bytes.len() <= size);
    // SAFETY: a fresh attachment at an address the kernel picks.
    let p = unsafe { libc::shmat(id, std::ptr::null(), 0) };
    assert_ne!(
        p as usize,
        usize::MAX,
        "shmat: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `offset + len` is inside the segment (checked above); no endpoint of this
    // process has it mapped, and the test's children are not running yet.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.cast::<u8>().add(offset), bytes.len());
        libc::shmdt(p);
    }
}

/// Makes a SysV segment of `len` zero bytes with `key`, as something other than shmlane.
fn foreign_sysv(key: i32, len: usize) {
    // SAFETY: shmget takes no pointers.
    let id = unsafe { libc::shmget(key, len, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
    assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
}

/// How an open of a broken segment must fail.
#[derive(Clone, Copy, Debug)]
enum Want {
    Corrupt(&'static str),
    Incompatible(&'static str),
    NotReady,
}

impl Want {
    fn check(self, e: &Error) -> bool {
        match (self, e) {
            (Want::Corrupt(f), Error::Corrupt { field, .. }) => *field == f,
            (Want::Incompatible(f), Error::Incompatible { field, .. }) => field.starts_with(f),
            (Want::NotReady, Error::NotReady { .. } | Error::Abandoned { .. }) => true,
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------------
// Disconnection, on every backing
// ---------------------------------------------------------------------------------

/// The consumer gets what the producer sent before its process exited, then
/// `Disconnected`; the producer gets `Disconnected` once the consumer's process exited.
/// Both rings are created by one child and opened by the other.
fn disconnection(kind: Kind) {
    let test = format!("bk-disc-{}", kind.label());
    let sizes = [0usize, 100, 3000]; // the last one travels in fragments
    let opts = RingOptions::new(4096);

    // The producer leaves.
    let ring = TestRing::new(kind, &format!("{test}-p"));
    let producer_gone = Gate::new();
    let mut procs = Procs::new(&test, DEADLINE);
    let consumer = procs.spawn("consumer", || {
        let mut rx = ring.create_consumer(&opts)?;
        producer_gone.expect(GATE, "producer exited")?;
        let mut buf = Vec::new();
        for (seq, &len) in sizes.iter().enumerate() {
            rx.try_recv(&mut buf)
                .map_err(|e| format!("message {seq}: {e:?}"))?;
            check_message(&buf, seq as u64, len)?;
        }
        assert!(rx.is_disconnected());
        assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Disconnected));
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
        Ok(rx.name().to_string())
    });
    let producer = procs.spawn("producer", || {
        let mut tx = ring.open_producer()?;
        for (seq, &len) in sizes.iter().enumerate() {
            tx.send(&message(seq as u64, len))
                .map_err(|e| format!("send {seq}: {e}"))?;
        }
        Ok(tx.name().to_string())
    });
    let producer_name = procs.wait_ok(producer);
    producer_gone.open();
    let consumer_name = procs.wait_ok(consumer);
    assert_eq!(
        producer_name, consumer_name,
        "both ends name the same segment"
    );
    drop(procs);

    // The consumer leaves.
    let ring = TestRing::new(kind, &format!("{test}-c"));
    let consumer_gone = Gate::new();
    let mut procs = Procs::new(&test, DEADLINE);
    let producer = procs.spawn("producer", || {
        let mut tx = ring.create_producer(&opts)?;
        tx.send(b"hello").map_err(|e| e.to_string())?;
        consumer_gone.expect(GATE, "consumer exited")?;
        assert!(tx.is_disconnected());
        assert_eq!(tx.send(b"x"), Err(SendError::Disconnected));
        assert_eq!(tx.send(&message(1, 10_000)), Err(SendError::Disconnected));
        Ok(String::new())
    });
    let consumer = procs.spawn("consumer", || {
        let mut rx = ring.open_consumer()?;
        let mut buf = Vec::new();
        rx.recv(&mut buf).map_err(|e| e.to_string())?;
        assert_eq!(buf, b"hello");
        Ok(String::new())
    });
    procs.wait_ok(consumer);
    consumer_gone.open();
    procs.wait_ok(producer);
    println!("{test}: both directions; segment {consumer_name}");
}

#[test]
fn disconnection_posix() {
    disconnection(Kind::Posix);
}

#[test]
fn disconnection_sysv() {
    disconnection(Kind::SysV);
}

#[test]
fn disconnection_memfd() {
    disconnection(Kind::Memfd);
}

// ---------------------------------------------------------------------------------
// SysV
// ---------------------------------------------------------------------------------

/// A SysV segment whose header a buggy peer overwrote (written through its own
/// attachment) fails to open with the error that names the field; so do a SysV
/// segment smaller than a header and one that shmlane never initialised. No SIGBUS,
/// no panic. Each open runs in its own child, concurrently.
#[test]
fn sysv_corrupted_header_is_named() {
    use offsets::*;
    let u32b = |v: u32| v.to_le_bytes().to_vec();
    let u64b = |v: u64| v.to_le_bytes().to_vec();
    type Writes = Vec<(u64, Vec<u8>)>;
    let cases: Vec<(&str, Writes, Want)> = vec![
        (
            "magic",
            vec![(MAGIC, b"NOTSHMLN".to_vec())],
            Want::Corrupt("magic"),
        ),
        (
            "version",
            vec![(VERSION, u32b(99))],
            Want::Incompatible("version"),
        ),
        ("kind", vec![(KIND, u32b(99))], Want::Corrupt("kind")),
        (
            "capacity",
            vec![(CAPACITY, u64b(1000))],
            Want::Corrupt("capacity"),
        ),
        (
            "max_record",
            vec![(MAX_RECORD, u64b(8))],
            Want::Corrupt("max_record"),
        ),
        (
            "segment_len",
            vec![(SEGMENT_LEN, u64b(1 << 40))],
            Want::Corrupt("segment_len"),
        ),
        ("state", vec![(STATE, u32b(0xdead))], Want::Corrupt("state")),
        ("state poisoned", vec![(STATE, u32b(3))], Want::NotReady),
        (
            "capacity past the segment end",
            vec![
                (CAPACITY, u64b(1 << 20)),
                (SEGMENT_LEN, u64b(4096 + (1 << 20))),
            ],
            Want::Corrupt("capacity"),
        ),
    ];
    let test = "bk-sysv-hdr";
    let mut guards = Vec::new();
    let mut procs = Procs::new(test, DEADLINE);
    let mut whats = Vec::new();
    let mut spawn = |procs: &mut Procs, what: String, key: i32, want: Want| {
        whats.push(what.clone());
        procs.spawn(&what.clone(), move || {
            let mut out = String::new();
            for (call, r) in [
                ("Producer::open_sysv", spsc::Producer::open_sysv(key).err()),
                ("Consumer::open_sysv", spsc::Consumer::open_sysv(key).err()),
            ] {
                match r {
                    Some(e) if want.check(&e) => out += &format!("{call}: {e}; "),
                    Some(e) => return Err(format!("{what}: {call} gave {e:?}, expected {want:?}")),
                    None => return Err(format!("{what}: {call} succeeded, expected {want:?}")),
                }
            }
            Ok(out)
        });
    };
    for (i, (what, writes, want)) in cases.into_iter().enumerate() {
        let key = sysv_key(&format!("{test}-{i}"));
        guards.push(SysVGuard::new(key));
        spsc::create_ring_sysv(key, &RingOptions::new(4096)).unwrap();
        for (offset, bytes) in writes {
            sysv_poke(key, offset as usize, &bytes);
        }
        spawn(&mut procs, what.to_string(), key, want);
    }
    // Not made by shmlane: smaller than a header, and a header's worth of zeros (never
    // READY: waits the 2 s READY_WAIT).
    for (what, len, want) in [
        ("a 100-byte segment", 100, Want::Corrupt("segment size")),
        ("an all-zero segment", 8192, Want::NotReady),
    ] {
        let key = sysv_key(&format!("{test}-{what}"));
        guards.push(SysVGuard::new(key));
        foreign_sysv(key, len);
        spawn(&mut procs, what.to_string(), key, want);
    }
    for (what, r) in whats.iter().zip(procs.wait_all_ok()) {
        println!("{what:>30}: {r}");
    }
}

/// `remove_sysv` while both endpoints are attached: the key is free at once (no new
/// open finds it, a new ring can take it), the attached endpoints keep exchanging
/// messages, and the segment is gone only after both have detached.
#[test]
fn sysv_removal_lives_until_the_last_detach() {
    const N: u64 = 1000;
    let test = "bk-sysv-rm";
    let key = sysv_key(test);
    let _guard = SysVGuard::new(key);
    spsc::create_ring_sysv(key, &RingOptions::new(4096)).unwrap();
    let id = shm_id(key).expect("created");
    let removed = Gate::new();
    let mut procs = Procs::new(test, DEADLINE);
    let consumer = procs.spawn("consumer", || {
        let mut rx = spsc::Consumer::open_sysv(key).map_err(|e| e.to_string())?;
        removed.expect(GATE, "key removed")?;
        let mut buf = Vec::new();
        for seq in 0..N {
            rx.recv(&mut buf).map_err(|e| format!("recv {seq}: {e}"))?;
            check_message(&buf, seq, (seq % 200) as usize)?;
        }
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
        Ok(String::new())
    });
    let late = procs.spawn("late opener", || {
        removed.expect(GATE, "key removed")?;
        match spsc::Producer::open_sysv(key) {
            Err(Error::NotFound { .. }) => Ok(String::new()),
            other => Err(format!("open_sysv after removal: {other:?}")),
        }
    });
    let producer = procs.spawn("producer", || {
        let mut tx = spsc::Producer::open_sysv(key).map_err(|e| e.to_string())?;
        removed.expect(GATE, "key removed")?;
        for seq in 0..N {
            tx.send(&message(seq, (seq % 200) as usize))
                .map_err(|e| format!("send {seq}: {e}"))?;
        }
        Ok(String::new())
    });
    // Wait until both endpoints are attached, by the segment's attachment count.
    let t0 = Instant::now();
    while shm_stat(id).map(|(_, n, _)| n) != Some(2) {
        assert!(
            t0.elapsed() < GATE,
            "endpoints did not attach: {:?}",
            shm_stat(id)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    shmlane::remove_sysv(key).unwrap();
    let (_, nattch, dest) = shm_stat(id).expect("still there while attached");
    assert!(dest, "marked for removal");
    assert_eq!(nattch, 2);
    assert!(matches!(
        shmlane::remove_sysv(key),
        Err(Error::NotFound { .. })
    ));
    // The key is free: a new, independent ring takes it.
    let mut other = spsc::Producer::create_sysv(key, &RingOptions::new(4096)).unwrap();
    assert_ne!(shm_id(key), Some(id));
    other.send(b"elsewhere").unwrap();
    drop(other);
    shmlane::remove_sysv(key).unwrap();
    removed.open();
    procs.wait_ok(late);
    procs.wait_ok(producer);
    procs.wait_ok(consumer);
    // Both detached by exiting: the segment is gone.
    assert_eq!(shm_stat(id), None, "segment outlived its last detach");
}

/// `ftok` derives the same key for the same path and id in every process, another
/// for another id; a missing path and id 0 are errors. A ring created with the key a
/// child derived is opened with the key another child derived.
#[test]
fn ftok_keys_name_rings() {
    let dir = std::env::temp_dir().join(format!("shmlane-test-ftok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    struct RmDir(std::path::PathBuf);
    impl Drop for RmDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _rm = RmDir(dir.clone());
    let path = dir.join("ring-key");
    std::fs::write(&path, b"").unwrap();

    let key = shmlane::ftok(&path, 1).unwrap();
    assert_ne!(key, 0);
    assert_eq!(shmlane::ftok(&path, 1).unwrap(), key);
    assert_ne!(shmlane::ftok(&path, 2).unwrap(), key);
    match shmlane::ftok(dir.join("missing"), 1) {
        Err(Error::Io {
            op: "ftok", source, ..
        }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
        }
        other => panic!("ftok of a missing path: {other:?}"),
    }
    assert!(matches!(
        shmlane::ftok(&path, 0),
        Err(Error::InvalidOptions { .. })
    ));

    let _guard = SysVGuard::new(key);
    let created = Gate::new();
    let mut procs = Procs::new("bk-ftok", DEADLINE);
    procs.spawn("creator", || {
        let key = shmlane::ftok(&path, 1).map_err(|e| e.to_string())?;
        let mut tx =
            spsc::Producer::create_sysv(key, &RingOptions::new(4096)).map_err(|e| e.to_string())?;
        created.open();
        tx.send(b"keyed by a path").map_err(|e| e.to_string())?;
        Ok(tx.name().to_string())
    });
    procs.spawn("opener", || {
        created.expect(GATE, "ring created")?;
        let key = shmlane::ftok(&path, 1).map_err(|e| e.to_string())?;
        let mut rx = spsc::Consumer::open_sysv(key).map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        rx.recv(&mut buf).map_err(|e| e.to_string())?;
        assert_eq!(buf, b"keyed by a path");
        Ok(rx.name().to_string())
    });
    let names = procs.wait_all_ok();
    assert_eq!(names[0], names[1]);
    assert_eq!(names[0], format!("sysv:{:#010x}", key as u32));
}

/// Two processes race `create_or_open_sysv` on one key, as producer and consumer,
/// round after round: exactly one creates, both use the one segment.
#[test]
fn sysv_create_or_open_elects_one_creator() {
    let test = "bk-sysv-race";
    for round in 0..10i32 {
        let key = sysv_key(&format!("{test}-{round}"));
        let _guard = SysVGuard::new(key);
        let go = Gate::new();
        let mut procs = Procs::new(test, DEADLINE);
        let opts = RingOptions::new(4096);
        procs.spawn("producer", || {
            go.expect(GATE, "go")?;
            let mut tx =
                spsc::Producer::create_or_open_sysv(key, &opts).map_err(|e| e.to_string())?;
            tx.send(&round.to_le_bytes()).map_err(|e| e.to_string())?;
            Ok(String::new())
        });
        procs.spawn("consumer", || {
            go.expect(GATE, "go")?;
            let mut rx =
                spsc::Consumer::create_or_open_sysv(key, &opts).map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            rx.recv(&mut buf).map_err(|e| e.to_string())?;
            assert_eq!(buf, round.to_le_bytes());
            Ok(String::new())
        });
        go.open();
        procs.wait_all_ok();
    }
    // `create` follows the backing of the options; `unlink_on_drop` removes the key.
    let key = sysv_key(&format!("{test}-generic"));
    let _guard = SysVGuard::new(key);
    let opts = RingOptions::new(4096)
        .backing(Backing::SysV { key })
        .unlink_on_drop(true);
    let tx = spsc::Producer::create("/not-used-by-sysv", &opts).unwrap();
    assert_eq!(tx.name(), format!("sysv:{:#010x}", key as u32));
    assert!(tx.memfd().is_none());
    drop(tx);
    assert_eq!(shm_id(key), None, "unlink_on_drop left the key");
    // A memfd has nothing to open by, and a label of at most 249 bytes.
    let memfd = RingOptions::new(4096).backing(Backing::Memfd);
    assert!(matches!(
        spsc::Producer::create(&"x".repeat(250), &memfd),
        Err(Error::InvalidName { .. })
    ));
    let tx = spsc::Producer::create("labelled", &memfd).unwrap();
    assert_eq!(tx.name(), "memfd:labelled");
    assert!(tx.memfd().is_some());
    assert!(matches!(
        spsc::Producer::create_or_open("/unused", &memfd),
        Err(Error::InvalidOptions { .. })
    ));
    assert!(matches!(
        spsc::create_ring("/unused", &memfd),
        Err(Error::InvalidOptions { .. })
    ));
    // Key 0 is IPC_PRIVATE: refused everywhere.
    assert!(matches!(
        spsc::Producer::create_sysv(0, &RingOptions::new(4096)),
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        spsc::Consumer::open_sysv(0),
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        shmlane::remove_sysv(0),
        Err(Error::InvalidName { .. })
    ));
}

// ---------------------------------------------------------------------------------
// memfd
// ---------------------------------------------------------------------------------

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
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => out += &format!("{what}: {e}; "),
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
        (
            "magic",
            memfd_with(&bad_magic, full, all),
            Want::Corrupt("magic"),
        ),
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

/// The memfd ring's creator is a process forked before the ring existed, so its
/// descriptor reaches the other process only over the socket (`SCM_RIGHTS`); it
/// arrives close-on-exec, names the same segment, and carries messages both ways of
/// a two-ring ping-pong. Then the edge cases of `recv_fd`.
#[test]
fn memfd_handover_over_scm_rights() {
    const N: u64 = 1000;
    let (a, b) = UnixStream::pair().unwrap();
    b.set_read_timeout(Some(GATE)).unwrap();
    a.set_read_timeout(Some(GATE)).unwrap();
    let mut procs = Procs::new("bk-memfd-scm", DEADLINE);
    procs.spawn("pinger", || {
        let (mut ping, fd) =
            spsc::Producer::create_memfd(&RingOptions::new(1 << 16)).map_err(|e| e.to_string())?;
        shmlane::send_fd(&a, fd.as_fd()).map_err(|e| e.to_string())?;
        drop(fd);
        let mut pong = spsc::Consumer::open_fd(shmlane::recv_fd(&a).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        for seq in 0..N {
            ping.send(&message(seq, (seq * 7 % 5000) as usize))
                .map_err(|e| e.to_string())?;
            pong.recv(&mut buf).map_err(|e| e.to_string())?;
            check_message(&buf, seq, (seq * 7 % 5000) as usize)?;
        }
        Ok(ping.name().to_string())
    });
    procs.spawn("ponger", || {
        let fd = shmlane::recv_fd(&b).map_err(|e| e.to_string())?;
        // SAFETY: F_GETFD takes no pointer.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        if flags & libc::FD_CLOEXEC == 0 {
            return Err("the received descriptor is not close-on-exec".into());
        }
        let mut rx = spsc::Consumer::open_fd(fd).map_err(|e| e.to_string())?;
        let (mut tx, fd) =
            spsc::Producer::create_memfd(&RingOptions::new(1 << 16)).map_err(|e| e.to_string())?;
        shmlane::send_fd(&b, fd.as_fd()).map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        while rx.recv(&mut buf).is_ok() {
            tx.send(&buf).map_err(|e| e.to_string())?;
        }
        Ok(rx.name().to_string())
    });
    let names = procs.wait_all_ok();
    assert_eq!(names[0], "memfd:shmlane");
    assert_eq!(names[0], names[1]);

    // recv_fd: a byte without a descriptor, two descriptors, a closed socket.
    let (a, b) = UnixStream::pair().unwrap();
    std::io::Write::write_all(&mut &a, b"x").unwrap();
    let e = shmlane::recv_fd(&b).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
    let (r, w) = common::pipe();
    {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        let fds = [r.as_raw_fd(), w.as_raw_fd()];
        sendmsg::<()>(
            a.as_raw_fd(),
            &[std::io::IoSlice::new(b"F")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
    }
    let e = shmlane::recv_fd(&b).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
    drop(a);
    let e = shmlane::recv_fd(&b).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
}

// ---------------------------------------------------------------------------------
// Memory options
// ---------------------------------------------------------------------------------

/// A value of /proc/meminfo or /proc/self/status, in bytes where it has a unit.
fn proc_value(file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(file).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {key} in {file}"));
    let mut words = line.split_whitespace();
    let n: u64 = words.next().unwrap().parse().unwrap();
    if words.next() == Some("kB") {
        n * 1024
    } else {
        n
    }
}

/// Whether the ring named by `kind`'s test ring exists (POSIX name or SysV key).
fn leftover(ring: &TestRing) -> bool {
    match ring.kind {
        Kind::Posix => std::path::Path::new(&common::shm_path(&ring.name)).exists(),
        Kind::SysV => shm_id(ring.key).is_some(),
        Kind::Memfd => false,
    }
}

/// Huge pages: where the system has none to give (this test machine:
/// `HugePages_Total: 0`), asking for them fails with an `Io` error that says so, and
/// leaves nothing behind; where it has them, the ring works. Either way a capacity
/// that is not a multiple of the huge page size is `InvalidOptions`.
#[test]
fn huge_pages_work_or_fail_clearly() {
    let huge = proc_value("/proc/meminfo", "Hugepagesize") as usize;
    let available = proc_value("/proc/meminfo", "HugePages_Free") > 2
        || std::fs::read_to_string("/proc/sys/vm/nr_overcommit_hugepages")
            .is_ok_and(|s| s.trim() != "0");
    let hugetlbfs = std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(2) == Some("hugetlbfs"));
    for kind in KINDS {
        let ring = TestRing::new(kind, &format!("bk-huge-{}", kind.label()));
        let small = ring.options(&RingOptions::new(4096).huge_pages(true));
        match ring.create_producer(&small) {
            Err(e) if e.contains("multiple of the huge page size") => {}
            other => panic!("{kind:?}: a 4 KiB ring on huge pages gave {other:?}"),
        }
        let opts = ring.options(&RingOptions::new(huge).huge_pages(true));
        let r = match kind {
            Kind::Posix => spsc::Producer::create(&ring.name, &opts).map(drop),
            Kind::SysV => spsc::Producer::create_sysv(ring.key, &opts).map(drop),
            Kind::Memfd => spsc::Producer::create_memfd(&opts).map(drop),
        };
        match r {
            Ok(()) => {
                assert!(available && (kind != Kind::Posix || hugetlbfs), "{kind:?}");
                println!("{kind:?}: a ring on huge pages of {huge} bytes");
            }
            Err(e @ Error::Io { .. }) => {
                let text = e.to_string();
                println!("{kind:?}: {text}");
                if kind == Kind::Posix && !hugetlbfs {
                    assert!(text.contains("hugetlbfs"), "{text}");
                } else {
                    assert!(!available, "{kind:?}: huge pages are available, yet {text}");
                    assert!(text.contains("huge pages"), "{text}");
                }
            }
            Err(e) => panic!("{kind:?}: huge pages gave {e:?}, expected Ok or Io"),
        }
        assert!(
            !leftover(&ring),
            "{kind:?}: a failed create left its segment"
        );
    }
}

/// `populate` pre-faults the creator's mapping (its RssShmem grows by the whole ring
/// at once) and `lock_memory` locks it (VmLck), on every backing; the ring then
/// works as any other.
#[test]
fn populate_and_lock_memory() {
    const CAP: usize = 1 << 20;
    let status = "/proc/self/status";
    let mut procs = Procs::new("bk-populate", DEADLINE);
    let mut rings = Vec::new();
    for kind in KINDS {
        rings.push(TestRing::new(
            kind,
            &format!("bk-populate-{}", kind.label()),
        ));
    }
    for ring in &rings {
        // In a child, so that the parent's threads (other tests) do not blur the counts.
        procs.spawn(ring.kind.label(), move || {
            let opts = RingOptions::new(CAP).populate(true).lock_memory(true);
            let (shmem0, lck0) = (proc_value(status, "RssShmem"), proc_value(status, "VmLck"));
            let mut tx = ring.create_producer(&opts)?;
            let (shmem, lck) = (
                proc_value(status, "RssShmem") - shmem0,
                proc_value(status, "VmLck") - lck0,
            );
            if shmem < CAP as u64 || lck < CAP as u64 {
                return Err(format!(
                    "after create: RssShmem +{shmem}, VmLck +{lck}; expected both >= {CAP}"
                ));
            }
            tx.send(b"resident").map_err(|e| e.to_string())?;
            Ok(format!("RssShmem +{shmem} B, VmLck +{lck} B"))
        });
    }
    // The opening side is this process: nothing to open for memfd but the descriptor,
    // which the child sends over the ring's socket.
    for (ring, r) in rings.iter().zip(procs.wait_all_ok()) {
        let mut rx = ring.open_consumer().unwrap();
        let mut buf = Vec::new();
        rx.try_recv(&mut buf).unwrap();
        assert_eq!(buf, b"resident");
        println!("{:?}: {r}", ring.kind);
    }
}

/// Drops every capability of the calling process (the test may run as root, whose
/// CAP_IPC_LOCK ignores RLIMIT_MEMLOCK).
fn drop_capabilities() -> Result<(), String> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [
        Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        },
        Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        },
    ];
    // SAFETY: capset reads a version-3 header and two data structs, both valid here.
    let r = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    if r != 0 {
        return Err(format!("capset: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// `lock_memory` beyond RLIMIT_MEMLOCK fails with an `mlock` error that names the
/// limit, and the failed create leaves nothing behind, on every backing.
#[test]
fn lock_memory_beyond_the_limit_fails_clearly() {
    let mut procs = Procs::new("bk-mlock", DEADLINE);
    let mut rings = Vec::new();
    for kind in KINDS {
        rings.push(TestRing::new(kind, &format!("bk-mlock-{}", kind.label())));
    }
    procs.spawn("unprivileged", || {
        drop_capabilities()?;
        let limit = libc::rlimit {
            rlim_cur: 64 << 10,
            rlim_max: 64 << 10,
        };
        // SAFETY: `limit` is a valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) } != 0 {
            return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
        }
        let mut out = String::new();
        for ring in &rings {
            let opts = RingOptions::new(1 << 20).lock_memory(true);
            match ring.create_producer(&opts) {
                Err(e) if e.contains("mlock") && e.contains("RLIMIT_MEMLOCK") => {
                    out += &format!("{e}\n")
                }
                other => return Err(format!("{:?}: {other:?}", ring.kind)),
            }
            if leftover(ring) {
                return Err(format!(
                    "{:?}: the failed create left its segment",
                    ring.kind
                ));
            }
        }
        Ok(out)
    });
    print!("{}", procs.wait_all_ok()[0]);
}
