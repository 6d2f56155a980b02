//! Sans-IO Server-Sent Events decoder following the WHATWG HTML "event stream interpretation" rules.
//!
//! Deviations from the spec, on purpose:
//! - `id` is per event (reset after each dispatch) rather than a persistent "last event ID".
//! - Invalid UTF-8 is an error instead of being replaced with U+FFFD.
//! - [`SseDecoder::finish`] dispatches a pending event that has data even without a closing blank line.

use std::fmt;

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; None when the event had no `event:` line (the spec's default type "message").
    /// An empty `event:` value also means the default type and is reported as None.
    pub event: Option<String>,
    /// The `data:` lines joined with "\n" (no trailing newline).
    pub data: String,
    /// The `id:` field if one was given in this event.
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// A completed event's data/field was not valid UTF-8.
    InvalidUtf8,
    /// A single line grew past the configured limit without a line ending (protects memory).
    LineTooLong { limit: usize },
    /// The `data` lines of one event add up to more than the limit (protects memory from an
    /// event that never ends).
    EventTooLong { limit: usize },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::InvalidUtf8 => f.write_str("SSE stream contained invalid UTF-8"),
            SseError::LineTooLong { limit } => {
                write!(f, "SSE line exceeded the limit of {limit} bytes")
            }
            SseError::EventTooLong { limit } => {
                write!(f, "SSE event's data exceeded the limit of {limit} bytes")
            }
        }
    }
}

impl std::error::Error for SseError {}

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];
const DEFAULT_MAX_LINE_LEN: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BomState {
    /// At stream start; this many leading bytes matched the BOM so far.
    Matching(usize),
    Done,
}

/// Fields of the event being built.
#[derive(Debug, Default)]
struct PendingEvent {
    event_type: String,
    data: String,
    id: Option<String>,
    /// `data` may not grow past this (the decoder's line limit).
    max_data_len: usize,
}

impl PendingEvent {
    /// Handles one complete line (without its line ending).
    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::InvalidUtf8)?;
        if line.starts_with(':') {
            return Ok(());
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match name {
            "event" => {
                self.event_type.clear();
                self.event_type.push_str(value);
            }
            "data" => {
                if self.data.len().saturating_add(value.len() + 1) > self.max_data_len {
                    return Err(SseError::EventTooLong {
                        limit: self.max_data_len,
                    });
                }
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.data.is_empty() {
            self.event_type.clear();
            self.id = None;
            return;
        }
        // Every `data` line appended a "\n", so the buffer ends with one.
        self.data.pop();
        let event = if self.event_type.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.event_type))
        };
        out.push(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
            id: self.id.take(),
        });
    }
}

/// Incremental SSE decoder: feed bytes in any split, get complete events out.
///
/// After an error the decoder is poisoned and every later call returns the same error.
#[derive(Debug)]
pub struct SseDecoder {
    max_line_len: usize,
    bom: BomState,
    /// Bytes of the current, not yet terminated line; never contains CR or LF.
    line: Vec<u8>,
    /// The previous chunk ended with CR, so a leading LF in the next chunk belongs to it.
    pending_cr: bool,
    pending: PendingEvent,
    failed: Option<SseError>,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// Decoder with the default maximum line length of 16 MiB.
    #[must_use]
    pub fn new() -> Self {
        Self::with_max_line_len(DEFAULT_MAX_LINE_LEN)
    }

    /// Decoder that rejects any line longer than `limit` bytes (line ending excluded), and any
    /// event whose data lines add up to more.
    #[must_use]
    pub fn with_max_line_len(limit: usize) -> Self {
        SseDecoder {
            max_line_len: limit,
            bom: BomState::Matching(0),
            line: Vec::new(),
            pending_cr: false,
            pending: PendingEvent {
                max_data_len: limit,
                ..PendingEvent::default()
            },
            failed: None,
        }
    }

