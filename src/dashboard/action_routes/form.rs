//! The action buttons without JavaScript. A card's button is a form; submitted by the browser
//! itself, it is a navigation, and a JSON body would leave the operator looking at raw JSON.
//! Such a request is answered instead:
//! - when the action did what was asked: `303 See Other` back to the page the form was on,
//!   whose card then shows the result (state, version, newest reload);
//! - when it was refused, rolled back or failed: a short page with the reason and a link back,
//!   with the status the JSON answer has ([`Refusal::status`]).
//!
//! A request is a navigation when the browser says so (`Sec-Fetch-Mode: navigate`, which every
//! current browser sends) or, from a browser too old to send `Sec-Fetch-Mode`, when it asks for
//! HTML (`Accept: text/html`). Scripts (curl, `rosey reload`, the page's own fetch) send
//! neither and get JSON. The content type is no sign: `curl -d ''` sends a form's too.
//!
//! The page to go back to is always one of this dashboard's own: the `Referer` only tells which
//! (this plugin's page, or the index with its view query, e.g. `/?state=down`); anything else
//! goes to the index. No request can send a browser elsewhere.

use std::time::{Duration, SystemTime};

use poem::http::{StatusCode, header};
use poem::{Request, Response};
use serde::Serialize;
use tera::Context;

use crate::control::text::ActionSummary;
use crate::control::{Action, ActionReport};
use crate::dashboard::Shared;
use crate::dashboard::refusal::Refusal;
use crate::dashboard::responses::{html_response, uncached};

const TEMPLATE: &str = "action_answer.html";
/// How long a redirect waits for the dashboard to show the action's result, so that the page
/// the browser is sent back to shows it. The collector publishes a snapshot within a quarter of
/// a second of a plugin's change; should it be slower, the page's own refresh shows the result.
const RESULT_WAIT: Duration = Duration::from_secs(2);

/// A browser's own submission of a card's form.
pub(super) struct FormPost {
    back: BackTo,
}

/// One of the dashboard's own pages, to go back to.
#[derive(Debug, PartialEq, Eq)]
struct BackTo {
    url: String,
    /// What the link back says: "Back to {label}".
    label: String,
}

/// What the answer page shows.
#[derive(Serialize)]
struct AnswerPage<'a> {
    heading: &'a str,
    lines: Vec<&'a str>,
    /// `refused`, `rolled_back` or `failed`: the message's colour.
    outcome: &'a str,
    back_url: &'a str,
    back_label: &'a str,
}

impl FormPost {
    /// The form post in `req`, for an action on `plugin`; None for a script's request.
    pub(super) fn of(req: &Request, plugin: &str) -> Option<FormPost> {
        is_navigation(req).then(|| FormPost { back: BackTo::from_referer(req, plugin) })
    }

    /// The answer to an action that was carried out: back to the page when it did what was
    /// asked, else a page saying how it went.
    pub(super) async fn answer(&self, shared: &Shared, report: &ActionReport) -> Response {
        let finished = SystemTime::now();
        let summary = ActionSummary::of(report);
        if !summary.succeeded() {
            let heading = format!("{} {}: {}", summary.action, summary.plugin, summary.outcome.replace('_', " "));
            return self.page(shared, StatusCode::OK, &heading, &summary.line(), summary.outcome);
        }
        shown_after(shared, finished).await;
        uncached().status(StatusCode::SEE_OTHER).header(header::LOCATION, self.back.url.as_str()).finish()
    }

    /// The answer to a refused action.
    pub(super) fn refused(&self, shared: &Shared, action: Action, plugin: &str, refused: &Refusal) -> Response {
        self.page(shared, refused.status(), &format!("{action} {plugin}: refused"), &refused.to_string(), "refused")
    }

    fn page(&self, shared: &Shared, status: StatusCode, heading: &str, message: &str, outcome: &str) -> Response {
        let page = AnswerPage {
            heading,
            lines: message.lines().collect(),
            outcome,
            back_url: &self.back.url,
            back_label: &self.back.label,
        };
        let mut context = Context::new();
        context.insert("answer", &page);
        match shared.context.render_page(TEMPLATE, &context) {
            Some(html) => html_response(status, html),
            None => Response::builder()
                .status(status)
                .content_type("text/plain; charset=utf-8")
                .body(format!("{heading}\n{message}\n")),
        }
    }
}

