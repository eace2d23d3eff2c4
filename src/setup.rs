//! Making and finding rings: from [`RingOptions`] to a validated, mapped segment, for
//! either ring kind, and the constructors every endpoint type shares
//! ([`endpoint_constructors!`]).

use std::sync::Arc;

use crate::header::{RingParams, FLAG_ASYMMETRIC_FENCES, KIND_MPMC, NOTIFIER_SEMAPHORE};
use crate::options::RingOptions;
#[cfg(not(loom))]
use crate::segment::Location;
use crate::segment::Segment;
use crate::wait::membarrier;
use crate::Backing;
use crate::Error;
#[cfg(not(loom))]
use std::os::fd::OwnedFd;

/// The parameters of a new ring of `kind` made with `opts`.
pub(crate) fn params_for(kind: u32, opts: &RingOptions) -> Result<RingParams, Error> {
    let flags = if opts.asymmetric_fences && membarrier::register() {
        FLAG_ASYMMETRIC_FENCES
    } else {
        0
    };
    // Under loom there is no semaphore: the models run the futex event count.
    let notifier = match opts.notifier {
        crate::Notifier::Semaphore if !cfg!(loom) => NOTIFIER_SEMAPHORE,
        _ => 0,
    };
    let params = if kind == KIND_MPMC {
        RingParams::new_mpmc(
            opts.capacity,
            opts.effective_cell_size(),
            opts.max_endpoints,
            opts.max_message,
            flags | notifier,
        )
    } else {
        RingParams::new(kind, opts.capacity, opts.max_message, flags | notifier)
    };
    params.map_err(|reason| Error::InvalidOptions { reason })
}

/// An endpoint of a ring with asymmetric fences must be registered for membarrier
/// before it can notify (see `wait::membarrier`).
pub(crate) fn check_fences(params: &RingParams, name: &str) -> Result<(), Error> {
    if params.asymmetric_fences() && !membarrier::register() {
        return Err(Error::Incompatible {
            name: name.to_string(),
            field: "flags",
            found: params.flags,
            expected: "membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) to work in this process \
                       (it does not: create the ring with asymmetric_fences(false))"
                .to_string(),
        });
    }
    Ok(())
}

/// Where a constructor puts its ring, to check [`RingOptions::backing`] against.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Place {
    /// A POSIX name (`create`, `create_or_open`, `create_ring`).
    #[cfg_attr(loom, allow(dead_code))]
    Name,
    /// A SysV key (`create_sysv`, `create_or_open_sysv`, `create_ring_sysv`).
    #[cfg_attr(loom, allow(dead_code))]
    Key(i32),
    /// A new memfd (`create_memfd`, `create_ring_memfd`).
    #[cfg_attr(loom, allow(dead_code))]
    Memfd,
    /// Private heap memory (`channel`).
    Heap,
}

/// The one check of a constructor's place against the backing the options chose:
/// the two must not contradict each other (issue 19: they were silently resolved, one
/// way or the other). [`Backing::Posix`], the default, is taken as no choice by the
/// constructors of the other places; [`Backing::SysV`] agrees with a SysV constructor
/// of the same key, [`Backing::Memfd`] with a memfd one. Anything else is
/// [`Error::InvalidOptions`] naming both choices.
pub(crate) fn check_backing(call: &str, place: Place, opts: &RingOptions) -> Result<(), Error> {
    let chosen = opts.memory.backing;
    let (placed, hint) = match (place, chosen) {
        (_, Backing::Posix) => return Ok(()),
        (Place::Key(k), Backing::SysV { key }) if k == key => return Ok(()),
        (Place::Memfd, Backing::Memfd) => return Ok(()),
        (Place::Name, _) => (
            "by a POSIX name".to_string(),
            "call the constructor of that backing (`create_sysv`, `create_or_open_sysv`, \
             `create_ring_sysv` with a key; `create_memfd`, `create_ring_memfd`), or leave \
             the backing at its default",
        ),
        (Place::Key(k), _) => (
            format!("by the SysV key {k:#x}"),
            "leave the backing at its default (Posix), which a SysV constructor takes as no \
             choice, or set the key it is called with",
        ),
        (Place::Memfd, _) => (
            "in a new memfd".to_string(),
            "leave the backing at its default (Posix), which a memfd constructor takes as no \
             choice",
        ),
        (Place::Heap, _) => (
            "in private heap memory".to_string(),
            "a channel is for threads of one process: leave the backing at its default, or \
             create a shared ring with the constructor of that backing",
        ),
    };
    let chosen = match chosen {
        Backing::SysV { key } => format!("Backing::SysV {{ key: {key:#x} }}"),
        other => format!("Backing::{other:?}"),
    };
    Err(Error::InvalidOptions {
        reason: format!(
            "conflicting choices: `{call}` makes the ring {placed}, and RingOptions::backing \
             chose {chosen}; {hint}"
        ),
    })
}

