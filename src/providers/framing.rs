//! The framing every upstream stream translator shares: the SSE parser and its line bound,
//! `feed` / `end` and the failure that ends a stream. A format's own meaning of each event is
//! its `Decoder`; the one rule where formats differ on purpose (what happens to data that
//! arrives after the answer is complete) is the decoder's `AFTER_FINISH`.
//!
//! Invariants, for every format: the output depends only on the bytes fed, never on how they
//! were split; the events completed before an over-long line come out before its error;
//! after an `Error` nothing more is emitted; `end` reports a cut unless the answer was
//! complete.

use super::StreamEvent;
use crate::resilience::{ErrorClass, UpstreamError};
use crate::sse::{SseEvent, SseParser};

/// What a translator does with upstream data after the answer is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFinish {
    /// Keep decoding, and an over-long line is still an error (OpenAI: a finished answer is
    /// kept by the engine whatever follows, so nothing is lost by reporting it).
    Decode,
    /// Keep decoding (a later end marker still counts), but an over-long line is ignored like
    /// any trailing noise (Anthropic: `message_stop` follows the finish).
    DecodeQuietly,
    /// Read nothing more (Gemini: there is no end marker; the connection's close ends it).
    Ignore,
}

/// One upstream format's reading of its stream's events.
pub trait Decoder {
    /// Longest SSE line accepted from the upstream, and how the error names it.
    const MAX_LINE: usize;
    const MAX_LINE_TEXT: &'static str;
    const AFTER_FINISH: AfterFinish;

    /// Decodes one event into `out`. Err: the stream failed (the framing emits the error
    /// after whatever this event already emitted, and decodes nothing more).
    fn event(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), UpstreamError>;

    /// The answer is complete (its finish, or the format's end marker): a close now is no cut.
    fn complete(&self) -> bool;

    /// The model the upstream named.
    fn model(&self) -> Option<&str>;
}

/// A stream translator: the shared framing around one format's decoder.
pub struct SseTranslator<D> {
    parser: SseParser,
    /// Reused buffer of the events one `feed` completed.
    events: Vec<SseEvent>,
    failed: bool,
    pub(crate) decoder: D,
}

impl<D: Decoder> SseTranslator<D> {
    pub fn with_decoder(decoder: D) -> Self {
        SseTranslator {
            parser: SseParser::new(D::MAX_LINE),
            events: Vec::new(),
            failed: false,
            decoder,
        }
    }

