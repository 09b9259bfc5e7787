//! Reading lines from an untrusted plugin without unbounded buffering.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One line read from a plugin.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line (without its newline), at most the limit in length.
    Text(String),
    /// A line longer than the limit; its bytes were discarded, not buffered.
    TooLong {
        len: usize,
    },
    /// Bytes that are not UTF-8.
    NotUtf8,
    Eof,
}

/// Read the next line, keeping at most `max` bytes of it in memory.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    buf.clear();
    let mut len = 0usize;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            // A last line without a newline still counts as a line.
            return Ok(if len == 0 { Line::Eof } else { finish(buf, len, max) });
        }
        let (chunk, found_newline) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], true),
            None => (available, false),
        };
        if len + chunk.len() <= max {
            buf.extend_from_slice(chunk);
        }
        len += chunk.len();
        let consumed = chunk.len() + usize::from(found_newline);
        reader.consume(consumed);
        if found_newline {
            return Ok(finish(buf, len, max));
        }
    }
}

fn finish(buf: &mut Vec<u8>, len: usize, max: usize) -> Line {
    if len > max {
        return Line::TooLong { len };
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    match String::from_utf8(std::mem::take(buf)) {
        Ok(s) => Line::Text(s),
        Err(_) => Line::NotUtf8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    async fn lines(input: &[u8], max: usize) -> Vec<Line> {
        let mut reader = BufReader::with_capacity(4, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            let line = read_line(&mut reader, &mut buf, max).await.expect("reading from memory cannot fail");
            if line == Line::Eof {
                return out;
            }
            out.push(line);
        }
    }

    #[tokio::test]
    async fn splits_lines_and_keeps_a_final_unterminated_one() {
        let got = lines(b"one\r\ntwo\nthree", 16).await;
        assert_eq!(got, vec![Line::Text("one".into()), Line::Text("two".into()), Line::Text("three".into())]);
    }

    #[tokio::test]
    async fn an_overlong_line_is_reported_and_the_next_one_survives() {
        let mut input = vec![b'x'; 100];
        input.extend_from_slice(b"\nok\n");
        let got = lines(&input, 10).await;
        assert_eq!(got, vec![Line::TooLong { len: 100 }, Line::Text("ok".into())]);
    }

    #[tokio::test]
    async fn invalid_utf8_is_reported() {
        assert_eq!(lines(b"\xff\xfe\n", 10).await, vec![Line::NotUtf8]);
    }
}
