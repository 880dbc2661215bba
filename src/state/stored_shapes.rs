//! The JSON the Durable Objects store today, pinned. Each literal below is what the current
//! code writes; it must keep decoding to the same value and encoding to the same text, so a
//! rename in Rust that would make stored state unreadable (and fail closed in production)
//! fails here first. New fields must be optional (`#[serde(default)]`), and unknown fields
//! from a newer version must be ignored.

use super::breaker::{Breaker, Phase};
use super::degradation::{Degradation, Reason};
use super::hourly::Hourly;
use super::quota::Quota;
use super::route_stats::{Figures, RouteStats};
use super::speed::Speed;
use super::stats::Stats;
use super::table_log::{Origin, TableLog};
use crate::keys::StoredRecord;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

const BREAKER_FORCED: &str = r#"{"phase":{"state":"forced_open"},"consecutive_failures":0,"trips":0,"window":{"buckets":[]},"opened_at_ms":1000,"total_trips":0}"#;
const BREAKER_OPEN: &str = r#"{"phase":{"state":"open","until_ms":9000},"consecutive_failures":3,"trips":1,"window":{"buckets":[[100,{"ok":2,"failed":3}]]},"opened_at_ms":4000,"total_trips":7}"#;
const BREAKER_HALF_OPEN: &str = r#"{"phase":{"state":"half_open","leases":[12000]},"consecutive_failures":0,"trips":1,"window":{"buckets":[]},"opened_at_ms":4000,"total_trips":7}"#;
const QUOTA: &str = r#"{"w":[{"s":1000,"r":2,"t":90}],"r":[{"id":"r2","at":1000000,"t":50,"c":700}],"d":{"id":0,"nanos":600},"m":{"id":23640,"nanos":600}}"#;
const STATS: &str = r#"{"total":{"requests":1,"ok":1,"errors":0,"fallbacks":0,"input_tokens":10,"output_tokens":5,"cost_nanos":99,"latency_ms_sum":120,"latency_buckets":[0,0,1,0,0,0,0,0,0,0,0]},"hours":[{"n":0,"c":{"requests":1,"ok":1,"errors":0,"fallbacks":0,"input_tokens":10,"output_tokens":5,"cost_nanos":99,"latency_ms_sum":120,"latency_buckets":[0,0,1,0,0,0,0,0,0,0,0]}}],"days":[{"n":0,"c":{"requests":1,"ok":1,"errors":0,"fallbacks":0,"input_tokens":10,"output_tokens":5,"cost_nanos":99,"latency_ms_sum":120,"latency_buckets":[0,0,1,0,0,0,0,0,0,0,0]}}]}"#;
const DEGRADATION: &str = r#"{"slots":[{"start":1000,"degraded":false,"requests":2,"errors":0,"timeouts":0,"latency":[[30,1]],"ttft":[[25,1]]},{"start":2000,"degraded":true,"requests":1,"errors":0,"timeouts":1,"latency":[],"ttft":[]}],"state":["latency",3000],"cfg":{"enabled":true,"latency_factor_pct":200,"error_rate_bps":200,"timeout_rate_bps":100,"recent_ms":5000,"baseline_ms":3600000,"min_recent":20,"min_baseline":50,"recovery_share_bps":500}}"#;
const SPEED: &str = r#"{"ttft_ms":40,"latency_ms":120,"tokens_per_s":62}"#;
const KEY_RECORD: &str = r#"{"text":"{\"name\":\"a\",\"rpm\":5,\"rev\":2}","rev":2}"#;
const ROUTE_STATS: &str = r#"{"r":{"chat":{"seen":10800000,"f":{"h":[{"n":3,"v":{"q":1,"c":100,"a":1,"ac":10,"l":[0,0,1]}}]}}}}"#;
const KEY_MONEY: &str = r#"{"h":[{"n":3,"v":{"q":2,"f":1,"h":1,"c":100,"s":7,"k":70}}]}"#;
const LOG: &str = r#"{"entries":[{"version":1,"etag":"def","created_ms":5,"message":"found in KV (written outside the admin API)","origin":"external","bytes":7},{"version":2,"etag":"abc","created_ms":5,"message":"m","origin":"api","bytes":10}],"last_version":2}"#;

fn round_trip<T: Serialize + DeserializeOwned>(text: &str) -> T {
    let value: T = serde_json::from_str(text).unwrap();
    assert_eq!(
        serde_json::to_string(&value).unwrap(),
        text,
        "wire format changed"
    );
    value
}

/// `text` with an extra field in every object, as a newer version might write it.
fn with_new_fields(text: &str) -> String {
    fn add(v: &mut Value) {
        match v {
            Value::Object(o) => {
                o.values_mut().for_each(add);
                o.insert("field_from_the_future".into(), Value::from(1));
            }
            Value::Array(a) => a.iter_mut().for_each(add),
            _ => {}
        }
    }
    let mut v: Value = serde_json::from_str(text).unwrap();
    add(&mut v);
    v.to_string()
}

fn reads_with_new_fields<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    text: &str,
) {
    let today: T = serde_json::from_str(text).unwrap();
    let newer: T = serde_json::from_str(&with_new_fields(text))
        .unwrap_or_else(|e| panic!("a new field made {text} unreadable: {e}"));
    assert_eq!(today, newer);
}

