//! The system interfaces, as thin wrappers: the bottom layer of the crate, which names
//! `libc` and `nix` so that no other module does.
//!
//! One file per interface:
//!
//! - [`futex`]: shared futex wait and wake (never `FUTEX_PRIVATE_FLAG`);
//! - [`membarrier`]: the asymmetric fence of the event counts;
//! - [`semaphore`]: process-shared POSIX semaphores, for the semaphore notifier;
//! - [`ofd`]: open file description locks, and the fork handler for their descriptors;
//! - [`procfs`]: the one reader of `/proc` (process state and start time, liveness,
//!   pid namespace, the SysV segment table, meminfo, mounts, descriptor links);
//! - `fdpass`: a descriptor over a UNIX socket (`send_fd`/`recv_fd`, public);
//! - `mmap`: shared mappings of a file, with memmap2;
//! - `sysv`: System V shared memory (`shmget`, `shmat`, `shmctl`);
//! - [`user`]: this process's users and groups;
//! - `os`: the few plain nix calls and C types the segments use as nix has them
//!   (files, seals, `fallocate`), re-exported so that the OS surface is listed here.
//!
//! Where loom or Miri cannot run an interface, its wrapper has the variant that stands
//! for it (a condition variable for the futex, loom's fences for membarrier, no `/proc`
//! under either), so that the modules above make no `cfg` choice at each call. The
//! interfaces only the file-backed segments use (OFD locks, mappings, SysV, descriptor
//! passing) have none: no segment under loom or Miri is a file.

// Used only by the file-backed segments, which loom builds leave out.
#[cfg(not(loom))]
pub(crate) mod fdpass;
pub(crate) mod futex;
pub(crate) mod membarrier;
#[cfg(not(loom))]
pub(crate) mod mmap;
pub(crate) mod ofd;
#[cfg(not(loom))]
pub(crate) mod os;
pub(crate) mod procfs;
pub(crate) mod semaphore;
#[cfg(not(loom))]
pub(crate) mod sysv;
pub(crate) mod user;
