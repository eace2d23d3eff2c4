//! Dead peers, proven dead by their OFD locks: what the survivors see after a
//! SIGKILL at a chosen step of the protocol.
//!
//! Each test forks a child that attaches, does one step (claims a record and holds
//! it, reads part of a message, ...), says so through a [`Gate`], and waits to be
//! killed. The parent SIGKILLs it and checks that the live endpoints go on: dead
//! peers become `Disconnected` within the liveness bound, cells a dead endpoint held
//! are recovered, a cut message is `Truncated`, a replacement can attach. And the
//! converse: a peer that is stopped (SIGSTOP), not dead, is waited for, however long.

mod common;

use std::time::{Duration, Instant};

use common::{seg_name, Gate, Procs, SegGuard};
use nix::sys::signal::{kill, Signal};
use shmlane::{
    mpmc, spsc, RecvError, RecvTimeoutError, RingOptions, SendTimeoutError, TrySendError,
};

const DEADLINE: Duration = Duration::from_secs(30);
/// The bound on noticing a dead peer, for a parked waiter.
const NOTICE: Duration = Duration::from_millis(100);

/// Blocks the child until it is killed.
fn hold() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// How long `f` (a blocking call that ends when the peer is seen dead) takes after
/// `kill_at`, which another thread SIGKILLs the child at.
fn time_to_notice<T>(procs: &mut Procs, child: usize, f: impl FnOnce() -> T) -> (T, Duration) {
    let pid = procs.pid(child);
    // Let the waiter park first: the bound is for a waiter that sleeps.
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let at = Instant::now();
        kill(pid, Signal::SIGKILL).expect("kill");
        at
    });
    let r = f();
    let noticed = Instant::now();
    let at = killer.join().expect("killer");
    procs.kill(child);
    (r, noticed.saturating_duration_since(at))
}

#[test]
fn spsc_parked_consumer_sees_a_killed_producer_within_the_bound() {
    let name = seg_name("crash-spsc-p");
    let _guard = SegGuard::new(&name);
    let mut rx = spsc::Consumer::create(&name, &RingOptions::new(4096)).unwrap();
    let mut times = Vec::new();
    for round in 0..5 {
        let mut procs = Procs::new("crash-spsc-p", DEADLINE);
        let ready = Gate::new();
        let n = name.clone();
        let g = &ready;
        let child = procs.spawn("producer", move || {
            let mut tx = spsc::Producer::open(&n).map_err(|e| e.to_string())?;
            tx.send(b"before").map_err(|e| e.to_string())?;
            g.open();
            hold()
        });
        assert!(ready.wait(DEADLINE), "the producer never got ready");
        let mut buf = Vec::new();
        assert_eq!(rx.recv(&mut buf).unwrap(), 6, "round {round}");
        let (r, took) = time_to_notice(&mut procs, child, || rx.recv(&mut buf));
        assert!(
            matches!(r, Err(RecvError::Disconnected)),
            "round {round}: {r:?}"
        );
        times.push(took);
    }
    times.sort();
    eprintln!("SPSC consumer noticed a killed producer after {times:?}");
    assert!(
        times[times.len() / 2] <= NOTICE,
        "median time to notice {:?} > {NOTICE:?}: {times:?}",
        times[times.len() / 2]
    );
    assert!(times.iter().all(|t| *t < 4 * NOTICE), "{times:?}");
}

