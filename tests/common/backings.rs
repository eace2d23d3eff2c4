//! Running one test over every backing: [`TestRing`] creates and opens a ring of a
//! given [`Kind`] from forked children, and removes what it made; [`SysVGuard`]
//! removes a SysV key when dropped.

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use shmlane::spsc::{Consumer, Producer};
use shmlane::{Backing, RingOptions};

use super::{seg_name, splitmix64, Gate, SegGuard};

/// A ring's backing, as the tests name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Posix,
    SysV,
    Memfd,
}

pub const KINDS: [Kind; 3] = [Kind::Posix, Kind::SysV, Kind::Memfd];

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Posix => "posix",
            Kind::SysV => "sysv",
            Kind::Memfd => "memfd",
        }
    }
}

/// A SysV key unique to this test and this process (never 0, `IPC_PRIVATE`).
pub fn sysv_key(test: &str) -> i32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in test.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let h = splitmix64(h ^ u64::from(std::process::id()).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    (h as u32 | 1) as i32
}

/// Removes the SysV segment of `key` when dropped (and once when made, in case a
/// killed earlier run with the same pid left it behind).
#[derive(Debug)]
pub struct SysVGuard(pub i32);

impl SysVGuard {
    pub fn new(key: i32) -> SysVGuard {
        let _ = shmlane::remove_sysv(key);
        SysVGuard(key)
    }
}

impl Drop for SysVGuard {
    fn drop(&mut self) {
        let _ = shmlane::remove_sysv(self.0);
    }
}

/// How long an opener waits for the creator's descriptor.
const FD_WAIT: Duration = Duration::from_secs(30);

/// The ring of one test on one backing. Make it in the parent before forking; one
/// child then creates the ring (`create_*`) and another opens it (`open_*`, which
/// waits until it is created). A memfd has no name: its creator sends the descriptor
/// over a socket pair made here, and the opener receives it (the handover of two
/// unrelated processes). Dropping it removes the POSIX name or SysV key.
#[derive(Debug)]
pub struct TestRing {
    pub kind: Kind,
    pub name: String,
    pub key: i32,
    /// The creator sends the memfd on `.0`, the opener receives it on `.1`.
    socks: (UnixStream, UnixStream),
    /// Opened by the creator once the ring exists.
    created: Gate,
    _posix: SegGuard,
    _sysv: SysVGuard,
}

impl TestRing {
    pub fn new(kind: Kind, test: &str) -> TestRing {
        let socks = UnixStream::pair().expect("socketpair");
        socks
            .1
            .set_read_timeout(Some(FD_WAIT))
            .expect("SO_RCVTIMEO");
        let name = seg_name(test);
        let key = sysv_key(test);
        TestRing {
            kind,
            _posix: SegGuard::new(&name),
            _sysv: SysVGuard::new(key),
            name,
            key,
            socks,
            created: Gate::new(),
        }
    }

    /// `opts` with this ring's backing.
    pub fn options(&self, opts: &RingOptions) -> RingOptions {
        opts.clone().backing(match self.kind {
            Kind::Posix => Backing::Posix,
            Kind::SysV => Backing::SysV { key: self.key },
            Kind::Memfd => Backing::Memfd,
        })
    }

    pub fn create_producer(&self, opts: &RingOptions) -> Result<Producer, String> {
        let err = |e: &dyn std::fmt::Display| format!("create {}: {e}", self.kind.label());
        let endpoint = match self.kind {
            Kind::Posix => Producer::create(&self.name, opts).map_err(|e| err(&e))?,
            Kind::SysV => Producer::create_sysv(self.key, opts).map_err(|e| err(&e))?,
            Kind::Memfd => {
                let (tx, fd) = Producer::create_memfd(opts).map_err(|e| err(&e))?;
                shmlane::send_fd(&self.socks.0, fd.as_fd()).map_err(|e| err(&e))?;
                tx
            }
        };
        self.created.open();
        Ok(endpoint)
    }

    pub fn create_consumer(&self, opts: &RingOptions) -> Result<Consumer, String> {
        let err = |e: &dyn std::fmt::Display| format!("create {}: {e}", self.kind.label());
        let endpoint = match self.kind {
            Kind::Posix => Consumer::create(&self.name, opts).map_err(|e| err(&e))?,
            Kind::SysV => Consumer::create_sysv(self.key, opts).map_err(|e| err(&e))?,
            Kind::Memfd => {
                let (rx, fd) = Consumer::create_memfd(opts).map_err(|e| err(&e))?;
                shmlane::send_fd(&self.socks.0, fd.as_fd()).map_err(|e| err(&e))?;
                rx
            }
        };
        self.created.open();
        Ok(endpoint)
    }

    pub fn open_producer(&self) -> Result<Producer, String> {
        let err = |e: &dyn std::fmt::Display| format!("open {}: {e}", self.kind.label());
        self.created.expect(FD_WAIT, "ring created")?;
        match self.kind {
            Kind::Posix => Producer::open(&self.name).map_err(|e| err(&e)),
            Kind::SysV => Producer::open_sysv(self.key).map_err(|e| err(&e)),
            Kind::Memfd => {
                let fd = shmlane::recv_fd(&self.socks.1).map_err(|e| err(&e))?;
                Producer::open_fd(fd).map_err(|e| err(&e))
            }
        }
    }

    pub fn open_consumer(&self) -> Result<Consumer, String> {
        let err = |e: &dyn std::fmt::Display| format!("open {}: {e}", self.kind.label());
        self.created.expect(FD_WAIT, "ring created")?;
        match self.kind {
            Kind::Posix => Consumer::open(&self.name).map_err(|e| err(&e)),
            Kind::SysV => Consumer::open_sysv(self.key).map_err(|e| err(&e)),
            Kind::Memfd => {
                let fd = shmlane::recv_fd(&self.socks.1).map_err(|e| err(&e))?;
                Consumer::open_fd(fd).map_err(|e| err(&e))
            }
        }
    }
}
