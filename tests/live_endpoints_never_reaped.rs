//! Claim: **a live endpoint, however slow or stopped, is never taken for dead**, where the
//! ways of telling a death differ: an endpoint that holds no lock (its liveness is
//! its pid) beside one that does, peers in another pid namespace or hidden by
//! `hidepid`, slots held by a recoverer, a peer stopped by SIGSTOP, and the copies of
//! endpoints a `fork()`ed child holds and drops.
//!
//! Each top-level test failed on the code before the fix named in its doc.
//! [`stopped_and_forked`]: a stopped peer is waited for; a forked child does not keep its
//! parent's endpoint alive.

mod common;

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::backings::{sysv_key, SysVGuard};
use common::{seg_name, Gate, Procs, SegGuard};
use shmlane::{mpmc, spsc, OpenOptions, RecvError, RecvTimeoutError, RingOptions, SendError};

const DEADLINE: Duration = Duration::from_secs(30);

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Forks a child that drops its copies of the endpoints `drop_in_child` reads, then
/// exits (as a worker forked from a server does when it returns), and waits for it.
/// The endpoints stay the parent's.
fn fork_and_drop_copies(drop_in_child: impl FnOnce()) {
    // SAFETY: the child runs only `drop_in_child` and `_exit`.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            drop_in_child();
            // SAFETY: ends the child at once, without unwinding into the harness.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            let status = nix::sys::wait::waitpid(child, None).expect("waitpid");
            assert!(
                matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)),
                "{status:?}"
            );
        }
    }
}

/// The child of a `fork()` that drops its copies of its parent's endpoints writes
/// nothing to the segment: the parent's producer and consumer go on. (Before: the
/// child's drops marked the parent's slots detached and stored its stale `head`; the
/// parent's `send` then returned `Disconnected`.)
#[test]
fn spsc_endpoints_dropped_by_a_forked_child_stay_attached_in_the_parent() {
    let name = seg_name("live-fork-spsc");
    let _guard = SegGuard::new(&name);
    let mut tx = spsc::Producer::create(&name, &RingOptions::new(4096)).unwrap();
    let mut rx = spsc::Consumer::open(&name).unwrap();
    for i in 0..4u32 {
        tx.send(&i.to_le_bytes()).unwrap();
    }
    let mut buf = Vec::new();
    assert_eq!(rx.recv(&mut buf).unwrap(), 4);
    assert_eq!(buf, 0u32.to_le_bytes());
    let (txr, rxr) = (&tx, &rx);
    fork_and_drop_copies(move || {
        // SAFETY: the child's own copies (fork copied the parent's memory); the
        // originals are never used in the child again.
        let (t, r) = unsafe { (std::ptr::read(txr), std::ptr::read(rxr)) };
        drop(r);
        drop(t);
    });
    assert!(!tx.is_disconnected(), "the producer sees its consumer gone");
    assert!(!rx.is_disconnected(), "the consumer sees its producer gone");
    tx.send(&4u32.to_le_bytes())
        .expect("send after the child's drop");
    // Every message once, in order: the child did not rewind `head`.
    for i in 1..5u32 {
        assert_eq!(rx.recv(&mut buf).unwrap(), 4);
        assert_eq!(buf, i.to_le_bytes(), "message {i}");
    }
    assert!(matches!(
        rx.try_recv(&mut buf),
        Err(shmlane::TryRecvError::Empty)
    ));
}

