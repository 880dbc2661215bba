//! Exact-match response caching (a route's `cache`): which requests may use the cache and
//! under which key, what of an answer is stored, and how a stored answer is served again.
//!
//! Pure: the glue (`worker/cache.rs`) reads and writes the Workers Cache API. Invariant: a key
//! names the route, the caller's scope and every request field that changes the answer, so two
//! requests share a cached answer only when the same caller (or, with `shared`, any caller
//! allowed on the route) asked the same route the same thing.

pub mod entry;
pub mod key;
pub mod policy;
pub mod replay;

pub use entry::{Entry, MAX_ENTRY_BYTES};
pub use key::{cache_key, Owner};
pub use policy::{decide, Decision};
pub use replay::answer_for_client;
