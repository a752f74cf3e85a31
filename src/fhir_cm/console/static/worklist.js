// The console's Worklist view: what is due from a case manager across their open cases (GET /api/v1/worklist),
// earliest due first. A view of console.js like the others (its helpers h, api, table, show are the page's own:
// classic scripts share one global scope); a file of its own to keep console.js short. The address holds the
// page number only (#worklist/2); the filters stay in the tab's session, as the outcomes' do.
"use strict";

const WORKLIST_PER_PAGE = 25;
const WORKLIST_KINDS = ["referral-due", "referral-no-reply", "transition-follow-up", "goal-past-due", "no-face-to-face"];
const WORKLIST_FILTERS = "fhir-cm-worklist";

// The page an address names: #worklist is the first; anything but a page number names no page.
function worklistPageOf(arg) {
  if (arg === undefined || arg === "") return 1;
  if (/^[1-9][0-9]{0,8}$/.test(arg)) return Number(arg);
  throw new ApiError(404, `There is no page at this address: ${location.hash}`);
}

// How far the due day is from the list's day, in words (the colour only repeats it).
function dueIn(item, on) {
  const days = Math.round((Date.parse(`${item.due}T00:00:00Z`) - Date.parse(`${on}T00:00:00Z`)) / 86400000);
  const n = (k) => `${k} ${k === 1 ? "day" : "days"}`;
  if (days < 0) return h("span", { class: "overdue" }, `Overdue by ${n(-days)}`);
  return h("span", { class: "due" }, days === 0 ? "Due today" : `Due in ${n(days)}`);
}

function worklistForm(filters, managers) {
  const supervisor = state.me.role === "supervisor";
  return h("form", { class: "inline", "aria-label": "Worklist filters", onsubmit: (e) => {
    e.preventDefault();
    const f = e.target;
    sessionStorage.setItem(WORKLIST_FILTERS, JSON.stringify({
      kind: f.kind.value, overdue: f.overdue.checked, due_before: f.due_before.value,
      case_manager: supervisor ? f.case_manager.value : "" }));
    // The filtered list starts on its first page.
    if (location.hash === "#worklist") route(); else location.hash = "#worklist";
  } },
    supervisor ? h("label", {}, "Case manager", h("select", { name: "case_manager" },
      h("option", { value: "" }, "Every case manager"),
      managers.map((m) => h("option", { value: m.id, selected: m.id === filters.case_manager }, m.name ? `${m.name} (${m.id})` : m.id)))) : null,
    h("label", {}, "Kind", h("select", { name: "kind" },
      h("option", { value: "" }, "Every kind"),
      WORKLIST_KINDS.map((k) => h("option", { value: k, selected: k === filters.kind }, label(k))))),
    h("label", {}, "Due before", h("input", { type: "date", name: "due_before", value: filters.due_before || "" })),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "overdue", checked: Boolean(filters.overdue) }), "Overdue only"),
    h("button", { type: "submit" }, "Show"));
}

function worklistPager(pageNumber, pages, shown, total) {
  const first = (pageNumber - 1) * WORKLIST_PER_PAGE + 1;
  return h("nav", { "aria-label": "Pages of the worklist", class: "pager" },
    pageNumber > 1 ? h("a", { href: `#worklist/${pageNumber - 1}` }, "Previous page") : null,
    h("span", {}, ` Items ${first}–${first + shown - 1} of ${total} (page ${pageNumber} of ${pages}) `),
    pageNumber < pages ? h("a", { href: `#worklist/${pageNumber + 1}` }, "Next page") : null);
}

async function worklistView(arg) {
  const pageNumber = worklistPageOf(arg);
  const filters = JSON.parse(sessionStorage.getItem(WORKLIST_FILTERS) || "{}");
  const supervisor = state.me.role === "supervisor";
  const params = new URLSearchParams({ limit: WORKLIST_PER_PAGE, offset: (pageNumber - 1) * WORKLIST_PER_PAGE });
  for (const name of ["kind", "due_before", "case_manager"]) if (filters[name]) params.set(name, filters[name]);
  if (filters.overdue) params.set("overdue", "true");
  // A supervisor chooses among the case managers of the caseload they oversee.
  const managers = supervisor
    ? (await api("/api/v1/caseload")).managers.filter((m) => m.case_manager).map((m) => ({ id: m.case_manager, name: m.case_manager_name }))
    : [];
  let data;
  try {
    data = await api(`/api/v1/worklist?${params}`);
  } catch (err) {
    // A filter the API refuses is shown with the form, so it can be put right, instead of taking the view's place.
    if (!(err instanceof ApiError) || err.status === 401 || err.status === 0) throw err;
    show(h("h1", {}, "Worklist"), worklistForm(filters, managers), h("p", { class: "error", role: "alert" }, err.message));
    return;
  }
  const pages = Math.max(1, Math.ceil(data.total / WORKLIST_PER_PAGE));
  // The list shrank under this page (items done since): its last page is shown instead.
  if (!data.items.length && data.total) { location.hash = `#worklist/${pages}`; return; }
  const whose = data.case_manager ? managers.find((m) => m.id === data.case_manager) : null;
  const title = supervisor && data.case_manager ? `Worklist of ${(whose && whose.name) || data.case_manager}` : "Worklist";
  const headers = ["Due", "When", "Case", "What is due", "Kind", "Since", ...(supervisor ? ["Case manager"] : [])];
  const rows = data.items.map((item) => {
    const written = item.dates_as_written || {};
    return [
      writtenDay(written["/due"], item.due),
      dueIn(item, data.on),
      h("a", { href: `#case/${encodeURIComponent(item.case_id)}` }, item.case_id),
      item.what,
      label(item.kind),
      writtenDay(written["/since"], item.since),
      ...(supervisor ? [item.case_manager_name || item.case_manager || "Not assigned"] : []),
    ];
  });
  show(
    h("h1", {}, pages > 1 ? `${title} on ${data.on} (page ${pageNumber} of ${pages})` : `${title} on ${data.on}`),
    worklistForm(filters, managers),
    unreadableNote(data.unreadable),
    h("p", { class: "muted", role: "status" }, data.total
      ? `${data.total} ${data.total === 1 ? "item" : "items"}, ${data.overdue} overdue, earliest due first.`
      : "Nothing is due."),
    data.total ? table("Worklist", headers, rows) : null,
    pages > 1 ? worklistPager(pageNumber, pages, data.items.length, data.total) : null,
  );
}
