//! The engine's answer: a complete body, a committed live stream, or an error for the caller.

use super::meta::Meta;
use super::ports::{Clock, ResponseBody};
use super::stream::LiveStream;
use crate::api::ApiError;
use crate::config::Price;

pub enum Outcome<B> {
    /// `client_ready`: the body is already in the client's format; otherwise it is the pivot.
    Complete {
        body: Vec<u8>,
        client_ready: bool,
        meta: Meta,
    },
    Stream(Box<CommittedStream<B>>),
    Failed {
        error: ApiError,
        meta: Meta,
    },
}

/// A stream committed to one deployment. Pull bytes with `next`; when it returns None the
/// meta is final (usage, cost, and the in-band error if the stream broke).
pub struct CommittedStream<B> {
    pub(crate) live: Box<LiveStream<B>>,
    pub(crate) meta: Meta,
    pub(crate) price: Price,
    pub(crate) finalised: bool,
}

impl<B: ResponseBody> CommittedStream<B> {
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    pub async fn next<C: Clock>(&mut self, clock: &C) -> Option<Vec<u8>> {
        let before = self.live.waiting_ms;
        let out = self.live.next_bytes(clock).await;
        self.meta.waiting_ms += self.live.waiting_ms - before;
        if out.is_none() && !self.finalised {
            self.finalised = true;
            self.meta.usage = self.live.usage;
            self.meta.cost_nanos = self.live.usage.map(|u| u.cost_nanos(&self.price));
            self.meta.error = self
                .live
                .end_error
                .as_ref()
                .map(|e| format!("{}: {}", e.class, e.message));
        }
        out
    }
}
