//! Bounded, deterministic fuzz / property tests: a stable-Rust stand-in for cargo-fuzz.
//!
//! Every target runs a fixed number of cases, each generated from its own seed by an inline
//! xorshift64* PRNG (`harness.rs`), so `cargo test --test fuzz` checks exactly the same
//! inputs on every run (about 10 s in debug on two idle cores). Inputs come from small
//! grammars of plausible wire data, from mutations of valid documents (the embedded routing
//! table, a table using every feature, and the provider fixtures under
//! `src/providers/*/testdata`, read with `include_bytes!`, so there is no separate corpus
//! folder) and from plain random bytes.
//!
//! | test (file) | cases | target | properties |
//! |---|---|---|---|
//! | `fuzz_sse_parser` (`sse.rs`) | 5000 | `sse::SseParser` | no panic; same events and `has_partial` as a whole-buffer reference parser, fed whole, at random cuts (biased to after CR and inside UTF-8) and byte by byte; line limit: whole, split or byte by byte, fails iff some line exceeds it, after exactly the events completed before that line, and failure is sticky; heap held between feeds ≤ 4 × (unfinished line + decoded pending fields) + 64 bytes and ≤ 8 × bytes fed + 64 (invalid UTF-8 triples when decoded) |
//! | `fuzz_routing_table` (`table.rs`) | 1200 | `config::parse_table` | no panic; deterministic; every error starts with a JSON path or `invalid routing table JSON`; known-invalid mutations (unknown deployment in a chain, unknown provider, unknown field, bad version, empty chain, out-of-range numbers, bad names, an object in serde's positional array form, …) always fail with an error at that path; known-valid ones always succeed; accepted tables are internally consistent (indexes in range, bounds held) |
//! | `fuzz_request_parsers` (`requests.rs`) | 2500 | `api::parse_chat_request`, `api::anthropic::parse_messages_request` | no panic, also past serde_json's recursion limit and with thousands of messages; accept exactly what an independent validity oracle accepts; errors are 400-413 with a non-empty message and code; accepted requests keep the body, model, stream flags, prompt size |
//! | `fuzz_stream_translator_{openai,anthropic,gemini}` (`translators.rs`) | 2000 each | `providers::Translator` | no panic; output independent of how the bytes are split; at most one `Error`, always last; at most one `Finish`; Anthropic: nothing after `Done`, only usage / `Done` after `Finish`; Gemini: never `Finish` and `Error`, only usage after `Finish`; every emitted chunk is exactly one SSE event of JSON; well-formed streams: text, reasoning and tool arguments out = deltas in, one `Finish`, no `Error`, no content after `Finish`; a line over the limit anywhere: the events before it unchanged, then one `MalformedResponse` unless the answer had ended |
//! | `fuzz_responses_request_parser` (`responses_api.rs`) | 1500 | `api::responses::parse_responses_request` | no panic; accepted requests translate to a pivot that `parse_chat_request` accepts, with only pivot roles and none of the Responses-only fields, the stream and usage flags kept; errors are 400 with a message and a code |
//! | `fuzz_parse_responses` (`responses.rs`) | 2500 | `providers::parse_response`, `providers::classify_error` | no panic; accepted answers are JSON with choices (OpenAI forwarded byte for byte, Anthropic kept as `native`); classification keeps status and body |
//!
//! Environment:
//!
//! - `FUZZ_ITERS=N`: run N cases per target instead of the defaults. A long local session:
//!   `FUZZ_ITERS=1000000 FUZZ_BASE=$RANDOM cargo test --test fuzz -- --nocapture` (debug runs
//!   roughly 500-3000 cases per second per target; for speed add `--release` together with
//!   `CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true`, or arithmetic overflows go unnoticed).
//! - `FUZZ_BASE=S`: xor S into every base seed to explore cases the default run never tries.
//! - `FUZZ_SEED=0x…`: replay the single case a failure printed (name the test too), e.g.
//!   `FUZZ_SEED=0x1234… cargo test --test fuzz fuzz_sse_parser -- --nocapture`.
//! - `FUZZ_KNOWN_BUGS=1`: stop steering around known bugs, pinned as `#[ignore]`d `bug_*`
//!   tests in `regressions.rs` (the fuzzers then find them again). None is steered around at
//!   the moment: every bug found so far is fixed and its `bug_*` test is a regression test.
//!
//! A failing case prints `[fuzz] <test>: case <i> failed; replay with FUZZ_SEED=0x… …`.

//!
//! Layout: `harness.rs` (PRNG, case runner, heap accounting), `gen.rs` (generators and
//! mutators shared by the targets), one file per target (`sse.rs`, `table.rs`,
//! `requests.rs`, `translators.rs` with its stream generators in `streams.rs`,
//! `responses.rs`, `responses_api.rs`), and `regressions.rs` (minimal reproducers of the bugs the fuzzers found).

mod gen;
mod harness;
mod regressions;
mod requests;
mod responses;
mod responses_api;
mod sse;
mod streams;
mod table;
mod translators;
