//! Mid-stream resume (prefill and replay) and how broken streams are billed.

use super::*;

// ---------- mid-stream resume ----------

/// Route r over a (prefill per `prefill_a`), b (no prefill), c; resume as given.
fn resume_table(prefill_a: &str, resume: Value) -> RoutingTable {
    resume_table_with_deadline(prefill_a, resume, 300_000)
}

fn resume_table_with_deadline(prefill_a: &str, resume: Value, deadline_ms: u64) -> RoutingTable {
    let t = json!({"version": 1,
        "defaults": {"timeouts": {"connect_ms": 1000, "first_token_ms": 2000, "idle_ms": 3000, "attempt_ms": 20000},
                     "retry": {"max_attempts": 1}, "request_timeout_ms": deadline_ms},
        "providers": {"pa": {"kind": "openai", "base_url": A, "prefill": prefill_a}, "pb": {"kind": "openai", "base_url": B},
                      "pc": {"kind": "openai", "base_url": C}},
        "deployments": {"a": {"provider": "pa", "model": "ma", "context_window": 8000},
                        "b": {"provider": "pb", "model": "mb", "context_window": 8000},
                        "c": {"provider": "pc", "model": "mc", "context_window": 8000}},
        "routes": {"r": {"chain": ["a", "b", "c"], "resume": resume}}});
    parse_table(&t.to_string()).unwrap()
}

const FULL: [&str; 5] = ["The", " quick", " brown", " fox", " jumps."];

/// The stream of FULL cut after `k` words, ending with `end`.
fn cut_stream(k: usize, end: End) -> Step {
    let mut chunks = vec![(0, role_chunk())];
    for w in FULL.iter().take(k) {
        chunks.push((0, chunk(w)));
    }
    Step::sse(chunks, end)
}

fn words_in(text: &str) -> String {
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

fn ids_in(text: &str) -> Vec<String> {
    let mut ids: Vec<String> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| c["id"].as_str().map(str::to_string))
        .collect();
    ids.dedup();
    ids
}

#[test]
fn prefill_resume_on_the_same_deployment_completes_the_answer_seamlessly() {
    let clock = ManualClock::at(0);
    let t = resume_table("assistant", json!("auto"));
    let s = Script::new(&clock);
    // First a cut after "The quick", then the continuation of the prefilled answer.
    s.on(
        A,
        vec![
            cut_stream(2, End::Reset),
            full_stream(&[" brown", " fox", " jumps."], 0),
        ],
    );
    let (text, meta) = drain(run(&t, &s, &clock, req(true)));
    assert_eq!(words_in(&text), FULL.concat(), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n") && !text.contains("\"error\""));
    assert_eq!(
        ids_in(&text),
        vec!["c1".to_string()],
        "one id for the whole answer"
    );
    assert_eq!(meta.resume_list(), vec!["a:prefill".to_string()]);
    let prefill = &s.bodies(A)[1]["messages"];
    assert_eq!(
        prefill.as_array().unwrap().last().unwrap(),
        &json!({"role": "assistant", "content": "The quick"})
    );
    assert_eq!(s.hits(B), 0);
    // Usage counts the broken attempt too: 3 completion tokens reported + the estimate for "The quick".
    let u = meta.usage.unwrap();
    assert!(u.completion_tokens > 3 && u.prompt_tokens > 10, "{u:?}");
}

#[test]
fn replay_and_verify_streams_only_the_new_text() {
    for end in [End::Reset, End::Hang, End::Close] {
        let clock = ManualClock::at(0);
        let t = resume_table("none", json!("auto"));
        let s = Script::new(&clock);
        s.on(A, vec![cut_stream(3, end)]);
        s.on(B, vec![full_stream(&FULL, 0)]);
        let (text, meta) = drain(run(&t, &s, &clock, req(true)));
        assert_eq!(words_in(&text), FULL.concat(), "{end:?}: {text}");
        assert!(text.ends_with("data: [DONE]\n\n"));
        // A cut or closed stream: the same deployment was asked once (it broke again), then b
        // replayed. A stall (idle timeout): a silent deployment is never asked again, so b at once.
        let a_hits = if end == End::Hang { 1 } else { 2 };
        assert_eq!((s.hits(A), s.hits(B)), (a_hits, 1), "{end:?}");
        assert_eq!(meta.resume_list(), vec!["b:replay".to_string()]);
        assert_eq!(
            s.bodies(B)[0]["messages"].as_array().unwrap().len(),
            1,
            "a replay is the original request"
        );
    }
}

