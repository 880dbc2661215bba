use super::*;
use crate::state::hourly::{KEEP_HOURS, MS_PER_HOUR as H};

fn request(route: &str) -> RouteRequest {
    RouteRequest {
        route: route.into(),
        cost_nanos: 100,
        ..RouteRequest::default()
    }
}

fn attempt(route: &str, ok: bool, latency_ms: u64) -> RouteAttempt {
    RouteAttempt {
        route: route.into(),
        ok,
        latency_ms,
        cost_nanos: 10,
    }
}

#[test]
fn request_and_attempt_figures_add_up_per_route() {
    let mut s = RouteStats::default();
    let now = 1_000 * H;
    s.record_request(&request("chat"), now);
    s.record_request(
        &RouteRequest {
            fell_back: true,
            savings_nanos: 7,
            cached_tokens: 70,
            ..request("chat")
        },
        now + 1,
    );
    s.record_request(
        &RouteRequest {
            cache_hit: true,
            cost_nanos: 0,
            ..request("chat")
        },
        now + 2,
    );
    s.record_request(
        &RouteRequest {
            failed: true,
            ..request("code")
        },
        now,
    );
    s.record_attempt(&attempt("chat", false, 40), now);
    s.record_attempt(&attempt("chat", true, 900), now);
    let w = s.window(now, 6);
    let chat = &w["chat"];
    assert_eq!(chat.requests, 3);
    assert_eq!(chat.fallbacks, 1);
    assert_eq!(chat.cache_hits, 1);
    assert_eq!(chat.cost_nanos, 200);
    assert_eq!(chat.savings_nanos, 7);
    assert_eq!(chat.cached_tokens, 70);
    assert_eq!(chat.attempts, 2);
    assert_eq!(chat.attempt_errors, 1);
    assert_eq!(chat.attempt_cost_nanos, 20);
    let a = chat.attempts_json();
    assert_eq!(a["failover_rate_bps"], 5_000);
    assert_eq!(a["latency_p95_ms"], 1_000);
    assert_eq!(a["latency_buckets"].as_array().map(Vec::len), Some(11));
    assert_eq!(w["code"].failed, 1);
    assert_eq!(w["code"].requests_json()["cost_usd"], "0.0000001");
}

#[test]
fn windows_of_6_24_and_48_hours_count_only_their_hours() {
    let mut s = RouteStats::default();
    let now = 1_000 * H;
    // One request per hour over the last 60 hours.
    for back in 0..60 {
        s.record_request(&request("chat"), now - back * H);
    }
    // Written oldest last: hours behind the horizon of the newest were dropped.
    assert_eq!(s.window(now, 6)["chat"].requests, 6);
    assert_eq!(s.window(now, 24)["chat"].requests, 24);
    assert_eq!(s.window(now, 48)["chat"].requests, 48);
    // Two days without traffic: the window is empty and the route is left out.
    assert!(s.window(now + 48 * H, 48).is_empty());
}

#[test]
fn routes_are_bounded_and_the_least_recently_seen_goes() {
    let mut s = RouteStats::default();
    for i in 0..MAX_ROUTES as u64 {
        s.record_request(&request(&format!("r{i}")), i * 1_000);
    }
    // r0 is seen again, so r1 is now the stalest.
    s.record_request(&request("r0"), 100_000);
    s.record_request(&request("new"), 200_000);
    assert_eq!(s.len(), MAX_ROUTES);
    let w = s.window(200_000, 48);
    assert!(w.contains_key("r0"));
    assert!(
        !w.contains_key("r1"),
        "the least recently seen route was evicted"
    );
    assert!(w.contains_key("new"));
}

#[test]
fn stored_size_stays_small_at_the_bounds() {
    let mut s = RouteStats::default();
    let now = 10_000 * H;
    for hour in 0..(KEEP_HOURS + 10) {
        for r in 0..(MAX_ROUTES + 4) {
            let t = now + hour * H;
            let route = format!("route-number-{r:02}");
            s.record_request(
                &RouteRequest {
                    fell_back: true,
                    cache_hit: true,
                    savings_nanos: 123_456,
                    cached_tokens: 4_096,
                    ..request(&route)
                },
                t,
            );
            s.record_attempt(&attempt(&route, true, 70_000), t);
        }
    }
    let bytes = serde_json::to_vec(&s)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    assert!(bytes < 100_000, "{bytes} bytes stored");
}

#[test]
fn merge_is_the_sum_of_the_parts() {
    let mut a = Figures::default();
    a.add_request(&request("x"));
    a.add_attempt(&attempt("x", true, 10));
    let mut b = Figures::default();
    b.add_attempt(&attempt("x", false, 70_000));
    b.add_request(&RouteRequest {
        cache_hit: true,
        ..request("x")
    });
    let mut sum = a.clone();
    sum.merge(&b);
    assert_eq!(sum.requests, 2);
    assert_eq!(sum.cache_hits, 1);
    assert_eq!(sum.attempts, 2);
    assert_eq!(sum.attempt_errors, 1);
    assert_eq!(sum.latency_buckets.iter().sum::<u64>(), 2);
    // The open-ended last bucket reads as u64::MAX, the slowest first bucket as 50 ms.
    assert_eq!(sum.attempts_json()["latency_p95_ms"], u64::MAX);
    assert_eq!(sum.attempts_json()["latency_p50_ms"], 50);
    let saturated = Figures {
        cost_nanos: u64::MAX,
        ..Figures::default()
    };
    let mut s2 = saturated.clone();
    s2.merge(&saturated);
    assert_eq!(s2.cost_nanos, u64::MAX);
}

#[test]
fn stored_json_leaves_zero_fields_out_and_reads_back() {
    let mut s = RouteStats::default();
    s.record_request(&request("chat"), 3 * H);
    s.record_attempt(&attempt("chat", true, 120), 3 * H);
    let text = serde_json::to_string(&s).unwrap_or_default();
    assert_eq!(
        text,
        r#"{"r":{"chat":{"seen":10800000,"f":{"h":[{"n":3,"v":{"q":1,"c":100,"a":1,"ac":10,"l":[0,0,1]}}]}}}}"#
    );
    let back: RouteStats = serde_json::from_str(&text).unwrap_or_default();
    assert_eq!(back, s);
}
