//! Records: the framing of the byte ring. Pure code, no shared-memory access.
//!
//! A record is an 8-byte header word followed by the payload, padded to 8 bytes:
//!
//! ```text
//! bit  0..32  payload length in bytes (for a BEGIN-only fragment it includes the
//!             8-byte total-length prefix that follows the header)
//! bit 32..40  flags: VALID (always set, so a header word is never 0), PAD, BEGIN, END, ABORT
//! bit 40..64  tag: bits 3..27 of the record's ring position, XOR bits 27..51 (see
//!             [`tag`])
//! ```
//!
//! The header word is also the record's commit word: the producer writes the payload,
//! then stores the header with Release; the consumer polls the header word at its own
//! position with Acquire. Before publishing a record the producer stores 0 into the
//! word right after it, so the word at the consumer's position holds either 0 ("not
//! yet") or a header the producer wrote for exactly that position; anything else is
//! [`Corruption`]. The tag makes a stale or misplaced header detectable.
//!
//! Messages larger than one record travel as fragments: the first has BEGIN (and an
//! 8-byte little-endian total length before its payload), the middle ones no flag,
//! the last END. A message in one record has BEGIN | END and no prefix. A producer
//! that abandons a message partway publishes an empty END | ABORT record.

use crate::error::Corruption;

/// Size of the record header (the commit word).
pub(crate) const RECORD_HEADER: usize = 8;
/// Size of the total-length prefix of a BEGIN-only fragment.
pub(crate) const BEGIN_PREFIX: usize = 8;
/// Records start and end on multiples of this.
pub(crate) const RECORD_ALIGN: usize = 8;

/// Set in every header word, so that 0 always means "nothing published here".
pub(crate) const FLAG_VALID: u8 = 0x80;
/// Padding from this position to the end of the data region.
pub(crate) const FLAG_PAD: u8 = 0x40;
/// First record of a message.
pub(crate) const FLAG_BEGIN: u8 = 0x01;
/// Last record of a message.
pub(crate) const FLAG_END: u8 = 0x02;
/// The producer abandoned the message this record closes.
pub(crate) const FLAG_ABORT: u8 = 0x04;
/// A whole message in one record.
pub(crate) const FLAGS_WHOLE: u8 = FLAG_BEGIN | FLAG_END;
/// The empty record that closes an abandoned message.
pub(crate) const FLAGS_ABORTED: u8 = FLAG_END | FLAG_ABORT;
/// Every defined flag bit.
pub(crate) const FLAG_BITS: u8 = FLAG_VALID | FLAG_PAD | FLAG_BEGIN | FLAG_END | FLAG_ABORT;

const TAG_BITS: u32 = 24;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;

/// The tag a header at `position` carries: bits 3..27 of the position (which record
/// slot of an aligned 128 MiB window), XOR bits 27..51 (which window).
///
/// Bits 3..27 alone repeat every 2^27 bytes: in a ring of 128 MiB or more a header
/// left from an earlier lap sits at the same index with the same bits 3..27, and would
/// pass. With bits 27..51 folded in, the header of the lap just before never passes,
/// at any capacity up to [`MAX_CAPACITY`](crate::header::MAX_CAPACITY): in rings of
/// 128 MiB and more the two positions differ by exactly `capacity >> 27` in bits
/// 27..51 and not at all in bits 3..27; in smaller rings they differ in bits 3..27,
/// which flips tag bits from bit `log2(capacity) - 3 >= 3` up, while bits 27..51
/// differ at most by one borrow, which flips tag bits from bit 0 up: the two patterns
/// never cancel. In rings of
/// 128 MiB and more a header `k` laps old passes only when `k * capacity` is a
/// multiple of 2^51 (so never fewer than 2^11 laps back). As before, each aligned
/// 2^27-byte window has one position per tag. The cost is one shift and one XOR beside
/// the compare, on each side, on words already in registers.
#[inline]
pub(crate) fn tag(position: u64) -> u64 {
    ((position >> 3) ^ (position >> 27)) & TAG_MASK
}

/// Total size in the ring of a record with `payload_len` payload bytes.
#[inline]
pub(crate) const fn record_size(payload_len: usize) -> usize {
    RECORD_HEADER + ((payload_len + RECORD_ALIGN - 1) & !(RECORD_ALIGN - 1))
}

