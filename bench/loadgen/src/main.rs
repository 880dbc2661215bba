//! Closed-loop HTTP/1.1 load generator for the benchmark. Standard library only.
//!
//! `bench-loadgen run --url URL --body-file F [--header 'k: v']... --concurrency C --duration S
//!                    [--warmup S] [--max-requests N] [--stream] [--raw-out FILE]`
//!   C threads, each with one keep-alive connection, each sending the same POST back to back
//!   (closed loop: a new request only when the previous answer has fully arrived). Every
//!   request's latency (send → last byte) is recorded as measured: **no coordinated-omission
//!   correction** (unlike wrk 4.1's printed percentiles). Requests started during the warm-up
//!   are not recorded. `--stream` also records time to first byte and, for every content chunk
//!   of the fake upstream (text `<i>@<unix-µs>;`), its delivery latency = arrival wall-clock −
//!   the upstream's write wall-clock; a stream without `[DONE]` counts as an error.
//!   Prints one JSON object.
//!
//! `bench-loadgen startup --url URL --body-file F [--header ...] [--timeout S] [--log FILE] -- CMD ARGS...`
//!   Spawns CMD, polls the URL with the POST every millisecond until it answers 200, prints
//!   `{"ready_ms": …}` (spawn → first 200 answer fully read), then kills CMD.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Target {
    addr: String,
    request: Vec<u8>,
}

fn parse_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("only http:// URLs");
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    (hostport.to_string(), path.to_string())
}

