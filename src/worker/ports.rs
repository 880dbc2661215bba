//! The engine's ports in this worker, and the one place an `Engine` is built: the request,
//! the stream task that resumes it, and the cron's probes all run the same engine.

use super::health::DoHealth;
use super::secrets::{redactor, EnvSecrets};
use super::transport::{FetchTransport, WorkerClock};
use crate::config::RoutingTable;
use crate::engine::Engine;
use crate::redact::Redactor;
use std::rc::Rc;
use worker::Env;

/// What an engine over `table` needs besides its health port: the secrets and the redactor
/// built from them (cached per isolate, see `secrets`).
pub struct Ports {
    table: Rc<RoutingTable>,
    secrets: EnvSecrets,
    redactor: Rc<Redactor>,
}

pub type WorkerEngine<'a> = Engine<'a, FetchTransport, WorkerClock, DoHealth>;

impl Ports {
    pub fn new(table: &Rc<RoutingTable>, env: &Env) -> Ports {
        Ports {
            table: Rc::clone(table),
            secrets: EnvSecrets(env.clone()),
            redactor: redactor(table, env),
        }
    }

    pub fn engine<'a>(&'a self, health: &'a DoHealth) -> WorkerEngine<'a> {
        Engine {
            table: &self.table,
            transport: &FetchTransport,
            clock: &WorkerClock,
            secrets: &self.secrets,
            health,
            redactor: &self.redactor,
        }
    }
}
