//! Errors: one setup [`Error`] for creating and opening rings, and small enums per
//! operation in the style of `std::sync::mpsc` and crossbeam-channel.

use std::fmt;
use std::io;
use std::time::Duration;

/// An error from creating, opening or removing a ring.
///
/// Each variant names the segment and, where it applies, the field or value that was
/// wrong, so that the message alone tells an operator what to fix.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The segment name is not of the form `name` or `/name` (an optional leading
    /// slash, no other, 1..=255 bytes after it, no NUL, not `.` or `..`: see
    /// [`validate_name`](crate::validate_name)); or a memfd label is too long (over 249 bytes)
    /// or holds a NUL; or a SysV key is 0 (`IPC_PRIVATE`, which no peer can open).
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The ring options cannot describe a ring (capacity not a power of two, ...).
    InvalidOptions {
        /// What is wrong with them.
        reason: String,
    },
    /// `create` found a segment of that name already there; nothing was changed.
    AlreadyExists {
        /// The segment name.
        name: String,
    },
    /// `open` found no segment of that name.
    NotFound {
        /// The segment name.
        name: String,
    },
    /// The segment is a valid shmlane segment, but not one this build can use
    /// (another layout version, another ring kind, another word size, ...), or not one
    /// it may use safely: a memfd without the seals shmlane puts on it (field
    /// `"seals"`).
    Incompatible {
        /// The segment name.
        name: String,
        /// The header field that differs.
        field: &'static str,
        /// The value found in the segment.
        found: u64,
        /// What this build expected.
        expected: String,
    },
    /// The segment is not a shmlane ring: where every shmlane segment starts with the
    /// magic `"SHMLANE\0"` it holds other bytes (other programs keep their files in
    /// `/dev/shm` too). A segment of zeros is one once no creator holds its init lock:
    /// a shmlane creator writes the magic first thing after sizing its file, so zeros
    /// with nobody making a ring in them are no half-made ring ([`Error::Abandoned`]
    /// is that), and `create_or_open` never replaces them. A ring whose magic was
    /// overwritten cannot be told from such a file, and is reported the same way.
    ///
    /// ```
    /// # let name = format!("/shmlane-doc-not-a-ring-{}", std::process::id());
    /// # let path = format!("/dev/shm{name}");
    /// std::fs::write(&path, b"another program's data, not a ring".repeat(200))?;
    /// # use std::os::unix::fs::PermissionsExt; // mode 0600, else `Permissions` comes first
    /// # std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    /// let e = shmlane::spsc::Consumer::open(&name).unwrap_err();
    /// assert!(matches!(e, shmlane::Error::NotARing { found, .. } if found.to_le_bytes() == *b"another "));
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    NotARing {
        /// The segment name.
        name: String,
        /// The first 8 bytes of the segment, as a little-endian word (where the magic
        /// goes): 0 for a segment of zeros.
        found: u64,
    },
    /// The segment holds a value no shmlane writer produces: it was corrupted, or it
    /// is not a shmlane segment at all (too short, or not a regular file).
    Corrupt {
        /// The segment name.
        name: String,
        /// The header field that is wrong.
        field: &'static str,
        /// The value found.
        value: u64,
        /// Why it cannot be right.
        reason: &'static str,
    },
    /// The segment is owned by another user (for SysV: or was created by another user,
    /// or, with group access, by a group the opener is not in), or its permission bits
    /// grant more than the opener accepts (default: owned by the opener's effective
    /// user, mode within 0600). Nothing was mapped. Accept it, if you trust who can write to it, with
    /// [`OpenOptions`](crate::OpenOptions) (`open_with`, or
    /// [`RingOptions::open_options`](crate::RingOptions::open_options) for
    /// `create_or_open`).
    Permissions {
        /// The segment name.
        name: String,
        /// The segment's owner (file owner, or SysV `shm_perm.uid`).
        owner: u32,
        /// The segment's permission bits (e.g. `0o644`).
        mode: u32,
        /// What was wrong, what was expected, and the option that accepts it.
        reason: String,
    },
    /// A size is larger than this platform or the segment allows.
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The size asked for or found.
        value: u64,
        /// The largest allowed.
        max: u64,
    },
    /// The memory of a new ring could not be reserved: the filesystem that holds it
    /// (a tmpfs such as `/dev/shm`, whose size Docker sets with `--shm-size`) has less
    /// free space than the segment needs, or the memory it comes from ran out (a
    /// memory cgroup's limit, for a memfd or SysV ring). Nothing was left behind.
    ///
    /// Every ring reserves its memory when it is created, so that running out is this
    /// error at creation instead of a SIGBUS (or an OOM kill) in the middle of a
    /// transfer.
    NoSpace {
        /// The segment name.
        name: String,
        /// Where the segment's memory comes from: the mount point of its filesystem
        /// (`/dev/shm`, a hugetlbfs mount), or `"memfd (kernel shm mount)"` and
        /// `"SysV shared memory"`, which have no size limit of their own.
        filesystem: String,
        /// Bytes the segment needs.
        asked: u64,
        /// Bytes free on the filesystem when the reservation failed; `None` where it
        /// has no size limit to tell (the memory limit ran out instead).
        free: Option<u64>,
        /// The OS error (`ENOSPC`, `ENOMEM`, `EFAULT` from a populate that would have
        /// raised SIGBUS).
        source: io::Error,
    },
    /// The creator has not finished initialising the segment within the wait.
    NotReady {
        /// The segment name.
        name: String,
        /// The state word found (0 = uninitialised, 1 = initialising, 3 = poisoned).
        state: u32,
        /// How long we waited.
        waited: Duration,
    },
    /// The segment was left half-made: it is not ready, and its creator has died (the
    /// lock a creator holds while it initialises a segment is free). Remove it
    /// ([`remove`](crate::remove)), or use `create_or_open`, which replaces it.
    Abandoned {
        /// The segment name.
        name: String,
        /// The state word found (0 = uninitialised, 1 = initialising).
        state: u32,
    },
    /// The endpoint role (producer or consumer) is already attached to this ring.
    Busy {
        /// The segment name.
        name: String,
        /// `"producer"` or `"consumer"`.
        endpoint: &'static str,
    },
    /// A system call failed.
    Io {
        /// What we were doing (`"shm_open"`, `"shmget"`, `"memfd_create"`,
        /// `"fcntl(F_ADD_SEALS)"`, `"ftruncate"`, `"mmap"`, `"mlock"`, ...).
        op: &'static str,
        /// The segment name.
        name: String,
        /// The OS error.
        source: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidName { name, reason } => {
                write!(f, "invalid segment name {name:?}: {reason}")
            }
            Error::InvalidOptions { reason } => write!(f, "invalid ring options: {reason}"),
            Error::AlreadyExists { name } => write!(f, "segment {name} already exists"),
            Error::NotFound { name } => write!(f, "segment {name} does not exist"),
            Error::Incompatible {
                name,
                field,
                found,
                expected,
            } => write!(
                f,
                "segment {name} is incompatible: {field} is {found:#x}, expected {expected}"
            ),
            Error::NotARing { name, found: 0 } => write!(
                f,
                "segment {name} is not a shmlane ring: it holds zeros where the magic \
                 \"SHMLANE\\0\" goes, and no process is making a ring in it"
            ),
            Error::NotARing { name, found } => {
                write!(
                    f,
                    "segment {name} is not a shmlane ring: it starts with the bytes"
                )?;
                for b in found.to_le_bytes() {
                    write!(f, " {b:02x}")?;
                }
                write!(f, ", not the magic \"SHMLANE\\0\"")
            }
            Error::Corrupt {
                name,
                field,
                value,
                reason,
            } => write!(
                f,
                "segment {name} is corrupt: {field} = {value:#x}: {reason}"
            ),
            Error::Permissions {
                name,
                owner,
                mode,
                reason,
            } => write!(
                f,
                "segment {name} (owner uid {owner}, mode {mode:04o}) refused: {reason}"
            ),
            Error::TooLarge { what, value, max } => {
                write!(
                    f,
                    "{what} of {value} bytes is larger than the maximum {max}"
                )
            }
            Error::NoSpace {
                name,
                filesystem,
                asked,
                free,
                source,
            } => {
                match free {
                    Some(free) => write!(
                        f,
                        "segment {name} needs {asked} bytes, but {filesystem} has only \
                         {free} bytes free ({source})"
                    )?,
                    None => write!(
                        f,
                        "segment {name} needs {asked} bytes, and {filesystem} could not \
                         reserve them ({source}): free memory or the memory cgroup's limit \
                         ran out"
                    )?,
                }
                write!(
                    f,
                    ": make the ring smaller, remove rings nobody uses ('shmlane rm \
                     --stale'), or give {filesystem} more room (Docker: --shm-size)"
                )
            }
            Error::NotReady {
                name,
                state,
                waited,
            } => write!(
                f,
                "segment {name} did not become ready within {waited:?} (state word {state})"
            ),
            Error::Abandoned { name, state } => write!(
                f,
                "segment {name} was left half-made: its creator died before it was ready \
                 (state word {state}); remove it, or open it with create_or_open, which \
                 replaces it"
            ),
            Error::Busy { name, endpoint } => {
                write!(f, "segment {name} already has a {endpoint} attached")
            }
            Error::Io { op, name, source } => write!(f, "{op} on segment {name}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::NoSpace { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A value read from shared memory that the protocol can never produce.
///
/// The ring is left as it was; the endpoint that saw it should be dropped. It means the
/// peer is buggy, or something else wrote into the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// What was read (`"record header"`, `"head cursor"`, ...).
    pub what: &'static str,
    /// The value read.
    pub value: u64,
    /// The ring position (byte offset, counted from the ring's creation) where it was read.
    pub position: u64,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shared memory is corrupt: {} = {:#x} at ring position {}",
            self.what, self.value, self.position
        )
    }
}