#[test]
fn a_stall_after_commit_is_resumed_on_the_next_deployment_never_on_the_silent_one() {
    // Issue 15, part 1. a supports prefill, so the old rule resumed on a first: a second
    // stall (first_token_ms 2 s) before b was asked, 5 s in all for one answer.
    for mode in ["auto", "replay"] {
        let clock = ManualClock::at(0);
        let t = resume_table("assistant", json!(mode));
        let s = Script::new(&clock);
        // a stalls after "The quick"; asked again it would stall before its first token.
        s.on(
            A,
            vec![
                cut_stream(2, End::Hang),
                Step::sse(vec![(0, role_chunk())], End::Hang),
            ],
        );
        s.on(B, vec![full_stream(&FULL, 0)]);
        s.on(C, vec![full_stream(&FULL, 0)]);
        let (text, meta) = drain(run(&t, &s, &clock, req(true)));
        assert_eq!(words_in(&text), FULL.concat(), "{mode}: {text}");
        assert!(text.ends_with("data: [DONE]\n\n"), "{mode}");
        assert_eq!((s.hits(A), s.hits(B), s.hits(C)), (1, 1, 0), "{mode}");
        assert_eq!(meta.resume_list(), vec!["b:replay".to_string()], "{mode}");
        // The bound: idle_ms (3 s) plus one healthy attempt (instant here), not 2 × idle.
        assert_eq!(clock.0.get(), 3_000, "{mode}");
    }
}

#[test]
fn a_resume_that_times_out_is_not_asked_again_and_the_next_one_is() {
    // a stalls after commit, b (a replay) stalls before its first token, c continues: each
    // silent deployment costs its timeout once and neither is asked twice.
    let clock = ManualClock::at(0);
    let t = resume_table("assistant", json!("auto"));
    let s = Script::new(&clock);
    s.on(
        A,
        vec![
            cut_stream(2, End::Hang),
            full_stream(&[" brown", " fox", " jumps."], 0),
        ],
    );
    s.on(
        B,
        vec![
            Step::sse(vec![(0, role_chunk())], End::Hang),
            full_stream(&FULL, 0),
        ],
    );
    s.on(C, vec![full_stream(&FULL, 0)]);
    let (text, meta) = drain(run(&t, &s, &clock, req(true)));
    assert_eq!(words_in(&text), FULL.concat(), "{text}");
    assert_eq!((s.hits(A), s.hits(B), s.hits(C)), (1, 1, 1));
    assert_eq!(meta.resume_list(), vec!["c:replay".to_string()]);
    // A replay's first token may come as late as its attempt deadline (it regenerates first).
    assert!(
        reasons(&meta).contains("b:timeout_attempt"),
        "{}",
        reasons(&meta)
    );
}

#[test]
fn a_cut_after_commit_is_still_resumed_on_the_same_deployment_first() {
    // Only a timeout rules a deployment out: a cut is a broken connection, not silence.
    let clock = ManualClock::at(0);
    let t = resume_table("assistant", json!("auto"));
    let s = Script::new(&clock);
    s.on(
        A,
        vec![
            cut_stream(2, End::Reset),
            full_stream(&[" brown", " fox", " jumps."], 0),
        ],
    );
    s.on(B, vec![full_stream(&FULL, 0)]);
    let (text, meta) = drain(run(&t, &s, &clock, req(true)));
    assert_eq!(words_in(&text), FULL.concat());
    assert_eq!((s.hits(A), s.hits(B)), (2, 0));
    assert_eq!(meta.resume_list(), vec!["a:prefill".to_string()]);
}

