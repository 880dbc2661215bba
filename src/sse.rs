//! Incremental Server-Sent Events parser and encoder.
//!
//! State: the parser buffers at most one unfinished line plus the fields of the event being
//! built. Bytes may be split anywhere (inside a UTF-8 sequence, between `\r` and `\n`), and
//! feeding a buffer whole or in any split yields the same events. Lines end in LF, CR or CRLF.
//!
//! Bounded whatever the upstream sends: a line, and an event's data however many `data:`
//! lines it spans, are each at most the parser's limit, so it holds at most about three times
//! the limit (line, data, event name); past it the parser fails for good.

/// One parsed event. `data` joins multiple `data:` lines with `\n`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a leading `\n` in the next chunk belongs to it.
    after_cr: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    max_line: usize,
    overflow: Option<TooLong>,
}

/// Error when a line, or an event's data, exceeds the parser's limit (a runaway or hostile
/// upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TooLong {
    Line,
    /// The `data:` lines of one event add up to more than the limit.
    Data,
}

impl TooLong {
    /// What was too long, for an error message ("… over 1 MiB").
    pub fn what(self) -> &'static str {
        match self {
            TooLong::Line => "an SSE line",
            TooLong::Data => "an SSE event whose data is",
        }
    }
}

impl SseParser {
    /// A parser that refuses lines longer than `max_line` bytes, and events whose data (the
    /// `data:` lines joined with `\n`) is longer than that.
    pub fn new(max_line: usize) -> Self {
        SseParser {
            max_line,
            ..Default::default()
        }
    }

