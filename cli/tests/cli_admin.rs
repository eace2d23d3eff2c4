//! `shmlane inspect`, `ls` and `rm`: the JSON parses and says what the rings are,
//! `rm` refuses what is not a ring, and `rm --stale` removes the rings whose processes
//! are dead and keeps those with a live endpoint.

mod cli_util;

use std::process::Stdio;

use cli_util::{run, shmlane, wait_until, Proc, Ring, DEADLINE};
use serde_json::Value;

fn json(out: &[u8]) -> Value {
    serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(out)))
}

#[test]
fn inspect_describes_a_live_spsc_ring() {
    let ring = Ring::new("inspect");
    let mut tx = shmlane::spsc::Producer::create(ring.name(), &shmlane::RingOptions::new(64 << 10))
        .expect("create");
    tx.send(&[7; 100]).expect("send");

    let done = run(&["inspect", "--json", ring.name()]);
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    let v = json(&done.stdout);
    assert_eq!(v["name"], ring.name());
    assert_eq!(v["kind"], "spsc");
    assert_eq!(v["state"], "ready");
    assert_eq!(v["backing"], "posix");
    assert_eq!(v["capacity"], 64 << 10);
    assert_eq!(v["segment_size"], 4096 + (64 << 10));
    assert_eq!(v["notifier"], "futex");
    assert_eq!(v["max_endpoints"], 2);
    assert_eq!(v["mode"], "0600");
    assert_eq!(v["tail"], 8 + 104); // one record: header + 100 bytes padded to 8
    assert_eq!(v["head"], 0);
    assert_eq!(v["used"], 112);
    assert_eq!(v["creator"]["pid"], std::process::id());
    assert_eq!(v["creator"]["alive"], "alive");
    let eps = v["endpoints"].as_array().expect("endpoints");
    assert_eq!(eps.len(), 2);
    assert_eq!(eps[0]["role"], "producer");
    assert_eq!(eps[0]["state"], "attached");
    assert_eq!(eps[0]["pid"], std::process::id());
    assert_eq!(eps[0]["alive"], true);
    assert_eq!(eps[1]["role"], "consumer");
    assert_eq!(eps[1]["state"], "vacant");
    assert_eq!(v["live_endpoints"], 1);
    assert_eq!(v["stale"], false);
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0));

    // The same in words.
    let words = run(&["inspect", ring.name()]).stdout_str();
    for needle in [
        "spsc",
        "ready",
        "65536 bytes",
        "futex",
        "producer  attached",
        "consumer  vacant",
        "112 B in use",
    ] {
        assert!(words.contains(needle), "no {needle:?} in:\n{words}");
    }
    drop(tx);
    let v = json(&run(&["inspect", "--json", ring.name()]).stdout);
    assert_eq!(v["endpoints"][0]["state"], "detached");
    // Our process created it and still runs: not stale.
    assert_eq!(v["stale"], false);
}

#[test]
fn inspect_describes_an_mpmc_ring() {
    let ring = Ring::new("inspect-mpmc");
    let opts = shmlane::RingOptions::new(64 << 10)
        .cell_size(64)
        .max_endpoints(8);
    let tx = shmlane::mpmc::Producer::create(ring.name(), &opts).expect("create");
    let rx = shmlane::mpmc::Consumer::open(ring.name()).expect("open");
    let v = json(&run(&["inspect", "--json", ring.name()]).stdout);
    assert_eq!(v["kind"], "mpmc");
    assert_eq!(v["cell_size"], 64);
    assert_eq!(v["max_endpoints"], 8);
    assert_eq!(v["producers"]["attached"], 1);
    assert_eq!(v["consumers"]["attached"], 1);
    assert_eq!(v["live_endpoints"], 2);
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0), "{v}");
    let roles: Vec<&str> = v["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .filter_map(|e| e["role"].as_str())
        .collect();
    assert_eq!(roles, ["producer", "consumer"]);
    drop((tx, rx));
}

#[test]
fn inspect_describes_a_corrupt_header_and_refuses_what_is_not_a_ring() {
    let ring = Ring::new("corrupt");
    let tx = shmlane::spsc::Producer::create(ring.name(), &shmlane::RingOptions::new(4096))
        .expect("create");
    drop(tx);
    // Capacity (offset 32) no longer a power of two.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(ring.path())
        .expect("open segment");
    std::os::unix::fs::FileExt::write_all_at(&f, &1000u64.to_le_bytes(), 32).expect("poke");
    let done = run(&["inspect", "--json", ring.name()]);
    assert_eq!(
        done.code(),
        Some(0),
        "described, not refused: {}",
        done.stderr
    );
    let v = json(&done.stdout);
    assert_eq!(v["capacity"], 1000);
    let problems = v["problems"].as_array().expect("problems");
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.contains("capacity"))),
        "{problems:?}"
    );
    assert!(run(&["inspect", ring.name()])
        .stdout_str()
        .contains("capacity = 0x3e8"));

    let junk = Ring::new("notaring");
    std::fs::write(junk.path(), b"just some file, not a ring").expect("write");
    let done = run(&["inspect", junk.name()]);
    assert_eq!(done.code(), Some(2), "{}", done.stderr);
    let missing = Ring::new("missing");
    let done = run(&["inspect", missing.name()]);
    assert_eq!(done.code(), Some(2), "{}", done.stderr);
    assert!(done.stderr.contains("does not exist"), "{}", done.stderr);
}

