use super::*;

fn settings() -> AlertSettings {
    AlertSettings {
        secret: "ALERT_WEBHOOK_URL".into(),
        events: Switches::default(),
        window_ms: DEFAULT_WINDOW_MS,
        fallback_ratio_bps: DEFAULT_FALLBACK_RATIO_BPS,
    }
}

fn alert(event: Event, name: &str) -> Alert {
    Alert {
        event,
        subject: Subject::Deployment,
        name: name.into(),
        scope: String::new(),
        detail: String::new(),
    }
}

#[test]
fn one_alert_per_event_subject_and_window() {
    let s = settings();
    let mut o = Outbox::default();
    assert!(o.push(alert(Event::BreakerOpened, "a"), &s, 1_000));
    assert!(!o.push(alert(Event::BreakerOpened, "a"), &s, 2_000));
    assert!(o.push(alert(Event::BreakerOpened, "b"), &s, 2_000));
    assert!(o.push(alert(Event::BreakerClosed, "a"), &s, 3_000));
    assert_eq!(o.pending().len(), 3);
    // The next window: the same event again.
    assert!(o.push(alert(Event::BreakerOpened, "a"), &s, DEFAULT_WINDOW_MS));
    // Still once per window after delivery.
    o.delivered(&o.due(DEFAULT_WINDOW_MS)[3].id());
    assert!(!o.push(alert(Event::BreakerOpened, "a"), &s, DEFAULT_WINDOW_MS + 5));
}

#[test]
fn a_flapping_breaker_opens_once_per_window() {
    let s = settings();
    let mut o = Outbox::default();
    let closed = Phase::Closed;
    let open = Phase::Open { until_ms: 1 };
    let half = Phase::HalfOpen { leases: vec![] };
    let flaps = [
        (&closed, &open),
        (&open, &half),
        (&half, &open),
        (&open, &half),
        (&half, &open),
    ];
    let mut opened = 0;
    for (i, (b, a)) in flaps.iter().enumerate() {
        if let Some(e) = breaker_edge(b, a) {
            assert_eq!(e, Event::BreakerOpened);
            if o.push(alert(e, "a"), &s, 10 + i as u64) {
                opened += 1;
            }
        }
    }
    assert_eq!(opened, 1);
    assert_eq!(breaker_edge(&half, &closed), Some(Event::BreakerClosed));
    assert_eq!(breaker_edge(&closed, &closed), None);
    assert_eq!(breaker_edge(&open, &half), None);
    assert_eq!(breaker_edge(&open, &open), None);
    assert_eq!(
        breaker_edge(&closed, &Phase::ForcedOpen),
        Some(Event::BreakerOpened)
    );
}

#[test]
fn switched_off_events_are_not_queued() {
    let mut s = settings();
    s.events.breaker_closed = false;
    let mut o = Outbox::default();
    assert!(!o.push(alert(Event::BreakerClosed, "a"), &s, 0));
    assert!(o.push(alert(Event::BreakerOpened, "a"), &s, 0));
}

#[test]
fn failed_deliveries_back_off_and_give_up_after_max_tries() {
    let s = settings();
    let mut o = Outbox::default();
    o.push(alert(Event::Degraded, "a"), &s, 0);
    let id = o.pending()[0].id();
    assert_eq!(o.next_alarm_ms(), Some(0));
    let mut now = 0;
    let mut waits = Vec::new();
    for _ in 1..MAX_TRIES {
        match o.failed(&id, now) {
            Retry::At(t) => {
                waits.push(t - now);
                assert!(o.due(t - 1).is_empty());
                assert_eq!(o.due(t).len(), 1);
                assert_eq!(o.next_alarm_ms(), Some(t));
                now = t;
            }
            Retry::GaveUp => panic!("gave up too early"),
        }
    }
    assert_eq!(waits, BACKOFF_MS.to_vec());
    assert_eq!(o.failed(&id, now), Retry::GaveUp);
    assert_eq!(o.next_alarm_ms(), None, "nothing left: the alarm stops");
    // Given up is still deduplicated in its window.
    assert!(!o.push(alert(Event::Degraded, "a"), &s, now));
}