    /// Whether upstream data is still read: not after a failure, nor, for a format that
    /// ignores what follows the answer, after its completion.
    fn reading(&self) -> bool {
        let ignoring = D::AFTER_FINISH == AfterFinish::Ignore && self.decoder.complete();
        !(self.failed || ignoring)
    }

    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        if !self.reading() {
            return;
        }
        // The events completed before an over-long line come first, then its error.
        let parsed = self.parser.feed(bytes, &mut self.events);
        let mut events = std::mem::take(&mut self.events);
        for ev in &events {
            if !self.reading() {
                break;
            }
            if let Err(e) = self.decoder.event(ev, out) {
                self.fail(out, e);
            }
        }
        events.clear();
        self.events = events;
        let quiet = D::AFTER_FINISH != AfterFinish::Decode && self.decoder.complete();
        if let (Err(e), false) = (parsed, self.failed || quiet) {
            let msg = format!("upstream sent {} over {}", e.what(), D::MAX_LINE_TEXT);
            self.fail(out, UpstreamError::new(ErrorClass::MalformedResponse, msg));
        }
    }

    /// The upstream body ended. Reports a cut if the answer was not complete.
    pub fn end(&mut self, out: &mut Vec<StreamEvent>) {
        if self.failed || self.decoder.complete() {
            return;
        }
        let what = if self.parser.has_partial() {
            "in the middle of an event"
        } else {
            "before the answer finished"
        };
        let msg = format!("upstream closed the stream {what}");
        self.fail(out, UpstreamError::new(ErrorClass::StreamCut, msg));
    }

    pub fn model(&self) -> Option<&str> {
        self.decoder.model()
    }

    fn fail(&mut self, out: &mut Vec<StreamEvent>, e: UpstreamError) {
        self.failed = true;
        out.push(StreamEvent::Error(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A format whose events are `data: text` (a content chunk), `data: fin` (the finish)
    /// and `data: bad` (malformed); `MODE` picks its rule after the finish.
    struct Toy<const MODE: u8> {
        finished: bool,
    }

    impl<const MODE: u8> Decoder for Toy<MODE> {
        const MAX_LINE: usize = 64;
        const MAX_LINE_TEXT: &'static str = "64 bytes";
        const AFTER_FINISH: AfterFinish = match MODE {
            0 => AfterFinish::Decode,
            1 => AfterFinish::DecodeQuietly,
            _ => AfterFinish::Ignore,
        };
        fn event(
            &mut self,
            ev: &SseEvent,
            out: &mut Vec<StreamEvent>,
        ) -> Result<(), UpstreamError> {
            match ev.data.as_str() {
                "bad" => return Err(UpstreamError::new(ErrorClass::MalformedResponse, "bad")),
                "fin" => {
                    self.finished = true;
                    out.push(StreamEvent::Finish);
                }
                text => out.push(StreamEvent::Chunk {
                    bytes: text.as_bytes().to_vec(),
                    content: true,
                    facts: None,
                }),
            }
            Ok(())
        }
        fn complete(&self) -> bool {
            self.finished
        }
        fn model(&self) -> Option<&str> {
            None
        }
    }

    /// What the translator emits for `input` fed in pieces of `split` bytes, then ended.
    fn run<const MODE: u8>(input: &[u8], split: usize) -> Vec<String> {
        let mut t = SseTranslator::with_decoder(Toy::<MODE> { finished: false });
        let mut out = Vec::new();
        for piece in input.chunks(split) {
            t.feed(piece, &mut out);
        }
        t.end(&mut out);
        out.iter()
            .map(|e| match e {
                StreamEvent::Chunk { bytes, .. } => String::from_utf8_lossy(bytes).into_owned(),
                StreamEvent::Finish => "FINISH".into(),
                StreamEvent::Error(e) => format!("ERROR {}: {}", e.class.as_str(), e.message),
                other => format!("{other:?}"),
            })
            .collect()
    }

    const LONG: &str =
        "data: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n\n";

    #[test]
    fn the_output_does_not_depend_on_how_the_bytes_were_split() {
        let input = b"data: one\n\ndata: two\n\ndata: fin\n\n";
        for split in [1, 2, 3, 7, input.len()] {
            assert_eq!(
                run::<0>(input, split),
                ["one", "two", "FINISH"],
                "split {split}"
            );
        }
    }

    #[test]
    fn nothing_follows_an_error() {
        let out = run::<0>(b"data: one\n\ndata: bad\n\ndata: two\n\ndata: fin\n\n", 4);
        assert_eq!(out, ["one", "ERROR malformed_response: bad"]);
    }

    #[test]
    fn a_close_before_the_finish_is_a_cut_saying_where() {
        assert_eq!(
            run::<0>(b"data: one\n\n", 64),
            [
                "one",
                "ERROR stream_cut: upstream closed the stream before the answer finished"
            ]
        );
        assert_eq!(
            run::<0>(b"data: one\n\ndata: tw", 64),
            [
                "one",
                "ERROR stream_cut: upstream closed the stream in the middle of an event"
            ]
        );
    }

    #[test]
    fn events_before_an_over_long_line_come_first_then_its_error() {
        let input = format!("data: one\n\n{LONG}data: two\n\n");
        let out = run::<0>(input.as_bytes(), input.len());
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0], "one");
        assert!(
            out[1].starts_with("ERROR malformed_response: upstream sent")
                && out[1].ends_with("over 64 bytes")
        );
    }

    #[test]
    fn after_the_finish_each_format_keeps_its_own_rule() {
        let input = format!("data: fin\n\ndata: late\n\n{LONG}");
        let decode = run::<0>(input.as_bytes(), 5);
        assert_eq!(decode[..2], ["FINISH", "late"]);
        assert!(
            decode[2].starts_with("ERROR malformed_response"),
            "{decode:?}"
        );
        assert_eq!(run::<1>(input.as_bytes(), 5), ["FINISH", "late"], "quietly");
        assert_eq!(run::<2>(input.as_bytes(), 5), ["FINISH"], "ignored");
    }
}
