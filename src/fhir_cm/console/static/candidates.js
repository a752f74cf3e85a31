// The console's Candidates view: the patients population screening (`fhir-cm identify`, the worker) found may
// need a case manager, for supervisors to enrol. A view of console.js like the others (its helpers h, api, table,
// show are the page's own: classic scripts share one global scope); a file of its own to keep console.js short.
// The address holds the page number only (#candidates/2), never a patient id.
"use strict";

const CANDIDATES_PER_PAGE = 25;
// Enrolment makes at most this many cases at once (the API's limit on "top" and on the patients named).
const ENROL_MOST = 500;

// The page of the list an address names: #candidates is the first; anything but a page number names no page.
function candidatePage(arg) {
  if (arg === undefined || arg === "") return 1;
  if (!/^[1-9][0-9]{0,8}$/.test(arg)) throw new ApiError(404, `There is no page at this address: ${location.hash}`);
  return Number(arg);
}

// What an enrolment did, said over the list as it now stands: the cases made (each a link to it), and each
// patient it did not enrol with the API's reason (already in an open case, no longer a candidate).
function enrolReport(report, programme) {
  const made = report.enrolled, skipped = Object.entries(report.skipped);
  const parts = [];
  if (made.length) {
    parts.push(h("p", { class: "ok" }, `${made.length} ${made.length === 1 ? "case" : "cases"} made (referred, ${label(programme)}):`),
      h("ul", {}, made.map((e) => h("li", {}, h("a", { href: `#case/${encodeURIComponent(e.case_id)}` }, `Case ${e.case_id}`), ` for patient ${e.patient_id}`))));
  }
  if (skipped.length) {
    parts.push(h("p", { class: "error" }, `Not enrolled: ${skipped.length}`),
      h("ul", {}, skipped.map(([patient, why]) => h("li", {}, `Patient ${patient}: ${why}`))));
  }
  if (!parts.length) parts.push(h("p", { class: "muted" }, "Nobody was enrolled: no candidate is left to enrol."));
  return [h("div", { role: "status" }, parts)];
}

// Enrolling answers with what it made and whom it left out; a request refused whole (403 for a programme the key
// is not for, 409 without a FHIR server, 422) is said over the list as it stands, the choice kept to put right.
async function enrol(form, submitter, pageNumber) {
  const programme = form.programme.value;
  state.enrolProgramme = programme;
  const byTop = submitter && submitter.value === "top";
  const top = Number(form.top.value);
  // The list's checkboxes belong to the form by their form attribute: its elements hold them.
  const patients = [...form.elements].filter((el) => el.name === "patient" && el.checked).map((box) => box.value);
  const said = (text) => h("p", { class: "error", role: "alert" }, text);
  if (byTop && !(Number.isInteger(top) && top >= 1 && top <= ENROL_MOST)) {
    form.querySelector("#enrol-said").replaceChildren(said(`Say how many of the top candidates to enrol: 1 to ${ENROL_MOST}.`));
    return;
  }
  if (!byTop && !patients.length) {
    form.querySelector("#enrol-said").replaceChildren(said("Choose at least one candidate in the list, or enrol the top ones."));
    return;
  }
  for (const button of form.querySelectorAll("button")) button.disabled = true;
  let report;
  try {
    report = await api("/api/v1/candidates/enrol", { method: "POST", body: byTop ? { top, programme } : { patients, programme } });
  } catch (err) {
    if (!(err instanceof ApiError) || err.status === 401 || err.status === 0) throw err;
    await candidatesView(pageNumber, [said(`Nobody was enrolled: ${err.message}`)], byTop ? [] : patients);
    return;
  }
  await candidatesView(pageNumber, enrolReport(report, programme));
}

