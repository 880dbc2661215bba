//! Tests of `engine::resuming`'s decisions: the method of a resume by the route's mode, and
//! what a failed resume leads to.
use super::*;
use crate::api::parse_chat_request;
use crate::config::parse_table;

fn state(mode: &str) -> ResumeState {
    let dep = serde_json::json!({"provider": "p", "model": "m", "context_window": 8000,
                                 "price": {"input_per_mtok_usd": 1, "output_per_mtok_usd": 2}});
    let t = serde_json::json!({
        "version": 1,
        "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:1"}},
        "deployments": {"a": dep, "b": dep},
        "routes": {"r": {"chain": ["a", "b"], "resume": mode}}
    });
    let table = match parse_table(&t.to_string()) {
        Ok(t) => t,
        Err(e) => panic!("test table: {e:?}"),
    };
    let req = parse_chat_request(
        br#"{"model":"r","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .expect("request");
    let route = table.route("r").expect("route r");
    ResumeState::new(
        &Rc::new(req),
        route,
        &[0, 1],
        0,
        60_000,
        SubrequestBudget::new(50),
    )
}

fn error(class: ErrorClass, message: &str) -> UpstreamError {
    UpstreamError {
        class,
        status: None,
        message: message.into(),
        retry_after_ms: None,
        body: None,
        diverged: false,
    }
}

#[test]
fn the_method_follows_the_mode_and_what_the_provider_supports() {
    let cases = [
        ("auto", PrefillSupport::Assistant, Some(Method::Prefill)),
        ("auto", PrefillSupport::None, Some(Method::Replay)),
        ("prefill", PrefillSupport::PrefixFlag, Some(Method::Prefill)),
        ("prefill", PrefillSupport::None, None),
        ("replay", PrefillSupport::Assistant, Some(Method::Replay)),
    ];
    for (mode, support, want) in cases {
        assert_eq!(state(mode).method(0, support), want, "{mode} {support:?}");
    }
}

#[test]
fn a_refused_prefill_is_replayed_there_and_never_prefilled_there_again() {
    let mut s = state("auto");
    s.used = 1;
    let refused = error(ErrorClass::InvalidRequest, "no prefill");
    assert_eq!(s.on_failure(0, Method::Prefill, &refused), After::Replay);
    assert_eq!((s.used, s.cursor), (0, 0), "not a resume; same deployment");
    assert_eq!(s.method(0, PrefillSupport::Assistant), Some(Method::Replay));
    assert_eq!(
        s.method(1, PrefillSupport::Assistant),
        Some(Method::Prefill)
    );
}

#[test]
fn in_prefill_mode_a_refused_prefill_moves_on() {
    let mut s = state("prefill");
    s.used = 1;
    let refused = error(ErrorClass::InvalidRequest, "no prefill");
    assert_eq!(s.on_failure(0, Method::Prefill, &refused), After::Next);
    assert_eq!((s.used, s.cursor), (0, 1));
    assert_eq!(s.method(0, PrefillSupport::Assistant), None);
}

#[test]
fn a_divergent_replay_ends_resuming_and_other_failures_move_on() {
    let mut s = state("auto");
    let diverged = UpstreamError {
        diverged: true,
        ..error(ErrorClass::MalformedResponse, "the replayed answer differs")
    };
    assert_eq!(s.on_failure(0, Method::Replay, &diverged), After::Stop);
    let cut = error(ErrorClass::StreamCut, "cut");
    assert_eq!(s.on_failure(0, Method::Replay, &cut), After::Next);
    assert_eq!(s.cursor, 1);
    let malformed = error(ErrorClass::MalformedResponse, "bad json");
    assert_eq!(s.on_failure(1, Method::Replay, &malformed), After::Next);
}

#[test]
fn a_deployment_that_timed_out_is_never_asked_to_resume() {
    let mut s = state("auto");
    for class in [
        ErrorClass::TimeoutIdle,
        ErrorClass::TimeoutFirstToken,
        ErrorClass::TimeoutAttempt,
        ErrorClass::TimeoutConnect,
    ] {
        let mut s = state("auto");
        s.note_failure(0, class);
        assert!(!s.may_ask(0), "{class:?}");
        assert!(s.may_ask(1), "{class:?}");
    }
    // Other failures leave it eligible (a cut is not silence).
    for class in [
        ErrorClass::StreamCut,
        ErrorClass::Overloaded,
        ErrorClass::MalformedResponse,
    ] {
        s.note_failure(0, class);
        assert!(s.may_ask(0), "{class:?}");
    }
    // A resume that timed out rules its deployment out too, and moves on.
    let stalled = error(ErrorClass::TimeoutFirstToken, "no first token");
    assert_eq!(s.on_failure(1, Method::Replay, &stalled), After::Next);
    assert!(!s.may_ask(1));
}
