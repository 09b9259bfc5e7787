//! SSE fan-out benchmark: many concurrent `/events` clients against a running rosey.
//!
//! Each client is a plain TCP connection speaking HTTP/1.1 (what a browser's EventSource
//! does), decoding the chunked body and splitting it into SSE events. For every `snapshot`
//! event the client notes its arrival time and the snapshot's `timestamp` field (the moment the
//! collector published it, RFC 3339 UTC from the same machine clock): the difference is the
//! delivery delay. The snapshot sent on connect is not counted (it was published before the
//! client came); the next `--snapshots` snapshots are.
//!
//! With `--pid`, the host's resident memory (VmRSS) is read before connecting, once every
//! client has its first snapshot, after the measured snapshots, and 12 s after disconnecting:
//! the growth divided by the number of clients is the host memory per SSE client (user-space
//! memory only; kernel socket buffers are not part of RSS). glibc keeps freed memory in its
//! arenas, so RSS after disconnecting says little about leaks (`malloc_stats` does).
//!
//! Usage: `sse_fanout --addr 127.0.0.1:PORT [--clients 1000] [--snapshots 3] [--pid PID]
//! [--timeout SECS]`. Prints `key=value` lines prefixed `SSE ` for `scripts/bench.sh`.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const USAGE: &str =
    "usage: sse_fanout --addr HOST:PORT [--clients N] [--snapshots N] [--pid PID] [--timeout SECS] [--path /events]";

struct Args {
    addr: String,
    path: String,
    clients: usize,
    snapshots: usize,
    pid: Option<u32>,
    timeout: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: String::new(),
        path: "/events".into(),
        clients: 1000,
        snapshots: 3,
        pid: None,
        timeout: Duration::from_secs(90),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(USAGE)?;
        let number = |v: &str| v.parse::<u64>().map_err(|_| format!("{flag}: not a number: {v}"));
        match flag.as_str() {
            "--addr" => args.addr = value,
            "--path" => args.path = value,
            "--clients" => args.clients = number(&value)? as usize,
            "--snapshots" => args.snapshots = number(&value)? as usize,
            "--pid" => args.pid = Some(number(&value)? as u32),
            "--timeout" => args.timeout = Duration::from_secs(number(&value)?),
            _ => return Err(USAGE.into()),
        }
    }
    if args.addr.is_empty() || args.clients == 0 {
        return Err(USAGE.into());
    }
    Ok(args)
}

/// What a client tells the coordinator.
enum Report {
    Snapshot { client: usize, seq: u64, delay_us: i64 },
    Failed { client: usize, why: String },
}

/// Resident memory of a process in KiB, from /proc/PID/status.
fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Microseconds since the Unix epoch of `YYYY-MM-DDTHH:MM:SS[.frac](Z|+00:00)`.
fn parse_rfc3339_utc_us(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    let mut micros = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let padded: String = frac[..digits].chars().chain(std::iter::repeat('0')).take(6).collect();
        micros = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    if rest != "Z" && rest != "+00:00" {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(seconds * 1_000_000 + micros)
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Bytes kept from the start of each event: enough for `id`, `event` and the `timestamp`.
const EVENT_HEAD: usize = 512;

/// Incremental decoder of a chunked HTTP body into SSE events, cheap enough that 1,000 clients
/// on the same two cores measure the server rather than themselves: it copies only the first
/// [`EVENT_HEAD`] bytes of each event and never scans the rest. It relies on what rosey's
/// `/events` does (each frame is one stream item, so hyper sends it as one HTTP chunk): an event
/// ends where a chunk ends with a blank line; a small chunk may hold several events.
#[derive(Default)]
struct Decoder {
    /// A chunk-size line not yet complete.
    size_line: Vec<u8>,
    /// Payload bytes left in the current chunk; CRLF bytes to skip after it.
    chunk_left: usize,
    skip: usize,
    /// The current event: its first bytes, its length so far, its last two bytes.
    head: Vec<u8>,
    len: usize,
    last2: [u8; 2],
    /// The server sent the last (empty) chunk.
    ended: bool,
}

/// One SSE event: its id, name and (the start of) its data.
struct Event {
    id: Option<u64>,
    name: Option<String>,
    data: String,
}

impl Decoder {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() && !self.ended {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len() - pos);
                self.skip -= n;
                pos += n;
            } else if self.chunk_left > 0 {
                let n = self.chunk_left.min(bytes.len() - pos);
                self.payload(&bytes[pos..pos + n]);
                self.chunk_left -= n;
                pos += n;
                if self.chunk_left == 0 {
                    self.skip = 2; // the CRLF after the chunk
                    if self.last2 == *b"\n\n" {
                        self.end_event(&mut events);
                    }
                }
            } else {
                // A chunk-size line: a few hex digits, CRLF.
                let Some(nl) = bytes[pos..].iter().position(|&b| b == b'\n') else {
                    self.size_line.extend_from_slice(&bytes[pos..]);
                    break;
                };
                self.size_line.extend_from_slice(&bytes[pos..pos + nl]);
                pos += nl + 1;
                let line = String::from_utf8_lossy(&self.size_line);
                let size = line.split(';').next().and_then(|h| usize::from_str_radix(h.trim(), 16).ok()).unwrap_or(0);
                self.size_line.clear();
                self.chunk_left = size;
                self.ended = size == 0;
            }
        }
        events
    }

    fn payload(&mut self, data: &[u8]) {
        if self.head.len() < EVENT_HEAD {
            let n = (EVENT_HEAD - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..n]);
        }
        self.len += data.len();
        self.last2 = match data {
            [.., a, b] => [*a, *b],
            [b] => [self.last2[1], *b],
            [] => self.last2,
        };
    }

    fn end_event(&mut self, events: &mut Vec<Event>) {
        if self.len <= EVENT_HEAD {
            // Small: possibly several events (retry hint, keep-alive comments).
            let whole = String::from_utf8_lossy(&self.head);
            events.extend(whole.split("\n\n").filter(|e| !e.is_empty()).map(parse_event));
        } else {
            events.push(parse_event(&String::from_utf8_lossy(&self.head)));
        }
        self.head.clear();
        self.len = 0;
        self.last2 = [0, 0];
    }
}