/// A ring of `kind` in private heap memory.
pub(crate) fn heap_segment(
    kind: u32,
    opts: &RingOptions,
) -> Result<(Arc<Segment>, RingParams), Error> {
    check_backing("channel", Place::Heap, opts)?;
    let params = params_for(kind, opts)?;
    let seg = Segment::Heap(crate::segment::heap::HeapSegment::new(&params)?);
    Ok((Arc::new(seg), params))
}

/// Creates the segment `opts.backing` says (see [`crate::segment::create`]).
#[cfg(not(loom))]
pub(crate) fn create_segment(
    kind: u32,
    name: &str,
    opts: &RingOptions,
) -> Result<(Arc<Segment>, RingParams), Error> {
    let params = params_for(kind, opts)?;
    let seg = crate::segment::create(
        name,
        &params,
        &opts.memory,
        opts.create_mode(),
        opts.unlink_on_drop,
    )?;
    Ok((Arc::new(seg), params))
}

/// Creates a memfd segment labelled `shmlane`; returns it with a duplicate of its memfd.
/// `call`: the public function, for [`check_backing`].
#[cfg(not(loom))]
pub(crate) fn create_memfd_segment(
    kind: u32,
    call: &str,
    opts: &RingOptions,
) -> Result<(Arc<Segment>, RingParams, OwnedFd), Error> {
    check_backing(call, Place::Memfd, opts)?;
    let (seg, params) = create_segment(kind, "shmlane", &opts.clone().backing(Backing::Memfd))?;
    let fd = seg
        .memfd()
        .expect("a memfd segment")
        .try_clone_to_owned()
        .map_err(|source| Error::Io {
            op: "fcntl(F_DUPFD_CLOEXEC)",
            name: seg.name().to_string(),
            source,
        })?;
    Ok((seg, params, fd))
}

/// Creates a ring without attaching an endpoint (see `spsc::create_ring`), by `name`
/// (`Place::Name`) or by key (`Place::Key`, `name` unused). `unlink_on_drop(true)`
/// conflicts: no endpoint is made to drop.
#[cfg(not(loom))]
pub(crate) fn create_ring(
    kind: u32,
    call: &str,
    place: Place,
    name: &str,
    opts: &RingOptions,
) -> Result<(), Error> {
    if opts.unlink_on_drop {
        return Err(Error::InvalidOptions {
            reason: format!(
                "conflicting choices: `{call}` attaches no endpoint, and \
                 RingOptions::unlink_on_drop(true) asks the endpoint to remove the ring when \
                 it is dropped; remove it with `remove`/`remove_sysv` when done"
            ),
        });
    }
    create_at(kind, call, place, name, opts).map(drop)
}

/// What [`create_segment`] and [`create_or_open_segment`] are.
#[cfg(not(loom))]
type MakeSegment = fn(u32, &str, &RingOptions) -> Result<(Arc<Segment>, RingParams), Error>;

/// A ring's segment made by `make` ([`create_segment`] or [`create_or_open_segment`])
/// after [`check_backing`]: by name, or by key (`name` unused).
#[cfg(not(loom))]
fn segment_at(
    make: MakeSegment,
    kind: u32,
    call: &str,
    place: Place,
    name: &str,
    opts: &RingOptions,
) -> Result<(Arc<Segment>, RingParams), Error> {
    check_backing(call, place, opts)?;
    match place {
        Place::Key(key) => make(kind, name, &opts.clone().backing(Backing::SysV { key })),
        _ => make(kind, name, opts),
    }
}

/// [`create_or_open_segment`] after [`check_backing`] (see [`segment_at`]).
#[cfg(not(loom))]
pub(crate) fn create_or_open_at(
    kind: u32,
    call: &str,
    place: Place,
    name: &str,
    opts: &RingOptions,
) -> Result<(Arc<Segment>, RingParams), Error> {
    segment_at(create_or_open_segment, kind, call, place, name, opts)
}