impl std::error::Error for Corruption {}

macro_rules! error_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$vmeta:meta])* $variant:ident $({ $($field:ident : $ty:ty),* })? $(($bind:ident : $inner:ty))? => $msg:literal,)* }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant $({ $(#[allow(missing_docs)] $field: $ty),* })? $(($inner))?,)*
        }

        impl fmt::Display for $name {
            #[allow(unused_variables)]
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(error_enum!(@pat $name $variant $({ $($field),* })? $(($bind))?) => {
                        error_enum!(@fmt f, $msg $(, $($field),*)? $(, ($bind))?)
                    })*
                }
            }
        }

        impl std::error::Error for $name {}
    };
    (@pat $name:ident $variant:ident { $($field:ident),* }) => { $name::$variant { $($field),* } };
    (@pat $name:ident $variant:ident ($bind:ident)) => { $name::$variant($bind) };
    (@pat $name:ident $variant:ident) => { $name::$variant };
    (@fmt $f:ident, $msg:literal, ($bind:ident)) => { write!($f, "{}: {}", $msg, $bind) };
    (@fmt $f:ident, $msg:literal $(, $field:ident)*) => { write!($f, $msg) };
}

error_enum! {
    /// Error from [`send`](crate::spsc::Producer::send), [`reserve`](crate::spsc::Producer::reserve)
    /// and [`stream`](crate::spsc::Producer::stream).
    SendError {
        /// A consumer was attached at some moment since this producer attached, and
        /// none is now (detached, or dead and recovered); nothing more will be read.
        /// Consumers that left before the producer came do not count (see
        /// `wait_for_consumers`).
        Disconnected => "the consumer has disconnected",
        /// The grant asked for is larger than the largest record (`reserve` only;
        /// `send` splits any message into fragments).
        TooLarge { len: u64, max: u64 } => "{len} bytes is more than the largest record ({max} bytes); use send or stream",
        /// A value read from shared memory is impossible.
        Corrupt(c: Corruption) => "cannot send",
    }
}

