// The Nimbus console: one page per hash route (#/, #/function/NAME,
// #/invocation/ID, #/queues, #/queue/NAME, #/tables, #/table/NAME,
// #/buckets, #/bucket/NAME, #/keys, #/secrets, #/usage), drawn from the
// /v1 API with the session cookie. Every write carries the session's CSRF
// token. Text from the server only ever goes into textContent, never HTML.
"use strict";

const CSRF = document.querySelector('meta[name="nimbus-csrf"]').content;
const page = document.getElementById("page");
/// What the current page left running (timers, log streams), stopped when
/// another page is drawn.
let cleanups = [];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

async function api(path, options = {}) {
  const method = options.method || "GET";
  const headers = Object.assign({}, options.headers);
  if (method !== "GET") headers["x-nimbus-csrf"] = CSRF;
  const response = await fetch(path, { method, headers, body: options.body, credentials: "same-origin" });
  if (response.status === 401) {
    location.href = "/console/login";
    throw new Error("signed out");
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!response.ok) throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  return data;
}

const enc = encodeURIComponent;

function when(value) {
  if (value === null || value === undefined) return "-";
  const date = typeof value === "number" ? new Date(value) : new Date(value);
  return isNaN(date) ? String(value) : date.toLocaleString();
}

function ms(value) {
  if (value === null || value === undefined) return "-";
  if (value < 1000) return `${Math.round(value)} ms`;
  if (value < 60000) return `${(value / 1000).toFixed(1)} s`;
  if (value < 3600000) return `${Math.floor(value / 60000)} min ${Math.floor((value % 60000) / 1000)} s`;
  return `${(value / 3600000).toFixed(1)} h`;
}

function bytes(value) {
  if (value === null || value === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (value >= 1024 && i < units.length - 1) { value /= 1024; i++; }
  return i === 0 ? `${value} B` : `${value.toFixed(1)} ${units[i]}`;
}

function table(headers, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { class: h.num ? "num" : null }, h.label || h)))),
    el("tbody", {}, rows.length
      ? rows.map((cells) => el("tr", {}, cells.map((c, i) => el("td", { class: headers[i].num ? "num" : null }, c))))
      : el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, "none"))));
}

function show(title, ...content) {
  page.replaceChildren(el("h1", {}, title), ...content.filter((c) => c !== null && c !== undefined));
}

function fail(error) {
  page.append(el("p", { class: "error", role: "alert" }, String(error.message || error)));
}

// ---- Metrics: the node's /metrics, parsed into series -----------------

function parseMetrics(text) {
  const series = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[2] || "").matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    series.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return series;
}

/// The `q` quantile of a function's duration histogram, in ms: the upper
/// bound of the bucket it falls in.
function quantile(series, fn, q) {
  const buckets = series
    .filter((s) => s.name === "nimbus_invocation_duration_seconds_bucket" && s.labels.function === fn)
    .map((s) => ({ le: s.labels.le === "+Inf" ? Infinity : Number(s.labels.le), count: s.value }))
    .sort((a, b) => a.le - b.le);
  const total = buckets.length ? buckets[buckets.length - 1].count : 0;
  if (!total) return null;
  const bucket = buckets.find((b) => b.count >= q * total);
  return bucket && bucket.le !== Infinity ? bucket.le * 1000 : null;
}

// ---- Pages ------------------------------------------------------------

