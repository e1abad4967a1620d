// Toneline supervisor dashboard. All data goes into the page through textContent
// (never innerHTML) so nothing a customer types can run as script here.
"use strict";

const state = { me: null, rows: new Map(), detailId: null, cases: new Map(), charts: {}, detail: null };
const LABELS = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"];
const NOT_ANALYSED = "not analysed (opted out)";

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
};
const fmt = (x, digits = 2) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));
const signed = (x) => (x === null || x === undefined ? "–" : (x >= 0 ? "+" : "") + Number(x).toFixed(2));
const duration = (s) => { s = Math.max(0, Math.round(s)); return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`; };
const time = (ts) => (ts ? new Date(ts * 1000).toLocaleTimeString() : "–");

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (options.method && options.method !== "GET") headers["X-CSRF-Token"] = state.me.csrf;
  const response = await fetch(path, { credentials: "same-origin", ...options, headers });
  if (response.status === 401) { location.href = "/login"; throw new Error("signed out"); }
  return response;
}

// ---- live floor -------------------------------------------------------------
function renderFloor() {
  const body = document.querySelector("#floor-table tbody");
  const now = Date.now() / 1000;
  const rows = [...state.rows.values()]
    .filter((r) => now - r.last_at < state.me.idle_seconds)
    .sort((a, b) => b.risk - a.risk || b.last_at - a.last_at);
  body.replaceChildren(...rows.map((r) => floorRow(r, now)));
  document.getElementById("floor-empty").hidden = rows.length > 0;
}

function floorRow(r, now) {
  const tr = el("tr", { dataset: { conversation: r.conversation_id } },
    el("td", {}, el("span", { class: "risk", style: `width:${Math.min(60, 30 * r.risk + 2)}px` }), " ", fmt(r.risk)),
    el("td", {}, r.conversation_id),
    el("td", {}, r.channel),
    r.opted_out ? el("td", { class: "emotion opted-out" }, NOT_ANALYSED) :
    el("td", { class: "emotion " + (r.valence < -0.2 ? "neg" : r.valence > 0.2 ? "pos" : "") },
      `${r.label ?? "–"} (${signed(r.valence)})`),
    el("td", { class: `trend trend-${r.trend_arrow}`, title: `trend ${signed(r.trend)} per turn` }, ""),
    el("td", { class: "streak" }, String(r.negative_streak)),
    el("td", {}, String(r.n_turns)),
    el("td", {}, duration(now - r.started_at)),
    el("td", { class: "tone" }, r.tone ?? "–"),
    el("td", { class: r.escalated ? "status status-escalated" : "status" }, r.escalated ? "escalated" : "bot"),
  );
  if (r._flash) { tr.classList.add("flash"); r._flash = false; }
  tr.addEventListener("click", () => openDetail(r.conversation_id));
  return tr;
}

// ---- conversation view ------------------------------------------------------------
async function openDetail(id) {
  state.detailId = id;
  const response = await api(`/api/conversations/${encodeURIComponent(id)}`);
  if (!response.ok) return;
  const c = await response.json();
  state.detail = c;
  document.getElementById("detail").hidden = false;
  document.getElementById("erase-customer").hidden = !state.me.admin;
  document.getElementById("detail-title").textContent = `Conversation ${c.conversation_id}`;
  document.getElementById("detail-summary").textContent =
    `customer ${c.customer_id} · ${c.channel} · ${c.n_turns} turns · running valence ${signed(c.summary.ewma_valence)}` +
    ` · tone ${c.tone}` + (c.escalated ? ` · escalated: ${c.escalation_reason}` : "") +
    (c.opted_out ? ` · ${NOT_ANALYSED}` : "");
  const escalatedIds = new Set(c.escalations.map((e) => e.message_id));
  const body = document.querySelector("#turns-table tbody");
  body.replaceChildren(...c.turns.map((t, i) => turnRow(t, i, escalatedIds, c.escalations)));
  drawTimeline(c.turns, escalatedIds);
}

function turnRow(t, i, escalatedIds, escalations) {
  const weights = el("span", { class: "weights" }, ...Object.entries(t.weights || {}).map(([m, w]) =>
    el("span", { title: `contribution of ${m} to this turn's reading` }, `${m} ${fmt(w)}`, el("i", { style: `width:${Math.round(40 * w)}px` }))));
  const row = el("tr", { class: escalatedIds.has(t.message_id) ? "turn escalation-marker" : "turn" },
    el("td", {}, String(i + 1)), el("td", {}, time(t.ts)), el("td", {}, t.label),
    el("td", {}, signed(t.valence)), el("td", {}, fmt(t.arousal)), el("td", {}, fmt(t.confidence)),
    el("td", { title: "probability of angry, disgusted, fearful and sad together" }, t.negative == null ? "–" : fmt(t.negative)),
    el("td", {}, weights), el("td", {}, t.intent ?? "–"), el("td", {}, t.text ?? ""),
    el("td", { class: "correct" }, ...correctionControls(t, escalatedIds.has(t.message_id))));
  if (escalatedIds.has(t.message_id)) {
    const e = escalations.find((x) => x.message_id === t.message_id);
    row.title = `escalated: ${e.reason}`;
    row.cells[2].append(el("div", { class: "status-escalated" }, `⚑ escalated: ${e.reason}`));
  }
  return row;
}

