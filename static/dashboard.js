// Rosey Metrics Dashboard — live updates over Server-Sent Events.
// No framework, no build step. Data is only ever written with textContent /
// setAttribute; nothing from the server is parsed as HTML.
(function () {
  'use strict';

  var HEALTH = ['healthy', 'warning', 'error', 'idle'];
  var POINTS_RE = /^[0-9eE.,+\-\s]*$/;
  var CONN_TEXT = { live: 'live', reconnecting: 'reconnecting\u2026', static: 'static' };
  var RETRY_MS = 5000;

  var body = document.body;
  if (!body) return;
  var pagePlugin = typeof body.dataset.plugin === 'string' ? body.dataset.plugin : '';
  var isDetail = pagePlugin !== '';

  // ---------- small helpers ----------

  function isObj(v) {
    return v !== null && typeof v === 'object' && !Array.isArray(v);
  }

  function str(v) {
    if (v === null || v === undefined) return '';
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    return '';
  }

  function setText(el, text) {
    if (el && el.textContent !== text) el.textContent = text;
  }

  function setAttr(el, name, value) {
    if (el && el.getAttribute(name) !== value) el.setAttribute(name, value);
  }

  function setHidden(el, hidden) {
    if (el && el.hidden !== hidden) el.hidden = hidden;
  }

  function replaceAll(parent, frag) {
    while (parent.firstChild) parent.removeChild(parent.firstChild);
    parent.appendChild(frag);
  }

  function safePoints(v) {
    var s = str(v);
    return POINTS_RE.test(s) ? s : '';
  }

  function safeHref(url, name) {
    var u = str(url);
    if (u.charAt(0) === '/' && u.charAt(1) !== '/' && u.charAt(1) !== '\\') return u;
    return '/plugin/' + encodeURIComponent(name);
  }

  function healthClass(card) {
    var h = str(card.health);
    if (HEALTH.indexOf(h) === -1) h = 'idle';
    return 'card health-' + h + (card.stale === true ? ' is-stale' : '');
  }

  // Elements inside root (and root itself) carrying the given attribute.
  function withAttr(root, attr) {
    var out = Array.prototype.slice.call(root.querySelectorAll('[' + attr + ']'));
    if (root.hasAttribute && root.hasAttribute(attr)) out.unshift(root);
    return out;
  }

  // ---------- connection indicator ----------

  var connState = '';
  function setConn(state) {
    if (state === connState) return;
    connState = state;
    body.dataset.conn = state;
    setText(document.getElementById('conn'), CONN_TEXT[state] || state);
  }

  // ---------- system overview ----------

  function updateSystem(system) {
    if (!isObj(system)) return;
    withAttr(document, 'data-system').forEach(function (el) {
      var key = el.getAttribute('data-system');
      if (Object.prototype.hasOwnProperty.call(system, key)) setText(el, str(system[key]));
    });
  }

  // ---------- cards ----------

  function updateCard(el, card) {
    setAttr(el, 'class', healthClass(card));
    setAttr(el, 'data-state', str(card.state));

    withAttr(el, 'data-field').forEach(function (f) {
      var key = f.getAttribute('data-field');
      if (Object.prototype.hasOwnProperty.call(card, key)) setText(f, str(card[key]));
    });
    withAttr(el, 'data-show').forEach(function (f) {
      var key = f.getAttribute('data-show');
      if (!Object.prototype.hasOwnProperty.call(card, key)) return;
      var v = card[key];
      setHidden(f, !(v === true || (typeof v === 'string' && v !== '')));
    });
    withAttr(el, 'data-spark').forEach(function (f) {
      var key = f.getAttribute('data-spark');
      if (Object.prototype.hasOwnProperty.call(card, key)) setAttr(f, 'points', safePoints(card[key]));
    });
  }

  function fallbackCard() {
    // Only used if the page has no <template id="card-template">.
    var art = document.createElement('article');
    var head = document.createElement('header');
    head.className = 'card-head';
    var h2 = document.createElement('h2');
    h2.className = 'card-name';
    var a = document.createElement('a');
    a.setAttribute('data-field', 'name');
    h2.appendChild(a);
    var badge = document.createElement('span');
    badge.className = 'badge';
    badge.setAttribute('data-field', 'badge');
    head.appendChild(h2);
    head.appendChild(badge);
    art.appendChild(head);
    var dl = document.createElement('dl');
    dl.className = 'metrics';
    [['CPU', 'cpu'], ['Memory', 'memory'], ['Events', 'events'], ['Uptime', 'uptime']].forEach(function (p) {
      var div = document.createElement('div');
      div.className = 'metric';
      var dt = document.createElement('dt');
      dt.textContent = p[0];
      var dd = document.createElement('dd');
      dd.setAttribute('data-field', p[1]);
      div.appendChild(dt);
      div.appendChild(dd);
      dl.appendChild(div);
    });
    art.appendChild(dl);
    return art;
  }

  function createCard(card) {
    var name = str(card.name);
    var tpl = document.getElementById('card-template');
    var el = null;
    if (tpl && tpl.content && tpl.content.firstElementChild) {
      el = tpl.content.firstElementChild.cloneNode(true);
    } else {
      el = fallbackCard();
    }
    el.setAttribute('data-plugin', name);
    el.setAttribute('id', 'plugin-' + name);
    var link = el.querySelector('a[data-field="name"]');
    if (link) link.setAttribute('href', safeHref(card.detail_url, name));
    updateCard(el, card);
    return el;
  }

  function cardElements(container) {
    var out = [];
    for (var i = 0; i < container.children.length; i++) {
      var c = container.children[i];
      if (c.hasAttribute('data-plugin')) out.push(c);
    }
    return out;
  }

  function updateIndexCards(cards) {
    var container = document.getElementById('cards');
    if (!container) return;

    var existing = new Map();
    cardElements(container).forEach(function (el) {
      existing.set(el.getAttribute('data-plugin'), el);
    });

    // Desired order is the server's order (already sorted by name).
    var desired = [];
    var seen = new Set();
    cards.forEach(function (card) {
      if (!isObj(card)) return;
      var name = str(card.name);
      if (name === '' || seen.has(name)) return;
      seen.add(name);
      var el = existing.get(name);
      if (el) updateCard(el, card);
      else el = createCard(card);
      desired.push(el);
    });

    existing.forEach(function (el, name) {
      if (!seen.has(name) && el.parentNode) el.parentNode.removeChild(el);
    });

    // Move only the nodes that are out of place (no flicker for stable lists).
    var current = cardElements(container);
    for (var i = 0; i < desired.length; i++) {
      if (current[i] !== desired[i]) {
        container.insertBefore(desired[i], current[i] || null);
        current = cardElements(container);
      }
    }

    setHidden(document.getElementById('no-plugins'), desired.length > 0);
  }

  function updateDetailCard(cards, detailCard) {
    var card = null;
    if (isObj(detailCard) && str(detailCard.name) === pagePlugin) card = detailCard;
    for (var i = 0; !card && i < cards.length; i++) {
      if (isObj(cards[i]) && str(cards[i].name) === pagePlugin) card = cards[i];
    }
    if (!card) return;
    withAttr(document, 'data-plugin').forEach(function (el) {
      if (el !== body && el.getAttribute('data-plugin') === pagePlugin) updateCard(el, card);
    });
  }

  // ---------- detail page ----------

  function updateCharts(charts) {
    if (!Array.isArray(charts)) return;
    var byKey = new Map();
    charts.forEach(function (c) {
      if (isObj(c)) byKey.set(str(c.key), c);
    });
    withAttr(document, 'data-chart').forEach(function (fig) {
      var chart = byKey.get(fig.getAttribute('data-chart'));
      if (!chart) return;
      var line = fig.querySelector('polyline');
      if (line) setAttr(line, 'points', safePoints(chart.points));
      setText(fig.querySelector('[data-chart-field="max_label"]'), str(chart.max_label));
      setText(fig.querySelector('.chart-title'), str(chart.title));
    });
  }

  var lastAggregates = null;
  function updateAggregates(aggs) {
    var dl = document.getElementById('aggregates');
    if (!dl || !Array.isArray(aggs)) return;
    var rows = aggs.filter(isObj).map(function (a) {
      return [str(a.label), str(a.value)];
    });
    var sig = JSON.stringify(rows);
    if (sig === lastAggregates) return;
    lastAggregates = sig;

    var items = dl.querySelectorAll(':scope > div');
    var sameShape = items.length === rows.length;
    for (var i = 0; sameShape && i < rows.length; i++) {
      var dt = items[i].querySelector('dt');
      if (!dt || !items[i].querySelector('dd') || dt.textContent !== rows[i][0]) sameShape = false;
    }
    if (sameShape) {
      rows.forEach(function (r, idx) {
        setText(items[idx].querySelector('dd'), r[1]);
      });
      return;
    }
    var frag = document.createDocumentFragment();
    rows.forEach(function (r) {
      var div = document.createElement('div');
      div.className = 'aggregate';
      var dt = document.createElement('dt');
      dt.textContent = r[0];
      var dd = document.createElement('dd');
      dd.textContent = r[1];
      div.appendChild(dt);
      div.appendChild(dd);
      frag.appendChild(div);
    });
    replaceAll(dl, frag);
  }

  var lastCrashes = null;

  // Signature of the server-rendered crash log, so the first snapshot does not
  // rebuild an identical list.
  function renderedCrashSig(list) {
    var entries = [];
    for (var i = 0; i < list.children.length; i++) {
      var li = list.children[i];
      var time = li.querySelector('time');
      var reason = li.querySelector('.crash-reason');
      var pre = li.querySelector('pre');
      entries.push({
        time: time ? time.textContent : '',
        reason: reason ? reason.textContent : '',
        stderr: pre ? pre.textContent.split('\n') : []
      });
    }
    return JSON.stringify(entries);
  }
  function updateCrashLog(log) {
    var list = document.getElementById('crash-log');
    if (!list || !Array.isArray(log)) return;
    var entries = log.filter(isObj).map(function (c) {
      return {
        time: str(c.time),
        reason: str(c.reason),
        stderr: Array.isArray(c.stderr_tail) ? c.stderr_tail.map(str) : []
      };
    });
    var sig = JSON.stringify(entries);
    if (lastCrashes === null) lastCrashes = renderedCrashSig(list);
    if (sig === lastCrashes) {
      setHidden(document.getElementById('crash-empty'), entries.length > 0);
      return;
    }
    lastCrashes = sig;

    var frag = document.createDocumentFragment();
    entries.forEach(function (c) {
      var li = document.createElement('li');
      li.className = 'crash';
      var head = document.createElement('p');
      head.className = 'crash-head';
      var time = document.createElement('time');
      time.setAttribute('datetime', c.time);
      time.textContent = c.time;
      var reason = document.createElement('span');
      reason.className = 'crash-reason';
      reason.textContent = c.reason;
      head.appendChild(time);
      head.appendChild(document.createTextNode(' '));
      head.appendChild(reason);
      li.appendChild(head);
      if (c.stderr.length) {
        var pre = document.createElement('pre');
        pre.className = 'stderr';
        pre.textContent = c.stderr.join('\n');
        li.appendChild(pre);
      }
      frag.appendChild(li);
    });
    replaceAll(list, frag);
    setHidden(document.getElementById('crash-empty'), entries.length > 0);
  }

  // ---------- snapshot handling ----------

  function applyView(view) {
    if (!isObj(view)) return;
    updateSystem(view.system);
    var cards = Array.isArray(view.cards) ? view.cards : [];
    if (isDetail) {
      var detail = isObj(view.detail) ? view.detail : null;
      updateDetailCard(cards, detail && detail.card);
      if (detail) {
        updateCharts(detail.charts);
        updateAggregates(detail.aggregates);
        updateCrashLog(detail.crash_log);
      }
    } else if (Array.isArray(view.cards)) {
      updateIndexCards(cards);
    }
  }

  function onSnapshot(ev) {
    var data;
    try {
      data = JSON.parse(ev.data);
    } catch (e) {
      return;
    }
    try {
      applyView(isObj(data) ? data.view : null);
    } catch (e) {
      // Never let a malformed snapshot break the page; the next one may be fine.
    }
    setConn('live');
  }

  // ---------- connection ----------

  if (typeof window.EventSource !== 'function') return;
  var url = isDetail ? '/events?plugin=' + encodeURIComponent(pagePlugin) : '/events';
  var source = null;
  var retryTimer = 0;

  function connect() {
    retryTimer = 0;
    try {
      source = new EventSource(url);
    } catch (e) {
      scheduleRetry();
      return;
    }
    source.addEventListener('open', function () {
      setConn('live');
    });
    source.addEventListener('snapshot', onSnapshot);
    source.addEventListener('error', function () {
      setConn('reconnecting');
      // EventSource retries by itself unless the connection is CLOSED
      // (e.g. an HTTP error status); then retry by hand.
      if (source && source.readyState === EventSource.CLOSED) {
        source.close();
        scheduleRetry();
      }
    });
  }

  function scheduleRetry() {
    setConn('reconnecting');
    if (!retryTimer) retryTimer = window.setTimeout(connect, RETRY_MS);
  }

  window.addEventListener('pagehide', function () {
    if (source) source.close();
  });
  window.addEventListener('pageshow', function (ev) {
    if (ev.persisted && source && source.readyState === EventSource.CLOSED) connect();
  });

  connect();
})();
