// Live timeline: every list marked data-live-events follows that server-sent-events URL and
// puts each new event on top, newest first, keeping at most data-keep entries. Text goes in
// through textContent only, so hostile names and messages show literally.
"use strict";
(function () {
  function entry(event) {
    const li = document.createElement("li");
    li.className = "tl-event tl-" + event.kind;
    li.dataset.id = String(event.id);
    const time = document.createElement("time");
    time.dateTime = event.time;
    time.textContent = event.time;
    const kind = document.createElement("span");
    kind.className = "tl-kind";
    kind.textContent = event.kind;
    li.append(time, " ", kind, " ");
    if (event.plugin !== null) {
      const link = document.createElement("a");
      link.className = "tl-plugin";
      link.href = "/plugin/" + encodeURIComponent(event.plugin);
      link.textContent = event.plugin;
      li.append(link, " ");
    }
    const message = document.createElement("span");
    message.className = "tl-message";
    message.textContent = event.message;
    li.append(message);
    if (event.who !== null) {
      const who = document.createElement("span");
      who.className = "tl-who";
      who.textContent = "by " + event.who;
      li.append(" ", who);
    }
    const details = document.createElement("details");
    details.className = "tl-details";
    const summary = document.createElement("summary");
    summary.textContent = "details";
    const pre = document.createElement("pre");
    pre.textContent = JSON.stringify(event.details);
    details.append(summary, pre);
    li.append(" ", details);
    return li;
  }

  function follow(list) {
    const keep = Number(list.dataset.keep) || 200;
    const empty = list.parentElement && list.parentElement.querySelector(".empty");
    const conn = document.getElementById("conn");
    const source = new EventSource(list.dataset.liveEvents);
    source.addEventListener("open", function () { if (conn) conn.textContent = "live"; });
    source.addEventListener("error", function () { if (conn) conn.textContent = "reconnecting"; });
    source.addEventListener("event", function (message) {
      const event = JSON.parse(message.data);
      if (list.querySelector('[data-id="' + event.id + '"]')) return;
      list.prepend(entry(event));
      while (list.children.length > keep) list.lastElementChild.remove();
      if (empty) empty.hidden = true;
    });
  }

  function start() {
    document.querySelectorAll("[data-live-events]").forEach(follow);
    const form = document.querySelector(".tl-filters");
    if (form) {
      // A filter applies as it is chosen; the query stays in the URL, as the form sends it.
      form.querySelectorAll("select").forEach(function (select) {
        select.addEventListener("change", function () { form.requestSubmit(); });
      });
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
