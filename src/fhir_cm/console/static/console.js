// The fhir-cm console: a thin client of the fhir-cm API (/api/v1 and /fhir), nothing of its own.
// The API key lives in this tab's sessionStorage and goes out as X-API-Key; views are chosen by the
// URL fragment, which holds only opaque case ids, never personal data. Every value from the API is
// put in the page as text (h() below), never as HTML.
"use strict";

const KEY = "fhir-cm-api-key";
const PROGRAMMES = ["", "health-care", "social-work", "rehabilitation", "child-protection", "behavioural-health"];
const state = { me: null, enrolProgramme: null };
const $ = (sel) => document.querySelector(sel);

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

// A server's failure (5xx) told in words: the API's own says what failed and gives the request id, which the
// logs know it by and a reader can quote; a gateway's (no fhir-cm answer behind it) has only its status,
// and over HTTP/2 not even the words of it ("HTTP 502").
function serverTrouble(status, said, requestId) {
  if (said) return `The fhir-cm server could not do this: ${said}.${requestId ? ` Request id: ${requestId}.` : ""}`;
  const busy = status === 502 || status === 503 || status === 504;
  return busy ? `The fhir-cm server is not answering just now (HTTP ${status}): try again in a moment.`
    : `The fhir-cm server could not do this (HTTP ${status}).`;
}

// The requests of the view on screen. Moving to another view or signing out cancels them (an
// AbortError, which failure() ignores), so a late answer never replaces the view the person moved on
// to, nor shows anything once they signed out.
let pending = new AbortController();
function cancelPending() {
  pending.abort();
  pending = new AbortController();
}

async function api(path, options = {}) {
  const key = sessionStorage.getItem(KEY);
  const signal = pending.signal;
  const headers = { "X-API-Key": key || "", Accept: "application/json", ...(options.headers || {}) };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { ...options, headers, signal, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  } catch (err) {
    // No answer at all (server down, network gone): the browser's own words ("Failed to fetch") say nothing to a reader.
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "The fhir-cm server cannot be reached: check the connection, then try again.");
  }
  const text = await response.text();
  signal.throwIfAborted();
  if (!response.ok) {
    // An error is told by its problem document, or by its status when it is not JSON (a proxy's page).
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    // A problem names each wrong field (its detail may only say "see errors"); an OperationOutcome its issue.
    const fields = data && Array.isArray(data.errors) ? data.errors.map((e) => `${e.field}: ${e.message}`).join("; ") : "";
    const said = data && (data.detail || (data.issue && data.issue[0] && data.issue[0].diagnostics));
    if (response.status >= 500) throw new ApiError(response.status, serverTrouble(response.status, said, data && (data.request_id || response.headers.get("X-Request-Id"))));
    throw new ApiError(response.status, fields || said || response.statusText || `HTTP ${response.status}`);
  }
  return text ? JSON.parse(text) : null;
}

// -- small formatting helpers --------------------------------------------------------------------------
const label = (code) => (code ? String(code).replaceAll("-", " ") : "—");
const fmtDay = (d) => d || "—";
const pct = (x) => (x === null || x === undefined ? "—" : `${Math.round(x * 100)} %`);
// A party by name, by id when it has none. Another server's (an outside party) is never a local one of its id: it
// says so, and is named by its reference there when it has no name.
const RECORD = { patient: "Patient", practitioner: "Practitioner", organisation: "Organization", "related-person": "RelatedPerson" };
const hostOf = (url) => { try { return new URL(url).host; } catch { return url; } };
const party = (p) => (!p ? "—" : !p.server ? p.name || p.id
  : `${p.name || `${p.server}/${RECORD[p.kind] || p.kind}/${p.id}`} (outside: ${hostOf(p.server)})`);
