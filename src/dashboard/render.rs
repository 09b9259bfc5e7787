//! Rendering once per snapshot: every response body is produced at most once per snapshot,
//! on first use, and shared (as reference-counted `Bytes`) by every request until the next one.
//! The live-update frames of `/events` are in [`live`].

mod live;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use serde::Serialize;
use tera::{Context, Tera};
use tracing::error;

use super::api::{ApiAudit, ApiChat, ApiMetrics, ApiPlugin, PluginSummary};
use super::prometheus;
use super::server::ClientCap;
use super::view::{self, CardPage, CardView, CrashView, DetailView, PageQuery, Row, SystemView};
use super::view::{ChatConnectionView, ConflictView, ReloadView};
use crate::metrics::Snapshot;
use crate::metrics::health::Thresholds;
use crate::sync::lock;
use live::LiveFrames;

/// The templates, compiled into the binary so it runs from any directory.
const TEMPLATES: [(&str, &str); 17] = [
    ("base.html", include_str!("../../templates/base.html")),
    ("dashboard.html", include_str!("../../templates/dashboard.html")),
    ("controls.html", include_str!("../../templates/controls.html")),
    ("overview.html", include_str!("../../templates/overview.html")),
    ("chat.html", include_str!("../../templates/chat.html")),
    ("card.html", include_str!("../../templates/card.html")),
    ("card_actions.html", include_str!("../../templates/card_actions.html")),
    ("plugin.html", include_str!("../../templates/plugin.html")),
    ("crash.html", include_str!("../../templates/crash.html")),
    ("reload.html", include_str!("../../templates/reload.html")),
    ("conflict.html", include_str!("../../templates/conflict.html")),
    ("not_found.html", include_str!("../../templates/not_found.html")),
    ("action_answer.html", include_str!("../../templates/action_answer.html")),
    ("timeline.html", include_str!("../../templates/timeline.html")),
    ("timeline_event.html", include_str!("../../templates/timeline_event.html")),
    ("timeline_recent.html", include_str!("../../templates/timeline_recent.html")),
    ("plugin_log.html", include_str!("../../templates/plugin_log.html")),
];

/// Index pages for queries other than the default, kept per snapshot: enough for the few
/// bookmarked views of a team; any further query is rendered per request.
const CACHED_QUERIES: usize = 8;

/// Parse the embedded templates (autoescaping is on: their names end in `.html`).
pub fn templates() -> Result<Tera, tera::Error> {
    let mut tera = Tera::new();
    tera.add_raw_templates(TEMPLATES)?;
    Ok(tera)
}

/// Who a page is rendered for. The action buttons are offered only to those who may act, so
/// the pages with buttons are rendered once per snapshot for each audience that asks for them:
/// the viewers' bytes are made only when a viewer (`dashboard.users`) loads a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Audience {
    /// An operator, or anyone when the dashboard has no login (then no page has buttons).
    #[default]
    Operator,
    /// A `viewer` user: the same pages without a single action form.
    Viewer,
}

/// One body per [`Audience`].
#[derive(Default)]
struct ByAudience<T> {
    operator: T,
    viewer: T,
}

impl<T> ByAudience<T> {
    fn get(&self, audience: Audience) -> &T {
        match audience {
            Audience::Operator => &self.operator,
            Audience::Viewer => &self.viewer,
        }
    }
}

/// What rendering needs besides the snapshot.
pub struct RenderContext {
    pub templates: Tera,
    /// Whether the pages offer the action buttons (to operators only, see [`Audience`]): only
    /// when the dashboard has an operator, as the action routes refuse every request otherwise.
    pub actions_enabled: bool,
    pub thresholds: Thresholds,
    /// Live SSE clients, for the `rosey_sse_clients` gauge.
    pub sse_clients: Arc<ClientCap>,
    /// Failed dashboard logins so far, for `rosey_auth_failures_total`.
    pub auth_failures: Arc<AtomicU64>,
    /// For the recent-events sections of the pages.
    pub timeline: crate::timeline::Timeline,
    /// Webhook deliveries so far, for `rosey_notifications_total`.
    pub notifications: crate::notify::Counts,
}

impl RenderContext {
    /// Whether the pages rendered for `audience` carry the action buttons.
    fn shows_actions(&self, audience: Audience) -> bool {
        self.actions_enabled && audience == Audience::Operator
    }