#[test]
fn delivered_alerts_leave_and_the_alarm_stops() {
    let s = settings();
    let mut o = Outbox::default();
    o.push(alert(Event::Degraded, "a"), &s, 0);
    o.push(alert(Event::Recovered, "a"), &s, 0);
    for p in o.due(0) {
        o.delivered(&p.id());
    }
    assert_eq!(o.next_alarm_ms(), None);
    assert_eq!(o.failed("unknown", 0), Retry::GaveUp);
}

#[test]
fn pending_and_marks_are_bounded() {
    let s = settings();
    let mut o = Outbox::default();
    for i in 0..(MAX_PENDING + 10) {
        assert!(o.push(alert(Event::BreakerOpened, &format!("d{i}")), &s, 0));
    }
    assert_eq!(o.pending().len(), MAX_PENDING);
    assert_eq!(o.pending()[0].alert.name, "d10", "the oldest go first");
    assert_eq!(o.drop_all(), MAX_PENDING);
    assert_eq!(o.next_alarm_ms(), None);
    for i in 0..1_000 {
        o.push(alert(Event::BreakerOpened, &format!("e{i}")), &s, 0);
    }
    assert!(o.marks.len() <= MAX_MARKS);
}

#[test]
fn degradation_edges() {
    assert_eq!(
        degradation_edge(None, Some(Reason::Latency)),
        Some((Event::Degraded, "degraded_latency".into()))
    );
    assert_eq!(
        degradation_edge(Some(Reason::Errors), None).map(|e| e.0),
        Some(Event::Recovered)
    );
    assert_eq!(degradation_edge(None, None), None);
    assert_eq!(
        degradation_edge(Some(Reason::Errors), Some(Reason::Ttft)),
        None
    );
}

#[test]
fn budget_thresholds_are_crossed_once_each() {
    let budget = 1_000;
    let mut spent = 0;
    let mut crossed = Vec::new();
    for step in [100, 300, 99, 1, 250, 49, 1, 500] {
        let after = spent + step;
        crossed.extend(budget_crossings(spent, after, budget));
        spent = after;
    }
    assert_eq!(crossed, vec![50, 80, 100]);
    assert_eq!(budget_crossings(0, 5_000, budget), vec![50, 80, 100]);
    assert_eq!(budget_crossings(0, 499, budget), Vec::<u64>::new());
    assert_eq!(budget_crossings(0, 500, budget), vec![50]);
    assert_eq!(budget_crossings(0, u64::MAX, 0), Vec::<u64>::new());
    assert_eq!(budget_crossings(0, u64::MAX, u64::MAX), vec![50, 80, 100]);
}

#[test]
fn fallback_ratio_needs_enough_requests() {
    assert!(!fallback_ratio_passed(5, 9, 1_000));
    assert!(fallback_ratio_passed(2, 10, 1_000));
    assert!(
        !fallback_ratio_passed(1, 10, 1_000),
        "at the threshold is not past it"
    );
    assert!(!fallback_ratio_passed(0, 1_000, 0));
}

#[test]
fn payload_names_the_subject_and_is_slack_compatible() {
    let s = settings();
    let mut o = Outbox::default();
    o.push(
        Alert {
            event: Event::Budget,
            subject: Subject::Key,
            name: "k1".into(),
            scope: "day:80".into(),
            detail: "80% of day budget".into(),
        },
        &s,
        0,
    );
    let v = payload(&o.pending()[0], "1970-01-01T00:00:00.000Z");
    assert_eq!(v["event"], "budget");
    assert_eq!(v["key"], "k1");
    assert_eq!(v["at"], "1970-01-01T00:00:00.000Z");
    assert!(v["text"].as_str().unwrap_or("").contains("k1"));
    assert!(!v.to_string().contains("ALERT_WEBHOOK_URL"));
}

#[test]
fn scopes_are_deduplicated_apart() {
    let s = settings();
    let mut o = Outbox::default();
    for scope in ["day:50", "day:80", "day:100", "day:80"] {
        o.push(
            Alert {
                event: Event::Budget,
                subject: Subject::Key,
                name: "k1".into(),
                scope: scope.into(),
                detail: String::new(),
            },
            &s,
            0,
        );
    }
    assert_eq!(o.pending().len(), 3);
}
