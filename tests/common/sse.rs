//! A server-sent-events reader on the tests' HTTP client (ureq): ureq sends the request and
//! decodes the chunked body; this splits it into SSE frames, every read bounded by a timeout.

use std::io::{BufRead, BufReader};
use std::time::Instant;

use serde_json::Value;

use super::DEADLINE;

/// One SSE frame: the fields of the lines up to a blank line.
#[derive(Debug, Default)]
pub struct Frame {
    pub event: Option<String>,
    pub id: Option<String>,
    pub retry: Option<String>,
    pub data: Option<String>,
    pub comments: Vec<String>,
}

/// An open `GET` on an event stream (or the error response that came instead).
pub struct Sse {
    pub status: u16,
    headers: Vec<(String, String)>,
    body: BufReader<ureq::BodyReader<'static>>,
}

impl Sse {
    /// `GET path` on the dashboard at `port` with `extra` headers; returns once the status
    /// line and headers are read.
    pub fn open(port: u16, path: &str, extra: &[(&str, &str)]) -> Sse {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(DEADLINE))
            .timeout_recv_response(Some(DEADLINE))
            // A stream has no end: bound each read, not the whole body.
            .timeout_per_read(Some(DEADLINE))
            .build()
            .into();
        let mut request = ureq::http::Request::builder()
            .uri(format!("http://127.0.0.1:{port}{path}"))
            .header("Accept", "text/event-stream");
        for (k, v) in extra {
            request = request.header(*k, *v);
        }
        let response =
            agent.run(request.body(()).expect("a well-formed request")).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        Sse { status, headers, body: BufReader::new(response.into_body().into_reader()) }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The next line of the body (without its line ending); None at end of stream.
    fn line(&mut self, deadline: Instant) -> Option<String> {
        assert!(Instant::now() < deadline, "timed out reading the event stream");
        let mut line = String::new();
        match self.body.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => panic!("the event stream is not UTF-8: {e}"),
            Err(e) if is_timeout(&e) => panic!("timed out reading the event stream: {e}"),
            // The server closed the stream mid-chunk (it stopped): the end, like a clean close.
            Err(_) => None,
        }
    }

    /// The next frame; None at end of stream.
    pub fn frame(&mut self, deadline: Instant) -> Option<Frame> {
        let mut frame = Frame::default();
        let mut any = false;
        loop {
            let line = self.line(deadline)?;
            if line.is_empty() {
                if any {
                    return Some(frame);
                }
                continue;
            }
            any = true;
            if let Some(comment) = line.strip_prefix(':') {
                frame.comments.push(comment.trim().to_owned());
                continue;
            }
            let (field, value) = line.split_once(':').map_or((line.as_str(), ""), |(f, v)| (f, v));
            let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
            match field {
                "event" => frame.event = Some(value),
                "id" => frame.id = Some(value),
                "retry" => frame.retry = Some(value),
                "data" => {
                    frame.data = Some(match frame.data.take() {
                        Some(before) => format!("{before}\n{value}"),
                        None => value,
                    })
                }
                other => panic!("unexpected SSE field {other:?} in {line:?}"),
            }
        }
    }

    /// The next `snapshot` event: its id and parsed data.
    pub fn snapshot(&mut self, deadline: Instant) -> (u64, Value) {
        loop {
            let frame = self.frame(deadline).expect("the stream stays open");
            if frame.event.as_deref() != Some("snapshot") {
                continue;
            }
            let id = frame.id.as_deref().and_then(|id| id.parse().ok()).expect("a snapshot carries a numeric id");
            let data = frame.data.expect("a snapshot carries data");
            let value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("snapshot data is not JSON ({e})"));
            return (id, value);
        }
    }

    /// Read snapshots until one satisfies `check` (or panic after DEADLINE).
    pub fn wait_for(&mut self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            assert!(Instant::now() < deadline, "no snapshot showed {what} within {DEADLINE:?}");
            let (_, data) = self.snapshot(deadline);
            if check(&data) {
                return data;
            }
        }
    }

    /// The rest of the body as text (for error responses).
    pub fn rest(&mut self) -> String {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut self.body, &mut text).expect("the error body is read");
        text
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)
        || e.to_string().contains("timeout")
}
