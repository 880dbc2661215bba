//! One piece of an object's state: read from the object's storage on first use, kept in
//! memory, and written back by the handler after it changes it.
//!
//! Invariants:
//! - Memory and storage agree after every reply. The runtime delivers one request at a time
//!   while a storage call is pending (input gates), so a load-modify-save sequence in a
//!   handler is not interleaved with another request's.
//! - Stored data is never replaced by a default. Only an absent key starts from the default.
//!   A value that does not decode is kept as it is (`Unreadable`, with the raw value for the
//!   admin API), nothing is saved over it, and each handler fails closed for what needs it;
//!   only an explicit operator action (`replace`) writes a fresh value, after copying the
//!   unreadable one to `<key>:unreadable` (as JSON text). A failed read is not remembered: the next request
//!   reads again.
//! - Stored types stay readable across versions: wire names are explicit (`rename`, never a
//!   derived name that changes with the Rust name), new fields are `#[serde(default)]`, and
//!   unknown fields are ignored. `state::stored_shapes` tests pin today's stored JSON.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use std::cell::RefCell;
use worker::{console_error, Result, Storage};

enum Slot<T> {
    Unloaded,
    Ready(T),
    /// The stored value exists but does not decode as `T`.
    Unreadable {
        raw: Value,
        error: String,
    },
}

pub struct Stored<T> {
    key: &'static str,
    value: RefCell<Slot<T>>,
}

/// Why a piece of state cannot be used.
#[derive(Debug, Clone)]
pub struct StateError {
    pub key: &'static str,
    pub error: String,
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stored state \"{}\" is unreadable ({}); it is kept as it is and not overwritten",
            self.key, self.error
        )
    }
}

impl<T: Default + Clone + Serialize + DeserializeOwned> Stored<T> {
    pub fn new(key: &'static str) -> Self {
        Stored {
            key,
            value: RefCell::new(Slot::Unloaded),
        }
    }

    /// Reads the value once. Absent → default; undecodable → `Unreadable` (kept, logged);
    /// a failed read leaves it unloaded, so the next request tries again.
    pub async fn load(&self, storage: &Storage) {
        if !matches!(*self.value.borrow(), Slot::Unloaded) {
            return;
        }
        let slot = match storage.get::<T>(self.key).await {
            Ok(v) => Slot::Ready(v.unwrap_or_default()),
            Err(decode) => match storage.get::<Value>(self.key).await {
                Ok(Some(raw)) => {
                    let error = format!("does not decode: {decode}");
                    console_error!(
                        "{}",
                        json!({"event": "state_unreadable", "key": self.key, "error": error})
                    );
                    Slot::Unreadable { raw, error }
                }
                // Gone between the two reads: nothing stored, so the default is right.
                Ok(None) => Slot::Ready(T::default()),
                Err(e) => {
                    console_error!(
                        "{}",
                        json!({"event": "state_read_failed", "key": self.key, "error": e.to_string()})
                    );
                    return;
                }
            },
        };
        let mut current = self.value.borrow_mut();
        if matches!(*current, Slot::Unloaded) {
            *current = slot;
        }
    }

    /// Runs `f` on the value, or says why it cannot be used.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> std::result::Result<R, StateError> {
        match &mut *self.value.borrow_mut() {
            Slot::Ready(v) => Ok(f(v)),
            Slot::Unreadable { error, .. } => Err(StateError {
                key: self.key,
                error: error.clone(),
            }),
            Slot::Unloaded => Err(StateError {
                key: self.key,
                error: "reading the object's storage failed".into(),
            }),
        }
    }

    /// Writes the value back; never over an unreadable or unread value.
    pub async fn save(&self, storage: &Storage) -> Result<()> {
        let value = match &*self.value.borrow() {
            Slot::Ready(v) => Some(v.clone()),
            _ => None,
        };
        match value {
            Some(v) => storage.put(self.key, v).await,
            None => Ok(()),
        }
    }

    /// An operator's explicit action on unusable state: copy what is stored to
    /// `<key>:unreadable`, then start from the default. A usable value is left alone.
    pub async fn replace_unreadable(&self, storage: &Storage) -> Result<()> {
        let raw = match &*self.value.borrow() {
            Slot::Ready(_) => return Ok(()),
            Slot::Unreadable { raw, .. } => Some(raw.clone()),
            Slot::Unloaded => None,
        };
        if let Some(raw) = raw {
            // As JSON text: a `Value` would be stored as a JS `Map`, awkward to read back.
            storage
                .put(&format!("{}:unreadable", self.key), raw.to_string())
                .await?;
        }
        console_error!(
            "{}",
            json!({"event": "state_replaced", "key": self.key, "backup": format!("{}:unreadable", self.key)})
        );
        *self.value.borrow_mut() = Slot::Ready(T::default());
        Ok(())
    }

    /// For the admin API: the error and the raw stored value, when the state is unusable.
    pub fn problem(&self) -> Option<Value> {
        match &*self.value.borrow() {
            Slot::Ready(_) => None,
            Slot::Unreadable { raw, error } => {
                Some(json!({"key": self.key, "error": error, "raw": raw}))
            }
            Slot::Unloaded => Some(
                json!({"key": self.key, "error": "reading the object's storage failed", "raw": null}),
            ),
        }
    }
}