async function overview() {
  show("Overview", el("p", { class: "muted" }, "Loading..."));
  let previous = null;
  const draw = async () => {
    const [functions, queues, schedules, metricsText] = await Promise.all([
      api("/v1/functions"), api("/v1/queues"), api("/v1/schedules"),
      fetch("/metrics", { credentials: "same-origin" }).then((r) => r.text()),
    ]);
    const series = parseMetrics(metricsText);
    const now = Date.now();
    const count = (fn, outcomes) => series
      .filter((s) => s.name === "nimbus_invocations_total" && s.labels.function === fn && outcomes.includes(s.labels.outcome))
      .reduce((sum, s) => sum + s.value, 0);
    const totals = {};
    const rows = functions.functions.map((f) => {
      const all = count(f.name, ["success", "error", "timeout", "throttled"]);
      totals[f.name] = all;
      const rate = previous && previous.totals[f.name] !== undefined
        ? ((all - previous.totals[f.name]) / ((now - previous.at) / 1000)).toFixed(2) + "/s" : "-";
      const p50 = quantile(series, f.name, 0.5), p99 = quantile(series, f.name, 0.99);
      return [
        el("a", { href: `#/function/${enc(f.name)}` }, f.name), f.kind, rate, all,
        el("span", { class: count(f.name, ["error", "timeout"]) ? "bad" : null }, count(f.name, ["error", "timeout"])),
        count(f.name, ["throttled"]), p50 === null ? "-" : `≤ ${ms(p50)}`, p99 === null ? "-" : `≤ ${ms(p99)}`,
      ];
    });
    previous = { at: now, totals };
    const streams = series.filter((s) => s.name === "nimbus_stream_iterator_age_seconds");
    show("Overview",
      el("h2", {}, "Functions"),
      table(["Function", "Kind", { label: "Rate", num: true }, { label: "Invocations", num: true },
        { label: "Errors", num: true }, { label: "Throttles", num: true }, { label: "p50", num: true }, { label: "p99", num: true }], rows),
      el("p", { class: "muted" }, "Counts since this node started; the rate over the last refresh (every 5 s)."),
      el("h2", {}, "Queues"),
      table(["Queue", { label: "Depth", num: true }, { label: "In flight", num: true }, { label: "Delayed", num: true }, { label: "Oldest", num: true }],
        queues.queues.map((q) => [el("a", { href: `#/queue/${enc(q.name)}` }, q.name), q.visible, q.in_flight, q.delayed, ms(q.oldest_age_ms)])),
      el("h2", {}, "Streams"),
      table(["Table", "Function", { label: "Iterator age", num: true }],
        streams.map((s) => [s.labels.table, s.labels.function, ms(s.value * 1000)])),
      el("h2", {}, "Schedules"),
      table(["Schedule", "Function", "Expression", "Next fire"],
        schedules.schedules.map((s) => [s.name, s.function, s.expression, when(s.next[0])])));
  };
  await draw();
  const timer = setInterval(() => draw().catch(fail), 5000);
  cleanups.push(() => clearInterval(timer));
}

/// Invocations per minute over the last hour, errors on top, as SVG bars.
function chart(records) {
  const width = 720, height = 120, minutes = 60, now = Date.now();
  const ok = new Array(minutes).fill(0), bad = new Array(minutes).fill(0);
  for (const r of records) {
    const age = Math.floor((now - new Date(r.started_at).getTime()) / 60000);
    if (age < 0 || age >= minutes) continue;
    (r.outcome === "success" ? ok : bad)[minutes - 1 - age]++;
  }
  const top = Math.max(1, ...ok.map((v, i) => v + bad[i]));
  const chart = svg("svg", { class: "chart", width, height: height + 16, viewBox: `0 0 ${width} ${height + 16}`, role: "img", "aria-label": "invocations per minute" });
  const w = width / minutes;
  for (let i = 0; i < minutes; i++) {
    const okH = (ok[i] / top) * height, badH = (bad[i] / top) * height;
    chart.append(svg("rect", { class: "bar", x: i * w + 1, y: height - okH - badH, width: w - 2, height: okH }));
    chart.append(svg("rect", { class: "bar bad", x: i * w + 1, y: height - badH, width: w - 2, height: badH }));
  }
  const label = svg("text", { x: 2, y: height + 12 });
  label.textContent = `last hour, per minute; peak ${top}`;
  chart.append(label);
  return chart;
}

async function functionPage(name) {
  const charted = el("div", { id: "chart" });
  const recent = el("div", { id: "recent" });
  const log = el("pre", { id: "log" });
  show(`Function ${name}`,
    el("h2", {}, "Invocations per minute"), charted,
    el("h2", {}, "Recent invocations"), recent,
    el("h2", {}, "Live logs"), log);
  // Records reach the store in batches: the chart and list refresh while
  // the page is open.
  const refresh = async () => {
    const records = (await api(`/v1/invocations?function=${enc(name)}&limit=1000`)).invocations;
    charted.replaceChildren(chart(records));
    recent.replaceChildren(table(["Invocation", "Trigger", "Outcome", { label: "Duration", num: true }, "Started"],
      records.slice(0, 50).map((r) => [
        el("a", { href: `#/invocation/${enc(r.id)}`, class: "mono" }, r.id), `${r.trigger} ${r.source}`,
        el("span", { class: r.outcome === "success" ? "ok" : "bad" }, r.outcome), ms(r.duration_ms), when(r.started_at)])));
  };
  await refresh();
  const timer = setInterval(() => refresh().catch(fail), 2000);
  cleanups.push(() => clearInterval(timer));
  // Lines as they are written, until another page is drawn.
  const stop = new AbortController();
  cleanups.push(() => stop.abort());
  fetch(`/v1/functions/${enc(name)}/logs?follow=true`, { credentials: "same-origin", signal: stop.signal })
    .then(async (response) => {
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffered = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += decoder.decode(value, { stream: true });
        let newline;
        while ((newline = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          if (!line.trim()) continue;
          const entry = JSON.parse(line);
          if (entry.text === undefined) continue;
          log.append(el("div", { class: "log-line" }, `${entry.invocation_id} ${entry.stream} ${entry.text}`));
          log.scrollTop = log.scrollHeight;
        }
      }
    })
    .catch((e) => { if (e.name !== "AbortError") fail(e); });
}

