// Rosey Metrics Dashboard: live updates over Server-Sent Events.
//
// The server renders all markup (tera templates); this script only copies the snapshot's
// preformatted strings (`view` in each event) into the elements that name what they show:
//   data-field="key"       the element's text
//   data-show="key"        the element is hidden unless the value is true or a non-empty text
//   data-attr="name:key …" the element's attributes (class, href, points, …)
//   data-system="key"      a figure of the system overview
// A card or crash-log entry the page lacks is cloned from the server-rendered <template> that
// its list names in data-template. Values are written with textContent and setAttribute only:
// nothing from the server is ever parsed as HTML.
(() => {
  'use strict';

  const RETRY_MS = 5000;
  const body = document.body;
  const pagePlugin = body.dataset.plugin; // set on a plugin's detail page only

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

  // Copy `values` into the bound elements of `root`; keys that `values` lacks stay as they are.
  function fill(root, values) {
    for (const el of marked(root, 'data-field')) {
      if (el.dataset.field in values) setText(el, values[el.dataset.field]);
    }
    for (const el of marked(root, 'data-show')) {
      if (el.dataset.show in values) el.hidden = !values[el.dataset.show];
    }
    for (const el of marked(root, 'data-attr')) {
      for (const binding of el.dataset.attr.split(' ')) {
        const [name, key] = binding.split(':');
        const value = String(values[key] ?? '');
        if (key in values && el.getAttribute(name) !== value) el.setAttribute(name, value);
      }
    }
  }

  const byPosition = (_, index) => index;

  // Make the element children of `list` show `items`, in order: reuse the child with the same
  // key, clone the list's <template> for a missing one, remove the ones no item names. Lists
  // without a template (charts, aggregates) always have as many children as items.
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

  function show(view) {
    for (const el of document.querySelectorAll('[data-system]')) setText(el, view.system[el.dataset.system]);
    if (pagePlugin) {
      const card = view.cards.find((c) => c.name === pagePlugin);
      if (card) fill(document.querySelector('#detail .card'), card);
      const detail = view.detail;
      syncList(document.getElementById('charts'), detail.charts, byPosition, byPosition);
      syncList(document.getElementById('aggregates'), detail.aggregates, byPosition, byPosition);
      syncList(document.getElementById('crash-log'), detail.crash_log, byPosition, byPosition);
      document.getElementById('crash-empty').hidden = detail.crash_log.length > 0;
    } else {
      syncList(document.getElementById('cards'), view.cards, (el) => el.dataset.plugin, (card) => card.name);
      document.getElementById('no-plugins').hidden = view.cards.length > 0;
    }
  }

  const conn = document.getElementById('conn');
  function setConn(state, label) {
    body.dataset.conn = state;
    setText(conn, label);
  }

  let source = null;
  function connect() {
    source = new EventSource(pagePlugin ? `/events?plugin=${encodeURIComponent(pagePlugin)}` : '/events');
    source.addEventListener('open', () => setConn('live', 'live'));
    source.addEventListener('snapshot', (event) => {
      show(JSON.parse(event.data).view);
      setConn('live', 'live');
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
  connect();
})();
