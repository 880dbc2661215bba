//! Generators and mutators shared by the targets: text, names, numbers, JSON values, byte
//! mutations, and cut points for feeding bytes in pieces.

use crate::harness::Rng;
use serde_json::{json, Map, Value};

const PIECES: &[&str] = &[
    "a",
    "hello",
    " ",
    "world",
    "é",
    "世界",
    "🎉",
    "\u{200b}",
    "\u{feff}",
    "\u{10ffff}",
    "\"",
    "\\",
    "\n",
    "\r",
    "\t",
    "\0",
    "\u{7f}",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "data: ",
    "[DONE]",
    "null",
    "Ω",
    "\u{fffd}",
    "0",
    "-",
    "_",
    ".",
    "/",
    "@",
    "x",
];

/// Random text: ASCII, multi-byte UTF-8, control characters, JSON and SSE punctuation.
pub(crate) fn text(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..rng.size(24) {
        s.push_str(rng.pick(PIECES));
    }
    if rng.one_in(60) {
        let unit = if s.is_empty() { "x".to_string() } else { s };
        s = unit.repeat(rng.range(500, 20_000) / unit.len().max(1) + 1);
    }
    s
}

/// A name that is valid wherever the routing table wants one (`[A-Za-z0-9-_.:/@]`, 1-24).
pub(crate) fn valid_name(rng: &mut Rng) -> String {
    const CH: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@";
    let n = rng.range(1, 24);
    (0..n).map(|_| rng.pick(CH) as char).collect()
}

const NUMS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "3",
    "10",
    "255",
    "256",
    "65535",
    "65536",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "1e308",
    "-1e308",
    "0.5",
    "1.0",
    "-0",
    "1e-7",
    "1.5e-7",
    "3600000",
    "3600001",
    "10000",
    "10001",
    "128000",
    "1E3",
    "12345678901234567890123",
];

pub(crate) fn num_value(rng: &mut Rng) -> Value {
    serde_json::from_str(rng.pick(NUMS)).unwrap_or(Value::Null)
}

const KEYS: &[&str] = &[
    "model",
    "messages",
    "role",
    "content",
    "type",
    "text",
    "stream",
    "stream_options",
    "include_usage",
    "max_tokens",
    "system",
    "tools",
    "tool_choice",
    "name",
    "input",
    "id",
    "source",
    "url",
    "data",
    "image_url",
    "tool_calls",
    "tool_use_id",
    "is_error",
    "choices",
    "delta",
    "finish_reason",
    "usage",
    "error",
    "message",
    "code",
    "candidates",
    "parts",
    "functionCall",
    "args",
    "finishReason",
    "usageMetadata",
    "promptFeedback",
    "blockReason",
    "index",
    "thought",
    "content_block",
    "partial_json",
    "stop_reason",
    "input_tokens",
    "output_tokens",
    "details",
    "@type",
    "retryDelay",
    "seconds",
    "nanos",
    "status",
    "chain",
    "deployment",
    "weight",
    "version",
];

pub(crate) fn key(rng: &mut Rng) -> String {
    if rng.one_in(4) {
        text(rng)
    } else {
        rng.pick(KEYS).to_string()
    }
}

pub(crate) fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth == 0 { 4 } else { 6 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => num_value(rng),
        3 => Value::String(text(rng)),
        4 => Value::Array(
            (0..rng.size(6))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.size(6))
                .map(|_| (key(rng), random_value(rng, depth - 1)))
                .collect(),
        ),
    }
}

pub(crate) fn odd_value(rng: &mut Rng) -> Value {
    match rng.below(6) {
        0 => Value::Null,
        1 => num_value(rng),
        2 => json!({"nested": {"deep": [1, {"x": null}]}}),
        3 => json!([[], {}, null]),
        4 => Value::Bool(true),
        _ => random_value(rng, 3),
    }
}

