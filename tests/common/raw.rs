//! Raw HTTP/1.1 over a plain socket, for what an HTTP client hides: the exact bytes of a HEAD
//! answer, a compressed body, requests no client library would send.

use std::io::{Read, Write};
use std::net::TcpStream;

use super::DEADLINE;

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Send `request` verbatim and read the whole answer (the request must ask to close).
pub fn raw_exchange(port: u16, request: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout set");
    stream.write_all(request.as_bytes()).expect("request sent");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("answer read to the end");
    answer
}
