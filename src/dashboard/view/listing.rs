//! Which cards the index page lists, in which order and how: the `?q=&state=&sort=&view=`
//! query. The server render honours it (so it works without JavaScript and can be bookmarked).
//! The live page (`static/dashboard.js`) orders its cards by what each card carries (its
//! ranks and the filters that show it, worked out here) and by the `/api/metrics` figures, so
//! the two cannot disagree and the first live update never reshuffles the page.

use serde::{Deserialize, Serialize};

use super::CardView;
use crate::dashboard::api::PluginSummary;
use crate::plugins::PluginState;

/// The index page's query. Every field has a default, so `/` is the default listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(default)]
pub struct PageQuery {
    /// Show only plugins whose name contains this (ignoring case).
    pub q: String,
    pub state: StateFilter,
    pub sort: SortKey,
    pub view: Layout,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateFilter {
    #[default]
    All,
    /// Anything that needs a look: not RUNNING, or RUNNING with a warning or stale figures.
    Problems,
    NotRunning,
    /// CRASHED or FAILED.
    Down,
    Running,
}

impl StateFilter {
    pub const ALL: [StateFilter; 5] =
        [StateFilter::All, StateFilter::Problems, StateFilter::NotRunning, StateFilter::Down, StateFilter::Running];

    /// Does the filter show a plugin in `state` whose card has `problem_rank`?
    pub fn shows(self, state: PluginState, problem_rank: u8) -> bool {
        match self {
            StateFilter::All => true,
            StateFilter::Problems => problem_rank < 3,
            StateFilter::NotRunning => state != PluginState::Running,
            StateFilter::Down => state.is_down(),
            StateFilter::Running => state == PluginState::Running,
        }
    }

    /// The filters that show a plugin in `state` whose card has `problem_rank`.
    pub fn showing(state: PluginState, problem_rank: u8) -> Vec<StateFilter> {
        StateFilter::ALL.into_iter().filter(|f| f.shows(state, problem_rank)).collect()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SortKey {
    /// Errors, then warnings and stale figures, then STARTING/STOPPED, then the healthy; by name
    /// within each.
    #[default]
    Problems,
    Name,
    State,
    Cpu,
    Memory,
    Events,
    Crashes,
    /// Slowest first by the 5-minute p95 response time; plugins without answers last.
    Response,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    #[default]
    Cards,
    /// One compact row per plugin.
    Table,
}

/// One choice of a `<select>` in the page's controls.
#[derive(Debug, Serialize)]
pub struct Choice {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

const STATE_CHOICES: [(StateFilter, &str, &str); 5] = [
    (StateFilter::All, "all", "all"),
    (StateFilter::Problems, "problems", "needing a look"),
    (StateFilter::NotRunning, "not-running", "not RUNNING"),
    (StateFilter::Down, "down", "CRASHED or FAILED"),
    (StateFilter::Running, "running", "RUNNING"),
];

const SORT_CHOICES: [(SortKey, &str, &str); 8] = [
    (SortKey::Problems, "problems", "problems first"),
    (SortKey::Name, "name", "name"),
    (SortKey::State, "state", "state"),
    (SortKey::Cpu, "cpu", "CPU"),
    (SortKey::Memory, "memory", "memory"),
    (SortKey::Events, "events", "events"),
    (SortKey::Crashes, "crashes", "crashes"),
    (SortKey::Response, "response", "response time"),
];

const LAYOUT_CHOICES: [(Layout, &str, &str); 2] =
    [(Layout::Cards, "cards", "cards"), (Layout::Table, "table", "table")];

fn choices<T: PartialEq + Copy>(all: &[(T, &'static str, &'static str)], current: T) -> Vec<Choice> {
    all.iter().map(|&(v, value, label)| Choice { value, label, selected: v == current }).collect()
}

/// The page's controls as the template shows them.
#[derive(Debug, Serialize)]
pub struct ListingControls {
    pub q: String,
    pub states: Vec<Choice>,
    pub sorts: Vec<Choice>,
    pub layouts: Vec<Choice>,
    pub table: bool,
}

impl PageQuery {
    pub fn controls(&self) -> ListingControls {
        ListingControls {
            q: self.q.clone(),
            states: choices(&STATE_CHOICES, self.state),
            sorts: choices(&SORT_CHOICES, self.sort),
            layouts: choices(&LAYOUT_CHOICES, self.view),
            table: self.view == Layout::Table,
        }
    }
}

/// What sorting and filtering look at for one plugin: its card and its `/api/metrics` entry
/// (the numbers the live page sorts by are the JSON's rounded ones, so both sides agree).
pub struct Row<'a> {
    pub card: &'a CardView,
    pub summary: &'a PluginSummary<'a>,
}

/// The positions (in name order) of the rows `query` shows, in the order it shows them.
pub fn listing(query: &PageQuery, rows: &[Row]) -> Vec<usize> {
    let needle = query.q.to_lowercase();
    let mut shown: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].card.filters.contains(&query.state) && rows[i].card.name.to_lowercase().contains(&needle))
        .collect();
    // Highest first for the figures; the position (name order) breaks every tie.
    let descending = |f: fn(&Row) -> f64| move |a: &usize, b: &usize| f(&rows[*b]).total_cmp(&f(&rows[*a]));
    match query.sort {
        SortKey::Name => {}
        SortKey::Problems => shown.sort_by_key(|&i| rows[i].card.problem_rank),
        SortKey::State => shown.sort_by_key(|&i| rows[i].card.state_rank),
        SortKey::Cpu => shown.sort_by(descending(|r| r.summary.cpu_percent)),
        SortKey::Memory => shown.sort_by(descending(|r| r.summary.memory_mb)),
        SortKey::Events => shown.sort_by(descending(|r| r.summary.event_count as f64)),
        SortKey::Crashes => shown.sort_by(descending(|r| r.summary.crash_count as f64)),
        // The JSON's figure, null (no answers) read as -1 as the live page reads it.
        SortKey::Response => shown.sort_by(descending(|r| r.summary.response_time.last_5m.p95_ms.unwrap_or(-1.0))),
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::api::ResponseJson;
    use crate::dashboard::view::Health;

    fn card(name: &str, state: PluginState, health: Health) -> CardView {
        let problem_rank = health.problem_rank(false);
        let filters = StateFilter::showing(state, problem_rank);
        CardView {
            name: name.to_owned(),
            state: Some(state),
            health,
            problem_rank,
            state_rank: state.rank(),
            filters,
            ..CardView::default()
        }
    }

    fn summary<'a>(card: &'a CardView, cpu: f64) -> PluginSummary<'a> {
        PluginSummary {
            name: &card.name,
            version: "",
            pid: None,
            state: card.state.map_or("", PluginState::as_str),
            uptime_seconds: 0.0,
            cpu_percent: cpu,
            memory_mb: 0.0,
            event_count: 0,
            crash_count: 0,
            response_time: ResponseJson::of(&Default::default()),
        }
    }