// ---- corrections ------------------------------------------------------------------
function correctionOf(messageId, kind) {
  return (state.detail?.corrections || []).find((x) => x.message_id === messageId && x.kind === kind);
}

function correctionNote(x) {
  if (!x) return "";
  const what = x.kind === "emotion" ? (x.verdict === "right" ? "right" : `wrong: ${x.label}`) : x.verdict.replace("_", " ");
  return `${what} (${x.by})`;
}

function correctionControls(t, escalated) {
  const emotion = correctionOf(t.message_id, "emotion");
  const pick = el("select", { class: "right-label", "aria-label": "the right emotion" },
    ...LABELS.filter((l) => l !== t.label).map((l) => el("option", { value: l }, l)));
  const parts = [
    el("button", { class: "mark-right", type: "button" }, "Right"),
    el("button", { class: "mark-wrong", type: "button" }, "Wrong, it is"), pick,
    el("span", { class: "correction-note" }, correctionNote(emotion)),
  ];
  parts[0].addEventListener("click", () => sendCorrection(t.message_id, { kind: "emotion", verdict: "right" }));
  parts[1].addEventListener("click", () => sendCorrection(t.message_id, { kind: "emotion", verdict: "wrong", label: pick.value }));
  if (escalated) {
    const needed = el("button", { class: "mark-needed", type: "button" }, "Escalation needed");
    const notNeeded = el("button", { class: "mark-not-needed", type: "button" }, "Not needed");
    needed.addEventListener("click", () => sendCorrection(t.message_id, { kind: "escalation", verdict: "needed" }));
    notNeeded.addEventListener("click", () => sendCorrection(t.message_id, { kind: "escalation", verdict: "not_needed" }));
    parts.push(el("div", {}, needed, notNeeded,
      el("span", { class: "escalation-note" }, correctionNote(correctionOf(t.message_id, "escalation")))));
  }
  return parts;
}

async function sendCorrection(messageId, body) {
  const id = state.detailId;
  const response = await api(`/api/conversations/${encodeURIComponent(id)}/corrections`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ message_id: messageId, ...body }),
  });
  if (response.ok) openDetail(id);
}

async function eraseCustomer() {
  const customer = state.detail?.customer_id;
  if (!customer || !confirm(`Erase every record of customer ${customer}? This cannot be undone.`)) return;
  const response = await api(`/api/customers/${encodeURIComponent(customer)}/erase`, { method: "POST" });
  const report = await response.json();
  document.getElementById("erase-report").textContent = response.ok
    ? `Erased ${report.conversations.length} conversation(s), ${report.keys.length} key(s). Erase their Rasa trackers too: ${report.conversations.join(", ")}`
    : `Not erased: ${report.error}`;
  if (response.ok) state.rows.forEach((r, id) => { if (r.customer_id === customer) state.rows.delete(id); });
  renderFloor();
}