#[test]
fn spsc_blocked_producer_sees_a_killed_consumer_and_a_replacement_attaches() {
    let name = seg_name("crash-spsc-c");
    let _guard = SegGuard::new(&name);
    let mut tx = spsc::Producer::create(&name, &RingOptions::new(4096)).unwrap();
    let mut procs = Procs::new("crash-spsc-c", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let child = procs.spawn("consumer", move || {
        let mut rx = spsc::Consumer::open(&n).map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        rx.recv(&mut buf).map_err(|e| e.to_string())?;
        g.open();
        hold()
    });
    tx.send(b"first").unwrap();
    assert!(ready.wait(DEADLINE));
    // Fill the ring, then block on it.
    while tx.try_send(&[7; 500]).is_ok() {}
    let (r, took) = time_to_notice(&mut procs, child, || {
        tx.send_timeout(&[7; 500], Duration::from_secs(10))
    });
    assert!(matches!(r, Err(SendTimeoutError::Disconnected)), "{r:?}");
    eprintln!("SPSC producer noticed a killed consumer after {took:?}");
    assert!(took < 4 * NOTICE, "{took:?}");
    // A new consumer takes the dead one's slot and reads on from where it stopped
    // (the record it had received is not read again).
    let mut rx = spsc::Consumer::open(&name).expect("a replacement consumer attaches");
    let mut buf = Vec::new();
    assert_eq!(rx.recv(&mut buf).unwrap(), 500);
    assert_eq!(buf, [7; 500]);
}

#[test]
fn spsc_killed_producer_mid_message_is_truncated_and_replaced() {
    let name = seg_name("crash-spsc-stream");
    let _guard = SegGuard::new(&name);
    let mut rx = spsc::Consumer::create(&name, &RingOptions::new(4096)).unwrap();
    let mut procs = Procs::new("crash-spsc-stream", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let child = procs.spawn("producer", move || {
        use std::io::Write;
        let mut tx = spsc::Producer::open(&n).map_err(|e| e.to_string())?;
        let mut w = tx.stream(100_000).map_err(|e| e.to_string())?;
        // More than one fragment (1 KiB each here), so the message has begun.
        w.write_all(&[1; 2500]).map_err(|e| e.to_string())?;
        w.flush().map_err(|e| e.to_string())?;
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    let mut buf = Vec::new();
    let (r, _) = time_to_notice(&mut procs, child, || rx.recv(&mut buf));
    assert!(matches!(r, Err(RecvError::Truncated)), "{r:?}");
    let mut tx = spsc::Producer::open(&name).expect("a replacement producer attaches");
    tx.send(b"next").unwrap();
    assert_eq!(rx.recv(&mut buf).unwrap(), 4);
    assert_eq!(buf, b"next");
}

/// An MPMC ring of 8 cells of 64 bytes, with room for 4 endpoints.
fn small_mpmc(name: &str) -> RingOptions {
    let _ = name;
    RingOptions::new(512).cell_size(64).max_endpoints(4)
}

#[test]
fn mpmc_producer_killed_holding_a_claim_is_padded_over() {
    let name = seg_name("crash-mpmc-claim");
    let _guard = SegGuard::new(&name);
    let mut rx = mpmc::Consumer::create(&name, &small_mpmc(&name)).unwrap();
    let mut tx = mpmc::Producer::open(&name).unwrap();
    let mut procs = Procs::new("crash-mpmc-claim", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let child = procs.spawn("producer", move || {
        let mut p = mpmc::Producer::open(&n).map_err(|e| e.to_string())?;
        let mut grant = p.reserve(100).map_err(|e| e.to_string())?;
        grant[..4].copy_from_slice(b"torn");
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    // Claimed after the dead one's record: held up behind it until it is recovered.
    tx.send(b"after").unwrap();
    let mut buf = Vec::new();
    assert!(matches!(
        rx.recv_timeout(&mut buf, Duration::from_millis(200)),
        Err(RecvTimeoutError::Timeout)
    ));
    let (r, took) = time_to_notice(&mut procs, child, || rx.recv(&mut buf));
    assert_eq!(r.unwrap(), 5);
    assert_eq!(buf, b"after", "the dead producer's cells were skipped");
    eprintln!("MPMC consumer recovered a dead producer's claim after {took:?}");
    assert!(took < 4 * NOTICE, "{took:?}");
    // Every cell is usable again: fill the ring and drain it.
    for round in 0..3 {
        for i in 0..8u8 {
            tx.send(&[i; 60]).unwrap();
        }
        for i in 0..8u8 {
            assert_eq!(rx.recv(&mut buf).unwrap(), 60, "round {round}");
            assert_eq!(buf, [i; 60]);
        }
    }
}

#[test]
fn mpmc_consumer_killed_holding_a_record_releases_it() {
    let name = seg_name("crash-mpmc-take");
    let _guard = SegGuard::new(&name);
    let mut tx = mpmc::Producer::create(&name, &small_mpmc(&name)).unwrap();
    let mut rx = mpmc::Consumer::open(&name).unwrap();
    let mut procs = Procs::new("crash-mpmc-take", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    tx.send(&[9; 200]).unwrap(); // 4 cells
    let child = procs.spawn("consumer", move || {
        let mut c = mpmc::Consumer::open(&n).map_err(|e| e.to_string())?;
        let grant = c.recv_ref().map_err(|e| e.to_string())?;
        assert_eq!(grant.len(), 200);
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    // The ring has 4 free cells; the dead consumer holds the other 4.
    tx.send(&[1; 200]).unwrap();
    let (r, took) = time_to_notice(&mut procs, child, || {
        tx.send_timeout(&[2; 200], Duration::from_secs(10))
    });
    r.expect("the dead consumer's cells were released");
    eprintln!("MPMC producer recovered a dead consumer's cells after {took:?}");
    let mut buf = Vec::new();
    assert_eq!(rx.recv(&mut buf).unwrap(), 200);
    assert_eq!(
        buf, [1; 200],
        "the record the dead consumer held is not delivered again"
    );
    assert_eq!(rx.recv(&mut buf).unwrap(), 200);
    assert_eq!(buf, [2; 200]);
}

#[test]
fn mpmc_writer_killed_mid_message_is_truncated_for_its_reader() {
    let name = seg_name("crash-mpmc-writer");
    let _guard = SegGuard::new(&name);
    let mut rx = mpmc::Consumer::create(&name, &small_mpmc(&name)).unwrap();
    let mut tx = mpmc::Producer::open(&name).unwrap();
    let mut procs = Procs::new("crash-mpmc-writer", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let child = procs.spawn("producer", move || {
        use std::io::Write;
        let mut p = mpmc::Producer::open(&n).map_err(|e| e.to_string())?;
        let mut w = p.stream(10_000).map_err(|e| e.to_string())?;
        w.write_all(&[3; 300]).map_err(|e| e.to_string())?;
        w.flush().map_err(|e| e.to_string())?;
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    let mut buf = Vec::new();
    let (r, took) = time_to_notice(&mut procs, child, || rx.recv(&mut buf));
    assert!(matches!(r, Err(RecvError::Truncated)), "{r:?}");
    eprintln!("MPMC reader saw its dead writer's message cut after {took:?}");
    // The writer-stream slot is free again: another producer's message goes through.
    tx.send_timeout(b"next", Duration::from_secs(5)).unwrap();
    assert_eq!(rx.recv(&mut buf).unwrap(), 4);
    assert_eq!(buf, b"next");
}

#[test]
fn mpmc_reader_killed_mid_message_frees_the_slot_and_the_rest_is_skipped() {
    let name = seg_name("crash-mpmc-reader");
    let _guard = SegGuard::new(&name);
    let mut tx = mpmc::Producer::create(&name, &small_mpmc(&name)).unwrap();
    let mut rx = mpmc::Consumer::open(&name).unwrap();
    let mut procs = Procs::new("crash-mpmc-reader", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let child = procs.spawn("consumer", move || {
        use std::io::Read;
        let mut c = mpmc::Consumer::open(&n).map_err(|e| e.to_string())?;
        let mut r = c.recv_stream().map_err(|e| e.to_string())?;
        let mut part = [0; 100];
        r.read_exact(&mut part).map_err(|e| e.to_string())?;
        g.open();
        hold()
    });
    // A 2000-byte message through a 512-byte ring: the writer blocks on the reader.
    let writer = std::thread::spawn(move || {
        let r = tx.send_timeout(&[5; 2000], Duration::from_secs(10));
        let next = tx.send_timeout(b"next", Duration::from_secs(10));
        (r, next)
    });
    assert!(ready.wait(DEADLINE));
    let mut buf = Vec::new();
    // We wait for the reader slot; the dead reader's slot is freed, the rest of its
    // message skipped, and the next message is ours.
    let (r, took) = time_to_notice(&mut procs, child, || rx.recv(&mut buf));
    assert_eq!(r.unwrap(), 4, "{buf:?}");
    assert_eq!(buf, b"next");
    eprintln!("MPMC consumer went past a dead reader after {took:?}");
    let (a, b) = writer.join().unwrap();
    a.unwrap();
    b.unwrap();
}

#[test]
fn mpmc_every_producer_killed_is_disconnected_and_every_consumer_killed_too() {
    let name = seg_name("crash-mpmc-all");
    let _guard = SegGuard::new(&name);
    mpmc::create_ring(&name, &small_mpmc(&name)).unwrap();
    let mut procs = Procs::new("crash-mpmc-all", DEADLINE);
    let mut children = Vec::new();
    for _ in 0..2 {
        let ready = Gate::new();
        let (n, g) = (name.clone(), &ready);
        children.push(procs.spawn("producer", move || {
            let mut p = mpmc::Producer::open(&n).map_err(|e| e.to_string())?;
            p.send(b"x").map_err(|e| e.to_string())?;
            g.open();
            hold()
        }));
        assert!(ready.wait(DEADLINE));
    }
    let mut rx = mpmc::Consumer::open(&name).unwrap();
    let mut buf = Vec::new();
    rx.recv(&mut buf).unwrap();
    rx.recv(&mut buf).unwrap();
    procs.kill(children[0]);
    let (r, took) = time_to_notice(&mut procs, children[1], || rx.recv(&mut buf));
    assert!(matches!(r, Err(RecvError::Disconnected)), "{r:?}");
    eprintln!("MPMC consumer saw every producer dead after {took:?}");
    assert!(took < 4 * NOTICE, "{took:?}");
    drop(rx);

    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let c = procs.spawn("consumer", move || {
        let _c = mpmc::Consumer::open(&n).map_err(|e| e.to_string())?;
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    let mut tx = mpmc::Producer::open(&name).unwrap();
    while tx.try_send(&[1; 60]).is_ok() {}
    let (r, took) = time_to_notice(&mut procs, c, || {
        tx.send_timeout(&[1; 60], Duration::from_secs(10))
    });
    assert!(matches!(r, Err(SendTimeoutError::Disconnected)), "{r:?}");
    eprintln!("MPMC producer saw every consumer dead after {took:?}");
    // try_send also notices, without waiting.
    assert!(matches!(tx.try_send(b"z"), Err(TrySendError::Disconnected)));
}

#[test]
fn a_stopped_producer_is_waited_for_not_taken_for_dead() {
    let name = seg_name("crash-stopped");
    let _guard = SegGuard::new(&name);
    let mut rx = mpmc::Consumer::create(&name, &small_mpmc(&name)).unwrap();
    let mut procs = Procs::new("crash-stopped", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let child = procs.spawn("producer", move || {
        let mut p = mpmc::Producer::open(&n).map_err(|e| e.to_string())?;
        let mut grant = p.reserve(5).map_err(|e| e.to_string())?;
        grant.copy_from_slice(b"slow!");
        g.open();
        // Stop ourselves between claim and publish; the parent continues us.
        kill(nix::unistd::getpid(), Signal::SIGSTOP).map_err(|e| e.to_string())?;
        grant.commit();
        Ok("published".into())
    });
    assert!(ready.wait(DEADLINE));
    let mut buf = Vec::new();
    // Many liveness checks pass while it is stopped: it is alive, so we wait.
    match rx.recv_timeout(&mut buf, Duration::from_millis(800)) {
        Err(RecvTimeoutError::Timeout) => {}
        other => panic!("a stopped producer was not waited for: {other:?}"),
    }
    kill(procs.pid(child), Signal::SIGCONT).unwrap();
    assert_eq!(
        rx.recv_timeout(&mut buf, Duration::from_secs(10)).unwrap(),
        5
    );
    assert_eq!(buf, b"slow!");
    let done = procs.wait(child);
    assert!(done.ok(), "{done}");
}

#[test]
fn a_forked_child_does_not_keep_its_parents_endpoint_alive() {
    let name = seg_name("crash-fork");
    let _guard = SegGuard::new(&name);
    let mut rx = spsc::Consumer::create(&name, &RingOptions::new(4096)).unwrap();
    let mut procs = Procs::new("crash-fork", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let parent = procs.spawn("producer that forks", move || {
        let _tx = spsc::Producer::open(&n).map_err(|e| e.to_string())?;
        // A grandchild that inherits our descriptors and outlives us.
        // SAFETY: the grandchild only sleeps and exits.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                // Not the test harness's output: it would wait for us.
                // SAFETY: closing our copies of stdout and stderr.
                unsafe {
                    libc::close(1);
                    libc::close(2);
                }
                std::thread::sleep(Duration::from_secs(3));
                // SAFETY: ends the grandchild at once.
                unsafe { libc::_exit(0) }
            }
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    let mut buf = Vec::new();
    let (r, took) = time_to_notice(&mut procs, parent, || rx.recv(&mut buf));
    assert!(matches!(r, Err(RecvError::Disconnected)), "{r:?}");
    assert!(
        took < Duration::from_secs(1),
        "the grandchild kept it alive: {took:?}"
    );
}

// ---------------------------------------------------------------------------------
// Stale segments
// ---------------------------------------------------------------------------------

/// A segment file as a creator leaves it when it dies while initialising: the right
/// size, the magic, state INIT (1), nobody holding its init lock.
fn half_made(name: &str) {
    let path = common::shm_path(name);
    std::fs::write(&path, vec![0u8; 8192]).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    common::poke(name, 0, b"SHMLANE\0");
    common::poke(name, common::offsets::STATE, &1u32.to_le_bytes());
}

#[test]
fn a_segment_whose_creator_died_before_ready_is_abandoned_and_taken_over() {
    let name = seg_name("crash-abandoned");
    let _guard = SegGuard::new(&name);
    half_made(&name);
    let started = Instant::now();
    match spsc::Consumer::open(&name) {
        Err(shmlane::Error::Abandoned { state: 1, .. }) => {}
        other => panic!("open of a half-made segment: {other:?}"),
    }
    // Told well before the 2 s a live creator gets.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let mut rx = spsc::Consumer::create_or_open(&name, &RingOptions::new(4096))
        .expect("create_or_open replaces it");
    let mut tx = spsc::Producer::open(&name).unwrap();
    tx.send(b"fresh").unwrap();
    let mut buf = Vec::new();
    assert_eq!(rx.recv(&mut buf).unwrap(), 5);
}

#[test]
fn a_segment_whose_creator_lives_is_not_taken_over() {
    let name = seg_name("crash-creating");
    let _guard = SegGuard::new(&name);
    half_made(&name);
    // A "creator" that holds the init lock (the state word's byte) and lives.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(common::shm_path(&name))
        .unwrap();
    let mut procs = Procs::new("crash-creating", DEADLINE);
    let ready = Gate::new();
    let g = &ready;
    let creator = procs.spawn("creator", move || {
        use std::os::fd::AsRawFd;
        // SAFETY: flock is plain data.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = common::offsets::STATE as libc::off_t;
        fl.l_len = 1;
        // Our own open file description: open the file again.
        let own = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .map_err(|e| e.to_string())?;
        // SAFETY: F_OFD_SETLK only reads `fl`, which lives across the call; `own` is open.
        if unsafe { libc::fcntl(own.as_raw_fd(), libc::F_OFD_SETLK, &fl) } != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    match spsc::Consumer::create_or_open(&name, &RingOptions::new(4096)) {
        Err(shmlane::Error::NotReady { .. }) => {}
        other => panic!("a segment being made was taken over: {other:?}"),
    }
    procs.kill(creator);
    assert!(spsc::Consumer::create_or_open(&name, &RingOptions::new(4096)).is_ok());
}

#[test]
fn a_ring_whose_endpoints_all_died_is_reused_or_removed_as_stale() {
    let name = seg_name("crash-stale");
    let _guard = SegGuard::new(&name);
    let kept = seg_name("crash-kept");
    let _kept_guard = SegGuard::new(&kept);
    let mut procs = Procs::new("crash-stale", DEADLINE);
    for n in [&name, &kept] {
        let ready = Gate::new();
        let g = &ready;
        let child = procs.spawn("creator and endpoints", move || {
            let mut tx = mpmc::Producer::create(n, &small_mpmc(n)).map_err(|e| e.to_string())?;
            let _rx = mpmc::Consumer::open(n).map_err(|e| e.to_string())?;
            tx.send(b"left behind").map_err(|e| e.to_string())?;
            g.open();
            hold()
        });
        assert!(ready.wait(DEADLINE));
        procs.kill(child);
    }
    // create_or_open takes over a ready ring whose endpoints are all dead as it is:
    // their slots are recovered, and the message they left is still delivered.
    let mut rx = mpmc::Consumer::create_or_open(&kept, &small_mpmc(&kept)).unwrap();
    let mut buf = Vec::new();
    assert_eq!(
        rx.recv_timeout(&mut buf, Duration::from_secs(5)).unwrap(),
        11
    );
    // remove_stale removes the other (every endpoint dead, creator dead), and keeps
    // the one we now use.
    let removed = shmlane::inspect::remove_stale().unwrap().removed;
    assert!(removed.contains(&name), "{removed:?}");
    assert!(!removed.contains(&kept), "{removed:?}");
    assert!(!std::path::Path::new(&common::shm_path(&name)).exists());
    assert!(std::path::Path::new(&common::shm_path(&kept)).exists());
}

// ---------------------------------------------------------------------------------
// Other backings
// ---------------------------------------------------------------------------------

/// SysV has no file to lock: the pid and process start time tell. A killed MPMC
/// producer holding a claim is recovered there too.
#[test]
fn sysv_rings_tell_the_dead_by_pid_and_start_time() {
    let key = common::backings::sysv_key("crash-sysv");
    let _ = shmlane::remove_sysv(key);
    let opts = small_mpmc("").backing(shmlane::Backing::SysV { key });
    let mut rx = mpmc::Consumer::create_sysv(key, &opts).unwrap();
    struct Remove(i32);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = shmlane::remove_sysv(self.0);
        }
    }
    let _remove = Remove(key);
    let mut procs = Procs::new("crash-sysv", DEADLINE);
    let ready = Gate::new();
    let g = &ready;
    let child = procs.spawn("producer", move || {
        let mut p = mpmc::Producer::open_sysv(key).map_err(|e| e.to_string())?;
        p.send(b"one").map_err(|e| e.to_string())?;
        let _grant = p.reserve(10).map_err(|e| e.to_string())?;
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    let mut buf = Vec::new();
    assert_eq!(rx.recv(&mut buf).unwrap(), 3);
    let (r, took) = time_to_notice(&mut procs, child, || rx.recv(&mut buf));
    assert!(matches!(r, Err(RecvError::Disconnected)), "{r:?}");
    eprintln!("SysV: MPMC consumer recovered and saw its producer dead after {took:?}");
    assert!(took < 4 * NOTICE, "{took:?}");
    // The dead producer's slot is free again for a new one.
    let mut tx = mpmc::Producer::open_sysv(key).unwrap();
    tx.send(b"two").unwrap();
    assert_eq!(rx.recv(&mut buf).unwrap(), 3);
}

/// A memfd ring handed to a child (here by fork): the child's endpoint locks a file
/// description of its own, so its death is seen although the parent holds the memfd.
#[test]
fn memfd_rings_tell_the_dead_by_their_locks() {
    let (mut rx, fd) = spsc::Consumer::create_memfd(&RingOptions::new(4096)).unwrap();
    let mut procs = Procs::new("crash-memfd", DEADLINE);
    let ready = Gate::new();
    let g = &ready;
    let child = procs.spawn("producer", move || {
        let mut tx = spsc::Producer::open_fd(fd).map_err(|e| e.to_string())?;
        tx.send(b"hi").map_err(|e| e.to_string())?;
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    let mut buf = Vec::new();
    assert_eq!(rx.recv(&mut buf).unwrap(), 2);
    let (r, took) = time_to_notice(&mut procs, child, || rx.recv(&mut buf));
    assert!(matches!(r, Err(RecvError::Disconnected)), "{r:?}");
    assert!(took < 4 * NOTICE, "{took:?}");
}

/// An SPSC consumer killed while it reads a message in place: the next consumer does
/// not get that message again (at most once, as MPMC).
#[test]
fn spsc_consumer_killed_holding_a_grant_does_not_get_it_redelivered() {
    let name = seg_name("crash-spsc-grant");
    let _guard = SegGuard::new(&name);
    let mut tx = spsc::Producer::create(&name, &RingOptions::new(4096)).unwrap();
    for m in [&b"held"[..], b"next"] {
        tx.send(m).unwrap();
    }
    let mut procs = Procs::new("crash-spsc-grant", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let child = procs.spawn("consumer", move || {
        let mut rx = spsc::Consumer::open(&n).map_err(|e| e.to_string())?;
        let grant = rx.recv_ref().map_err(|e| e.to_string())?;
        assert_eq!(&grant[..], b"held");
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    procs.kill(child);
    let mut rx = spsc::Consumer::open(&name).expect("a replacement consumer attaches");
    let mut buf = Vec::new();
    assert_eq!(rx.recv(&mut buf).unwrap(), 4);
    assert_eq!(buf, b"next");
}

/// A producer killed between publishing a record and storing `tail` leaves `tail` one
/// record behind; the consumer reads that record and publishes `head` past `tail`.
/// The next producer (and consumer) must take that for what it is, not corruption.
/// (Found by the crash-injection long run.)
#[test]
fn spsc_head_one_record_past_a_dead_producers_tail_is_not_corruption() {
    let name = seg_name("crash-spsc-tail");
    let _guard = SegGuard::new(&name);
    spsc::create_ring(&name, &RingOptions::new(4096)).unwrap();
    let mut procs = Procs::new("crash-spsc-tail", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let child = procs.spawn("producer", move || {
        let mut tx = spsc::Producer::open(&n).map_err(|e| e.to_string())?;
        tx.send(b"first").map_err(|e| e.to_string())?;
        tx.send(b"second").map_err(|e| e.to_string())?;
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    procs.kill(child);
    // As if it had died before storing `tail` for its second record (16 bytes).
    let tail = common::peek_u64(&name, common::offsets::TAIL);
    common::poke(&name, common::offsets::TAIL, &(tail - 16).to_le_bytes());
    {
        let mut rx = spsc::Consumer::open(&name).unwrap();
        let mut buf = Vec::new();
        assert_eq!(rx.recv(&mut buf).unwrap(), 5);
        assert_eq!(rx.recv(&mut buf).unwrap(), 6);
        assert_eq!(buf, b"second");
    } // publishes head: one record past tail
    assert!(common::peek_u64(&name, common::offsets::HEAD) > tail - 16);
    let mut rx = spsc::Consumer::open(&name).expect("a consumer attaches");
    let mut tx = spsc::Producer::open(&name).expect("a producer attaches");
    tx.send(b"third").unwrap();
    let mut buf = Vec::new();
    assert_eq!(rx.recv(&mut buf).unwrap(), 5);
    assert_eq!(buf, b"third");
    let info = shmlane::inspect::inspect(&name).unwrap();
    assert!(info.problems.is_empty(), "{:?}", info.problems);
}

/// A message an SPSC consumer was refused (`TooLarge`: it stays in the ring) is not
/// skipped by the recovery after the next consumer dies. (Before: the refusing
/// consumer's read-to note stood past the message after its clean drop, and the
/// recovery of the next consumer, killed before it read anything, published it as
/// `head`: the message nobody received was lost.)
#[test]
fn spsc_message_refused_then_next_consumer_killed_is_still_delivered() {
    let name = seg_name("crash-spsc-refused");
    let _guard = SegGuard::new(&name);
    let mut tx = spsc::Producer::create(&name, &RingOptions::new(4096)).unwrap();
    tx.send(&[7; 300]).unwrap();
    tx.send(b"next").unwrap();
    let mut buf = Vec::new();
    {
        let mut rx = spsc::Consumer::open(&name).unwrap();
        rx.set_max_message(100);
        let r = rx.recv(&mut buf);
        assert!(
            matches!(r, Err(RecvError::TooLarge { len: 300, .. })),
            "{r:?}"
        );
    }
    let mut procs = Procs::new("crash-spsc-refused", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let child = procs.spawn("consumer", move || {
        let _rx = spsc::Consumer::open(&n).map_err(|e| e.to_string())?;
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    procs.kill(child);
    // Attaching recovers the dead consumer.
    let mut rx = spsc::Consumer::open(&name).unwrap();
    assert_eq!(
        rx.recv(&mut buf).unwrap(),
        300,
        "the refused message was skipped"
    );
    assert_eq!(buf, [7; 300]);
    assert_eq!(rx.recv(&mut buf).unwrap(), 4);
    assert_eq!(buf, b"next");
}

/// As above, with the refusing consumer itself killed (no clean drop): the message it
/// was refused is still delivered to the next.
#[test]
fn spsc_consumer_killed_after_a_refused_message_does_not_lose_it() {
    let name = seg_name("crash-spsc-refused-kill");
    let _guard = SegGuard::new(&name);
    let mut tx = spsc::Producer::create(&name, &RingOptions::new(4096)).unwrap();
    tx.send(&[7; 300]).unwrap();
    tx.send(b"next").unwrap();
    let mut procs = Procs::new("crash-spsc-refused-kill", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let child = procs.spawn("consumer", move || {
        let mut rx = spsc::Consumer::open(&n).map_err(|e| e.to_string())?;
        rx.set_max_message(100);
        let mut buf = Vec::new();
        match rx.recv(&mut buf) {
            Err(RecvError::TooLarge { len: 300, .. }) => {}
            other => return Err(format!("{other:?}")),
        }
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    procs.kill(child);
    let mut rx = spsc::Consumer::open(&name).unwrap();
    let mut buf = Vec::new();
    assert_eq!(
        rx.recv(&mut buf).unwrap(),
        300,
        "the refused message was skipped"
    );
    assert_eq!(rx.recv(&mut buf).unwrap(), 4);
}
