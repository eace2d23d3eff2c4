//! The messages of the benches and of `shmlane bench`: a fixed filler pattern, the
//! sequence number in the first 8 bytes and a tag byte derived from it at the end.
//! Cheap enough to write and check on every message of a timed loop (two stores, two
//! loads and compares), while it still catches a lost, repeated, reordered or torn
//! message: a torn one has the head of one message and the tail of another.
//!
//! The sequence word's top bit ([`LAST`]) may mark the last message of a phase, so
//! that a receiver learns where a phase ends without knowing its length.

/// Set in a message's sequence word: the last message of its phase.
pub const LAST: u64 = 1 << 63;

/// The byte at the end of message `seq` (never 0, the filler's first value is 3).
#[inline]
pub fn tag(seq: u64) -> u8 {
    (seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8 | 1
}

/// A message of `len` bytes (at least 8: the sequence word) with a fixed filler
/// pattern; [`stamp`] makes it message number `seq`.
pub fn message(len: usize) -> Vec<u8> {
    (0..len.max(8)).map(|i| (i * 7 + 3) as u8).collect()
}

/// Makes `msg` (at least 8 bytes) message number `seq`, the last of its phase if
/// `last`.
#[inline]
pub fn stamp(msg: &mut [u8], seq: u64, last: bool) {
    let word = if last { seq | LAST } else { seq };
    msg[..8].copy_from_slice(&word.to_le_bytes());
    if msg.len() > 8 {
        let end = msg.len() - 1;
        msg[end] = tag(seq);
    }
}

/// Checks that `msg` is message number `seq` of `len` bytes; returns whether it is
/// the last of its phase. The error says what differs.
#[inline]
pub fn check(msg: &[u8], len: usize, seq: u64) -> Result<bool, String> {
    if msg.len() != len || len < 8 {
        return Err(format!(
            "message {seq}: {} bytes, expected {len}",
            msg.len()
        ));
    }
    let mut word = [0u8; 8];
    word.copy_from_slice(&msg[..8]);
    let word = u64::from_le_bytes(word);
    if word & !LAST != seq {
        return Err(format!(
            "message {seq}: carries sequence number {}",
            word & !LAST
        ));
    }
    if len > 8 && msg[len - 1] != tag(seq) {
        return Err(format!(
            "message {seq}: last byte {:#04x}, expected {:#04x}",
            msg[len - 1],
            tag(seq)
        ));
    }
    Ok(word & LAST != 0)
}

#[cfg(test)]
mod tests {
    use super::{check, message, stamp};

    #[test]
    fn stamp_and_check() {
        for len in [8, 9, 64, 4096] {
            let mut m = message(len);
            stamp(&mut m, 41, false);
            assert_eq!(check(&m, len, 41), Ok(false));
            assert!(check(&m, len, 42).is_err());
            assert!(check(&m[..len - 1], len, 41).is_err());
            stamp(&mut m, 42, true);
            assert_eq!(check(&m, len, 42), Ok(true));
            assert!(check(&m, len, 41).is_err());
            let mut flipped = m.clone();
            flipped[len - 1] ^= 0xff;
            assert!(check(&flipped, len, 42).is_err());
            if len > 8 {
                // A torn message: the head of 42, the tail of 41.
                m[len - 1] = super::tag(41);
                assert!(check(&m, len, 42).is_err());
            }
        }
    }
}
