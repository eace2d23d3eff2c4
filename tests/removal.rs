//! Claim: **removing a ring's name frees the name at once, while the endpoints attached
//! keep working until they detach; and `unlink_on_drop` removes a name only while it
//! still names the ring's own file**.
//!
//! - [`sysv`]: `remove_sysv` while both endpoints are attached;
//! - [`unlink_on_drop`]: a ring made under the same name since is left alone.
//!
//! Every SysV segment a test makes is removed by a guard.

// Real processes and shared memory: Linux only, and not under Miri (no fork).
#![cfg(all(target_os = "linux", not(miri)))]

mod common;

mod sysv {
    //! `remove_sysv` while both endpoints are attached. Every SysV segment is removed by a
    //! guard.

    use crate::common::backings::{sysv_key, SysVGuard};
    use crate::common::{check_message, message, Gate, Procs};
    use shmlane::{spsc, Error, RecvError, RingOptions};
    use std::time::{Duration, Instant};

    const DEADLINE: Duration = Duration::from_secs(30);

    /// How long a gate may take to open (the peer's process must start and set up).
    const GATE: Duration = Duration::from_secs(20);

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
}

mod unlink_on_drop {
    //! `unlink_on_drop` removes a name only while it still names the ring's own file.

    use crate::common::{seg_name, shm_path, Procs, SegGuard};
    use shmlane::{spsc, RingOptions};
    use std::time::Duration;

    const DEADLINE: Duration = Duration::from_secs(30);

    fn opts() -> RingOptions {
        RingOptions::new(4096)
    }

    /// Ring A removes its name when dropped; its name was removed by hand and another
    /// process made ring B under it: dropping A leaves B alone.
    #[test]
    fn unlink_on_drop_spares_a_newer_ring_of_the_same_name() {
        let test = "own-unlink";
        let name = seg_name(test);
        let _guard = SegGuard::new(&name);
        let a = spsc::Producer::create(&name, &opts().unlink_on_drop(true)).unwrap();
        shmlane::remove(&name).unwrap();
        let mut procs = Procs::new(test, DEADLINE);
        let child_name = name.clone();
        let b = procs.spawn("creator of B", move || {
            spsc::create_ring(&child_name, &opts()).map_err(|e| e.to_string())?;
            Ok(String::new())
        });
        procs.wait_ok(b);
        drop(a);
        assert!(
            std::path::Path::new(&shm_path(&name)).exists(),
            "dropping ring A removed the name of ring B"
        );
        let mut tx = spsc::Producer::open(&name).unwrap();
        let mut rx = spsc::Consumer::open(&name).unwrap();
        tx.send(b"still B").unwrap();
        let mut buf = Vec::new();
        rx.try_recv(&mut buf).unwrap();
        assert_eq!(buf, b"still B");

        // And a ring whose name is still its own is removed as asked.
        drop((tx, rx));
        shmlane::remove(&name).unwrap();
        let c = spsc::Producer::create(&name, &opts().unlink_on_drop(true)).unwrap();
        drop(c);
        assert!(
            !std::path::Path::new(&shm_path(&name)).exists(),
            "unlink_on_drop left its own name behind"
        );
    }
}