/// Parse the lines of one event (its data may be cut short: only its start matters here).
fn parse_event(text: &str) -> Event {
    let mut event = Event { id: None, name: None, data: String::new() };
    for line in text.split('\n') {
        if let Some(id) = line.strip_prefix("id: ") {
            event.id = id.trim().parse().ok();
        } else if let Some(name) = line.strip_prefix("event: ") {
            event.name = Some(name.trim().to_owned());
        } else if let Some(data) = line.strip_prefix("data: ") {
            event.data.push_str(data);
        }
    }
    event
}

/// The snapshot's publication time from the frame's JSON (full or delta, its first field is
/// `timestamp`).
fn snapshot_timestamp_us(data: &str) -> Option<i64> {
    const KEY: &str = "\"timestamp\":\"";
    let start = data.find(KEY)? + KEY.len();
    let len = data[start..].find('"')?;
    parse_rfc3339_utc_us(&data[start..start + len])
}

async fn client(id: usize, mut stream: TcpStream, request: String, reports: mpsc::UnboundedSender<Report>) {
    let fail = |why: String| {
        let _ = reports.send(Report::Failed { client: id, why });
    };
    if let Err(e) = stream.write_all(request.as_bytes()).await {
        return fail(format!("sending the request: {e}"));
    }
    let mut buf = vec![0u8; 64 * 1024];
    // The response head, until it is complete.
    let mut head = Some(Vec::new());
    let mut decoder = Decoder::default();
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) => return fail("the server closed the stream".into()),
            Ok(n) => n,
            Err(e) => return fail(format!("reading: {e}")),
        };
        let arrived_us = now_us();
        let events = match head.as_mut() {
            Some(h) => {
                h.extend_from_slice(&buf[..n]);
                let Some(end) = find(h, b"\r\n\r\n") else { continue };
                let text = String::from_utf8_lossy(&h[..end]).to_ascii_lowercase();
                if !text.starts_with("http/1.1 200") {
                    return fail(text.lines().next().unwrap_or("").to_owned());
                }
                if !text.contains("transfer-encoding: chunked") {
                    return fail("expected a chunked response (HTTP/1.1 streaming)".into());
                }
                let rest = h.split_off(end + 4);
                head = None;
                decoder.feed(&rest)
            }
            None => decoder.feed(&buf[..n]),
        };
        if !send_events(id, events, arrived_us, &reports) {
            return;
        }
    }
}

