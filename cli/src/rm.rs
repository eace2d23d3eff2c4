//! `shmlane rm NAME...` and `shmlane rm --stale`: remove rings.

use shmlane::Error;

use crate::args::{human_bytes, printable, RingName};
use crate::exit::{Failure, BAD_USE, IO};

/// The description in `shmlane rm --help`.
pub const ABOUT: &str = "\
Removes the rings NAME... (/dev/shm/NAME, or sysv:KEY). Processes that have a
ring open keep using it until they close it; its name is free at once. A name
that is not a shmlane ring is refused unless --force is given.

With --stale, removes every ring on this host that no live process uses: no
endpoint attached and alive, and no live creator (a ring still being created,
or made by a process that is waiting for its endpoints, is kept), and that holds
nothing undelivered (a transfer whose sender finished and left it for a receiver
to come is kept: 'shmlane recv NAME' reads it, 'shmlane rm NAME' drops it,
'shmlane ls' shows it 'undelivered'); with names,
only those of NAME... that are stale. Each is read again right before it is
removed. Prints the names it removes; a stale ring it cannot remove (another
user's, say) is skipped and named on stderr, and the sweep goes on (status 1).
Names are printed with control characters escaped (\\x1b).";

/// The exit statuses in `shmlane rm --help`.
pub const EXIT_STATUS: &str = "\
Exit status: 0 when every ring was removed, 1 on an I/O error (e.g. no
permission), 2 for a usage error, an invalid name, no such ring, or a name that
is not a shmlane ring (without --force). With several names, every name is
tried and the status is the worst.";

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(override_usage = "shmlane rm [--force] [-v] NAME...\n       \
                            shmlane rm --stale [--dry-run] [NAME...]")]
pub struct Options {
    /// The rings: /dev/shm/NAME, or sysv:KEY
    #[arg(value_name = "NAME", value_parser = RingName::parse, required_unless_present = "stale")]
    pub names: Vec<RingName>,
    /// Remove every stale ring instead of named ones
    #[arg(long)]
    pub stale: bool,
    /// With --stale: print what would be removed, remove nothing
    #[arg(short = 'n', long, requires = "stale")]
    pub dry_run: bool,
    /// Remove NAME even if it is not a shmlane ring (or one whose header cannot be
    /// read)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Print each name removed
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

pub fn run(opts: &Options) -> Result<(), Failure> {
    if opts.stale {
        return remove_stale(&opts.names, opts.dry_run);
    }
    let mut failed = 0;
    let mut worst = 0;
    for name in &opts.names {
        match remove_one(name, opts.force) {
            Ok(()) if opts.verbose => println!("removed {name}"),
            Ok(()) => {}
            Err(f) => {
                // Each failure as it happens; the status is the worst of them.
                eprintln!("shmlane rm: {}", f.message);
                failed += 1;
                if rank(f.code) > rank(worst) {
                    worst = f.code;
                }
            }
        }
    }
    if failed == 0 {
        return Ok(());
    }
    Err(Failure::new(
        worst,
        format!("{failed} of {} names not removed", opts.names.len()),
    ))
}

/// I/O errors outrank bad names: they are what an operator must look at.
fn rank(code: u8) -> u8 {
    match code {
        IO => 2,
        BAD_USE => 1,
        _ => 0,
    }
}

fn remove_one(name: &RingName, force: bool) -> Result<(), Failure> {
    match shmlane::inspect::inspect(&name.to_string()) {
        Ok(info) => {
            let alive = info.live_endpoints();
            if info.holds_undelivered() {
                eprintln!(
                    "shmlane rm: note: {name} held {} undelivered, that no receiver will get now",
                    human_bytes(info.used.unwrap_or(0))
                );
            }
            if alive > 0 {
                eprintln!(
                    "shmlane rm: note: {name} still has {alive} live endpoint(s); they keep \
                     using it until they close it"
                );
            }
        }
        Err(Error::NotFound { .. }) => {
            return Err(Failure::bad_use(format!("{name}: no such ring")));
        }
        // A half-made ring whose creator died (it has the magic): a ring, removed.
        Err(Error::Abandoned { .. }) => {}
        // Permissions and the like: say so, rather than "not a ring".
        Err(e @ Error::Io { .. }) if !force => return Err(Failure::setup(&e)),
        Err(e) if !force => {
            let why = crate::inspect::not_a_ring(name, &e)
                .unwrap_or_else(|| format!("{name} is not a shmlane ring ({e})"));
            return Err(Failure::bad_use(format!(
                "{why}; --force removes it anyway"
            )));
        }
        Err(_) => {}
    }
    name.remove().map_err(|e| match e {
        Error::NotFound { .. } => Failure::bad_use(format!("{name}: no such ring")),
        e => Failure::setup(&e),
    })
}

fn remove_stale(names: &[RingName], dry_run: bool) -> Result<(), Failure> {
    if names.is_empty() {
        if dry_run {
            let rings = shmlane::inspect::list().map_err(|e| Failure::setup(&e))?;
            for r in rings.iter().filter(|r| r.is_stale()) {
                println!("would remove {}", printable(&r.name));
            }
            return Ok(());
        }
        let sweep = shmlane::inspect::remove_stale().map_err(|e| Failure::setup(&e))?;
        for name in &sweep.removed {
            println!("removed {}", printable(name));
        }
        // Each ring that could not be removed is said, and the others were swept.
        for (name, e) in &sweep.skipped {
            eprintln!(
                "shmlane rm: skipped {}: {}",
                printable(name),
                printable(&e.to_string())
            );
        }
        if !sweep.skipped.is_empty() {
            return Err(Failure::io(format!(
                "{} stale ring(s) not removed",
                sweep.skipped.len()
            )));
        }
        return Ok(());
    }
    for name in names {
        let name = name.to_string();
        if dry_run {
            match shmlane::inspect::inspect(&name) {
                Ok(info) if info.is_stale() => println!("would remove {name}"),
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(Failure::setup(&e)),
            }
        } else if shmlane::inspect::remove_if_stale(&name).map_err(|e| Failure::setup(&e))? {
            println!("removed {name}");
        }
    }
    Ok(())
}