function micros(value) {
  if (value < 1000) return `${value} µs`;
  if (value < 1000000) return `${(value / 1000).toFixed(1)} ms`;
  return ms(value / 1000);
}

/// A trace's spans as a tree: each span under its parent, children by start
/// time (roots are spans whose parent no record kept, such as the
/// gateway's), each with a bar placed on the trace's timeline. Spans of
/// other invocations link to them.
function spanTree(spans, current) {
  if (!spans.length) return el("p", { class: "muted", id: "spans" }, "(no spans recorded)");
  const nodes = new Map(spans.map((s) => [s.span_id, { span: s, children: [] }]));
  const roots = [];
  for (const node of nodes.values()) {
    const parent = node.span.parent_id ? nodes.get(node.span.parent_id) : null;
    (parent && parent !== node ? parent.children : roots).push(node);
  }
  const start = Math.min(...spans.map((s) => s.start_us));
  const end = Math.max(...spans.map((s) => s.start_us + s.duration_us));
  const total = Math.max(1, end - start);
  const width = 320;
  const byStart = (a, b) => a.span.start_us - b.span.start_us;
  const drawn = new Set();
  const item = (node) => {
    const s = node.span;
    drawn.add(s.span_id);
    const bar = svg("svg", { class: "span-bar", width, height: 10, viewBox: `0 0 ${width} 10`, "aria-hidden": "true" });
    bar.append(svg("rect", {
      class: s.error ? "bad" : "",
      x: ((s.start_us - start) / total) * width, y: 1,
      width: Math.max(1, (s.duration_us / total) * width), height: 8,
    }));
    const mine = !s.invocation_id || s.invocation_id === current;
    // A parent pointer loop (only a forged traceparent could make one) is
    // drawn once, not forever.
    const children = node.children.filter((c) => !drawn.has(c.span.span_id)).sort(byStart);
    return el("li", { class: mine ? "span current" : "span" },
      el("div", { class: "span-row" },
        el("span", { class: "span-name" }, s.name),
        mine ? null : el("a", { href: `#/invocation/${enc(s.invocation_id)}` }, s.function),
        el("span", { class: "muted" }, micros(s.duration_us)),
        s.error ? el("span", { class: "bad" }, s.error) : null,
        // Right-aligned, so every bar shares one timeline whatever its depth.
        bar),
      children.length ? el("ul", {}, children.map(item)) : null);
  };
  const tree = roots.sort(byStart).map(item);
  // Spans reachable only through a parent loop (a forged traceparent) are
  // shown at the top level rather than not at all.
  for (const node of [...nodes.values()].sort(byStart)) {
    if (!drawn.has(node.span.span_id)) tree.push(item(node));
  }
  return el("ul", { class: "span-tree", id: "spans" }, tree);
}