/// The header word of a record at `position` with `len` payload bytes and `flags`.
#[inline]
pub(crate) fn encode(position: u64, len: u32, flags: u8) -> u64 {
    debug_assert_eq!(position % RECORD_ALIGN as u64, 0);
    debug_assert_eq!(flags & !FLAG_BITS, 0);
    u64::from(len) | (u64::from(flags | FLAG_VALID) << 32) | (tag(position) << 40)
}

/// A decoded, validated record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    /// Padding up to the end of the data region; `size` bytes to skip.
    Pad { size: usize },
    /// A data record (a whole message or one fragment).
    Data(DataRecord),
}

/// A data record: its payload is `len()` bytes right after the header.
///
/// It is the validated header word itself: one `u64`, so that passing it around is
/// one register (a struct with padding was copied through memory with partial loads
/// that missed store forwarding: ~10 ns per message on the hot path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DataRecord(u64);

impl DataRecord {
    /// Payload length (including the BEGIN prefix, if any).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }
    /// `FLAG_BEGIN`, `FLAG_END`, `FLAG_ABORT` (VALID stripped).
    #[inline]
    pub(crate) fn flags(&self) -> u8 {
        ((self.0 >> 32) as u8) & !FLAG_VALID
    }
    /// Size in the ring, header and padding included.
    #[inline]
    pub(crate) fn size(&self) -> usize {
        record_size(self.len())
    }
    /// A whole message in one record.
    #[inline]
    pub(crate) fn is_whole(&self) -> bool {
        self.flags() == FLAGS_WHOLE
    }
    #[inline]
    pub(crate) fn is_begin(&self) -> bool {
        self.flags() & FLAG_BEGIN != 0
    }
    #[inline]
    pub(crate) fn is_end(&self) -> bool {
        self.flags() & FLAG_END != 0
    }
    #[inline]
    pub(crate) fn is_abort(&self) -> bool {
        self.flags() & FLAG_ABORT != 0
    }
    /// Bytes of message content in this record (the BEGIN prefix excluded).
    #[inline]
    pub(crate) fn content_len(&self) -> usize {
        if self.flags() == FLAG_BEGIN {
            self.len() - BEGIN_PREFIX
        } else {
            self.len()
        }
    }
    /// Bytes before the message content in the payload (the BEGIN prefix, if any).
    #[inline]
    pub(crate) fn prefix_len(&self) -> usize {
        if self.flags() == FLAG_BEGIN {
            BEGIN_PREFIX
        } else {
            0
        }
    }
    /// Offset of the message content from the record start.
    #[inline]
    pub(crate) fn content_offset(&self) -> usize {
        if self.flags() == FLAG_BEGIN {
            RECORD_HEADER + BEGIN_PREFIX
        } else {
            RECORD_HEADER
        }
    }
}

/// Decodes the header `word` read at ring `position` of a ring of `capacity` bytes
/// whose records are at most `max_record` bytes. `Ok(None)`: nothing published yet.
///
/// Checks everything the consumer will index with: the flags are a known
/// combination, the tag matches the position, a PAD runs exactly to the end of the
/// data region (and never starts at index 0), a data record fits within
/// `max_record` and before the end of the region.
#[inline(always)]
pub(crate) fn decode(
    word: u64,
    position: u64,
    capacity: usize,
    max_record: usize,
) -> Result<Option<Record>, Corruption> {
    if word == 0 {
        return Ok(None);
    }
    #[cold]
    #[inline(never)]
    fn corrupt_at(what: &'static str, value: u64, position: u64) -> Corruption {
        Corruption {
            what,
            value,
            position,
        }
    }
    let corrupt = |what| corrupt_at(what, word, position);
    let len = (word & 0xffff_ffff) as usize;
    let flags = ((word >> 32) & 0xff) as u8;
    if flags & FLAG_VALID == 0 || flags & !FLAG_BITS != 0 {
        return Err(corrupt("record header flags"));
    }
    if word >> 40 != tag(position) {
        return Err(corrupt("record header tag (not written for this position)"));
    }
    let index = (position & (capacity as u64 - 1)) as usize;
    let flags = flags & !FLAG_VALID;
    if flags & FLAG_PAD != 0 {
        if flags != FLAG_PAD || index == 0 || len != capacity - index - RECORD_HEADER {
            return Err(corrupt("padding record"));
        }
        return Ok(Some(Record::Pad {
            size: capacity - index,
        }));
    }
    let size = record_size(len);
    if size > max_record || index + size > capacity {
        return Err(corrupt("record length"));
    }
    if !data_flags_valid(flags, len) {
        return Err(corrupt("record flags combination"));
    }
    Ok(Some(Record::Data(DataRecord(word))))
}

