//! Reading a server-sent event stream (`text/event-stream`) on a blocking reader, as
//! `rosey logs -f` and `rosey events -f` receive them: the part of the format the bot sends
//! (`event:` and `data:` fields, `:` comments such as keep-alives, a blank line ending each
//! event), by the rules of the HTML standard's parser (one space after the colon dropped,
//! several `data:` lines joined by newlines, `\r\n` line ends accepted).

use std::io::{BufRead, Read};

/// The longest line taken from the stream; a longer one is an error, never a growing buffer.
const MAX_LINE: u64 = 8 * 1024 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `message` when the event had none.
    pub name: String,
    pub data: String,
}

/// Why the stream could not be read further.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    #[error("the connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("a line of the stream is longer than {} MiB", MAX_LINE / (1024 * 1024))]
    LineTooLong,
}

/// The fields of the event being read.
#[derive(Debug, Default)]
struct Pending {
    name: Option<String>,
    data: Option<String>,
}

impl Pending {
    /// Take in one line (without its line end); the event it completes, if it is blank.
    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let Pending { name, data } = std::mem::take(self);
            // An event without data is not dispatched (the standard's rule).
            return data.map(|data| SseEvent { name: name.unwrap_or_else(|| "message".to_owned()), data });
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.name = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            // `""` is a comment (a keep-alive); `id`, `retry` and unknown fields matter not here.
            _ => {}
        }
        None
    }
}

/// The events of a stream, one at a time, until it ends.
pub struct SseReader<R> {
    reader: R,
    pending: Pending,
    line: Vec<u8>,
}

impl<R: BufRead> SseReader<R> {
    pub fn new(reader: R) -> SseReader<R> {
        SseReader { reader, pending: Pending::default(), line: Vec::new() }
    }

    /// The next event; None once the stream has ended (an unfinished event is dropped).
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, SseError> {
        loop {
            self.line.clear();
            let read = Read::take(&mut self.reader, MAX_LINE + 1).read_until(b'\n', &mut self.line)?;
            if read == 0 {
                return Ok(None);
            }
            if self.line.len() as u64 > MAX_LINE {
                return Err(SseError::LineTooLong);
            }
            let line = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(event) = self.pending.line(&String::from_utf8_lossy(line)) {
                return Ok(Some(event));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(wire: &str) -> Vec<SseEvent> {
        let mut reader = SseReader::new(wire.as_bytes());
        std::iter::from_fn(|| reader.next_event().expect("readable")).collect()
    }

    fn event(name: &str, data: &str) -> SseEvent {
        SseEvent { name: name.into(), data: data.into() }
    }

    #[test]
    fn named_events_comments_and_line_ends() {
        let wire = ": keep-alive\n\nevent: lines\ndata: {\"a\":1}\n\nevent:event\r\ndata:x\r\n\r\ndata: plain\n\n";
        assert_eq!(events(wire), [event("lines", "{\"a\":1}"), event("event", "x"), event("message", "plain")]);
    }

    #[test]
    fn data_lines_join_and_only_one_space_is_dropped() {
        assert_eq!(events("data: a\ndata:  b\ndata\n\n"), [event("message", "a\n b\n")]);
        assert_eq!(events("data: colon: inside\n\n"), [event("message", "colon: inside")]);
    }

    #[test]
    fn an_event_without_data_or_unfinished_is_not_dispatched() {
        assert_eq!(events("event: lines\n\nid: 4\nretry: 10\n\n"), []);
        assert_eq!(events("event: lines\ndata: cut off"), []);
    }

    #[test]
    fn hostile_data_is_kept_as_sent() {
        let wire = "event: lines\ndata: {\"text\":\"\\u001b[2J<script>\"} \u{202e}\n\n";
        assert_eq!(events(wire), [event("lines", "{\"text\":\"\\u001b[2J<script>\"} \u{202e}")]);
        // Bytes that are not UTF-8 read as U+FFFD rather than ending the stream.
        let mut reader = SseReader::new(&b"data: \xff\n\n"[..]);
        assert_eq!(reader.next_event().expect("readable"), Some(event("message", "\u{fffd}")));
    }

    #[test]
    fn a_line_without_end_is_refused() {
        let long = "x".repeat(MAX_LINE as usize + 10);
        let mut reader = SseReader::new(long.as_bytes());
        assert!(matches!(reader.next_event(), Err(SseError::LineTooLong)));
    }
}