/// False when the coordinator is gone.
fn send_events(id: usize, events: Vec<Event>, arrived_us: i64, reports: &mpsc::UnboundedSender<Report>) -> bool {
    for event in events {
        if !matches!(event.name.as_deref(), Some("snapshot" | "delta")) {
            continue;
        }
        let (Some(seq), Some(published_us)) = (event.id, snapshot_timestamp_us(&event.data)) else { continue };
        if reports.send(Report::Snapshot { client: id, seq, delay_us: arrived_us - published_us }).is_err() {
            return false;
        }
    }
    true
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let rss = |label: &str| {
        let kib = args.pid.and_then(vm_rss_kib);
        if let Some(kib) = kib {
            eprintln!("host VmRSS {label}: {kib} KiB");
        }
        kib
    };
    let rss_before = rss("before connecting");
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
        args.path, args.addr
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::with_capacity(args.clients);
    let started = Instant::now();
    for id in 0..args.clients {
        let stream = TcpStream::connect(&args.addr).await?;
        tasks.push(tokio::spawn(client(id, stream, request.clone(), tx.clone())));
    }
    drop(tx);
    eprintln!("{} clients connected in {:.2} s", args.clients, started.elapsed().as_secs_f64());

    // Phase 1: every client gets its on-connect snapshot.
    let deadline = tokio::time::Instant::now() + args.timeout;
    let mut greeted = HashSet::new();
    let mut failed = 0usize;
    let mut base_seq = 0u64;
    while greeted.len() + failed < args.clients {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Report::Snapshot { client, seq, .. })) => {
                greeted.insert(client);
                base_seq = base_seq.max(seq);
            }
            Ok(Some(Report::Failed { client, why })) => {
                failed += 1;
                eprintln!("client {client} failed: {why}");
            }
            Ok(None) | Err(_) => break,
        }
    }
    let rss_connected = rss("with every client connected");
    eprintln!(
        "{} clients live (first snapshots up to id {base_seq}); waiting for {} more",
        greeted.len(),
        args.snapshots
    );

    // Phase 2: the next snapshots, as published while every client listens.
    let mut delays_by_seq: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    let live = greeted.len();
    let complete = |m: &BTreeMap<u64, Vec<f64>>| m.values().filter(|d| d.len() >= live).count() >= args.snapshots;
    let mut newest = base_seq;
    while !complete(&delays_by_seq) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Report::Snapshot { seq, delay_us, .. })) if seq > base_seq => {
                newest = newest.max(seq);
                delays_by_seq.entry(seq).or_default().push(delay_us as f64 / 1000.0);
            }
            Ok(Some(Report::Snapshot { .. })) => {}
            Ok(Some(Report::Failed { client, why })) => {
                failed += 1;
                eprintln!("client {client} failed: {why}");
            }
            Ok(None) | Err(_) => break,
        }
        // A client that skipped a snapshot (the watch channel keeps only the latest) is
        // counted as a miss below instead of being waited for forever.
        if delays_by_seq.len() > args.snapshots + 2 {
            break;
        }
    }
    let rss_loaded = rss("after the measured snapshots");

    // Only snapshots that had time to reach everyone (not the one published at the deadline).
    let measured: Vec<(u64, Vec<f64>)> = delays_by_seq.into_iter().take(args.snapshots).collect();
    let mut delays: Vec<f64> = measured.iter().flat_map(|(_, d)| d.iter().copied()).collect();
    delays.sort_by(f64::total_cmp);
    let missed: usize = measured.iter().map(|(_, d)| live.saturating_sub(d.len())).sum();
    for (seq, d) in &measured {
        let mut d = d.clone();
        d.sort_by(f64::total_cmp);
        eprintln!(
            "snapshot {seq}: {} clients, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            d.len(),
            percentile(&d, 50.0),
            percentile(&d, 99.0),
            percentile(&d, 100.0)
        );
    }

    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
    // The host notices a vanished client only when a write to it fails: the first write after
    // the close still succeeds (the peer answers with a reset), the second fails. At 5 s polls
    // that is up to two snapshots.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let rss_closed = rss("12 s after disconnecting");

    println!(
        "SSE clients={} live={live} failed={failed} snapshots={} events={} missed={missed} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        args.clients,
        measured.len(),
        delays.len(),
        percentile(&delays, 50.0),
        percentile(&delays, 99.0),
        percentile(&delays, 100.0),
    );
    if let (Some(before), Some(connected), Some(loaded)) = (rss_before, rss_connected, rss_loaded) {
        let peak = connected.max(loaded);
        let per_client = peak.saturating_sub(before) as f64 / live.max(1) as f64;
        println!(
            "SSE_RSS before_kib={before} connected_kib={connected} loaded_kib={loaded} closed_kib={} per_client_kib={per_client:.2}",
            rss_closed.unwrap_or(0)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_utc() {
        assert_eq!(parse_rfc3339_utc_us("1970-01-02T00:00:00Z"), Some(86_400_000_000));
        assert_eq!(parse_rfc3339_utc_us("2000-03-01T00:00:01.5Z"), Some((951_868_800 + 1) * 1_000_000 + 500_000));
        assert_eq!(parse_rfc3339_utc_us("2026-11-29T05:14:40.215774123Z").map(|us| us % 1_000_000), Some(215_774));
        assert_eq!(parse_rfc3339_utc_us("2026-11-29T05:14:40+02:00"), None);
    }

    #[test]
    fn decodes_chunked_sse_split_anywhere() {
        let small = "id: 7\nevent: snapshot\ndata: {\"timestamp\":\"1970-01-01T00:00:01Z\",\"x\":1}\n\n";
        let big = format!(
            "id: 8\nevent: snapshot\ndata: {{\"timestamp\":\"1970-01-01T00:00:02Z\",\"pad\":\"{}\"}}\n\n",
            "x".repeat(3000)
        );
        let chunk = |s: &str| format!("{:x}\r\n{s}\r\n", s.len());
        let wire = [chunk("retry: 3000\n\n"), chunk(small), chunk(&big), chunk(": keep-alive\n\n"), "0\r\n\r\n".into()]
            .concat();
        for split in 0..wire.len() {
            let mut d = Decoder::default();
            let mut events = d.feed(&wire.as_bytes()[..split]);
            events.extend(d.feed(&wire.as_bytes()[split..]));
            let snapshots: Vec<_> = events
                .iter()
                .filter(|e| e.name.as_deref() == Some("snapshot"))
                .map(|e| (e.id, snapshot_timestamp_us(&e.data)))
                .collect();
            assert_eq!(snapshots, [(Some(7), Some(1_000_000)), (Some(8), Some(2_000_000))], "split at {split}");
            assert!(d.ended);
        }
    }
}
