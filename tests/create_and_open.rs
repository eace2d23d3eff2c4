//! Claim: **setting up a ring does what it says or fails with an error that says why,
//! leaving nothing behind**: `create` over an existing name is `AlreadyExists` and
//! changes nothing; `create_or_open` racing on one name (or one SysV key) elects exactly
//! one creator; a name is taken with or without its leading `/` (`frames` is
//! `/frames`), and names that are neither are `InvalidName`; a second endpoint of an
//! SPSC role, or one past an MPMC ring's `max_endpoints`, is `Busy`; an SPSC ring is
//! not opened as MPMC (`Incompatible`); bad options are `InvalidOptions`; and creates
//! that cannot do what a ring needs fail without going on half-done or aborting:
//!
//! - A POSIX create whose init lock cannot be taken (the lock that tells openers the
//!   creator is alive while it initialises the segment). Provoked without hooks in the
//!   library: the creating child installs a seccomp filter that fails every
//!   `fcntl(F_OFD_SETLK)` with `ENOLCK`.
//! - A heap ring too large to allocate: the child lowers its address-space limit
//!   (`RLIMIT_AS`) so that the allocation fails whatever the machine's overcommit
//!   policy, and must get an error, not abort.
//!
//! Each of those two runs in a forked child, so that a filter, a limit or an abort
//! stays there. The other parts: [`names_and_races`], [`sysv`], [`kinds`] between
//! processes, [`spsc_threads`] and [`mpmc_threads`] over the heap backing.
//!
//! Corrupt and truncated segments are in `corruption.rs` and
//! `short_and_shrinking_segments.rs`; permissions in `permissions.rs`.

// The tests that fork are ignored under Miri (no fork); those over the heap backing run
// there (`scripts/check-nightly.sh`).

mod common;

use std::time::Duration;

use common::{seg_name, shm_path, Outcome, Procs, SegGuard};
use shmlane::{spsc, Error, RingOptions};

const DEADLINE: Duration = Duration::from_secs(30);

/// A create that cannot take its init lock fails, says so, and removes the name: before
/// the fix it went on without the lock, and an opener that looked during the
/// initialisation took the live creator for dead (`Abandoned`; `create_or_open` then
/// removed the ring under it).
#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn create_fails_when_the_init_lock_cannot_be_taken() {
    let test = "create-init-lock";
    let name = seg_name(test);
    let _guard = SegGuard::new(&name);
    let mut procs = Procs::new(test, DEADLINE);
    let child_name = name.clone();
    let creator = procs.spawn("creator, F_OFD_SETLK failing", move || {
        shmlane_support::seccomp::fail_ofd_setlk().map_err(|e| e.to_string())?;
        match spsc::create_ring(&child_name, &RingOptions::new(4096)) {
            Ok(()) => Err("created the ring without its init lock".to_string()),
            Err(e @ Error::Io { .. }) => {
                let text = e.to_string();
                if !text.contains("init lock") || !text.contains(&child_name) {
                    return Err(format!("the error does not name the init lock: {text}"));
                }
                if std::path::Path::new(&shm_path(&child_name)).exists() {
                    return Err(format!("the failed create left {child_name} behind"));
                }
                Ok(text)
            }
            Err(e) => Err(format!("expected Error::Io, got {e:?}")),
        }
    });
    println!("{test}: {}", procs.wait_ok(creator));
}

/// A heap ring that cannot be allocated is an error of `channel`, not an abort.
#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn heap_ring_too_large_to_allocate_is_an_error() {
    let test = "create-heap-alloc";
    let mut procs = Procs::new(test, DEADLINE);
    let child = procs.spawn("heap channel of MAX_CAPACITY", || {
        // 64 GiB of address space: more than this process uses, far less than the
        // 1 TiB ring (an existing mapping over the limit stays; new ones fail).
        let limit = 64 << 30;
        let rl = libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        // SAFETY: `rl` is a valid rlimit for setrlimit to read.
        if unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) } != 0 {
            return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
        }
        match spsc::channel(&RingOptions::new(shmlane::MAX_CAPACITY)) {
            Ok(_) => Err("allocated a 1 TiB heap ring under a 64 GiB limit".to_string()),
            Err(e) => {
                let text = e.to_string();
                if !text.contains("heap") {
                    return Err(format!("the error does not say what failed: {text}"));
                }
                Ok(text)
            }
        }
    });
    let r = procs.wait(child);
    assert_eq!(r.outcome, Outcome::Exited(0), "{r}");
    println!("{test}: {}", r.report);
}

