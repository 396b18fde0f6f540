//! Sources: the edge of the pipeline that turns bytes from the system into [`Record`]s.
//!
//! Each configured source runs as one tokio task that owns its input (a tailed file, a
//! `journalctl` child) and writes [`SourceEvent`]s into a bounded channel read by the daemon.
//! Sources never decide anything: they read, bound, decode and hand over.
//!
//! Why shaped so:
//! - **Bounded channel, awaited sends.** When the pipeline is slow a source simply stops
//!   reading; the unread lines stay in the file (or in journald), so backpressure costs
//!   latency, never memory and never lines.
//! - **Checkpoints are events in the same channel.** A [`SourceEvent::Checkpoint`] follows the
//!   records it covers, so the daemon can persist it knowing that everything before it has been
//!   handed over. Its value is opaque to the daemon; only the source that wrote it parses it.
//! - **Nothing stops a source.** A bad line, an unreadable file or a crashed child is logged
//!   with `tracing::warn!`, counted in [`SourceStats`], and retried; a source ends only on
//!   shutdown or when the daemon drops the receiving end.
//! - **Everything an attacker can influence is bounded.** Lines are cut at [`MAX_LINE`],
//!   invalid UTF-8 is replaced, child stderr is rate-limited.
//!
//! [`Record`]: crate::event::Record

use std::sync::atomic::{AtomicU64, Ordering};

use crate::event::Record;

pub mod file;
pub mod journal;

/// What a source task sends to the daemon.
#[derive(Debug)]
pub enum SourceEvent {
    /// One record read from the input.
    Record(Record),
    /// A structured source's own observation (decoy, firewall scan set): it skips the matcher.
    Observation(crate::event::Observation),
    /// Everything emitted before this event has been read; persist `value` under `key`.
    /// Opaque string: hand it back unchanged to the same source's `spawn` on the next start.
    Checkpoint {
        /// Where to persist it (see `file::checkpoint_key`, `journal::checkpoint_key`).
        key: String,
        /// The position, in a format only the source understands.
        value: String,
    },
}

/// Counters a source updates as it works; shared with the daemon for metrics.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Records emitted.
    pub lines: AtomicU64,
    /// Lines (or messages) longer than [`MAX_LINE`] that were cut, or skipped as too long.
    pub cut_lines: AtomicU64,
    /// Lines that held invalid UTF-8 and were converted lossily.
    pub invalid_utf8: AtomicU64,
    /// Problems logged: I/O errors, missing files, bad JSON, child failures.
    pub errors: AtomicU64,
    /// Rotations followed (rename, copytruncate, delete and recreate) and child restarts.
    pub rotations: AtomicU64,
}

impl SourceStats {
    /// Add one to a counter (relaxed: these are statistics, not synchronisation).
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The longest line (in bytes of UTF-8) a source emits; longer input is cut to this length.
pub const MAX_LINE: usize = 16 * 1024;

/// Turn raw bytes into a `String` of at most [`MAX_LINE`] bytes, cut at a char boundary.
///
/// Invalid UTF-8 is replaced (U+FFFD) and counted in `invalid_utf8`; a cut is counted in
/// `cut_lines`.
pub(crate) fn decode_bounded(bytes: &[u8], stats: &SourceStats) -> String {
    let mut cut = false;
    let bytes = if bytes.len() > MAX_LINE {
        cut = true;
        trim_incomplete_char(&bytes[..MAX_LINE])
    } else {
        bytes
    };
    let mut s = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            SourceStats::bump(&stats.invalid_utf8);
            String::from_utf8_lossy(bytes).into_owned()
        }
    };
    if s.len() > MAX_LINE {
        // Replacement characters can make the text longer than the bytes it came from.
        let mut end = MAX_LINE;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        cut = true;
    }
    if cut {
        SourceStats::bump(&stats.cut_lines);
    }
    s
}

/// Drop a UTF-8 sequence left incomplete at the end of `bytes` by a cut, so the cut itself
/// does not show up as invalid UTF-8.
fn trim_incomplete_char(bytes: &[u8]) -> &[u8] {
    // Look back at most 3 bytes for the lead byte of the last sequence.
    for back in 1..=bytes.len().min(4) {
        let i = bytes.len() - back;
        let b = bytes[i];
        if b & 0xC0 == 0x80 {
            continue; // continuation byte
        }
        let need = match b {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return bytes, // not a lead byte: invalid anyway, leave it to lossy decoding
        };
        return if back < need { &bytes[..i] } else { bytes };
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_valid_text_is_kept() {
        let stats = SourceStats::default();
        assert_eq!(decode_bounded(b"hello", &stats), "hello");
        assert_eq!(stats.cut_lines.load(Ordering::Relaxed), 0);
        assert_eq!(stats.invalid_utf8.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn invalid_utf8_is_replaced_and_counted() {
        let stats = SourceStats::default();
        assert_eq!(decode_bounded(b"a\xffb", &stats), "a\u{fffd}b");
        assert_eq!(stats.invalid_utf8.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn cut_lands_on_a_char_boundary() {
        let stats = SourceStats::default();
        let mut long = vec![b'a'; MAX_LINE - 1];
        long.extend_from_slice("é and more".as_bytes()); // é straddles the cut
        let s = decode_bounded(&long, &stats);
        assert_eq!(s.len(), MAX_LINE - 1);
        assert_eq!(stats.cut_lines.load(Ordering::Relaxed), 1);
        assert_eq!(stats.invalid_utf8.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn replacement_growth_is_still_bounded() {
        let stats = SourceStats::default();
        let s = decode_bounded(&vec![0xff; MAX_LINE], &stats);
        assert!(s.len() <= MAX_LINE);
        assert_eq!(stats.cut_lines.load(Ordering::Relaxed), 1);
    }
}