/// The validity rule of a data record's flags: a known combination, and a BEGIN-only
/// fragment long enough for its total-length prefix, an ABORT empty.
#[inline]
fn data_flags_valid(flags: u8, len: usize) -> bool {
    match flags {
        // middle fragment, last fragment, whole message
        0 | FLAG_END | FLAGS_WHOLE => true,
        // first fragment: must hold its total-length prefix
        FLAG_BEGIN => len >= BEGIN_PREFIX,
        // abandoned message: an empty closing record
        FLAGS_ABORTED => len == 0,
        _ => false,
    }
}

// ---------------------------------------------------------------------------------
// MPMC cell records
// ---------------------------------------------------------------------------------

/// The record word of an MPMC record (in the cell table, beside the stamp of its
/// first cell): payload length in bits 0..32, flags in 32..40, 0 above. The stamp
/// carries the full position, so the word needs no tag. A PAD's length counts cells.
#[inline]
pub(crate) fn encode_cell(len: u32, flags: u8) -> u64 {
    debug_assert_eq!(flags & !FLAG_BITS, 0);
    u64::from(len) | (u64::from(flags | FLAG_VALID) << 32)
}

/// A decoded, validated MPMC record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CellRecord {
    /// `cells` cells to skip (the wrap, or room a producer gave up).
    Pad { cells: u64 },
    /// A data record whose payload starts at its first cell and spans `cells` cells.
    Data { rec: DataRecord, cells: u64 },
}

/// Cells taken by a payload of `len` bytes (at least one).
#[inline]
pub(crate) fn cells_for(len: usize, cell_shift: u32) -> u64 {
    ((len as u64 + (1 << cell_shift) - 1) >> cell_shift).max(1)
}