async function invocationPage(id) {
  const r = await api(`/v1/invocations/${enc(id)}`);
  // The whole trace when the history holds it (the invocations before and
  // after this one); else this record's own spans.
  let spans = r.spans, truncated = false;
  if (r.trace_id) {
    try {
      const trace = await api(`/v1/traces/${enc(r.trace_id)}`);
      spans = trace.spans;
      truncated = trace.truncated;
      // A trace answer holds its newest records: this one may be older.
      if (!trace.invocations.some((i) => i.id === r.id)) {
        spans = spans.concat(r.spans.map((s) => Object.assign({ invocation_id: r.id, function: r.function }, s)));
      }
    } catch (_) { /* this record's spans are still worth showing */ }
  }
  show(`Invocation ${id}`,
    el("dl", {},
      el("dt", {}, "Function"), el("dd", {}, el("a", { href: `#/function/${enc(r.function)}` }, r.function)),
      el("dt", {}, "Trigger"), el("dd", {}, `${r.trigger} ${r.source}`),
      el("dt", {}, "Outcome"), el("dd", { class: r.outcome === "success" ? "ok" : "bad", id: "outcome" }, r.outcome),
      el("dt", {}, "Attempt"), el("dd", {}, r.attempt),
      el("dt", {}, "Started"), el("dd", {}, when(r.started_at)),
      el("dt", {}, "Duration"), el("dd", {}, ms(r.duration_ms)),
      el("dt", {}, "Billed"), el("dd", {}, `${r.billed_ms} ms at ${r.memory_mb} MB, ${bytes(r.outbound_bytes)} sent`),
      el("dt", {}, "Node"), el("dd", {}, r.node || "-"),
      el("dt", {}, "Trace"), el("dd", { class: "mono" }, r.trace_id || "-")),
    r.error ? el("h2", {}, "Error") : null, r.error ? el("pre", { class: "bad" }, r.error) : null,
    el("h2", {}, "Output"),
    el("pre", { id: "output" }, r.logs.length ? r.logs.map((l) => `${l.stream}  ${l.text}\n`).join("") : "(no output)"),
    r.logs_truncated ? el("p", { class: "muted" }, "Output past the record's bound was left out.") : null,
    el("h2", {}, "Trace"),
    spanTree(spans, r.id),
    r.spans_dropped ? el("p", { class: "muted" }, `${r.spans_dropped} spans past the record's bound were left out.`) : null,
    truncated ? el("p", { class: "muted" }, "The trace has more invocations than were read.") : null);
}

async function queuesPage() {
  const [queues, dlqs] = await Promise.all([api("/v1/queues"), api("/v1/dead-letter-queues")]);
  show("Queues",
    table(["Queue", { label: "Depth", num: true }, { label: "In flight", num: true }, { label: "Delayed", num: true }, { label: "Oldest", num: true }, "Dead-letter queue"],
      queues.queues.map((q) => [el("a", { href: `#/queue/${enc(q.name)}` }, q.name), q.visible, q.in_flight, q.delayed, ms(q.oldest_age_ms), q.dead_letter_queue || "-"])),
    el("h2", {}, "Dead-letter queues"),
    table(["Queue", "From", { label: "Depth", num: true }],
      dlqs.dead_letter_queues.map((d) => [el("a", { href: `#/queue/${enc(d.name)}` }, d.name), d.source_queues.join(", "), d.depth])));
}

