//! `TableLog`: the one Durable Object (named `routing-table`) that serialises routing-table
//! writes through the admin API and keeps the version index.
//!
//! Invariant: each commit is decided against the log as it is after every earlier commit (one
//! request at a time; the load-decide-save sequence only awaits storage, which keeps the
//! input gate closed), so two writers with the same `If-Match` cannot both win. The texts of
//! the versions live in KV; this object keeps only the index (see `state::table_log`). An
//! unreadable index is never replaced by an empty one (which would restart the version
//! numbers and overwrite the history in KV): reads and writes answer 503 until it is repaired.

use super::stored::Stored;
use super::{body, json, now_ms};
use crate::state::table_log::{Commit, TableLog as Log};
use worker::{durable_object, DurableObject, Env, Method, Request, Response, Result, State};

/// The object's name: there is one routing table per deployment of the worker.
pub const NAME: &str = "routing-table";

#[durable_object]
pub struct TableLog {
    state: State,
    log: Stored<Log>,
}

impl DurableObject for TableLog {
    fn new(state: State, _env: Env) -> Self {
        TableLog {
            state,
            log: Stored::new("log"),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let storage = self.state.storage();
        self.log.load(&storage).await;
        match (req.method(), req.path().as_str()) {
            // An unreadable log refuses reads and writes: version numbers never restart.
            (Method::Get, "/log") => match self.log.with(|l| l.clone()) {
                Ok(log) => json(&log),
                Err(e) => Response::error(e.to_string(), 503),
            },
            (Method::Post, "/commit") => {
                let commit: Commit = match body(&mut req).await {
                    Ok(c) => c,
                    Err(e) => return Response::error(e, 400),
                };
                match self.log.with(|l| l.commit(&commit, now_ms())) {
                    Ok(result) => {
                        self.log.save(&storage).await?;
                        json(&result)
                    }
                    Err(e) => Response::error(e.to_string(), 503),
                }
            }
            _ => Response::error("not found", 404),
        }
    }
}
