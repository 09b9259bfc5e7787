//! The action routes: `POST /api/plugin/{name}/{action}` (`reload`, `restart`, `stop` or
//! `start`, read once into an [`Action`] by [`ActionPath`]) and `POST /api/reload`.
//!
//! They change what runs, so they are guarded more than the read-only routes: refused unless
//! `dashboard.auth` is set (basic auth is then checked for them like for every route, by the
//! server's guard), and refused when a browser says the request comes from another site (the
//! rules of Go's `http.CrossOriginProtection`), so a page elsewhere cannot make an operator's
//! browser press the buttons. Each answers when the action has finished: in JSON, or, to a
//! browser that submitted a card's form without JavaScript, as a page ([`form`]).

mod form;

use std::sync::Arc;

use poem::error::{MethodNotAllowedError, NotFoundError};
use poem::http::{Method, StatusCode, header};
use poem::web::{Data, Path};
use poem::{FromRequest, Request, RequestBody, Response, handler};
use serde_json::json;

use super::Shared;
use super::auth::visitor;
use super::refusal::Refusal;
use super::responses::json_response;
use crate::config::Role;
use crate::control::text::ActionSummary;
use crate::control::{Action, ActionDoor, ActionReport, Trigger};
use form::FormPost;

/// What the action routes share.
pub struct Actions {
    controls: ActionDoor,
    /// Actions are enabled only when the dashboard has an operator.
    enabled: bool,
}

impl Actions {
    pub fn new(controls: ActionDoor, enabled: bool) -> Arc<Actions> {
        Arc::new(Actions { controls, enabled })
    }
}

/// Why an action request is refused before it reaches the bot.
fn refusal(actions: &Actions, req: &Request) -> Option<Refusal> {
    if !actions.enabled {
        return Some(Refusal::ActionsDisabled);
    }
    if let Some(viewer) = visitor(req).filter(|v| v.role == Role::Viewer) {
        return Some(Refusal::Viewer(viewer.user.clone()));
    }
    cross_origin(req).map(Refusal::CrossOrigin)
}

/// The rules of Go's `http.CrossOriginProtection` for a state-changing request: a browser's
/// `Sec-Fetch-Site` must be `same-origin` or `none`; without it, an `Origin` must name this
/// host; a request with neither header is not from a browser and passes.
fn cross_origin(req: &Request) -> Option<String> {
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("?");
        return (!matches!(site, "same-origin" | "none")).then(|| format!("Sec-Fetch-Site is {site:?}"));
    }
    let origin = headers.get(header::ORIGIN)?.to_str().unwrap_or("?");
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    (origin_host != host).then(|| format!("Origin {origin:?} does not match Host {host:?}"))
}

fn trigger(req: &Request) -> Trigger {
    Trigger::Api { user: visitor(req).map(|v| v.user.clone()) }
}

/// The path of `/api/plugin/{name}/{action}`. A last segment that names no action is no
/// route at all: 404 whatever the method, as for any other unknown path.
pub struct ActionPath {
    name: String,
    action: Action,
}

impl<'a> FromRequest<'a> for ActionPath {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<ActionPath> {
        let Path((name, action)) = Path::<(String, String)>::from_request(req, body).await?;
        let action = action.parse::<Action>().map_err(|_| NotFoundError)?;
        Ok(ActionPath { name, action })
    }
}

/// The action routes change what runs, so they take POST only: any other method (HEAD
/// included) is 405, saying that POST is allowed.
pub struct PostOnly;

impl<'a> FromRequest<'a> for PostOnly {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<PostOnly> {
        if req.method() == Method::POST {
            return Ok(PostOnly);
        }
        let mut refused = poem::Error::from(MethodNotAllowedError).into_response();
        refused.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        Err(poem::Error::from_response(refused))
    }
}