/// Wait, at most [`RESULT_WAIT`], until the dashboard's pages come from a snapshot taken after
/// `finished`: the plugin's status changed before the action's answer, so that snapshot
/// shows the result.
async fn shown_after(shared: &Shared, finished: SystemTime) {
    let mut pages = shared.pages.clone();
    let shown = pages.wait_for(|page| page.snapshot.taken_at >= finished);
    let _ = tokio::time::timeout(RESULT_WAIT, shown).await;
}

/// Did the browser submit a form itself (rather than a script asking)?
fn is_navigation(req: &Request) -> bool {
    let headers = req.headers();
    if let Some(mode) = headers.get("sec-fetch-mode") {
        return mode.as_bytes() == b"navigate";
    }
    let accept = headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()).unwrap_or("");
    accept.split(',').any(|item| item.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("text/html")))
}

impl BackTo {
    /// The page named by the request's `Referer`, if it is `plugin`'s page or the index;
    /// otherwise the index. Only the kind of page and the index's query are taken from it.
    fn from_referer(req: &Request, plugin: &str) -> BackTo {
        let referer = req.headers().get(header::REFERER).and_then(|r| r.to_str().ok()).unwrap_or("");
        // Browsers send it absolute: scheme://authority/path?query.
        let after_scheme = referer.split_once("://").map_or("", |(_, rest)| rest);
        let path_and_query = after_scheme.find('/').map_or("", |at| &after_scheme[at..]);
        let path_and_query = path_and_query.split('#').next().unwrap_or_default();
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        if path.strip_prefix("/plugin/") == Some(plugin) && plugin.bytes().all(is_unreserved) {
            return BackTo { url: path.to_owned(), label: plugin.to_owned() };
        }
        let keep_query = path == "/" && !query.is_empty() && query.bytes().all(is_query_byte);
        let url = if keep_query { format!("/?{query}") } else { "/".to_owned() };
        BackTo { url, label: "all plugins".to_owned() }
    }
}

/// A character that means itself anywhere in a URL (RFC 3986's "unreserved").
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// A character a URL's query may hold as it is (RFC 3986).
fn is_query_byte(b: u8) -> bool {
    is_unreserved(b) || b"!$&'()*+,;=:@/?%".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::super::request_with as request;
    use super::*;

    #[test]
    fn only_a_browsers_own_submission_is_a_navigation() {
        let navigates = |h: &[(&str, &str)]| is_navigation(&request(h));
        let browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(navigates(&[("sec-fetch-mode", "navigate"), ("accept", browser_accept)]), "a form submitted");
        assert!(navigates(&[("accept", browser_accept)]), "a browser without Sec-Fetch-Mode");
        assert!(!navigates(&[]), "curl, rosey reload");
        assert!(!navigates(&[("accept", "*/*"), ("content-type", "application/x-www-form-urlencoded")]), "curl -d ''");
        assert!(!navigates(&[("sec-fetch-mode", "cors"), ("accept", "application/json")]), "the page's fetch");
        assert!(!navigates(&[("sec-fetch-mode", "same-origin"), ("accept", "text/html")]), "the mode decides");
    }

    #[test]
    fn the_way_back_is_always_one_of_the_dashboards_pages() {
        let back = |referer: &str| {
            let BackTo { url, .. } = BackTo::from_referer(&request(&[("referer", referer)]), "dice-roller");
            url
        };
        assert_eq!(back("http://127.0.0.1:8080/plugin/dice-roller"), "/plugin/dice-roller");
        assert_eq!(back("http://h/plugin/dice-roller?x=1#top"), "/plugin/dice-roller", "the page, not its query");
        assert_eq!(back("http://h/plugin/8ball"), "/", "another plugin's page");
        assert_eq!(back("http://h/?state=down&view=table"), "/?state=down&view=table", "the same view");
        assert_eq!(back("http://h/"), "/");
        assert_eq!(back("http://h/?q=<script>"), "/", "a query that is not a URL's");
        assert_eq!(back("https://evil.example//evil.example/"), "/");
        assert_eq!(back("//evil.example/"), "/");
        assert_eq!(back("/plugin/dice-roller"), "/", "not an absolute URL");
        assert_eq!(back(""), "/");
        let odd = BackTo::from_referer(&request(&[("referer", "http://h/plugin/a%20b")]), "a b");
        assert_eq!(odd.url, "/", "a name that would need escaping never goes into the URL");
        assert_eq!(
            BackTo::from_referer(&request(&[]), "dice-roller"),
            BackTo { url: "/".into(), label: "all plugins".into() }
        );
    }
}