error_enum! {
    /// Error from [`try_send`](crate::spsc::Producer::try_send) and
    /// [`try_reserve`](crate::spsc::Producer::try_reserve).
    TrySendError {
        /// The ring has no room for the message now.
        Full => "the ring is full",
        /// The consumer has detached; nothing more will be read.
        Disconnected => "the consumer has disconnected",
        /// The message can never fit in the ring at once; send it with `send`,
        /// `send_timeout` or `stream`, which wait between fragments.
        TooLarge { len: u64, max: u64 } => "{len} bytes cannot fit in the ring at once (at most {max}); use send or stream",
        /// A value read from shared memory is impossible.
        Corrupt(c: Corruption) => "cannot send",
    }
}

error_enum! {
    /// Error from [`send_timeout`](crate::spsc::Producer::send_timeout).
    SendTimeoutError {
        /// The deadline passed. A message that was being sent in fragments is
        /// abandoned: the consumer gets [`RecvError::Truncated`] for it.
        Timeout => "timed out waiting for room in the ring",
        /// The consumer has detached; nothing more will be read.
        Disconnected => "the consumer has disconnected",
        /// The grant asked for is larger than the largest record.
        TooLarge { len: u64, max: u64 } => "{len} bytes is more than the largest record ({max} bytes)",
        /// A value read from shared memory is impossible.
        Corrupt(c: Corruption) => "cannot send",
    }
}