    /// Feeds bytes; appends every event completed by them to `out`.
    ///
    /// A line or an event's data longer than the limit fails the parser for good (the same
    /// error now and on every later feed). The events completed before it are still appended
    /// to `out`, in order: handle them before the error.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), TooLong> {
        if let Some(e) = self.overflow {
            return Err(e);
        }
        let mut rest = bytes;
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if let [b'\n', tail @ ..] = rest {
                rest = tail;
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (head, tail) = rest.split_at(pos);
            // The limit holds for every line, however the bytes were split.
            if self.line.len() + head.len() > self.max_line {
                return Err(self.fail(TooLong::Line));
            }
            // `tail` starts with the line break found at `pos`.
            rest = match tail {
                [b'\r', b'\n', after @ ..] => after,
                [b'\r'] => {
                    self.after_cr = true;
                    &[]
                }
                [_, after @ ..] => after,
                [] => &[],
            };
            if self.line.is_empty() {
                // The whole line is in these bytes: read in place, not copied.
                self.line_done(head, out)?;
            } else {
                // Let go of its buffer: between feeds only an unfinished line is held.
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(head);
                self.line_done(&line, out)?;
            }
        }
        self.line.extend_from_slice(rest);
        if self.line.len() > self.max_line {
            return Err(self.fail(TooLong::Line));
        }
        Ok(())
    }

    /// Fails the parser for good and lets go of what it held.
    fn fail(&mut self, e: TooLong) -> TooLong {
        self.overflow = Some(e);
        self.line = Vec::new();
        self.data = String::new();
        self.event = None;
        e
    }

    /// Bytes of an unfinished event are pending (used to tell a clean end from a cut one).
    pub fn has_partial(&self) -> bool {
        !self.line.is_empty() || self.has_data
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), TooLong> {
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent {
                    event: self.event.take(),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.event = None;
            self.has_data = false;
            return Ok(());
        }
        if line.first() == Some(&b':') {
            return Ok(()); // comment / keep-alive
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let (field, colon_value) = line.split_at(i);
                let v = colon_value.get(1..).unwrap_or_default();
                (field, v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &[][..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"data" => {
                let joined = self.data.len() + usize::from(self.has_data) + value.len();
                if joined > self.max_line {
                    return Err(self.fail(TooLong::Data));
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            _ => {} // id, retry and unknown fields are not used by LLM streams
        }
        Ok(())
    }
}

/// Encodes one `data:` event (payload must not contain newlines; JSON from serde never does).
pub fn encode_data(payload: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    // One `data:` line per line of the payload: an event whose data spanned several lines
    // upstream stays one event (a raw newline would cut it short at the client).
    for line in payload.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.strip_suffix('\r').unwrap_or(line).as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

/// The OpenAI end-of-stream marker.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn any_split_gives_same_events() {
        let text = b"event: a\r\ndata: {\"x\":1}\r\n\r\n: keepalive\n\ndata: l1\ndata: l2\r\rdata: [DONE]\n\n".to_vec();
        let whole = parse_all(&[&text]);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0].event.as_deref(), Some("a"));
        assert_eq!(whole[1].data, "l1\nl2");
        for i in 0..text.len() {
            for j in i..text.len() {
                let parts = [&text[..i], &text[i..j], &text[j..]];
                assert_eq!(parse_all(&parts), whole, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn utf8_split_inside_a_character() {
        let text = "data: héllo\n\n".as_bytes();
        let idx = text.iter().position(|&b| b == 0xC3).unwrap() + 1;
        let ev = parse_all(&[&text[..idx], &text[idx..]]);
        assert_eq!(ev[0].data, "héllo");
    }

    #[test]
    fn overlong_line_is_an_error() {
        let mut p = SseParser::new(8);
        let mut out = Vec::new();
        assert_eq!(p.feed(b"data: 0123456789", &mut out), Err(TooLong::Line));
    }

    #[test]
    fn events_before_an_overlong_line_are_delivered() {
        let mut p = SseParser::new(8);
        let mut out = Vec::new();
        let r = p.feed(
            b"data: a\n\ndata: b\n\ndata: 0123456789\n\ndata: c\n\n",
            &mut out,
        );
        assert_eq!(r, Err(TooLong::Line));
        let data: Vec<&str> = out.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["a", "b"]);
        // Failed for good: nothing more is parsed.
        assert_eq!(p.feed(b"data: d\n\n", &mut out), Err(TooLong::Line));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn data_over_the_limit_across_lines_is_an_error() {
        // Every line is short; together the event's data passes the limit.
        let mut p = SseParser::new(16);
        let mut out = Vec::new();
        let r = p.feed(
            b"data: a\n\ndata: 0123456\ndata: 0123456\ndata: 0",
            &mut out,
        );
        assert_eq!(r, Ok(()), "15 bytes of data so far");
        assert_eq!(out.len(), 1);
        assert_eq!(p.feed(b"1\n", &mut out), Err(TooLong::Data), "17 bytes");
        assert_eq!(
            p.feed(b"\n", &mut out),
            Err(TooLong::Data),
            "failed for good"
        );
        assert_eq!(out.len(), 1, "the oversized event is never delivered");
    }

    #[test]
    fn empty_data_lines_count_towards_the_limit() {
        // `data:` alone adds a newline each: a stream of them must not grow without bound.
        let mut p = SseParser::new(16);
        let mut out = Vec::new();
        let mut r = Ok(());
        for _ in 0..100 {
            r = r.and(p.feed(b"data:\n", &mut out));
        }
        assert_eq!(r, Err(TooLong::Data));
        assert!(out.is_empty());
    }

    #[test]
    fn data_up_to_the_limit_across_lines_is_one_event() {
        let mut p = SseParser::new(16);
        let mut out = Vec::new();
        p.feed(b"data: 0123456\ndata: 01234567\n\n", &mut out)
            .unwrap();
        assert_eq!(out[0].data, "0123456\n01234567");
        // The limit is per event: the next event starts from zero.
        p.feed(b"data: 0123456\ndata: 01234567\n\n", &mut out)
            .unwrap();
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn partial_event_is_visible() {
        let mut p = SseParser::new(100);
        let mut out = Vec::new();
        p.feed(b"data: x\n", &mut out).unwrap();
        assert!(p.has_partial());
        p.feed(b"\n", &mut out).unwrap();
        assert!(!p.has_partial());
        assert_eq!(out.len(), 1);
    }
}
