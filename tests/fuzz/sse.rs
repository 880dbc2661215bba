//! Target 1: the SSE parser, against a whole-buffer reference parser.

use crate::gen::{biased_bytes, cut_points, random_bytes, split_at_cuts, text};
use crate::harness::{fuzz, live_bytes, Rng};
use edge_router::sse::{SseEvent, SseParser};
use serde_json::json;

pub(crate) const BIG_LINE: usize = 1 << 20;

/// What a whole-buffer parse of some bytes leaves: events, the unfinished line, pending fields.
#[derive(Default)]
struct RefSse {
    events: Vec<SseEvent>,
    data: Option<String>,
    event: Option<String>,
    tail: Vec<u8>,
    longest_line: usize,
}

impl RefSse {
    fn has_partial(&self) -> bool {
        !self.tail.is_empty() || self.data.is_some()
    }
    /// Bytes of parser state this input legitimately leaves buffered.
    fn buffered(&self) -> usize {
        self.tail.len()
            + self.data.as_ref().map_or(0, String::len)
            + self.event.as_ref().map_or(0, String::len)
    }
}

/// A straightforward, non-incremental SSE parser (WHATWG rules for `data` and `event`).
fn reference_sse(input: &[u8]) -> RefSse {
    let mut r = RefSse::default();
    let (mut start, mut i) = (0, 0);
    while i < input.len() {
        let b = input[i];
        if b == b'\n' || b == b'\r' {
            let line = &input[start..i];
            i += 1;
            if b == b'\r' && input.get(i) == Some(&b'\n') {
                i += 1;
            }
            start = i;
            r.longest_line = r.longest_line.max(line.len());
            reference_line(&mut r, line);
        } else {
            i += 1;
        }
    }
    r.tail = input[start..].to_vec();
    r.longest_line = r.longest_line.max(r.tail.len());
    r
}

/// What a parser with limit `max` gives for `input`, however it is split: the events
/// completed before the first line longer than `max` (the unfinished tail included) or the
/// first `data:` line that takes its event's data past `max`, and whether there is such a line.
fn reference_limited(input: &[u8], max: usize) -> (Vec<SseEvent>, bool) {
    let mut r = RefSse::default();
    let (mut start, mut i) = (0, 0);
    while i < input.len() {
        let b = input[i];
        if b == b'\n' || b == b'\r' {
            let line = &input[start..i];
            if line.len() > max {
                return (r.events, true);
            }
            i += 1;
            if b == b'\r' && input.get(i) == Some(&b'\n') {
                i += 1;
            }
            start = i;
            reference_line(&mut r, line);
            if r.data.as_ref().is_some_and(|d| d.len() > max) {
                return (r.events, true);
            }
        } else {
            i += 1;
        }
    }
    (r.events, input.len() - start > max)
}