/// As above, for MPMC: the child's drops neither detach the parent's slots nor
/// uncount them, so the parent's endpoints do not see "every peer gone".
#[test]
fn mpmc_endpoints_dropped_by_a_forked_child_stay_attached_in_the_parent() {
    let name = seg_name("live-fork-mpmc");
    let _guard = SegGuard::new(&name);
    let opts = RingOptions::new(4096).cell_size(64).max_endpoints(4);
    let mut tx = mpmc::Producer::create(&name, &opts).unwrap();
    let mut rx = mpmc::Consumer::open(&name).unwrap();
    tx.send(b"before").unwrap();
    let (txr, rxr) = (&tx, &rx);
    fork_and_drop_copies(move || {
        // SAFETY: as in the SPSC test.
        let (t, r) = unsafe { (std::ptr::read(txr), std::ptr::read(rxr)) };
        drop(r);
        drop(t);
    });
    let mut buf = Vec::new();
    assert_eq!(rx.recv(&mut buf).unwrap(), 6);
    tx.send(b"after").expect("send after the child's drop");
    assert_eq!(rx.recv(&mut buf).unwrap(), 5);
    assert_eq!(buf, b"after");
    // A second producer and consumer can still attach (the parent's slots are held,
    // not free for the taking twice).
    let info = shmlane::inspect::inspect(&name).unwrap();
    let attached = info
        .endpoints
        .iter()
        .filter(|e| e.state == shmlane::inspect::EndpointState::Attached)
        .count();
    assert_eq!(attached, 2, "{:?}", info.endpoints);
    drop(tx);
    assert!(matches!(rx.recv(&mut buf), Err(RecvError::Disconnected)));
}

/// An endpoint that cannot open a description of its own of the segment file (here:
/// a memfd of root's, opened by a child that became uid 1001, which may not reopen it
/// through `/proc/self/fd`) tells its life by its pid, beside a producer that locks.
/// The producer must judge it by its pid, not take its free lock for a death. (Before:
/// the producer recovered the live consumer's slot and reported `Disconnected`.)
#[test]
fn a_consumer_without_a_lock_beside_a_producer_with_one_is_never_reaped() {
    if !is_root() {
        eprintln!("skipped: needs root to switch the consumer to another uid");
        return;
    }
    const MESSAGES: u32 = 40;
    let (mut tx, fd) = spsc::Producer::create_memfd(&RingOptions::new(4096)).unwrap();
    let mut procs = Procs::new("live-mixed", DEADLINE);
    let ready = Gate::new();
    let g = &ready;
    let raw = fd.as_raw_fd();
    let child = procs.spawn("consumer uid 1001", move || {
        nix::unistd::setgid(nix::unistd::Gid::from_raw(1001)).map_err(|e| e.to_string())?;
        nix::unistd::setuid(nix::unistd::Uid::from_raw(1001)).map_err(|e| e.to_string())?;
        // Our own description of root's 0600 memfd cannot be had.
        if std::fs::File::open(format!("/proc/self/fd/{raw}")).is_ok() {
            return Err("uid 1001 reopened root's memfd: the test shows nothing".into());
        }
        // SAFETY: the child's copy of the parent's descriptor, owned from here on.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        let mut rx = spsc::Consumer::open_fd_with(fd, &OpenOptions::new().foreign_owner(true))
            .map_err(|e| e.to_string())?;
        g.open();
        let mut buf = Vec::new();
        for i in 0..MESSAGES {
            // Slowly: the producer fills the ring and waits, checking our life.
            std::thread::sleep(Duration::from_millis(20));
            rx.recv(&mut buf).map_err(|e| format!("recv {i}: {e}"))?;
            if buf.len() != 1024 || buf.iter().any(|&b| b != i as u8) {
                return Err(format!("message {i} is not ours"));
            }
        }
        Ok(format!("{MESSAGES} messages"))
    });
    assert!(ready.wait(DEADLINE), "the consumer did not attach");
    for i in 0..MESSAGES {
        let msg = vec![i as u8; 1024];
        tx.send(&msg)
            .unwrap_or_else(|e| panic!("send {i} with a live consumer: {e}"));
    }
    assert_eq!(procs.wait_ok(child), format!("{MESSAGES} messages"));
    // And its death is still seen, by its pid: the next sends end in Disconnected.
    let until = Instant::now() + Duration::from_secs(10);
    let r = loop {
        match tx.send(&[0; 1024]) {
            Ok(()) if Instant::now() < until => continue,
            other => break other,
        }
    };
    assert!(matches!(r, Err(SendError::Disconnected)), "{r:?}");
}