    fn names(cards: &[CardView], order: &[usize]) -> Vec<String> {
        order.iter().map(|&i| cards[i].name.clone()).collect()
    }

    #[test]
    fn problems_come_first_then_names_and_filters_combine() {
        let cards = vec![
            card("alpha", PluginState::Running, Health::Healthy),
            card("beta", PluginState::Crashed, Health::Error),
            card("Gamma", PluginState::Running, Health::Warning),
            card("delta", PluginState::Stopped, Health::Idle),
        ];
        let cpus = [5.0, 0.0, 90.0, 0.0];
        let summaries: Vec<PluginSummary> = cards.iter().zip(cpus).map(|(c, cpu)| summary(c, cpu)).collect();
        let rows: Vec<Row> = cards.iter().zip(&summaries).map(|(card, summary)| Row { card, summary }).collect();
        let order = |query: PageQuery| names(&cards, &listing(&query, &rows));

        assert_eq!(order(PageQuery::default()), ["beta", "Gamma", "delta", "alpha"]);
        assert_eq!(
            order(PageQuery { sort: SortKey::Name, ..PageQuery::default() }),
            ["alpha", "beta", "Gamma", "delta"]
        );
        assert_eq!(
            order(PageQuery { sort: SortKey::Cpu, ..PageQuery::default() }),
            ["Gamma", "alpha", "beta", "delta"]
        );
        assert_eq!(order(PageQuery { state: StateFilter::NotRunning, ..PageQuery::default() }), ["beta", "delta"]);
        assert_eq!(order(PageQuery { q: "GAM".to_owned(), ..PageQuery::default() }), ["Gamma"]);
        let running_with_a = PageQuery { q: "a".to_owned(), state: StateFilter::Running, ..PageQuery::default() };
        assert_eq!(order(running_with_a), ["Gamma", "alpha"]);
    }
}
