//! The values the commands take: sizes (`1M`), durations (`10s`) and ring names
//! (`/frames`, `sysv:0x1234`), parsed for clap (`value_parser`); and how names and
//! sizes are printed.

use std::fmt;
use std::time::Duration;

/// Parses a byte size: a number with an optional unit `K`, `M`, `G` (powers of 1024;
/// `KiB`, `k`, `KB` mean the same) or `B`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "'{s}' is not a size (examples: 65536, 64K, 1M, 4MiB)"
            ))
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a size (examples: 65536, 64K, 1M, 4MiB)"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// Parses a duration: seconds (`10`, `1.5`), or a number with `ms`, `s`, `m` or `h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit {
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "'{s}' is not a duration (examples: 10, 2.5s, 500ms, 1m)"
            ))
        }
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (examples: 10, 2.5s, 500ms, 1m)"))?;
    Duration::try_from_secs_f64(n * scale).map_err(|_| format!("'{s}' is out of range"))
}

/// A ring's name as the commands take it: a POSIX name, with or without its leading
/// slash (`frames` is `/frames`), or a SysV key (`sysv:0x5348ab01`, `sysv:12345`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RingName {
    Posix(String),
    SysV(i32),
}

impl RingName {
    pub fn parse(s: &str) -> Result<RingName, String> {
        if let Some(rest) = s.strip_prefix("sysv:") {
            let key = match rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
                Some(hex) => u32::from_str_radix(hex, 16).ok().map(|k| k as i32),
                None => rest.parse::<i32>().ok(),
            };
            return match key {
                Some(0) => Err(format!(
                    "invalid ring name '{s}': SysV key 0 is IPC_PRIVATE, which nobody can open"
                )),
                Some(key) => Ok(RingName::SysV(key)),
                None => Err(format!(
                    "invalid ring name '{s}': a SysV ring is sysv: and its key, e.g. sysv:0x5348ab01"
                )),
            };
        }
        // The library's rule: with or without the leading '/', shown with it.
        match shmlane::canonical_name(s) {
            Ok(name) => Ok(RingName::Posix(name.into_owned())),
            Err(shmlane::Error::InvalidName { reason, .. }) => {
                Err(format!("invalid ring name '{s}': {reason}"))
            }
            Err(e) => Err(format!("invalid ring name '{s}': {e}")),
        }
    }

    /// Removes the ring's name (POSIX) or the segment (SysV).
    pub fn remove(&self) -> Result<(), shmlane::Error> {
        match self {
            RingName::Posix(n) => shmlane::remove(n),
            RingName::SysV(key) => shmlane::remove_sysv(*key),
        }
    }
}

impl fmt::Display for RingName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingName::Posix(n) => f.write_str(n),
            RingName::SysV(key) => write!(f, "sysv:{:#010x}", *key as u32),
        }
    }
}

/// `s` as it may be printed to a terminal: every control character (C0, DEL, C1), and
/// the backslash that introduces the escapes, written as `\x1b`, `\u{9b}`, `\\`. A
/// ring name is whatever another user put in /dev/shm, and a name carrying terminal
/// escapes must not be able to clear the screen or forge lines of `ls` or `rm`.
pub fn printable(s: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c.is_control() && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// `1.50 MiB`, `512 B`, `4.00 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if v >= 100.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else if v >= 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.2} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_control_characters() {
        assert_eq!(printable("/frames"), "/frames");
        assert_eq!(printable("/a\x1b[2Jb"), "/a\\x1b[2Jb");
        assert_eq!(printable("/a\nb\u{7f}\u{9b}\\"), "/a\\x0ab\\x7f\\u{9b}\\\\");
        assert_eq!(printable("/é"), "/é");
    }

    #[test]
    fn sizes_durations_names() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("1.5M").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(
            RingName::parse("frames"),
            Ok(RingName::Posix("/frames".into()))
        );
        assert_eq!(
            RingName::parse("/frames"),
            Ok(RingName::Posix("/frames".into()))
        );
        assert_eq!(RingName::parse("sysv:0x10"), Ok(RingName::SysV(16)));
        assert_eq!(RingName::SysV(16).to_string(), "sysv:0x00000010");
        assert!(RingName::parse("a/b").is_err());
        assert!(RingName::parse("/").is_err());
        assert!(RingName::parse("sysv:0").is_err());
        assert!(RingName::parse(&"x".repeat(300)).is_err());
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(4 << 30), "4.00 GiB");
    }
}