    /// The HTML page for `/plugin/{name}` when no such plugin exists (the name is escaped like
    /// all data). Rendered per request: it depends on the requested name and is an error path.
    pub fn not_found_html(&self, name: &str) -> Option<Bytes> {
        let mut context = Context::new();
        context.insert("name", name);
        self.render_page("not_found.html", &context)
    }

    /// A page from `template`; None if the template failed (logged).
    pub(super) fn render_page(&self, template: &str, context: &Context) -> Option<Bytes> {
        match self.templates.render(template, context) {
            Ok(html) => Some(Bytes::from(html)),
            Err(e) => {
                error!("rendering {template} failed: {e}");
                None
            }
        }
    }
}

/// An index page, plain and (on first use) compressed.
#[derive(Default)]
struct IndexPage {
    html: OnceLock<Option<Bytes>>,
    gzip: OnceLock<Option<Bytes>>,
}

/// One snapshot and the bodies rendered from it so far.
pub struct Rendered {
    pub snapshot: Arc<Snapshot>,
    context: Arc<RenderContext>,
    live: Arc<LiveFrames>,
    /// The previous snapshot's live trees, which this one's deltas are taken against.
    base: Option<Arc<LiveFrames>>,
    api_metrics: OnceLock<Bytes>,
    api_chat: OnceLock<Bytes>,
    api_audit: OnceLock<Bytes>,
    chat_html: OnceLock<Option<Bytes>>,
    prometheus: OnceLock<Bytes>,
    prometheus_gzip: OnceLock<Bytes>,
    index_page: ByAudience<IndexPage>,
    queried_pages: Mutex<HashMap<(Audience, PageQuery), Arc<IndexPage>>>,
    full_frame: OnceLock<Bytes>,
    delta_frame: OnceLock<Option<Bytes>>,
    plugins: Vec<PluginBodies>,
}

/// Per-plugin bodies, indexed like `snapshot.plugins`.
#[derive(Default)]
struct PluginBodies {
    json: OnceLock<Bytes>,
    html: ByAudience<OnceLock<Option<Bytes>>>,
    full_frame: OnceLock<Bytes>,
    delta_frame: OnceLock<Option<Bytes>>,
}

/// The two largest bodies (the page and the Prometheus text, hundreds of KB at 100 plugins) are
/// also kept compressed, once per snapshot, so that most of the cost of serving them (the
/// kernel copying bytes) shrinks tenfold for the clients that accept gzip. zlib's default level:
/// at 100 plugins it makes the page 42 % smaller than the fastest level for 2 ms more per
/// snapshot (`cargo bench --bench collector -- rendering`), and every request gains from it.
fn gzip(body: &[u8]) -> Bytes {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 8), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    Bytes::from(encoder.finish().unwrap_or_default())
}

