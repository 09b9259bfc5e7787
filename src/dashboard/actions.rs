//! The action routes: `POST /api/plugin/{name}/reload|restart|stop|start` and `POST /api/reload`.
//!
//! They change what runs, so they are guarded more than the read-only routes: refused unless
//! `dashboard.auth` is set (basic auth is then checked for them like for every route, by the
//! server's guard), and refused when a browser says the request comes from another site (the
//! rules of Go's `http.CrossOriginProtection`), so a page elsewhere cannot make an operator's
//! browser press the buttons. Each answers when the action has finished: in JSON, or, to a
//! browser that submitted a card's form without JavaScript, as a page ([`form`]).

mod form;

use std::sync::Arc;

use poem::http::{StatusCode, header};
use poem::web::{Data, Path};
use poem::{Request, Response, handler};
use serde_json::json;

use super::Shared;
use super::auth::basic_auth_user;
use super::responses::json_response;
use crate::action_text::ActionSummary;
use crate::control::{Action, ActionError, ActionReport, ConfigReloadError, Controls, Trigger};
use form::FormPost;

/// What the action routes share.
pub struct Actions {
    controls: Controls,
    /// Actions are enabled only when the dashboard has credentials.
    enabled: bool,
}

impl Actions {
    pub fn new(controls: Controls, enabled: bool) -> Arc<Actions> {
        Arc::new(Actions { controls, enabled })
    }
}

/// Why an action was not carried out: the HTTP status and the reason in words.
#[derive(Debug)]
struct Refused {
    status: StatusCode,
    message: String,
}

impl Refused {
    fn new(status: StatusCode, message: impl Into<String>) -> Refused {
        Refused { status, message: message.into() }
    }

    fn json(&self) -> Response {
        json_response(self.status, &json!({ "error": self.message }))
    }
}

impl From<ActionError> for Refused {
    fn from(e: ActionError) -> Refused {
        let status = match &e {
            ActionError::UnknownPlugin(_) => StatusCode::NOT_FOUND,
            ActionError::Busy { .. } => StatusCode::CONFLICT,
            ActionError::InvalidConfig(_) | ActionError::NotInConfig(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ActionError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        };
        Refused::new(status, e.to_string())
    }
}

/// Why an action request is refused before it reaches the bot.
fn refusal(actions: &Actions, req: &Request) -> Option<Refused> {
    if !actions.enabled {
        return Some(Refused::new(
            StatusCode::FORBIDDEN,
            "actions are disabled: set dashboard.auth (username and password) in the config file and \
             restart the bot; actions then need those credentials",
        ));
    }
    cross_origin(req)
        .map(|reason| Refused::new(StatusCode::FORBIDDEN, format!("cross-origin request refused: {reason}")))
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
    Trigger::Api { user: basic_auth_user(req) }
}

/// `POST /api/plugin/{name}/{action}`: the action is the path's last segment.
#[handler]
pub async fn plugin_action(
    actions: Data<&Arc<Actions>>,
    shared: Data<&Arc<Shared>>,
    Path(name): Path<String>,
    req: &Request,
) -> Response {
    let last = req.uri().path().rsplit('/').next().unwrap_or("");
    let result = act(&actions, &name, last, req).await;
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
        Err(refused) => form.refused(&shared, last, &name, &refused),
    }
}

/// Carry out the action named `last` (the path's last segment) on `name`, unless refused.
async fn act(actions: &Actions, name: &str, last: &str, req: &Request) -> Result<ActionReport, Refused> {
    if let Some(refused) = refusal(actions, req) {
        return Err(refused);
    }
    let action =
        last.parse::<Action>().map_err(|_| Refused::new(StatusCode::NOT_FOUND, format!("unknown action {last:?}")))?;
    Ok(actions.controls.act(name, action, trigger(req)).await?)
}

/// `POST /api/reload`: re-read the config file and environment and apply the difference.
#[handler]
pub async fn reload_config(actions: Data<&Arc<Actions>>, req: &Request) -> Response {
    if let Some(refused) = refusal(&actions, req) {
        return refused.json();
    }
    match actions.controls.reload_config(trigger(req)).await {
        Ok(report) => json_response(StatusCode::OK, &json!(report)),
        Err(ConfigReloadError::Invalid(problems)) => {
            let problems: Vec<String> = problems.to_string().lines().map(str::to_owned).collect();
            json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({ "error": "the config is invalid; nothing was changed", "problems": problems }),
            )
        }
        Err(e @ ConfigReloadError::Busy) => Refused::new(StatusCode::CONFLICT, e.to_string()).json(),
        Err(e @ ConfigReloadError::ShuttingDown) => Refused::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).json(),
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
    use super::*;

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