/// A SysV ring (pid liveness) with a producer in another pid namespace: its pid means
/// nothing here (pid 1 there is another process here), so it cannot be judged and is
/// alive. (Before: the consumer read `/proc/<its pid>` here, found another process or
/// none, and reaped the live producer: `Disconnected`.)
#[test]
fn a_sysv_peer_in_another_pid_namespace_is_never_reaped() {
    if !is_root() {
        eprintln!("skipped: needs root to make a pid namespace");
        return;
    }
    let key = sysv_key("live-pidns");
    let _guard = SysVGuard::new(key);
    let opts = RingOptions::new(4096).backing(shmlane::Backing::SysV { key });
    let mut rx = spsc::Consumer::create_sysv(key, &opts).unwrap();
    let mut procs = Procs::new("live-pidns", DEADLINE);
    let ready = Gate::new();
    let done = Gate::new();
    let (g, d) = (&ready, &done);
    let child = procs.spawn("producer in a new pid namespace", move || {
        // SAFETY: unshare takes flags only.
        if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
            return Err(format!(
                "unshare(CLONE_NEWPID): {}",
                std::io::Error::last_os_error()
            ));
        }
        // Our next child is pid 1 of the new namespace.
        // SAFETY: the grandchild runs only the closure below and `_exit`.
        match unsafe { nix::unistd::fork() }.map_err(|e| e.to_string())? {
            nix::unistd::ForkResult::Child => {
                let code = (|| -> Result<(), String> {
                    if std::process::id() != 1 {
                        return Err(format!("pid {} in the new namespace", std::process::id()));
                    }
                    let mut tx = spsc::Producer::open_sysv(key).map_err(|e| e.to_string())?;
                    tx.send(b"from pid 1").map_err(|e| e.to_string())?;
                    g.open();
                    // Alive, and silent, until the parent has looked for a while.
                    if !d.wait(DEADLINE) {
                        return Err("not released".into());
                    }
                    tx.send(b"bye").map_err(|e| e.to_string())?;
                    Ok(())
                })();
                // SAFETY: ends the grandchild at once.
                unsafe { libc::_exit(if code.is_ok() { 0 } else { 1 }) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).map_err(|e| e.to_string())?;
                match status {
                    nix::sys::wait::WaitStatus::Exited(_, 0) => Ok("done".into()),
                    other => Err(format!("producer in the new namespace: {other:?}")),
                }
            }
        }
    });
    assert!(ready.wait(DEADLINE), "the producer did not attach");
    let mut buf = Vec::new();
    assert_eq!(rx.recv(&mut buf).unwrap(), 10);
    // Wait for messages for a while: every wait checks the producer's life.
    let until = Instant::now() + Duration::from_millis(600);
    while Instant::now() < until {
        match rx.recv_timeout(&mut buf, Duration::from_millis(50)) {
            Err(RecvTimeoutError::Timeout) => {}
            other => panic!("a live producer in another pid namespace: {other:?}"),
        }
        assert!(
            !rx.is_disconnected(),
            "the live producer was taken for dead"
        );
    }
    done.open();
    assert_eq!(rx.recv(&mut buf).unwrap(), 3);
    assert_eq!(procs.wait_ok(child), "done");
    // It detached cleanly: that is seen whatever the namespace.
    assert!(matches!(rx.recv(&mut buf), Err(RecvError::Disconnected)));
}

