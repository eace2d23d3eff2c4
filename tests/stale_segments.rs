//! Claim: **segments left by dead processes are recovered, never mistaken**: a segment
//! whose creator died before it was ready (it has the magic a creator writes right
//! after sizing its file) is `Abandoned` and `create_or_open` takes it over; another
//! program's file (zeros, or any bytes without the magic) is `NotARing` and never
//! replaced; one whose creator lives is not taken over; a ready ring whose endpoints all
//! died is reused by `create_or_open` (their messages still delivered) or removed as
//! stale.
//!
//! [`creator_and_endpoints`]: each test forks the processes that die, proven dead by
//! their OFD locks. `shmlane rm --stale` is tested in `cli/tests/cli_admin.rs`.

mod common;

mod creator_and_endpoints {
    //! Segments left by dead processes, proven dead by their OFD locks.

    use crate::common;
    use crate::common::{seg_name, Gate, Procs, SegGuard};
    use shmlane::{mpmc, spsc, RingOptions};
    use std::time::{Duration, Instant};

    const DEADLINE: Duration = Duration::from_secs(30);

    /// Blocks the child until it is killed.
    fn hold() -> ! {
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    }

    /// An MPMC ring of 8 cells of 64 bytes, with room for 4 endpoints.
    fn small_mpmc(name: &str) -> RingOptions {
        let _ = name;
        RingOptions::new(512).cell_size(64).max_endpoints(4)
    }

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

    /// A real creation cut short: the creator is killed at its `fallocate`, after its
    /// `ftruncate` and the magic it writes next. What it leaves (the magic, state 0,
    /// the init lock free) is `Abandoned`, and `create_or_open` replaces it.
    #[test]
    fn a_creation_killed_after_its_magic_is_abandoned_and_taken_over() {
        let name = seg_name("crash-real-abandoned");
        let _guard = SegGuard::new(&name);
        let mut procs = Procs::new("crash-real-abandoned", DEADLINE);
        let child_name = name.clone();
        let creator = procs.spawn("creator killed at fallocate", move || {
            shmlane_support::seccomp::kill_on_call(libc::SYS_fallocate)
                .map_err(|e| e.to_string())?;
            let r = spsc::create_ring(&child_name, &RingOptions::new(4096));
            Err(format!("the creator was not killed at fallocate: {r:?}"))
        });
        let died = procs.wait(creator);
        assert!(
            matches!(died.outcome, common::Outcome::Signaled(_)),
            "{died}"
        );
        let left = std::fs::read(common::shm_path(&name)).expect("the creator left its file");
        assert_eq!(
            &left[..8],
            b"SHMLANE\0",
            "the magic comes right after ftruncate"
        );
        assert!(left[8..].iter().all(|&b| b == 0));
        match spsc::Consumer::open(&name) {
            Err(shmlane::Error::Abandoned { state: 0, .. }) => {}
            other => panic!("open of a creation cut short: {other:?}"),
        }
        match shmlane::inspect::inspect(&name) {
            Err(shmlane::Error::Abandoned { state: 0, .. }) => {}
            other => panic!("inspect of a creation cut short: {other:?}"),
        }
        let mut rx = spsc::Consumer::create_or_open(&name, &RingOptions::new(4096))
            .expect("create_or_open replaces it");
        let mut tx = spsc::Producer::open(&name).unwrap();
        tx.send(b"fresh").unwrap();
        assert_eq!(rx.recv(&mut Vec::new()).unwrap(), 5);
    }

    /// Another program's file of zeros (or of anything else) in /dev/shm is
    /// `NotARing`, from `open`, `create_or_open` and `inspect`, and `create_or_open`
    /// leaves it as it was: before, a file of zeros was taken for an abandoned creation
    /// and replaced (`shmlane send NAME` deleted it). A creator killed between its
    /// `ftruncate` and the magic leaves the same zeros: refused the same way.
    #[test]
    fn a_foreign_file_is_not_a_ring_and_never_replaced() {
        use std::os::unix::fs::PermissionsExt;
        let zeros = seg_name("foreign-zeros");
        let text = seg_name("foreign-text");
        let _guards = (SegGuard::new(&zeros), SegGuard::new(&text));
        let contents = [
            (&zeros, vec![0u8; 8192], 0u64),
            (
                &text,
                b"another program's data ".repeat(400),
                u64::from_le_bytes(*b"another "),
            ),
        ];
        for (name, bytes, magic) in &contents {
            let path = common::shm_path(name);
            std::fs::write(&path, bytes).unwrap();
            // Mode 0600, as a ring would have: else the mode check refuses it first.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let not_a_ring = |what: &str, r: Result<(), shmlane::Error>| match r {
                Err(shmlane::Error::NotARing { name: n, found }) => {
                    assert_eq!((&n, found), (*name, *magic), "{what}");
                }
                other => panic!("{what} of {name}: {other:?}, expected NotARing"),
            };
            not_a_ring("open", spsc::Consumer::open(name).map(drop));
            not_a_ring(
                "create_or_open",
                spsc::Producer::create_or_open(name, &RingOptions::new(4096)).map(drop),
            );
            not_a_ring(
                "mpmc create_or_open",
                mpmc::Consumer::create_or_open(name, &small_mpmc(name)).map(drop),
            );
            not_a_ring("inspect", shmlane::inspect::inspect(name).map(drop));
            assert!(!shmlane::inspect::remove_if_stale(name).unwrap_or(false));
            assert_eq!(&std::fs::read(&path).unwrap(), bytes, "{name} was changed");
        }
        // A creator killed right after its ftruncate leaves zeros: refused, not replaced.
        let cut = seg_name("crash-zeros");
        let _cut_guard = SegGuard::new(&cut);
        let mut procs = Procs::new("crash-zeros", DEADLINE);
        let child_name = cut.clone();
        let creator = procs.spawn("creator killed at pwrite", move || {
            shmlane_support::seccomp::kill_on_call(libc::SYS_pwrite64)
                .map_err(|e| e.to_string())?;
            let r = spsc::create_ring(&child_name, &RingOptions::new(4096));
            Err(format!("the creator was not killed at pwrite: {r:?}"))
        });
        let died = procs.wait(creator);
        assert!(
            matches!(died.outcome, common::Outcome::Signaled(_)),
            "{died}"
        );
        assert!(std::fs::read(common::shm_path(&cut))
            .unwrap()
            .iter()
            .all(|&b| b == 0));
        match spsc::Consumer::create_or_open(&cut, &RingOptions::new(4096)) {
            Err(shmlane::Error::NotARing { found: 0, .. }) => {}
            other => panic!("create_or_open over a creator's zeros: {other:?}"),
        }
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
                let mut tx =
                    mpmc::Producer::create(n, &small_mpmc(n)).map_err(|e| e.to_string())?;
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
        // The other is stale (every endpoint dead, creator dead) and removed; the one we
        // now use is kept. Asked of our own rings by name: a sweep of the host
        // (`remove_stale`) would also remove what sibling tests are making.
        assert!(shmlane::inspect::inspect(&name).unwrap().is_stale());
        assert!(!shmlane::inspect::inspect(&kept).unwrap().is_stale());
        assert_eq!(
            shmlane::inspect::remove_if_stale(&name).map_err(|e| e.to_string()),
            Ok(true)
        );
        assert_eq!(
            shmlane::inspect::remove_if_stale(&kept).map_err(|e| e.to_string()),
            Ok(false)
        );
        assert!(!std::path::Path::new(&common::shm_path(&name)).exists());
        assert!(std::path::Path::new(&common::shm_path(&kept)).exists());
    }
}