async function loadAgreement() {
  const data = await (await api("/api/agreement")).json();
  const sources = [...new Set(data.weeks.flatMap((w) => Object.keys(w.by)))].sort();
  document.querySelector("#agreement-table thead").replaceChildren(
    el("tr", {}, el("th", {}, "Week"), ...sources.map((s) => el("th", {}, s))));
  document.querySelector("#agreement-table tbody").replaceChildren(...data.weeks.map((w) => el("tr", {},
    el("td", {}, w.week), ...sources.map((s) => el("td", { dataset: { source: s } },
      w.by[s] ? `${Math.round(100 * w.by[s].agreement)} % of ${w.by[s].n}` : "–")))));
  document.getElementById("agreement-empty").hidden = data.weeks.length > 0;
}

function drawTimeline(turns, escalatedIds) {
  state.charts.timeline?.destroy();
  state.charts.timeline = new Chart(document.getElementById("timeline-chart"), {
    type: "line",
    data: {
      labels: turns.map((t, i) => `${i + 1}: ${t.label}`),
      datasets: [
        { label: "valence", data: turns.map((t) => t.valence), borderColor: "#2f5fd0", tension: 0.2,
          pointRadius: turns.map((t) => (escalatedIds.has(t.message_id) ? 8 : 3)),
          pointBackgroundColor: turns.map((t) => (escalatedIds.has(t.message_id) ? "#d68910" : "#2f5fd0")) },
        { label: "arousal", data: turns.map((t) => t.arousal), borderColor: "#c0392b", borderDash: [4, 4], tension: 0.2 },
      ],
    },
    options: { animation: false, maintainAspectRatio: false, scales: { y: { min: -1, max: 1 } } },
  });
}

// ---- escalations ---------------------------------------------------------------------
async function loadEscalations() {
  const status = document.getElementById("escalation-status").value;
  const response = await api(`/api/escalations?status=${status}`);
  const data = await response.json();
  state.cases = new Map(data.escalations.map((c) => [c.case_id, c]));
  renderEscalations();
}

function renderEscalations() {
  const status = document.getElementById("escalation-status").value;
  const cases = [...state.cases.values()]
    .filter((c) => status === "all" || (status === "open") === !c.claim)
    .sort((a, b) => b.created_at - a.created_at);
  document.getElementById("escalation-list").replaceChildren(...cases.map(caseCard));
  document.getElementById("escalations-empty").hidden = cases.length > 0;
  document.getElementById("open-count").textContent = String([...state.cases.values()].filter((c) => !c.claim).length);
}

function caseCard(c) {
  const last = c.emotion_timeline.at(-1);
  const button = el("button", { class: "claim" }, c.claim ? `claimed by ${c.claim.agent}` : "Claim");
  button.disabled = Boolean(c.claim);
  button.addEventListener("click", () => claimCase(c.case_id));
  return el("div", { class: "card case", dataset: { case: c.case_id, conversation: c.conversation_id } },
    el("div", {},
      el("strong", {}, `${c.reason}`),
      el("div", { class: "muted" }, `conversation ${c.conversation_id} · customer ${c.customer_id} · ${c.channel} · ${time(c.created_at)}`),
      el("div", {}, `emotion over ${c.emotion_timeline.length} turns: ` +
        c.emotion_timeline.map((t) => `${t.label} (${signed(t.valence)})`).join(" → ") + (last ? "" : "none")),
      el("ul", {}, ...c.transcript.map((line) => el("li", {}, `${line.from}: ${line.text}`)))),
    el("div", {}, button));
}

async function claimCase(id) {
  const response = await api(`/api/escalations/${id}/claim`, { method: "POST" });
  const data = await response.json();
  const c = state.cases.get(id);
  if (c) c.claim = data.claim;
  renderEscalations();
}

