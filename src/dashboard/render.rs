//! Rendering once per snapshot: every response body is produced at most once per snapshot,
//! on first use, and shared (as reference-counted `Bytes`) by every request until the next one.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::Serialize;
use tera::{Context, Tera};
use tracing::error;

use super::api::{ApiMetrics, ApiPlugin};
use super::prometheus;
use super::sse::ClientCap;
use super::view::{CardView, CrashView, DetailView, SystemView, Thresholds};
use crate::metrics::Snapshot;

/// The templates, compiled into the binary so it runs from any directory.
const TEMPLATES: [(&str, &str); 7] = [
    ("base.html", include_str!("../../templates/base.html")),
    ("dashboard.html", include_str!("../../templates/dashboard.html")),
    ("overview.html", include_str!("../../templates/overview.html")),
    ("card.html", include_str!("../../templates/card.html")),
    ("plugin.html", include_str!("../../templates/plugin.html")),
    ("crash.html", include_str!("../../templates/crash.html")),
    ("not_found.html", include_str!("../../templates/not_found.html")),
];

/// Parse the embedded templates (autoescaping is on: their names end in `.html`).
pub fn templates() -> Result<Tera, tera::Error> {
    let mut tera = Tera::new();
    tera.add_raw_templates(TEMPLATES)?;
    Ok(tera)
}

/// What rendering needs besides the snapshot.
pub struct RenderContext {
    pub templates: Tera,
    pub thresholds: Thresholds,
    /// Live SSE clients, for the `rosey_sse_clients` gauge.
    pub sse_clients: Arc<ClientCap>,
}

impl RenderContext {
    /// The HTML page for `/plugin/{name}` when no such plugin exists (the name is escaped like
    /// all data). Rendered per request: it depends on the requested name and is an error path.
    pub fn not_found_html(&self, name: &str) -> Option<Bytes> {
        let mut context = Context::new();
        context.insert("name", name);
        self.render_page("not_found.html", &context)
    }

    /// A page from `template`; None if the template failed (logged).
    fn render_page(&self, template: &str, context: &Context) -> Option<Bytes> {
        match self.templates.render(template, context) {
            Ok(html) => Some(Bytes::from(html)),
            Err(e) => {
                error!("rendering {template} failed: {e}");
                None
            }
        }
    }
}

/// One snapshot and the bodies rendered from it so far.
pub struct Rendered {
    pub snapshot: Arc<Snapshot>,
    context: Arc<RenderContext>,
    api_metrics: OnceLock<Bytes>,
    prometheus: OnceLock<Bytes>,
    prometheus_gzip: OnceLock<Bytes>,
    index_html: OnceLock<Option<Bytes>>,
    index_html_gzip: OnceLock<Option<Bytes>>,
    sse_frame: OnceLock<Bytes>,
    plugins: Vec<PluginBodies>,
}

/// Per-plugin bodies, indexed like `snapshot.plugins`.
#[derive(Default)]
struct PluginBodies {
    json: OnceLock<Bytes>,
    html: OnceLock<Option<Bytes>>,
    sse_frame: OnceLock<Bytes>,
}

/// The SSE payload: the `/api/metrics` JSON plus what the page displays.
#[derive(Serialize)]
struct LivePayload<'a> {
    #[serde(flatten)]
    api: ApiMetrics<'a>,
    view: PageView,
}