fn json_bytes(value: &impl Serialize) -> Bytes {
    // Serialising these plain structs cannot fail (no maps with non-string keys, no I/O).
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

impl Rendered {
    /// The first snapshot's bodies: its live updates start with full frames.
    pub fn new(snapshot: Arc<Snapshot>, context: Arc<RenderContext>) -> Rendered {
        Rendered::with_base(snapshot, context, None)
    }

    /// The bodies of the snapshot after this one, whose deltas are taken against this one.
    pub fn next(&self, snapshot: Arc<Snapshot>) -> Rendered {
        Rendered::with_base(snapshot, self.context.clone(), Some(self.live.clone()))
    }

    fn with_base(snapshot: Arc<Snapshot>, context: Arc<RenderContext>, base: Option<Arc<LiveFrames>>) -> Rendered {
        let plugins = snapshot.plugins.iter().map(|_| PluginBodies::default()).collect();
        Rendered {
            live: Arc::new(LiveFrames::new(snapshot.clone(), context.thresholds)),
            base,
            snapshot,
            context,
            api_metrics: OnceLock::new(),
            api_chat: OnceLock::new(),
            api_audit: OnceLock::new(),
            chat_html: OnceLock::new(),
            prometheus: OnceLock::new(),
            prometheus_gzip: OnceLock::new(),
            index_page: ByAudience::default(),
            queried_pages: Mutex::new(HashMap::new()),
            full_frame: OnceLock::new(),
            delta_frame: OnceLock::new(),
            plugins,
        }
    }

    pub fn api_metrics(&self) -> Bytes {
        self.api_metrics.get_or_init(|| json_bytes(&ApiMetrics::of(&self.snapshot))).clone()
    }

    pub fn api_chat(&self) -> Bytes {
        self.api_chat.get_or_init(|| json_bytes(&ApiChat::of(&self.snapshot))).clone()
    }

    pub fn api_audit(&self) -> Bytes {
        self.api_audit.get_or_init(|| json_bytes(&ApiAudit::of(&self.snapshot))).clone()
    }

    /// The index page's chat panel alone (`/chat-panel`, which the page's script fetches after
    /// each live update); empty when no chat connection is configured.
    pub fn chat_html(&self) -> Option<Bytes> {
        self.chat_html
            .get_or_init(|| {
                let mut context = Context::new();
                context.insert("chat", &ChatConnectionView::all(&self.snapshot));
                self.context.render_page("chat.html", &context)
            })
            .clone()
    }

    pub fn prometheus(&self) -> Bytes {
        self.prometheus
            .get_or_init(|| {
                let clients = self.context.sse_clients.live();
                let auth_failures = self.context.auth_failures.load(Ordering::Relaxed);
                let mut text = prometheus::render(&self.snapshot, clients, auth_failures);
                prometheus::notifications(&mut text, &self.context.notifications);
                Bytes::from(text)
            })
            .clone()
    }

    /// `/metrics` gzip-compressed, for scrapers that accept it (Prometheus does).
    pub fn prometheus_gzip(&self) -> Bytes {
        self.prometheus_gzip.get_or_init(|| gzip(&self.prometheus())).clone()
    }

    /// The plugin's index in the snapshot, if it exists.
    pub fn plugin_index(&self, name: &str) -> Option<usize> {
        self.snapshot.plugin(name).map(|(i, _)| i)
    }

    pub fn api_plugin(&self, index: usize) -> Bytes {
        let p = &self.snapshot.plugins[index];
        self.plugins[index]
            .json
            .get_or_init(|| json_bytes(&ApiPlugin::of(&self.snapshot, p, self.context.thresholds)))
            .clone()
    }

    /// The index page as `query` lists it, for `audience`; None if the template failed (logged).
    pub fn index_html(&self, query: &PageQuery, audience: Audience) -> Option<Bytes> {
        self.with_index_page(query, audience, |page| {
            page.html.get_or_init(|| self.render_index(query, audience)).clone()
        })
    }

    /// The index page gzip-compressed, for browsers (every one accepts it).
    pub fn index_html_gzip(&self, query: &PageQuery, audience: Audience) -> Option<Bytes> {
        self.with_index_page(query, audience, |page| {
            let html = || page.html.get_or_init(|| self.render_index(query, audience));
            page.gzip.get_or_init(|| html().as_deref().map(gzip)).clone()
        })
    }

    fn with_index_page<T>(&self, query: &PageQuery, audience: Audience, body: impl FnOnce(&IndexPage) -> T) -> T {
        if *query == PageQuery::default() {
            return body(self.index_page.get(audience));
        }
        // A poisoned lock only means another request panicked mid-insert: the map is still sound.
        let mut pages = lock(&self.queried_pages);
        let key = (audience, query.clone());
        let page = match pages.get(&key) {
            Some(page) => page.clone(),
            None if pages.len() < CACHED_QUERIES => pages.entry(key).or_default().clone(),
            None => Arc::new(IndexPage::default()),
        };
        drop(pages);
        body(&page)
    }

    fn render_index(&self, query: &PageQuery, audience: Audience) -> Option<Bytes> {
        let s = &self.snapshot;
        let cards: Vec<CardView> = s.plugins.iter().map(|p| CardView::of(s, p, self.context.thresholds)).collect();
        let summaries: Vec<PluginSummary> = s.plugins.iter().map(PluginSummary::of).collect();
        let rows: Vec<Row> = cards.iter().zip(&summaries).map(|(card, summary)| Row { card, summary }).collect();
        let shown: Vec<CardPage> =
            view::listing(query, &rows).into_iter().map(|i| CardPage::of(cards[i].clone(), &s.plugins[i])).collect();
        let mut context = Context::new();
        context.insert("system", &SystemView::of(&s.system));
        context.insert("chat", &ChatConnectionView::all(s));
        context.insert("controls", &query.controls());
        context.insert("shown", &shown.len());
        context.insert("cards", &shown);
        context.insert("blank_card", &CardPage::default());
        context.insert("actions_enabled", &self.context.shows_actions(audience));
        context.insert("recent", &self.context.recent_events(None));
        self.context.render_page("dashboard.html", &context)
    }

    /// One plugin's page, for `audience`; None if the template failed (logged).
    pub fn plugin_html(&self, index: usize, audience: Audience) -> Option<Bytes> {
        let p = &self.snapshot.plugins[index];
        self.plugins[index]
            .html
            .get(audience)
            .get_or_init(|| {
                let card = CardView::of(&self.snapshot, p, self.context.thresholds);
                let detail = DetailView::of(p);
                let mut context = Context::new();
                context.insert("system", &SystemView::of(&self.snapshot.system));
                context.insert("card", &CardPage::of(card, p));
                context.insert("charts", &view::chart_pages(&detail, p));
                context.insert("detail", &detail);
                context.insert("blank_crash", &CrashView::default());
                context.insert("blank_reload", &ReloadView::default());
                context.insert("blank_conflict", &ConflictView::default());
                context.insert("actions_enabled", &self.context.shows_actions(audience));
                context.insert("recent", &self.context.recent_events(Some(&p.name)));
                self.context.render_page("plugin.html", &context)
            })
            .clone()
    }

    /// This snapshot's frame id (`id:` of its SSE frames).
    pub fn frame_id(&self) -> u64 {
        self.live.id
    }

    /// The frame id a client must have received last to be sent this snapshot's delta.
    pub fn base_frame_id(&self) -> Option<u64> {
        self.base.as_ref().map(|base| base.id)
    }

    /// The index page's full frame.
    pub fn full_frame(&self) -> Bytes {
        self.full_frame.get_or_init(|| self.live.index_full()).clone()
    }

    /// The index page's delta from the previous snapshot; None for the first snapshot, which
    /// has none to send: send the full frame instead.
    pub fn delta_frame(&self) -> Option<Bytes> {
        self.delta_frame.get_or_init(|| self.base.as_ref().map(|base| self.live.index_delta(base))).clone()
    }

    /// One plugin's detail page's full frame.
    pub fn plugin_full_frame(&self, index: usize) -> Bytes {
        self.plugins[index].full_frame.get_or_init(|| self.live.detail_full(index)).clone()
    }

    /// One plugin's detail delta from the previous snapshot, if there is one (as [`Self::delta_frame`]).
    pub fn plugin_delta_frame(&self, index: usize) -> Option<Bytes> {
        self.plugins[index]
            .delta_frame
            .get_or_init(|| self.base.as_ref().and_then(|base| self.live.detail_delta(index, base)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::dashboard::view::{ChartPage, ChartView, LabelValue};

    /// The keys that `html` binds for the script (`data-field`, `data-show`, `data-attr`,
    /// `data-system`).
    fn bound_keys(html: &str) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        for attr in ["data-field=\"", "data-show=\"", "data-attr=\"", "data-system=\""] {
            for (at, _) in html.match_indices(attr) {
                let value = html[at + attr.len()..].split('"').next().unwrap_or_default();
                let bindings = value.split_whitespace();
                keys.extend(bindings.map(|b| b.rsplit(':').next().unwrap_or(b).to_owned()));
            }
        }
        keys
    }

    fn field_names(view: &impl Serialize) -> BTreeSet<String> {
        let value = serde_json::to_value(view).expect("a view serialises");
        value.as_object().expect("a view is a JSON object").keys().cloned().collect()
    }

    /// The part of `html` from `start` to the next `end`.
    fn section<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
        let from = html.find(start).unwrap_or_else(|| panic!("no {start} in {html}"));
        &html[from..from + html[from..].find(end).expect("the section ends")]
    }

    fn assert_bound_to(what: &str, html: &str, view: &impl Serialize) {
        let (bound, fields) = (bound_keys(html), field_names(view));
        assert!(!bound.is_empty(), "{what} binds nothing: {html}");
        let missing: Vec<&String> = bound.difference(&fields).collect();
        assert!(missing.is_empty(), "{what} binds {missing:?}, which the view lacks ({fields:?})");
    }

    /// A viewer's page is rendered apart and holds no action form, not even in the template
    /// the script clones cards from; without a login nobody's page has one.
    #[test]
    fn only_an_operators_page_has_action_forms() {
        let rendered = |actions_enabled| {
            let context = Arc::new(RenderContext {
                templates: templates().expect("the templates parse"),
                actions_enabled,
                thresholds: Thresholds { cpu_percent: 80.0, memory_mb: 512.0, response_ms: 1000.0 },
                sse_clients: Arc::new(ClientCap::new(1)),
                auth_failures: Arc::default(),
                timeline: crate::timeline::Timeline::new(1),
                notifications: Arc::default(),
            });
            let snapshot = Snapshot::empty(1, std::time::Duration::from_secs(5), std::time::Duration::ZERO);
            Rendered::new(snapshot, context)
        };
        let forms = |page: Option<Bytes>| {
            String::from_utf8(page.expect("the page renders").to_vec()).expect("UTF-8").matches("data-action=").count()
        };
        let table = PageQuery { q: "dice".into(), ..PageQuery::default() };
        let guarded = rendered(true);
        for query in [PageQuery::default(), table] {
            assert_eq!(forms(guarded.index_html(&query, Audience::Operator)), 4, "{query:?}");
            assert_eq!(forms(guarded.index_html(&query, Audience::Viewer)), 0, "{query:?}");
            assert_eq!(forms(guarded.index_html(&query, Audience::Operator)), 4, "{query:?}: kept apart");
        }
        let open = rendered(false);
        assert_eq!(forms(open.index_html(&PageQuery::default(), Audience::Operator)), 0);
    }

    /// The live updates copy view fields into the elements that name them: a name the view
    /// lacks would leave that element frozen at its first value, silently.
    #[test]
    fn every_key_the_page_binds_is_a_field_of_its_view() {
        let tera = templates().expect("the templates parse");
        let chart = ChartView { key: "cpu", title: "CPU %", unit: "%", max_label: String::new() };
        let row = LabelValue { label: "Samples", value: String::new() };
        let detail = DetailView {
            charts: vec![chart.clone()],
            aggregates: vec![row.clone()],
            crash_log: Vec::new(),
            reload_log: Vec::new(),
            command_conflicts: Vec::new(),
        };
        let mut context = Context::new();
        context.insert("system", &SystemView::default());
        context.insert("card", &CardPage::default());
        let page = ChartPage {
            chart: chart.clone(),
            points: String::new(),
            value_labels: Vec::new(),
            time_labels: Vec::new(),
            markers: Vec::new(),
        };
        context.insert("charts", &[page]);
        context.insert("detail", &detail);
        context.insert("blank_crash", &CrashView::default());
        context.insert("blank_reload", &ReloadView::default());
        context.insert("blank_conflict", &ConflictView::default());
        context.insert("actions_enabled", &true);
        let recent = crate::dashboard::timeline::RecentEvents::of(&crate::timeline::Timeline::new(1), Some("p"));
        context.insert("recent", &recent);
        let page = tera.render("plugin.html", &context).expect("the plugin page renders");

        assert_bound_to(
            "the overview",
            section(&page, "<section class=\"overview\"", "</section>"),
            &SystemView::default(),
        );
        assert_bound_to("a card", section(&page, "<article", "</article>"), &CardView::default());
        assert_bound_to("a chart", section(&page, "<figure", "</figure>"), &chart);
        assert_bound_to("an aggregate row", section(&page, "<div class=\"aggregate\"", "</div>"), &row);
        assert_bound_to(
            "a crash entry",
            section(&page, "<template id=\"crash-template\"", "</template>"),
            &CrashView::default(),
        );
        assert_bound_to(
            "a reload-log entry",
            section(&page, "<template id=\"reload-template\"", "</template>"),
            &ReloadView::default(),
        );
        assert_bound_to(
            "a command conflict",
            section(&page, "<template id=\"conflict-template\"", "</template>"),
            &ConflictView::default(),
        );
    }
}
