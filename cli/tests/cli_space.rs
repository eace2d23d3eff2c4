//! A ring too large for /dev/shm is refused by the command with a message that names
//! the filesystem and its free space (exit 1), never a SIGBUS in the middle of a
//! transfer.
//!
//! The command runs under `unshare --mount` with a small tmpfs mounted over /dev/shm in
//! that private namespace, so nothing outside it sees the mount. That needs root
//! (CAP_SYS_ADMIN) and the `unshare` tool: elsewhere the test says why it skips.

#![cfg(all(target_os = "linux", not(miri)))]

mod cli_util;

use std::process::Command;

/// The size of the tmpfs mounted over /dev/shm.
const TMPFS: &str = "8M";

#[test]
fn the_cli_reports_a_ring_too_large_for_dev_shm() {
    if !is_root() {
        eprintln!("skipped: not root (mounting a small tmpfs needs CAP_SYS_ADMIN)");
        return;
    }
    let name = format!("shmlane-test-reserve-cli-{}", std::process::id());
    // A 2 s timeout bounds a receiver that (wrongly) made the ring and waits.
    let script = format!(
        "mount -t tmpfs -o size={TMPFS},mode=1777 tmpfs /dev/shm || exit 77; \
         exec \"$0\" recv -q -s 64M -t 2s {name} /dev/null"
    );
    let out = match Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .arg(cli_util::bin())
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped: cannot run unshare: {e}");
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(77) || stderr.starts_with("unshare:") {
        eprintln!("skipped: no private mount namespace here: {stderr}");
        return;
    }
    assert!(
        out.status.code() == Some(1) && stderr.contains("/dev/shm") && stderr.contains("free"),
        "shmlane recv -s 64M on an 8 MiB /dev/shm: {:?}, stderr: {stderr}",
        out.status
    );
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