error_enum! {
    /// Error from [`recv`](crate::spsc::Consumer::recv) and the other blocking receives.
    RecvError {
        /// The ring is empty, a producer was attached at some moment since this
        /// consumer attached, and none is now (detached, or dead and recovered).
        /// Producers that left before the consumer came do not count: it waits for
        /// the next (see `wait_for_producers` to wait across producers for ever).
        Disconnected => "the producer has disconnected and the ring is empty",
        /// The next message is longer than the consumer's `max_message`. It is left
        /// in the ring, not allocated for: read it with `recv_stream` (which needs no
        /// buffer of its size) or raise the limit.
        TooLarge { len: u64, max: u64 } => "the next message is {len} bytes, more than max_message ({max})",
        /// `recv_ref` only: the next message travels in fragments, so it is not one
        /// contiguous slice. It is left in the ring: read it with `recv` or `recv_stream`.
        Fragmented { len: u64 } => "the next message ({len} bytes) travels in fragments; use recv or recv_stream",
        /// The producer abandoned a message partway (its writer was dropped, it timed
        /// out, or a new producer started over it). The partial message has been
        /// discarded; the next call receives the next message.
        Truncated => "the producer abandoned the message partway",
        /// `recv_pod` only: the message (now consumed) had another size than the type.
        SizeMismatch { expected: u64, found: u64 } => "expected a message of {expected} bytes, got {found}",
        /// A value read from shared memory is impossible.
        Corrupt(c: Corruption) => "cannot receive",
    }
}

error_enum! {
    /// Error from [`try_recv`](crate::spsc::Consumer::try_recv) and the other non-blocking receives.
    TryRecvError {
        /// No whole message is available now.
        Empty => "the ring is empty",
        /// See [`RecvError::Disconnected`].
        Disconnected => "the producer has disconnected and the ring is empty",
        /// See [`RecvError::TooLarge`].
        TooLarge { len: u64, max: u64 } => "the next message is {len} bytes, more than max_message ({max})",
        /// See [`RecvError::Fragmented`].
        Fragmented { len: u64 } => "the next message ({len} bytes) travels in fragments; use recv or recv_stream",
        /// See [`RecvError::Truncated`].
        Truncated => "the producer abandoned the message partway",
        /// See [`RecvError::SizeMismatch`].
        SizeMismatch { expected: u64, found: u64 } => "expected a message of {expected} bytes, got {found}",
        /// A value read from shared memory is impossible.
        Corrupt(c: Corruption) => "cannot receive",
    }
}

