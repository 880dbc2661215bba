//! Incremental Server-Sent Events parser and encoder.
//!
//! State: the parser buffers at most one unfinished line plus the fields of the event being
//! built. Bytes may be split anywhere (inside a UTF-8 sequence, between `\r` and `\n`), and
//! feeding a buffer whole or in any split yields the same events. Lines end in LF, CR or CRLF.

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
    overflow: bool,
}

/// Error when a single line exceeds the parser's limit (a runaway or hostile upstream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineTooLong;

impl SseParser {
    /// A parser that refuses lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        SseParser {
            max_line,
            ..Default::default()
        }
    }

    /// Feeds bytes; appends every event completed by them to `out`.
    ///
    /// A line longer than the limit fails the parser for good (`LineTooLong` now and on every
    /// later feed), so it holds at most `max_line` bytes of line. The events completed before
    /// that line are still appended to `out`, in order: handle them before the error.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), LineTooLong> {
        if self.overflow {
            return Err(LineTooLong);
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
            self.line.extend_from_slice(head);
            // The limit holds for every line, however the bytes were split.
            if self.line.len() > self.max_line {
                self.overflow = true;
                return Err(LineTooLong);
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
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, out);
        }
        self.line.extend_from_slice(rest);
        if self.line.len() > self.max_line {
            self.overflow = true;
            return Err(LineTooLong);
        }
        Ok(())
    }

    /// Bytes of an unfinished event are pending (used to tell a clean end from a cut one).
    pub fn has_partial(&self) -> bool {
        !self.line.is_empty() || self.has_data
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent {
                    event: self.event.take(),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.event = None;
            self.has_data = false;
            return;
        }
        if line.first() == Some(&b':') {
            return; // comment / keep-alive
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
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            _ => {} // id, retry and unknown fields are not used by LLM streams
        }
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
        assert_eq!(p.feed(b"data: 0123456789", &mut out), Err(LineTooLong));
    }

    #[test]
    fn events_before_an_overlong_line_are_delivered() {
        let mut p = SseParser::new(8);
        let mut out = Vec::new();
        let r = p.feed(
            b"data: a\n\ndata: b\n\ndata: 0123456789\n\ndata: c\n\n",
            &mut out,
        );
        assert_eq!(r, Err(LineTooLong));
        let data: Vec<&str> = out.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["a", "b"]);
        // Failed for good: nothing more is parsed.
        assert_eq!(p.feed(b"data: d\n\n", &mut out), Err(LineTooLong));
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
