//! The one reader of `/proc`: a process's state and start time (`/proc/PID/stat`),
//! whether a pid names a live process, this process's pid namespace, the System V
//! shared-memory table (`/proc/sysvipc/shm`), `/proc/meminfo`, `/proc/mounts`, and
//! what a descriptor of this process names (`/proc/self/fd/N`).
//!
//! Under loom and Miri there is no `/proc` (Miri isolates the OS): nothing is known,
//! and every function answers as it does where `/proc` cannot be read (no start time,
//! namespace 0, no pid proven gone, no SysV segment).

/// What `/proc/PID/stat` says of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stat {
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    pub(crate) state: char,
    /// Field 22: when the process started, in clock ticks since boot. With the pid it
    /// names one process life.
    pub(crate) start_time: u64,
}

impl Stat {
    /// Whether the process has exited (a zombie not reaped yet, or dead): its pid is
    /// not reused yet, but nobody is there.
    pub(crate) fn exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// Parses the text of a `/proc/PID/stat`. The command name (field 2) is in
/// parentheses and may hold anything, spaces and parentheses too: the fields after it
/// start after its *last* `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let rest = text.get(text.rfind(')')? + 2..)?;
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // Field 22 is the 19th after field 3.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start_time })
}

/// `/proc/PID/stat` of `pid` (`None`: `/proc/self/stat`).
#[cfg(not(any(loom, miri)))]
pub(crate) fn stat(pid: Option<u32>) -> std::io::Result<Stat> {
    let text = match pid {
        Some(pid) => std::fs::read_to_string(format!("/proc/{pid}/stat"))?,
        None => std::fs::read_to_string("/proc/self/stat")?,
    };
    parse_stat(&text).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "unparsable /proc/PID/stat")
    })
}

/// Under loom and Miri: no `/proc`.
#[cfg(any(loom, miri))]
pub(crate) fn stat(pid: Option<u32>) -> std::io::Result<Stat> {
    let _ = pid;
    Err(std::io::ErrorKind::Unsupported.into())
}

/// The calling process's start time in clock ticks since boot (field 22 of
/// `/proc/self/stat`).
pub(crate) fn own_start_time() -> Option<u64> {
    stat(None).ok().map(|s| s.start_time)
}

/// Whether `pid` (of our pid namespace) names no process, a zombie, or a process that
/// did not start at `start` (clock ticks since boot; 0: not compared). `false` where
/// that cannot be read (`/proc/<pid>` hidden by `hidepid`, and the pid exists), and for
/// a pid no process can have (0, or above `i32::MAX`), which this cannot judge.
pub(crate) fn process_gone(pid: u32, start: u64) -> bool {
    if cfg!(any(loom, miri)) {
        return false;
    }
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    match stat(Some(pid)) {
        Ok(s) => s.exited() || (start != 0 && s.start_time != start),
        // Unparsable: alive (nothing is proven).
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => false,
        // Not there, or not readable (hidepid): ask the kernel whether the pid exists
        // at all. Only "no such process" proves a death.
        Err(_) => pid_unknown(raw),
    }
}

/// `kill(pid, 0)` fails with ESRCH: the kernel knows no such process.
#[cfg(not(any(loom, miri)))]
fn pid_unknown(pid: i32) -> bool {
    matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

#[cfg(any(loom, miri))]
fn pid_unknown(_pid: i32) -> bool {
    false
}

/// The inode of this process's pid namespace, 0 if it cannot be read, or if the
/// `/proc` mounted here is not our pid namespace's (then `/proc/<pid>` would not name
/// our pids). Not cached: a process may move (`setns`), and a child forked after
/// `unshare(CLONE_NEWPID)` is in a namespace its parent is not.
pub(crate) fn own_pid_namespace() -> u64 {
    if cfg!(any(loom, miri)) {
        return 0;
    }
    let me = std::fs::read_link("/proc/self").ok();
    if me.as_deref().and_then(|p| p.to_str()) != Some(&std::process::id().to_string()) {
        return 0;
    }
    let Ok(link) = std::fs::read_link("/proc/self/ns/pid") else {
        return 0;
    };
    parse_pid_namespace(link.to_str().unwrap_or(""))
}

/// `pid:[4026531836]` → 4026531836; 0 for anything else.
fn parse_pid_namespace(link: &str) -> u64 {
    link.strip_prefix("pid:[")
        .and_then(|s| s.strip_suffix(']'))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The System V shared-memory segments of this IPC namespace, `(key, shmid)`, from
/// `/proc/sysvipc/shm` (empty if it cannot be read).
pub(crate) fn sysv_segments() -> Vec<(i32, i32)> {
    if cfg!(any(loom, miri)) {
        return Vec::new();
    }
    std::fs::read_to_string("/proc/sysvipc/shm")
        .map(|table| parse_sysv_segments(&table))
        .unwrap_or_default()
}

/// The `(key, shmid)` of each line of a `/proc/sysvipc/shm` (after its title line).
fn parse_sysv_segments(table: &str) -> Vec<(i32, i32)> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let key: i32 = fields.next()?.parse().ok()?;
            let shmid: i32 = fields.next()?.parse().ok()?;
            Some((key, shmid))
        })
        .collect()
}

