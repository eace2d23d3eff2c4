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
     has a sender (receiver) attached
  3  the peer went away mid-transfer: it exited, was killed or left before the end
  4  --timeout passed while waiting for the peer
"
    };
}
pub(crate) use exit_status_help;

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
        if let E::Busy { name, endpoint } = e {
            message = format!(
                "ring {name} already has a {endpoint} attached (if that process is gone, \
                 'shmlane inspect {name}' shows it dead and 'shmlane rm {name}' removes the ring)"
            );
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