#[test]
fn malformed_and_in_band_errors_after_commit_are_resumed() {
    let overloaded =
        "data: {\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded_error\"}}\n\n"
            .to_string();
    for bad in ["data: {oops\n\n".to_string(), overloaded] {
        let clock = ManualClock::at(0);
        let t = resume_table("assistant", json!("auto"));
        let s = Script::new(&clock);
        let mut chunks = vec![(0, role_chunk()), (0, chunk("The")), (0, chunk(" quick "))];
        chunks.push((0, bad.clone()));
        s.on(
            A,
            vec![
                Step::sse(chunks, End::Close),
                full_stream(&[" brown", " fox", " jumps."], 0),
            ],
        );
        let (text, _) = drain(run(&t, &s, &clock, req(true)));
        // The prefill had to drop the trailing space; the continuation's leading one is dropped too.
        assert_eq!(words_in(&text), "The quick brown fox jumps.", "{text}");
    }
}

#[test]
fn a_refused_prefill_falls_back_to_replay_and_never_reaches_the_caller() {
    let clock = ManualClock::at(0);
    let t = resume_table("assistant", json!("auto"));
    let s = Script::new(&clock);
    let refusal = Step::json(
        400,
        &openai_error(
            "final assistant content cannot end with trailing whitespace",
            "invalid_request_error",
            "",
        ),
    );
    s.on(
        A,
        vec![cut_stream(2, End::Reset), refusal, full_stream(&FULL, 0)],
    );
    let (text, meta) = drain(run(&t, &s, &clock, req(true)));
    assert_eq!(words_in(&text), FULL.concat());
    assert_eq!(s.hits(A), 3);
    assert_eq!(meta.resume_list(), vec!["a:replay".to_string()]);
    assert!(meta.fallback_reasons().contains("a:invalid_request:400"));
}

#[test]
fn divergent_replay_ends_with_a_clean_error_naming_the_original_failure() {
    let clock = ManualClock::at(0);
    let t = resume_table("none", json!("replay"));
    let s = Script::new(&clock);
    s.on(
        A,
        vec![
            cut_stream(2, End::Reset),
            full_stream(&["The", " slow", " cat"], 0),
        ],
    );
    s.on(B, vec![full_stream(&["A", " different", " answer"], 0)]);
    let (text, meta) = drain(run(&t, &s, &clock, req(true)));
    assert_eq!(
        words_in(&text),
        "The quick",
        "nothing contradictory is emitted"
    );
    assert!(!text.contains("[DONE]"));
    assert_eq!(last_event(&text)["error"]["code"], "stream_cut");
    assert!(meta.resumes.is_empty());
    assert_eq!(s.hits(B), 0, "divergence stops resuming");
}

#[test]
fn resume_budget_is_bounded_and_resume_off_is_the_bare_contract() {
    let clock = ManualClock::at(0);
    let t = resume_table("assistant", json!("auto"));
    let s = Script::new(&clock);
    s.on(
        A,
        vec![
            cut_stream(1, End::Reset),
            Step::sse(vec![(0, role_chunk()), (0, chunk(" quick"))], End::Reset),
        ],
    );
    s.on(B, vec![Step::sse(vec![(0, role_chunk())], End::Reset)]);
    s.on(C, vec![full_stream(&FULL, 0)]);
    let (text, meta) = drain(run(&t, &s, &clock, req(true)));
    // Resume 1 on a (prefill, breaks after " quick"), resume 2 on b (replay, breaks): budget of 2 spent.
    assert_eq!(meta.resume_list(), vec!["a:prefill".to_string()]);
    assert_eq!((s.hits(A), s.hits(B), s.hits(C)), (2, 1, 0));
    assert_eq!(words_in(&text), "The quick");
    assert_eq!(last_event(&text)["error"]["code"], "stream_cut");

    let t = resume_table("assistant", json!("off"));
    let s = Script::new(&clock);
    s.on(A, vec![cut_stream(2, End::Reset)]);
    let (text, meta) = drain(run(&t, &s, &clock, req(true)));
    assert_eq!(s.hits(A), 1);
    assert!(meta.resumes.is_empty() && !text.contains("[DONE]"));
}

// ---------- billing of broken streams (found by the fault soak) ----------

#[test]
fn a_cut_stream_whose_resumes_all_fail_is_billed_once() {
    let clock = ManualClock::at(0);
    let t = resume_table("assistant", json!("auto"));
    let s = Script::new(&clock);
    let boom = || Step::json(500, &openai_error("boom", "server_error", "server_error"));
    s.on(A, vec![cut_stream(2, End::Reset), boom()]);
    s.on(B, vec![boom()]);
    s.on(C, vec![boom()]);
    let (text, meta) = drain(run(&t, &s, &clock, req(true)));
    assert_eq!(words_in(&text), "The quick");
    assert_eq!(last_event(&text)["error"]["code"], "stream_cut");
    // The prompt ("hi": 1 token) once, and "The quick" (9 characters: 3 tokens) once.
    let u = meta.usage.unwrap();
    assert_eq!((u.prompt_tokens, u.completion_tokens), (1, 3));
    assert!(meta.usage_estimated);
}