/// A value of `/proc/meminfo` (`HugePages_Total`, `Hugepagesize` in bytes, ...).
pub(crate) fn meminfo(key: &str) -> Option<u64> {
    if cfg!(any(loom, miri)) {
        return None;
    }
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?, key)
}

/// The value of `key` in the text of a `/proc/meminfo`, in bytes where it is in kB.
fn parse_meminfo(info: &str, key: &str) -> Option<u64> {
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?;
    let mut words = line.split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    Some(if words.next() == Some("kB") {
        n * 1024
    } else {
        n
    })
}

/// The text of `/proc/mounts` (this process's mount namespace).
pub(crate) fn mounts() -> std::io::Result<String> {
    if cfg!(any(loom, miri)) {
        return Err(std::io::ErrorKind::Unsupported.into());
    }
    std::fs::read_to_string("/proc/mounts")
}

/// What the descriptor `fd` of this process names: the target of `/proc/self/fd/N`
/// (`/memfd:<label> (deleted)`, `pipe:[1234]`, a path).
pub(crate) fn fd_link(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<std::path::PathBuf> {
    use std::os::fd::AsRawFd;
    if cfg!(any(loom, miri)) {
        return Err(std::io::ErrorKind::Unsupported.into());
    }
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `/proc/PID/stat` line for command `comm`, state `state`, start time `start`.
    fn line(comm: &str, state: char, start: u64) -> String {
        // Fields 4..=21 (18 of them), then 22 (the start time), then a few more.
        let middle: Vec<String> = (4..=21).map(|i| i.to_string()).collect();
        format!("4242 ({comm}) {state} {} {start} 0 0 0\n", middle.join(" "))
    }

    #[test]
    fn a_command_with_spaces_and_parentheses() {
        let s = parse_stat(&line("a) (b", 'S', 123456)).expect("parses");
        assert_eq!(
            s,
            Stat {
                state: 'S',
                start_time: 123456
            }
        );
        let s = parse_stat(&line("(a) (b)", 'R', 7)).expect("parses");
        assert_eq!((s.state, s.start_time), ('R', 7));
        assert!(!s.exited());
        let s = parse_stat(&line(") ) )", 'D', 8)).expect("parses");
        assert_eq!((s.state, s.start_time), ('D', 8));
    }

    #[test]
    fn a_zombie_has_exited() {
        let s = parse_stat(&line("worker", 'Z', 99)).expect("parses");
        assert!(s.exited());
        assert!(parse_stat(&line("worker", 'X', 99)).unwrap().exited());
        assert!(!parse_stat(&line("worker", 'S', 99)).unwrap().exited());
    }

    #[test]
    fn truncated_or_garbled_lines_are_none() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("4242 (cat"), None);
        assert_eq!(parse_stat("4242 (cat)"), None);
        assert_eq!(parse_stat("4242 (cat) S 1 2 3"), None);
        assert_eq!(
            parse_stat(&line("cat", 'S', 1).replace(" 1 0 0 0", " x 0 0 0")),
            None
        );
    }

    #[test]
    fn namespaces_and_sysv_tables() {
        assert_eq!(parse_pid_namespace("pid:[4026531836]"), 4026531836);
        assert_eq!(parse_pid_namespace("net:[1]"), 0);
        assert_eq!(parse_pid_namespace("pid:[x]"), 0);
        let table = "       key      shmid perms                  size  cpid  lpid nattch\n\
                     1213393665          5   600                  8192  100   100      1\n\
                     \x20        0          6   600                  4096  100   100      0\n";
        assert_eq!(parse_sysv_segments(table), vec![(1213393665, 5), (0, 6)]);
    }

    #[test]
    fn meminfo_values() {
        let info =
            "MemTotal:       16318412 kB\nHugePages_Total:       4\nHugepagesize:       2048 kB\n";
        assert_eq!(parse_meminfo(info, "MemTotal"), Some(16318412 * 1024));
        assert_eq!(parse_meminfo(info, "HugePages_Total"), Some(4));
        assert_eq!(parse_meminfo(info, "Hugepagesize"), Some(2 << 20));
        assert_eq!(parse_meminfo(info, "Huge"), None);
        assert_eq!(parse_meminfo(info, "MemFree"), None);
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads /proc: Miri isolates the OS")]
    fn this_process() {
        let me = stat(None).expect("/proc/self/stat");
        assert!(!me.exited());
        assert_eq!(own_start_time(), Some(me.start_time));
        assert!(!process_gone(std::process::id(), me.start_time));
        assert!(process_gone(std::process::id(), me.start_time + 1));
        assert_ne!(own_pid_namespace(), 0);
    }
}