#[test]
fn ls_lists_rings_and_skips_other_files() {
    let a = Ring::new("ls-a");
    let b = Ring::new("ls-b");
    let junk = Ring::new("ls-junk");
    std::fs::write(junk.path(), vec![1u8; 8192]).expect("write");
    let _tx = shmlane::spsc::Producer::create(a.name(), &shmlane::RingOptions::new(4096))
        .expect("create a");
    let _rx = shmlane::spsc::Consumer::create(b.name(), &shmlane::RingOptions::new(1 << 16))
        .expect("create b");

    let done = run(&["ls", "--json"]);
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    let v = json(&done.stdout);
    let rings = v.as_array().expect("an array");
    let find = |name: &str| rings.iter().find(|r| r["name"] == name).cloned();
    let ra = find(a.name()).expect("ring a listed");
    let rb = find(b.name()).expect("ring b listed");
    assert!(
        find(junk.name()).is_none(),
        "a file that is not a ring was listed"
    );
    assert_eq!(
        (ra["kind"].as_str(), ra["capacity"].as_u64()),
        (Some("spsc"), Some(4096))
    );
    assert_eq!(rb["capacity"], 1 << 16);
    assert_eq!(ra["live_endpoints"], 1);
    assert_eq!(ra["endpoints"][0]["alive"], true);
    assert_eq!(rb["endpoints"][1]["alive"], true);

    let table = run(&["ls"]).stdout_str();
    let header = table.lines().next().unwrap_or_default();
    for col in ["NAME", "KIND", "SIZE", "CAPACITY", "USED", "ALIVE", "STATE"] {
        assert!(header.contains(col), "{header}");
    }
    let line = table
        .lines()
        .find(|l| l.starts_with(a.name()))
        .expect("a in the table");
    assert!(
        line.contains("spsc") && line.contains("1/2") && line.contains("ready"),
        "{line}"
    );
    assert!(!table.contains(junk.name()));
}

#[test]
fn rm_refuses_what_is_not_a_ring_unless_forced() {
    let junk = Ring::new("rm-junk");
    std::fs::write(junk.path(), vec![0u8; 100]).expect("write");
    let done = run(&["rm", junk.name()]);
    assert_eq!(done.code(), Some(2), "{}", done.stderr);
    assert!(
        done.stderr.contains("not a shmlane ring"),
        "{}",
        done.stderr
    );
    assert!(junk.exists());
    let done = run(&["rm", "--force", junk.name()]);
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    assert!(!junk.exists());

    let missing = Ring::new("rm-missing");
    let done = run(&["rm", missing.name()]);
    assert_eq!(done.code(), Some(2), "{}", done.stderr);

    let ring = Ring::new("rm-ring");
    shmlane::spsc::create_ring(ring.name(), &shmlane::RingOptions::new(4096)).expect("create");
    let done = run(&["rm", "-v", ring.name(), missing.name()]);
    assert_eq!(done.code(), Some(2), "one of two failed: {}", done.stderr);
    assert!(done
        .stdout_str()
        .contains(&format!("removed {}", ring.name())));
    assert!(!ring.exists());
}

/// A ring whose sender was SIGKILLed (its creator and only endpoint are dead) is
/// stale; a ring with a receiver waiting is not.
#[test]
fn rm_stale_removes_dead_rings_and_keeps_live_ones() {
    let dead = Ring::new("stale-dead");
    let live = Ring::new("stale-live");

    let mut send_cmd = shmlane(&["send", dead.name()]);
    send_cmd.stdin(Stdio::piped());
    let mut sender = Proc::spawn(send_cmd);
    let mut recv_cmd = shmlane(&["recv", live.name()]);
    recv_cmd.stdin(Stdio::null());
    let receiver = Proc::spawn(recv_cmd);
    wait_until(DEADLINE, "both rings", || dead.exists() && live.exists());
    // The sender is attached (it waits on its stdin); kill it where it stands.
    wait_until(DEADLINE, "the sender's attach", || {
        shmlane::inspect::inspect(dead.name()).is_ok_and(|i| i.live_endpoints() == 1)
    });
    sender.kill();
    wait_until(DEADLINE, "the sender's death", || {
        shmlane::inspect::inspect(dead.name()).is_ok_and(|i| i.is_stale())
    });

    let v = json(&run(&["inspect", "--json", dead.name()]).stdout);
    assert_eq!(v["stale"], true);
    assert_eq!(v["endpoints"][0]["state"], "attached");
    assert_eq!(v["endpoints"][0]["alive"], false);
    assert_eq!(v["creator"]["alive"], "dead");

    // A dry run over the whole host names the dead ring, not the live one.
    let dry = run(&["rm", "--stale", "--dry-run"]);
    assert_eq!(dry.code(), Some(0), "{}", dry.stderr);
    let dry = dry.stdout_str();
    assert!(
        dry.contains(&format!("would remove {}", dead.name())),
        "{dry}"
    );
    assert!(!dry.contains(live.name()), "{dry}");
    assert!(dead.exists(), "a dry run removes nothing");

    // For real, limited to our two names (other tests on this host keep theirs).
    let done = run(&["rm", "--stale", dead.name(), live.name()]);
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    assert_eq!(done.stdout_str(), format!("removed {}\n", dead.name()));
    assert!(!dead.exists(), "the dead ring is gone");
    assert!(live.exists(), "the live ring stays");

    // Once its receiver is gone too, the live ring is stale.
    drop(receiver);
    wait_until(DEADLINE, "the receiver's death", || {
        shmlane::inspect::inspect(live.name()).is_ok_and(|i| i.is_stale())
    });
    assert!(shmlane::inspect::remove_if_stale(live.name()).expect("remove_if_stale"));
    assert!(!live.exists());
}