fn reference_line(r: &mut RefSse, line: &[u8]) {
    if line.is_empty() {
        if let Some(data) = r.data.take() {
            r.events.push(SseEvent {
                event: r.event.take(),
                data,
            });
        }
        r.event = None;
        return;
    }
    if line[0] == b':' {
        return;
    }
    let (field, value) = match line.iter().position(|&b| b == b':') {
        Some(c) => {
            let v = &line[c + 1..];
            (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
        }
        None => (line, &[][..]),
    };
    let value = String::from_utf8_lossy(value).into_owned();
    match field {
        b"data" => match &mut r.data {
            Some(d) => {
                d.push('\n');
                d.push_str(&value);
            }
            None => r.data = Some(value),
        },
        b"event" => r.event = Some(value),
        _ => {}
    }
}

fn sse_value(rng: &mut Rng) -> Vec<u8> {
    match rng.below(7) {
        0 | 1 => text(rng).into_bytes(),
        2 => {
            let mut v = Vec::new();
            for _ in 0..rng.range(1, 6) {
                v.extend_from_slice(rng.pick(&[
                    &b"\xff"[..],
                    b"\xc3",
                    b"\xc3\xa9",
                    b"\xed\xa0\x80",
                    b"\xf0\x9f\x8e",
                    b"\xf0\x9f\x8e\x89",
                    b"\xc0\x80",
                    b"ok",
                ]));
            }
            v
        }
        3 => json!({"choices": [{"delta": {"content": text(rng)}}]})
            .to_string()
            .into_bytes(),
        4 => b"[DONE]".to_vec(),
        5 => Vec::new(),
        _ => random_bytes(rng, 12),
    }
}

/// An SSE byte stream from a grammar of field lines, comments, blank lines, odd line endings,
/// invalid UTF-8 and very long lines; sometimes plain random bytes.
fn sse_input(rng: &mut Rng) -> Vec<u8> {
    if rng.one_in(8) {
        return biased_bytes(rng, 600);
    }
    let style = rng.below(4);
    let mut out = Vec::new();
    let eol = |rng: &mut Rng, out: &mut Vec<u8>| {
        let e: &[u8] = match style {
            0 => b"\n",
            1 => b"\r\n",
            2 => b"\r",
            _ => rng.pick(&[&b"\n"[..], b"\r\n", b"\r"]),
        };
        out.extend_from_slice(e);
    };
    for _ in 0..rng.size(40) {
        match rng.below(13) {
            0..=3 => {
                out.extend_from_slice(b"data");
                out.extend_from_slice(rng.pick(&[&b": "[..], b":", b":  ", b"", b" :"]));
                out.extend(sse_value(rng));
                eol(rng, &mut out);
            }
            4 => {
                out.extend_from_slice(b"event:");
                out.extend_from_slice(rng.pick(&[&b" "[..], b""]));
                let name = match rng.below(4) {
                    0 => b"message_start".to_vec(),
                    1 => b"error".to_vec(),
                    2 => Vec::new(),
                    _ => sse_value(rng),
                };
                out.extend(name);
                eol(rng, &mut out);
            }
            5 => {
                out.extend_from_slice(rng.pick(&[
                    &b"id: 7"[..],
                    b"retry: 1000",
                    b"dat: x",
                    b"DATA: x",
                    b"data_x: y",
                    b"event",
                    b"data",
                    b"x",
                ]));
                eol(rng, &mut out);
            }
            6 => {
                out.push(b':');
                out.extend(sse_value(rng));
                eol(rng, &mut out);
            }
            7 | 8 => eol(rng, &mut out),
            9 => {
                out.extend_from_slice(b"data: ");
                if rng.one_in(8) {
                    let n = rng.range(1_000, 70_000);
                    out.extend(std::iter::repeat_n(rng.pick(b"x\xff"), n));
                } else {
                    out.extend(sse_value(rng));
                }
                eol(rng, &mut out);
            }
            10 => out.extend(biased_bytes(rng, 16)),
            _ => {
                out.extend_from_slice(b"event: e");
                eol(rng, &mut out);
                out.extend_from_slice(b"data: ");
                out.extend(sse_value(rng));
                eol(rng, &mut out);
                eol(rng, &mut out);
            }
        }
    }
    if rng.one_in(3) && !out.is_empty() {
        let n = out.len() - rng.below(out.len().min(8));
        out.truncate(n);
    }
    out
}

/// Feeds `chunks`; returns the events, whether a feed failed (and every later feed failed
/// too), and `has_partial` at the end.
pub(crate) fn parse_chunks(max_line: usize, chunks: &[&[u8]]) -> (Vec<SseEvent>, bool, bool) {
    let mut p = SseParser::new(max_line);
    let mut out = Vec::new();
    let mut failed = false;
    for c in chunks {
        let r = p.feed(c, &mut out);
        if failed {
            assert!(r.is_err(), "a failed parser stays failed");
        }
        failed |= r.is_err();
    }
    (out, failed, p.has_partial())
}

fn sse_case(rng: &mut Rng) {
    let input = sse_input(rng);
    let want = reference_sse(&input);

    let (events, failed, partial) = parse_chunks(BIG_LINE, &[&input]);
    assert!(!failed);
    assert_eq!(events, want.events, "whole buffer vs reference");
    assert_eq!(partial, want.has_partial(), "has_partial vs reference");

    let cuts = cut_points(rng, &input);
    let chunks = split_at_cuts(&input, &cuts);
    let (events, failed, partial) = parse_chunks(BIG_LINE, &chunks);
    assert!(!failed);
    assert_eq!(events, want.events, "split at {cuts:?}");
    assert_eq!(partial, want.has_partial());

    if input.len() <= 800 {
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        let (events, failed, partial) = parse_chunks(BIG_LINE, &bytes);
        assert!(!failed);
        assert_eq!(events, want.events, "byte by byte");
        assert_eq!(partial, want.has_partial());

        // A small limit, fed byte by byte: fails exactly when some line, or some event's data,
        // exceeds it, after every event completed before that line.
        let max = rng.pick(&[0, 1, 5, 8, 40, 200, 1000]);
        let (events, failed, _) = parse_chunks(max, &bytes);
        assert!(failed || want.longest_line <= max, "limit {max}");
        assert_eq!((events, failed), reference_limited(&input, max));
    }

    // A limit, whole and with arbitrary splits: the same events and failure (the events
    // completed before the first over-long line or data, then the failure).
    let max = rng.pick(&[1, 16, 100, 1000, 50_000]);
    let limited = reference_limited(&input, max);
    assert!(limited.1 || want.longest_line <= max);
    let (events, failed, _) = parse_chunks(max, &[&input]);
    assert_eq!((events, failed), limited, "limit {max}, whole");
    let (events, failed, _) = parse_chunks(max, &chunks);
    assert_eq!((events, failed), limited, "limit {max}, split at {cuts:?}");

    if rng.one_in(2) {
        sse_memory(&input, &chunks);
    }
}

/// Between feeds the parser holds at most its unfinished line and the pending event fields
/// (with allocator slack): at most 64 bytes at an event boundary, and never more than a small
/// multiple of the input (decoding turns each invalid byte into a 3-byte U+FFFD).
fn sse_memory(input: &[u8], chunks: &[&[u8]]) {
    let mut bounds = Vec::new();
    let mut fed = 0;
    for c in chunks {
        fed += c.len();
        let r = reference_sse(&input[..fed]);
        bounds.push((fed, 4 * r.buffered() as isize + 64));
    }
    let mut p = SseParser::new(BIG_LINE);
    let base = live_bytes();
    for (c, (fed, bound)) in chunks.iter().zip(bounds) {
        let mut out = Vec::new();
        p.feed(c, &mut out).expect("fits");
        drop(out);
        let held = live_bytes() - base;
        assert!(
            held <= bound && held <= 8 * fed as isize + 64,
            "parser holds {held} bytes after {fed} bytes fed (bound {bound})"
        );
    }
    drop(p);
}

#[test]
fn fuzz_sse_parser() {
    fuzz("fuzz_sse_parser", 0x55E0_0001, 5_000, sse_case);
}