#[derive(Serialize)]
struct PageView {
    system: SystemView,
    cards: Vec<CardView>,
    detail: Option<DetailView>,
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

/// An SSE frame: `id`, `event: snapshot` and the JSON on one `data:` line
/// (serde_json never emits a raw newline, so one line is always enough).
fn sse_frame(seq: u64, json: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(json.len() + 40);
    frame.extend_from_slice(format!("id: {seq}\nevent: snapshot\ndata: ").as_bytes());
    frame.extend_from_slice(json);
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

impl Rendered {
    pub fn new(snapshot: Arc<Snapshot>, context: Arc<RenderContext>) -> Rendered {
        let plugins = snapshot.plugins.iter().map(|_| PluginBodies::default()).collect();
        Rendered {
            snapshot,
            context,
            api_metrics: OnceLock::new(),
            prometheus: OnceLock::new(),
            prometheus_gzip: OnceLock::new(),
            index_html: OnceLock::new(),
            index_html_gzip: OnceLock::new(),
            sse_frame: OnceLock::new(),
            plugins,
        }
    }

    pub fn api_metrics(&self) -> Bytes {
        self.api_metrics.get_or_init(|| json_bytes(&ApiMetrics::of(&self.snapshot))).clone()
    }

    pub fn prometheus(&self) -> Bytes {
        self.prometheus
            .get_or_init(|| {
                let clients = self.context.sse_clients.live();
                Bytes::from(prometheus::render(&self.snapshot, clients))
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
        self.plugins[index].json.get_or_init(|| json_bytes(&ApiPlugin::of(&self.snapshot, p))).clone()
    }

    fn cards(&self) -> Vec<CardView> {
        self.snapshot.plugins.iter().map(|p| CardView::of(&self.snapshot, p, self.context.thresholds)).collect()
    }

    /// The index page; None if the template failed (logged).
    pub fn index_html(&self) -> Option<Bytes> {
        self.index_html
            .get_or_init(|| {
                let mut context = Context::new();
                context.insert("system", &SystemView::of(&self.snapshot.system));
                context.insert("cards", &self.cards());
                context.insert("blank_card", &CardView::default());
                self.context.render_page("dashboard.html", &context)
            })
            .clone()
    }

    /// The index page gzip-compressed, for browsers (every one accepts it).
    pub fn index_html_gzip(&self) -> Option<Bytes> {
        self.index_html_gzip.get_or_init(|| self.index_html().map(|page| gzip(&page))).clone()
    }

    pub fn plugin_html(&self, index: usize) -> Option<Bytes> {
        let p = &self.snapshot.plugins[index];
        self.plugins[index]
            .html
            .get_or_init(|| {
                let mut context = Context::new();
                context.insert("system", &SystemView::of(&self.snapshot.system));
                context.insert("card", &CardView::of(&self.snapshot, p, self.context.thresholds));
                context.insert("detail", &DetailView::of(p));
                context.insert("blank_crash", &CrashView::default());
                self.context.render_page("plugin.html", &context)
            })
            .clone()
    }

    /// The SSE frame for the index page (`detail` is null).
    pub fn sse_frame(&self) -> Bytes {
        self.sse_frame.get_or_init(|| self.live_frame(None)).clone()
    }

    /// The SSE frame for one plugin's detail page.
    pub fn plugin_sse_frame(&self, index: usize) -> Bytes {
        self.plugins[index].sse_frame.get_or_init(|| self.live_frame(Some(index))).clone()
    }

    fn live_frame(&self, detail: Option<usize>) -> Bytes {
        let payload = LivePayload {
            api: ApiMetrics::of(&self.snapshot),
            view: PageView {
                system: SystemView::of(&self.snapshot.system),
                cards: self.cards(),
                detail: detail.map(|i| DetailView::of(&self.snapshot.plugins[i])),
            },
        };
        sse_frame(self.snapshot.seq, &json_bytes(&payload))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::dashboard::view::{ChartView, LabelValue};

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

    /// The live updates copy view fields into the elements that name them: a name the view
    /// lacks would leave that element frozen at its first value, silently.
    #[test]
    fn every_key_the_page_binds_is_a_field_of_its_view() {
        let tera = templates().expect("the templates parse");
        let chart = ChartView { key: "cpu", title: "CPU %", max_label: String::new(), points: String::new() };
        let row = LabelValue { label: "Samples", value: String::new() };
        let detail = DetailView { charts: vec![chart.clone()], aggregates: vec![row.clone()], crash_log: Vec::new() };
        let mut context = Context::new();
        context.insert("system", &SystemView::default());
        context.insert("card", &CardView::default());
        context.insert("detail", &detail);
        context.insert("blank_crash", &CrashView::default());
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
    }
}
