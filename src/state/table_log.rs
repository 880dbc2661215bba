//! The routing table's version log: which versions the admin API saved, and the compare-and-set
//! that decides whether a write may replace the table an operator edited.
//!
//! Invariant: a write is accepted only if its `If-Match` ETag names the table that is current
//! at the moment of the decision, so of two writers who edited the same table exactly one wins.
//! "Current" is the newest logged version, unless the worker read a KV text the log has never
//! seen: that text was written behind the API's back (wrangler, Cloudflare's dashboard) and is
//! current instead; it is logged as an `external` version before the write that replaces it.
//! A KV read that returns an older *logged* text is KV propagation lag, not a change, so it
//! never makes a stale ETag acceptable. Versions only grow; the log keeps the newest
//! `KEEP_VERSIONS` entries and reports the ones it drops, so that their texts can be deleted.
//!
//! **KV behind the log.** A write commits here first, then the worker stores the text in KV
//! (`routing-table:v:<n>`, then the live `routing-table`). If the live write is lost (KV takes
//! one write per second per key; a crash), or two saves' KV writes land in the opposite order,
//! the log's newest version is not what KV holds: KV holds an older logged text, or no table.
//! [`TableLog::kv_state`] calls that [`KvState::Behind`], and it is reconciled by *rolling KV
//! forward* to the log's newest version, never by rolling the log back:
//! - the log is where the compare-and-set happened: every later write was judged against its
//!   newest version, and a reordered KV write means that version was acknowledged (200) to
//!   its writer, so dropping it would lose a save;
//! - an older logged text in KV also looks exactly like KV propagation lag, where accepting
//!   the older ETag would let a stale writer win (the invariant above); rolling forward is the
//!   same rewrite in both cases, harmless under lag.
//!
//! So while KV is behind, the ETag a reader is offered ([`KvState::etag`]) is the newest
//! version's, the one [`TableLog::commit`] accepts, and the editor is shown that version's
//! text: the next save goes through and writes KV. A reload repairs KV by itself (`repair`)
//! once the newest version is older than KV's propagation bound ([`KV_REPAIR_AFTER_MS`]), so
//! readers do not write during ordinary lag; a deleted `routing-table` is never re-created by
//! a reload (deleting it is an operator's act; the last good table keeps serving), only by a
//! save. If the newest version's own text never reached KV there is nothing to roll forward
//! to: the worker shows what KV holds, still with the newest version's ETag, so the next save
//! replaces the version that never took effect. Limit: an older logged text put back into KV
//! by hand (`wrangler kv`) cannot be told from a lost write either, and is rolled forward over.
//!
//! Pure: the worker passes the time and the ETags in; the Durable Object `TableLog` applies
//! these decisions one at a time.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A table text's ETag: the first 64 bits of its SHA-256, quoted as HTTP wants.
pub fn etag(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// A change message from the `x-change-message` header. Headers carry only Latin-1 reliably, so
/// clients may percent-encode UTF-8 (`encodeURIComponent`); valid `%XX` sequences are decoded,
/// anything else is kept as sent. Control characters become spaces; at most 500 characters.
pub fn decode_message(raw: &str) -> String {
    let text = crate::percent::decode(raw).unwrap_or_else(|| raw.to_string());
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect::<String>()
        .trim()
        .to_string()
}

/// Versions kept in the log (and their texts in KV).
pub const KEEP_VERSIONS: usize = 50;

/// How long after a version was committed a KV that still lacks it is repaired by a reader:
/// KV's own bound for a write to reach every location (about 60 s). Sooner, the difference may
/// be propagation lag, which needs no write.
pub const KV_REPAIR_AFTER_MS: u64 = 60_000;

/// Where KV's live table stands relative to the log (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvState {
    /// No version has been saved through the API: whatever KV holds is current.
    Unlogged,
    /// KV holds the newest logged version.
    InSync { newest: Entry },
    /// KV holds a text the log has never seen (written behind the API's back): it is current.
    External,
    /// The log is ahead of KV, which holds an older logged version (`kv_version`) or no table
    /// (`None`). KV is rolled forward to `newest`; `repair` says a reader should do it now.
    Behind {
        newest: Entry,
        kv_version: Option<u64>,
        repair: bool,
    },
}

impl KvState {
    /// The ETag a reader is offered: the one the next write must name.
    pub fn etag(&self, live_etag: &str) -> String {
        match self {
            KvState::InSync { newest } | KvState::Behind { newest, .. } => newest.etag.clone(),
            KvState::Unlogged | KvState::External => live_etag.to_string(),
        }
    }
}

/// Stored in the table log: explicit wire names (see `state::stored_shapes`); an origin
/// written by a newer version reads as `Unknown` rather than making the whole log unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    /// Saved with `PUT /admin/api/table`.
    #[serde(rename = "api")]
    Api,
    /// Saved by `POST /admin/api/table/rollback`.
    #[serde(rename = "rollback")]
    Rollback,
    /// Found in KV, not written by the API; logged when an API write replaced it.
    #[serde(rename = "external")]
    External,
    #[serde(rename = "unknown", other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub version: u64,
    pub etag: String,
    pub created_ms: u64,
    #[serde(default)]
    pub message: String,
    pub origin: Origin,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_to: Option<u64>,
}