/// A random node of `v` (the root included), reached by a random walk.
fn pick_node<'a>(rng: &mut Rng, v: &'a mut Value) -> &'a mut Value {
    let mut cur = v;
    loop {
        let n = match &*cur {
            Value::Object(m) => m.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        };
        if n == 0 || rng.one_in(3) {
            return cur;
        }
        let k = rng.below(n);
        cur = match cur {
            Value::Object(m) => m.values_mut().nth(k).expect("k < len"),
            Value::Array(a) => &mut a[k],
            _ => unreachable!(),
        };
    }
}

/// One structural mutation somewhere in `v`: drop / duplicate / rename keys, change types,
/// huge and negative numbers, long and unicode strings, deep nesting, huge arrays.
pub(crate) fn mutate_value(rng: &mut Rng, v: &mut Value) {
    let node = pick_node(rng, v);
    match rng.below(13) {
        0 => *node = random_value(rng, 3),
        1 => *node = num_value(rng),
        2 => *node = Value::String(text(rng)),
        3 => {
            *node = match rng.below(5) {
                0 => Value::Null,
                1 => Value::Bool(rng.one_in(2)),
                2 => json!([]),
                3 => json!({}),
                _ => json!(""),
            }
        }
        4 => {
            let depth = rng.pick(&[1, 2, 10, 100, 126, 127, 128, 129, 200]);
            let mut inner = node.take();
            for _ in 0..depth {
                inner = if rng.one_in(2) {
                    Value::Array(vec![inner])
                } else {
                    // Not `json!`: it would re-serialise `inner` at every level.
                    Value::Object(Map::from_iter([("a".to_string(), inner)]))
                };
            }
            *node = inner;
        }
        5..=8 => {
            if let Value::Object(m) = node {
                let keys: Vec<String> = m.keys().cloned().collect();
                let Some(k) = keys.get(rng.below(keys.len())).cloned() else {
                    m.insert(key(rng), random_value(rng, 2));
                    return;
                };
                match rng.below(4) {
                    0 => {
                        m.remove(&k);
                    }
                    1 => {
                        let val = m.remove(&k).unwrap_or(Value::Null);
                        let new = if rng.one_in(2) {
                            format!("{k}{}", rng.pick(&["_", "s", "X", " ", "é"]))
                        } else {
                            key(rng)
                        };
                        m.insert(new, val);
                    }
                    2 => {
                        let val = m.get(&k).cloned().unwrap_or(Value::Null);
                        m.insert(key(rng), val);
                    }
                    _ => {
                        m.insert(key(rng), random_value(rng, 2));
                    }
                }
            } else {
                *node = random_value(rng, 2);
            }
        }
        9 | 10 => {
            if let Value::Array(a) = node {
                match rng.below(4) {
                    0 if !a.is_empty() => {
                        let i = rng.below(a.len());
                        a.remove(i);
                    }
                    1 if !a.is_empty() => {
                        let i = rng.below(a.len());
                        let x = a[i].clone();
                        a.insert(i, x);
                    }
                    2 if !a.is_empty() => {
                        let x = a[rng.below(a.len())].clone();
                        // A huge array, kept under ~256 KB serialised so cases stay fast.
                        let size = x.to_string().len().max(1);
                        let n = rng.pick(&[10, 100, 2000]).min(256 * 1024 / size);
                        a.extend(std::iter::repeat_n(x, n));
                    }
                    _ => a.push(random_value(rng, 2)),
                }
            } else {
                *node = Value::Array(vec![node.take()]);
            }
        }
        11 => {
            *node = Value::String(
                rng.pick(&["x", "é", "🎉", "ab"])
                    .repeat(rng.range(1_000, 30_000)),
            )
        }
        _ => {
            // Same information, another type.
            *node = match node.take() {
                Value::String(s) => s.parse::<f64>().map_or(Value::Null, |f| json!(f)),
                Value::Number(n) => Value::String(n.to_string()),
                Value::Bool(b) => Value::String(b.to_string()),
                Value::Array(a) => Value::Object(
                    a.into_iter()
                        .enumerate()
                        .map(|(i, x)| (i.to_string(), x))
                        .collect(),
                ),
                Value::Object(m) => Value::Array(m.into_iter().map(|(_, x)| x).collect()),
                Value::Null => json!(0),
            }
        }
    }
}

