//! AWS event-stream (`application/vnd.amazon.eventstream`) framing, as used by Bedrock's
//! `invoke-with-response-stream` and `converse-stream`.
//!
//! A frame is `total_length: u32 | headers_length: u32 | prelude_crc: u32 | headers | payload |
//! message_crc: u32` (big-endian, CRC-32/IEEE). Decoding is done by `aws-smithy-eventstream`'s
//! [`MessageFrameDecoder`], guarded against its known gaps:
//! - it trusts `total_length` until the whole frame is in, so a corrupted length would make it wait
//!   for bytes that never come: here the prelude (its CRC, the minimum and maximum frame length and
//!   the headers length) is checked as soon as the first 12 bytes of a frame are buffered;
//! - it does not report bytes left over at the end of the stream: [`Framer::finish`] does.
//!
//! Each `event` message becomes an [`SseEvent`] named by its `:event-type`; an `exception` or
//! `error` message becomes the provider's error; messages of any other (or no) `:message-type`
//! are skipped.

use crate::adapters::error_body::code_for_aws_error;
use crate::client::sse::SseEvent;
use crate::client::stream::Framer;
use crate::error::{Error, ErrorCode, Result};
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::{Bytes, BytesMut};
use serde_json::Value;

/// `total_length`, `headers_length` and `prelude_crc`.
const PRELUDE_LEN: usize = 12;
/// A frame with no headers and an empty payload: the prelude and the message CRC.
const MIN_FRAME_LEN: usize = 16;
/// The largest frame accepted by [`EventStreamFramer::new`].
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;
/// Provider text quoted in an error message is cut to this many characters.
const MAX_QUOTED_CHARS: usize = 2000;

/// AWS event-stream (`application/vnd.amazon.eventstream`) → events for the stream adapters.
#[derive(Debug)]
pub struct EventStreamFramer {
    reader: FrameReader,
    /// The first error; every later call returns it again.
    failed: Option<Error>,
}

impl EventStreamFramer {
    /// A framer that accepts frames up to [`DEFAULT_MAX_FRAME_LEN`] (16 MiB).
    pub fn new() -> Self {
        Self::with_max_frame_len(DEFAULT_MAX_FRAME_LEN)
    }

    /// A framer that rejects any frame whose `total_length` is above `n` bytes (as soon as its
    /// prelude is in, before buffering it).
    pub fn with_max_frame_len(n: usize) -> Self {
        EventStreamFramer {
            reader: FrameReader::new(n),
            failed: None,
        }
    }

    fn drain(&mut self, out: &mut Vec<SseEvent>) -> Result<()> {
        while let Some(message) = self.reader.next_message()? {
            if let Some(event) = message_to_event(message)? {
                out.push(event);
            }
        }
        Ok(())
    }
}

impl Default for EventStreamFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer for EventStreamFramer {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.reader.push(bytes);
        let result = self.drain(out);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn finish(&mut self, _out: &mut Vec<SseEvent>) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.reader.partial_frame() {
            Some((have, total)) => {
                let e = truncated(have, total);
                self.failed = Some(e.clone());
                Err(e)
            }
            None => Ok(()),
        }
    }
}

/// Bytes → [`Message`]s: a buffer, the smithy decoder, and the prelude guard.
#[derive(Debug)]
pub(crate) struct FrameReader {
    /// Bytes not yet decoded. Once the decoder has taken a frame's prelude, the rest of that frame.
    buf: BytesMut,
    decoder: MessageFrameDecoder,
    /// `total_length` of the frame whose (checked) prelude the decoder has taken out of `buf`.
    current: Option<usize>,
    max_frame_len: usize,
}

impl FrameReader {
    pub(crate) fn new(max_frame_len: usize) -> Self {
        FrameReader {
            buf: BytesMut::new(),
            decoder: MessageFrameDecoder::new(),
            current: None,
            max_frame_len,
        }
    }

    /// Appends bytes. `BytesMut` reclaims the space of decoded frames in place when that is
    /// cheap and otherwise grows geometrically, so feeding a byte at a time stays linear.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `None` until more bytes are needed. After an error the reader
    /// is in an unspecified state and must not be used again.
    pub(crate) fn next_message(&mut self) -> Result<Option<Message>> {
        if self.current.is_none() {
            if self.buf.len() < PRELUDE_LEN {
                return Ok(None);
            }
            self.current = Some(check_prelude(&self.buf[..PRELUDE_LEN], self.max_frame_len)?);
        }
        // With the prelude checked the decoder cannot wait for more than `max_frame_len` bytes;
        // while a frame is incomplete this is a length comparison, so calling it per feed is cheap.
        match self.decoder.decode_frame(&mut self.buf) {
            Ok(DecodedFrame::Complete(message)) => {
                self.current = None;
                Ok(Some(message))
            }
            Ok(DecodedFrame::Incomplete) => Ok(None),
            Err(e) => Err(decoder_error(&e)),
        }
    }

