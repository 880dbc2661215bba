use super::*;

const HOUR: u64 = MS_PER_HOUR;
const DAY: u64 = MS_PER_DAY;
/// 2024-02-29T00:00:00Z.
const T0: u64 = 1_709_164_800_000;

fn ok(latency_ms: u64) -> Sample {
    Sample {
        ok: true,
        fallback: false,
        input_tokens: 10,
        output_tokens: 5,
        cost_nanos: 1_500,
        latency_ms,
        ttft_ms: None,
        ..Sample::default()
    }
}

fn failed(latency_ms: u64) -> Sample {
    Sample {
        ok: false,
        latency_ms,
        ttft_ms: None,
        ..Sample::default()
    }
}

fn bucket_of(latency_ms: u64) -> usize {
    let mut one = Counters::default();
    one.add(&ok(latency_ms));
    assert_eq!(one.latency_buckets.iter().sum::<u64>(), 1);
    one.latency_buckets.iter().position(|n| *n == 1).unwrap()
}

#[test]
fn add_counts_every_field() {
    let mut c = Counters::default();
    c.add(&ok(120));
    c.add(&Sample {
        fallback: true,
        ..ok(30)
    });
    c.add(&failed(7_000));
    assert_eq!((c.requests, c.ok, c.errors, c.fallbacks), (3, 2, 1, 1));
    assert_eq!(
        (c.input_tokens, c.output_tokens, c.cost_nanos),
        (20, 10, 3_000)
    );
    assert_eq!(c.latency_ms_sum, 7_150);
    assert_eq!(c.latency_buckets, vec![1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(c.error_rate_bps(), 3_333);
    assert_eq!(c.fallback_rate_bps(), 3_333);
}

#[test]
fn latency_bucket_bounds_are_inclusive() {
    assert_eq!(bucket_of(0), 0);
    assert_eq!(bucket_of(50), 0);
    assert_eq!(bucket_of(51), 1);
    assert_eq!(bucket_of(1_000), 4);
    assert_eq!(bucket_of(60_000), 9);
    assert_eq!(bucket_of(60_001), 10);
    assert_eq!(bucket_of(u64::MAX), 10);
}

#[test]
fn arithmetic_saturates() {
    let mut c = Counters::default();
    let huge = Sample {
        cost_nanos: u64::MAX - 1,
        input_tokens: u64::MAX,
        ..ok(u64::MAX)
    };
    c.add(&huge);
    c.add(&huge);
    assert_eq!(c.cost_nanos, u64::MAX);
    assert_eq!(c.input_tokens, u64::MAX);
    assert_eq!(c.latency_ms_sum, u64::MAX);
    let mut m = c.clone();
    m.merge(&c);
    assert_eq!(m.cost_nanos, u64::MAX);
    assert_eq!(m.requests, 4);
    assert_eq!(m.percentile_ms(5_000), Some(u64::MAX));
}

#[test]
fn merge_equals_adding_every_sample() {
    let samples = [ok(10), failed(400), ok(2_500), ok(90_000), failed(60)];
    let (mut a, mut b, mut all) = (
        Counters::default(),
        Counters::default(),
        Counters::default(),
    );
    for (i, s) in samples.iter().enumerate() {
        if i % 2 == 0 {
            a.add(s)
        } else {
            b.add(s)
        }
        all.add(s);
    }
    a.merge(&b);
    assert_eq!(a, all);
    // Merging into / from counters loaded from older JSON without a full histogram.
    let mut old: Counters =
        serde_json::from_str(r#"{"requests":1,"ok":1,"latency_buckets":[1]}"#).unwrap();
    old.merge(&all);
    assert_eq!(old.requests, 6);
    assert_eq!(old.latency_buckets.len(), LATENCY_BOUNDS_MS.len());
    assert_eq!(old.latency_buckets.first(), Some(&2));
    let mut fresh = Counters::default();
    fresh.merge(&Counters {
        latency_buckets: vec![],
        ..Counters::default()
    });
    assert_eq!(fresh, Counters::default());
}

#[test]
fn percentiles_use_nearest_rank_bucket_bounds() {
    let mut c = Counters::default();
    assert_eq!(c.percentile_ms(5_000), None);
    for _ in 0..50 {
        c.add(&ok(40));
    }
    for _ in 0..45 {
        c.add(&ok(150));
    }
    for _ in 0..5 {
        c.add(&ok(20_000));
    }
    assert_eq!(c.percentile_ms(0), Some(50));
    assert_eq!(c.percentile_ms(5_000), Some(50));
    assert_eq!(c.percentile_ms(5_001), Some(200));
    assert_eq!(c.percentile_ms(9_500), Some(200));
    assert_eq!(c.percentile_ms(9_501), Some(30_000));
    assert_eq!(c.percentile_ms(9_900), Some(30_000));
    assert_eq!(c.percentile_ms(10_000), Some(30_000));
    assert_eq!(c.percentile_ms(u32::MAX), Some(30_000));
    c.add(&ok(61_000));
    assert_eq!(c.percentile_ms(10_000), Some(u64::MAX));
    let mut one = Counters::default();
    one.add(&failed(700));
    assert_eq!(one.percentile_ms(1), Some(1_000));
    assert_eq!(one.percentile_ms(9_900), Some(1_000));
}

#[test]
fn records_split_at_hour_and_day_boundaries() {
    let mut st = Stats::default();
    st.record(&ok(10), T0 - 1); // 2024-02-28 23:59:59.999
    st.record(&ok(10), T0); // 2024-02-29 00:00:00.000
    st.record(&failed(10), T0 + HOUR - 1);
    st.record(&ok(10), T0 + HOUR);
    assert_eq!(st.total().requests, 4);
    let hours: Vec<(u64, u64)> = st.hours().iter().map(|(t, c)| (*t, c.requests)).collect();
    assert_eq!(hours, vec![(T0 - HOUR, 1), (T0, 2), (T0 + HOUR, 1)]);
    let days: Vec<(u64, u64)> = st.days().iter().map(|(t, c)| (*t, c.requests)).collect();
    assert_eq!(days, vec![(T0 - DAY, 1), (T0, 3)]);
    assert_eq!(st.hours().get(1).map(|(_, c)| c.errors), Some(1));
}

#[test]
fn series_skip_hours_without_data() {
    let mut st = Stats::default();
    st.record(&ok(1), T0 + 30);
    st.record(&ok(1), T0 + 5 * HOUR + 30);
    let starts: Vec<u64> = st.hours().iter().map(|(t, _)| *t).collect();
    assert_eq!(starts, vec![T0, T0 + 5 * HOUR]);
}

#[test]
fn hours_are_pruned_after_48_and_days_after_35() {
    let mut st = Stats::default();
    st.record(&ok(1), T0);
    st.record(&ok(1), T0 + (KEEP_HOURS - 1) * HOUR);
    assert_eq!(st.hours().len(), 2);
    st.record(&ok(1), T0 + KEEP_HOURS * HOUR);
    let starts: Vec<u64> = st.hours().iter().map(|(t, _)| *t).collect();
    assert_eq!(
        starts,
        vec![T0 + (KEEP_HOURS - 1) * HOUR, T0 + KEEP_HOURS * HOUR]
    );
    assert_eq!(st.days().len(), 3);
    st.record(&ok(1), T0 + (KEEP_DAYS - 1) * DAY);
    assert_eq!(st.days().first().map(|(t, _)| *t), Some(T0));
    st.record(&ok(1), T0 + KEEP_DAYS * DAY);
    assert_eq!(st.days().first().map(|(t, _)| *t), Some(T0 + DAY));
    // 24 h apart: both hours are still inside the 48 h horizon.
    assert_eq!(st.hours().len(), 2);
    assert_eq!(st.total().requests, 5);
    // Bounded however long it runs.
    for h in 0..1_000 {
        st.record(&ok(1), T0 + h * HOUR);
    }
    assert!(st.hours().len() <= KEEP_HOURS as usize);
    assert!(st.days().len() <= KEEP_DAYS as usize);
}

#[test]
fn late_samples_land_in_order_or_only_in_total() {
    let mut st = Stats::default();
    st.record(&ok(1), T0 + 10 * HOUR);
    st.record(&ok(1), T0 + 2 * HOUR); // clock went back: still within 48 h
    st.record(&ok(1), T0 + 10 * HOUR - KEEP_HOURS * HOUR); // beyond the horizon
    let starts: Vec<u64> = st.hours().iter().map(|(t, _)| *t).collect();
    assert_eq!(starts, vec![T0 + 2 * HOUR, T0 + 10 * HOUR]);
    assert_eq!(st.total().requests, 3);
    assert_eq!(st.days().iter().map(|(_, c)| c.requests).sum::<u64>(), 3);
}

#[test]
fn json_has_the_admin_shape() {
    let mut st = Stats::default();
    st.record(&ok(120), T0 + 1);
    st.record(
        &Sample {
            fallback: true,
            ..failed(3_000)
        },
        T0 + HOUR,
    );
    let v = st.to_json(T0 + HOUR + 5);
    let total = &v["total"];
    assert_eq!(total["requests"], 2);
    assert_eq!(total["errors"], 1);
    assert_eq!(total["cost_nanos"], 1_500);
    assert_eq!(total["cost_usd"], "0.0000015");
    assert_eq!(total["latency_p50_ms"], 200);
    assert_eq!(total["latency_p95_ms"], 5_000);
    assert_eq!(total["latency_p99_ms"], 5_000);
    assert_eq!(total["error_rate_bps"], 5_000);
    assert_eq!(total["fallback_rate_bps"], 5_000);
    assert_eq!(total["latency_buckets"].as_array().map(Vec::len), Some(11));
    let hours = v["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 2);
    assert_eq!(hours[0]["start_ms"], T0);
    assert_eq!(hours[1]["start_ms"], T0 + HOUR);
    assert_eq!(hours[1]["fallbacks"], 1);
    assert_eq!(hours[1]["cost_usd"], "0");
    let days = v["days"].as_array().unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0]["start_ms"], T0);
    assert_eq!(days[0]["requests"], 2);
    // Viewed much later, stale slots are hidden even before a record prunes them.
    let later = st.to_json(T0 + HOUR + KEEP_HOURS * HOUR);
    assert_eq!(later["hours"].as_array().map(Vec::len), Some(0));
    assert_eq!(later["days"].as_array().map(Vec::len), Some(1));
    assert_eq!(later["total"]["requests"], 2);
}

#[test]
fn empty_stats_json_has_nulls_and_zeros() {
    let v = Stats::default().to_json(T0);
    assert_eq!(v["total"]["requests"], 0);
    assert!(v["total"]["latency_p50_ms"].is_null());
    assert_eq!(v["total"]["error_rate_bps"], 0);
    assert_eq!(v["total"]["cost_usd"], "0");
    assert_eq!(v["hours"], serde_json::json!([]));
    assert_eq!(v["days"], serde_json::json!([]));
}

#[test]
fn serde_round_trips_and_old_json_loads() {
    let mut st = Stats::default();
    st.record(&ok(80), T0);
    st.record(&failed(9), T0 + 3 * DAY);
    let back: Stats = serde_json::from_str(&serde_json::to_string(&st).unwrap()).unwrap();
    assert_eq!(back, st);
    assert_eq!(
        serde_json::from_str::<Stats>("{}").unwrap(),
        Stats::default()
    );
    let old: Stats = serde_json::from_str(r#"{"total":{"requests":7}}"#).unwrap();
    assert_eq!(old.total().requests, 7);
    assert_eq!(old.total().latency_buckets.len(), LATENCY_BOUNDS_MS.len());
    let s: Sample = serde_json::from_str(r#"{"ok":true}"#).unwrap();
    assert!(s.ok && !s.fallback);
}