mod names_and_races {
    //! Creating and opening by name between real processes: existing names, races, invalid
    //! names, a second endpoint of a role.

    use crate::common::{
        check_message, message, offsets, peek_u32, read_segment, seg_name, shm_path, Gate, Procs,
        SegGuard,
    };
    use shmlane::{spsc, Error, RecvTimeoutError, RingOptions};
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, Instant};

    const DEADLINE: Duration = Duration::from_secs(30);

    /// How long a gate may take to open (the peer's process must start and set up).
    const GATE: Duration = Duration::from_secs(20);

    fn opts(capacity: usize) -> RingOptions {
        RingOptions::new(capacity)
    }

    /// `create` over an existing name fails with `AlreadyExists` and leaves the segment
    /// exactly as it was; the ring is still usable.
    #[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
    #[test]
    fn create_over_existing_name_fails_and_changes_nothing() {
        let test = "sem-exists";
        let name = seg_name(test);
        let _seg = SegGuard::new(&name);
        let mut tx = spsc::Producer::create(&name, &opts(4096)).unwrap();
        tx.send(&message(0, 300)).unwrap();
        let before = read_segment(&name);
        assert_eq!(before.len(), 4096 + 4096);
        let mut procs = Procs::new(test, DEADLINE);
        let c = procs.spawn("creator", || {
            for cap in [4096, 8192, 1 << 20] {
                for (role, r) in [
                    ("producer", spsc::Producer::create(&name, &opts(cap)).err()),
                    ("consumer", spsc::Consumer::create(&name, &opts(cap)).err()),
                ] {
                    match r {
                        Some(Error::AlreadyExists { name: n }) if n == name => {}
                        other => return Err(format!("{role} create ({cap}): {other:?}")),
                    }
                }
            }
            Ok(String::new())
        });
        procs.wait_ok(c);
        let after = read_segment(&name);
        assert_eq!(after.len(), before.len(), "the segment was resized");
        assert!(after == before, "the segment's bytes changed");
        let c = procs.spawn("consumer", || {
            let mut rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
            assert_eq!(rx.capacity(), 4096);
            let mut buf = Vec::new();
            assert_eq!(rx.try_recv(&mut buf), Ok(300));
            check_message(&buf, 0, 300)?;
            Ok(String::new())
        });
        procs.wait_ok(c);
        drop(tx);
    }

    /// Several processes race `create_or_open` on one name: exactly one creates (the
    /// header's creator pid is its pid, and only it sees its own pid there), all map the
    /// same object, and a message from each racer reaches the one consumer.
    #[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
    #[test]
    fn create_or_open_race_elects_one_creator() {
        const ROUNDS: usize = 8;
        const PRODUCERS: usize = 4;
        for round in 0..ROUNDS {
            let test = format!("sem-race-{round}");
            let name = seg_name(&test);
            let _seg = SegGuard::new(&name);
            let go = Gate::new();
            let mut procs = Procs::new(&test, DEADLINE);
            // Each role reports "pid inode creator_pid_seen".
            let stat = |name: &str| -> Result<String, String> {
                let ino = std::fs::metadata(shm_path(name))
                    .map_err(|e| format!("stat: {e}"))?
                    .ino();
                let creator = peek_u32(name, offsets::CREATOR_PID);
                Ok(format!("{} {ino} {creator}", std::process::id()))
            };
            let consumer = procs.spawn("consumer", || {
                go.expect(GATE, "go")?;
                let mut rx = spsc::Consumer::create_or_open(&name, &opts(4096))
                    .map_err(|e| format!("consumer create_or_open: {e}"))?;
                let me = stat(&name)?;
                let mut buf = Vec::new();
                let mut from = Vec::new();
                let t0 = Instant::now();
                // Producers come one after another; between two, the ring may read as
                // disconnected.
                while from.len() < PRODUCERS {
                    match rx.recv_timeout(&mut buf, Duration::from_millis(20)) {
                        Ok(_) => from.push(String::from_utf8(buf.clone()).unwrap()),
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        Err(e) => return Err(format!("recv: {e}")),
                    }
                    if t0.elapsed() > GATE {
                        return Err(format!("only {} messages: {from:?}", from.len()));
                    }
                }
                Ok(format!("{me}|{}", from.join(",")))
            });
            let producers: Vec<usize> = (0..PRODUCERS)
                .map(|_| {
                    procs.spawn("producer", || {
                        go.expect(GATE, "go")?;
                        let t0 = Instant::now();
                        // Only one producer at a time: retry while another is attached.
                        let mut tx = loop {
                            match spsc::Producer::create_or_open(&name, &opts(4096)) {
                                Ok(tx) => break tx,
                                Err(Error::Busy {
                                    endpoint: "producer",
                                    ..
                                }) => {
                                    if t0.elapsed() > GATE {
                                        return Err("still busy".into());
                                    }
                                    std::thread::sleep(Duration::from_millis(1));
                                }
                                Err(e) => return Err(format!("producer create_or_open: {e}")),
                            }
                        };
                        assert_eq!(tx.capacity(), 4096);
                        let me = stat(&name)?;
                        tx.send(std::process::id().to_string().as_bytes())
                            .map_err(|e| format!("send: {e}"))?;
                        Ok(me)
                    })
                })
                .collect();
            go.open();
            let reports = procs.wait_all_ok();
            let parse = |r: &str| -> (u32, u64, u32) {
                let r = r.split('|').next().unwrap();
                let v: Vec<&str> = r.split(' ').collect();
                (
                    v[0].parse().unwrap(),
                    v[1].parse().unwrap(),
                    v[2].parse().unwrap(),
                )
            };
            let all: Vec<(u32, u64, u32)> = reports.iter().map(|r| parse(r)).collect();
            let creator = peek_u32(&name, offsets::CREATOR_PID);
            let ino = std::fs::metadata(shm_path(&name)).unwrap().ino();
            let pids: Vec<u32> = all.iter().map(|a| a.0).collect();
            assert!(
                pids.contains(&creator),
                "round {round}: creator pid {creator} is none of the racers {pids:?}"
            );
            let claims = all.iter().filter(|a| a.0 == a.2).count();
            assert_eq!(
                claims, 1,
                "round {round}: racers that see themselves as creator: {all:?}"
            );
            for a in &all {
                assert_eq!(
                    a.1, ino,
                    "round {round}: a racer mapped another object: {all:?}"
                );
                assert_eq!(
                    a.2, creator,
                    "round {round}: racers disagree on the creator: {all:?}"
                );
            }
            let mut got: Vec<u32> = reports[consumer]
                .split('|')
                .nth(1)
                .unwrap()
                .split(',')
                .map(|p| p.parse().unwrap())
                .collect();
            got.sort_unstable();
            let mut want: Vec<u32> = producers
                .iter()
                .map(|&i| procs.pid(i).as_raw() as u32)
                .collect();
            want.sort_unstable();
            assert_eq!(
                got, want,
                "round {round}: the consumer did not get one message from each producer"
            );
        }
    }

    /// Names that are not `name` or `/name` are refused by every call that takes one.
    #[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
    #[test]
    fn invalid_names_are_refused() {
        let long = format!("/{}", "a".repeat(256));
        let long_bare = "a".repeat(256);
        let bad = [
            "", "/", "//", "/a/b", "/a/", "/.", "/..", "/a\0b", &long, "a/b", "a/", ".", "..",
            "a\0b", &long_bare, "//x",
        ];
        for name in bad {
            let o = opts(4096);
            let results = [
                ("validate_name", shmlane::validate_name(name).err()),
                ("Producer::create", spsc::Producer::create(name, &o).err()),
                ("Producer::open", spsc::Producer::open(name).err()),
                (
                    "Producer::create_or_open",
                    spsc::Producer::create_or_open(name, &o).err(),
                ),
                ("Consumer::create", spsc::Consumer::create(name, &o).err()),
                ("Consumer::open", spsc::Consumer::open(name).err()),
                (
                    "Consumer::create_or_open",
                    spsc::Consumer::create_or_open(name, &o).err(),
                ),
                ("remove", shmlane::remove(name).err()),
            ];
            for (call, r) in results {
                match r {
                    Some(Error::InvalidName { name: n, .. }) => assert_eq!(n, name),
                    other => panic!("{call}({name:?}): {other:?}, expected InvalidName"),
                }
            }
        }
        // Without the leading '/' a name is valid (issue 19: as the command takes it).
        for name in ["x", "no-slash"] {
            shmlane::validate_name(name).unwrap();
            assert_eq!(shmlane::canonical_name(name).unwrap(), format!("/{name}"));
        }
        // The longest valid name: 255 bytes after the slash.
        let prefix = format!("/shmlane-test-sem-long-{}-", std::process::id());
        let longest = format!("{prefix}{}", "n".repeat(256 - prefix.len()));
        assert_eq!(longest.len(), 256);
        let _seg = SegGuard::new(&longest);
        shmlane::validate_name(&longest).unwrap();
        let tx = spsc::Producer::create(&longest, &opts(4096))
            .unwrap_or_else(|e| panic!("a 255-byte name: {e}"));
        drop(tx);
        shmlane::remove(&longest).unwrap();
    }

    /// `"frames"` and `"/frames"` name the same ring, for every call that takes a name:
    /// created under one, opened, inspected, created again (`AlreadyExists`) and
    /// removed under the other; the endpoints report the name with its `/`.
    #[cfg_attr(miri, ignore = "shared memory: Miri isolates the OS")]
    #[test]
    fn a_name_with_or_without_its_slash_is_one_ring() {
        let name = seg_name("names-bare");
        let bare = name.strip_prefix('/').unwrap().to_string();
        let _guard = SegGuard::new(&name);
        let mut tx = spsc::Producer::create(&bare, &opts(4096)).unwrap();
        assert_eq!(tx.name(), name);
        assert!(std::path::Path::new(&shm_path(&name)).exists());
        assert!(matches!(
            spsc::Consumer::create(&name, &opts(4096)),
            Err(Error::AlreadyExists { .. })
        ));
        let mut rx = spsc::Consumer::open(&name).unwrap();
        tx.send(b"one").unwrap();
        let mut buf = Vec::new();
        rx.recv(&mut buf).unwrap();
        assert_eq!(buf, b"one");
        drop(rx);
        let mut rx = spsc::Consumer::create_or_open(&bare, &opts(4096)).unwrap();
        assert_eq!(rx.name(), name);
        tx.send(b"two").unwrap();
        rx.recv(&mut buf).unwrap();
        assert_eq!(buf, b"two");
        assert_eq!(shmlane::inspect::inspect(&bare).unwrap().name, name);
        assert!(!shmlane::inspect::remove_if_stale(&bare).unwrap());
        shmlane::remove(&bare).unwrap();
        assert!(matches!(
            shmlane::remove(&name),
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            spsc::Consumer::open(&bare),
            Err(Error::NotFound { .. })
        ));
    }

    /// A second producer (or consumer) attaching while the first is attached gets `Busy`,
    /// from any process; once the first detaches, another can attach.
    #[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
    #[test]
    fn second_endpoint_of_a_role_is_busy() {
        let test = "sem-busy";
        let name = seg_name(test);
        let _seg = SegGuard::new(&name);
        let tx = spsc::Producer::create(&name, &opts(4096)).unwrap();
        let (has_consumer, checked) = (Gate::new(), Gate::new());
        let busy = |r: Result<(), Error>, role: &str| -> Result<(), String> {
            match r {
                Err(Error::Busy { endpoint, name: n }) if endpoint == role && n == name => Ok(()),
                other => Err(format!(
                    "expected Busy {{ endpoint: {role:?} }}, got {other:?}"
                )),
            }
        };
        let mut procs = Procs::new(test, DEADLINE);
        let b = procs.spawn("second producer, first consumer", || {
            busy(spsc::Producer::open(&name).map(drop), "producer")?;
            busy(
                spsc::Producer::create_or_open(&name, &opts(4096)).map(drop),
                "producer",
            )?;
            let rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
            busy(spsc::Consumer::open(&name).map(drop), "consumer")?;
            has_consumer.open();
            checked.expect(GATE, "third process checked")?;
            drop(rx);
            Ok(String::new())
        });
        let c = procs.spawn("third process", || {
            has_consumer.expect(GATE, "consumer attached")?;
            busy(spsc::Consumer::open(&name).map(drop), "consumer")?;
            busy(spsc::Producer::open(&name).map(drop), "producer")?;
            checked.open();
            Ok(String::new())
        });
        procs.wait_ok(c);
        procs.wait_ok(b);
        drop(tx);
        // Both roles are free again: a new process takes both, and the ring works.
        let d = procs.spawn("re-attach", || {
            let mut tx = spsc::Producer::open(&name).map_err(|e| e.to_string())?;
            let mut rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
            tx.send(b"again").map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            assert_eq!(rx.try_recv(&mut buf), Ok(5));
            assert_eq!(buf, b"again");
            Ok(String::new())
        });
        procs.wait_ok(d);
    }
}