    /// `(bytes buffered, total_length if known)` of a frame that has begun but not ended.
    pub(crate) fn partial_frame(&self) -> Option<(usize, Option<usize>)> {
        match self.current {
            Some(total) => Some((PRELUDE_LEN + self.buf.len(), Some(total))),
            None if !self.buf.is_empty() => Some((self.buf.len(), None)),
            None => None,
        }
    }
}

/// Every message of a complete event stream held in memory (all of them, whatever their
/// `:message-type`). Bytes after the last complete frame are an error.
#[cfg_attr(not(test), allow(dead_code))] // the tests' window on the decoding below the framer
pub(crate) fn decode_frames(bytes: &[u8]) -> Result<Vec<Message>> {
    let mut reader = FrameReader::new(DEFAULT_MAX_FRAME_LEN);
    reader.push(bytes);
    let mut messages = Vec::new();
    while let Some(message) = reader.next_message()? {
        messages.push(message);
    }
    match reader.partial_frame() {
        Some((have, total)) => Err(truncated(have, total)),
        None => Ok(messages),
    }
}

/// Checks a frame's 12-byte prelude and returns its `total_length`.
fn check_prelude(prelude: &[u8], max_frame_len: usize) -> Result<usize> {
    let word =
        |i: usize| u32::from_be_bytes([prelude[i], prelude[i + 1], prelude[i + 2], prelude[i + 3]]);
    let (total, headers, crc) = (word(0), word(4), word(8));
    let expected = crc32(&prelude[..8]);
    if crc != expected {
        return Err(malformed(format!(
            "prelude checksum mismatch: the frame says 0x{crc:08X}, its first 8 bytes give 0x{expected:08X}"
        )));
    }
    let total = total as usize;
    if total < MIN_FRAME_LEN {
        return Err(malformed(format!(
            "a frame length of {total} bytes is below the {MIN_FRAME_LEN}-byte minimum"
        )));
    }
    if total > max_frame_len {
        return Err(malformed(format!(
            "a frame of {total} bytes exceeds the limit of {max_frame_len} bytes"
        )));
    }
    let headers = headers as usize;
    if headers > total - MIN_FRAME_LEN {
        return Err(malformed(format!(
            "a headers length of {headers} bytes does not fit in a frame of {total} bytes"
        )));
    }
    Ok(total)
}

/// CRC-32/IEEE (the checksum of the event-stream prelude). Only the 8-byte prelude goes through
/// it; the decoder checks the message CRC itself.
fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut c = !0u32;
    for &b in bytes {
        c = TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// Names what the decoder found wrong. Its error kinds are private, so the checksum cases are
/// recognised by their text ("message checksum 0x… didn't match expected checksum 0x…").
fn decoder_error(e: &aws_smithy_eventstream::error::Error) -> Error {
    let text = e.to_string();
    let what = if text.starts_with("message checksum") {
        format!("message checksum mismatch: {text}")
    } else if text.starts_with("prelude checksum") {
        format!("prelude checksum mismatch: {text}")
    } else {
        text
    };
    malformed(what)
}

fn malformed(what: String) -> Error {
    Error::new(
        ErrorCode::StreamInterrupted,
        format!("The provider's event stream is malformed ({what}); the answer may be incomplete."),
    )
}

fn truncated(have: usize, total: Option<usize>) -> Error {
    let of = match total {
        Some(total) => format!("{have} of {total} bytes"),
        None => format!("{have} of at least {MIN_FRAME_LEN} bytes"),
    };
    Error::new(
        ErrorCode::StreamInterrupted,
        format!(
            "The provider's response was cut off: the stream ended in the middle of an event-stream frame ({of}); the answer is incomplete."
        ),
    )
}

/// The value of a string header; a header of another type is an error.
fn string_header<'m>(message: &'m Message, name: &str) -> Result<Option<&'m str>> {
    match message.headers().iter().find(|h| h.name().as_str() == name) {
        None => Ok(None),
        Some(h) => match h.value() {
            HeaderValue::String(s) => Ok(Some(s.as_str())),
            other => Err(malformed(format!(
                "the `{name}` header is not a string but {other:?}"
            ))),
        },
    }
}