    /// Feed the next bytes as they arrive (any split: mid-line, mid-CRLF, mid-UTF-8 character).
    /// Appends every event completed by these bytes to `out`, in order.
    ///
    /// On error, events completed before the offending line are still appended.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.feed_inner(bytes, out);
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }

    /// End of input. A final line with no line ending is processed as a complete line, and a pending
    /// event that has data is dispatched (lenient: some servers end with `data: [DONE]\n` and no blank
    /// line, or with no newline at all). On success the decoder is reset for a new stream.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.finish_inner(out);
        match &result {
            Ok(()) => *self = Self::with_max_line_len(self.max_line_len),
            Err(err) => self.failed = Some(err.clone()),
        }
        result
    }

    fn feed_inner(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut rest = self.skip_bom(bytes);
        if rest.is_empty() {
            return Ok(());
        }
        if self.pending_cr {
            self.pending_cr = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let segment = &rest[..pos];
            self.check_len(segment.len())?;
            if self.line.is_empty() {
                self.pending.process_line(segment, out)?;
            } else {
                self.line.extend_from_slice(segment);
                let result = self.pending.process_line(&self.line, out);
                self.line.clear();
                result?;
            }
            let mut next = pos + 1;
            if rest[pos] == b'\r' {
                match rest.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.pending_cr = true,
                }
            }
            rest = &rest[next..];
        }
        self.check_len(rest.len())?;
        self.line.extend_from_slice(rest);
        Ok(())
    }

    fn finish_inner(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        self.flush_partial_bom();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.pending.process_line(&line, out)?;
        }
        self.pending.dispatch(out);
        Ok(())
    }

    /// Strips a leading BOM (possibly split across feeds) and returns the remaining input.
    fn skip_bom<'a>(&mut self, mut bytes: &'a [u8]) -> &'a [u8] {
        while let BomState::Matching(matched) = self.bom {
            let Some((&b, tail)) = bytes.split_first() else {
                break;
            };
            if b == BOM[matched] {
                bytes = tail;
                self.bom = if matched + 1 == BOM.len() {
                    BomState::Done
                } else {
                    BomState::Matching(matched + 1)
                };
            } else {
                self.flush_partial_bom();
            }
        }
        bytes
    }

    /// A BOM prefix that turned out not to be a BOM is ordinary line content.
    fn flush_partial_bom(&mut self) {
        if let BomState::Matching(matched) = self.bom {
            // Neither 0xEF nor 0xBB is a line ending, so these bytes start the first line.
            self.line.extend_from_slice(&BOM[..matched]);
            self.bom = BomState::Done;
        }
    }

    /// Errors if the current line plus `extra` more bytes would exceed the limit.
    fn check_len(&self, extra: usize) -> Result<(), SseError> {
        if self.line.len().saturating_add(extra) > self.max_line_len {
            Err(SseError::LineTooLong {
                limit: self.max_line_len,
            })
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: Option<&str>, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: data.to_owned(),
            id: id.map(str::to_owned),
        }
    }

    fn data(d: &str) -> SseEvent {
        ev(None, d, None)
    }

    /// Feeds `chunks` in order, then finishes; stops at the first error.
    fn run(chunks: &[&[u8]]) -> (Vec<SseEvent>, Option<SseError>) {
        let mut dec = SseDecoder::new();
        let mut out = Vec::new();
        for chunk in chunks {
            if let Err(e) = dec.feed(chunk, &mut out) {
                return (out, Some(e));
            }
        }
        let err = dec.finish(&mut out).err();
        (out, err)
    }

    fn run_chunked(input: &[u8], size: usize) -> (Vec<SseEvent>, Option<SseError>) {
        let chunks: Vec<&[u8]> = input.chunks(size).collect();
        run(&chunks)
    }

    /// Decodes `input` whole, byte by byte, and split at every offset; all must agree.
    fn decode_all_splits(input: &[u8]) -> Vec<SseEvent> {
        let (whole, err) = run(&[input]);
        assert_eq!(err, None, "unexpected error");
        assert_eq!(run_chunked(input, 1), (whole.clone(), None), "byte by byte");
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(run(&[a, b]), (whole.clone(), None), "split at {i}");
        }
        whole
    }

    #[test]
    fn lf_endings() {
        let events = decode_all_splits(b"data: a\n\ndata: b\n\n");
        assert_eq!(events, vec![data("a"), data("b")]);
    }

    #[test]
    fn crlf_endings() {
        let events = decode_all_splits(b"data: a\r\n\r\ndata: b\r\n\r\n");
        assert_eq!(events, vec![data("a"), data("b")]);
    }

    #[test]
    fn cr_endings() {
        let events = decode_all_splits(b"data: a\r\rdata: b\r\r");
        assert_eq!(events, vec![data("a"), data("b")]);
    }

    #[test]
    fn crlf_split_across_feeds_is_one_line_ending() {
        let mut dec = SseDecoder::new();
        let mut out = Vec::new();
        dec.feed(b"data: a\r", &mut out).unwrap();
        dec.feed(b"\ndata: b\n", &mut out).unwrap();
        // If the LF were a second line ending, it would be a blank line dispatching "a" alone.
        assert!(out.is_empty());
        dec.feed(b"\n", &mut out).unwrap();
        assert_eq!(out, vec![data("a\nb")]);
    }

    #[test]
    fn crlf_split_with_empty_feed_between() {
        let events = run(&[b"data: a\r", b"", b"\ndata: b\r\n\r\n"]).0;
        assert_eq!(events, vec![data("a\nb")]);
    }

    #[test]
    fn event_is_dispatched_as_soon_as_cr_arrives() {
        let mut dec = SseDecoder::new();
        let mut out = Vec::new();
        dec.feed(b"data: a\r\r", &mut out).unwrap();
        assert_eq!(out, vec![data("a")]);
        dec.feed(b"\ndata: b\n\n", &mut out).unwrap();
        assert_eq!(out, vec![data("a"), data("b")]);
    }

    #[test]
    fn events_are_emitted_by_feed_without_finish() {
        let mut dec = SseDecoder::new();
        let mut out = Vec::new();
        dec.feed(b"data: a\n\ndata: b\n\ndata: c", &mut out)
            .unwrap();
        assert_eq!(out, vec![data("a"), data("b")]);
    }

    const MIXED: &[u8] = b"\xEF\xBB\xBF: comment\r\n\
        data: one\n\n\
        event: update\rid: 7\rdata: two\r\rdata\n\
        data:\n\n\
        data:  x\r\ndata:\xF0\x9F\x98\x84 ok\r\n\r\n\
        retry: 1000\nfoo: bar\n:\n\n\
        event: error\ndata: {\"e\":1}\n\n\
        data: tail";

    #[test]
    fn mixed_input_in_every_split() {
        let events = decode_all_splits(MIXED);
        assert_eq!(
            events,
            vec![
                data("one"),
                ev(Some("update"), "two", Some("7")),
                data("\n"),
                data(" x\n😄 ok"),
                ev(Some("error"), "{\"e\":1}", None),
                data("tail"),
            ]
        );
    }

    #[test]
    fn mixed_input_in_every_three_way_split() {
        let expected = run(&[MIXED]);
        for i in 0..=MIXED.len() {
            for j in i..=MIXED.len() {
                let chunks = [&MIXED[..i], &MIXED[i..j], &MIXED[j..]];
                assert_eq!(run(&chunks), expected, "split at {i}, {j}");
            }
        }
    }

    #[test]
    fn multi_line_data_joined_with_newline() {
        let events = decode_all_splits(b"data: a\ndata: b\ndata: c\n\n");
        assert_eq!(events, vec![data("a\nb\nc")]);
    }

    #[test]
    fn comments_are_ignored() {
        let events = decode_all_splits(b": ping\n\n:\ndata: a\n: inside\ndata: b\n\n");
        assert_eq!(events, vec![data("a\nb")]);
    }

    #[test]
    fn event_error_with_data() {
        let events = decode_all_splits(b"event: error\ndata: {\"message\":\"boom\"}\n\n");
        assert_eq!(
            events,
            vec![ev(Some("error"), "{\"message\":\"boom\"}", None)]
        );
    }

    #[test]
    fn event_type_does_not_leak_into_next_event() {
        let events = decode_all_splits(b"event: a\ndata: 1\n\ndata: 2\n\n");
        assert_eq!(events, vec![ev(Some("a"), "1", None), data("2")]);
    }

    #[test]
    fn empty_event_value_is_default_type() {
        let events = decode_all_splits(b"event: x\nevent:\ndata: 1\n\n");
        assert_eq!(events, vec![data("1")]);
    }

    #[test]
    fn field_without_colon() {
        // "data" alone appends an empty line; "event" alone sets an empty (default) type.
        let events = decode_all_splits(b"data\ndata\n\nevent\ndata: x\n\n");
        assert_eq!(events, vec![data("\n"), data("x")]);
    }

    #[test]
    fn leading_space_rules() {
        let events = decode_all_splits(b"data:x\n\ndata:  y\n\ndata: z \n\nevent:e\ndata:1\n\n");
        assert_eq!(
            events,
            vec![data("x"), data(" y"), data("z "), ev(Some("e"), "1", None)]
        );
    }

    #[test]
    fn value_keeps_later_colons() {
        let events = decode_all_splits(b"data: a: b:c\n\n");
        assert_eq!(events, vec![data("a: b:c")]);
    }

    #[test]
    fn field_names_are_case_sensitive() {
        let events = decode_all_splits(b"Data: a\nDATA: b\ndata : c\ndata: d\n\n");
        assert_eq!(events, vec![data("d")]);
    }

    #[test]
    fn bom_is_skipped() {
        let events = decode_all_splits(b"\xEF\xBB\xBFdata: a\n\n");
        assert_eq!(events, vec![data("a")]);
        // Without skipping, the field name would be "\u{FEFF}data" and nothing would be dispatched.
        let events = run(&[b"\xEF", b"\xBB", b"\xBF", b"data: b\n\n"]).0;
        assert_eq!(events, vec![data("b")]);
    }

    #[test]
    fn bom_only_skipped_at_stream_start() {
        let events =
            decode_all_splits(b"data: a\n\n\xEF\xBB\xBFdata: b\n\ndata: \xEF\xBB\xBFc\n\n");
        assert_eq!(events, vec![data("a"), data("\u{FEFF}c")]);
    }

    #[test]
    fn second_bom_is_not_skipped() {
        let events = decode_all_splits(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n");
        assert_eq!(events, vec![data("b")]);
    }

    #[test]
    fn partial_bom_is_line_content() {
        // EF BB followed by something else is not a BOM; those bytes stay and make invalid UTF-8.
        let (events, err) = run(&[b"\xEF\xBB", b"data: a\n\n"]);
        assert_eq!(events, vec![]);
        assert_eq!(err, Some(SseError::InvalidUtf8));
        let (events, err) = run(&[b"\xEF"]);
        assert_eq!(events, vec![]);
        assert_eq!(err, Some(SseError::InvalidUtf8));
    }

    #[test]
    fn empty_data_line_dispatches_empty_event() {
        let events = decode_all_splits(b"data:\n\n");
        assert_eq!(events, vec![data("")]);
        let events = decode_all_splits(b"data: \n\n");
        assert_eq!(events, vec![data("")]);
    }

    #[test]
    fn blank_line_without_data_dispatches_nothing() {
        let events = decode_all_splits(b"\n\n\r\n\revent: x\nid: 1\n\ndata: a\n\n");
        // The type and id of the data-less block are discarded, not carried into the next event.
        assert_eq!(events, vec![data("a")]);
    }

    #[test]
    fn finish_dispatches_done_without_blank_line() {
        let mut dec = SseDecoder::new();
        let mut out = Vec::new();
        dec.feed(b"data: {}\n\ndata: [DONE]\n", &mut out).unwrap();
        assert_eq!(out, vec![data("{}")]);
        dec.finish(&mut out).unwrap();
        assert_eq!(out, vec![data("{}"), data("[DONE]")]);
    }

    #[test]
    fn finish_dispatches_line_without_newline() {
        let mut dec = SseDecoder::new();
        let mut out = Vec::new();
        dec.feed(b"data: x", &mut out).unwrap();
        assert!(out.is_empty());
        dec.finish(&mut out).unwrap();
        assert_eq!(out, vec![data("x")]);
    }

    #[test]
    fn finish_without_pending_data_dispatches_nothing() {
        assert_eq!(run(&[b"data: a\n\nevent: x\nid: 2"]).0, vec![data("a")]);
        assert_eq!(run(&[b""]).0, vec![]);
        assert_eq!(run(&[b"data: a\n\n: trailing comment"]).0, vec![data("a")]);
    }

    #[test]
    fn finish_resets_for_a_new_stream() {
        let mut dec = SseDecoder::new();
        let mut out = Vec::new();
        dec.feed(b"event: e\ndata: a", &mut out).unwrap();
        dec.finish(&mut out).unwrap();
        dec.feed(b"\xEF\xBB\xBFdata: b\n\n", &mut out).unwrap();
        assert_eq!(out, vec![ev(Some("e"), "a", None), data("b")]);
    }

    #[test]
    fn multi_byte_char_split_across_feeds() {
        let input = "data: 😄\n\n".as_bytes();
        let emoji_start = 6;
        for i in emoji_start + 1..emoji_start + 4 {
            let (events, err) = run(&[&input[..i], &input[i..]]);
            assert_eq!(err, None);
            assert_eq!(events, vec![data("😄")], "split at {i}");
        }
        assert_eq!(decode_all_splits(input), vec![data("😄")]);
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let (events, err) = run(&[b"data: a\n\ndata: \xFF\n\ndata: b\n\n"]);
        assert_eq!(events, vec![data("a")]);
        assert_eq!(err, Some(SseError::InvalidUtf8));
        // Truncated multi-byte sequence at end of line.
        assert_eq!(run(&[b"data: \xF0\x9F\n\n"]).1, Some(SseError::InvalidUtf8));
        assert_eq!(run(&[b"event: \xC3\x28\n"]).1, Some(SseError::InvalidUtf8));
        // Also at finish, for a final unterminated line.
        assert_eq!(run(&[b"data: \xF0\x9F"]).1, Some(SseError::InvalidUtf8));
    }

    #[test]
    fn decoder_is_poisoned_after_error() {
        let mut dec = SseDecoder::new();
        let mut out = Vec::new();
        assert_eq!(
            dec.feed(b"data: \xFF\n", &mut out),
            Err(SseError::InvalidUtf8)
        );
        assert_eq!(
            dec.feed(b"data: ok\n\n", &mut out),
            Err(SseError::InvalidUtf8)
        );
        assert_eq!(dec.finish(&mut out), Err(SseError::InvalidUtf8));
        assert!(out.is_empty());
    }

    #[test]
    fn line_longer_than_limit_is_an_error() {
        let limit = 8;
        let err = Some(SseError::LineTooLong { limit });
        // Exactly at the limit is fine, in any split.
        for size in 1..=12 {
            let mut dec = SseDecoder::with_max_line_len(limit);
            let mut out = Vec::new();
            for chunk in b"data: ab\r\n\n".chunks(size) {
                dec.feed(chunk, &mut out).unwrap();
            }
            assert_eq!(out, vec![data("ab")]);
        }
        // One byte over fails whether or not the line ending has arrived yet.
        for input in [&b"data: abc\n\n"[..], b"data: abc", b"data: abcdefgh"] {
            for size in 1..=input.len() {
                let mut dec = SseDecoder::with_max_line_len(limit);
                let mut out = Vec::new();
                let mut result = Ok(());
                for chunk in input.chunks(size) {
                    result = dec.feed(chunk, &mut out);
                    if result.is_err() {
                        break;
                    }
                }
                if result.is_ok() {
                    result = dec.finish(&mut out);
                }
                assert_eq!(result.err(), err, "input {input:?} chunk size {size}");
                assert!(out.is_empty());
            }
        }
    }

    #[test]
    fn unterminated_line_growing_past_limit_fails_before_line_end() {
        let mut dec = SseDecoder::with_max_line_len(1024);
        let mut out = Vec::new();
        let chunk = [b'x'; 100];
        let mut fed = 0;
        let err = loop {
            match dec.feed(&chunk, &mut out) {
                Ok(()) => fed += chunk.len(),
                Err(e) => break e,
            }
            assert!(fed <= 1024);
        };
        assert_eq!(err, SseError::LineTooLong { limit: 1024 });
        assert!(err.to_string().contains("1024"));
    }

    // Found by tests/hostile.rs: short `data:` lines without a blank line between them grew one
    // event without bound.
    #[test]
    fn an_event_whose_data_lines_pass_the_limit_is_an_error() {
        let mut dec = SseDecoder::with_max_line_len(1024);
        let mut out = Vec::new();
        let mut fed = 0;
        let err = loop {
            match dec.feed(b"data: 0123456789\n", &mut out) {
                Ok(()) => fed += 1,
                Err(e) => break e,
            }
            assert!(fed <= 1024 / 11);
        };
        assert_eq!(err, SseError::EventTooLong { limit: 1024 });
        assert!(err.to_string().contains("1024"), "{err}");
        // Up to the limit the event is whole.
        let body = "data: 0123456789\n".repeat(1024 / 11) + "\n";
        let mut dec = SseDecoder::with_max_line_len(1024);
        let mut out = Vec::new();
        dec.feed(body.as_bytes(), &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data.len(), 1024 / 11 * 11 - 1);
    }

    #[test]
    fn id_field() {
        let events = decode_all_splits(
            b"id: 42\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 1\nid: 2\ndata: d\n\n",
        );
        assert_eq!(
            events,
            vec![
                ev(None, "a", Some("42")),
                data("b"),
                ev(None, "c", Some("")),
                ev(None, "d", Some("2")),
            ]
        );
    }

    #[test]
    fn id_with_nul_is_ignored() {
        let events = decode_all_splits(b"id: 1\nid: a\0b\ndata: x\n\nid: \0\ndata: y\n\n");
        assert_eq!(events, vec![ev(None, "x", Some("1")), data("y")]);
    }

    #[test]
    fn retry_and_unknown_fields_are_ignored() {
        let events = decode_all_splits(b"retry: 10\nfoo: bar\ndata: a\nretry\n\n");
        assert_eq!(events, vec![data("a")]);
    }

    #[test]
    fn byte_at_a_time_long_line_is_linear() {
        // A decoder that rescans its buffer on every feed would take minutes here.
        let mut input = b"data: ".to_vec();
        input.resize(1024 * 1024, b'a');
        input.extend_from_slice(b"\n\n");
        let (events, err) = run_chunked(&input, 1);
        assert_eq!(err, None);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data.len(), 1024 * 1024 - 6);
    }

    #[test]
    fn large_chunks() {
        let mut input = Vec::new();
        for i in 0..20_000 {
            input.extend_from_slice(format!("data: {{\"n\":{i}}}\r\n\r\n").as_bytes());
        }
        let (whole, err) = run(&[&input]);
        assert_eq!(err, None);
        assert_eq!(whole.len(), 20_000);
        assert_eq!(whole[19_999], data("{\"n\":19999}"));
        for size in [64 * 1024, 64 * 1024 - 1, 4096, 1] {
            assert_eq!(
                run_chunked(&input, size),
                (whole.clone(), None),
                "size {size}"
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_split_does_not_matter() {
        const ALPHABET: &[u8] = b"\r\n\r\n: daeventidretry\0\xEF\xBB\xBF\xF0\x9F\x98\x84\xFF";
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let len = (next() % 40) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            let limit = (next() % 16) as usize;
            let decode = |size: usize| {
                let mut dec = SseDecoder::with_max_line_len(limit);
                let mut out = Vec::new();
                let mut result = Ok(());
                for chunk in input.chunks(size.max(1)) {
                    result = dec.feed(chunk, &mut out);
                    if result.is_err() {
                        break;
                    }
                }
                if result.is_ok() {
                    result = dec.finish(&mut out);
                }
                (out, result)
            };
            let whole = decode(input.len());
            assert_eq!(decode(1), whole, "input {input:?} limit {limit}");
            assert_eq!(decode(3), whole, "input {input:?} limit {limit}");
        }
    }

    fn check_fixture(bytes: &[u8], expected_events: usize) {
        let (whole, err) = run(&[bytes]);
        assert_eq!(err, None);
        assert_eq!(whole.len(), expected_events);
        assert_eq!(whole.last().unwrap().data, "[DONE]");
        for event in &whole[..whole.len() - 1] {
            assert_eq!(event.event, None);
            assert_eq!(event.id, None);
            serde_json::from_str::<serde_json::Value>(&event.data)
                .unwrap_or_else(|e| panic!("{e}: {}", event.data));
        }
        for size in [1, 7, 64 * 1024] {
            assert_eq!(
                run_chunked(bytes, size),
                (whole.clone(), None),
                "size {size}"
            );
        }
        // The same stream with CRLF or CR line endings decodes identically.
        for ending in [&b"\r\n"[..], b"\r"] {
            let converted: Vec<u8> = bytes
                .split(|&b| b == b'\n')
                .collect::<Vec<_>>()
                .join(ending);
            assert_eq!(run_chunked(&converted, 1), (whole.clone(), None));
        }
    }

    #[test]
    fn fixture_openai_text_include_usage() {
        let bytes = include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/openai/sse/text-include-usage.sse"
        ));
        check_fixture(bytes, 141);
    }

    #[test]
    fn fixture_gateway_tool_call_index_1() {
        // This recording ends with "data: [DONE]\n" and no blank line: only finish() dispatches it.
        let bytes = include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/openai-compatible/sse/gateway-tool-call-index-1.sse"
        ));
        check_fixture(bytes, 9);
        let mut dec = SseDecoder::new();
        let mut out = Vec::new();
        dec.feed(bytes, &mut out).unwrap();
        assert_eq!(out.len(), 8);
    }
}