async function queuePage(name, _params, notice) {
  const [stats, messages] = await Promise.all([api(`/v1/queues/${enc(name)}`), api(`/v1/queues/${enc(name)}/messages?limit=100`)]);
  const status = el("p", { id: "status", role: "status" }, notice || "");
  const redrive = el("button", {
    class: "primary", id: "redrive",
    onclick: async () => {
      try {
        const moved = await api(`/v1/queues/${enc(name)}/redrive`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
        await queuePage(name, null, `moved ${moved.moved}`);
      } catch (e) { fail(e); }
    },
  }, "Redrive all");
  show(`Queue ${name}`,
    el("dl", {},
      el("dt", {}, "Depth"), el("dd", { id: "depth" }, stats.visible),
      el("dt", {}, "In flight"), el("dd", {}, stats.in_flight),
      el("dt", {}, "Delayed"), el("dd", {}, stats.delayed),
      el("dt", {}, "Oldest"), el("dd", {}, ms(stats.oldest_age_ms)),
      el("dt", {}, "Visibility timeout"), el("dd", {}, ms(stats.visibility_timeout_ms)),
      el("dt", {}, "Dead-letter queue"), el("dd", {}, stats.dead_letter_queue || "-")),
    el("div", { class: "row" }, redrive, status),
    el("h2", {}, "Messages"),
    table(["Message", "Sent", { label: "Receives", num: true }, "From", "Last error", "Body", ""],
      messages.messages.map((m) => [
        el("span", { class: "mono" }, m.message_id), when(m.sent_at_ms), m.receive_count, m.source_queue || "-", m.last_error || "-",
        el("code", {}, m.body !== undefined ? m.body.slice(0, 200) : "(binary)"),
        el("button", {
          class: "danger",
          onclick: async () => {
            try {
              await api(`/v1/queues/${enc(name)}/messages/${enc(m.message_id)}`, { method: "DELETE" });
              await queuePage(name, null, `deleted ${m.message_id}`);
            } catch (e) { fail(e); }
          },
        }, "Delete")])));
}

async function tablesPage() {
  const tables = await api("/v1/tables");
  show("Tables", table(["Table", "Partition key", "Sort key", "Stream"],
    tables.tables.map((t) => [el("a", { href: `#/table/${enc(t.name)}` }, t.name), t.partition_key, t.sort_key || "-", t.stream || "-"])));
}

async function tablePage(name, params) {
  const partition = params.get("partition");
  const items = await api(`/v1/tables/${enc(name)}/items?limit=100${partition ? `&partition=${enc(partition)}` : ""}`);
  // The newest 50 change records: ask where the stream's head is, then
  // read from just before it.
  const head = await api(`/v1/tables/${enc(name)}/stream?after=0&limit=1`).catch(() => null);
  const after = head && head.latest ? Math.max(0, head.latest - 50) : 0;
  const stream = await api(`/v1/tables/${enc(name)}/stream?after=${after}&limit=50`).catch(() => ({ records: [] }));
  show(`Table ${name}`,
    el("h2", {}, partition ? `Partition ${partition}` : "Items"),
    table(["Partition", "Sort", { label: "Version", num: true }, "Item"],
      items.items.map((i) => [
        el("a", { href: `#/table/${enc(name)}?partition=${enc(i.key.partition)}` }, i.key.partition),
        i.key.sort || "-", i.version, el("code", {}, JSON.stringify(i.item))])),
    el("h2", {}, "Change stream"),
    table([{ label: "Sequence", num: true }, "Event", "Key", "When"],
      (stream.records || []).map((r) => [r.sequence, r.kind, JSON.stringify(r.key), when(r.time)])));
}

async function bucketsPage() {
  const buckets = await api("/v1/buckets");
  show("Buckets", table(["Bucket", { label: "Max object size", num: true }],
    buckets.buckets.map((b) => [el("a", { href: `#/bucket/${enc(b.name)}` }, b.name), bytes(b.max_object_bytes)])));
}

/// The key encoded whole (its slashes too, which the API decodes), so no
/// `.` or `..` segment of a key or prefix can move the request elsewhere.
function objectPath(bucket, key) {
  return `/v1/buckets/${enc(bucket)}/objects/${enc(key)}`;
}

async function bucketPage(name, params, notice) {
  const prefix = params.get("prefix") || "";
  const listing = await api(`/v1/buckets/${enc(name)}/objects?delimiter=/&prefix=${enc(prefix)}&limit=1000`);
  const file = el("input", { type: "file", id: "upload-file" });
  const status = el("p", { id: "status", role: "status" }, notice || "");
  const upload = el("button", {
    class: "primary", id: "upload",
    onclick: async () => {
      const chosen = file.files[0];
      if (!chosen) return;
      try {
        await api(objectPath(name, prefix + chosen.name), {
          method: "PUT", body: chosen, headers: { "content-type": chosen.type || "application/octet-stream" },
        });
        await bucketPage(name, params, `uploaded ${prefix + chosen.name}`);
      } catch (e) { fail(e); }
    },
  }, "Upload");
  const rows = listing.common_prefixes.map((p) => [
    el("a", { href: `#/bucket/${enc(name)}?prefix=${enc(p)}` }, p), "-", "-", ""]);
  for (const o of listing.objects) {
    rows.push([o.key, bytes(o.size), when(o.last_modified),
      el("a", { href: objectPath(name, o.key), download: o.key.split("/").pop() }, "Download")]);
  }
  show(`Bucket ${name}${prefix ? ` / ${prefix}` : ""}`,
    el("div", { class: "row" }, file, upload, status),
    table(["Key", { label: "Size", num: true }, "Last modified", ""], rows));
}

async function keysPage() {
  const [keys, access] = await Promise.all([api("/v1/keys"), api("/v1/access-keys")]);
  const shown = el("pre", { id: "new-key", hidden: "" });
  const name = el("input", { id: "key-name", placeholder: "name" });
  const create = el("button", {
    class: "primary", id: "create-key",
    onclick: async () => {
      try {
        const made = await api("/v1/keys", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: name.value }) });
        shown.hidden = false;
        shown.textContent = `New key (shown once): ${made.key}`;
      } catch (e) { fail(e); }
    },
  }, "Create API key");
  show("Keys",
    el("div", { class: "row" }, name, create), shown,
    el("h2", {}, "API keys"),
    table(["Id", "Name", "Created", "Revoked"], keys.keys.map((k) => [el("span", { class: "mono" }, k.id), k.name, when(k.created_at_ms), when(k.revoked_at_ms)])),
    el("h2", {}, "Access keys (S3 and SQS)"),
    table(["Id", "Name", "Grants", "Created"], access.access_keys.map((k) => [el("span", { class: "mono" }, k.id), k.name, k.grants.join(" "), when(k.created_at)])));
}

