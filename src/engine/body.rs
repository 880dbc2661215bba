//! One body type for both real upstream bodies and the built-in mock's scripted bodies.

use super::ports::{Clock, ResponseBody, TransportError};
use std::collections::VecDeque;

pub struct MockBody {
    chunks: VecDeque<Vec<u8>>,
    chunk_delay_ms: u64,
    first: bool,
}

impl MockBody {
    pub fn new(chunks: Vec<Vec<u8>>, chunk_delay_ms: u64) -> Self {
        MockBody {
            chunks: chunks.into(),
            chunk_delay_ms,
            first: true,
        }
    }
}

pub enum AttemptBody<B> {
    Net(B),
    Mock(MockBody),
}

impl<B: ResponseBody> AttemptBody<B> {
    pub async fn next_chunk<C: Clock>(
        &mut self,
        timeout_ms: u64,
        clock: &C,
    ) -> Result<Option<Vec<u8>>, TransportError> {
        match self {
            AttemptBody::Net(b) => b.next_chunk(timeout_ms).await,
            AttemptBody::Mock(m) => {
                if m.chunks.is_empty() {
                    return Ok(None);
                }
                let delay = if m.first { 0 } else { m.chunk_delay_ms };
                m.first = false;
                if delay > timeout_ms {
                    clock.sleep(timeout_ms).await;
                    return Err(TransportError::Timeout);
                }
                if delay > 0 {
                    clock.sleep(delay).await;
                }
                Ok(m.chunks.pop_front())
            }
        }
    }

    /// Reads the whole body, at most `limit` bytes, until `deadline_ms`.
    pub async fn read_all<C: Clock>(
        &mut self,
        limit: usize,
        deadline_ms: u64,
        clock: &C,
    ) -> Result<Vec<u8>, ReadAllError> {
        if let AttemptBody::Net(b) = self {
            let left = deadline_ms.saturating_sub(clock.now_ms());
            match b.read_whole(limit, left).await {
                Some(Ok(Some(bytes))) => return Ok(bytes),
                Some(Ok(None)) => return Err(ReadAllError::TooLarge),
                Some(Err(e)) => return Err(ReadAllError::Transport(e, Vec::new())),
                None => {}
            }
        }
        let mut out = Vec::new();
        loop {
            let left = deadline_ms.saturating_sub(clock.now_ms());
            if left == 0 {
                return Err(ReadAllError::Transport(TransportError::Timeout, out));
            }
            match self.next_chunk(left, clock).await {
                Ok(Some(bytes)) => {
                    if out.len() + bytes.len() > limit {
                        return Err(ReadAllError::TooLarge);
                    }
                    out.extend_from_slice(&bytes);
                }
                Ok(None) => return Ok(out),
                Err(e) => return Err(ReadAllError::Transport(e, out)),
            }
        }
    }
}

pub enum ReadAllError {
    TooLarge,
    /// The transport failed; the bytes read so far are kept.
    Transport(TransportError, Vec<u8>),
}