const pad = (n) => String(n).padStart(2, "0");
// The reader's own day: toISOString() is UTC's, a day ahead in the Americas' evenings, behind in the Pacific's mornings.
const localDay = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
const today = () => localDay(new Date());
// The zone of a time read on the reader's clock, as its offset on that day ("UTC+13", "UTC-3:30", "UTC"): a
// time without it reads as the server's, or UTC's, to whoever is shown the page or a screenshot of it.
function zone(d) {
  const east = -d.getTimezoneOffset(), minutes = Math.abs(east) % 60;
  return east === 0 ? "UTC" : `UTC${east > 0 ? "+" : "-"}${Math.floor(Math.abs(east) / 60)}${minutes ? `:${pad(minutes)}` : ""}`;
}
// An instant the API stamps in UTC (a pull, a failed push, a notification), read on the reader's own day and
// clock as the console's other times are, its zone said; the exact stamp stays in the element's datetime and title.
const clock = (iso) => { const d = new Date(iso); return Number.isNaN(d.getTime()) ? String(iso) : `${localDay(d)} ${pad(d.getHours())}:${pad(d.getMinutes())} ${zone(d)}`; };
// A day the API read from a year or a month its source wrote (a goal due "2024-06" is held as due by 2024-06-30):
// shown as written, so nobody takes it for a deadline someone set; the day it is read as is in its title.
// ``written`` is the case's dates_as_written (JSON pointer into the case → the date as written).
const asWritten = (written, pointer, day) => (day ? (pointer && written[pointer]) || day : null);
// A move's date is the day its stay ended, or the next began: the pointer to that day, to show it as written.
function movedOn(c, t) {
  const from = c.stays.findIndex((s) => s.id === t.from_stay), to = c.stays.findIndex((s) => s.id === t.to_stay);
  if (from >= 0 && c.stays[from].end === t.date) return `/stays/${from}/end`;
  return to >= 0 && c.stays[to].start === t.date ? `/stays/${to}/start` : null;
}
// ``day`` as written (``as``: a year or a month) where it was, the day it is read as in its title.
const writtenDay = (as, day) => (as ? h("time", { datetime: as, title: `written as ${as}, read as ${day}` }, as) : fmtDay(day));
function dayCell(written, pointer, day) {
  return writtenDay(day && pointer ? written[pointer] : undefined, day);
}
// A follow-up due, as the API says it was written (a month: due by its last day, the day in the title).
const nextDue = (c) => writtenDay(c.next_follow_up_due_as_written, c.next_follow_up_due);
const followUpDue = (t) => writtenDay(t.follow_up_due_as_written, t.follow_up_due);
const when = (iso, none = "—") => (iso ? h("time", { datetime: iso, title: iso }, clock(iso)) : none);

// Stored cases this version cannot read (stored before a rule of the case model), which an answer left out.
function unreadableNote(n) {
  if (!n) return null;
  const [cases, verb, them] = n === 1 ? ["case", "is", "it"] : ["cases", "are", "them"];
  return h("p", { class: "error", role: "status" }, `${n} stored ${cases} this version cannot read ${verb} left out; \`fhir-cm check\` lists ${them}.`);
}

// A column's name where the column says it without one (a tag, a button): a screen reader names every cell by it.
const unseen = (text) => h("span", { class: "visually-hidden" }, text);

function table(caption, headers, rows) {
  return h("table", {},
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    // A long text (a goal, a service, a server's reason) may wrap anywhere; short values keep their words.
    h("tbody", {}, rows.length ? rows.map((r) => h("tr", {}, r.map((c) => h("td", { class: typeof c === "string" && c.length > 24 ? "text" : null }, c))))
      : h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, "None."))));
}

function show(...nodes) {
  const view = $("#view");
  // A part a view leaves out is null (a filter only some see): replaceChildren would write it as "null".
  view.replaceChildren(...nodes.filter((node) => node !== null && node !== undefined));
  const heading = view.querySelector("h1");
  if (heading) { heading.setAttribute("tabindex", "-1"); heading.focus(); }
  // The tab, the history and a screen reader name the view by the title (headings hold ids, never names).
  document.title = heading ? `${heading.textContent} · fhir-cm console` : "fhir-cm console";
}

function failure(err) {
  if (err.name === "AbortError") return; // the view was left: its answers no longer matter
  if (err instanceof ApiError && err.status === 401) { signOut("The key was refused: sign in again."); return; }
  const title = { 0: "No connection", 403: "Not allowed", 404: "Not found" }[err.status] || (err.status >= 500 ? "The server had a problem" : "Something went wrong");
  show(h("h1", {}, title), h("p", { class: "error", role: "alert" }, err.message));
}

// -- sign in / out ---------------------------------------------------------------------------------------
// A service key reads the FHIR façade for another system: every view of the console would refuse it.
const SERVICE_KEY = "This is a service key: it reads the FHIR façade (/fhir) for another system, and the console is not for it. Sign in with a supervisor's or a case manager's key.";

async function signIn(key) {
  sessionStorage.setItem(KEY, key);
  try {
    const me = await api("/api/v1/me");
    if (me.role === "service") throw new ApiError(403, SERVICE_KEY);
    state.me = me;
  } catch (err) {
    sessionStorage.removeItem(KEY);
    throw err;
  }
}

