//! Text values in Workers KV, with KV's errors turned into `worker::Error`.

use worker::kv::KvStore;
use worker::Result;

fn kv_err(e: impl std::fmt::Display) -> worker::Error {
    worker::Error::RustError(format!("KV: {e}"))
}

pub async fn get(kv: &KvStore, key: &str) -> Result<Option<String>> {
    kv.get(key).text().await.map_err(kv_err)
}

pub async fn put(kv: &KvStore, key: &str, text: &str) -> Result<()> {
    kv.put(key, text)
        .map_err(kv_err)?
        .execute()
        .await
        .map_err(kv_err)
}
