//! Reading lines from an untrusted peer without unbounded buffering: one line splitter for
//! the host's async plugin pipes, the built-ins' blocking stdin and the console's chat input.

use std::borrow::Cow;
use std::io::BufRead;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One line read from a plugin (or, in a built-in, from the host).
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line (without its newline), at most the limit in length.
    Text(String),
    /// A line within the limit whose bytes are not UTF-8; the bytes are kept.
    NotUtf8(Vec<u8>),
    /// A line longer than the limit: its length and its first `max` bytes (the rest was
    /// discarded, never buffered).
    TooLong { len: usize, start: Vec<u8> },
}

impl Line {
    /// The text to show a human: invalid UTF-8 replaced by U+FFFD, an overlong line summarised.
    pub fn lossy(&self) -> Cow<'_, str> {
        match self {
            Line::Text(text) => Cow::Borrowed(text),
            Line::NotUtf8(bytes) => String::from_utf8_lossy(bytes),
            Line::TooLong { len, .. } => Cow::Owned(format!("<{len}-byte line>")),
        }
    }
}

/// Splits a byte stream into [`Line`]s, keeping at most `max` bytes of the current line.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    /// Bytes of the current line seen so far, kept or not.
    len: usize,
    max: usize,
}

impl LineSplitter {
    pub fn new(max: usize) -> Self {
        LineSplitter { buf: Vec::new(), len: 0, max }
    }

    /// Take what is useful from `available`: how many bytes were consumed, and the line they
    /// completed, if any.
    fn feed(&mut self, available: &[u8]) -> (usize, Option<Line>) {
        let (chunk, found_newline) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], true),
            None => (available, false),
        };
        let room = self.max.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        self.len += chunk.len();
        let consumed = chunk.len() + usize::from(found_newline);
        (consumed, found_newline.then(|| self.finish()))
    }

    /// At end of input: a last line without a newline still counts as a line.
    fn finish_at_eof(&mut self) -> Option<Line> {
        (self.len > 0).then(|| self.finish())
    }

    fn finish(&mut self) -> Line {
        let len = std::mem::take(&mut self.len);
        let mut bytes = std::mem::take(&mut self.buf);
        if len > self.max {
            return Line::TooLong { len, start: bytes };
        }
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        String::from_utf8(bytes).map_or_else(|e| Line::NotUtf8(e.into_bytes()), Line::Text)
    }

    /// Take what is useful from `available`, which is empty at end of input: how many bytes
    /// were consumed, and `Some` when reading is done (with the line, or None at the end).
    fn advance(&mut self, available: &[u8]) -> (usize, Option<Option<Line>>) {
        if available.is_empty() {
            return (0, Some(self.finish_at_eof()));
        }
        let (consumed, line) = self.feed(available);
        (consumed, line.map(Some))
    }

    /// The next line, or None at end of input.
    pub async fn next_line<R: AsyncBufRead + Unpin>(&mut self, reader: &mut R) -> std::io::Result<Option<Line>> {
        loop {
            let (consumed, done) = self.advance(reader.fill_buf().await?);
            reader.consume(consumed);
            if let Some(line) = done {
                return Ok(line);
            }
        }
    }

    /// [`LineSplitter::next_line`] for a blocking reader.
    pub fn next_line_blocking<R: BufRead>(&mut self, reader: &mut R) -> std::io::Result<Option<Line>> {
        loop {
            let (consumed, done) = match reader.fill_buf() {
                Ok(available) => self.advance(available),
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            reader.consume(consumed);
            if let Some(line) = done {
                return Ok(line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    async fn lines(input: &[u8], max: usize) -> Vec<Line> {
        let mut reader = BufReader::with_capacity(4, input);
        let mut splitter = LineSplitter::new(max);
        let mut out = Vec::new();
        while let Some(line) = splitter.next_line(&mut reader).await.expect("reading from memory cannot fail") {
            out.push(line);
        }
        // The blocking reader splits the same input the same way.
        let mut blocking = std::io::BufReader::with_capacity(3, input);
        let mut splitter = LineSplitter::new(max);
        let mut same = Vec::new();
        while let Some(line) = splitter.next_line_blocking(&mut blocking).expect("reading from memory cannot fail") {
            same.push(line);
        }
        assert_eq!(out, same);
        out
    }

    #[tokio::test]
    async fn splits_lines_and_keeps_a_final_unterminated_one() {
        let got = lines(b"one\r\ntwo\n\nthree", 16).await;
        let text = |s: &str| Line::Text(s.into());
        assert_eq!(got, vec![text("one"), text("two"), text(""), text("three")]);
    }

    #[tokio::test]
    async fn an_overlong_line_is_reported_and_the_next_one_survives() {
        let mut input = vec![b'x'; 100];
        input.extend_from_slice(b"\nok\n");
        let got = lines(&input, 10).await;
        assert_eq!(got, vec![Line::TooLong { len: 100, start: vec![b'x'; 10] }, Line::Text("ok".into())]);
        assert_eq!(got[0].lossy(), "<100-byte line>");
    }

    #[tokio::test]
    async fn invalid_utf8_keeps_its_bytes() {
        let got = lines(b"caf\xe9 \xff\nok\n", 10).await;
        assert_eq!(got, vec![Line::NotUtf8(b"caf\xe9 \xff".to_vec()), Line::Text("ok".into())]);
        assert_eq!(got[0].lossy(), "caf\u{fffd} \u{fffd}");
    }
}