// ---- history ---------------------------------------------------------------------------
async function loadHistory() {
  const hours = Number(document.getElementById("history-window").value);
  const to = new Date(Date.now() + 1000), from = new Date(to - hours * 3600 * 1000);
  const query = `from=${from.toISOString()}&to=${to.toISOString()}`;
  document.getElementById("csv-link").href = `/api/history.csv?${query}`;
  const data = await (await api(`/api/history?${query}`)).json();
  const labels = data.hours.map((h) => h.hour.slice(5, 13).replace("T", " ") + "h");
  chart("volume", "bar", labels, [
    { label: "turns", data: data.hours.map((h) => h.turns), backgroundColor: "#9db3ea" },
    { label: "escalations", data: data.hours.map((h) => h.escalations), backgroundColor: "#d68910" }]);
  chart("mood", "line", labels, [
    { label: "mean valence", data: data.hours.map((h) => h.mean_valence), borderColor: "#2f5fd0", spanGaps: true },
    { label: "negative share", data: data.hours.map((h) => h.negative_share), borderColor: "#c0392b", spanGaps: true }]);
  const outcomes = ["escalated", "resolved", "active"];
  chart("outcomes", "bar", labels, outcomes.map((o, i) => ({
    label: o, data: data.hours.map((h) => h.outcomes[o]), backgroundColor: ["#d68910", "#1e8449", "#9db3ea"][i] })), true);
  const intents = Object.entries(data.intents);
  chart("intents", "bar", intents.map(([k]) => k), [
    { label: "negative share", data: intents.map(([, v]) => v.negative_share), backgroundColor: "#c0392b" }]);
  document.querySelector("#channel-table tbody").replaceChildren(...Object.entries(data.channels).map(([name, v]) =>
    el("tr", {}, el("td", {}, name), el("td", {}, String(v.turns)), el("td", {}, fmt(v.negative_share)),
      el("td", {}, signed(v.mean_valence)), el("td", {}, String(v.escalations)))));
}

function chart(name, type, labels, datasets, stacked = false) {
  state.charts[name]?.destroy();
  state.charts[name] = new Chart(document.getElementById(`chart-${name}`), {
    type, data: { labels, datasets },
    options: { animation: false, maintainAspectRatio: false,
      scales: stacked ? { x: { stacked: true }, y: { stacked: true } } : {} },
  });
}

// ---- live updates ------------------------------------------------------------------------
function connectLive() {
  const source = new EventSource("/api/live");
  const status = document.getElementById("live-status");
  source.onopen = () => { status.textContent = "live"; };
  source.onerror = () => { status.textContent = "reconnecting…"; };
  source.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "snapshot") {
      state.rows = new Map(message.conversations.map((r) => [r.conversation_id, r]));
      renderFloor();
    } else if (message.type === "conversation") {
      state.rows.set(message.row.conversation_id, { ...message.row, _flash: true });
      renderFloor();
      if (state.detailId === message.row.conversation_id) openDetail(state.detailId);
    } else if (message.type === "escalation") {
      state.cases.set(message.case.case_id, message.case);
      renderEscalations();
    } else if (message.type === "claim") {
      const c = state.cases.get(message.case_id);
      if (c) { c.claim = message.claim; renderEscalations(); }
    } else if (message.type === "tick") {
      renderFloor();
    }
  };
}

function showTab(name) {
  for (const button of document.querySelectorAll("button.tab")) button.classList.toggle("active", button.dataset.tab === name);
  for (const panel of document.querySelectorAll("section.panel")) panel.hidden = panel.id !== name;
  if (name === "history") loadHistory();
  if (name === "escalations") loadEscalations();
  if (name === "agreement") loadAgreement();
}

async function main() {
  state.me = await (await api("/api/me")).json();
  document.getElementById("user").textContent = state.me.username;
  for (const button of document.querySelectorAll("button.tab")) button.addEventListener("click", () => showTab(button.dataset.tab));
  document.getElementById("detail-close").addEventListener("click", () => { state.detailId = null; document.getElementById("detail").hidden = true; });
  document.getElementById("escalation-status").addEventListener("change", loadEscalations);
  document.getElementById("erase-customer").addEventListener("click", eraseCustomer);
  document.getElementById("history-window").addEventListener("change", loadHistory);
  document.getElementById("sign-out").addEventListener("click", async () => {
    await api("/api/logout", { method: "POST" });
    location.href = "/login";
  });
  await loadEscalations();
  connectLive();
}

main();
