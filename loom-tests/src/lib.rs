//! Loom models of the shmlane protocols live in `tests/`; this crate holds only what
//! several of them share: the model messages, which carry their own length and
//! checksum, so that a model checks what it received against what the message says
//! it is, never against what arrived (a message cut short or mixed with another
//! fails).

/// Message `seq` of producer `id`, `4 <= len < 256` bytes: id, seq, its length, then
/// derived bytes, and last a checksum of all the bytes before it.
pub fn message(id: u8, seq: u8, len: usize) -> Vec<u8> {
    assert!((4..256).contains(&len), "a model message of {len} bytes");
    let mut m: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(id.wrapping_mul(59)) ^ seq)
        .collect();
    m[0] = id;
    m[1] = seq;
    m[2] = len as u8;
    m[len - 1] = checksum(&m[..len - 1]);
    m
}

/// The checksum a message carries in its last byte.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0x5a, |a: u8, &b| a.rotate_left(3) ^ b)
}

/// Checks a received message against what it carries (its length, its checksum, and
/// every byte of message `(id, seq)` of that length), never against what arrived: a
/// message cut short fails. Returns `(id, seq)`.
pub fn check(buf: &[u8]) -> (u8, u8) {
    assert!(buf.len() >= 4, "a message of {} bytes: {buf:?}", buf.len());
    let (id, seq, len) = (buf[0], buf[1], buf[2] as usize);
    assert_eq!(
        buf.len(),
        len,
        "message {id}/{seq} of {len} bytes arrived with {}",
        buf.len()
    );
    assert_eq!(
        buf[len - 1],
        checksum(&buf[..len - 1]),
        "checksum of {id}/{seq}"
    );
    assert_eq!(buf, message(id, seq, len), "content of {id}/{seq}");
    (id, seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_passes_and_a_damaged_one_fails() {
        let m = message(3, 7, 40);
        assert_eq!(check(&m), (3, 7));
        let short = &m[..39];
        assert!(std::panic::catch_unwind(|| check(short)).is_err());
        let mut flipped = m.clone();
        flipped[10] ^= 1;
        assert!(std::panic::catch_unwind(|| check(&flipped)).is_err());
    }
}