function enrolForm(pageNumber) {
  // A supervisor of one programme enrols into that one only (the API refuses another): only theirs is offered.
  const offered = state.me.programme ? [state.me.programme] : PROGRAMMES.filter((p) => p);
  const chosen = offered.includes(state.enrolProgramme) ? state.enrolProgramme : offered[0];
  return h("form", { id: "enrol", class: "inline", "aria-labelledby": "enrol-title", onsubmit: (e) => {
    e.preventDefault();
    enrol(e.target, e.submitter, pageNumber).catch(failure);
  } },
    h("h2", { id: "enrol-title", class: "visually-hidden" }, "Enrol candidates"),
    h("label", {}, "Programme of the cases", h("select", { name: "programme" },
      offered.map((p) => h("option", { value: p, selected: p === chosen }, label(p))))),
    h("button", { type: "submit", class: "primary", name: "how", value: "chosen" }, "Enrol the chosen"),
    h("label", {}, "Or the top", h("input", { type: "number", name: "top", min: 1, max: ENROL_MOST, value: 10, inputmode: "numeric",
      // Enter in a form submits it by its first button ("Enrol the chosen"): here it means the top ones.
      onkeydown: (e) => { if (e.key === "Enter") { e.preventDefault(); e.target.form.requestSubmit(e.target.form.querySelector("button[value=top]")); } } })),
    h("button", { type: "submit", name: "how", value: "top" }, "Enrol the top ones"),
    h("div", { id: "enrol-said" }));
}

// Which ranking made a row (the API's scope): the whole population's, or a Group's run, which ranks its members
// only — a clinic's candidates are told from the server's. Rows ranked before scopes were kept do not say.
function rankedAmong(scope) {
  if (scope === "system") return "Whole population";
  if (typeof scope === "string" && scope.startsWith("Group/")) return `Group ${scope.slice("Group/".length)}`;
  return "Not recorded";
}

function candidatePager(pageNumber, pages, shown, total) {
  const first = (pageNumber - 1) * CANDIDATES_PER_PAGE + 1;
  return h("nav", { "aria-label": "Pages of candidates", class: "pager" },
    pageNumber > 1 ? h("a", { href: `#candidates/${pageNumber - 1}` }, "Previous page") : null,
    h("span", {}, ` Candidates ${first}–${first + shown - 1} of ${total} (page ${pageNumber} of ${pages}) `),
    pageNumber < pages ? h("a", { href: `#candidates/${pageNumber + 1}` }, "Next page") : null);
}

async function candidatesView(arg, said, kept = []) {
  let pageNumber = typeof arg === "number" ? arg : candidatePage(arg);
  const ask = (n) => api(`/api/v1/candidates?limit=${CANDIDATES_PER_PAGE}&offset=${(n - 1) * CANDIDATES_PER_PAGE}`);
  let data;
  try {
    data = await ask(pageNumber);
    // The list shrank under this page (candidates enrolled here or elsewhere): its last page is shown instead.
    if (!data.candidates.length && data.total) {
      pageNumber = Math.ceil(data.total / CANDIDATES_PER_PAGE);
      data = await ask(pageNumber);
    }
  } catch (err) {
    // A case manager's key (by a link or a typed address): the API's refusal, with what the view is for.
    if (err instanceof ApiError && err.status === 403) throw new ApiError(403, `The candidates are for supervisors: ${err.message}.`);
    throw err;
  }
  const pages = Math.max(1, Math.ceil(data.total / CANDIDATES_PER_PAGE));
  const notice = said || [];
  if (!data.total) {
    show(h("h1", {}, "Candidates"), ...notice,
      h("p", {}, "No candidates: screening has found nobody who is in no case yet. Population screening fills this list: run ",
        h("code", {}, "fhir-cm identify"), " (the worker also screens on its schedule) against the configured FHIR server."));
    return;
  }
  const server = data.candidates[0].server_base;
  show(
    h("h1", {}, pages > 1 ? `Candidates (page ${pageNumber} of ${pages})` : "Candidates"),
    ...notice,
    h("p", { class: "muted" }, `Patients the last screening of ${server} found may need case management, in no case yet, highest score first; `
      + "each ranked among the whole population or a Group's members, as its last ranking was run."),
    enrolForm(pageNumber),
    table("Candidates", [unseen("Choose"), "Patient", "Score", "Reasons", "Screened", "Ranked among"], data.candidates.map((c) => [
      h("label", {}, h("input", { type: "checkbox", name: "patient", form: "enrol", value: c.patient_id, checked: kept.includes(c.patient_id) }),
        unseen(`Choose patient ${c.patient_id}`)),
      c.patient_id,
      String(c.score),
      h("ul", { class: "reasons" }, c.reasons.map((r) => h("li", {}, r.text || label(r.reason)))),
      fmtDay(c.assessed_on),
      rankedAmong(c.scope),
    ])),
    pages > 1 ? candidatePager(pageNumber, pages, data.candidates.length, data.total) : null,
  );
}
