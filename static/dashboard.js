// Rosey Metrics Dashboard: live updates over Server-Sent Events.
//
// The server renders all markup (tera templates) and formats every figure; this script keeps
// the latest frame (docs/api.md, `GET /events`): a full frame on connect, then deltas that
// patch it (after a config reload, first putting its per-plugin lists in the delta's order of
// `names`), and new chart points it appends to its own window of points. It copies the
// frame's preformatted strings (`view`) into the elements that name what they show:
//   data-field="key"       the element's text
//   data-show="key"        the element is hidden unless the value is true or a non-empty text
//   data-attr="name:key …" the element's attributes (class, href, …)
//   data-system="key"      a figure of the system overview
//   data-spark="cpu"       a sparkline it draws from the points (data-chart-line: a chart)
// A detail chart is redrawn whole from the points: its line on a scale that reads well, the
// labels of both axes (data-axis-value, data-axis-time, times in the reader's zone), a marker
// per crash and reload of the crash and reload logs, and a read-out of the time and value
// under the pointer or finger (data-chart-readout).
// A card or a crash-log, reload-log or conflict entry the page lacks is cloned from the
// server-rendered <template> that its list names in data-template. A card's action buttons
// (shown when actions are enabled) are sent with fetch and their answer shown on the card. The index page's filter, state, sort and view controls
// live in the URL and order the cards by what the server sent for each (its ranks, the
// filters it passes, the JSON's figures), so the live page and the server's render agree. Values are written with
// textContent and setAttribute only: nothing from the server is ever parsed as HTML.
(() => {
  'use strict';

  const RETRY_MS = 5000;
  const SPARK_SAMPLES = 60;
  const SPARK_SERIES = { cpu: 0, memory: 1 }; // positions in a card's point
  const CHART_SERIES = { cpu: 1, memory: 2, events: 3, response: 4 }; // in a chart point; 0 is its time
  const SVG = 'http://www.w3.org/2000/svg';
  const body = document.body;
  const pagePlugin = body.dataset.plugin; // set on a plugin's detail page only
  let frame = null; // the latest full frame, with every delta since applied
  let lastId = null;

  function setText(el, value) {
    const text = String(value ?? '');
    if (el.textContent !== text) el.textContent = text;
  }

  // `root` itself and the elements inside it that carry `attr`.
  function marked(root, attr) {
    const found = Array.from(root.querySelectorAll(`[${attr}]`));
    if (root.hasAttribute(attr)) found.unshift(root);
    return found;
  }

  // The bound elements of `root`, looked up once per element (a thousand cards take a delta).
  const boundCache = new WeakMap();
  function bound(root) {
    let found = boundCache.get(root);
    if (!found) {
      found = {};
      for (const kind of ['field', 'show', 'attr', 'spark']) found[kind] = marked(root, `data-${kind}`);
      boundCache.set(root, found);
    }
    return found;
  }

  // Copy `values` into the bound elements of `root`; keys that `values` lacks stay as they are.
  function fill(root, values) {
    const els = bound(root);
    for (const el of els.field) {
      if (el.dataset.field in values) setText(el, values[el.dataset.field]);
    }
    for (const el of els.show) {
      if (el.dataset.show in values) el.hidden = !values[el.dataset.show];
    }
    for (const el of els.attr) {
      for (const binding of el.dataset.attr.split(' ')) {
        const [name, key] = binding.split(':');
        const value = String(values[key] ?? '');
        if (key in values && el.getAttribute(name) !== value) el.setAttribute(name, value);
      }
    }
  }

  // The points of a polyline for `values` scaled into a `width` x `height` box whose top is at
  // least `floor`, as the server's `view::polyline` writes them (tests/fixtures/drawing.json
  // holds both to it).
  function polylinePoints(values, width, height, floor = 0) {
    const max = values.reduce((m, v) => Math.max(m, v), floor);
    const step = values.length > 1 ? width / (values.length - 1) : 0;
    const y = (v) => (max > 0 ? height - 1 - (v / max) * (height - 2) : height - 1);
    return values.map((v, i) => `${Math.round(i * step)},${Math.round(y(v))}`).join(' ');
  }

  // Draw `values` as the points of the polyline `line`, scaled into its <svg>'s box (the
  // viewBox the server's template sets).
  function draw(line, values) {
    const { width, height } = line.ownerSVGElement.viewBox.baseVal;
    line.setAttribute('points', polylinePoints(values, width, height));
  }

  function drawSparks(root, points) {
    const recent = points.slice(-SPARK_SAMPLES);
    for (const el of bound(root).spark) draw(el, recent.map((p) => p[SPARK_SERIES[el.dataset.spark]]));
  }

  // The top of a value scale, as the server's `chart::nice_ceiling` (the drawing fixture).
  function niceCeiling(max) {
    if (!(max > 0)) return 1;
    const power = 10 ** Math.floor(Math.log10(max));
    const fraction = max / power;
    const nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10;
    return nice * power;
  }

  // A value on an axis or in the read-out, as the server's `chart::axis_value`.
  function axisValue(v) {
    const rounded = Math.round(v * 100) / 100;
    return String(rounded === 0 ? 0 : rounded);
  }

  const clock = (seconds) =>
    new Date(seconds * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });

  // The crashes and reloads of the detail frame, as [time in seconds, kind, title].
  function markerList(detail) {
    const crashes = detail.crash_log.map((c) => [Date.parse(c.time) / 1000, 'crash', `crash: ${c.reason}`]);
    const reloads = detail.reload_log.map((r) => [Date.parse(r.at) / 1000, 'reload', `reload: ${r.outcome}`]);
    return crashes.concat(reloads).filter((m) => !Number.isNaN(m[0]));
  }

  // A detail chart from the points: line, value scale, time axis, markers.
  function drawChart(figure, points, markers) {
    const series = points.map((p) => p[CHART_SERIES[figure.dataset.chart]]);
    const unit = figure.dataset.unit || '';
    const top = niceCeiling(series.reduce((m, v) => Math.max(m, v), 0));
    const line = figure.querySelector('[data-chart-line]');
    const { width, height } = line.ownerSVGElement.viewBox.baseVal;
    line.setAttribute('points', polylinePoints(series, width, height, top));
    figure.querySelectorAll('[data-axis-value]').forEach((el, i) => setText(el, `${axisValue(top - (top / 2) * i)}${unit}`));
    const times = figure.querySelectorAll('[data-axis-time]');
    const [start, end] = points.length ? [points[0][0], points[points.length - 1][0]] : [0, 0];
    times.forEach((el, i) => setText(el, points.length ? clock(start + ((end - start) / 2) * i) : ''));
    const group = figure.querySelector('[data-chart-markers]');
    const lines = [];
    for (const [at, kind, title] of points.length ? markers : []) {
      if (at < start) continue;
      const x = Math.round(end > start ? Math.min(1, (at - start) / (end - start)) * width : width);
      const mark = document.createElementNS(SVG, 'line');
      for (const [name, value] of [['class', `marker marker-${kind}`], ['x1', x], ['x2', x], ['y1', 0], ['y2', height]]) {
        mark.setAttribute(name, value);
      }
      mark.dataset.marker = kind;
      const tip = document.createElementNS(SVG, 'title');
      tip.textContent = `${title} (${clock(at)})`;
      mark.append(tip);
      lines.push(mark);
    }
    group.replaceChildren(...lines);
    figure.chartSeries = series;
  }

  // The read-out under the pointer or finger: the nearest point's time and value, a guide
  // line through it.
  function readOut(figure, event) {
    const svg = figure.querySelector('svg');
    const series = figure.chartSeries || [];
    const output = figure.querySelector('[data-chart-readout]');
    const guide = figure.querySelector('[data-chart-guide]');
    if (!frame || series.length === 0) return;
    const box = svg.getBoundingClientRect();
    const at = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
    const i = Math.round(at * (series.length - 1));
    const x = series.length > 1 ? (i / (series.length - 1)) * svg.viewBox.baseVal.width : svg.viewBox.baseVal.width;
    guide.setAttribute('x1', x);
    guide.setAttribute('x2', x);
    guide.setAttribute('visibility', 'visible');
    output.hidden = false;
    setText(output, `${clock(frame.points[i][0])} · ${axisValue(series[i])}${figure.dataset.unit || ''}`);
  }

  function endReadOut(figure) {
    figure.querySelector('[data-chart-guide]').setAttribute('visibility', 'hidden');
    figure.querySelector('[data-chart-readout]').hidden = true;
  }

  for (const figure of document.querySelectorAll('#charts [data-chart]')) {
    const svg = figure.querySelector('svg');
    svg.addEventListener('pointermove', (event) => readOut(figure, event));
    svg.addEventListener('pointerdown', (event) => readOut(figure, event));
    svg.addEventListener('pointerleave', () => endReadOut(figure));
  }

  // A delta's `changes` into `target`: an object patches (an array by position), else replaces.
  function patch(target, changes) {
    for (const [key, value] of Object.entries(changes)) {
      const inner = target[key];
      const isPatch = value !== null && typeof value === 'object' && !Array.isArray(value);
      if (isPatch && inner !== null && typeof inner === 'object') patch(inner, value);
      else target[key] = value;
    }
  }

  function keepWindow(points, window) {
    if (points.length > window) points.splice(0, points.length - window);
  }

  // A delta's `names` (plugins were added or removed): the per-plugin lists in that order, a
  // kept plugin's items taken from its old position, a new one's left empty for `changes`
  // and `points` to fill.
  function reorder(names) {
    const old = new Map(frame.plugins.map((p, i) => [p.name, i]));
    const pick = (items, empty) => names.map((name) => (old.has(name) ? items[old.get(name)] : empty()));
    frame.plugins = pick(frame.plugins, () => null);
    frame.view.cards = pick(frame.view.cards, () => null);
    frame.points = pick(frame.points, () => []);
  }

  // An uptime grown by a delta's `uptime_step`, to a tenth of a second as the server's
  // `diff::stepped` expects (tests/fixtures/drawing.json holds both to it).
  function steppedUptime(uptime, step) {
    return Math.round((uptime + step) * 10) / 10;
  }

  function applyDelta(delta) {
    if (delta.uptime_step !== undefined) {
      for (const p of frame.plugins) {
        if (p.uptime_seconds > 0) p.uptime_seconds = steppedUptime(p.uptime_seconds, delta.uptime_step);
      }
    }
    if (delta.names) reorder(delta.names);
    patch(frame, delta.changes);
    frame.timestamp = delta.timestamp;
    frame.window = delta.window;
    if (pagePlugin) {
      frame.points.push(...delta.points);
      keepWindow(frame.points, delta.window);
    } else {
      for (const [i, points] of Object.entries(delta.points)) {
        frame.points[i].push(...points);
        keepWindow(frame.points[i], delta.window);
      }
    }
  }

  function showSystem() {
    for (const el of document.querySelectorAll('[data-system]')) setText(el, frame.view.system[el.dataset.system]);
  }

  // ---- a plugin's page --------------------------------------------------------------------

  const byPosition = (_, index) => index;

  // Make the element children of `list` show `items`, in order: reuse the child with the same
  // key, clone the list's <template> for a missing one, remove the ones no item names.
  function syncList(list, items, keyOfChild, keyOfItem) {
    const children = new Map(Array.from(list.children, (el, i) => [keyOfChild(el, i), el]));
    items.forEach((item, i) => {
      const key = keyOfItem(item, i);
      let el = children.get(key);
      children.delete(key);
      if (!el) el = document.getElementById(list.dataset.template).content.firstElementChild.cloneNode(true);
      fill(el, item);
      if (list.children[i] !== el) list.insertBefore(el, list.children[i] || null);
    });
    for (const el of children.values()) el.remove();
  }

  function showDetail() {
    const card = document.querySelector('#detail .card');
    fill(card, frame.view.card);
    drawSparks(card, frame.points.map((p) => [p[CHART_SERIES.cpu], p[CHART_SERIES.memory]]));
    const detail = frame.view.detail;
    const charts = document.getElementById('charts');
    syncList(charts, detail.charts, byPosition, byPosition);
    const markers = markerList(detail);
    for (const figure of charts.children) drawChart(figure, frame.points, markers);
    syncList(document.getElementById('aggregates'), detail.aggregates, byPosition, byPosition);
    syncList(document.getElementById('crash-log'), detail.crash_log, byPosition, byPosition);
    document.getElementById('crash-empty').hidden = detail.crash_log.length > 0;
    syncList(document.getElementById('reload-log'), detail.reload_log, byPosition, byPosition);
    document.getElementById('reload-empty').hidden = detail.reload_log.length > 0;
    syncList(document.getElementById('conflicts'), detail.command_conflicts, byPosition, byPosition);
    document.getElementById('conflict-empty').hidden = detail.command_conflicts.length > 0;
  }

  // ---- the index page: cards, filter, sort, view ------------------------------------------

  const list = document.getElementById('cards');
  const controls = document.getElementById('controls');
  const cardsByName = new Map(); // every card element made so far, shown or not
  let positions = new Map(); // plugin name -> its position in the frame

  // With a thousand cards only a screenful is visible: a delta updates the cards on screen
  // (and near it) and marks the others, which are brought up to date when they scroll in.
  const onScreen = new Set();
  const outdated = new Set();
  function refresh(el) {
    const i = positions.get(el.dataset.plugin);
    if (i === undefined) return;
    outdated.delete(el);
    fill(el, frame.view.cards[i]);
    drawSparks(el, frame.points[i]);
  }
  const watcher = new IntersectionObserver(
    (entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) {
          onScreen.delete(entry.target);
          continue;
        }
        onScreen.add(entry.target);
        if (outdated.has(entry.target)) refresh(entry.target);
      }
    },
    { rootMargin: '50% 0px' },
  );
  function adopt(el) {
    cardsByName.set(el.dataset.plugin, el);
    watcher.observe(el);
  }
  if (list) for (const el of list.children) adopt(el);

  // The name order is the frame's order; every sort keeps it among equals (sort is stable).
  const ascending = (key) => (i, j) => frame.view.cards[i][key] - frame.view.cards[j][key];
  const SORTS = {
    problems: ascending('problem_rank'),
    name: () => 0,
    state: ascending('state_rank'),
    cpu: (i, j) => frame.plugins[j].cpu_percent - frame.plugins[i].cpu_percent,
    memory: (i, j) => frame.plugins[j].memory_mb - frame.plugins[i].memory_mb,
    events: (i, j) => frame.plugins[j].event_count - frame.plugins[i].event_count,
    crashes: (i, j) => frame.plugins[j].crash_count - frame.plugins[i].crash_count,
    // null (no answers in the 5 minutes) as -1, as `listing.rs` reads it.
    response: (i, j) => (frame.plugins[j].response_time['5m'].p95_ms ?? -1) - (frame.plugins[i].response_time['5m'].p95_ms ?? -1),
  };
  const DEFAULTS = { q: '', state: 'all', sort: 'problems', view: 'cards' };

  function choices() {
    const chosen = {};
    for (const key of Object.keys(DEFAULTS)) chosen[key] = controls.elements[key].value;
    return chosen;
  }

  // The positions (in name order) of the cards the controls show, in the order they show them.
  function listing() {
    const { q, state, sort } = choices();
    const needle = q.toLowerCase();
    const order = [];
    frame.view.cards.forEach((c, i) => {
      if (c.filters.includes(state) && c.name.toLowerCase().includes(needle)) order.push(i);
    });
    return order.sort(SORTS[sort] || SORTS.problems);
  }

  function cardElement(i) {
    const name = frame.view.cards[i].name;
    let el = cardsByName.get(name);
    if (!el) {
      el = document.getElementById(list.dataset.template).content.firstElementChild.cloneNode(true);
      el.dataset.plugin = name;
      for (const form of el.querySelectorAll('form[data-action]')) form.action = actionUrl(name, form.dataset.action);
      adopt(el);
    }
    return el;
  }

  // Put the shown cards in order; a card coming back into view gets its current figures.
  function arrange() {
    const order = listing();
    order.forEach((i, at) => {
      const el = cardElement(i);
      if (!el.isConnected) refresh(el);
      if (list.children[at] !== el) list.insertBefore(el, list.children[at] || null);
    });
    while (list.children.length > order.length) list.lastElementChild.remove();
    const total = frame.view.cards.length;
    setText(document.getElementById('shown'), order.length);
    document.getElementById('no-plugins').hidden = total > 0;
    document.getElementById('no-match').hidden = order.length > 0 || total === 0;
  }

  // Cards at these positions changed: update those on screen, mark the others.
  function showCards(changed) {
    showSystem();
    for (const i of changed) {
      const el = cardsByName.get(frame.view.cards[i].name);
      if (!el) continue;
      if (onScreen.has(el)) refresh(el);
      else outdated.add(el);
    }
    arrange();
  }

  function showLayout() {
    const table = controls.elements.view.value === 'table';
    list.classList.toggle('layout-table', table);
    document.getElementById('table-head').hidden = !table;
  }

  // The controls live in the URL (bookmarks, wall screens), defaults left out.
  function rememberChoices() {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(choices())) if (value !== DEFAULTS[key]) params.set(key, value);
    const query = params.toString();
    history.replaceState(null, '', query ? `?${query}` : location.pathname);
  }

  if (controls) {
    controls.querySelector('.control-apply').hidden = true; // the live page applies at once
    controls.addEventListener('submit', (event) => event.preventDefault());
    const onChange = () => {
      rememberChoices();
      showLayout();
      if (frame) arrange();
    };
    controls.addEventListener('input', onChange);
    controls.addEventListener('change', onChange);
  }

  // ---- actions: reload, restart, stop, start -----------------------------------------------

  // The buttons are forms that POST without JavaScript too (then the server sends the browser
  // back to the page, or shows why the action was refused). Here they are sent with fetch so
  // the page stays; the answer's summary is shown on the card, while the activity and the
  // reload's outcome arrive with the live updates.
  const actionUrl = (name, action) => `/api/plugin/${encodeURIComponent(name)}/${action}`;

  async function act(form) {
    const card = form.closest('.card');
    const result = card.querySelector('.action-result');
    const buttons = card.querySelectorAll('.card-actions button');
    for (const button of buttons) button.disabled = true;
    result.hidden = false;
    result.dataset.outcome = 'pending';
    setText(result, `${form.dataset.action}: sent, waiting for the answer\u2026`);
    try {
      const response = await fetch(form.action, { method: 'POST', headers: { Accept: 'application/json' } });
      const answer = await response.json().catch(() => ({}));
      result.dataset.outcome = response.ok ? answer.outcome : 'refused';
      setText(result, response.ok ? answer.summary : answer.error || `${form.dataset.action}: HTTP ${response.status}`);
    } catch (error) {
      result.dataset.outcome = 'refused';
      setText(result, `${form.dataset.action}: not sent (${error.message})`);
    } finally {
      for (const button of buttons) button.disabled = false;
      const confirmation = form.closest('details');
      if (confirmation) confirmation.open = false;
    }
  }

  document.addEventListener('submit', (event) => {
    const form = event.target;
    if (!form.matches('form[data-action]')) return;
    event.preventDefault();
    act(form);
  });

  // ---- frames ------------------------------------------------------------------------------

  // Time spent on the main thread per frame, for the Performance API (the latest of each kind).
  function measured(name, work) {
    const start = performance.now();
    work();
    performance.clearMeasures(name);
    performance.measure(name, { start });
  }

  // The frame's plugins are new (a full frame, or a delta with `names`): note their positions
  // and forget the cards of plugins that are gone (arrange() takes them off the page).
  function followPlugins() {
    positions = new Map(frame.view.cards.map((c, i) => [c.name, i]));
    for (const [name, el] of cardsByName) {
      if (positions.has(name)) continue;
      cardsByName.delete(name);
      watcher.unobserve(el);
      onScreen.delete(el);
      outdated.delete(el);
    }
  }

  function onFull(data) {
    measured('rosey:full', () => {
      frame = data;
      if (pagePlugin) {
        showSystem();
        showDetail();
        return;
      }
      followPlugins();
      showCards(frame.view.cards.map((_, i) => i));
    });
  }

  function onDelta(delta) {
    measured('rosey:delta', () => {
      applyDelta(delta);
      if (pagePlugin) {
        showSystem();
        showDetail();
        return;
      }
      if (delta.names) followPlugins();
      const changed = new Set([...Object.keys(delta.changes.view?.cards ?? {}), ...Object.keys(delta.points)]);
      showCards(Array.from(changed, Number));
    });
  }

  const conn = document.getElementById('conn');
  function setConn(state, label) {
    body.dataset.conn = state;
    setText(conn, label);
  }

  // The chat panel is not part of the frames: after each one, the panel as the server rendered
  // it for that snapshot (its text already escaped there) replaces the one on the page.
  let chatFetching = false;
  function refreshChat() {
    const chat = document.getElementById('chat');
    if (pagePlugin || chat === null || chatFetching) return;
    chatFetching = true;
    fetch('/chat-panel', { credentials: 'same-origin' })
      .then((response) => (response.ok ? response.text() : null))
      .then((html) => {
        const current = document.getElementById('chat');
        if (html !== null && current !== null) current.outerHTML = html.trim() || '<section id="chat" hidden></section>';
      })
      .catch(() => {})
      .finally(() => { chatFetching = false; });
  }

  let source = null;
  function connect() {
    source = new EventSource(pagePlugin ? `/events?plugin=${encodeURIComponent(pagePlugin)}` : '/events');
    source.addEventListener('open', () => setConn('live', 'live'));
    source.addEventListener('snapshot', (event) => {
      onFull(JSON.parse(event.data));
      lastId = event.lastEventId;
      setConn('live', 'live');
      refreshChat();
    });
    source.addEventListener('delta', (event) => {
      const delta = JSON.parse(event.data);
      if (frame === null || String(delta.base) !== lastId) {
        // Not on the frame this delta follows: start over with a new connection (a full frame).
        source.close();
        connect();
        return;
      }
      onDelta(delta);
      lastId = event.lastEventId;
      setConn('live', 'live');
      refreshChat();
    });
    source.addEventListener('error', () => {
      setConn('reconnecting', 'reconnecting\u2026');
      // EventSource retries by itself, except after an HTTP error status (503 once the bot's
      // client cap is reached, 404 for a plugin that is gone): then it closes for good.
      if (source.readyState === EventSource.CLOSED) window.setTimeout(connect, RETRY_MS);
    });
  }

  // Closing on the way out lets the browser keep the page in its back/forward cache; a page
  // restored from there opens a new connection.
  window.addEventListener('pagehide', () => source.close());
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) connect();
  });
  if (controls) showLayout();
  connect();
})();
