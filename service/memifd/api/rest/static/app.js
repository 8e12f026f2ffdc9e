// memifd status page: keeps the interface table live and drives the create, edit and delete
// forms.
//
// Counters come from polling /v1/interfaces (memifd answers it from a cache, so this is
// cheap); rates are the deltas between two polls. Link changes arrive at once over
// /v1/events, read with fetch() because EventSource cannot send the bearer token. Every
// URL starts with the root path the server put in <body data-root>, so the page works
// behind a proxy that serves memifd under a prefix.
"use strict";

(() => {
  const ROOT = document.body.dataset.root || "";
  const TOKEN_KEY = "memifd.token";
  const POLL_MS = 1000;
  const MIN_RATE_MS = 500;
  const RETRY_MS = 2000;
  const RATE_KEYS = ["rx-packets", "rx-bytes", "rx-drops", "tx-packets", "tx-bytes", "tx-drops"];
  const RATE_LABELS = { packets: "pkt/s", bytes: "B/s", drops: "drop/s" };
  const CAPTURE_COUNT = document.body.dataset.captureCount || "1000";
  const CAPTURE_SECONDS = document.body.dataset.captureSeconds || "10";
  const CAPTURE_TITLE = document.body.dataset.captureTitle || "";

  const tbody = document.querySelector("#interfaces tbody");
  const rows = new Map(); // interface name -> <tr>
  const previous = new Map(); // interface name -> {time, rx: [...], tx: [...]}
  let locked = false; // true while the API wants a token we do not have
  let pollTimer = null;
  let streaming = false;
  let unreachable = false;
  let stream = null; // AbortController of the event stream

  class AuthRequired extends Error {}

  // -- the API ---------------------------------------------------------------------------------

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    const bearer = token();
    if (bearer) headers.set("Authorization", `Bearer ${bearer}`);
    const response = await fetch(ROOT + path, { ...options, headers });
    if (response.status === 401) {
      lock(bearer ? "The token was rejected." : "");
      throw new AuthRequired();
    }
    return response;
  }

  function interfacePath(name) {
    return `/v1/interfaces/${encodeURIComponent(name)}`;
  }

  // An error answer as {detail: a sentence, errors: the fields at fault}: from RFC 9457
  // problem details ({detail, errors}) or FastAPI's shape (detail: a sentence or the list).
  async function problemOf(response) {
    try {
      const body = await response.json();
      if (Array.isArray(body.detail)) return { detail: describe(body.detail), errors: body.detail };
      return { detail: String(body.detail), errors: body.errors || [] };
    } catch {
      return { detail: `${response.status} ${response.statusText}`, errors: [] };
    }
  }

  async function detailOf(response) {
    return (await problemOf(response)).detail;
  }

  function describe(errors) {
    return errors.map((item) => `${(item.loc || []).join(".")}: ${item.msg}`).join("; ");
  }

  // -- token -----------------------------------------------------------------------------------

  function lock(message) {
    locked = true;
    sessionStorage.removeItem(TOKEN_KEY);
    clearTimeout(pollTimer);
    stream?.abort();
    document.getElementById("login").hidden = false;
    document.getElementById("login-error").textContent = message;
    document.getElementById("forget").hidden = true;
    document.getElementById("loading").hidden = true;
    document.getElementById("token").focus();
  }

  function unlock(value) {
    sessionStorage.setItem(TOKEN_KEY, value);
    locked = false;
    document.getElementById("login").hidden = true;
    document.getElementById("forget").hidden = false;
    start();
  }

  document.getElementById("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("token");
    const value = input.value.trim();
    input.value = "";
    if (value) unlock(value);
  });

  document.getElementById("forget").addEventListener("click", () => {
    lock("");
    for (const name of [...rows.keys()]) removeRow(name);
  });

  // -- polling and rates -----------------------------------------------------------------------

  function start() {
    poll();
    followEvents();
  }

  async function poll() {
    clearTimeout(pollTimer);
    if (document.hidden) return; // resumed by visibilitychange
    try {
      const response = await api("/v1/interfaces");
      if (!response.ok) throw new Error(await detailOf(response));
      render(await response.json());
      document.getElementById("loading").hidden = true;
      if (unreachable) notify("");
      unreachable = false;
    } catch (error) {
      if (error instanceof AuthRequired) return;
      unreachable = true;
      notify(`memifd unreachable: ${error.message}`, true);
    }
    if (!locked) {
      clearTimeout(pollTimer);
      pollTimer = setTimeout(poll, POLL_MS);
    }
  }

  function render(list) {
    const now = performance.now();
    const seen = new Set();
    for (const status of list) {
      seen.add(status.name);
      updateRow(rows.get(status.name) || addRow(status.name), status, now);
    }
    for (const name of [...rows.keys()]) if (!seen.has(name)) removeRow(name);
    document.getElementById("empty").hidden = list.length > 0;
  }

  function counters(queues) {
    return queues.map((q) => [q.packets, q.bytes, q.drops + q.ring_full]);
  }

  // Per-queue rates since the previous sample; a poll soon after another (on a link event)
  // keeps the rates it had rather than divide by a tiny interval.
  function rates(name, stats, now) {
    const before = previous.get(name);
    if (before && now - before.time < MIN_RATE_MS) return before.rates;
    const sample = { time: now, rx: counters(stats.rx_queues), tx: counters(stats.tx_queues) };
    sample.rates = before ? ratesBetween(before, sample) : null;
    previous.set(name, sample);
    return sample.rates;
  }

  function ratesBetween(before, sample) {
    const seconds = (sample.time - before.time) / 1000;
    const delta = (dir, q, i) => {
      const then = before[dir][q];
      const value = sample[dir][q][i] - (then ? then[i] : 0);
      return Math.max(0, value) / seconds;
    };
    const queues = Math.max(sample.rx.length, sample.tx.length);
    return Array.from({ length: queues }, (_, q) => ({
      "rx-packets": sample.rx[q] ? delta("rx", q, 0) : null,
      "rx-bytes": sample.rx[q] ? delta("rx", q, 1) : null,
      "rx-drops": sample.rx[q] ? delta("rx", q, 2) : null,
      "tx-packets": sample.tx[q] ? delta("tx", q, 0) : null,
      "tx-bytes": sample.tx[q] ? delta("tx", q, 1) : null,
      "tx-drops": sample.tx[q] ? delta("tx", q, 2) : null,
    }));
  }

  function si(value) {
    if (value === null || value === undefined) return "–";
    const units = ["", "k", "M", "G", "T"];
    let unit = 0;
    while (value >= 1000 && unit < units.length - 1) {
      value /= 1000;
      unit += 1;
    }
    const digits = unit === 0 || value >= 100 ? 0 : 1;
    return value.toFixed(digits) + units[unit];
  }

  // -- the table -------------------------------------------------------------------------------

  function element(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    node.append(...children);
    return node;
  }

  function addRow(name) {
    const query = `count=${CAPTURE_COUNT}&duration=${CAPTURE_SECONDS}`;
    const captureUrl = `${ROOT}${interfacePath(name)}/capture?${query}`;
    const row = element("tr", { "data-name": name },
      element("td", { "data-field": "name" }),
      element("td", { "data-field": "socket" }),
      element("td", { "data-field": "peer" }),
      element("td", { "data-field": "link" },
        element("span", { "data-field": "state" }),
        element("div", { class: "sub", "data-field": "reason" })),
      element("td", { "data-field": "totals" }),
      element("td", { "data-field": "queues" }),
      element("td", { class: "actions" }, element("div", { class: "row-actions" },
        element("a", { class: "button", "data-action": "capture", href: captureUrl,
          download: `${name}.pcap`, title: CAPTURE_TITLE }, `capture ${CAPTURE_SECONDS} s`),
        " ",
        element("button", { type: "button", class: "secondary", "data-action": "edit" }, "edit"),
        " ",
        element("form", { class: "delete", "data-name": name },
          element("button", { type: "submit", class: "danger" }, "delete"),
          " ",
          element("span", { class: "field-error", role: "alert" })))));
    tbody.append(row);
    rows.set(name, row);
    return row;
  }

  function removeRow(name) {
    rows.get(name)?.remove();
    rows.delete(name);
    previous.delete(name);
  }

  function cell(row, field) {
    return row.querySelector(`[data-field="${field}"]`);
  }

  function updateRow(row, status, now) {
    cell(row, "name").replaceChildren(
      element("strong", {}, status.name),
      element("div", { class: "sub" }, element("span", { "data-field": "role" }, status.role),
        ` · ${status.mode} · id ${status.id} · ${status.action}`));
    cell(row, "socket").replaceChildren(element("code", {}, status.socket_path));
    updateLink(row, status.state, status.peer, status.disconnect_reason, status.admin_up);
    const stats = status.stats;
    cell(row, "totals").replaceChildren(
      element("div", {}, "rx ", element("span", { "data-field": "rx-packets" },
        stats.rx.packets.toLocaleString("en-US"))),
      element("div", {}, "tx ", element("span", { "data-field": "tx-packets" },
        stats.tx.packets.toLocaleString("en-US"))));
    updateQueues(cell(row, "queues"), rates(status.name, stats, now),
      Math.max(stats.rx_queues.length, stats.tx_queues.length));
  }

  function updateLink(row, state, peer, reason, adminUp) {
    if (adminUp === undefined) adminUp = !row.querySelector(".admin-down"); // a link event
    const badges = [element("span", { class: `badge state-${state}` }, state)];
    if (adminUp === false) badges.push(" ", element("span", { class: "badge admin-down" }, "admin down"));
    cell(row, "state").replaceChildren(...badges);
    const peerCell = cell(row, "peer");
    if (peer) {
      const about = peer.name ? [peer.name] : [];
      if (peer.pid !== null && peer.pid !== undefined) about.push(`pid ${peer.pid}`);
      peerCell.replaceChildren(element("div", {}, peer.app_name || "?"),
        element("div", { class: "sub" }, about.join(" · ")));
    } else {
      peerCell.textContent = "—";
    }
    cell(row, "reason").textContent = reason || "—";
  }

  function updateQueues(target, perQueue, count) {
    const edge = (key) => (key.endsWith("-packets") ? { class: "dir" } : {});
    const head = [
      element("tr", {}, element("th"), element("th", { colspan: 3, class: "dir" }, "rx"),
        element("th", { colspan: 3, class: "dir" }, "tx")),
      element("tr", {}, element("th", {}, "q"),
        ...RATE_KEYS.map((key) => element("th", edge(key), RATE_LABELS[key.slice(3)]))),
    ];
    const body = Array.from({ length: count }, (_, q) => element("tr", { "data-queue": q },
      element("th", {}, String(q)),
      ...RATE_KEYS.map((key) => element("td", { "data-rate": key, ...edge(key) },
        si(perQueue && perQueue[q] ? perQueue[q][key] : null)))));
    target.replaceChildren(element("table", { class: "queues" },
      element("thead", {}, ...head), element("tbody", {}, ...body)));
  }

  // -- link events -----------------------------------------------------------------------------

  async function followEvents() {
    if (streaming || locked) return;
    streaming = true;
    stream = new AbortController();
    try {
      const response = await api("/v1/events", {
        headers: { Accept: "text/event-stream" },
        signal: stream.signal,
      });
      if (!response.ok) throw new Error(await detailOf(response));
      setLive(true);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          handleEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (error) {
      if (!(error instanceof AuthRequired)) console.debug("event stream:", error.message);
    } finally {
      streaming = false;
      setLive(false);
      if (!locked) setTimeout(followEvents, RETRY_MS);
    }
  }

  function handleEvent(block) {
    let type = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
    }
    if (type !== "link" || !data.length) return;
    const event = JSON.parse(data.join("\n"));
    const row = rows.get(event.interface);
    if (row && event.state !== "deleted") updateLink(row, event.state, event.peer, event.reason);
    poll();
  }

  function setLive(on) {
    const live = document.getElementById("live");
    live.className = `live ${on ? "on" : "off"}`;
    live.textContent = on ? "live" : "offline";
  }

  function notify(message, isError = false) {
    const notice = document.getElementById("notice");
    notice.textContent = message;
    notice.classList.toggle("error", isError);
  }

  // -- capture download ------------------------------------------------------------------------

  // Without a token the link downloads by itself; with one, fetch carries the header and
  // the pcap is saved from a Blob.
  tbody.addEventListener("click", async (event) => {
    const link = event.target.closest("a[data-action=capture]");
    if (!link || !token()) return;
    event.preventDefault();
    if (link.classList.contains("busy")) return;
    const label = link.textContent;
    link.classList.add("busy");
    link.textContent = "capturing…";
    try {
      const response = await api(link.getAttribute("href").slice(ROOT.length));
      if (!response.ok) throw new Error(await detailOf(response));
      const url = URL.createObjectURL(await response.blob());
      const save = element("a", { href: url, download: link.getAttribute("download") });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      notify(`saved ${link.getAttribute("download")}`);
    } catch (error) {
      if (!(error instanceof AuthRequired)) notify(`capture failed: ${error.message}`, true);
    } finally {
      link.classList.remove("busy");
      link.textContent = label;
    }
  });

  // -- forms -----------------------------------------------------------------------------------

  tbody.addEventListener("submit", async (event) => {
    const form = event.target.closest("form.delete");
    if (!form) return;
    event.preventDefault();
    const name = form.dataset.name;
    if (!window.confirm(`Delete interface ${name}? Its peer is disconnected.`)) return;
    const error = form.querySelector(".field-error");
    error.textContent = "";
    try {
      const response = await api(interfacePath(name), { method: "DELETE" });
      if (!response.ok) throw new Error(await detailOf(response));
      removeRow(name);
      notify(`deleted ${name}`);
      poll();
    } catch (failure) {
      if (!(failure instanceof AuthRequired)) error.textContent = failure.message;
    }
  });

  const createForm = document.getElementById("create-form");

  // A form's fields as a request body: "memory.log2_ring_size" nests, numbers and id lists
  // ("1000, 1001") become numbers where they are numbers (the rest is sent for memifd to
  // refuse, naming the field), checkboxes are booleans; empty fields are left out.
  function bodyFrom(form) {
    const body = {};
    for (const input of form.querySelectorAll("input[name], select[name]")) {
      let value;
      if (input.type === "checkbox") {
        value = input.checked;
      } else {
        const raw = input.value.trim();
        if (!raw) continue;
        const number = (text) => (/^-?\d+$/.test(text) ? Number(text) : text);
        if (input.dataset.list === "ids") value = raw.split(/[\s,]+/).filter(Boolean).map(number);
        else value = input.type === "number" ? number(raw) : raw;
      }
      const path = input.name.split(".");
      let target = body;
      for (const key of path.slice(0, -1)) target = target[key] ??= {};
      target[path[path.length - 1]] = value;
    }
    return body;
  }

  function clearErrors(form) {
    for (const span of form.querySelectorAll("[data-error-for]")) span.textContent = "";
    for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  }

  // A field error names its field in loc (["body", "memory", "log2_ring_size"], or
  // ["body", "allowed_uids", 2] for a list item); checks across fields put it at the start of
  // the message ("xconnect_to: required when ..."). Without a field it goes by the button.
  function placeError(form, item) {
    let loc = (item.loc || []).map(String);
    if (loc[0] === "body") loc = loc.slice(1);
    let field = loc.join(".");
    let message = String(item.msg || "").replace(/^Value error, /, "");
    const named = /^([a-z_.]+): (.*)$/s.exec(message);
    if (!field && named && form.querySelector(`[data-error-for="${named[1]}"]`)) {
      field = named[1];
      message = named[2];
    }
    let span = null;
    for (let parts = loc.length ? loc : field.split("."); parts.length; parts = parts.slice(0, -1)) {
      span = form.querySelector(`[data-error-for="${parts.join(".")}"]`);
      if (span) {
        if (parts.length < loc.length) message = `item ${loc.slice(parts.length).join(".")}: ${message}`;
        field = parts.join(".");
        break;
      }
    }
    if (!span || !field) {
      span = form.querySelector('[data-error-for=""]');
      if (field) message = `${field}: ${message}`;
      field = "";
    }
    span.textContent = span.textContent ? `${span.textContent}; ${message}` : message;
    if (field) form.querySelector(`[name="${field}"]`)?.setAttribute("aria-invalid", "true");
  }

  // A 409 says in words what clashes; these are memifd's words for the fields of a spec.
  const CONFLICTS = [
    [/^interface '.*' already exists$/s, "name"],
    [/^a (server|client) interface with id \d+ already exists on /, "id"],
    [/( exists and is .*not a socket| is a stale socket | changed while it was checked)/, "socket"],
  ];

  function conflictField(detail) {
    for (const [pattern, field] of CONFLICTS) if (pattern.test(detail)) return field;
    return "";
  }

  // Show an error answer in a form: each field at fault by its input, a 409 by the field it
  // concerns, anything else by the form's button.
  async function showProblem(form, response) {
    const problem = await problemOf(response);
    if (problem.errors.length) {
      for (const item of problem.errors) placeError(form, item);
      return;
    }
    const field = response.status === 409 ? conflictField(problem.detail) : "";
    placeError(form, { loc: field ? [field] : [], msg: problem.detail });
  }

  async function submitWith(form, send) {
    clearErrors(form);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const response = await send(bodyFrom(form));
      if (!response.ok) {
        await showProblem(form, response);
        return null;
      }
      return await response.json();
    } catch (error) {
      if (!(error instanceof AuthRequired)) placeError(form, { loc: [], msg: error.message });
      return null;
    } finally {
      button.disabled = false;
    }
  }

  createForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const created = await submitWith(createForm, (spec) => api("/v1/interfaces", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(spec),
    }));
    if (!created) return;
    createForm.reset();
    notify(`created ${created.name}`);
    poll();
  });

  // -- editing a live interface ----------------------------------------------------------------

  const editDialog = document.getElementById("edit-dialog");
  const editForm = document.getElementById("edit-form");

  tbody.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action=edit]");
    if (!button) return;
    const name = button.closest("tr").dataset.name;
    try {
      const response = await api(interfacePath(name));
      if (!response.ok) throw new Error(await detailOf(response));
      const status = await response.json();
      clearErrors(editForm);
      editForm.dataset.name = name;
      document.getElementById("edit-name").textContent = name;
      editForm.elements.rx_mode.value = status.rx_mode;
      editForm.elements.action.value = status.action;
      editForm.elements.xconnect_to.value = status.xconnect_to || "";
      editForm.elements.admin_up.checked = status.admin_up;
      editDialog.showModal();
    } catch (error) {
      if (!(error instanceof AuthRequired)) notify(`cannot edit ${name}: ${error.message}`, true);
    }
  });

  document.getElementById("edit-cancel").addEventListener("click", () => editDialog.close());

  editForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = editForm.dataset.name;
    const updated = await submitWith(editForm, (patch) => api(interfacePath(name), {
      method: "PATCH",
      headers: { "Content-Type": "application/json" },
      // an empty cross-connect clears it (null); the other fields are always sent
      body: JSON.stringify({ ...patch, xconnect_to: patch.xconnect_to ?? null }),
    }));
    if (!updated) return;
    editDialog.close();
    notify(`updated ${name}`);
    poll();
  });

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && !locked) poll();
  });

  // -- start -----------------------------------------------------------------------------------

  for (const row of tbody.querySelectorAll("tr[data-name]")) rows.set(row.dataset.name, row);
  if (token()) document.getElementById("forget").hidden = false;
  start();
})();