/// [`create_segment`] after [`check_backing`] (see [`segment_at`]).
#[cfg(not(loom))]
pub(crate) fn create_at(
    kind: u32,
    call: &str,
    place: Place,
    name: &str,
    opts: &RingOptions,
) -> Result<(Arc<Segment>, RingParams), Error> {
    segment_at(create_segment, kind, call, place, name, opts)
}

/// Opens the segment at `location` as a ring of `kind`, if `accept` allows its owner
/// and mode. The opener's cap on what `recv` reassembles is the ring's `max_message`
/// up to [`DEFAULT_MAX_MESSAGE`](crate::DEFAULT_MAX_MESSAGE) (see [`open_capped`]).
#[cfg(not(loom))]
pub(crate) fn open_segment(
    kind: u32,
    location: Location<'_>,
    accept: &crate::OpenOptions,
) -> Result<(Arc<Segment>, RingParams), Error> {
    open_capped(kind, location, accept, crate::DEFAULT_MAX_MESSAGE)
}

/// [`open_segment`], with the opener's own cap on what `recv` reassembles: `max_message`
/// becomes the smaller of the ring's and `cap`. The header's value is the creator's,
/// and whoever can write the segment can set it, so it may lower what this process's
/// `recv` allocates, never raise it past the opener's own limit (which `set_max_message`
/// can still raise, by the opener's own choice).
#[cfg(not(loom))]
fn open_capped(
    kind: u32,
    location: Location<'_>,
    accept: &crate::OpenOptions,
    cap: u64,
) -> Result<(Arc<Segment>, RingParams), Error> {
    let (seg, mut params) = crate::segment::open(location, kind, accept)?;
    params.max_message = params.max_message.min(cap);
    Ok((Arc::new(seg), params))
}

/// Creates the ring if there is none, else opens it (checked against
/// `opts.open_policy()`); exactly one of several racing processes creates.
#[cfg(not(loom))]
pub(crate) fn create_or_open_segment(
    kind: u32,
    name: &str,
    opts: &RingOptions,
) -> Result<(Arc<Segment>, RingParams), Error> {
    let location = || match opts.memory.backing {
        Backing::Posix => Ok(Location::Posix(name)),
        Backing::SysV { key } => Ok(Location::SysV(key)),
        Backing::Memfd => Err(Error::InvalidOptions {
            reason: "create_or_open with Backing::Memfd: a memfd has no name to open; \
                     use create_memfd and hand the descriptor over"
                .to_string(),
        }),
    };
    location()?;
    let accept = opts.open_policy();
    // One creator is elected by O_EXCL (IPC_EXCL for SysV). If the segment vanishes
    // between our failed create and our open (its creator removed it), try again.
    let mut last = None;
    for _ in 0..8 {
        match create_segment(kind, name, opts) {
            Err(Error::AlreadyExists { .. }) => {}
            other => return other,
        }
        match open_capped(kind, location()?, &accept, opts.max_message) {
            Err(e @ Error::NotFound { .. }) => last = Some(e),
            // Its creator died before it was ready (proven: the magic a creator writes
            // first, and no creator's lock): replace it (if still so once we hold every
            // lock of it), then race to create again. A file without the magic is
            // `NotARing`, never replaced: it may be another program's.
            Err(e @ Error::Abandoned { .. }) if opts.memory.backing == Backing::Posix => {
                crate::segment::posix::remove_if_unused(name, |h| {
                    h.magic.load(crate::sync::Ordering::Relaxed) == crate::header::MAGIC
                        && h.state.load(crate::sync::Ordering::Acquire)
                            != crate::header::STATE_READY
                })?;
                last = Some(e);
            }
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| Error::NotFound {
        name: name.to_string(),
    }))
}