const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"null",
    b"true",
    b"1e400",
    b"-0",
    b"18446744073709551616",
    b"\\u0000",
    b"\\ud800",
    b"\\",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xf0\x9f\x8e",
    b"\xc0\x80",
    b"\r\n",
    b"\n",
    b"\0",
    b" ",
];

/// One byte-level mutation: bit flips, random and invalid-UTF-8 bytes, JSON tokens, deletions,
/// truncation, duplication.
pub(crate) fn mutate_bytes(rng: &mut Rng, b: &mut Vec<u8>) {
    let n = b.len();
    match rng.below(7) {
        0 if n > 0 => {
            let i = rng.below(n);
            b[i] ^= 1 << rng.below(8);
        }
        1 if n > 0 => {
            let i = rng.below(n);
            b[i] = rng.byte();
        }
        2 => {
            let i = rng.below(n + 1);
            let t = rng.pick(TOKENS);
            b.splice(i..i, t.iter().copied());
        }
        3 if n > 0 => {
            let i = rng.below(n);
            let j = (i + rng.size(16) + 1).min(n);
            b.drain(i..j);
        }
        4 => b.truncate(rng.below(n + 1)),
        5 if n > 0 => {
            let i = rng.below(n);
            let j = (i + rng.size(64) + 1).min(n);
            let copy = b[i..j].to_vec();
            b.splice(j..j, copy);
        }
        _ => {
            let i = rng.below(n + 1);
            let extra: Vec<u8> = (0..rng.range(1, 8)).map(|_| rng.byte()).collect();
            b.splice(i..i, extra);
        }
    }
}

pub(crate) fn random_bytes(rng: &mut Rng, max: usize) -> Vec<u8> {
    (0..rng.size(max)).map(|_| rng.byte()).collect()
}

pub(crate) fn biased_bytes(rng: &mut Rng, max: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"data: event\r\n\r\n:x{}\xff\xc3";
    (0..rng.size(max))
        .map(|_| {
            if rng.one_in(4) {
                rng.byte()
            } else {
                rng.pick(ALPHABET)
            }
        })
        .collect()
}

/// Serialises compactly or pretty-printed.
pub(crate) fn to_bytes(rng: &mut Rng, v: &Value) -> Vec<u8> {
    if rng.one_in(4) {
        serde_json::to_vec_pretty(v).expect("serialisable")
    } else {
        serde_json::to_vec(v).expect("serialisable")
    }
}

/// `[[[…]]]` (or `{"a":{"a":…}}`) `depth` levels deep, around `inner`.
pub(crate) fn nested(depth: usize, inner: &str, objects: bool) -> String {
    let (open, close) = if objects {
        ("{\"a\":", "}")
    } else {
        ("[", "]")
    };
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

/// Cut points for `input`, biased towards the spots where splits are hard: right after a CR
/// and inside multi-byte UTF-8 sequences.
pub(crate) fn cut_points(rng: &mut Rng, input: &[u8]) -> Vec<usize> {
    let mut cuts = Vec::new();
    for _ in 0..rng.size(16) {
        let p = rng.below(input.len() + 1);
        let p = if rng.one_in(2) {
            match input[p..]
                .iter()
                .position(|&b| b == b'\r' || b >= 0x80)
                .map(|d| p + d + 1)
            {
                Some(q) => q,
                None => p,
            }
        } else {
            p
        };
        cuts.push(p.min(input.len()));
    }
    cuts.sort_unstable();
    cuts
}

pub(crate) fn split_at_cuts<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut prev = 0;
    for &c in cuts {
        chunks.push(&input[prev..c]);
        prev = c;
    }
    chunks.push(&input[prev..]);
    chunks
}
