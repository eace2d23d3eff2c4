//! Claim: **the same ring lives in POSIX shared memory, a SysV segment or a sealed memfd,
//! with the memory options each allows**: SysV rings are named by keys (`ftok` gives
//! every process the same key for the same path and id); a memfd ring reaches another
//! process as a descriptor over `SCM_RIGHTS`; huge pages work where the system has
//! them and fail clearly where it has none; `populate` pre-faults and `lock_memory`
//! locks the ring on every backing, and beyond `RLIMIT_MEMLOCK` fails clearly, leaving
//! nothing behind.
//!
//! Messages on every backing are in `ordering_and_integrity.rs`, disconnection in
//! `disconnect.rs`, corrupted SysV headers in `corruption.rs`, the seals in
//! `short_and_shrinking_segments.rs`, removal in `removal.rs`.
//!
//! Every SysV segment a test makes is removed by a guard (`ipcs -m` shows nothing
//! afterwards); memfds go with their last descriptor.

// Real processes and shared memory: Linux only, and not under Miri (no fork).
#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::backings::{Kind, SysVGuard, TestRing, KINDS};
use common::{check_message, message, Gate, Procs};
use shmlane::{spsc, Error, RingOptions};

const DEADLINE: Duration = Duration::from_secs(30);
/// How long a gate may take to open (the peer's process must start and set up).
const GATE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------
// SysV helpers
// ---------------------------------------------------------------------------------

/// The id of the SysV segment with `key`, if there is one.
fn shm_id(key: i32) -> Option<i32> {
    // SAFETY: shmget takes no pointers; size 0 and no IPC_CREAT only look it up.
    let id = unsafe { libc::shmget(key, 0, 0) };
    (id >= 0).then_some(id)
}

// ---------------------------------------------------------------------------------
// SysV
// ---------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------
// memfd
// ---------------------------------------------------------------------------------

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
