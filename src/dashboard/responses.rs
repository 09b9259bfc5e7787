//! How the dashboard's answers are built: every body is marked `Cache-Control: no-store`
//! here (the figures change every second, and a cached action answer would mislead), pages
//! carry the content security policy, and bodies kept plain and gzipped are negotiated here.

use bytes::Bytes;
use poem::http::{StatusCode, header};
use poem::{Request, Response, ResponseBuilder};

/// Pages load only this server's own script, style and icon; no inline script runs, so even
/// a markup injection that slipped past escaping could not execute.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/// The start of every answer that carries the dashboard's figures or an action's outcome:
/// never stored by a browser or a proxy.
pub fn uncached() -> ResponseBuilder {
    Response::builder().header(header::CACHE_CONTROL, "no-store")
}

pub fn respond(content_type: &'static str, bytes: Bytes) -> Response {
    uncached().content_type(content_type).body(bytes)
}

pub fn html_response(status: StatusCode, bytes: Bytes) -> Response {
    uncached()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
        .body(bytes)
}

pub fn json(bytes: Bytes) -> Response {
    respond("application/json", bytes)
}

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    uncached().status(status).content_type("application/json").body(body.to_string())
}

/// A rendered page, or a plain 500 when the template failed (the log says why).
pub fn html(page: Option<Bytes>) -> Response {
    match page {
        Some(bytes) => html_response(StatusCode::OK, bytes),
        None => Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body("the page could not be rendered; see the log"),
    }
}

/// Does the client take a gzip body (`Accept-Encoding: gzip`, not `gzip;q=0`)?
pub fn accepts_gzip(req: &Request) -> bool {
    let Some(accepted) = req.headers().get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    accepted.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding_is_gzip = parts.next().is_some_and(|c| c.eq_ignore_ascii_case("gzip"));
        let refused = parts.any(|p| p.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()) == Some(0.0));
        coding_is_gzip && !refused
    })
}

/// `response` with the encoding headers of a body that exists plain and gzipped.
pub fn negotiated(mut response: Response, gzipped: bool) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::VARY, header::HeaderValue::from_static("accept-encoding"));
    if gzipped {
        headers.insert(header::CONTENT_ENCODING, header::HeaderValue::from_static("gzip"));
    }
    response
}