function signOut(message) {
  // Nothing of the key's session stays: its requests, what it read, the filters it chose.
  cancelPending();
  for (const item of [KEY, "fhir-cm-programme", "fhir-cm-outcomes", "fhir-cm-worklist"]) sessionStorage.removeItem(item);
  state.me = null; state.enrolProgramme = null;
  $("#resource-dialog").close();
  $("#resource-title").textContent = "Resource"; $("#resource-json").textContent = "";
  $("#nav").hidden = true; $("#logout").hidden = true; $("#who").textContent = "";
  $("#view").replaceChildren();
  document.title = "Sign in · fhir-cm console";
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  $("#api-key").focus();
}

function signedIn() {
  $("#login").hidden = true;
  $("#nav").hidden = false; $("#logout").hidden = false;
  const me = state.me;
  const scope = me.role === "case-manager" ? ` · ${me.practitioner_id}` : me.programme ? ` · ${label(me.programme)}` : "";
  $("#who").textContent = `${me.name} (${label(me.role)}${scope})`;
  // Candidates are enrolled by supervisors: a case manager's key is not offered the view (the API refuses it).
  $("#nav a[data-view=candidates]").hidden = me.role !== "supervisor";
  route();
}

// -- views -------------------------------------------------------------------------------------------------
async function caseloadView() {
  const params = new URLSearchParams();
  const programme = sessionStorage.getItem("fhir-cm-programme");
  if (programme && state.me.role === "supervisor") params.set("programme", programme);
  const data = await api(`/api/v1/caseload?${params}`);
  const filter = state.me.role === "supervisor" && !state.me.programme
    ? h("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); sessionStorage.setItem("fhir-cm-programme", e.target.programme.value); route(); } },
      h("label", {}, "Programme", h("select", { name: "programme" },
        PROGRAMMES.map((p) =>
          h("option", { value: p, selected: p === (programme || "") }, p ? label(p) : "All programmes")))),
      h("button", { type: "submit" }, "Show"))
    : null;
  const manager = (m) => (m.case_manager ? party({ kind: "practitioner", id: m.case_manager, name: m.case_manager_name, server: m.case_manager_server }) : null);
  const cards = data.managers.map((m, i) => h("article", { class: "card", "aria-labelledby": `m-${i}` },
    h("h2", { id: `m-${i}` }, manager(m) || "Not assigned"),
    h("p", {},
      h("label", {}, `${m.open_cases} open of ${m.limit} `, h("meter", { min: 0, max: Math.max(m.limit, m.open_cases), high: m.limit, value: m.open_cases })),
      m.over_limit ? h("span", { class: "over" }, " over the limit") : null),
    h("p", { class: "muted" }, `Face to face: average ${m.average_days_since_face_to_face ?? "—"} days, longest ${m.max_days_since_face_to_face ?? "—"}; never seen ${m.cases_never_seen}`),
    table(`Open cases of ${manager(m) || "no one"}`, ["Case", "Status", "Days since face to face", "Next follow-up"],
      m.cases.map((c) => [
        h("a", { href: `#case/${encodeURIComponent(c.case_id)}` }, c.case_id),
        label(c.status),
        c.days_since_face_to_face === null ? h("span", { class: "due" }, "never") : String(c.days_since_face_to_face),
        c.follow_ups_overdue ? h("span", { class: "overdue" }, `${c.follow_ups_overdue} overdue (next `, nextDue(c), ")")
          : c.next_follow_up_due ? h("span", { class: "due" }, "due ", nextDue(c)) : "—",
      ]))));
  show(h("h1", {}, `Caseload on ${data.on}`), filter, unreadableNote(data.unreadable), cards.length ? h("div", { class: "cards" }, cards) : h("p", {}, "No open cases."));
}

const SETTING_ORDER = ["emergency", "acute-hospital", "psychiatric", "inpatient-rehabilitation", "skilled-nursing", "long-term-care", "hospice", "home-health", "ambulatory", "home"];

