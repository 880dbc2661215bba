use super::*;

fn write(if_match: &str, live: &str, new: &str) -> Commit {
    Commit {
        if_match: if_match.into(),
        live_etag: live.into(),
        live_is_default: false,
        live_bytes: 10,
        new_etag: new.into(),
        new_bytes: 20,
        message: format!("to {new}"),
        origin: Origin::Api,
        rolled_back_to: None,
    }
}

fn accepted(r: CommitResult) -> (Entry, Option<Entry>, Vec<u64>) {
    match r {
        CommitResult::Accepted {
            entry,
            external,
            dropped,
            ..
        } => (entry, external, dropped),
        other => panic!("expected acceptance, got {other:?}"),
    }
}

fn conflict(r: CommitResult) -> (String, Option<u64>) {
    match r {
        CommitResult::Conflict {
            current_etag,
            current_version,
        } => (current_etag, current_version),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// A log whose latest version is `b` (v1 external seed `a`, v2 `b`).
fn seeded() -> TableLog {
    let mut log = TableLog::default();
    accepted(log.commit(&write("a", "a", "b"), 1));
    log
}

#[test]
fn first_write_over_a_seeded_kv_logs_the_seed_as_an_external_version() {
    let mut log = TableLog::default();
    let (entry, external, dropped) = accepted(log.commit(&write("seed", "seed", "new"), 5));
    let external = external.expect("the seed is logged");
    assert_eq!((external.version, external.origin), (1, Origin::External));
    assert_eq!(external.etag, "seed");
    assert_eq!(
        (entry.version, entry.origin, entry.etag.as_str()),
        (2, Origin::Api, "new")
    );
    assert!(dropped.is_empty());
    assert_eq!(log.latest().map(|e| e.version), Some(2));
}

#[test]
fn first_write_over_the_embedded_default_logs_nothing_external() {
    let mut log = TableLog::default();
    let mut c = write("dflt", "dflt", "new");
    c.live_is_default = true;
    let (entry, external, _) = accepted(log.commit(&c, 5));
    assert_eq!(external, None);
    assert_eq!(entry.version, 1);
}

#[test]
fn two_writers_editing_the_same_version_one_wins_one_gets_a_conflict() {
    let mut log = seeded();
    // Both read "b". Writer 1 saves; writer 2's worker still reads "b" from KV (lag).
    accepted(log.commit(&write("b", "b", "c1"), 10));
    let (current, version) = conflict(log.commit(&write("b", "b", "c2"), 11));
    assert_eq!(current, "c1");
    assert_eq!(version, Some(3));
    assert_eq!(log.latest().map(|e| e.etag.as_str()), Some("c1"));
}

#[test]
fn kv_lag_showing_an_older_logged_text_does_not_make_a_stale_etag_acceptable() {
    let mut log = seeded();
    accepted(log.commit(&write("b", "b", "c"), 10));
    // KV still returns "a" (an old logged version) and the writer edited "a".
    conflict(log.commit(&write("a", "a", "d"), 11));
    // The writer who edited the latest version succeeds even though KV lags.
    accepted(log.commit(&write("c", "b", "d"), 12));
}

#[test]
fn a_table_written_behind_the_apis_back_becomes_current_and_is_logged() {
    let mut log = seeded();
    // Someone wrote "x" with wrangler. A write based on "b" is stale.
    let (current, version) = conflict(log.commit(&write("b", "x", "c"), 10));
    assert_eq!((current.as_str(), version), ("x", None));
    // A write based on "x" succeeds and logs "x" first.
    let (entry, external, _) = accepted(log.commit(&write("x", "x", "c"), 11));
    assert_eq!(external.map(|e| (e.version, e.etag)), Some((3, "x".into())));
    assert_eq!(entry.version, 4);
    // A second writer who also edited "x" now conflicts, even while KV still shows "x".
    conflict(log.commit(&write("x", "x", "d"), 12));
}

#[test]
fn star_overwrites_whatever_is_current() {
    let mut log = seeded();
    let (entry, _, _) = accepted(log.commit(&write("*", "b", "z"), 10));
    assert_eq!(entry.etag, "z");
}

#[test]
fn rollback_entries_say_which_version_they_restore() {
    let mut log = seeded();
    let mut c = write("b", "b", "a");
    c.origin = Origin::Rollback;
    c.rolled_back_to = Some(1);
    let (entry, _, _) = accepted(log.commit(&c, 10));
    assert_eq!(entry.origin, Origin::Rollback);
    assert_eq!(entry.rolled_back_to, Some(1));
    // After rolling back to "a", a write naming "a" is current again.
    accepted(log.commit(&write("a", "a", "e"), 11));
}

#[test]
fn the_log_keeps_the_newest_versions_and_reports_the_dropped_ones() {
    let mut log = TableLog::default();
    let mut current = "t0".to_string();
    let mut all_dropped = Vec::new();
    for i in 1..=(KEEP_VERSIONS as u64 + 7) {
        let next = format!("t{i}");
        let (_, _, dropped) = accepted(log.commit(&write(&current, &current, &next), i));
        all_dropped.extend(dropped);
        current = next;
    }
    assert_eq!(log.entries().len(), KEEP_VERSIONS);
    // 1 external seed + 57 writes = 58 versions; the oldest 8 were dropped, in order.
    assert_eq!(all_dropped, (1..=8).collect::<Vec<_>>());
    assert_eq!(log.entries().first().map(|e| e.version), Some(9));
    assert!(log.get(8).is_none() && log.get(9).is_some());
    // Versions are never reused.
    assert_eq!(log.latest().map(|e| e.version), Some(58));
}

#[test]
fn the_log_round_trips_through_storage_json() {
    let log = seeded();
    let text = serde_json::to_string(&log).unwrap_or_default();
    let back: TableLog = serde_json::from_str(&text).unwrap_or_default();
    assert_eq!(back, log);
}

#[test]
fn etags_are_quoted_and_depend_on_every_byte() {
    let a = etag("{\"version\": 1}");
    assert_eq!(a.len(), 18);
    assert!(a.starts_with('"') && a.ends_with('"'));
    assert_eq!(a, etag("{\"version\": 1}"));
    assert_ne!(a, etag("{\"version\": 1} "));
}

#[test]
fn saving_the_current_text_again_makes_no_new_version() {
    let mut log = seeded();
    match log.commit(&write("b", "b", "b"), 10) {
        CommitResult::Accepted {
            entry, unchanged, ..
        } => assert_eq!((entry.version, unchanged), (2, true)),
        other => panic!("{other:?}"),
    }
    assert_eq!(log.entries().len(), 2);
    // A write of the current text with a stale ETag is still a conflict.
    accepted(log.commit(&write("b", "b", "c"), 11));
    conflict(log.commit(&write("b", "b", "c"), 12));
}

#[test]
fn change_messages_may_be_percent_encoded_utf8() {
    assert_eq!(decode_message("move chat to groq"), "move chat to groq");
    assert_eq!(decode_message("caf%C3%A9%20%E2%86%92%20v2"), "café → v2");
    // Not a valid escape: kept as sent.
    assert_eq!(decode_message("50% of traffic"), "50% of traffic");
    assert_eq!(decode_message("100%"), "100%");
    // Escapes that are not UTF-8: the raw header is kept.
    assert_eq!(decode_message("%FF%FE"), "%FF%FE");
    assert_eq!(decode_message("a%0Ab"), "a b");
    assert_eq!(decode_message(&"x".repeat(900)).len(), 500);
}

/// `seeded()` plus v3 "c" committed at 100: a log one version ahead of a KV that kept "b".
fn ahead() -> TableLog {
    let mut log = seeded();
    accepted(log.commit(&write("b", "b", "c"), 100));
    log
}

#[test]
fn a_lost_kv_write_leaves_kv_behind_and_the_etag_offered_is_the_one_the_next_write_needs() {
    let mut log = ahead();
    let state = log.kv_state("b", false, 101, KV_REPAIR_AFTER_MS);
    match &state {
        KvState::Behind {
            newest,
            kv_version,
            repair,
        } => {
            assert_eq!((newest.version, newest.etag.as_str()), (3, "c"));
            assert_eq!((*kv_version, *repair), (Some(2), false));
        }
        other => panic!("expected KV behind, got {other:?}"),
    }
    assert_eq!(state.etag("b"), "c");
    // A writer who edited what KV still holds is stale (it may be lag), the offered ETag wins.
    conflict(log.commit(&write("b", "b", "d"), 102));
    let (entry, external, _) = accepted(log.commit(&write(&state.etag("b"), "b", "d"), 103));
    assert_eq!((entry.version, external), (4, None));
}

#[test]
fn kv_behind_is_repaired_by_a_reader_only_after_the_propagation_bound() {
    let log = ahead();
    let repair = |now| match log.kv_state("b", false, now, KV_REPAIR_AFTER_MS) {
        KvState::Behind { repair, .. } => repair,
        other => panic!("expected KV behind, got {other:?}"),
    };
    assert!(!repair(100));
    assert!(!repair(100 + KV_REPAIR_AFTER_MS - 1));
    assert!(repair(100 + KV_REPAIR_AFTER_MS));
    // A clock behind the commit's never makes it due.
    assert!(!repair(50));
    // With no delay (tests set TABLE_REPAIR_AFTER_MS=0) a reader repairs at once.
    assert!(matches!(
        log.kv_state("b", false, 100, 0),
        KvState::Behind { repair: true, .. }
    ));
}

#[test]
fn a_deleted_live_table_is_behind_the_log_but_never_recreated_by_a_reader() {
    let mut log = ahead();
    let state = log.kv_state("dflt", true, u64::MAX, 0);
    assert_eq!(
        state,
        KvState::Behind {
            newest: log
                .latest()
                .cloned()
                .unwrap_or_else(|| panic!("a newest version")),
            kv_version: None,
            repair: false,
        }
    );
    let mut c = write(&state.etag("dflt"), "dflt", "d");
    c.live_is_default = true;
    let (entry, external, _) = accepted(log.commit(&c, 200));
    assert_eq!((entry.version, external), (4, None));
}

#[test]
fn in_sync_external_and_unlogged_states_keep_their_meaning() {
    assert_eq!(
        TableLog::default().kv_state("seed", false, 0, 0),
        KvState::Unlogged
    );
    let log = ahead();
    match log.kv_state("c", false, u64::MAX, 0) {
        KvState::InSync { newest } => assert_eq!(newest.version, 3),
        other => panic!("expected in sync, got {other:?}"),
    }
    // A text the log has never seen is an external change, not KV behind: never repaired over.
    let external = log.kv_state("x", false, u64::MAX, 0);
    assert_eq!(external, KvState::External);
    assert_eq!(external.etag("x"), "x");
}

#[test]
fn after_a_rollback_kv_holding_the_restored_text_is_in_sync() {
    let mut log = ahead();
    let mut c = write("c", "c", "a");
    c.origin = Origin::Rollback;
    c.rolled_back_to = Some(1);
    accepted(log.commit(&c, 300));
    // "a" is both v1 and the newest (v4): KV holding it is in sync, not behind at v1.
    assert!(matches!(
        log.kv_state("a", false, u64::MAX, 0),
        KvState::InSync { newest } if newest.version == 4
    ));
    // KV that kept "c" (v3) is behind.
    assert!(matches!(
        log.kv_state("c", false, 301, KV_REPAIR_AFTER_MS),
        KvState::Behind {
            kv_version: Some(3),
            ..
        }
    ));
}

#[test]
fn whatever_kv_holds_the_etag_a_reader_is_offered_is_accepted_by_the_next_write() {
    // (KV's ETag, KV holds no table) for each way KV can relate to the log `ahead()`.
    let cases = [
        ("c", false),   // in sync
        ("b", false),   // behind at v2 (lost or reordered write)
        ("a", false),   // behind at v1
        ("x", false),   // external
        ("dflt", true), // deleted
    ];
    for (live, is_default) in cases {
        for now in [101, u64::MAX] {
            let mut log = ahead();
            let offered = log
                .kv_state(live, is_default, now, KV_REPAIR_AFTER_MS)
                .etag(live);
            let mut c = write(&offered, live, "next");
            c.live_is_default = is_default;
            let (entry, _, _) = accepted(log.commit(&c, 400));
            assert_eq!(entry.etag, "next", "KV {live} at {now}");
        }
    }
    // And from an empty log.
    let mut log = TableLog::default();
    let offered = log.kv_state("seed", false, 0, 0).etag("seed");
    accepted(log.commit(&write(&offered, "seed", "next"), 1));
}