fn build_target(url: &str, body: &[u8], headers: &[String]) -> Target {
    let (addr, path) = parse_url(url);
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let mut request = req.into_bytes();
    request.extend_from_slice(body);
    Target { addr, request }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn unix_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

struct Resp {
    status: u16,
    ttfb_us: u64,
    total_us: u64,
    ok_body: bool,
    keep_alive: bool,
}

enum ChunkState {
    Size,
    Data(usize),
    DataEnd,
    Trailer,
    Done,
}

/// Sends one request on `conn` (connecting if needed) and reads the whole answer.
fn request(
    conn: &mut Option<TcpStream>,
    t: &Target,
    stream_mode: bool,
    chunk_delays: &mut Vec<i32>,
) -> Result<Resp, String> {
    if conn.is_none() {
        let s = TcpStream::connect(&t.addr).map_err(|e| format!("connect: {e}"))?;
        s.set_nodelay(true).ok();
        // A stuck answer cannot hold a cell forever.
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        *conn = Some(s);
    }
    let s = conn.as_mut().ok_or("no connection")?;
    let t0 = Instant::now();
    s.write_all(&t.request).map_err(|e| format!("write: {e}"))?;
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut tmp = [0u8; 32 * 1024];
    let mut ttfb_us = 0u64;
    let head_end = loop {
        let n = s.read(&mut tmp).map_err(|e| format!("read head: {e}"))?;
        if n == 0 {
            return Err("connection closed before the answer".into());
        }
        if ttfb_us == 0 {
            ttfb_us = t0.elapsed().as_micros() as u64;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("bad status line")?;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut keep_alive = true;
    for l in head.split("\r\n").skip(1) {
        if let Some(v) = l.strip_prefix("content-length:") {
            content_length = v.trim().parse().ok();
        } else if let Some(v) = l.strip_prefix("transfer-encoding:") {
            chunked = v.contains("chunked");
        } else if let Some(v) = l.strip_prefix("connection:") {
            if v.trim() == "close" {
                keep_alive = false;
            }
        }
    }
    buf.drain(..head_end);
    let mut body: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut scan_pos = 0usize;
    let mut arrival = unix_us();
    let mut state = ChunkState::Size;
    loop {
        // Move what has arrived from `buf` into `body`.
        let complete = if chunked {
            loop {
                match state {
                    ChunkState::Size => {
                        let Some(p) = find(&buf, b"\r\n") else { break false };
                        let txt = String::from_utf8_lossy(&buf[..p]).to_string();
                        let size = usize::from_str_radix(txt.split(';').next().unwrap_or("").trim(), 16)
                            .map_err(|_| format!("bad chunk size {txt:?}"))?;
                        buf.drain(..p + 2);
                        state = if size == 0 { ChunkState::Trailer } else { ChunkState::Data(size) };
                    }
                    ChunkState::Data(rem) => {
                        if buf.is_empty() {
                            break false;
                        }
                        let take = rem.min(buf.len());
                        body.extend_from_slice(&buf[..take]);
                        buf.drain(..take);
                        state = if take == rem { ChunkState::DataEnd } else { ChunkState::Data(rem - take) };
                    }
                    ChunkState::DataEnd => {
                        if buf.len() < 2 {
                            break false;
                        }
                        buf.drain(..2);
                        state = ChunkState::Size;
                    }
                    ChunkState::Trailer => {
                        let Some(p) = find(&buf, b"\r\n") else { break false };
                        buf.drain(..p + 2);
                        if p == 0 {
                            state = ChunkState::Done;
                        }
                    }
                    ChunkState::Done => break true,
                }
            }
        } else {
            body.extend_from_slice(&buf);
            buf.clear();
            match content_length {
                Some(n) => body.len() >= n,
                None => false,
            }
        };
        if stream_mode {
            scan_markers(&body, &mut scan_pos, arrival, chunk_delays);
        }
        if complete {
            break;
        }
        let n = s.read(&mut tmp).map_err(|e| format!("read body: {e}"))?;
        arrival = unix_us();
        if n == 0 {
            if content_length.is_none() && !chunked {
                keep_alive = false;
                break;
            }
            return Err("connection closed in the middle of the answer".into());
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let total_us = t0.elapsed().as_micros() as u64;
    let ok_body = if stream_mode {
        find(&body, b"[DONE]").is_some()
    } else {
        find(&body, b"\"choices\"").is_some()
    };
    if !keep_alive {
        *conn = None;
    }
    Ok(Resp { status, ttfb_us, total_us, ok_body, keep_alive })
}

/// Finds complete `@<digits>;` markers after `pos` and records their delivery latency.
fn scan_markers(body: &[u8], pos: &mut usize, arrival: i64, out: &mut Vec<i32>) {
    while let Some(rel) = body[*pos..].iter().position(|&b| b == b'@') {
        let start = *pos + rel + 1;
        let mut end = start;
        while end < body.len() && body[end].is_ascii_digit() {
            end += 1;
        }
        if end == body.len() {
            return; // incomplete: wait for more bytes
        }
        if body[end] == b';' && end > start {
            if let Ok(sent) = std::str::from_utf8(&body[start..end]).unwrap_or("").parse::<i64>() {
                out.push((arrival - sent).clamp(i32::MIN as i64, i32::MAX as i64) as i32);
            }
        }
        *pos = end;
    }
    *pos = body.len();
}

#[derive(Default)]
struct ThreadOut {
    lat: Vec<u32>,
    ttfb: Vec<u32>,
    chunks: Vec<i32>,
    errors: u64,
    first_error: Option<String>,
    last_done: Option<Instant>,
}

fn pct<T: Copy + Into<f64>>(sorted: &[T], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].into()
}

fn stats_json<T: Copy + Into<f64> + Ord>(v: &mut [T]) -> String {
    v.sort_unstable();
    if v.is_empty() {
        return "null".into();
    }
    let mean: f64 = v.iter().map(|&x| x.into()).sum::<f64>() / v.len() as f64;
    format!(
        "{{\"n\":{},\"mean\":{:.1},\"min\":{},\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{}}}",
        v.len(),
        mean,
        pct(v, 0.0),
        pct(v, 0.5),
        pct(v, 0.9),
        pct(v, 0.99),
        pct(v, 0.999),
        pct(v, 1.0)
    )
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

struct Args {
    url: String,
    body: Vec<u8>,
    headers: Vec<String>,
    concurrency: usize,
    duration: f64,
    warmup: f64,
    max_requests: u64,
    stream: bool,
    raw_out: Option<String>,
    timeout: f64,
    log: Option<String>,
    cmd: Vec<String>,
}

fn parse_args(args: &[String]) -> Args {
    let mut a = Args {
        url: String::new(),
        body: Vec::new(),
        headers: Vec::new(),
        concurrency: 1,
        duration: 5.0,
        warmup: 1.0,
        max_requests: u64::MAX,
        stream: false,
        raw_out: None,
        timeout: 30.0,
        log: None,
        cmd: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let v = || args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--url" => a.url = v(),
            "--body-file" => a.body = std::fs::read(v()).expect("read --body-file"),
            "--header" => a.headers.push(v()),
            "--concurrency" => a.concurrency = v().parse().expect("--concurrency"),
            "--duration" => a.duration = v().parse().expect("--duration"),
            "--warmup" => a.warmup = v().parse().expect("--warmup"),
            "--max-requests" => a.max_requests = v().parse().expect("--max-requests"),
            "--raw-out" => a.raw_out = Some(v()),
            "--timeout" => a.timeout = v().parse().expect("--timeout"),
            "--log" => a.log = Some(v()),
            "--stream" => {
                a.stream = true;
                i += 1;
                continue;
            }
            "--" => {
                a.cmd = args[i + 1..].to_vec();
                break;
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    assert!(!a.url.is_empty(), "--url is required");
    a
}

fn run(a: Args) {
    let target = Arc::new(build_target(&a.url, &a.body, &a.headers));
    let budget = Arc::new(AtomicU64::new(a.max_requests));
    let barrier = Arc::new(Barrier::new(a.concurrency + 1));
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + Duration::from_secs_f64(a.warmup);
    let end = measure_from + Duration::from_secs_f64(a.duration);
    let mut handles = Vec::new();
    for _ in 0..a.concurrency {
        let target = target.clone();
        let budget = budget.clone();
        let barrier = barrier.clone();
        let stream_mode = a.stream;
        handles.push(std::thread::spawn(move || {
            let mut out = ThreadOut::default();
            let mut conn: Option<TcpStream> = None;
            let mut chunk_buf = Vec::new();
            barrier.wait();
            while Instant::now() < start {
                std::thread::sleep(Duration::from_micros(200));
            }
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let measured = now >= measure_from;
                if measured && budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1)).is_err() {
                    break;
                }
                chunk_buf.clear();
                match request(&mut conn, &target, stream_mode, &mut chunk_buf) {
                    Ok(r) if r.status == 200 && r.ok_body => {
                        if measured {
                            out.lat.push(r.total_us.min(u32::MAX as u64) as u32);
                            out.ttfb.push(r.ttfb_us.min(u32::MAX as u64) as u32);
                            out.chunks.extend_from_slice(&chunk_buf);
                            out.last_done = Some(Instant::now());
                        }
                        let _ = r.keep_alive;
                    }
                    Ok(r) => {
                        if measured {
                            out.errors += 1;
                            out.last_done = Some(Instant::now());
                        }
                        if out.first_error.is_none() {
                            out.first_error = Some(format!("status {} (complete body: {})", r.status, r.ok_body));
                        }
                        conn = None;
                    }
                    Err(e) => {
                        if measured {
                            out.errors += 1;
                        }
                        if out.first_error.is_none() {
                            out.first_error = Some(e);
                        }
                        conn = None;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
            out
        }));
    }
    barrier.wait();
    let mut all = ThreadOut::default();
    for h in handles {
        let o = h.join().expect("thread");
        all.lat.extend(o.lat);
        all.ttfb.extend(o.ttfb);
        all.chunks.extend(o.chunks);
        all.errors += o.errors;
        if all.first_error.is_none() {
            all.first_error = o.first_error;
        }
        all.last_done = match (all.last_done, o.last_done) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    let elapsed = all
        .last_done
        .map(|t| t.saturating_duration_since(measure_from).as_secs_f64())
        .unwrap_or(a.duration)
        .max(1e-3);
    if let Some(path) = &a.raw_out {
        let mut text = String::with_capacity(all.lat.len() * 8);
        for (l, t) in all.lat.iter().zip(&all.ttfb) {
            text.push_str(&format!("{l} {t}\n"));
        }
        std::fs::write(path, text).ok();
    }
    let ok = all.lat.len();
    let lat = stats_json(&mut all.lat);
    let ttfb = stats_json(&mut all.ttfb);
    let chunks = if a.stream { stats_json(&mut all.chunks) } else { "null".into() };
    println!(
        "{{\"ok\":{ok},\"errors\":{},\"elapsed_s\":{elapsed:.3},\"rps\":{:.1},\"concurrency\":{},\"latency_us\":{lat},\"ttfb_us\":{ttfb},\"chunk_delay_us\":{chunks},\"first_error\":{}}}",
        all.errors,
        ok as f64 / elapsed,
        a.concurrency,
        all.first_error.as_deref().map(json_str).unwrap_or("null".into())
    );
}

fn startup(a: Args) {
    assert!(!a.cmd.is_empty(), "startup needs -- CMD ARGS");
    let target = build_target(&a.url, &a.body, &a.headers);
    let log = match &a.log {
        Some(p) => Stdio::from(std::fs::File::create(p).expect("log file")),
        None => Stdio::null(),
    };
    let log2 = match &a.log {
        Some(p) => Stdio::from(std::fs::OpenOptions::new().append(true).open(p).expect("log file")),
        None => Stdio::null(),
    };
    let t0 = Instant::now();
    let mut child = Command::new(&a.cmd[0])
        .args(&a.cmd[1..])
        .stdout(log)
        .stderr(log2)
        .spawn()
        .expect("spawn");
    let deadline = t0 + Duration::from_secs_f64(a.timeout);
    let mut attempts = 0u64;
    let mut result: Option<(f64, f64)> = None;
    let mut last_err = String::new();
    while Instant::now() < deadline {
        attempts += 1;
        let mut conn = None;
        let mut sink = Vec::new();
        match request(&mut conn, &target, false, &mut sink) {
            Ok(r) if r.status == 200 => {
                result = Some((t0.elapsed().as_secs_f64() * 1000.0, r.total_us as f64 / 1000.0));
                break;
            }
            Ok(r) => last_err = format!("status {}", r.status),
            Err(e) => last_err = e,
        }
        if let Ok(Some(_)) = child.try_wait() {
            last_err = format!("process exited early: {last_err}");
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().ok();
    child.wait().ok();
    match result {
        Some((ready, first)) => println!(
            "{{\"ready_ms\":{ready:.1},\"first_request_ms\":{first:.2},\"attempts\":{attempts}}}"
        ),
        None => println!(
            "{{\"ready_ms\":null,\"attempts\":{attempts},\"error\":{}}}",
            json_str(&last_err)
        ),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = args.split_first().expect("usage: bench-loadgen run|startup ...");
    let a = parse_args(rest);
    match cmd.as_str() {
        "run" => run(a),
        "startup" => startup(a),
        other => panic!("unknown command {other}"),
    }
}
