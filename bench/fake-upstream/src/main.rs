//! Fast fake OpenAI-compatible upstream for the benchmark. Standard library only.
//!
//! `POST …/chat/completions`:
//! - non-streaming: one small fixed `chat.completion` JSON answer (Content-Length, keep-alive);
//! - `"stream": true`: 60 content chunks (the first also carries the role), a finish chunk, a
//!   usage chunk when the request asks for `include_usage`, then `data: [DONE]`. Each SSE event
//!   is one HTTP chunk written with one `write` (TCP_NODELAY). Each content chunk's text is
//!   `<i>@<unix-µs>;`, the wall-clock time it was written, so the load generator can measure
//!   per-chunk delivery latency through any gateway (all of them pass content through).
//!   Requests whose body names the model `fake-paced` get `--paced-gap-us` between content chunks
//!   (default 2000 µs); other streams are written back to back. Requests whose body names the
//!   model `fake-long` get `--long-chunks` content chunks (default 1000) instead of `--chunks`.
//! `GET /health` → 200. Anything else → 404.
//!
//! One OS thread per connection (blocking I/O): simple and fast for the few dozen connections
//! a benchmark cell opens. Usage:
//! `bench-fake-upstream [--port N] [--chunks 60] [--paced-gap-us 2000] [--long-chunks 1000]`.
//! Prints `listening 127.0.0.1:<port>` once bound (port 0 = any free port).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy)]
struct Opts {
    chunks: usize,
    paced_gap_us: u64,
    long_chunks: usize,
}

const ANSWER: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"fake-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the fake upstream: a short fixed answer for the benchmark.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":24,"completion_tokens":14,"total_tokens":38}}"#;

fn main() {
    let mut port = 0u16;
    let mut opts = Opts {
        chunks: 60,
        paced_gap_us: 2000,
        long_chunks: 1000,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let val = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--port" => port = val.parse().expect("--port N"),
            "--chunks" => opts.chunks = val.parse().expect("--chunks N"),
            "--paced-gap-us" => opts.paced_gap_us = val.parse().expect("--paced-gap-us N"),
            "--long-chunks" => opts.long_chunks = val.parse().expect("--long-chunks N"),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    println!("listening {}", listener.local_addr().expect("addr"));
    std::io::stdout().flush().ok();
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || {
                let _ = serve(conn, opts);
            })
            .ok();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Serves requests on one keep-alive connection until the peer closes it.
fn serve(mut s: TcpStream, opts: Opts) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut tmp = [0u8; 16 * 1024];
    loop {
        // Read the request head.
        let head_end = loop {
            if let Some(p) = find(&buf, b"\r\n\r\n") {
                break p + 4;
            }
            let n = s.read(&mut tmp)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("").to_string();
        let mut content_length = 0usize;
        let mut chunked = false;
        let mut close = false;
        for l in lines {
            if let Some(v) = l.strip_prefix("content-length:") {
                content_length = v.trim().parse().unwrap_or(0);
            } else if let Some(v) = l.strip_prefix("transfer-encoding:") {
                chunked = v.contains("chunked");
            } else if let Some(v) = l.strip_prefix("connection:") {
                close = v.trim() == "close";
            }
        }
        buf.drain(..head_end);
        // Read the body (Content-Length or chunked).
        let body: Vec<u8> = if chunked {
            read_chunked(&mut s, &mut buf, &mut tmp)?
        } else {
            while buf.len() < content_length {
                let n = s.read(&mut tmp)?;
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            buf.drain(..content_length).collect()
        };
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or("");
        let path = parts.next().unwrap_or("");
        let conn_hdr = if close { "close" } else { "keep-alive" };
        if method == "post" && path.ends_with("/chat/completions") {
            if json_flag(&body, b"\"stream\"") {
                let paced = find(&body, b"fake-paced").is_some();
                let long = !paced && find(&body, b"fake-long").is_some();
                let usage = json_flag(&body, b"\"include_usage\"");
                stream(&mut s, opts, paced, long, usage, conn_hdr)?;
            } else {
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: {conn_hdr}\r\n\r\n{ANSWER}",
                    ANSWER.len()
                );
                s.write_all(resp.as_bytes())?;
            }
        } else if method == "get" && path.starts_with("/health") {
            s.write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: {conn_hdr}\r\n\r\nok").as_bytes())?;
        } else {
            s.write_all(format!("HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 9\r\nconnection: {conn_hdr}\r\n\r\nnot found").as_bytes())?;
        }
        if close {
            return Ok(());
        }
    }
}

fn read_chunked(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    tmp: &mut [u8],
) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(p) = find(buf, b"\r\n") {
                break p;
            }
            let n = s.read(tmp)?;
            if n == 0 {
                return Ok(body);
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        buf.drain(..line_end + 2);
        while buf.len() < size + 2 {
            let n = s.read(tmp)?;
            if n == 0 {
                return Ok(body);
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        if size == 0 {
            // Trailers are not expected; drop the final CRLF.
            buf.drain(..2);
            return Ok(body);
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

/// True when `key` appears followed by `: true` (any whitespace).
fn json_flag(body: &[u8], key: &[u8]) -> bool {
    let mut from = 0;
    while let Some(p) = find(&body[from..], key) {
        let rest = &body[from + p + key.len()..];
        let rest: Vec<u8> = rest
            .iter()
            .copied()
            .skip_while(|b| b.is_ascii_whitespace())
            .collect();
        if rest.first() == Some(&b':') {
            let v: Vec<u8> = rest[1..]
                .iter()
                .copied()
                .skip_while(|b| b.is_ascii_whitespace())
                .take(4)
                .collect();
            if v == b"true" {
                return true;
            }
        }
        from += p + key.len();
    }
    false
}

fn unix_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

fn write_event(s: &mut TcpStream, event: &str) -> std::io::Result<()> {
    let frame = format!("{:x}\r\n{event}\r\n", event.len());
    s.write_all(frame.as_bytes())
}

fn stream(
    s: &mut TcpStream,
    opts: Opts,
    paced: bool,
    long: bool,
    usage: bool,
    conn_hdr: &str,
) -> std::io::Result<()> {
    let (model, chunks) = if paced {
        ("fake-paced", opts.chunks)
    } else if long {
        ("fake-long", opts.long_chunks)
    } else {
        ("fake-model", opts.chunks)
    };
    s.write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\nconnection: {conn_hdr}\r\n\r\n").as_bytes())?;
    for i in 0..chunks {
        if paced && i > 0 {
            std::thread::sleep(Duration::from_micros(opts.paced_gap_us));
        }
        let role = if i == 0 { r#""role":"assistant","# } else { "" };
        let ev = format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"{model}\",\"choices\":[{{\"index\":0,\"delta\":{{{role}\"content\":\"{i}@{};\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n",
            unix_us()
        );
        write_event(s, &ev)?;
    }
    write_event(s, &format!("data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"{model}\",\"choices\":[{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"stop\"}}]}}\n\n"))?;
    if usage {
        write_event(s, &format!("data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"{model}\",\"choices\":[],\"usage\":{{\"prompt_tokens\":24,\"completion_tokens\":{},\"total_tokens\":{}}}}}\n\n", chunks, chunks + 24))?;
    }
    write_event(s, "data: [DONE]\n\n")?;
    s.write_all(b"0\r\n\r\n")
}
