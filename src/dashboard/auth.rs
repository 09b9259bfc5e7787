//! The guard around every route: who may ask (HTTP basic auth, when `dashboard.auth` is set,
//! on every route but `/health`), and the headers every answer carries whatever the route
//! (`nosniff`, and `Allow` on a 405). Ways of proving who asks go in [`Guard::admits`].

use std::sync::Arc;

use poem::http::{StatusCode, header};
use poem::web::headers::authorization::Basic;
use poem::web::headers::{Authorization, HeaderMapExt};
use poem::{Endpoint, IntoResponse, Request, Response};
use subtle::ConstantTimeEq;

use crate::config::BasicAuth;

/// What the guard checks a request against.
pub struct Guard {
    /// The credentials every request but `/health`'s must carry; None: anyone may ask.
    credentials: Option<BasicAuth>,
}

impl Guard {
    pub fn new(credentials: Option<BasicAuth>) -> Arc<Guard> {
        Arc::new(Guard { credentials })
    }

    /// Serve `req` through `ep` if it may be served. `nosniff` goes on every response, errors
    /// included (a 404 that echoes a requested name must never be sniffed as HTML).
    pub async fn serve<E: Endpoint>(&self, ep: &E, req: Request) -> poem::Result<Response> {
        let mut response = if self.admits(&req) {
            match ep.call(req).await {
                Ok(response) => response.into_response(),
                Err(error) => error.into_response(),
            }
        } else {
            Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header(header::WWW_AUTHENTICATE, "Basic realm=\"rosey\", charset=\"UTF-8\"")
                .body("authentication required")
        };
        let headers = response.headers_mut();
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
        // RFC 9110 requires a 405 to say what is allowed. The action routes say it themselves
        // (action_routes::PostOnly); every other route takes GET and HEAD.
        if response.status() == StatusCode::METHOD_NOT_ALLOWED && !response.headers().contains_key(header::ALLOW) {
            response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        }
        Ok(response)
    }

    /// May `req` be served?
    fn admits(&self, req: &Request) -> bool {
        match &self.credentials {
            None => true,
            Some(credentials) => req.uri().path() == "/health" || basic_auth_matches(req, credentials),
        }
    }
}

/// The request's basic-auth user, whether or not auth is configured: it names who asked for
/// an action.
pub fn basic_auth_user(req: &Request) -> Option<String> {
    req.headers().typed_get::<Authorization<Basic>>().map(|Authorization(b)| b.username().to_owned())
}

fn basic_auth_matches(req: &Request, credentials: &BasicAuth) -> bool {
    let Some(Authorization(given)) = req.headers().typed_get::<Authorization<Basic>>() else { return false };
    let user_ok = given.username().as_bytes().ct_eq(credentials.username.as_bytes());
    let password_ok = given.password().as_bytes().ct_eq(credentials.password.as_bytes());
    bool::from(user_ok & password_ok)
}