mod sysv {
    //! The `create_or_open` election on a SysV key. Every SysV segment is removed by a guard.

    use crate::common::backings::{sysv_key, SysVGuard};
    use crate::common::{Gate, Procs};
    use shmlane::{spsc, Backing, Error, RingOptions};
    use std::time::Duration;

    const DEADLINE: Duration = Duration::from_secs(30);

    /// How long a gate may take to open (the peer's process must start and set up).
    const GATE: Duration = Duration::from_secs(20);

    /// The id of the SysV segment with `key`, if there is one.
    fn shm_id(key: i32) -> Option<i32> {
        // SAFETY: shmget takes no pointers; size 0 and no IPC_CREAT only look it up.
        let id = unsafe { libc::shmget(key, 0, 0) };
        (id >= 0).then_some(id)
    }

    /// Two processes race `create_or_open_sysv` on one key, as producer and consumer,
    /// round after round: exactly one creates, both use the one segment.
    #[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
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
        // `create` by name with a SysV backing in the options is a conflict (issue 19:
        // it made a SysV ring that `open(name)` could not find), and makes nothing;
        // `create_sysv` with the same key in the options agrees, and `unlink_on_drop`
        // removes the key.
        let key = sysv_key(&format!("{test}-generic"));
        let _guard = SysVGuard::new(key);
        let opts = RingOptions::new(4096)
            .backing(Backing::SysV { key })
            .unlink_on_drop(true);
        assert!(matches!(
            spsc::Producer::create("/not-used-by-sysv", &opts),
            Err(Error::InvalidOptions { .. })
        ));
        assert_eq!(shm_id(key), None, "a refused create made the segment");
        let tx = spsc::Producer::create_sysv(key, &opts).unwrap();
        assert_eq!(tx.name(), format!("sysv:{:#010x}", key as u32));
        assert!(tx.memfd().is_none());
        drop(tx);
        assert_eq!(shm_id(key), None, "unlink_on_drop left the key");
        // A memfd has nothing to open by: by name it is a conflict, whatever the name
        // (it was the memfd's label, of at most 249 bytes).
        let memfd = RingOptions::new(4096).backing(Backing::Memfd);
        assert!(matches!(
            spsc::Producer::create(&"x".repeat(250), &memfd),
            Err(Error::InvalidOptions { .. })
        ));
        assert!(matches!(
            spsc::Producer::create("labelled", &memfd),
            Err(Error::InvalidOptions { .. })
        ));
        let (tx, _fd) = spsc::Producer::create_memfd(&memfd).unwrap();
        assert_eq!(tx.name(), "memfd:shmlane");
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
}