function lanes(stays, transitions) {
  // One lane per care setting, each stay a bar from its start to its end (or today), readmissions marked.
  const days = (d) => Date.parse(`${d}T00:00:00Z`) / 86400000;
  const settings = [...new Set(stays.map((s) => s.setting))].sort((a, b) => SETTING_ORDER.indexOf(a) - SETTING_ORDER.indexOf(b));
  if (!stays.length) return h("p", { class: "muted" }, "No stays recorded.");
  const start = Math.min(...stays.map((s) => days(s.start)));
  const end = Math.max(...stays.map((s) => days(s.end || today())), start + 1);
  const width = 900, left = 150, row = 34, height = settings.length * row + 30;
  const x = (d) => left + ((days(d) - start) / (end - start)) * (width - left - 10);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  const el = (tag, attrs, text) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (text) e.textContent = text; return e; };
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "lanes");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Stays per care setting: ${stays.map((s) => `${label(s.setting)} from ${s.start} to ${s.end || "now"}`).join("; ")}`);
  settings.forEach((setting, i) => {
    svg.append(el("text", { x: 8, y: i * row + 22, "font-size": 13 }, label(setting)));
    svg.append(el("line", { x1: left, x2: width - 10, y1: i * row + 17, y2: i * row + 17, stroke: "#d0d7de" }));
  });
  for (const s of stays) {
    const y = settings.indexOf(s.setting) * row + 8;
    const w = Math.max(x(s.end || today()) - x(s.start), 4);
    const bar = el("rect", { x: x(s.start), y, width: w, height: 18, rx: 3, fill: s.end ? "#0b5cad" : "#3fa34d" });
    bar.append(el("title", {}, `${label(s.setting)}: ${s.start} – ${s.end || "ongoing"}`));
    svg.append(bar);
  }
  for (const t of transitions.filter((t) => t.readmission)) {
    svg.append(el("text", { x: x(t.date) - 4, y: height - 6, "font-size": 12, fill: "#b42318" }, "▲ readmission"));
  }
  svg.append(el("text", { x: left, y: height - 6, "font-size": 11, fill: "#57606a" }, new Date(start * 86400000).toISOString().slice(0, 10)));
  return svg;
}

function journey(c, recorded, written) {
  const ev = [];
  const as = (pointer, day) => asWritten(written, pointer, day);
  ev.push([c.period.start, "Enrolled", `${label(c.programme)} programme${c.referral_source ? `, referred by ${party(c.referral_source)}` : ""}`,
    as("/period/start", c.period.start)]);
  (c.status_history || []).forEach((s, i) => ev.push([s.start, "Status", label(s.status), as(`/status_history/${i}/start`, s.start)]));
  c.stays.forEach((s, i) => {
    ev.push([s.start, "Admitted", `${label(s.setting)}${s.provider ? ` · ${party(s.provider)}` : ""}`, as(`/stays/${i}/start`, s.start)]);
    if (s.end) ev.push([s.end, "Left", `${label(s.setting)}${s.discharge_disposition ? ` → ${label(s.discharge_disposition)}` : ""}`, as(`/stays/${i}/end`, s.end)]);
  });
  for (const t of recorded) ev.push([t.date, "Transition", h("span", {}, `${label(t.from_setting)} → ${label(t.to_setting)}`,
    t.readmission ? h("span", { class: "tag readmission" }, " readmission") : null,
    t.follow_up_due ? [" · follow-up due ", followUpDue(t)] : ""), as(movedOn(c, t), t.date)]);
  c.referrals.forEach((r, i) => ev.push([r.authored, "Referral", `${label(r.kind)}: ${r.service} — ${label(r.status)}${r.due ? ` (due ${as(`/referrals/${i}/due`, r.due)})` : ""}`,
    as(`/referrals/${i}/authored`, r.authored)]));
  c.goals.forEach((g, i) => ev.push([g.start || c.period.start, g.self_care ? "Self-care goal" : "Goal", `${g.description} — ${label(g.achievement || g.status)}${g.due ? ` (due ${as(`/goals/${i}/due`, g.due)})` : ""}`,
    g.start ? as(`/goals/${i}/start`, g.start) : as("/period/start", c.period.start)]));
  c.contacts.forEach((k, i) => ev.push([k.date, "Contact", `${label(k.mode)}${k.note ? ` — ${k.note}` : ""}`, as(`/contacts/${i}/date`, k.date)]));
  if (c.period.end) ev.push([c.period.end, "Closed", label(c.status), as("/period/end", c.period.end)]);
  ev.sort((a, b) => String(a[0]).localeCompare(String(b[0])));
  // Ordered by the day each is read as; each shown as written (a year or a month where that is all it says).
  return h("ol", { class: "timeline", "aria-label": "The case's journey, oldest first" },
    ev.map(([d, what, text, shown]) => h("li", {}, h("time", { datetime: shown || d, title: shown && shown !== d ? `written as ${shown}, read as ${d}` : null }, shown || d),
      h("strong", {}, `${what}: `), text)));
}

async function fhirLinks(c) {
  if (!(state.me.role === "service" || (state.me.role === "supervisor" && !state.me.programme))) {
    return h("p", { class: "muted" }, "The FHIR resources are served to service keys and supervisors of every programme.");
  }
  const types = ["EpisodeOfCare", "CarePlan", "Goal", "ServiceRequest", "CareTeam", "Encounter", "Communication"];
  const items = [];
  for (const type of types) {
    // Every page of the search: the façade pages by 20, and a long case has more contacts than that.
    let path = `/fhir/${type}?patient=${encodeURIComponent(c.patient.id)}`;
    while (path) {
      const bundle = await api(path, { headers: { Accept: "application/fhir+json" } });
      for (const e of bundle.entry || []) {
        const r = e.resource;
        items.push(h("li", {}, h("button", { type: "button", onclick: () => openResource(`${type}/${r.id}`).catch(failure) }, `${type}/${r.id}`)));
      }
      const next = (bundle.link || []).find((l) => l.relation === "next");
      // Followed on this page's own origin (a proxy may name the server otherwise), so the key stays here.
      path = next ? (({ pathname, search }) => pathname + search)(new URL(next.url, location.href)) : null;
    }
  }
  return h("ul", { "aria-label": "FHIR resources of this patient" }, items);
}

const HANDOFF = new Set(["acute-hospital", "skilled-nursing", "inpatient-rehabilitation"]);

function summaries(c, derived, written) {
  // The transfer summary of each move out of a hospital, SNF or rehabilitation stay (numbered as the API does).
  const moves = derived.filter((t) => HANDOFF.has(t.from_setting));
  if (!moves.length) return h("p", { class: "muted" }, "No move out of a hospital, SNF or rehabilitation stay.");
  return h("ul", { "aria-label": "Transfer summaries" }, moves.map((t, i) => h("li", {},
    h("button", { type: "button", onclick: () => openDocument(`/api/v1/cases/${encodeURIComponent(c.id)}/transitions/${i + 1}/summary`,
      `Transfer summary ${i + 1}`).catch(failure) },
      `Transfer summary ${i + 1}: ${label(t.from_setting)} → ${label(t.to_setting)}, ${asWritten(written, movedOn(c, t), t.date)}`))));
}

async function openDocument(path, title) {
  const doc = await api(path, { headers: { Accept: "application/fhir+json" } });
  $("#resource-title").textContent = title;
  $("#resource-json").textContent = JSON.stringify(doc, null, 2);
  $("#resource-dialog").showModal();
}

async function openResource(ref) {
  const resource = await api(`/fhir/${ref}`, { headers: { Accept: "application/fhir+json" } });
  $("#resource-title").textContent = ref;
  $("#resource-json").textContent = JSON.stringify(resource, null, 2);
  $("#resource-dialog").showModal();
}

async function caseView(caseId) {
  const [record, transitions] = await Promise.all([
    api(`/api/v1/cases/${encodeURIComponent(caseId)}`),
    api(`/api/v1/cases/${encodeURIComponent(caseId)}/transitions`),
  ]);
  const c = record.case;
  const written = record.dates_as_written || {};
  const resources = h("div", {}, h("p", { class: "muted" }, "Listing the FHIR resources…"));
  const moves = transitions.recorded.length ? transitions.recorded : transitions.derived;
  show(
    h("h1", {}, `Case ${c.id}`),
    h("p", {}, `${label(c.programme)} · ${label(c.status)} · case manager ${party(c.case_manager)} · patient ${party(c.patient)} · since ${asWritten(written, "/period/start", c.period.start)}`),
    h("h2", {}, "Stays per care setting"), lanes(c.stays, moves),
    h("h2", {}, "Transitions"),
    table("Transitions between care settings", ["Date", "From", "To", "Disposition", "Follow-up due", unseen("Readmission")],
      moves.map((t) => [dayCell(written, movedOn(c, t), t.date), label(t.from_setting), label(t.to_setting), label(t.discharge_disposition), followUpDue(t),
        t.readmission ? h("span", { class: "tag readmission" }, "readmission") : ""])),
    h("h2", {}, "Transfer summaries"), summaries(c, transitions.derived, written),
    h("h2", {}, "Referrals"),
    table("Referrals", ["Authored", "Kind", "Service", "Status", "Due"], c.referrals.map((r, i) => [dayCell(written, `/referrals/${i}/authored`, r.authored), label(r.kind), r.service, label(r.status), dayCell(written, `/referrals/${i}/due`, r.due)])),
    h("h2", {}, "Goals"),
    table("Goals", ["Goal", "Status", "Achievement", "Due"], c.goals.map((g, i) => [`${g.description}${g.self_care ? " (self-care)" : ""}`, label(g.status), label(g.achievement), dayCell(written, `/goals/${i}/due`, g.due)])),
    h("h2", {}, "Care team"),
    table("Care team", ["Member", "Role", "Since", "Until"], c.team.map((m, i) => [party(m.party), label(m.role), dayCell(written, `/team/${i}/start`, m.start), dayCell(written, `/team/${i}/end`, m.end)])),
    h("h2", {}, "Journey"), journey(c, moves, written),
    h("h2", {}, "FHIR resources"), resources,
  );
  // The case is read first; its FHIR resources (pages of the façade, many for a long case) come after, and
  // a façade that fails says so in their place instead of taking the whole case's.
  try {
    resources.replaceChildren(await fhirLinks(c));
  } catch (err) {
    if (!(err instanceof ApiError) || err.status === 401) throw err;
    resources.replaceChildren(h("p", { class: "error", role: "alert" }, `The FHIR resources could not be listed: ${err.message}`));
  }
}

function chart(title, labels, values, unit) {
  const canvas = h("canvas", { role: "img", "aria-label": `${title}: ${labels.map((l, i) => `${l} ${values[i] ?? "no data"}${unit}`).join(", ")}` });
  const box = h("figure", { class: "chart" }, h("figcaption", {}, h("strong", {}, title)), canvas,
    table(title, ["Programme", title], labels.map((l, i) => [l, values[i] === null || values[i] === undefined ? "—" : `${values[i]}${unit}`])));
  if (window.Chart) {
    requestAnimationFrame(() => new window.Chart(canvas, {
      type: "bar", data: { labels, datasets: [{ label: title, data: values, backgroundColor: "#0b5cad" }] },
      options: { animation: false, plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } },
    }));
  }
  return box;
}

function outcomesForm(form) {
  // A supervisor of one programme may ask for no other (the API refuses it): only theirs is offered.
  const offered = state.me.role === "supervisor" && state.me.programme ? [state.me.programme] : PROGRAMMES;
  return h("form", { class: "inline", onsubmit: (e) => {
    e.preventDefault();
    sessionStorage.setItem("fhir-cm-outcomes", JSON.stringify({
      programme: e.target.programme.value, from: e.target.from.value, to: e.target.to.value }));
    route();
  } },
    h("label", {}, "Programme", h("select", { name: "programme" },
      offered.map((p) =>
        h("option", { value: p, selected: p === (form.programme || "") }, p ? label(p) : "All programmes")))),
    h("label", {}, "From", h("input", { type: "date", name: "from", value: form.from || "" })),
    h("label", {}, "To", h("input", { type: "date", name: "to", value: form.to || "" })),
    h("button", { type: "submit" }, "Show"));
}

async function outcomesView() {
  const form = JSON.parse(sessionStorage.getItem("fhir-cm-outcomes") || "{}");
  const params = new URLSearchParams(Object.entries(form).filter(([, v]) => v));
  let data;
  try {
    data = await api(`/api/v1/outcomes?${params}`);
  } catch (err) {
    // The filter is kept for the session: one the API refuses (a period ending before it starts) is
    // shown with the form, so it can be put right, instead of taking the view's place.
    if (!(err instanceof ApiError) || err.status === 401) throw err;
    show(h("h1", {}, "Outcomes"), outcomesForm(form), h("p", { class: "error", role: "alert" }, err.message));
    return;
  }
  const names = data.programmes.map((p) => label(p.programme));
  const settings = [...new Set(data.programmes.flatMap((p) => p.length_of_stay.map((s) => s.setting)))];
  const losCharts = settings.map((s) => chart(`Median length of stay, ${label(s)} (days)`, names,
    data.programmes.map((p) => { const x = p.length_of_stay.find((l) => l.setting === s); return x ? x.median_days ?? null : null; }), ""));
  show(
    h("h1", {}, "Outcomes"),
    outcomesForm(form),
    unreadableNote(data.unreadable),
    h("div", { class: "charts" },
      chart("30-day readmission rate", names, data.programmes.map((p) => p.readmission_rate === null ? null : Math.round(p.readmission_rate * 100)), " %"),
      chart("Goal attainment", names, data.programmes.map((p) => p.goal_attainment_rate === null ? null : Math.round(p.goal_attainment_rate * 100)), " %"),
      chart("Median days from discharge to follow-up", names, data.programmes.map((p) => p.median_days_to_follow_up), " days"),
      ...losCharts),
    table("Outcome figures per programme", ["Programme", "Cases", "Discharges", "Readmissions (30 d)", "Goals attained", "Follow-ups", "Discharges without follow-up"],
      data.programmes.map((p) => [label(p.programme), p.cases, p.hospital_discharges, `${p.readmissions_30d} (${pct(p.readmission_rate)})`,
        `${p.goals_attained} of ${p.goals_due}`, p.follow_ups, p.discharges_without_follow_up])),
  );
}

function sides(conflict) {
  const pre = (title, value) => h("div", {}, h("h3", {}, title), h("pre", {}, value === null || value === undefined ? "(none)" : JSON.stringify(value, null, 2)));
  return h("div", { class: "sides" }, pre("Ours (fhir-cm)", conflict.local), pre("Theirs (the server)", conflict.server),
    pre("Base (last agreed)", conflict.base));
}

// A conflict settled or an entry cleared meanwhile (another tab, another person, the CLI, a pull) is
// said above the sync page as it now stands, rather than an error page in place of the list.
async function syncAction(request, done, undone) {
  try {
    await request();
  } catch (err) {
    if (!(err instanceof ApiError) || err.status === 401 || err.status === 0) throw err;
    await route(undefined, `${undone}: ${err.message}`);
    return;
  }
  await route(done);
}

function resolveConflict(id, resolution) {
  return syncAction(() => api(`/api/v1/sync/conflicts/${id}/resolve`, { method: "POST", body: { resolution } }),
    `Conflict ${id} settled: kept ${resolution === "local" ? "ours" : "theirs"}.`, `Conflict ${id} was not settled`);
}

function dismissEntry(id) {
  return syncAction(() => api(`/api/v1/sync/quarantine/${id}/dismiss`, { method: "POST" }),
    `Quarantine entry ${id} dismissed.`, `Quarantine entry ${id} was not dismissed`);
}

// What pulls could not take in: which resource, from where, why; not the resource itself (patient data,
// there for the API's caller). Dismissing one leaves it out until a new version of it comes, still bad.
function quarantineParts(entries, total) {
  if (!entries.length) return [h("p", { class: "muted" }, "Nothing in quarantine.")];
  const more = total > entries.length ? [h("p", { class: "muted" }, `The newest ${entries.length} of ${total} are shown.`)] : [];
  return [
    table("Quarantine", ["Entry", "Resource", "Server", "Version", "Why", "Set aside", "Last read", unseen("Action")], entries.map((q) => [
      q.id, `${q.resource_type || "?"}/${q.server_id || "(no id)"}`, q.source, q.version, q.reason, when(q.received_at), when(q.last_seen_at),
      h("button", { type: "button", onclick: () => dismissEntry(q.id).catch(failure) }, `Dismiss (entry ${q.id})`)])),
    ...more,
  ];
}

async function syncView(notice, problem) {
  const conflicts = await api("/api/v1/sync/conflicts");
  const parts = [h("h1", {}, "Sync health")];
  if (notice) parts.push(h("p", { class: "ok", role: "status" }, notice));
  if (problem) parts.push(h("p", { class: "error", role: "alert" }, problem));
  if (state.me.role === "supervisor") {
    const health = await api("/api/v1/sync/health");
    parts.push(
      h("h2", {}, `Outbox${health.fhir_base ? ` → ${health.fhir_base}` : " (no FHIR server configured)"}`),
      table("Outbox", ["Pending", "In flight", "Failed", "Done"], [[health.outbox.pending, health.outbox["in-flight"], health.outbox.failed, health.outbox.done]]),
      h("h2", {}, "Failed pushes"),
      table("Failed pushes", ["Case", "Attempts", "The server's reason", "When"], health.failed.map((f) => [
        h("a", { href: `#case/${encodeURIComponent(f.case_id)}` }, f.case_id), f.attempts, f.reason || "—", when(f.failed_at)])),
      // The API sends the newest 50: more than that are said, as the quarantine's are, not left unseen.
      health.failed_total > health.failed.length ? h("p", { class: "muted" }, `The newest ${health.failed.length} of ${health.failed_total} are shown.`) : null,
      h("h2", { id: "quarantine" }, `Quarantine (${health.quarantined})`),
      // The entries are patient data of no programme: a supervisor limited to one is told how many only.
      ...(state.me.programme
        ? [h("p", { class: "muted" }, "The resources set aside are shown to supervisors of every programme.")]
        : quarantineParts(await api("/api/v1/sync/quarantine?limit=100"), health.quarantined)),
      h("h2", {}, "Servers"),
      table("Servers", ["Server", "Last pull", "Watermarks"], health.servers.map((s) => [
        `${s.server_base}${s.configured ? " (configured)" : ""}`, when(s.last_pull, "never"),
        s.watermarks.map((w) => `${w.resource_type} ${clock(w.last_updated)}`).join(", ") || "—"])),
      h("h2", {}, "Subscriptions"),
      table("Subscriptions", ["Subscription", "Server", "Kind", "Status", "Patients", "Last notification"],
        health.subscriptions.map((s) => [s.id, s.server_base, s.kind, s.error ? `${label(s.status)} (${s.error})` : label(s.status),
          s.patients, when(s.last_notified_at, "never")])),
    );
  }
  parts.push(h("h2", { id: "conflicts" }, `Conflicts (${conflicts.length})`));
  if (!conflicts.length) parts.push(h("p", { class: "muted" }, "No open conflicts."));
  for (const c of conflicts) {
    parts.push(h("article", { class: "card", "aria-labelledby": `conflict-${c.id}` },
      h("h3", { id: `conflict-${c.id}` }, `Conflict ${c.id}: ${c.resource_type} of case `, h("a", { href: `#case/${encodeURIComponent(c.case_id)}` }, c.case_id)),
      h("p", {}, `Fields both sides changed: ${c.fields.join(", ")}`),
      sides(c),
      h("p", {},
        h("button", { type: "button", class: "primary", onclick: () => resolveConflict(c.id, "local").catch(failure) }, `Keep ours (conflict ${c.id})`), " ",
        h("button", { type: "button", onclick: () => resolveConflict(c.id, "server").catch(failure) }, `Keep theirs (conflict ${c.id})`))));
  }
  show(...parts);
}