/// `POST /api/plugin/{name}/{action}`.
#[handler]
pub async fn plugin_action(
    ActionPath { name, action }: ActionPath,
    _post: PostOnly,
    actions: Data<&Arc<Actions>>,
    shared: Data<&Arc<Shared>>,
    req: &Request,
) -> Response {
    let result = act(&actions, &name, action, req).await;
    let Some(form) = FormPost::of(req, &name) else {
        return match result {
            Ok(report) => {
                // The outcome in words too, so the page shows what chat and the CLI would say.
                let mut body = json!(report);
                body["summary"] = json!(ActionSummary::of(&report).line());
                json_response(StatusCode::OK, &body)
            }
            Err(refused) => refused.json(),
        };
    };
    match result {
        Ok(report) => form.answer(&shared, &report).await,
        Err(refused) => form.refused(&shared, action, &name, &refused),
    }
}

/// Carry out `action` on `name`, unless refused.
async fn act(actions: &Actions, name: &str, action: Action, req: &Request) -> Result<ActionReport, Refusal> {
    if let Some(refused) = refusal(actions, req) {
        return Err(refused);
    }
    Ok(actions.controls.act(name, action, trigger(req)).await?)
}

/// `POST /api/reload`: re-read the config file and environment and apply the difference.
#[handler]
pub async fn reload_config(_post: PostOnly, actions: Data<&Arc<Actions>>, req: &Request) -> Response {
    if let Some(refused) = refusal(&actions, req) {
        return refused.json();
    }
    match actions.controls.reload_config(trigger(req)).await {
        Ok(report) => json_response(StatusCode::OK, &json!(report)),
        Err(e) => Refusal::from(e).json(),
    }
}

/// An action request with these headers, for the tests of the rules that read them.
#[cfg(test)]
fn request_with(headers: &[(&str, &str)]) -> Request {
    let mut builder = Request::builder().method(poem::http::Method::POST).uri_str("/api/plugin/dice-roller/stop");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.finish()
}

#[cfg(test)]
mod tests {
    use poem::{Endpoint, Route};

    use super::*;

    #[tokio::test]
    async fn an_unknown_action_is_no_route_and_a_known_one_takes_post_only() {
        // The method and the path are refused before the handler needs its data.
        let route = Route::new().at("/api/plugin/:name/:action", plugin_action);
        let answer =
            |method: Method, path: &str| route.get_response(Request::builder().method(method).uri_str(path).finish());
        for method in [Method::GET, Method::POST, Method::PUT] {
            let unknown = answer(method.clone(), "/api/plugin/dice-roller/bogus").await;
            assert_eq!(unknown.status(), StatusCode::NOT_FOUND, "{method} of an unknown action");
            assert!(unknown.headers().get(header::ALLOW).is_none());
        }
        for method in [Method::GET, Method::HEAD, Method::DELETE] {
            let refused = answer(method.clone(), "/api/plugin/dice-roller/reload").await;
            assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(refused.headers().get(header::ALLOW).map(|v| v.as_bytes()), Some(&b"POST"[..]), "{method}");
        }
    }

    #[test]
    fn cross_origin_rules_follow_go() {
        let passes = |h: &[(&str, &str)]| cross_origin(&request_with(h)).is_none();
        assert!(passes(&[]), "no browser headers: a script or curl");
        assert!(passes(&[("sec-fetch-site", "same-origin")]));
        assert!(passes(&[("sec-fetch-site", "none")]), "typed in the address bar");
        assert!(!passes(&[("sec-fetch-site", "cross-site")]));
        assert!(!passes(&[("sec-fetch-site", "same-site")]), "a sibling subdomain is another origin");
        assert!(passes(&[("origin", "http://127.0.0.1:8080"), ("host", "127.0.0.1:8080")]));
        assert!(!passes(&[("origin", "http://evil.example"), ("host", "127.0.0.1:8080")]));
        assert!(
            passes(&[("sec-fetch-site", "same-origin"), ("origin", "http://other"), ("host", "h")]),
            "Sec-Fetch-Site decides when present"
        );
    }
}