mod kinds {
    //! An SPSC ring is not an MPMC ring.

    use crate::common::{seg_name, SegGuard};
    use shmlane::{mpmc, Error, RingOptions};

    /// Opening an MPMC ring as SPSC, or the reverse, is `Incompatible` (field `kind`).
    #[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
    #[test]
    fn kinds_do_not_mix() {
        let name = seg_name("mpmc-kinds");
        let _guard = SegGuard::new(&name);
        let _rx = mpmc::Consumer::create(&name, &RingOptions::new(4096)).unwrap();
        match shmlane::spsc::Producer::open(&name) {
            Err(Error::Incompatible { field, .. }) => assert_eq!(field, "kind"),
            other => panic!("spsc open of an mpmc ring: {other:?}"),
        }
        let name2 = seg_name("mpmc-kinds-2");
        let _guard2 = SegGuard::new(&name2);
        let _tx = shmlane::spsc::Producer::create(&name2, &RingOptions::new(4096)).unwrap();
        match mpmc::Consumer::open(&name2) {
            Err(Error::Incompatible { field, .. }) => assert_eq!(field, "kind"),
            other => panic!("mpmc open of an spsc ring: {other:?}"),
        }
    }
}

mod spsc_threads {
    //! Options checked at creation, over the private heap backing: small enough for Miri.

