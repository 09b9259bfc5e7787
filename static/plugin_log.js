// Rosey: a plugin page's live log panel.
//
// The server renders the newest lines into #log-lines (so the page shows them without this
// script); this script follows `GET /api/plugin/{name}/logs/live` from the last line it has
// (`data-next`) and appends each `lines` frame (docs/api.md). Follow scrolls to each new line;
// Pause keeps new lines aside until Follow again. The filter and the stream choice hide the
// lines that do not match. A line is written with textContent only, after the same clean-up as
// the server's (src/dashboard/logs.rs, `shown`): colour and cursor codes removed, characters
// that would reorder or hide text shown as [U+XXXX]. Nothing from the plugin is parsed as HTML.
(() => {
  'use strict';

  const RETRY_MS = 3000;
  const MAX_LINES = 2000; // kept in the page; the oldest go first

  const panel = document.getElementById('log-panel');
  const list = document.getElementById('log-lines');
  if (!panel || !list || typeof EventSource === 'undefined') return;
  const plugin = panel.dataset.pluginLog;
  const empty = document.getElementById('log-empty');
  const follow = document.getElementById('log-follow');
  const filter = document.getElementById('log-filter');
  const streamChoice = document.getElementById('log-stream');
  const status = document.getElementById('log-status');
  document.getElementById('log-controls').hidden = false;

  let next = Number(list.dataset.next) || 0;
  let paused = false;
  let held = []; // frames' lines that came while paused
  let source = null;

  // ESC sequences (CSI, OSC, two-character) removed; other controls and bidi controls shown.
  // eslint-disable-next-line no-control-regex
  const ESCAPES = /\u001b(?:\[[\u0020-\u003f]*[\u0040-\u007e]?|\][^\u0007\u001b]*(?:\u0007|\u001b\\)?|.?)/gu;
  // eslint-disable-next-line no-control-regex
  const HIDDEN = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;
  function shown(text) {
    return text
      .replace(ESCAPES, '')
      .replace(HIDDEN, (c) => `[U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}]`);
  }

  function matches(li) {
    if (li.classList.contains('log-dropped')) return true;
    const stream = streamChoice.value;
    if (stream && li.dataset.stream !== stream) return false;
    const needle = filter.value.trim().toLowerCase();
    return !needle || li.textContent.toLowerCase().includes(needle);
  }

  function applyFilter(li) {
    li.hidden = !matches(li);
  }

  function span(cls, text) {
    const el = document.createElement('span');
    el.className = cls;
    el.textContent = text;
    return el;
  }

  function lineItem(line) {
    const li = document.createElement('li');
    li.className = `log-line log-${line.stream === 'stdout' ? 'stdout' : 'stderr'}`;
    li.dataset.seq = String(line.seq);
    li.dataset.stream = line.stream;
    const time = document.createElement('time');
    time.dateTime = line.time;
    time.textContent = line.time;
    const pid = span('log-pid', String(line.pid));
    pid.title = `version ${line.version ?? ''}`;
    li.append(time, ' ', span('log-stream', line.stream), ' ', pid, ' ', span('log-text', shown(line.text)));
    return li;
  }

  function droppedItem(count) {
    const li = document.createElement('li');
    li.className = 'log-dropped';
    li.textContent = `${count} lines dropped`;
    return li;
  }

  function append(lines) {
    const fresh = lines.filter((line) => line.seq > next);
    if (fresh.length === 0) return;
    for (const line of fresh) {
      if (line.dropped_before > 0) list.append(droppedItem(line.dropped_before));
      const li = lineItem(line);
      applyFilter(li);
      list.append(li);
    }
    next = fresh[fresh.length - 1].seq;
    while (list.children.length > MAX_LINES) list.firstElementChild.remove();
    empty.hidden = list.children.length > 0;
    list.scrollTop = list.scrollHeight; // following: the newest line in view
  }

  function showStatus(text) {
    if (status.textContent !== text) status.textContent = text;
  }

  function onFrame(event) {
    let page;
    try {
      page = JSON.parse(event.data);
    } catch {
      return;
    }
    if (paused) {
      held = held.concat(page.lines);
      showStatus(`paused: ${held.length} new lines`);
    } else {
      append(page.lines);
      showStatus(page.dropped > 0 ? `live: ${page.dropped} lines dropped in all` : 'live');
    }
  }

  function connect() {
    source = new EventSource(`/api/plugin/${encodeURIComponent(plugin)}/logs/live?since=${next}&tail=${MAX_LINES}`);
    source.addEventListener('lines', onFrame);
    source.onerror = () => {
      showStatus('reconnecting…');
      // Connect again from the last line shown, not from where this stream started.
      source.close();
      window.setTimeout(connect, RETRY_MS);
    };
  }

  follow.addEventListener('click', () => {
    paused = !paused;
    follow.textContent = paused ? 'Follow' : 'Pause';
    follow.setAttribute('aria-pressed', String(!paused));
    if (!paused) {
      append(held);
      held = [];
      showStatus('live');
    } else {
      showStatus('paused');
    }
  });
  const refilter = () => Array.from(list.children).forEach(applyFilter);
  filter.addEventListener('input', refilter);
  streamChoice.addEventListener('change', refilter);

  connect();
})();
