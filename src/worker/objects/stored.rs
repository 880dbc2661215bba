//! One piece of an object's state: read from the object's storage on first use, kept in
//! memory, and written back by the handler after it changes it.
//!
//! Invariant: memory and storage agree after every reply. The runtime delivers one request at
//! a time while a storage call is pending (input gates), so a load-modify-save sequence in a
//! handler is not interleaved with another request's.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::cell::RefCell;
use worker::{Result, Storage};

pub struct Stored<T> {
    key: &'static str,
    value: RefCell<Option<T>>,
}

impl<T: Default + Clone + Serialize + DeserializeOwned> Stored<T> {
    pub fn new(key: &'static str) -> Self {
        Stored {
            key,
            value: RefCell::new(None),
        }
    }

    /// Reads the value once; unreadable or absent storage starts from the default.
    pub async fn load(&self, storage: &Storage) {
        if self.value.borrow().is_some() {
            return;
        }
        let stored = storage.get::<T>(self.key).await.ok().flatten();
        let mut slot = self.value.borrow_mut();
        if slot.is_none() {
            *slot = Some(stored.unwrap_or_default());
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut slot = self.value.borrow_mut();
        f(slot.get_or_insert_with(T::default))
    }

    pub async fn save(&self, storage: &Storage) -> Result<()> {
        let value = self.value.borrow().clone();
        match value {
            Some(v) => storage.put(self.key, v).await,
            None => Ok(()),
        }
    }
}