fn message_to_event(message: Message) -> Result<Option<SseEvent>> {
    match string_header(&message, ":message-type")? {
        Some("event") => {
            let event = string_header(&message, ":event-type")?.map(str::to_owned);
            // Dropping the message leaves this the only handle on the payload's buffer, so the
            // conversion to a `Vec` takes it over instead of copying.
            let payload: Bytes = message.payload().clone();
            drop(message);
            let data = String::from_utf8(Vec::from(payload)).map_err(|_| {
                malformed(format!(
                    "the payload of a `{}` event is not valid UTF-8",
                    event.as_deref().unwrap_or("(unnamed)")
                ))
            })?;
            Ok(Some(SseEvent {
                event,
                data,
                id: None,
            }))
        }
        Some("exception") => {
            let kind = string_header(&message, ":exception-type")?.unwrap_or("an exception");
            let body = payload_body(message.payload());
            let text = body
                .as_ref()
                .map(message_text)
                .unwrap_or_else(|| "(no message)".to_owned());
            Err(reported(kind, &text, body))
        }
        Some("error") => {
            let code = string_header(&message, ":error-code")?.unwrap_or("an error");
            let header_text = string_header(&message, ":error-message")?;
            let body = payload_body(message.payload());
            let text = match (header_text, &body) {
                (Some(t), _) => t.to_owned(),
                (None, Some(b)) => message_text(b),
                (None, None) => "(no message)".to_owned(),
            };
            let body = body.or_else(|| {
                let mut headers = serde_json::Map::new();
                headers.insert(":error-code".into(), Value::String(code.to_owned()));
                if let Some(t) = header_text {
                    headers.insert(":error-message".into(), Value::String(t.to_owned()));
                }
                Some(Value::Object(headers))
            });
            Err(reported(code, &text, body))
        }
        // No or another `:message-type` (e.g. an `initial-response`): nothing for the adapters.
        _ => Ok(None),
    }
}

/// The provider's error (`kind` is an AWS exception type or error code) with its default
/// retryability.
fn reported(kind: &str, text: &str, body: Option<Value>) -> Error {
    Error::new(
        code_for_aws_error(kind),
        format!(
            "Bedrock reported {} during the stream: {}",
            clip(kind),
            clip(text)
        ),
    )
    .with_body(body)
}

/// An error payload as JSON, or as text when it is not JSON; `None` when empty.
fn payload_body(payload: &[u8]) -> Option<Value> {
    if payload.is_empty() {
        return None;
    }
    Some(
        serde_json::from_slice(payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned())),
    )
}

