//! `shmlane ls [--json]`: the shmlane rings on this host, through
//! `shmlane::inspect::list`.

use shmlane::inspect::{RingInfo, SegmentState};

use crate::args::{human_bytes, printable};
use crate::exit::Failure;
use crate::inspect::RingJson;
use crate::output;

/// The description in `shmlane ls --help`.
pub const ABOUT: &str = "\
Lists the shmlane rings on this host that this user may read: the files in
/dev/shm that hold a shmlane header (other files are left out), then the
System V segments that do. For each: its name, kind, segment size, capacity,
fill level, how many endpoints are attached and alive, and its state, with
'undelivered' when it holds a transfer that its sender finished and no receiver
has read yet ('shmlane recv NAME' reads it; 'shmlane rm --stale' keeps it),
'stale' when no live process uses it and it holds nothing undelivered ('shmlane
rm --stale' removes those), and 'problems' when its header does not validate
('shmlane inspect NAME' says what is wrong). Names are printed with control
characters escaped (\\x1b), since anyone may put a file in /dev/shm.";

/// The exit statuses in `shmlane ls --help`.
pub const EXIT_STATUS: &str = "\
Exit status: 0 when the rings were listed (none is fine), 1 when /dev/shm
cannot be read, 2 for a usage error.";

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Options {
    /// Print a JSON array with one object per ring, as 'shmlane inspect --json'
    /// prints it
    #[arg(long)]
    pub json: bool,
}

pub fn run(opts: &Options) -> Result<(), Failure> {
    let rings = shmlane::inspect::list().map_err(|e| Failure::setup(&e))?;
    if opts.json {
        let rings: Vec<RingJson<'_>> = rings.iter().map(RingJson::new).collect();
        output::print(&output::json(&rings))
    } else {
        output::print(&table(&rings))
    }
}

/// The state column: the segment state, then what needs attention.
fn state(r: &RingInfo) -> String {
    let mut s = match r.state {
        SegmentState::Unknown(w) => format!("unknown ({w:#x})"),
        st => st.as_str().to_string(),
    };
    if r.holds_undelivered() {
        // Left for a receiver to come: not stale, whoever has left.
        s.push_str(", undelivered");
    } else if r.is_stale() {
        s.push_str(", stale");
    }
    if !r.is_valid() {
        s.push_str(", problems");
    }
    s
}

/// The rings as a table with a header line.
pub fn table(rings: &[RingInfo]) -> String {
    let rows: Vec<[String; 7]> = rings
        .iter()
        .map(|r| {
            let used = match r.used {
                Some(u) if r.capacity > 0 => human_bytes(u),
                _ => "?".to_string(),
            };
            [
                printable(&r.name),
                r.kind.as_str().to_string(),
                human_bytes(r.segment_size),
                human_bytes(r.capacity),
                used,
                format!("{}/{}", r.live_endpoints(), r.endpoints.len()),
                state(r),
            ]
        })
        .collect();
    let head = ["NAME", "KIND", "SIZE", "CAPACITY", "USED", "ALIVE", "STATE"];
    let mut widths = head.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut push = |cells: [&str; 7]| {
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push('\n');
    };
    push(head);
    for row in &rows {
        push(row.each_ref().map(String::as_str));
    }
    out
}