/// The constructors and common accessors of an endpoint type of ring module `$m` (`"spsc"` or `"mpmc"`),
/// kind `$kind`, role `$role` (`"producer"` or `"consumer"`), whose peer type is
/// `$peer`. The type has `fn attach(Arc<Segment>, RingParams, Wait) -> Result<Self>`,
/// `ring.seg` and `ring.params` fields, and a `wait` field.
macro_rules! endpoint_constructors {
    ($m:literal, $kind:expr, $role:literal, $peer:literal) => {
        /// Creates the ring `name` (a POSIX shared-memory name such as `"/my-ring"`)
        #[doc = concat!("and attaches as its ", $role, ". Fails with")]
        /// [`Error::AlreadyExists`](crate::Error::AlreadyExists) if the name is taken:
        /// an existing segment is never truncated or reused.
        ///
        /// The ring is a POSIX one: options whose
        /// [`backing`](crate::RingOptions::backing) chose another
        /// ([`Backing::SysV`](crate::Backing::SysV), [`Backing::Memfd`](crate::Backing::Memfd))
        /// conflict with the name, and are
        /// [`Error::InvalidOptions`](crate::Error::InvalidOptions): call
        /// [`create_sysv`](Self::create_sysv) or [`create_memfd`](Self::create_memfd).
        #[cfg(not(loom))]
        pub fn create(name: &str, opts: &$crate::RingOptions) -> Result<Self, $crate::Error> {
            let (seg, params) = $crate::setup::create_at(
                $kind,
                "create",
                $crate::setup::Place::Name,
                name,
                opts,
            )?;
            Self::attach(seg, params, opts.wait)
        }

        #[doc = concat!("Opens the existing ring `name` (POSIX) and attaches as its ", $role, ".")]
        /// Refuses a segment owned by another user or with permissions wider than 0600
        /// ([`Error::Permissions`](crate::Error::Permissions); see
        /// [`open_with`](Self::open_with) to accept one). Waits up to 2 s for a creator
        /// that is still initialising it; checks the segment's size before mapping it,
        /// and validates every header field.
        #[cfg(not(loom))]
        pub fn open(name: &str) -> Result<Self, $crate::Error> {
            Self::open_with(name, &$crate::OpenOptions::new())
        }

        /// [`open`](Self::open), accepting the owners and permissions `accept` allows.
        ///
        /// ```
        /// # let name = format!("/shmlane-doc-open-with-{}-{}", std::process::id(), line!());
        /// use shmlane::{Error, OpenOptions, RingOptions};
        #[doc = concat!("let tx = shmlane::", $m, "::Producer::create(&name, &RingOptions::new(4096))?;")]
        /// // Someone widens the segment to every user.
        /// # std::fs::set_permissions(format!("/dev/shm{name}"), std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
        #[doc = concat!("let refused = shmlane::", $m, "::Consumer::open(&name);")]
        /// assert!(matches!(refused, Err(Error::Permissions { mode: 0o666, .. })));
        #[doc = concat!("let rx = shmlane::", $m, "::Consumer::open_with(&name, &OpenOptions::new().accept_mode(0o666))?;")]
        /// # drop((tx, rx)); shmlane::remove(&name)?;
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        #[cfg(not(loom))]
        pub fn open_with(
            name: &str,
            accept: &$crate::OpenOptions,
        ) -> Result<Self, $crate::Error> {
            let (seg, params) = $crate::setup::open_segment(
                $kind,
                $crate::segment::Location::Posix(name),
                accept,
            )?;
            let endpoint = Self::attach(seg.clone(), params, $crate::Wait::default())?;
            // Dropped (detaching) if the name was removed while we attached.
            $crate::setup::still_linked(&seg)?;
            Ok(endpoint)
        }

        /// Creates the ring if it does not exist, else opens it (`opts` then only sets
        /// the wait strategy, and what is accepted of the segment's owner and mode:
        /// [`RingOptions::open_options`](crate::RingOptions::open_options), widened by
        /// [`RingOptions::group_access`](crate::RingOptions::group_access)). Of several
        /// processes racing, exactly one creates.
        /// A POSIX ring, as [`create`](Self::create) makes: another
        /// [`backing`](crate::RingOptions::backing) in `opts` is
        /// [`Error::InvalidOptions`](crate::Error::InvalidOptions) (for SysV call
        /// [`create_or_open_sysv`](Self::create_or_open_sysv); a memfd has nothing to
        /// open by).
        #[cfg(not(loom))]
        pub fn create_or_open(
            name: &str,
            opts: &$crate::RingOptions,
        ) -> Result<Self, $crate::Error> {
            let (seg, params) = $crate::setup::create_or_open_at(
                $kind,
                "create_or_open",
                $crate::setup::Place::Name,
                name,
                opts,
            )?;
            let endpoint = Self::attach(seg.clone(), params, opts.wait)?;
            $crate::setup::still_linked(&seg)?;
            Ok(endpoint)
        }

        #[doc = concat!("Creates a System V ring with `key` (`shmget`, permissions 0600, or 0660 with `group_access`) and attaches as its ", $role, ":")]
        /// `opts` may leave [`backing`](crate::RingOptions::backing) at its default or
        /// say `Backing::SysV` with this `key`; another choice conflicts
        /// ([`Error::InvalidOptions`](crate::Error::InvalidOptions)). Fails
        /// with [`Error::AlreadyExists`](crate::Error::AlreadyExists) if a segment has
        /// the key. The segment stays until [`remove_sysv`](crate::remove_sysv) (or
        /// `unlink_on_drop`) and the last detach.
        ///
        /// ```
        /// # let key = 0x5300_0000 | (std::process::id() as i32 & 0xff_ffff);
        /// use shmlane::RingOptions;
        /// let opts = RingOptions::new(4096).unlink_on_drop(true);
        #[doc = concat!("let mut tx = shmlane::", $m, "::Producer::create_sysv(key, &opts)?;")]
        #[doc = concat!("let mut rx = shmlane::", $m, "::Consumer::open_sysv(key)?; // in another process")]
        /// tx.send(b"hi")?;
        /// assert_eq!(rx.recv(&mut Vec::new())?, 2);
        /// assert_eq!(tx.name(), format!("sysv:{key:#010x}"));
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        #[cfg(not(loom))]
        pub fn create_sysv(key: i32, opts: &$crate::RingOptions) -> Result<Self, $crate::Error> {
            let (seg, params) = $crate::setup::create_at(
                $kind,
                "create_sysv",
                $crate::setup::Place::Key(key),
                "",
                opts,
            )?;
            Self::attach(seg, params, opts.wait)
        }

        #[doc = concat!("Opens the existing System V ring with `key` and attaches as its ", $role, ".")]
        /// Checks the segment's owner, mode (as [`open`](Self::open) does: see
        /// [`open_sysv_with`](Self::open_sysv_with)) and size (`shmctl(IPC_STAT)`)
        /// before attaching, waits up to 2 s for a creator that is still initialising
        /// it, and validates every header field.
        #[cfg(not(loom))]
        pub fn open_sysv(key: i32) -> Result<Self, $crate::Error> {
            Self::open_sysv_with(key, &$crate::OpenOptions::new())
        }

        /// [`open_sysv`](Self::open_sysv), accepting the owners and permissions
        /// `accept` allows (of `shm_perm.uid` and `shm_perm.mode`).
        #[cfg(not(loom))]
        pub fn open_sysv_with(
            key: i32,
            accept: &$crate::OpenOptions,
        ) -> Result<Self, $crate::Error> {
            let (seg, params) = $crate::setup::open_segment(
                $kind,
                $crate::segment::Location::SysV(key),
                accept,
            )?;
            Self::attach(seg, params, $crate::Wait::default())
        }

        /// Creates the System V ring with `key` if there is none, else opens it. Of
        /// several processes racing, exactly one creates (`IPC_EXCL`). `opts` as for
        /// [`create_sysv`](Self::create_sysv).
        #[cfg(not(loom))]
        pub fn create_or_open_sysv(
            key: i32,
            opts: &$crate::RingOptions,
        ) -> Result<Self, $crate::Error> {
            let (seg, params) = $crate::setup::create_or_open_at(
                $kind,
                "create_or_open_sysv",
                $crate::setup::Place::Key(key),
                "",
                opts,
            )?;
            Self::attach(seg, params, opts.wait)
        }

        #[doc = concat!("Creates a ring in a new sealed memfd and attaches as its ", $role, ".")]
        #[doc = concat!("Returns the ", $role, " and a descriptor of the memfd to hand to the ", $peer, "'s")]
        /// process (by `fork`, or over a UNIX socket with [`send_fd`](crate::send_fd)),
        /// which opens it with `open_fd`. The memfd has no name: the memory is freed
        /// when the last descriptor and mapping are gone.
        ///
        /// ```
        /// use shmlane::RingOptions;
        #[doc = concat!("let (mut tx, fd) = shmlane::", $m, "::Producer::create_memfd(&RingOptions::new(4096))?;")]
        #[doc = concat!("let mut rx = shmlane::", $m, "::Consumer::open_fd(fd)?; // in another process")]
        /// tx.send(b"hi")?;
        /// assert_eq!(rx.recv(&mut Vec::new())?, 2);
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        #[cfg(not(loom))]
        pub fn create_memfd(
            opts: &$crate::RingOptions,
        ) -> Result<(Self, std::os::fd::OwnedFd), $crate::Error> {
            let (seg, params, fd) =
                $crate::setup::create_memfd_segment($kind, "create_memfd", opts)?;
            Ok((Self::attach(seg, params, opts.wait)?, fd))
        }

        #[doc = concat!("Opens the ring in the memfd `fd` and attaches as its ", $role, ".")]
        /// The memfd must carry the seals shmlane puts on it (`F_SEAL_SHRINK |
        /// F_SEAL_GROW | F_SEAL_SEAL`), so that nobody can truncate it under us; a
        /// descriptor without them is refused with
        /// [`Error::Incompatible`](crate::Error::Incompatible) (field `"seals"`).
        /// Checks the memfd's owner and mode, and validates every header field, as
        /// [`open`](Self::open) does (see [`open_fd_with`](Self::open_fd_with)): a
        /// memfd made by anything but shmlane starts out mode 0777, and needs an
        /// `fchmod` to 0600 or `accept_mode(0o777)`.
        #[cfg(not(loom))]
        pub fn open_fd(fd: std::os::fd::OwnedFd) -> Result<Self, $crate::Error> {
            Self::open_fd_with(fd, &$crate::OpenOptions::new())
        }

        /// [`open_fd`](Self::open_fd), accepting the owners and permissions `accept`
        /// allows: a memfd received from a process of another user is owned by that
        /// user.
        #[cfg(not(loom))]
        pub fn open_fd_with(
            fd: std::os::fd::OwnedFd,
            accept: &$crate::OpenOptions,
        ) -> Result<Self, $crate::Error> {
            let (seg, params) =
                $crate::setup::open_segment($kind, $crate::segment::Location::Fd(fd), accept)?;
            Self::attach(seg, params, $crate::Wait::default())
        }

        /// The memfd of a memfd ring (`None` for POSIX and SysV rings), to hand to more
        /// processes.
        #[cfg(not(loom))]
        pub fn memfd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
            self.ring.seg.memfd()
        }

        /// The ring's data-region size in bytes.
        pub fn capacity(&self) -> usize {
            self.ring.params.capacity
        }

        /// The segment's name: the POSIX name, `sysv:0x<key>`, `memfd:<label>`, or
        /// `"(heap)"` for a ring made by `channel`.
        pub fn name(&self) -> &str {
            self.ring.seg.name()
        }

        /// The wait strategy of this endpoint.
        pub fn wait_strategy(&self) -> $crate::Wait {
            self.wait
        }

        /// Sets the wait strategy of this endpoint.
        pub fn set_wait(&mut self, wait: $crate::Wait) {
            self.wait = wait;
        }
    };
}

