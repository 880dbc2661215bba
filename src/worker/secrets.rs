//! Worker secrets as the engine's `Secrets` port, and the redactor built from them.
//!
//! Invariant: the redactor in use knows every secret the current routing table names. It is
//! built once per table per isolate (a secret changes only with a new deployment, which
//! starts new isolates) and rebuilt when the table changes; the cache holds the table it was
//! built for, so a new table can never be mistaken for the old one.

use crate::config::RoutingTable;
use crate::providers::Secrets;
use crate::redact::Redactor;
use std::cell::RefCell;
use std::rc::Rc;
use worker::Env;

/// Secrets that are not provider keys but must never be echoed either.
const EXTRA_SECRETS: [&str; 1] = ["ADMIN_TOKEN"];

pub(super) struct EnvSecrets(pub(super) Env);

impl Secrets for EnvSecrets {
    fn get(&self, name: &str) -> Option<String> {
        super::vars::get(&self.0, name)
    }

    fn extra_values(&self) -> Vec<String> {
        EXTRA_SECRETS.iter().filter_map(|n| self.get(n)).collect()
    }
}

thread_local! {
    static CACHE: RefCell<Option<(Rc<RoutingTable>, Rc<Redactor>)>> = const { RefCell::new(None) };
}

/// The redactor for `table`, from this isolate's cache when it was built for the same table.
pub(super) fn redactor(table: &Rc<RoutingTable>, env: &Env) -> Rc<Redactor> {
    let cached = CACHE.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|(t, _)| Rc::ptr_eq(t, table))
            .map(|(_, r)| Rc::clone(r))
    });
    if let Some(r) = cached {
        return r;
    }
    let built = Rc::new(Redactor::for_table(table, &EnvSecrets(env.clone())));
    CACHE.with(|c| *c.borrow_mut() = Some((Rc::clone(table), Rc::clone(&built))));
    built
}