error_enum! {
    /// Error from [`recv_timeout`](crate::spsc::Consumer::recv_timeout) and the other timed receives.
    RecvTimeoutError {
        /// The deadline passed before a whole message arrived. Fragments already read
        /// are kept; the next receive goes on with the same message.
        Timeout => "timed out waiting for a message",
        /// See [`RecvError::Disconnected`].
        Disconnected => "the producer has disconnected and the ring is empty",
        /// See [`RecvError::TooLarge`].
        TooLarge { len: u64, max: u64 } => "the next message is {len} bytes, more than max_message ({max})",
        /// See [`RecvError::Fragmented`].
        Fragmented { len: u64 } => "the next message ({len} bytes) travels in fragments; use recv or recv_stream",
        /// See [`RecvError::Truncated`].
        Truncated => "the producer abandoned the message partway",
        /// See [`RecvError::SizeMismatch`].
        SizeMismatch { expected: u64, found: u64 } => "expected a message of {expected} bytes, got {found}",
        /// A value read from shared memory is impossible.
        Corrupt(c: Corruption) => "cannot receive",
    }
}

/// Error from [`WriteGrant::commit_len`](crate::spsc::WriteGrant::commit_len): more
/// bytes were committed than the grant holds. Nothing was published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitError {
    /// The length asked to commit.
    pub len: usize,
    /// The length of the grant.
    pub granted: usize,
}

impl fmt::Display for CommitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot commit {} bytes of a {}-byte grant",
            self.len, self.granted
        )
    }
}

impl std::error::Error for CommitError {}

// Conversions from the blocking error, which carries every failure that is not
// "would block", to the try and timeout forms.
macro_rules! from_recv_error {
    ($target:ident) => {
        impl From<RecvError> for $target {
            fn from(e: RecvError) -> Self {
                match e {
                    RecvError::Disconnected => $target::Disconnected,
                    RecvError::TooLarge { len, max } => $target::TooLarge { len, max },
                    RecvError::Fragmented { len } => $target::Fragmented { len },
                    RecvError::Truncated => $target::Truncated,
                    RecvError::SizeMismatch { expected, found } => {
                        $target::SizeMismatch { expected, found }
                    }
                    RecvError::Corrupt(c) => $target::Corrupt(c),
                }
            }
        }
    };
}
from_recv_error!(TryRecvError);
from_recv_error!(RecvTimeoutError);

macro_rules! from_send_error {
    ($target:ident) => {
        impl From<SendError> for $target {
            fn from(e: SendError) -> Self {
                match e {
                    SendError::Disconnected => $target::Disconnected,
                    SendError::TooLarge { len, max } => $target::TooLarge { len, max },
                    SendError::Corrupt(c) => $target::Corrupt(c),
                }
            }
        }
    };
}
from_send_error!(TrySendError);
from_send_error!(SendTimeoutError);

impl From<Corruption> for SendError {
    fn from(c: Corruption) -> Self {
        SendError::Corrupt(c)
    }
}

impl From<Corruption> for RecvTimeoutError {
    fn from(c: Corruption) -> Self {
        RecvTimeoutError::Corrupt(c)
    }
}

impl From<Corruption> for RecvError {
    fn from(c: Corruption) -> Self {
        RecvError::Corrupt(c)
    }
}

impl From<RecvError> for io::Error {
    fn from(e: RecvError) -> Self {
        let kind = match e {
            RecvError::Disconnected | RecvError::Truncated => io::ErrorKind::UnexpectedEof,
            RecvError::Corrupt(_) => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

impl From<SendError> for io::Error {
    fn from(e: SendError) -> Self {
        let kind = match e {
            SendError::Disconnected => io::ErrorKind::BrokenPipe,
            SendError::Corrupt(_) => io::ErrorKind::InvalidData,
            SendError::TooLarge { .. } => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}
