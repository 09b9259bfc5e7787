//! The baseline for `/api/metrics`: poem itself serving one fixed, pre-built body.
//!
//! `scripts/bench.sh` saves rosey's `/api/metrics` response and serves those very bytes from
//! here (same headers as rosey's JSON routes, same default tokio runtime), so the ratio
//! rosey / baseline shows what rosey's own per-request work costs on top of poem's.
//!
//! Usage: `fixed_body (--file PATH | --size BYTES) [--port PORT]`; port 0 (the default) picks a
//! free one. Prints `listening on 127.0.0.1:PORT` once bound, then serves until killed.

use bytes::Bytes;
use poem::http::header;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{EndpointExt, Response, Route, Server, get, handler};

const USAGE: &str = "usage: fixed_body (--file PATH | --size BYTES) [--port PORT]";

#[handler]
fn fixed(body: Data<&Bytes>) -> Response {
    // The same headers rosey's `json()` responses carry.
    Response::builder().content_type("application/json").header(header::CACHE_CONTROL, "no-store").body(body.0.clone())
}

fn parse_args() -> Result<(Bytes, u16), String> {
    let mut args = std::env::args().skip(1);
    let (mut body, mut port) = (None, 0u16);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(USAGE)?;
        match flag.as_str() {
            "--file" => body = Some(Bytes::from(std::fs::read(&value).map_err(|e| format!("{value}: {e}"))?)),
            "--size" => {
                let size: usize = value.parse().map_err(|_| format!("--size: not a number: {value}"))?;
                // A JSON string of exactly `size` bytes (size >= 2).
                let mut json = vec![b'x'; size.max(2)];
                json[0] = b'"';
                json[size.max(2) - 1] = b'"';
                body = Some(Bytes::from(json));
            }
            "--port" => port = value.parse().map_err(|_| format!("--port: not a port: {value}"))?,
            _ => return Err(USAGE.into()),
        }
    }
    Ok((body.ok_or(USAGE)?, port))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (body, port) = parse_args()?;
    let acceptor = TcpListener::bind(format!("127.0.0.1:{port}")).into_acceptor().await?;
    let local = acceptor.local_addr().first().and_then(|a| a.as_socket_addr().copied()).ok_or("no local address")?;
    println!("listening on {local} ({} byte body)", body.len());
    let app = Route::new().at("/", get(fixed)).at("/api/metrics", get(fixed)).data(body);
    Server::new_with_acceptor(acceptor).run(app).await?;
    Ok(())
}