pub(crate) use endpoint_constructors;

/// The error for a failed attach to `seg`.
pub(crate) fn attach_error(seg: &Segment, e: crate::liveness::AttachError) -> Error {
    use crate::liveness::AttachError;
    match e {
        AttachError::State(state) => Error::Corrupt {
            name: seg.name().to_string(),
            field: "endpoint state",
            value: state.into(),
            reason: "not vacant, attaching, attached, detached or recovering",
        },
        AttachError::Corrupt(c) => Error::Corrupt {
            name: seg.name().to_string(),
            field: c.what,
            value: c.value,
            reason: "found while recovering the leftovers of a dead endpoint",
        },
    }
}

/// `Err(NotFound)` if `seg` is a POSIX segment whose name was removed: checked after
/// attaching by name, so an endpoint never joins a ring that `remove_stale` (or
/// `create_or_open`'s takeover) removed while it attached. Those remove a name only
/// while holding every slot lock of the segment, which an attaching endpoint takes
/// before it reads this.
#[cfg(not(loom))]
pub(crate) fn still_linked(seg: &Segment) -> Result<(), Error> {
    match seg {
        Segment::Posix(s) => match crate::sys::os::fstat(s.file()) {
            Ok(st) if st.st_nlink == 0 => Err(Error::NotFound {
                name: seg.name().to_string(),
            }),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}