// -- routing -------------------------------------------------------------------------------------------------
// A case's address as the console writes it; one cut short or typed by hand ("#case/%") names no page.
function caseId(arg) {
  try {
    return decodeURIComponent(arg);
  } catch {
    throw new ApiError(404, `There is no page at this address: ${location.hash}`);
  }
}

async function route(notice, problem) {
  if (!state.me) return;
  cancelPending();
  const [view, arg] = (location.hash.slice(1) || "caseload").split("/");
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  try {
    if (view === "case" && arg) await caseView(caseId(arg));
    else if (view === "worklist") await worklistView(arg);
    else if (view === "outcomes") await outcomesView();
    else if (view === "candidates") await candidatesView(arg);
    else if (view === "sync") await syncView(typeof notice === "string" ? notice : undefined, typeof problem === "string" ? problem : undefined);
    else await caseloadView();
  } catch (err) {
    failure(err);
  }
}

window.addEventListener("hashchange", () => route());
// The skip link moves focus to the content, not the address: "#main" in the URL is a view name to the router,
// which showed the caseload in place of the case being read.
$(".skip").addEventListener("click", (e) => { e.preventDefault(); $("#main").focus(); });
$("#logout").addEventListener("click", () => signOut("Signed out."));
$("#login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const key = $("#api-key").value.trim();
  $("#api-key").value = "";
  const invalid = "That key is not valid (unknown, malformed or revoked).";
  // A key is printable ASCII; anything else (a pasted "…") cannot even go in a header.
  if (!/^[\x21-\x7e]+$/.test(key)) { signOut(invalid); return; }
  try {
    await signIn(key);
    signedIn();
  } catch (err) {
    signOut(err instanceof ApiError && err.status === 401 ? invalid : err.message);
  }
});

(async () => {
  if (sessionStorage.getItem(KEY)) {
    // A key refused since (revoked, expired) or a server out of reach is said, not a silent sign-in form.
    try { await signIn(sessionStorage.getItem(KEY)); signedIn(); return; } catch (err) {
      signOut(err instanceof ApiError && err.status === 401 ? "The key was refused: sign in again." : err.message);
      return;
    }
  }
  signOut();
})();