/// Decodes the record word of a published record whose first cell is at `index` of
/// `n_cells` cells of `1 << cell_shift` bytes; payloads are at most `max_payload`
/// bytes. Checks everything the consumer will index with: the record ends before the
/// end of the cell array. An error's `position` is 0 here, which knows only the index:
/// every caller sets it to the record's position.
#[inline]
pub(crate) fn decode_cell(
    word: u64,
    index: u64,
    n_cells: u64,
    cell_shift: u32,
    max_payload: usize,
) -> Result<CellRecord, Corruption> {
    #[cold]
    #[inline(never)]
    fn corrupt(what: &'static str, value: u64) -> Corruption {
        Corruption {
            what,
            value,
            position: 0,
        }
    }
    let len = (word & 0xffff_ffff) as usize;
    let flags = ((word >> 32) & 0xff) as u8;
    if word >> 40 != 0 || flags & FLAG_VALID == 0 || flags & !FLAG_BITS != 0 {
        return Err(corrupt("cell record word", word));
    }
    let room = n_cells - index;
    let flags = flags & !FLAG_VALID;
    if flags & FLAG_PAD != 0 {
        if flags != FLAG_PAD || len == 0 || len as u64 > room {
            return Err(corrupt("cell padding record", word));
        }
        return Ok(CellRecord::Pad { cells: len as u64 });
    }
    let cells = cells_for(len, cell_shift);
    if len > max_payload || cells > room {
        return Err(corrupt("cell record length", word));
    }
    if !data_flags_valid(flags, len) {
        return Err(corrupt("cell record flags combination", word));
    }
    Ok(CellRecord::Data {
        rec: DataRecord(word),
        cells,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let cap = 4096;
        let max = cap / 2;
        let w = encode(64, 13, FLAG_BEGIN | FLAG_END);
        let Ok(Some(Record::Data(d))) = decode(w, 64, cap, max) else {
            panic!("not a data record");
        };
        assert_eq!((d.len(), d.flags(), d.size()), (13, FLAGS_WHOLE, 24));
        // Same word read one lap later: wrong tag.
        assert!(decode(w, 64 + cap as u64, cap, max).is_err());
        assert_eq!(decode(0, 64, cap, max), Ok(None));
        // Pad must end exactly at the end of the region.
        let pad = encode(4000, (cap - 4000 - 8) as u32, FLAG_PAD);
        assert_eq!(
            decode(pad, 4000, cap, max),
            Ok(Some(Record::Pad { size: 96 }))
        );
        let bad_pad = encode(4000, 8, FLAG_PAD);
        assert!(decode(bad_pad, 4000, cap, max).is_err());
        assert!(decode(encode(0, (cap - 8) as u32, FLAG_PAD), 0, cap, max).is_err());
        // Too long, or straddling the end.
        assert!(decode(encode(0, max as u32, 0), 0, cap, max).is_err());
        assert!(decode(encode(4088, 8, 0), 4088, cap, max).is_err());
        // A BEGIN-only fragment too short for its prefix, and unknown flags.
        assert!(decode(encode(0, 4, FLAG_BEGIN), 0, cap, max).is_err());
        assert!(decode(w | (0x10 << 32), 64, cap, max).is_err());
        assert!(decode(encode(0, 0, FLAG_ABORT), 0, cap, max).is_err());
        assert!(decode(encode(0, 0, FLAG_END | FLAG_ABORT), 0, cap, max).is_ok());
    }

    #[test]
    fn earlier_laps_fail_the_tag_check_in_large_rings() {
        // Rings of 128 MiB and more: bits 3..27 of positions one lap apart are equal,
        // so the tag must carry the lap some other way.
        for shift in [6u32, 12, 26, 27, 28, 31, 35, 40] {
            let cap = 1usize << shift;
            let max = (cap / 2).min(1 << 31);
            for pos in [
                64u64,
                3 << 40,
                (1 << 51) - 64,
                (u64::MAX - (cap as u64) * 2 + 1) & !7,
            ] {
                let w = encode(pos, 16, FLAGS_WHOLE);
                let at = |p: u64| decode(w, p, cap, max);
                assert!(
                    matches!(at(pos), Ok(Some(Record::Data(_)))),
                    "{shift} {pos}"
                );
                for laps in 1..=4u64 {
                    let later = pos.wrapping_add(laps * cap as u64);
                    assert!(
                        at(later).is_err(),
                        "cap 2^{shift}, {laps} laps after {pos:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn cell_records() {
        // 16 cells of 64 bytes, payloads up to 512.
        let d = |w, i| decode_cell(w, i, 16, 6, 512);
        assert_eq!(
            d(encode_cell(65, FLAGS_WHOLE), 0),
            Ok(CellRecord::Data {
                rec: DataRecord(encode_cell(65, FLAGS_WHOLE)),
                cells: 2
            })
        );
        assert!(matches!(
            d(encode_cell(0, FLAGS_WHOLE), 15),
            Ok(CellRecord::Data { cells: 1, .. })
        ));
        assert_eq!(
            d(encode_cell(3, FLAG_PAD), 13),
            Ok(CellRecord::Pad { cells: 3 })
        );
        // Past the end of the array, too long, empty pad, bad flags, stray high bits, 0.
        assert!(d(encode_cell(4, FLAG_PAD), 13).is_err());
        assert!(d(encode_cell(129, FLAGS_WHOLE), 14).is_err());
        assert!(d(encode_cell(513, FLAGS_WHOLE), 0).is_err());
        assert!(d(encode_cell(0, FLAG_PAD), 0).is_err());
        assert!(d(encode_cell(4, FLAG_BEGIN), 0).is_err());
        assert!(d(encode_cell(1, FLAGS_ABORTED), 0).is_err());
        assert!(d(encode_cell(8, FLAGS_WHOLE) | 1 << 40, 0).is_err());
        assert!(d(0, 0).is_err());
        assert_eq!(cells_for(0, 6), 1);
        assert_eq!(cells_for(64, 6), 1);
        assert_eq!(cells_for(65, 6), 2);
    }

    #[test]
    fn every_word_decodes_without_panic() {
        // A cheap sweep over structured words; the fuzz target covers the rest.
        for len in [0u64, 1, 7, 8, 2040, 2048, 4096, u32::MAX as u64] {
            for flags in 0..=255u64 {
                for pos in [0u64, 8, 2048, 4088, 1 << 40] {
                    let word = len | (flags << 32) | (tag(pos) << 40);
                    if let Ok(Some(Record::Data(d))) = decode(word, pos, 4096, 2048) {
                        assert!(d.size() <= 2048);
                        assert!((pos as usize & 4095) + d.size() <= 4096);
                        assert!(d.content_offset() + d.content_len() <= d.size());
                    }
                }
            }
        }
    }
}