#[test]
fn breakers_of_every_phase_keep_their_stored_shape() {
    let b: Breaker = round_trip(BREAKER_FORCED);
    assert_eq!(b.phase, Phase::ForcedOpen);
    let b: Breaker = round_trip(BREAKER_OPEN);
    assert_eq!(b.phase, Phase::Open { until_ms: 9000 });
    assert_eq!(b.total_trips, 7);
    let b: Breaker = round_trip(BREAKER_HALF_OPEN);
    assert_eq!(
        b.phase,
        Phase::HalfOpen {
            leases: vec![12000]
        }
    );
    let closed: Breaker = serde_json::from_str(r#"{"phase":{"state":"closed"}}"#).unwrap();
    assert_eq!(closed, Breaker::default());
}

#[test]
fn usage_quota_and_speed_keep_their_stored_shape() {
    let q: Quota = round_trip(QUOTA);
    assert_eq!(q.spend(1_000_100).day_nanos, 600);
    let s: Stats = round_trip(STATS);
    assert_eq!(s.total().requests, 1);
    let sp: Speed = round_trip(SPEED);
    assert_eq!(sp.first_token_ms(), Some(40));
    let d: Degradation = round_trip(DEGRADATION);
    assert_eq!(d.current(), Some(Reason::Latency));
}

#[test]
fn route_figures_and_key_money_keep_their_stored_shape() {
    let r: RouteStats = round_trip(ROUTE_STATS);
    assert_eq!(r.window(3 * 3_600_000, 1)["chat"].attempts, 1);
    let m: Hourly<Figures> = round_trip(KEY_MONEY);
    let w = m.window(3 * 3_600_000, 48);
    assert_eq!((w.requests, w.cache_hits, w.savings_nanos), (2, 1, 7));
    // Route names are map keys, so only the figures can take new fields.
    reads_with_new_fields::<Hourly<Figures>>(KEY_MONEY);
    let _: RouteStats = serde_json::from_str("{}").unwrap();
}

#[test]
fn the_table_log_keeps_its_stored_shape() {
    let l: TableLog = round_trip(LOG);
    assert_eq!(
        l.latest().map(|e| (e.version, e.origin)),
        Some((2, Origin::Api))
    );
}

#[test]
fn a_key_record_keeps_its_stored_shape() {
    let r: StoredRecord = round_trip(KEY_RECORD);
    assert_eq!(r.rev, 2);
    assert_eq!(r.limits().and_then(|l| l.rpm), Some(5));
    let empty: StoredRecord = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, StoredRecord::default());
}

#[test]
fn fields_added_by_a_newer_version_are_ignored() {
    for b in [BREAKER_FORCED, BREAKER_OPEN, BREAKER_HALF_OPEN] {
        reads_with_new_fields::<Breaker>(b);
    }
    reads_with_new_fields::<Quota>(QUOTA);
    reads_with_new_fields::<Stats>(STATS);
    reads_with_new_fields::<Speed>(SPEED);
    reads_with_new_fields::<Degradation>(DEGRADATION);
    reads_with_new_fields::<TableLog>(LOG);
    reads_with_new_fields::<StoredRecord>(KEY_RECORD);
}

#[test]
fn fields_an_older_version_did_not_write_default() {
    let b: Breaker =
        serde_json::from_str(r#"{"phase":{"state":"forced_open"},"opened_at_ms":1000}"#).unwrap();
    assert_eq!(b.phase, Phase::ForcedOpen);
    let l: TableLog = serde_json::from_str(
        r#"{"entries":[{"version":4,"etag":"e","created_ms":1,"origin":"api"}],"last_version":4}"#,
    )
    .unwrap();
    assert_eq!(l.latest().map(|e| e.version), Some(4));
    let _: Quota = serde_json::from_str("{}").unwrap();
    let _: Stats = serde_json::from_str("{}").unwrap();
    let d: Degradation = serde_json::from_str("{}").unwrap();
    assert_eq!(d.current(), None);
}

#[test]
fn an_origin_from_a_newer_version_does_not_make_the_log_unreadable() {
    let l: TableLog = serde_json::from_str(
        r#"{"entries":[{"version":9,"etag":"e","created_ms":1,"origin":"imported_from_git"}],"last_version":9}"#,
    )
    .unwrap();
    assert_eq!(l.latest().map(|e| e.origin), Some(Origin::Unknown));
}

#[test]
fn a_breaker_phase_it_does_not_know_is_an_error_not_a_closed_breaker() {
    // Read by the object as unreadable state, which fails closed (forced open), never as a
    // default that would lift a kill switch.
    assert!(serde_json::from_str::<Breaker>(r#"{"phase":{"state":"quarantined"}}"#).is_err());
    assert!(serde_json::from_str::<Breaker>(r#""garbage""#).is_err());
}

const ALERTS: &str = r#"{"pending":[{"alert":{"event":"budget","subject":"key","name":"k1","scope":"day:80","detail":"d"},"at_ms":5,"window":0,"secret":"HOOK","tries":1,"next_ms":1005}],"marks":[{"id":"budget:key:k1:day:80:0","until_ms":300000}]}"#;
const ROUTE_FALLBACKS: &str = r#"{"routes":{"r":[{"s":1,"r":2,"f":1}]}}"#;

#[test]
fn alerts_and_route_fallbacks_keep_their_stored_shape() {
    use super::alerts::Outbox;
    use super::alerts_fallback::RouteFallbacks;
    let o: Outbox = round_trip(ALERTS);
    assert_eq!(o.next_alarm_ms(), Some(1005));
    assert_eq!(o.pending()[0].id(), "budget:key:k1:day:80:0");
    let f: RouteFallbacks = round_trip(ROUTE_FALLBACKS);
    assert_eq!(f.ratio("r", 1, 5), (1, 2));
    reads_with_new_fields::<Outbox>(ALERTS);
    // (Not `reads_with_new_fields` for RouteFallbacks: its `routes` is a map by route name,
    // where an added entry is a route, not a field.)
    let _: Outbox = serde_json::from_str("{}").unwrap();
}