    use shmlane::{spsc, RingOptions};

    /// Options for a ring of `capacity` bytes. Under Miri: symmetric fences (Miri has no
    /// `membarrier` system call); endpoints park on the futex as they do outside Miri.
    fn opts(capacity: usize) -> RingOptions {
        RingOptions::new(capacity).asymmetric_fences(!cfg!(miri))
    }

    #[test]
    fn bad_options_are_errors() {
        for cap in [0, 3, 100, 32] {
            assert!(matches!(
                spsc::channel(&opts(cap)),
                Err(shmlane::Error::InvalidOptions { .. })
            ));
        }
    }
}

mod mpmc_threads {
    //! The MPMC endpoint limit and cell options, over the heap backing: small enough for Miri.

    use shmlane::{mpmc, Error, RingOptions};

    /// Options for a ring of `capacity` bytes (symmetric fences under Miri, which has no
    /// `membarrier`).
    fn opts(capacity: usize) -> RingOptions {
        RingOptions::new(capacity).asymmetric_fences(!cfg!(miri))
    }

    #[test]
    fn endpoint_limit_is_busy() {
        let (tx, rx) = mpmc::channel(&opts(256).max_endpoints(3)).unwrap();
        let _third = tx.try_clone().unwrap();
        assert!(matches!(tx.try_clone(), Err(Error::Busy { .. })));
        assert!(matches!(rx.try_clone(), Err(Error::Busy { .. })));
        drop(_third);
        let _again = rx.try_clone().unwrap();
        assert!(matches!(
            mpmc::channel(&opts(256).max_endpoints(1)),
            Err(Error::InvalidOptions { .. })
        ));
        assert!(matches!(
            mpmc::channel(&opts(256).max_endpoints(65)),
            Err(Error::InvalidOptions { .. })
        ));
        assert!(matches!(
            mpmc::channel(&opts(256).cell_size(48)),
            Err(Error::InvalidOptions { .. })
        ));
        assert!(matches!(
            mpmc::channel(&opts(256).cell_size(256)),
            Err(Error::InvalidOptions { .. })
        ));
    }
}

