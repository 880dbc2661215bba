//! The isolate's memory of sticky sessions, for `routing::prepare`: (route, session) → the
//! deployment that last answered it, kept for the route's `sticky.ttl_ms`.
//!
//! Sessions: a request's session is `x-session-id`, else the body's `user`. On routes with
//! `sticky`, the session goes to the deployment that last answered it in this isolate, else
//! to its rendezvous-hash deployment, which every isolate computes alike, so affinity mostly
//! survives isolate changes without shared state. Invariant: at most `MAX_SESSIONS` entries
//! (expired ones are dropped first, then all), so client-chosen ids cannot grow the isolate.

use super::snapshot::SnapshotStats;
use crate::api::{ApiError, ChatRequest};
use crate::config::{Route, RoutingTable};
use crate::routing::prepare::{self, Door, Sessions, World};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;

const MAX_SESSIONS: usize = 10_000;

thread_local! {
    /// (route, session) → (deployment name, expires at). Names, not indices: a reloaded table
    /// may number its deployments differently.
    static SESSIONS: RefCell<HashMap<(String, String), (String, u64)>> = RefCell::new(HashMap::new());
}

/// This isolate's session memory.
pub struct IsolateSessions;

impl Sessions for IsolateSessions {
    fn remembered(&self, route: &str, session: &str, now_ms: u64) -> Option<String> {
        SESSIONS.with(|s| {
            s.borrow()
                .get(&(route.to_string(), session.to_string()))
                .filter(|(_, expires)| *expires > now_ms)
                .map(|(dep, _)| dep.clone())
        })
    }
}

/// The world `routing::prepare` reads in this isolate.
pub fn world(table: &RoutingTable) -> World<'_> {
    World {
        table,
        sessions: &IsolateSessions,
        stats: &SnapshotStats,
    }
}

/// The decision for a request as JSON, for the admin API's explain endpoint.
pub fn explain_request(
    table: &RoutingTable,
    chat: &ChatRequest,
    path: &str,
    headers: &[(String, String)],
    random: u64,
    now_ms: u64,
) -> Result<Value, ApiError> {
    let door = Door {
        path,
        headers,
        key: None,
        now_ms,
        random,
    };
    prepare::explain_request(&world(table), chat, &door)
}

/// Remembers which deployment answered a session on a sticky route.
pub fn remember_session(
    table: &RoutingTable,
    route: &Route,
    session: &str,
    deployment: &str,
    now_ms: u64,
) {
    let Some(ttl) = route.sticky_ttl_ms else {
        return;
    };
    if !table.deployments.iter().any(|d| d.name == deployment) {
        return;
    }
    SESSIONS.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() >= MAX_SESSIONS {
            s.retain(|_, (_, expires)| *expires > now_ms);
            if s.len() >= MAX_SESSIONS {
                s.clear();
            }
        }
        s.insert(
            (route.name.clone(), session.to_string()),
            (deployment.to_string(), now_ms.saturating_add(ttl)),
        );
    });
}
