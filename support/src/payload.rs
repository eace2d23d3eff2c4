//! The messages of the tests: deterministic, so that a producer and a consumer in
//! different processes derive the same sizes and bytes from a seed, and a failure
//! replays.
//!
//! - [`Rng`]: xorshift64, seeded through [`splitmix64`];
//! - [`fill_message`], [`check_message`], [`message`]: a message that carries its
//!   sequence number and a checksum of a body derived from it (under
//!   [`MSG_HEADER`] bytes: the first bytes of both, compared byte by byte);
//! - [`message_len`]: sizes that cover a ring's small, one-record, fragmented and
//!   boundary cases;
//! - [`fill_stream`], [`check_stream`]: one long checkable byte stream, from any
//!   offset.
//!
//! The benches' messages, cheap enough to check in a timed loop, are in
//! [`crate::stamp`].

/// xorshift64: deterministic, so the producer and the consumer derive the same
/// sequence of sizes from the same seed, and failures replay.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, zero too).
    pub fn new(seed: u64) -> Rng {
        Rng(splitmix64(seed) | 1)
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform-ish in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below((hi - lo + 1) as u64) as usize
    }
}

/// A good 64-bit mix (splitmix64's finaliser of `x + golden`).
#[inline]
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Bytes of a message before its body: the sequence number, then the checksum.
pub const MSG_HEADER: usize = 16;