#[test]
fn a_stream_broken_after_the_request_deadline_keeps_its_delivered_tokens() {
    let clock = ManualClock::at(0);
    // The whole request may take 1.2 s; the stream stalls (idle 3 s) after three words.
    let t = resume_table_with_deadline("assistant", json!("auto"), 1_200);
    let s = Script::new(&clock);
    let mut chunks = vec![(0, role_chunk())];
    for w in FULL.iter().take(3) {
        chunks.push((0, chunk(w)));
    }
    chunks.push((10_000, chunk(" fox")));
    s.on(A, vec![Step::sse(chunks, End::Close)]);
    let (text, meta) = drain(run(&t, &s, &clock, req(true)));
    assert_eq!(words_in(&text), "The quick brown");
    assert!(text.contains("\"error\""), "{text}");
    // No resume was possible (deadline passed), and "The quick brown" (15 chars) is 4 tokens.
    assert!(meta.resumes.is_empty());
    let u = meta.usage.unwrap();
    assert_eq!((u.prompt_tokens, u.completion_tokens), (1, 4));
}

// ---------- the delivered text kept for a resume is bounded (issue 18, item 10) ----------

/// `n` pieces of 64 KiB of text (each a different letter, so a wrong prefix would show).
fn big_pieces(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            char::from(b'a' + (i % 26) as u8)
                .to_string()
                .repeat(64 << 10)
        })
        .collect()
}

/// a streams `pieces` and is cut; asked again it would continue with " end.".
fn cut_after(pieces: &[String]) -> (String, Meta, Script) {
    let clock = ManualClock::at(0);
    let t = resume_table("assistant", json!("auto"));
    let s = Script::new(&clock);
    let mut chunks = vec![(0, role_chunk())];
    chunks.extend(pieces.iter().map(|p| (0, chunk(p))));
    s.on(
        A,
        vec![Step::sse(chunks, End::Reset), full_stream(&[" end."], 0)],
    );
    s.on(B, vec![full_stream(&[" end."], 0)]);
    let (text, meta) = drain(run(&t, &s, &clock, req(true)));
    (text, meta, s)
}

#[test]
fn a_stream_that_delivered_more_than_the_resume_bound_is_not_resumed() {
    // 17 × 64 KiB: past the 1 MiB kept for a resume.
    let pieces = big_pieces(17);
    let (text, meta, s) = cut_after(&pieces);
    let words = words_in(&text);
    assert!(
        words == pieces.concat(),
        "the client got {} characters ending in {:?}, not the {} delivered",
        words.len(),
        &words[words.len().saturating_sub(20)..],
        17 << 16
    );
    assert!(!text.contains("[DONE]"));
    assert_eq!(last_event(&text)["error"]["code"], "stream_cut");
    assert!(meta.resumes.is_empty(), "{:?}", meta.resumes);
    assert_eq!(
        (s.hits(A), s.hits(B)),
        (1, 0),
        "no upstream was asked to resume"
    );
    // Billed as any broken stream: every delivered character counts, kept or not.
    let u = meta.usage.unwrap();
    assert_eq!(u.completion_tokens, (17 * (64 << 10) as u64).div_ceil(4));
}

#[test]
fn a_stream_within_the_resume_bound_is_resumed_with_all_of_its_text() {
    // 15 × 64 KiB: under 1 MiB, resumed by prefill with the whole delivered text.
    let pieces = big_pieces(15);
    let (text, meta, s) = cut_after(&pieces);
    assert!(words_in(&text) == format!("{} end.", pieces.concat()));
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert_eq!(meta.resume_list(), vec!["a:prefill".to_string()]);
    let prefill = &s.bodies(A)[1]["messages"];
    let last = prefill.as_array().unwrap().last().unwrap();
    assert_eq!(last["content"].as_str(), Some(pieces.concat().as_str()));
}