/// A SysV ring (pid liveness) read by a consumer that sees a `/proc` mounted
/// `hidepid=2` (here: its own mount namespace, and uid 1001): the producer's
/// `/proc/<pid>` is hidden from it, which does not make the producer dead. (Before:
/// `/proc/<pid>` not found was taken for a death, and the live producer was reaped:
/// `Disconnected`.)
#[test]
fn a_sysv_peer_hidden_by_hidepid_is_never_reaped() {
    if !is_root() {
        eprintln!("skipped: needs root to mount /proc with hidepid=2");
        return;
    }
    let key = sysv_key("live-hidepid");
    let _guard = SysVGuard::new(key);
    let opts = RingOptions::new(4096)
        .group_access(true)
        .backing(shmlane::Backing::SysV { key });
    let mut tx = spsc::Producer::create_sysv(key, &opts).unwrap();
    let mut procs = Procs::new("live-hidepid", DEADLINE);
    let ready = Gate::new();
    let done = Gate::new();
    let (g, d) = (&ready, &done);
    let me = std::process::id();
    let child = procs.spawn("consumer behind hidepid=2", move || {
        let fail = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
        // SAFETY: plain system calls with constant, NUL-terminated arguments.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(fail("unshare(CLONE_NEWNS)"));
            }
            if libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(fail("mount --make-rprivate /"));
            }
            if libc::mount(
                c"proc".as_ptr(),
                c"/proc".as_ptr(),
                c"proc".as_ptr(),
                0,
                // gid: the group exempt from hidepid (0 by default: ours).
                c"hidepid=2,gid=4242".as_ptr().cast(),
            ) != 0
            {
                return Err(fail("mount -t proc -o hidepid=2"));
            }
            if libc::setgroups(0, std::ptr::null()) != 0 || libc::setuid(1001) != 0 {
                return Err(fail("setuid(1001)"));
            }
        }
        if std::path::Path::new(&format!("/proc/{me}")).exists() {
            return Err("the producer's /proc entry is visible: the test shows nothing".into());
        }
        let mut rx = spsc::Consumer::open_sysv_with(
            key,
            &OpenOptions::new().group_access(true).foreign_owner(true),
        )
        .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        rx.recv(&mut buf).map_err(|e| format!("first recv: {e}"))?;
        g.open();
        // Wait for messages for a while: every wait checks the producer's life.
        let until = Instant::now() + Duration::from_millis(600);
        while Instant::now() < until {
            match rx.recv_timeout(&mut buf, Duration::from_millis(50)) {
                Err(RecvTimeoutError::Timeout) => {}
                other => return Err(format!("a live, hidden producer: {other:?}")),
            }
            if rx.is_disconnected() {
                return Err("the live, hidden producer was taken for dead".into());
            }
        }
        d.open();
        rx.recv(&mut buf).map_err(|e| format!("last recv: {e}"))?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    });
    tx.send(b"first").unwrap();
    for gate in [&ready, &done] {
        let until = Instant::now() + DEADLINE;
        while !gate.wait(Duration::from_millis(100)) {
            if Instant::now() < until && procs.try_wait(child).is_none() {
                continue;
            }
            let r = procs.wait(child);
            if r.report.starts_with("skipped") {
                eprintln!("{}", r.report);
                return;
            }
            panic!("the consumer: {r:?}");
        }
    }
    tx.send(b"still here").expect("send to a live consumer");
    assert_eq!(procs.wait_ok(child), "still here");
}

mod stopped_and_forked {
    //! A stopped (SIGSTOP) peer is waited for, however long; a forked child does not keep its
    //! parent's endpoint alive (its lock descriptors are let go).

    use crate::common::{check_stream, fill_stream, seg_name, Gate, Procs, SegGuard};
    use nix::sys::signal::{kill, Signal};
    use shmlane::inspect::{EndpointInfo, EndpointRole, EndpointState};
    use shmlane::{mpmc, spsc, RecvError, RecvTimeoutError, RingOptions};
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    const DEADLINE: Duration = Duration::from_secs(30);

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