/// Order-sensitive 64-bit checksum of `body`, keyed by the message's seq and length.
pub fn checksum(seq: u64, len: usize, body: &[u8]) -> u64 {
    let mut h = splitmix64(seq ^ ((len as u64) << 40));
    let mut words = body.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        h = (h.rotate_left(23) ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(last)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    splitmix64(h)
}

/// Fills `buf` (the whole message) for sequence number `seq`.
///
/// A message of at least [`MSG_HEADER`] bytes is `seq`, a checksum of the body, then
/// the body (bytes derived from `seq`). A shorter one holds the first bytes of `seq`
/// and of a value derived from it, and is checked by comparing bytes.
pub fn fill_message(buf: &mut [u8], seq: u64) {
    let len = buf.len();
    if len < MSG_HEADER {
        let mut short = [0u8; MSG_HEADER];
        short[..8].copy_from_slice(&seq.to_le_bytes());
        short[8..].copy_from_slice(&splitmix64(seq).to_le_bytes());
        buf.copy_from_slice(&short[..len]);
        return;
    }
    let key = splitmix64(seq.wrapping_mul(0x2545_f491_4f6c_dd1d));
    for (j, chunk) in buf[MSG_HEADER..].chunks_mut(8).enumerate() {
        let w = splitmix64(key.wrapping_add(j as u64)).to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
    let sum = checksum(seq, len, &buf[MSG_HEADER..]);
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[8..MSG_HEADER].copy_from_slice(&sum.to_le_bytes());
}

/// A new message of `len` bytes for `seq`.
pub fn message(seq: u64, len: usize) -> Vec<u8> {
    let mut m = vec![0; len];
    fill_message(&mut m, seq);
    m
}

/// Checks that `msg` is message `seq` of `len` bytes: its length, its sequence number
/// and its checksum (or, under 16 bytes, every byte).
pub fn check_message(msg: &[u8], seq: u64, len: usize) -> Result<(), String> {
    if msg.len() != len {
        return Err(format!(
            "message {seq}: length {} instead of {len}",
            msg.len()
        ));
    }
    if len < MSG_HEADER {
        let mut want = [0u8; MSG_HEADER];
        fill_message(&mut want[..len], seq);
        if msg != &want[..len] {
            return Err(format!(
                "message {seq} ({len} bytes): {msg:02x?} instead of {:02x?}",
                &want[..len]
            ));
        }
        return Ok(());
    }
    let got_seq = u64::from_le_bytes(msg[..8].try_into().expect("8 bytes"));
    if got_seq != seq {
        return Err(format!(
            "expected message {seq} ({len} bytes), got sequence number {got_seq}"
        ));
    }
    let got_sum = u64::from_le_bytes(msg[8..MSG_HEADER].try_into().expect("8 bytes"));
    let sum = checksum(seq, len, &msg[MSG_HEADER..]);
    if got_sum != sum {
        return Err(format!(
            "message {seq} ({len} bytes): checksum {got_sum:#x}, computed {sum:#x}"
        ));
    }
    Ok(())
}

/// A message length for a ring of `capacity` bytes: mostly small, some up to one
/// record, some in fragments (up to 3 × capacity), and the boundary sizes.
pub fn message_len(rng: &mut Rng, capacity: usize) -> usize {
    let max_payload = capacity / 2 - 8;
    match rng.below(100) {
        0..=54 => rng.range(0, 64),
        55..=79 => rng.range(0, 1024.min(max_payload)),
        80..=91 => rng.range(0, max_payload),
        92..=96 => rng.range(max_payload + 1, 3 * capacity),
        _ => {
            let edges = [
                0,
                1,
                7,
                8,
                15,
                16,
                17,
                max_payload - 8,
                max_payload - 1,
                max_payload,
                max_payload + 1,
                max_payload + 8,
                capacity - 8,
                capacity,
                capacity + 1,
                2 * capacity,
                3 * capacity - 1,
                3 * capacity,
            ];
            edges[rng.below(edges.len() as u64) as usize]
        }
    }
}

/// The `i`-th 8-byte word of the stream used by the large-message tests.
#[inline]
pub fn stream_word(i: u64) -> u64 {
    splitmix64(i ^ 0x5eed_5eed_5eed_5eed)
}

/// Fills `buf` with the stream's bytes from byte offset `offset` on.
pub fn fill_stream(buf: &mut [u8], offset: u64) {
    let mut o = offset;
    let mut i = 0;
    // Unaligned head, byte by byte.
    while i < buf.len() && o % 8 != 0 {
        buf[i] = stream_word(o / 8).to_le_bytes()[(o % 8) as usize];
        i += 1;
        o += 1;
    }
    let mut words = buf[i..].chunks_exact_mut(8);
    for w in &mut words {
        w.copy_from_slice(&stream_word(o / 8).to_le_bytes());
        o += 8;
    }
    let rest = words.into_remainder();
    let last = stream_word(o / 8).to_le_bytes();
    let n = rest.len();
    rest.copy_from_slice(&last[..n]);
}

/// Checks that `buf` holds the stream's bytes from byte offset `offset` on. Returns
/// the offset of the first wrong byte.
pub fn check_stream(buf: &[u8], offset: u64) -> Result<(), u64> {
    let mut o = offset;
    let mut i = 0;
    while i < buf.len() && o % 8 != 0 {
        if buf[i] != stream_word(o / 8).to_le_bytes()[(o % 8) as usize] {
            return Err(o);
        }
        i += 1;
        o += 1;
    }
    let mut words = buf[i..].chunks_exact(8);
    for w in &mut words {
        if u64::from_le_bytes(w.try_into().expect("8 bytes")) != stream_word(o / 8) {
            return Err(o);
        }
        o += 8;
    }
    let rest = words.remainder();
    let last = stream_word(o / 8).to_le_bytes();
    for (k, &b) in rest.iter().enumerate() {
        if b != last[k] {
            return Err(o + k as u64);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_streams_check_and_catch_a_flipped_byte() {
        for len in [0, 1, 15, 16, 17, 100, 4096] {
            let mut m = message(9, len);
            check_message(&m, 9, len).expect("a fresh message checks");
            assert!(check_message(&m, 8, len).is_err() || len == 0);
            if len > 0 {
                m[len - 1] ^= 1;
                assert!(check_message(&m, 9, len).is_err(), "{len} bytes");
            }
        }
        let mut s = vec![0u8; 1000];
        fill_stream(&mut s, 13);
        assert_eq!(check_stream(&s, 13), Ok(()));
        s[500] ^= 0x80;
        // Reported at the start of the 8-byte word that holds the flipped byte.
        let at = check_stream(&s, 13).expect_err("a flipped byte");
        assert!(at <= 513 && 513 < at + 8, "{at}");
        let mut r = Rng::new(0);
        for _ in 0..1000 {
            assert!(message_len(&mut r, 4096) <= 3 * 4096);
            assert!((3..=5).contains(&r.range(3, 5)));
        }
    }
}
