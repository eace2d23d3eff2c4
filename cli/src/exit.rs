//! Exit statuses, and the failure a command returns to `main`.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | an I/O error (reading the input, writing the output, a system call) |
//! | 2 | the name or the options cannot be used: a usage error, an invalid ring name, a name that is not a shmlane ring (or one this build cannot use), a ring whose sender or receiver is already attached, no such ring |
//! | 3 | the peer went away in the middle of a transfer (it exited, was killed, or detached before the end) |
//! | 4 | `--timeout` passed while waiting for the peer |
//!
//! Killed by signal N, the shell reports 128 + N as for any command.

use std::process::ExitCode;

/// Exit status: an I/O error.
pub const IO: u8 = 1;
/// Exit status: a bad name or invalid options (also what `main` uses for usage errors).
pub const BAD_USE: u8 = 2;
/// Exit status: the peer went away mid-transfer.
pub const PEER_GONE: u8 = 3;
/// Exit status: the timeout passed while waiting for the peer.
pub const TIMEOUT: u8 = 4;

/// The exit status lines of `--help`, for the commands that use all of them.
macro_rules! exit_status_help {
    () => {
        "Exit status:
  0  success
  1  I/O error (reading the input, writing the output, a system call failed)
  2  bad name or invalid options: a usage error, an invalid ring name, a name
     that is not a shmlane ring (or one of another layout), a ring that already
     has a sender (receiver) attached, another user's ring (without
     --foreign-owner) or one shared with the group (without --group-access)
  3  the peer went away mid-transfer: it exited, was killed or left before
     the end
  4  --timeout passed while waiting for the peer
"
    };
}
pub(crate) use exit_status_help;

/// The exit statuses of every command, in the top-level `--help`.
pub const ALL_EXIT_STATUSES: &str = "\
Exit status (every command; 'shmlane help COMMAND' says which it uses):
  0  success
  1  I/O error (reading the input, writing the output, a system call failed)
  2  bad name or invalid options: a usage error, an invalid ring name, no such
     ring, a name that is not a shmlane ring (or one of another layout), a
     ring that already has a sender (receiver) attached, another user's ring
     (without --foreign-owner)
  3  send, recv: the peer went away mid-transfer: it exited, was killed or
     left before the end
  4  send, recv: --timeout passed while waiting for the peer
  128+N  killed by signal N (141: SIGPIPE, its reader went away)";

/// Why a command failed: its exit status and what to tell the user.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub fn io(message: impl Into<String>) -> Failure {
        Failure::new(IO, message)
    }

    pub fn bad_use(message: impl Into<String>) -> Failure {
        Failure::new(BAD_USE, message)
    }

    pub fn peer_gone(message: impl Into<String>) -> Failure {
        Failure::new(PEER_GONE, message)
    }

    /// A setup error of the library (creating, opening, inspecting, removing a ring),
    /// with the status its kind calls for.
    pub fn setup(e: &shmlane::Error) -> Failure {
        use shmlane::Error as E;
        let code = match e {
            E::Io { .. } | E::NoSpace { .. } => IO,
            // Everything else says the name or options cannot be used as given.
            _ => BAD_USE,
        };
        let mut message = e.to_string();
        if let E::Permissions { .. } = e {
            message = flags_for_options(&message);
        }
        if let E::Busy { name, endpoint } = e {
            message = format!(
                "ring {name} already has a {endpoint} attached (if that process is gone, \
                 'shmlane inspect {name}' shows it dead and 'shmlane rm {name}' removes the ring)"
            );
        }
        if let E::NotFound { .. } = e {
            message.push_str(" ('shmlane ls' lists the rings on this host)");
        }
        Failure::new(code, message)
    }
}

/// Prints a command's failure and turns its result into the exit status.
pub fn report(command: &str, result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("shmlane {command}: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// `message`, a library error that names the option accepting what it refused, with
/// the command's flag for that option instead: a command-line user cannot call
/// `OpenOptions::foreign_owner`. A mode that no flag accepts (beyond 0660) is to be
/// changed with chmod.
fn flags_for_options(message: &str) -> String {
    let mut m = message
        .replace("OpenOptions::foreign_owner(true)", "--foreign-owner")
        .replace(
            "OpenOptions::group_access(true) (RingOptions::group_access for create_or_open)",
            "--group-access",
        );
    if let Some(at) = m.find("accept it with OpenOptions::accept_mode(") {
        m.truncate(at);
        m.push_str(
            "the command accepts at most mode 0660 (with --group-access): chmod the \
             segment, or remove it",
        );
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_flags() {
        let e = shmlane::Error::Permissions {
            name: "/r".into(),
            owner: 65534,
            mode: 0o600,
            reason: "its owner uid 65534 is not this process's effective uid 0; accept a \
                     segment of another user with OpenOptions::foreign_owner(true)"
                .into(),
        };
        let f = Failure::setup(&e);
        assert_eq!(f.code, BAD_USE);
        assert!(f.message.ends_with("with --foreign-owner"), "{}", f.message);
        let m = flags_for_options(
            "its mode grants its group more than the 0600 accepted (bits 0060); accept it \
             with OpenOptions::group_access(true) (RingOptions::group_access for create_or_open)",
        );
        assert!(m.ends_with("with --group-access"), "{m}");
        let m = flags_for_options(
            "its mode grants every user more than the 0600 accepted (bits 0066); accept it \
             with OpenOptions::accept_mode(0o666)",
        );
        assert!(!m.contains("OpenOptions") && m.contains("chmod"), "{m}");
    }

    #[test]
    fn a_missing_ring_points_at_ls() {
        let f = Failure::setup(&shmlane::Error::NotFound {
            name: "/nosuch".into(),
        });
        assert_eq!(f.code, BAD_USE);
        assert!(
            f.message.contains("/nosuch does not exist") && f.message.contains("shmlane ls"),
            "{}",
            f.message
        );
    }
}