mod conflicting_choices {
    //! A constructor and the options that contradict it about where the ring lives (or
    //! about what to do with it) are `InvalidOptions` naming both choices, and make
    //! nothing (issue 19: each was silently resolved one way or the other).

    use crate::common::backings::{sysv_key, SysVGuard};
    use crate::common::{seg_name, shm_path};
    use shmlane::{mpmc, spsc, Backing, Error, RingOptions};

    /// `r` is `InvalidOptions` whose reason names `choices`.
    fn conflict<T>(what: &str, r: Result<T, Error>, choices: &[&str]) {
        match r {
            Err(Error::InvalidOptions { reason }) => {
                assert!(reason.contains("conflicting choices"), "{what}: {reason}");
                for c in choices {
                    assert!(reason.contains(c), "{what}: {c:?} not in {reason:?}");
                }
            }
            Err(e) => panic!("{what}: {e:?}, expected InvalidOptions"),
            Ok(_) => panic!("{what}: made a ring, expected InvalidOptions"),
        }
    }

    #[cfg_attr(miri, ignore = "shared memory: Miri isolates the OS")]
    #[test]
    fn every_conflicting_backing_is_an_error() {
        let name = seg_name("conflict");
        let key = sysv_key("conflict");
        let other = sysv_key("conflict-other");
        let _guards = (SysVGuard::new(key), SysVGuard::new(other));
        let base = RingOptions::new(4096);
        let sysv = base.clone().backing(Backing::SysV { key });
        let sysv_other = base.clone().backing(Backing::SysV { key: other });
        let memfd = base.clone().backing(Backing::Memfd);
        let k = format!("{key:#x}");
        let ko = format!("{other:#x}");
        // By name: SysV or memfd in the options.
        for (b, opts) in [("Backing::SysV", &sysv), ("Backing::Memfd", &memfd)] {
            conflict(
                "spsc::Producer::create",
                spsc::Producer::create(&name, opts),
                &["`create`", "POSIX name", b],
            );
            conflict(
                "spsc::Consumer::create",
                spsc::Consumer::create(&name, opts),
                &["`create`", b],
            );
            conflict(
                "mpmc::Producer::create",
                mpmc::Producer::create(&name, opts),
                &["`create`", b],
            );
            conflict(
                "mpmc::Consumer::create",
                mpmc::Consumer::create(&name, opts),
                &["`create`", b],
            );
            conflict(
                "spsc::Producer::create_or_open",
                spsc::Producer::create_or_open(&name, opts),
                &["`create_or_open`", b],
            );
            conflict(
                "mpmc::Consumer::create_or_open",
                mpmc::Consumer::create_or_open(&name, opts),
                &["`create_or_open`", b],
            );
            conflict(
                "spsc::create_ring",
                spsc::create_ring(&name, opts),
                &["`create_ring`", b],
            );
            conflict(
                "mpmc::create_ring",
                mpmc::create_ring(&name, opts),
                &["`create_ring`", b],
            );
        }
        assert!(
            !std::path::Path::new(&shm_path(&name)).exists(),
            "a refused create made {name}"
        );
        // By key: another key, or a memfd, in the options.
        for (b, opts) in [(ko.as_str(), &sysv_other), ("Backing::Memfd", &memfd)] {
            conflict(
                "spsc::Producer::create_sysv",
                spsc::Producer::create_sysv(key, opts),
                &["`create_sysv`", &k, b],
            );
            conflict(
                "mpmc::Consumer::create_sysv",
                mpmc::Consumer::create_sysv(key, opts),
                &["`create_sysv`", &k, b],
            );
            conflict(
                "spsc::Consumer::create_or_open_sysv",
                spsc::Consumer::create_or_open_sysv(key, opts),
                &["`create_or_open_sysv`", &k, b],
            );
            conflict(
                "mpmc::Producer::create_or_open_sysv",
                mpmc::Producer::create_or_open_sysv(key, opts),
                &["`create_or_open_sysv`", &k, b],
            );
            conflict(
                "spsc::create_ring_sysv",
                spsc::create_ring_sysv(key, opts),
                &["`create_ring_sysv`", &k, b],
            );
            conflict(
                "mpmc::create_ring_sysv",
                mpmc::create_ring_sysv(key, opts),
                &["`create_ring_sysv`", &k, b],
            );
        }
        // A memfd: SysV in the options.
        conflict(
            "spsc::Producer::create_memfd",
            spsc::Producer::create_memfd(&sysv),
            &["`create_memfd`", "memfd", &k],
        );
        conflict(
            "mpmc::Consumer::create_memfd",
            mpmc::Consumer::create_memfd(&sysv),
            &["`create_memfd`", &k],
        );
        conflict(
            "spsc::create_ring_memfd",
            spsc::create_ring_memfd(&sysv),
            &["`create_ring_memfd`", &k],
        );
        conflict(
            "mpmc::create_ring_memfd",
            mpmc::create_ring_memfd(&sysv),
            &["`create_ring_memfd`", &k],
        );
        // Heap memory: any backing but the default.
        for (b, opts) in [("Backing::SysV", &sysv), ("Backing::Memfd", &memfd)] {
            conflict(
                "spsc::channel",
                spsc::channel(opts),
                &["`channel`", "heap", b],
            );
            conflict("mpmc::channel", mpmc::channel(opts), &["`channel`", b]);
        }
        // Nothing was made under either key.
        for k in [key, other] {
            // SAFETY: shmget takes no pointers; size 0 and no IPC_CREAT only look it up.
            assert_eq!(
                unsafe { libc::shmget(k, 0, 0) },
                -1,
                "a refused create made key {k:#x}"
            );
        }
        // A ring with no endpoint has nothing to unlink on drop.
        let unlink = base.clone().unlink_on_drop(true);
        conflict(
            "spsc::create_ring",
            spsc::create_ring(&name, &unlink),
            &["`create_ring`", "unlink_on_drop"],
        );
        conflict(
            "mpmc::create_ring_sysv",
            mpmc::create_ring_sysv(key, &unlink),
            &["`create_ring_sysv`", "unlink_on_drop"],
        );
        assert!(!std::path::Path::new(&shm_path(&name)).exists());
        // What agrees is accepted: the same key, a memfd backing for a memfd.
        drop(spsc::Producer::create_sysv(key, &sysv.clone().unlink_on_drop(true)).unwrap());
        drop(mpmc::Producer::create_memfd(&memfd).unwrap());
        drop(spsc::channel(&base).unwrap());
    }
}