    /// An MPMC ring of 8 cells of 64 bytes, with room for 4 endpoints.
    fn small_mpmc(name: &str) -> RingOptions {
        let _ = name;
        RingOptions::new(512).cell_size(64).max_endpoints(4)
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

    /// How long a stopped peer is kept stopped: 32 liveness checks (every 25 ms) of the
    /// waiter, and many park slices.
    const STOP: Duration = Duration::from_millis(800);
    /// One message through a 64 KiB ring: 64 of its fragments.
    const STREAM: u64 = 4 << 20;
    const STREAM_RING: usize = 64 << 10;
    const CHUNK: usize = 8 << 10;

    /// The endpoint of `role` in the ring's table, as `inspect` reads it (nothing
    /// attaches).
    fn slot_of(name: &str, role: EndpointRole) -> EndpointInfo {
        *shmlane::inspect::inspect(name)
            .expect("inspect")
            .endpoint(role)
            .expect("an SPSC ring has a slot for each role")
    }

    /// Waits (at most 10 s) until process `pid` is stopped (state `T` in
    /// `/proc/PID/stat`).
    fn until_stopped(pid: nix::unistd::Pid) {
        let t0 = Instant::now();
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
            // The state is the first field after the command, which ends with ')'.
            let state = stat[stat.rfind(')').expect("stat has (comm)") + 2..]
                .chars()
                .next();
            if state == Some('T') {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "process {pid} did not stop (state {state:?})"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// On a thread: once the child `pid` (the endpoint of `role` on ring `name`) has
    /// stopped itself, keeps it stopped for [`STOP`] while its peer waits, checks that
    /// its slot was left alone meanwhile (same state, pid and generation: no one took
    /// it for dead or recovered it), then continues it.
    fn hold_stopped(
        name: &str,
        role: EndpointRole,
        pid: nix::unistd::Pid,
    ) -> std::thread::JoinHandle<()> {
        let name = name.to_string();
        std::thread::spawn(move || {
            until_stopped(pid);
            let before = slot_of(&name, role);
            std::thread::sleep(STOP);
            let after = slot_of(&name, role);
            kill(pid, Signal::SIGCONT).expect("SIGCONT");
            assert_eq!(
                before.pid,
                pid.as_raw() as u32,
                "the stopped endpoint's slot: {before:?}"
            );
            assert_eq!(before.state, EndpointState::Attached, "{before:?}");
            assert_eq!(
                after, before,
                "the slot of a stopped endpoint changed while it was stopped (taken for dead?)"
            );
        })
    }

    /// SPSC: a producer stopped (SIGSTOP) in the middle of a message, for many liveness
    /// checks of the consumer reading it, is waited for: the read neither fails
    /// (`Truncated`, `Disconnected`) nor ends the message, the producer's slot is left
    /// alone, and once continued the message arrives whole, then the next.
    #[test]
    fn spsc_a_stopped_producer_mid_stream_is_waited_for_not_taken_for_dead() {
        let name = seg_name("stopped-spsc-producer");
        let _guard = SegGuard::new(&name);
        let mut rx = spsc::Consumer::create(&name, &RingOptions::new(STREAM_RING)).unwrap();
        let mut procs = Procs::new("stopped-spsc-producer", DEADLINE);
        let n = name.clone();
        let child = procs.spawn("producer", move || {
            let mut tx = spsc::Producer::open(&n).map_err(|e| e.to_string())?;
            let mut w = tx.stream(STREAM).map_err(|e| e.to_string())?;
            let mut chunk = vec![0u8; CHUNK];
            let mut off = 0;
            while off < STREAM {
                if off == STREAM / 2 {
                    kill(nix::unistd::getpid(), Signal::SIGSTOP).map_err(|e| e.to_string())?;
                }
                fill_stream(&mut chunk, off);
                w.write_all(&chunk)
                    .map_err(|e| format!("write at {off}: {e}"))?;
                off += CHUNK as u64;
            }
            w.finish().map_err(|e| format!("finish: {e}"))?;
            tx.send(b"after").map_err(|e| format!("send after: {e}"))?;
            Ok("sent".into())
        });
        let holder = hold_stopped(&name, EndpointRole::Producer, procs.pid(child));
        let mut r = rx.recv_stream().expect("recv_stream");
        assert_eq!(r.len(), STREAM);
        let mut chunk = vec![0u8; CHUNK + 5];
        let (mut off, mut longest) = (0u64, Duration::ZERO);
        loop {
            let t0 = Instant::now();
            let n = r
                .read(&mut chunk)
                .unwrap_or_else(|e| panic!("read at {off} while the producer was stopped: {e}"));
            longest = longest.max(t0.elapsed());
            if n == 0 {
                break;
            }
            check_stream(&chunk[..n], off).unwrap_or_else(|at| panic!("wrong byte at {at}"));
            off += n as u64;
        }
        drop(r);
        holder.join().expect("the holder's checks");
        assert_eq!(off, STREAM, "the message ended early");
        // The call under way when the producer stopped lasted until it was continued.
        assert!(
            longest >= STOP / 2,
            "no read waited for the stopped producer (longest {longest:?})"
        );
        let mut buf = Vec::new();
        assert_eq!(rx.recv(&mut buf), Ok(5));
        assert_eq!(buf, b"after");
        assert_eq!(procs.wait_ok(child), "sent");
    }

    /// SPSC: a consumer stopped (SIGSTOP) in the middle of a message, for many liveness
    /// checks of the producer waiting for room, is waited for: the write neither fails
    /// (`Disconnected`) nor gives up, the consumer's slot is left alone, and once
    /// continued the consumer reads the message whole, then the next.
    #[test]
    fn spsc_a_stopped_consumer_mid_stream_is_waited_for_not_taken_for_dead() {
        let name = seg_name("stopped-spsc-consumer");
        let _guard = SegGuard::new(&name);
        let mut tx = spsc::Producer::create(&name, &RingOptions::new(STREAM_RING)).unwrap();
        let mut procs = Procs::new("stopped-spsc-consumer", DEADLINE);
        let n = name.clone();
        let child = procs.spawn("consumer", move || {
            let mut rx = spsc::Consumer::open(&n).map_err(|e| e.to_string())?;
            let mut r = rx.recv_stream().map_err(|e| e.to_string())?;
            if r.len() != STREAM {
                return Err(format!("len {}", r.len()));
            }
            let mut chunk = vec![0u8; CHUNK];
            let mut off = 0;
            while off < STREAM {
                if off == STREAM / 2 {
                    kill(nix::unistd::getpid(), Signal::SIGSTOP).map_err(|e| e.to_string())?;
                }
                r.read_exact(&mut chunk)
                    .map_err(|e| format!("read at {off}: {e}"))?;
                check_stream(&chunk, off).map_err(|at| format!("wrong byte at {at}"))?;
                off += CHUNK as u64;
            }
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).map_err(|e| e.to_string())?;
            if !rest.is_empty() {
                return Err(format!("{} bytes past the end", rest.len()));
            }
            drop(r);
            let mut buf = Vec::new();
            rx.recv(&mut buf).map_err(|e| format!("recv after: {e}"))?;
            Ok(String::from_utf8_lossy(&buf).into_owned())
        });
        let holder = hold_stopped(&name, EndpointRole::Consumer, procs.pid(child));
        let mut w = tx.stream(STREAM).expect("stream");
        let mut chunk = vec![0u8; CHUNK];
        let (mut off, mut longest) = (0u64, Duration::ZERO);
        while off < STREAM {
            fill_stream(&mut chunk, off);
            let t0 = Instant::now();
            w.write_all(&chunk)
                .unwrap_or_else(|e| panic!("write at {off} while the consumer was stopped: {e}"));
            longest = longest.max(t0.elapsed());
            off += CHUNK as u64;
        }
        w.finish().expect("finish");
        tx.send(b"after").expect("send after the message");
        holder.join().expect("the holder's checks");
        // The call under way when the consumer stopped lasted until it was continued.
        assert!(
            longest >= STOP / 2,
            "no write waited for the stopped consumer (longest {longest:?})"
        );
        assert_eq!(procs.wait_ok(child), "after");
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
}