/// Makes the stale ring `name`: a forked child creates it and exits, so its creator
/// is dead and no endpoint ever attached.
fn make_stale_ring(name: &str) {
    let opts = shmlane::RingOptions::new(4096);
    // SAFETY: the child only creates the ring (it takes no lock another thread of the
    // harness may hold, and prints nothing), and leaves through `_exit`.
    let mut child = unsafe {
        shmlane_support::fork::fork(&[], || {
            i32::from(shmlane::spsc::create_ring(name, &opts).is_err())
        })
    }
    .expect("fork");
    let status = child.wait().expect("waitpid");
    assert!(
        status.success(),
        "create_ring({name}) in the child {status}"
    );
    wait_until(DEADLINE, "a stale ring", || {
        shmlane::inspect::inspect(name).is_ok_and(|i| i.is_stale())
    });
}

/// A stale ring that the sweeping user may read but not remove (another user's file,
/// planted read-only in /dev/shm, which sorts first) no longer stops `rm --stale`:
/// the sweep removes the stale ring beside it and reports the other.
#[test]
fn rm_stale_skips_what_it_cannot_remove_and_sweeps_the_rest() {
    const NOBODY: u32 = 65534;
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "skipped: the sweep must run as another user than the planted file's (needs root)"
        );
        return;
    }
    let planted = Ring::new("sweep-a-planted");
    let stale = Ring::new("sweep-b-stale");
    make_stale_ring(planted.name());
    make_stale_ring(stale.name());
    // The planted file stays root's, readable by all: nobody can list it, not open it
    // for writing. The stale ring is nobody's own.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(planted.path(), std::fs::Permissions::from_mode(0o444))
        .expect("chmod");
    std::os::unix::fs::chown(stale.path(), Some(NOBODY), Some(NOBODY)).expect("chown");

    use std::os::unix::process::CommandExt;
    // The sweep is host-wide (that is what it tests), but it runs as nobody: /dev/shm is
    // sticky, so it can remove only nobody's files, never the rings other tests (root)
    // are making; those it reports as skipped like the planted file.
    let mut cmd = shmlane(&["rm", "--stale"]);
    cmd.uid(NOBODY).gid(NOBODY).current_dir("/");
    let done = Proc::spawn(cmd).wait(DEADLINE);
    let out = done.stdout_str();
    assert!(
        out.contains(&format!("removed {}", stale.name())),
        "the stale ring beside the planted file was not removed: status {:?}\nstdout: {out}\nstderr: {}",
        done.code(),
        done.stderr
    );
    assert!(!stale.exists());
    assert!(planted.exists(), "nobody cannot remove root's file");
    assert!(
        done.stderr.contains(&format!("skipped {}", planted.name())),
        "the planted file is not reported: {}",
        done.stderr
    );
    assert_eq!(
        done.code(),
        Some(1),
        "a ring not removed is an I/O failure: {}",
        done.stderr
    );
}

/// A ring name is whatever a user put in /dev/shm: one carrying terminal escapes is
/// printed with them escaped by `ls` (and `ls --json`), never raw.
#[test]
fn ls_escapes_control_characters_in_names() {
    let ring = Ring::new("ls-esc\x1b[2J\x1b]0;owned\x07");
    shmlane::spsc::create_ring(ring.name(), &shmlane::RingOptions::new(4096)).expect("create");
    for args in [&["ls"][..], &["ls", "--json"][..]] {
        let done = run(args);
        assert_eq!(done.code(), Some(0), "{}", done.stderr);
        assert!(
            !done.stdout.iter().any(|&b| b == 0x1b || b == 0x07),
            "{args:?} printed a raw control character: {:?}",
            done.stdout_str()
        );
    }
    let table = run(&["ls"]).stdout_str();
    assert!(
        table.contains("ls-esc\\x1b[2J\\x1b]0;owned\\x07"),
        "the name is not in the table, escaped: {table}"
    );
    let v = json(&run(&["ls", "--json"]).stdout);
    assert!(
        v.as_array()
            .expect("an array")
            .iter()
            .any(|r| r["name"] == ring.name()),
        "the JSON carries the name exactly, escaped by JSON"
    );
}