async function secretsPage() {
  const secrets = await api("/v1/secrets");
  show("Secrets", table(["Name", "Created", "Updated"], secrets.secrets.map((s) => [s.name, when(s.created_at_ms), when(s.updated_at_ms)])),
    el("p", { class: "muted" }, "Values are never shown."));
}

async function usagePage() {
  const usage = await api("/v1/usage");
  const rows = usage.usage.map((u) => [when(u.hour), u.function, u.invocations, ms(u.billed_ms), u.gb_seconds.toFixed(6), bytes(u.outbound_bytes)]);
  rows.push([el("strong", {}, "total"), "", usage.total.invocations, ms(usage.total.billed_ms), usage.total.gb_seconds.toFixed(6), bytes(usage.total.outbound_bytes)]);
  show("Usage, the last day",
    table(["Hour", "Function", { label: "Invocations", num: true }, { label: "Billed", num: true }, { label: "GB-seconds", num: true }, { label: "Outbound", num: true }], rows));
}

async function deploymentsPage(_name, _params, notice) {
  const listing = await api("/v1/deployments");
  const status = el("p", { id: "status", role: "status" }, notice || "");
  show("Deployments", status,
    table([{ label: "Id", num: true }, "Created", "Activated", "Functions", "Digest", ""],
      listing.deployments.map((d) => [
        d.id, when(d.created), when(d.activated), (d.functions || []).join(", "),
        el("span", { class: "mono" }, String(d.digest).slice(0, 12)),
        d.active ? el("strong", {}, "serving") : el("button", {
          onclick: async () => {
            try {
              await api(`/v1/deployments/${enc(d.id)}/activate`, { method: "POST" });
              await deploymentsPage(null, null, `deployment ${d.id} is serving`);
            } catch (e) { fail(e); }
          },
        }, "Roll back to this")])));
}

async function clusterPage() {
  const cluster = await api("/v1/cluster");
  show("Cluster",
    el("p", { class: "muted" }, `This console is served by node ${cluster.node}.`),
    table(["Node", "Live", "Version", "Started", "Last heartbeat", { label: "In flight", num: true }, "Leases"],
      cluster.nodes.map((n) => [
        el("span", { class: "mono" }, n.id), el("span", { class: n.live ? "ok" : "bad" }, n.live ? "live" : "gone"),
        n.version || "-", when(n.started_at), when(n.last_heartbeat), n.in_flight ?? "-",
        (n.leases || []).map((l) => l.name).join(", ") || "-"])));
}

const routes = [
  [/^\/$/, overview],
  [/^\/function\/(.+)$/, functionPage],
  [/^\/invocation\/(.+)$/, invocationPage],
  [/^\/queues$/, queuesPage],
  [/^\/queue\/(.+)$/, queuePage],
  [/^\/tables$/, tablesPage],
  [/^\/table\/([^?]+)$/, tablePage],
  [/^\/buckets$/, bucketsPage],
  [/^\/bucket\/([^?]+)$/, bucketPage],
  [/^\/keys$/, keysPage],
  [/^\/secrets$/, secretsPage],
  [/^\/usage$/, usagePage],
  [/^\/deployments$/, deploymentsPage],
  [/^\/cluster$/, clusterPage],
];

async function route() {
  for (const cleanup of cleanups) cleanup();
  cleanups = [];
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  for (const [pattern, draw] of routes) {
    const match = pattern.exec(path);
    if (match) {
      try {
        await draw(decodeURIComponent(match[1] || ""), params);
      } catch (e) {
        show("Something went wrong");
        fail(e);
      }
      document.body.dataset.page = path;
      return;
    }
  }
  show("Not found", el("p", {}, "No console page here."));
}

window.addEventListener("hashchange", route);
route();
