//! Who this process runs as: its real and effective user, its groups.

/// The real user id (the creator's, written into a new header).
pub(crate) fn uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

/// The effective user id (who opens, for the permission checks).
pub(crate) fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The effective group id.
pub(crate) fn egid() -> u32 {
    nix::unistd::getegid().as_raw()
}

/// Whether this process is in group `gid`: its effective group or a supplementary one.
pub(crate) fn in_group(gid: u32) -> bool {
    egid() == gid
        || nix::unistd::getgroups().is_ok_and(|groups| groups.iter().any(|g| g.as_raw() == gid))
}
