//! Worker variables and secrets, read once per isolate.
//!
//! Invariant: a value seen here is the binding's value for the isolate's whole life. Vars and
//! secrets change only with a new deployment (or `wrangler secret put`, which deploys), and
//! that starts new isolates; so reading each binding once (each read crosses into JS and
//! converts a string) costs nothing in freshness.

use std::cell::RefCell;
use std::collections::HashMap;
use worker::Env;

thread_local! {
    static SEEN: RefCell<HashMap<String, Option<String>>> = RefCell::new(HashMap::new());
}

/// The string binding `name` (a `[vars]` entry or a secret); None when it is not bound.
pub fn get(env: &Env, name: &str) -> Option<String> {
    if let Some(v) = SEEN.with(|s| s.borrow().get(name).cloned()) {
        return v;
    }
    let value = env.secret(name).ok().map(|s| s.to_string());
    SEEN.with(|s| s.borrow_mut().insert(name.to_string(), value.clone()));
    value
}

/// `name` parsed as a number, or `default` when unset or not a number.
pub fn number<T: std::str::FromStr>(env: &Env, name: &str, default: T) -> T {
    get(env, name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}
