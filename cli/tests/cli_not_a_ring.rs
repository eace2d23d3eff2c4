//! Files in /dev/shm that are not shmlane rings (other programs share it): `inspect`
//! says a file with no shmlane header is not a shmlane ring (status 2), not that it
//! is corrupt; `ls` leaves such files out; `rm` refuses them without `--force`. A
//! real ring with a bad field is still described as corrupt. Every file is removed
//! at the end.

mod cli_util;

use cli_util::{random_bytes, run, Ring};

/// `inspect` (in words and as JSON) refuses `ring` as not a shmlane ring.
fn refused_as_not_a_ring(ring: &Ring, what: &str) {
    for json in [false, true] {
        let mut args = vec!["inspect"];
        if json {
            args.push("--json");
        }
        args.push(ring.name());
        let done = run(&args);
        assert_eq!(done.code(), Some(2), "{what} {args:?}: {}", done.stderr);
        assert!(done.stdout.is_empty(), "{what}: {}", done.stdout_str());
        let expected = format!("{} is not a shmlane ring (no shmlane header", ring.name());
        assert!(
            done.stderr.contains(&expected),
            "{what}: no {expected:?} in: {}",
            done.stderr
        );
        assert!(
            !done.stderr.contains("corrupt"),
            "{what} is called corrupt: {}",
            done.stderr
        );
    }
}

#[test]
fn inspect_ls_and_rm_on_files_that_are_not_rings() {
    let random = Ring::new("foreign-random");
    let zeros = Ring::new("foreign-zeros");
    std::fs::write(random.path(), random_bytes(5000, 31)).expect("write");
    std::fs::write(zeros.path(), vec![0u8; 8192]).expect("write");

    refused_as_not_a_ring(&random, "a file of random bytes");
    refused_as_not_a_ring(&zeros, "a file of zeros");

    // ls: left out, in the table and the JSON.
    for args in [&["ls"][..], &["ls", "--json"][..]] {
        let done = run(args);
        assert_eq!(done.code(), Some(0), "{args:?}: {}", done.stderr);
        let out = done.stdout_str();
        for f in [&random, &zeros] {
            assert!(
                !out.contains(f.name()),
                "{args:?} lists {}:\n{out}",
                f.name()
            );
        }
    }

    // rm: refused, with the same reason, unless forced.
    let done = run(&["rm", random.name()]);
    assert_eq!(done.code(), Some(2), "{}", done.stderr);
    assert!(
        done.stderr
            .contains("is not a shmlane ring (no shmlane header"),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("--force"), "{}", done.stderr);
    assert!(random.exists() && zeros.exists());
    for f in [&random, &zeros] {
        let done = run(&["rm", "--force", f.name()]);
        assert_eq!(done.code(), Some(0), "{}", done.stderr);
        assert!(!f.exists());
    }
}

/// A ring with the magic but a field no shmlane writes (a capacity that is not a
/// power of two) is a corrupt ring: described (status 0) with what is wrong, and
/// listed with problems.
#[test]
fn a_ring_with_a_bad_field_is_still_corrupt() {
    let ring = Ring::new("foreign-poked");
    shmlane::spsc::create_ring(ring.name(), &shmlane::RingOptions::new(4096)).expect("create");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(ring.path())
        .expect("open segment");
    // Capacity (offset 32) no longer a power of two.
    std::os::unix::fs::FileExt::write_all_at(&f, &1000u64.to_le_bytes(), 32).expect("poke");
    let done = run(&["inspect", ring.name()]);
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    let words = done.stdout_str();
    assert!(words.contains("corrupt"), "{words}");
    assert!(words.contains("capacity = 0x3e8"), "{words}");
    assert!(!words.contains("not a shmlane ring"), "{words}");
    let table = run(&["ls"]).stdout_str();
    let line = table
        .lines()
        .find(|l| l.starts_with(ring.name()))
        .unwrap_or_else(|| panic!("the corrupt ring is not listed:\n{table}"));
    assert!(line.contains("problems"), "{line}");
}