/// `message` (or AWS's `Message`) of an error body, else the body itself.
fn message_text(body: &Value) -> String {
    let field = body.get("message").or_else(|| body.get("Message"));
    match (field, body) {
        (Some(Value::String(s)), _) => s.clone(),
        (Some(v), _) if !v.is_null() => v.to_string(),
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::Header;
    use base64::Engine;
    use std::path::{Path, PathBuf};

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
    }

    fn fixture(rel: &str) -> Vec<u8> {
        let path = fixtures().join(rel);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The files of a fixture directory, sorted, as (name, bytes).
    fn fixture_dir(rel: &str, suffix: &str) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(fixtures().join(rel))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no fixtures in {rel}");
        files
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn be32(bytes: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    /// A fixed pseudo-random sequence (xorshift32).
    fn xorshift(seed: u32) -> impl FnMut() -> u32 {
        let mut x = seed.max(1);
        move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        }
    }

    /// A fixed pseudo-random sequence of piece sizes in 1..=7.
    fn random_sizes(seed: u32) -> impl FnMut() -> usize {
        let mut next = xorshift(seed);
        move || (next() % 7) as usize + 1
    }

    /// Splits `bytes` into pieces whose sizes come from `next_size`.
    fn split(bytes: &[u8], mut next_size: impl FnMut() -> usize) -> Vec<&[u8]> {
        let mut pieces = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = next_size().min(rest.len());
            pieces.push(&rest[..n]);
            rest = &rest[n..];
        }
        pieces
    }

    /// Every way these tests cut input: whole, fixed sizes 1..=7, and three random sequences.
    fn cuttings(bytes: &[u8]) -> Vec<(String, Vec<&[u8]>)> {
        let mut all = vec![("whole".to_owned(), vec![bytes])];
        for size in 1..=7 {
            all.push((format!("pieces of {size}"), bytes.chunks(size).collect()));
        }
        for seed in [1u32, 0xC0FFEE, 0x5EED_1234] {
            all.push((
                format!("random pieces, seed {seed:#x}"),
                split(bytes, random_sizes(seed)),
            ));
        }
        all
    }

    /// Messages from the low-level reader fed `pieces`, decoding after every piece.
    fn read_pieces(pieces: &[&[u8]]) -> Result<Vec<Message>> {
        let mut reader = FrameReader::new(DEFAULT_MAX_FRAME_LEN);
        let mut messages = Vec::new();
        for piece in pieces {
            reader.push(piece);
            while let Some(m) = reader.next_message()? {
                messages.push(m);
            }
        }
        match reader.partial_frame() {
            Some((have, total)) => Err(truncated(have, total)),
            None => Ok(messages),
        }
    }

    /// What a framer fed `pieces` gives: the events, and where it failed (the index of the piece
    /// whose `feed` failed, or `pieces.len()` for `finish`) with the error.
    struct Run {
        events: Vec<SseEvent>,
        error: Option<(usize, Error)>,
    }

    fn run(mut framer: EventStreamFramer, pieces: &[&[u8]]) -> Run {
        let mut events = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            if let Err(e) = framer.feed(piece, &mut events) {
                // A failed framer stays failed.
                assert_eq!(framer.feed(b"", &mut events), Err(e.clone()));
                assert_eq!(framer.finish(&mut events), Err(e.clone()));
                return Run {
                    events,
                    error: Some((i, e)),
                };
            }
        }
        let error = framer.finish(&mut events).err().map(|e| (pieces.len(), e));
        Run { events, error }
    }

    fn header_type(value: &HeaderValue) -> u64 {
        match value {
            HeaderValue::Bool(true) => 0,
            HeaderValue::Bool(false) => 1,
            HeaderValue::Byte(_) => 2,
            HeaderValue::Int16(_) => 3,
            HeaderValue::Int32(_) => 4,
            HeaderValue::Int64(_) => 5,
            HeaderValue::ByteArray(_) => 6,
            HeaderValue::String(_) => 7,
            HeaderValue::Timestamp(_) => 8,
            HeaderValue::Uuid(_) => 9,
            other => panic!("unknown header value {other:?}"),
        }
    }

    /// A header value in the decoded JSON's notation.
    fn header_json(value: &HeaderValue) -> Value {
        match value {
            HeaderValue::Bool(b) => Value::from(*b),
            HeaderValue::Byte(v) => Value::from(*v),
            HeaderValue::Int16(v) => Value::from(*v),
            HeaderValue::Int32(v) => Value::from(*v),
            HeaderValue::Int64(v) => Value::from(*v),
            HeaderValue::ByteArray(v) => Value::from(b64(v)),
            HeaderValue::String(v) => Value::from(b64(v.as_bytes())),
            HeaderValue::Timestamp(t) => Value::from(t.to_millis().unwrap()),
            HeaderValue::Uuid(v) => Value::from(b64(&v.to_be_bytes())),
            other => panic!("unknown header value {other:?}"),
        }
    }

    #[test]
    fn positive_vectors_decode_to_their_json() {
        let mut all_bytes = Vec::new();
        let mut all_messages = Vec::new();
        for (name, bytes) in fixture_dir("eventstream/aws-sdk-go/encoded/positive", "") {
            let expected: Value = serde_json::from_slice(&fixture(&format!(
                "eventstream/aws-sdk-go/decoded/positive/{name}"
            )))
            .unwrap();
            // The frame fields, including both checksums through this file's CRC-32.
            assert_eq!(expected["total_length"], bytes.len(), "{name}");
            assert_eq!(expected["headers_length"], be32(&bytes, 4), "{name}");
            assert_eq!(
                expected["prelude_crc"].as_i64().unwrap() as u32,
                be32(&bytes, 8)
            );
            assert_eq!(crc32(&bytes[..8]), be32(&bytes, 8), "{name}");
            let n = bytes.len();
            assert_eq!(
                expected["message_crc"].as_i64().unwrap() as u32,
                be32(&bytes, n - 4)
            );
            assert_eq!(crc32(&bytes[..n - 4]), be32(&bytes, n - 4), "{name}");

            let messages = decode_frames(&bytes).unwrap();
            assert_eq!(messages.len(), 1, "{name}");
            let message = &messages[0];
            let want = expected["headers"].as_array().unwrap();
            assert_eq!(message.headers().len(), want.len(), "{name}");
            for (got, want) in message.headers().iter().zip(want) {
                assert_eq!(got.name().as_str(), want["name"], "{name}");
                assert_eq!(header_type(got.value()), want["type"], "{name}: {want}");
                assert_eq!(header_json(got.value()), want["value"], "{name}: {want}");
            }
            assert_eq!(b64(message.payload()), expected["payload"], "{name}");

            for (how, pieces) in cuttings(&bytes) {
                assert_eq!(read_pieces(&pieces).unwrap(), messages, "{name}, {how}");
            }
            // None of these has a `:message-type`, so the framer skips them.
            let r = run(EventStreamFramer::new(), &[&bytes]);
            assert!(r.events.is_empty() && r.error.is_none(), "{name}");

            all_bytes.extend_from_slice(&bytes);
            all_messages.extend(messages);
        }
        assert_eq!(all_messages.len(), 5);
        // Back to back: several frames per piece, frames split anywhere.
        for (how, pieces) in cuttings(&all_bytes) {
            assert_eq!(read_pieces(&pieces).unwrap(), all_messages, "all, {how}");
        }
    }

    #[test]
    fn other_valid_vectors_decode() {
        let one = |rel: &str| {
            let messages = decode_frames(&fixture(rel)).unwrap();
            assert_eq!(messages.len(), 1, "{rel}");
            messages.into_iter().next().unwrap()
        };
        let m = one("eventstream/botocore/int8_header.bin");
        assert_eq!(m.headers(), [Header::new("byte", HeaderValue::Byte(-1))]);
        assert!(m.payload().is_empty());
        let m = one("eventstream/botocore/int64_header.bin");
        assert_eq!(m.headers(), [Header::new("long", HeaderValue::Int64(-1))]);
        assert!(m.payload().is_empty());
        let m = one("eventstream/smithy-rs/valid_empty_payload");
        assert_eq!(
            m.headers(),
            [Header::new("some-header", HeaderValue::Int16(500))]
        );
        assert!(m.payload().is_empty());
        let m = one("eventstream/smithy-rs/valid_no_headers");
        assert!(m.headers().is_empty());
        assert_eq!(&m.payload()[..], b"another test payload");

        for rel in [
            "eventstream/botocore/int8_header.bin",
            "eventstream/botocore/int64_header.bin",
            "eventstream/smithy-rs/valid_empty_payload",
            "eventstream/smithy-rs/valid_no_headers",
        ] {
            let bytes = fixture(rel);
            let whole = decode_frames(&bytes).unwrap();
            for (how, pieces) in cuttings(&bytes) {
                assert_eq!(read_pieces(&pieces).unwrap(), whole, "{rel}, {how}");
            }
        }
    }

    #[test]
    fn negative_vectors_fail_while_feeding() {
        let mut cases: Vec<(String, Vec<u8>, Option<String>)> = Vec::new();
        for (name, bytes) in fixture_dir("eventstream/aws-sdk-go/encoded/negative", "") {
            let text = String::from_utf8(fixture(&format!(
                "eventstream/aws-sdk-go/decoded/negative/{name}"
            )))
            .unwrap();
            cases.push((name, bytes, Some(text.trim().to_lowercase())));
        }
        for (name, bytes) in fixture_dir("eventstream/smithy-rs", "") {
            if name.starts_with("invalid_") {
                cases.push((name, bytes, None));
            }
        }
        cases.push((
            "invalid_headers_length.bin".into(),
            fixture("eventstream/botocore/invalid_headers_length.bin"),
            Some("headers length".into()),
        ));
        assert_eq!(cases.len(), 8);

        for (name, bytes, expected) in &cases {
            for (how, pieces) in cuttings(bytes) {
                let r = run(EventStreamFramer::new(), &pieces);
                assert!(r.events.is_empty(), "{name}, {how}");
                let (at, e) = r.error.unwrap_or_else(|| panic!("{name}, {how}: no error"));
                // Detected by a `feed`, not only at the end.
                assert!(at < pieces.len(), "{name}, {how}: only at finish: {e}");
                assert_eq!(e.code, ErrorCode::StreamInterrupted, "{name}");
                assert!(e.message.contains("malformed"), "{name}: {}", e.message);
                if let Some(expected) = expected {
                    assert!(
                        e.message.contains(expected.as_str()),
                        "{name}: {}",
                        e.message
                    );
                }
                assert!(read_pieces(&pieces).is_err(), "{name}, {how}");
            }
            assert!(decode_frames(bytes).is_err(), "{name}");
        }
    }

    #[test]
    fn a_bad_prelude_is_caught_at_its_twelfth_byte() {
        for rel in [
            "eventstream/aws-sdk-go/encoded/negative/corrupted_length",
            "eventstream/aws-sdk-go/encoded/negative/corrupted_header_len",
            "eventstream/botocore/invalid_headers_length.bin",
        ] {
            let bytes = fixture(rel);
            let mut framer = EventStreamFramer::new();
            let mut events = Vec::new();
            for (i, byte) in bytes[..11].iter().enumerate() {
                assert_eq!(
                    framer.feed(&[*byte], &mut events),
                    Ok(()),
                    "{rel}, byte {i}"
                );
            }
            let e = framer.feed(&bytes[11..12], &mut events).unwrap_err();
            assert_eq!(e.code, ErrorCode::StreamInterrupted, "{rel}");
            // The same with the 12 bytes at once.
            let e2 = EventStreamFramer::new()
                .feed(&bytes[..12], &mut events)
                .unwrap_err();
            assert_eq!(e, e2);
            assert!(events.is_empty());
        }
        // The one whose length field is wrong: 62 claimed, 61 sent. Undetected it would wait.
        let bytes = fixture("eventstream/aws-sdk-go/encoded/negative/corrupted_length");
        let e = EventStreamFramer::new()
            .feed(&bytes[..12], &mut Vec::new())
            .unwrap_err();
        assert!(
            e.message.contains("prelude checksum mismatch"),
            "{}",
            e.message
        );
    }

    #[test]
    fn error_message_becomes_the_providers_error() {
        let bytes = fixture("eventstream/botocore/error_event_message.bin");
        // What it holds: an `error` message with `:error-code` "code", `:error-message`
        // "message" and no payload.
        let messages = decode_frames(&bytes).unwrap();
        assert_eq!(
            messages[0].headers(),
            [
                Header::new(":message-type", HeaderValue::String("error".into())),
                Header::new(":error-code", HeaderValue::String("code".into())),
                Header::new(":error-message", HeaderValue::String("message".into())),
            ]
        );
        assert!(messages[0].payload().is_empty());
        for (how, pieces) in cuttings(&bytes) {
            let r = run(EventStreamFramer::new(), &pieces);
            assert!(r.events.is_empty());
            let (at, e) = r.error.unwrap();
            assert_eq!(at, pieces.len() - 1, "{how}");
            assert_eq!(e.code, ErrorCode::ServerError);
            assert!(e.retryable);
            assert_eq!(
                e.message,
                "Bedrock reported code during the stream: message"
            );
            assert_eq!(
                e.body.as_deref(),
                Some(&serde_json::json!({":error-code": "code", ":error-message": "message"}))
            );
        }
    }

    struct Capture {
        file: &'static str,
        events: Vec<(&'static str, usize)>,
    }

    fn captures() -> Vec<Capture> {
        let chunks = |n| vec![("chunk", n)];
        vec![
            Capture {
                file: "bedrock/invoke-stream/claude3-text.eventstream.bin",
                events: chunks(23),
            },
            Capture {
                file: "bedrock/invoke-stream/claude35-text-max-tokens.eventstream.bin",
                events: chunks(26),
            },
            Capture {
                file: "bedrock/invoke-stream/llama3-8b-text.eventstream.bin",
                events: chunks(120),
            },
            Capture {
                file: "bedrock/converse-stream/claude-tool-use.eventstream.bin",
                events: vec![
                    ("messageStart", 1),
                    ("contentBlockDelta", 14),
                    ("contentBlockStop", 1),
                    ("contentBlockStart", 1),
                    ("contentBlockDelta", 5),
                    ("contentBlockStop", 1),
                    ("messageStop", 1),
                    ("metadata", 1),
                ],
            },
            Capture {
                file: "bedrock/converse-stream/claude4-reasoning.eventstream.bin",
                events: vec![
                    ("messageStart", 1),
                    ("contentBlockDelta", 15),
                    ("contentBlockStop", 1),
                    ("contentBlockDelta", 5),
                    ("contentBlockStop", 1),
                    ("messageStop", 1),
                    ("metadata", 1),
                ],
            },
            Capture {
                file: "bedrock/converse-stream/llama-text.eventstream.bin",
                events: vec![
                    ("messageStart", 1),
                    ("contentBlockDelta", 36),
                    ("contentBlockStop", 1),
                    ("messageStop", 1),
                    ("metadata", 1),
                ],
            },
        ]
    }

    /// Start offsets of the frames of a valid stream.
    fn frame_starts(bytes: &[u8]) -> Vec<usize> {
        let mut starts = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            starts.push(at);
            at += be32(bytes, at) as usize;
        }
        assert_eq!(at, bytes.len());
        starts
    }

    #[test]
    fn bedrock_captures_whole_and_in_pieces() {
        for capture in captures() {
            let bytes = fixture(capture.file);
            let names: Vec<&str> = capture
                .events
                .iter()
                .flat_map(|(name, n)| std::iter::repeat_n(*name, *n))
                .collect();
            let whole = run(EventStreamFramer::new(), &[&bytes]);
            assert!(whole.error.is_none(), "{}: {:?}", capture.file, whole.error);
            let got: Vec<&str> = whole
                .events
                .iter()
                .map(|e| e.event.as_deref().unwrap())
                .collect();
            assert_eq!(got, names, "{}", capture.file);
            for event in &whole.events {
                assert_eq!(event.id, None);
                let payload: Value = serde_json::from_str(&event.data)
                    .unwrap_or_else(|e| panic!("{}: {e}: {}", capture.file, event.data));
                if event.event.as_deref() == Some("chunk") {
                    assert!(payload["bytes"].is_string(), "{}", event.data);
                }
            }
            for seed in [7u32, 0xBEDE0C4, 0x1234_5678] {
                let pieces = split(&bytes, random_sizes(seed));
                assert!(pieces.len() > bytes.len() / 7);
                let r = run(EventStreamFramer::new(), &pieces);
                assert!(r.error.is_none(), "{}: {:?}", capture.file, r.error);
                assert_eq!(r.events, whole.events, "{}, seed {seed}", capture.file);
            }
        }
    }

    #[test]
    fn truncated_capture_fails_at_finish() {
        for capture in captures() {
            let bytes = fixture(capture.file);
            let starts = frame_starts(&bytes);
            let last = *starts.last().unwrap();
            let frame_len = bytes.len() - last;
            for cut in [last + 5, last + 12, bytes.len() - 1] {
                let short = &bytes[..cut];
                for pieces in [vec![short], split(short, random_sizes(3))] {
                    let r = run(EventStreamFramer::new(), &pieces);
                    assert_eq!(r.events.len(), starts.len() - 1, "{}", capture.file);
                    let (at, e) = r.error.unwrap();
                    assert_eq!(at, pieces.len(), "error only at finish");
                    assert_eq!(e.code, ErrorCode::StreamInterrupted);
                    let have = cut - last;
                    let of = if have >= 12 {
                        format!("({have} of {frame_len} bytes)")
                    } else {
                        format!("({have} of at least 16 bytes)")
                    };
                    assert!(
                        e.message.contains(&format!(
                            "the stream ended in the middle of an event-stream frame {of}"
                        )),
                        "{}",
                        e.message
                    );
                }
            }
        }
    }

    #[test]
    fn flipped_payload_byte_is_a_message_checksum_error() {
        let bytes = fixture("bedrock/converse-stream/claude-tool-use.eventstream.bin");
        let starts = frame_starts(&bytes);
        // The middle of the third frame's payload (its last 4 bytes are the message CRC).
        let (start, end) = (starts[2], starts[3]);
        let mut bad = bytes.clone();
        bad[end - 10] ^= 0x01;
        for (how, pieces) in cuttings(&bad) {
            let r = run(EventStreamFramer::new(), &pieces);
            assert_eq!(r.events.len(), 2, "{how}");
            let (at, e) = r.error.unwrap();
            assert!(at < pieces.len());
            assert_eq!(e.code, ErrorCode::StreamInterrupted);
            assert!(
                e.message.contains("message checksum mismatch"),
                "{}",
                e.message
            );
        }
        assert!(start < end - 10);
    }

    fn frame(message: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        write_message_to(message, &mut out).unwrap();
        out
    }

    fn string(name: &str, value: &str) -> Header {
        Header::new(
            name.to_owned(),
            HeaderValue::String(value.to_owned().into()),
        )
    }

    fn event(name: &str, payload: &str) -> Vec<u8> {
        frame(
            &Message::new(payload.as_bytes().to_vec())
                .add_header(string(":event-type", name))
                .add_header(string(":content-type", "application/json"))
                .add_header(string(":message-type", "event")),
        )
    }

    #[test]
    fn exception_after_two_events() {
        let mut bytes = event("chunk", r#"{"bytes":"eyJhIjoxfQ=="}"#);
        bytes.extend(event("chunk", r#"{"bytes":"eyJiIjoyfQ=="}"#));
        bytes.extend(frame(
            &Message::new(&br#"{"message":"Too many requests"}"#[..])
                .add_header(string(":exception-type", "ThrottlingException"))
                .add_header(string(":content-type", "application/json"))
                .add_header(string(":message-type", "exception")),
        ));
        for (how, pieces) in cuttings(&bytes) {
            let r = run(EventStreamFramer::new(), &pieces);
            assert_eq!(r.events.len(), 2, "{how}");
            assert_eq!(r.events[0].event.as_deref(), Some("chunk"));
            assert_eq!(r.events[1].data, r#"{"bytes":"eyJiIjoyfQ=="}"#);
            let (at, e) = r.error.unwrap();
            assert_eq!(at, pieces.len() - 1, "{how}");
            assert_eq!(e.code, ErrorCode::RateLimit);
            assert!(e.retryable);
            assert_eq!(
                e.message,
                "Bedrock reported ThrottlingException during the stream: Too many requests"
            );
            assert_eq!(
                e.body.as_deref(),
                Some(&serde_json::json!({"message": "Too many requests"}))
            );
        }
        // Fed whole, the two events come out of the same failing `feed`.
        let mut events = Vec::new();
        assert!(EventStreamFramer::new().feed(&bytes, &mut events).is_err());
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn exception_with_a_text_payload_and_other_messages() {
        let bytes = frame(
            &Message::new(&b"model crashed"[..])
                .add_header(string(":message-type", "exception"))
                .add_header(string(":exception-type", "ModelStreamErrorException")),
        );
        let e = run(EventStreamFramer::new(), &[&bytes]).error.unwrap().1;
        assert_eq!(e.code, ErrorCode::StreamInterrupted);
        assert_eq!(
            e.message,
            "Bedrock reported ModelStreamErrorException during the stream: model crashed"
        );
        assert_eq!(e.body.as_deref(), Some(&Value::from("model crashed")));

        // An event without `:event-type`, an unknown message type, an event with an empty payload.
        let mut bytes =
            frame(&Message::new(&b"{}"[..]).add_header(string(":message-type", "event")));
        bytes.extend(frame(
            &Message::new(&b"x"[..]).add_header(string(":message-type", "initial-response")),
        ));
        bytes.extend(event("messageStop", ""));
        let r = run(EventStreamFramer::default(), &[&bytes]);
        assert!(r.error.is_none());
        assert_eq!(
            r.events,
            vec![
                SseEvent {
                    event: None,
                    data: "{}".into(),
                    id: None
                },
                SseEvent {
                    event: Some("messageStop".into()),
                    data: String::new(),
                    id: None
                }
            ]
        );
    }

    #[test]
    fn invalid_utf8_and_mistyped_headers_are_errors() {
        let mut bytes = event("chunk", "{}");
        bytes.extend(frame(
            &Message::new(&[0x7B, 0xFF, 0x7D][..])
                .add_header(string(":message-type", "event"))
                .add_header(string(":event-type", "chunk")),
        ));
        let r = run(EventStreamFramer::new(), &[&bytes]);
        assert_eq!(r.events.len(), 1);
        let e = r.error.unwrap().1;
        assert_eq!(e.code, ErrorCode::StreamInterrupted);
        assert!(e.message.contains("not valid UTF-8"), "{}", e.message);

        let bytes = frame(
            &Message::new(&b"{}"[..])
                .add_header(Header::new(":message-type", HeaderValue::Int32(1))),
        );
        let e = run(EventStreamFramer::new(), &[&bytes]).error.unwrap().1;
        assert_eq!(e.code, ErrorCode::StreamInterrupted);
        assert!(
            e.message.contains("`:message-type` header"),
            "{}",
            e.message
        );
    }

    /// A prelude with a valid checksum.
    fn prelude(total: u32, headers: u32) -> Vec<u8> {
        let mut p = total.to_be_bytes().to_vec();
        p.extend(headers.to_be_bytes());
        let crc = crc32(&p);
        p.extend(crc.to_be_bytes());
        p
    }

    #[test]
    fn frame_length_limits_apply_at_the_prelude() {
        // Over the configured cap: caught with only the prelude in.
        let big = event("chunk", &"x".repeat(200));
        assert!(big.len() > 200);
        let mut events = Vec::new();
        let mut framer = EventStreamFramer::with_max_frame_len(100);
        let e = framer.feed(&big[..12], &mut events).unwrap_err();
        assert_eq!(e.code, ErrorCode::StreamInterrupted);
        assert!(
            e.message.contains(&format!(
                "a frame of {} bytes exceeds the limit of 100 bytes",
                big.len()
            )),
            "{}",
            e.message
        );
        // At the cap: fine.
        let r = run(EventStreamFramer::with_max_frame_len(big.len()), &[&big]);
        assert!(r.error.is_none() && r.events.len() == 1);

        // The default cap is 16 MiB: one byte more fails at once, exactly 16 MiB waits for the rest.
        let over = prelude(16 * 1024 * 1024 + 1, 0);
        let e = EventStreamFramer::new()
            .feed(&over, &mut events)
            .unwrap_err();
        assert!(
            e.message.contains("exceeds the limit of 16777216 bytes"),
            "{}",
            e.message
        );
        let at = prelude(16 * 1024 * 1024, 0);
        let mut framer = EventStreamFramer::new();
        framer.feed(&at, &mut events).unwrap();
        framer.feed(&[0; 1000], &mut events).unwrap();
        let e = framer.finish(&mut events).unwrap_err();
        assert!(
            e.message.contains("(1012 of 16777216 bytes)"),
            "{}",
            e.message
        );
        let e = EventStreamFramer::new()
            .feed(&prelude(u32::MAX, 0), &mut events)
            .unwrap_err();
        assert!(e.message.contains("exceeds the limit"), "{}", e.message);

        // Below the 16-byte minimum, and headers longer than the frame.
        for total in [0, 12, 15] {
            let e = EventStreamFramer::new()
                .feed(&prelude(total, 0), &mut events)
                .unwrap_err();
            assert!(
                e.message.contains("below the 16-byte minimum"),
                "{}",
                e.message
            );
        }
        let e = EventStreamFramer::new()
            .feed(&prelude(40, 25), &mut events)
            .unwrap_err();
        assert!(
            e.message.contains("headers length of 25 bytes"),
            "{}",
            e.message
        );
        assert!(events.is_empty());
    }

    #[test]
    fn leftovers_and_empty_input() {
        let mut framer = EventStreamFramer::new();
        let mut events = Vec::new();
        framer.feed(b"", &mut events).unwrap();
        assert_eq!(framer.finish(&mut events), Ok(()));

        let bytes = event("chunk", "{}");
        let mut framer = EventStreamFramer::new();
        framer.feed(&bytes, &mut events).unwrap();
        framer.feed(&bytes[..5], &mut events).unwrap();
        assert_eq!(events.len(), 1);
        let e = framer.finish(&mut events).unwrap_err();
        assert!(
            e.message.contains("(5 of at least 16 bytes)"),
            "{}",
            e.message
        );
        assert!(decode_frames(&[bytes.as_slice(), &bytes[..20]].concat()).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // Every truncation and every single-bit flip of two frames, plus pseudo-random bytes.
        let mut bytes = event("contentBlockDelta", r#"{"delta":{"text":"hi"}}"#);
        bytes.extend(frame(
            &Message::new(&b"{}"[..])
                .add_header(string(":message-type", "event"))
                .add_header(Header::new("n", HeaderValue::Int64(-5)))
                .add_header(Header::new("u", HeaderValue::Uuid(7))),
        ));
        for cut in 0..bytes.len() {
            let _ = run(EventStreamFramer::new(), &[&bytes[..cut]]);
        }
        for i in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[i / 8] ^= 1 << (i % 8);
            let r = run(
                EventStreamFramer::new(),
                &split(&bad, random_sizes(i as u32 + 1)),
            );
            assert!(r.error.is_some(), "bit {i}");
        }
        assert!(run(EventStreamFramer::new(), &[&bytes]).error.is_none());
        let mut next = xorshift(99);
        let noise: Vec<u8> = (0..4096).map(|_| next() as u8).collect();
        for start in 0..64 {
            let _ = run(
                EventStreamFramer::new(),
                &split(&noise[start..], random_sizes(5)),
            );
        }
    }
}