/// One write, as the worker asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// The client's `If-Match` (an ETag, or `*` for "whatever is there").
    pub if_match: String,
    /// ETag of the text the worker just read from KV (of the embedded default when KV is empty).
    pub live_etag: String,
    /// True when KV holds no table (the embedded default is serving); such a text is not
    /// logged as an external version.
    #[serde(default)]
    pub live_is_default: bool,
    /// Size of the live text, for the external entry.
    #[serde(default)]
    pub live_bytes: u64,
    pub new_etag: String,
    pub new_bytes: u64,
    #[serde(default)]
    pub message: String,
    pub origin: Origin,
    #[serde(default)]
    pub rolled_back_to: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CommitResult {
    Accepted {
        entry: Entry,
        /// The external text that was current and is now logged (its text must be stored
        /// under this version by the caller).
        external: Option<Entry>,
        /// Versions dropped from the log: their stored texts can be deleted.
        dropped: Vec<u64>,
        /// The write saves the text that is already current: no new version was made and
        /// `entry` is the current one.
        #[serde(default)]
        unchanged: bool,
    },
    Conflict {
        current_etag: String,
        current_version: Option<u64>,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TableLog {
    /// Oldest first.
    entries: Vec<Entry>,
    /// The last version number handed out (versions are never reused).
    last_version: u64,
}

impl TableLog {
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn latest(&self) -> Option<&Entry> {
        self.entries.last()
    }

    pub fn get(&self, version: u64) -> Option<&Entry> {
        self.entries.iter().find(|e| e.version == version)
    }

    fn knows(&self, etag: &str) -> bool {
        self.entries.iter().any(|e| e.etag == etag)
    }

    /// Whether the KV text with `live_etag` was written behind the API's back.
    pub fn is_external(&self, live_etag: &str, live_is_default: bool) -> bool {
        !live_is_default && !self.knows(live_etag)
    }

    /// The ETag a write must name now, given what the worker read from KV.
    pub fn current_etag(&self, live_etag: &str, live_is_default: bool) -> String {
        match self.latest() {
            Some(latest) if !self.is_external(live_etag, live_is_default) => latest.etag.clone(),
            _ => live_etag.to_string(),
        }
    }

    /// How KV's live table (ETag `live_etag`; `live_is_default` when KV holds none) relates to
    /// the log at `now_ms`; a KV behind the log is due for repair once its newest version is
    /// `repair_after_ms` old, unless KV holds no table at all.
    pub fn kv_state(
        &self,
        live_etag: &str,
        live_is_default: bool,
        now_ms: u64,
        repair_after_ms: u64,
    ) -> KvState {
        let Some(newest) = self.latest() else {
            return KvState::Unlogged;
        };
        if self.is_external(live_etag, live_is_default) {
            return KvState::External;
        }
        if !live_is_default && newest.etag == live_etag {
            return KvState::InSync {
                newest: newest.clone(),
            };
        }
        let kv_version = if live_is_default {
            None
        } else {
            self.entries
                .iter()
                .rev()
                .find(|e| e.etag == live_etag)
                .map(|e| e.version)
        };
        KvState::Behind {
            newest: newest.clone(),
            kv_version,
            repair: !live_is_default && now_ms.saturating_sub(newest.created_ms) >= repair_after_ms,
        }
    }

    pub fn commit(&mut self, c: &Commit, now_ms: u64) -> CommitResult {
        let current = self.current_etag(&c.live_etag, c.live_is_default);
        if c.if_match != "*" && c.if_match != current {
            let external = self.is_external(&c.live_etag, c.live_is_default);
            return CommitResult::Conflict {
                current_etag: current,
                current_version: if external {
                    None
                } else {
                    self.latest().map(|e| e.version)
                },
            };
        }
        if c.new_etag == current {
            if let Some(latest) = self.latest().filter(|l| l.etag == current) {
                return CommitResult::Accepted {
                    entry: latest.clone(),
                    external: None,
                    dropped: Vec::new(),
                    unchanged: true,
                };
            }
        }
        let external = if self.is_external(&c.live_etag, c.live_is_default) {
            Some(self.push(Entry {
                version: 0,
                etag: c.live_etag.clone(),
                created_ms: now_ms,
                message: "found in KV (written outside the admin API)".to_string(),
                origin: Origin::External,
                bytes: c.live_bytes,
                rolled_back_to: None,
            }))
        } else {
            None
        };
        let entry = self.push(Entry {
            version: 0,
            etag: c.new_etag.clone(),
            created_ms: now_ms,
            message: c.message.clone(),
            origin: c.origin,
            bytes: c.new_bytes,
            rolled_back_to: c.rolled_back_to,
        });
        let excess = self.entries.len().saturating_sub(KEEP_VERSIONS);
        let dropped = self.entries.drain(..excess).map(|e| e.version).collect();
        CommitResult::Accepted {
            entry,
            external,
            dropped,
            unchanged: false,
        }
    }

    fn push(&mut self, mut entry: Entry) -> Entry {
        self.last_version = self.last_version.saturating_add(1);
        entry.version = self.last_version;
        self.entries.push(entry.clone());
        entry
    }
}

#[cfg(test)]
#[path = "table_log_tests.rs"]
mod tests;
