// The page's wiring: choose a signal, send it to the API like any client, show the answer.

import { HolterView, pacemakerRow } from "./holter.js";
import { parseSignal, SignalFormatError } from "./parse.js";
import { EcgTrace } from "./trace.js";

const PREDICTIONS_URL = "/api/v1/predictions/";
const STRIPS_URL = "/demo/strips/";
const MAX_LISTED_ERRORS = 10;

const $ = (id) => document.getElementById(id);
const stripCache = new Map();
let latestRequest = 0; // answers to older requests are dropped: the newest input wins
let ownSource = "text"; // the own-signal input touched last: "text" or "file"

const trace = new EcgTrace($("chart"), { describeBeat, onViewChange: showView });

function percent(p, digits = 1) {
  return `${(100 * p).toFixed(digits)} %`;
}

function describeBeat(beat, fs) {
  const kind = beat.arrhythmia_type === "V" ? "V, ventricular" : "N, normal";
  const parts = [
    `Beat ${beat.beat_index + 1} at ${(beat.position_sample / fs).toFixed(3)} s`,
    kind,
    `confidence ${percent(beat.confidence)}`,
  ];
  if (beat.rr_previous != null) parts.push(`RR before ${beat.rr_previous.toFixed(3)} s`);
  if (beat.qrs_width_ms != null) parts.push(`QRS ${Math.round(beat.qrs_width_ms)} ms`);
  return parts.join(", ");
}

// ---- status and errors ----

function setStatus(text) {
  $("status").textContent = text;
}

function showError(detail, fieldErrors = []) {
  const box = $("error");
  const heading = document.createElement("p");
  heading.className = "detail";
  heading.textContent = detail;
  box.replaceChildren(heading);
  if (fieldErrors.length) {
    const list = document.createElement("ul");
    for (const text of fieldErrors.slice(0, MAX_LISTED_ERRORS)) {
      const item = document.createElement("li");
      item.textContent = text;
      list.append(item);
    }
    if (fieldErrors.length > MAX_LISTED_ERRORS) {
      const more = document.createElement("li");
      more.textContent = `… and ${fieldErrors.length - MAX_LISTED_ERRORS} more`;
      list.append(more);
    }
    box.append(list);
  }
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").replaceChildren();
}

// the API's per-field messages, { field: [msg] } or nested by index, as "field[3]: msg"
function flattenErrors(errors, path = "") {
  if (Array.isArray(errors)) return [`${path || "body"}: ${errors.join(" ")}`];
  if (errors && typeof errors === "object") {
    return Object.entries(errors).flatMap(([key, value]) =>
      flattenErrors(value, path ? `${path}[${key}]` : key));
  }
  return [`${path || "body"}: ${errors}`];
}

// ---- calling the API ----

async function analyse(input) {
  const request = ++latestRequest;
  clearError();
  setStatus(`Analysing ${input.label}…`);
  $("result").setAttribute("aria-busy", "true");
  const body = {
    signal_data: input.values,
    sampling_rate: input.samplingRate,
    derivation: input.derivation,
    apply_ruleguard: $("ruleguard").checked,
    pacemaker: $("pacemaker").checked,
  };
  const started = performance.now();
  let response;
  let answer = null;
  try {
    response = await fetch(PREDICTIONS_URL, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
    answer = await response.json().catch(() => null);
  } catch (err) {
    if (request === latestRequest) failed(`Could not reach the service: ${err.message}`);
    return;
  }
  if (request !== latestRequest) return;
  $("result").removeAttribute("aria-busy");
  if (!response.ok) {
    const detail = typeof answer?.detail === "string"
      ? answer.detail : `The service answered ${response.status} ${response.statusText}.`;
    failed(detail, answer?.errors ? flattenErrors(answer.errors) : [], response.status);
    return;
  }
  const roundTrip = performance.now() - started;
  showResult(input, answer, roundTrip);
  setStatus(`${input.label}: ${answer.total_beats} beats, ${answer.ventricular_beats} V.`);
}

function failed(detail, fieldErrors = [], status = null) {
  latestRequest++; // an answer still on its way is for an older input: drop it
  $("result").removeAttribute("aria-busy");
  // the last result belongs to another signal: hide it rather than seem to answer this one
  $("result").hidden = true;
  setStatus(status ? `The service refused the signal (HTTP ${status}).` : "Nothing analysed.");
  showError(detail, fieldErrors);
}

// ---- the answer ----

function showResult(input, answer, roundTrip) {
  const section = $("result");
  section.hidden = false;
  section.dataset.source = input.id;
  section.dataset.predictionId = answer.prediction_id;
  renderSummary(input, answer, roundTrip);
  renderTable(answer.beat_predictions, input.samplingRate);
  trace.setData(input.values, input.samplingRate, answer.beat_predictions,
    answer.metadata?.unreadable_intervals_s ?? [], answer.metadata?.ventricular_flutter_intervals_s ?? []);
}

function renderSummary(input, answer, roundTrip) {
  const meta = answer.metadata || {};
  const total = answer.total_beats;
  const v = answer.ventricular_beats;
  const seconds = input.values.length / input.samplingRate;
  const burden = meta.pvc_burden_percent ?? (total ? (100 * v) / total : 0);
  // the service's rate reads readable beats only (null: too few); an answer without it, every beat
  const heartRate = "heart_rate_bpm" in meta ? meta.heart_rate_bpm : medianRateBpm(answer.beat_predictions);
  const rows = [
    ["Signal", `${input.label}: ${seconds.toFixed(1)} s at ${input.samplingRate} Hz, lead ${input.derivation}`
      + (meta.resampled ? ` (resampled to ${meta.model_sampling_rate} Hz for the model)` : "")],
    ["Beats", `${total} (${answer.normal_beats} N, ${v} V)`],
    ...(meta.pacemaker ? [pacemakerRow(meta.own_rhythm_beats)] : []),
    ["Heart rate", heartRate == null ? "none: too few readable beats" : `${Math.round(heartRate)} bpm`],
    ["V beats", `${v}, burden ${Number(burden).toFixed(1)} %`],
    ...(meta.signal_quality ? [["Signal quality", qualityText(meta)]] : []),
    ...(meta.ventricular_flutter_seconds ? [["Ventricular flutter", flutterText(meta), "risk risk-HIGH"]] : []),
    ["Risk level", answer.risk_level, `risk risk-${answer.risk_level}`],
    ["Overall", `${answer.overall_arrhythmia_type}, confidence ${percent(answer.overall_confidence)}`],
    ["Model", [meta.model_name, meta.model_version].filter(Boolean).join(" ") || "unknown"],
    ["Processing time", `${answer.processing_time_ms.toFixed(0)} ms in the service, ${roundTrip.toFixed(0)} ms round trip`],
  ];
  if (input.reference) {
    const counts = Object.entries(input.reference).map(([kind, n]) => `${n} ${kind}`).join(", ");
    rows.push(["Cardiologists' labels", `${counts} (S, F and Q count as N for this model)`]);
  }
  for (const warning of meta.warnings || []) rows.push(["Warning", warning, "warning"]);

  const list = $("summary");
  list.replaceChildren();
  for (const [name, value, className] of rows) {
    const term = document.createElement("dt");
    term.textContent = name;
    const data = document.createElement("dd");
    data.textContent = value;
    if (className) data.className = className;
    data.dataset.field = name;
    list.append(term, data);
  }
}

// beats per quality; unreadable beats are called N and left out of the burden (docs/ROBUSTNESS.md)
function qualityText(meta) {
  const q = meta.signal_quality;
  const text = `${q.good} good, ${q.noisy} noisy, ${q.unreadable} unreadable beats`;
  return meta.unreadable_seconds ? `${text} (${meta.unreadable_seconds.toFixed(1)} s unreadable)` : text;
}

// ventricular flutter or fibrillation (docs/ROBUSTNESS.md): risk_level, the contract's, reads only V beats
function flutterText(meta) {
  const [start] = meta.ventricular_flutter_intervals_s[0];
  return `${meta.ventricular_flutter_seconds.toFixed(0)} s from ${start.toFixed(0)} s look like ventricular `
    + "flutter or fibrillation (pink on the trace)";
}

function medianRateBpm(beats) {
  const rr = beats.map((b) => b.rr_previous).filter((x) => x != null).sort((a, b) => a - b);
  return rr.length ? 60 / rr[Math.floor(rr.length / 2)] : null;
}

function renderTable(beats, fs) {
  const fixed = (x, digits) => (x == null ? "–" : x.toFixed(digits));
  const rows = beats.map((beat) => {
    const row = document.createElement("tr");
    row.className = `row-${beat.arrhythmia_type}`;
    const show = document.createElement("button");
    show.type = "button";
    show.className = "link";
    show.textContent = String(beat.beat_index + 1);
    show.dataset.index = String(beat.beat_index);
    show.setAttribute("aria-label", `Show beat ${beat.beat_index + 1} on the trace`);
    const cells = [
      (beat.position_sample / fs).toFixed(3), beat.arrhythmia_type, percent(beat.confidence),
      fixed(beat.rr_previous, 3), fixed(beat.rr_next, 3), fixed(beat.qrs_width_ms, 0),
      beat.signal_quality ?? "–",
    ];
    const first = document.createElement("td");
    first.append(show);
    row.append(first, ...cells.map((text) => {
      const cell = document.createElement("td");
      cell.textContent = text;
      return cell;
    }));
    return row;
  });
  $("beats-table").tBodies[0].replaceChildren(...rows);
}

// a strip of a Holter recording (service/static/demo/holter.js): its beats come from the report
function showStrip(strip) {
  latestRequest++; // a strip answer still on its way must not replace this one
  clearError();
  const section = $("result");
  section.hidden = false;
  section.dataset.source = strip.id;
  const v = strip.beats.filter((b) => b.arrhythmia_type === "V").length;
  const rows = [
    ["Strip", `${strip.label}: ${(strip.values.length / strip.fs).toFixed(1)} s at ${strip.fs} Hz`],
    ["Beats", `${strip.beats.length} (${strip.beats.length - v} N, ${v} V)`],
    ["Time", `times below are from the strip's start, ${strip.offsetS.toFixed(1)} s into the recording`],
  ];
  $("summary").replaceChildren(...rows.flatMap(([name, value]) => {
    const term = document.createElement("dt");
    term.textContent = name;
    const data = document.createElement("dd");
    data.textContent = value;
    data.dataset.field = name;
    return [term, data];
  }));
  renderTable(strip.beats, strip.fs);
  trace.setData(strip.values, strip.fs, strip.beats, strip.unreadable ?? [], strip.flutter ?? []);
  if (strip.focusTime == null) trace.showAll();
  else trace.showPaperSpeed(strip.focusTime);
  setStatus(`${strip.label}: ${strip.beats.length} beats, ${v} V.`);
  section.scrollIntoView({ block: "start" });
}

// ---- the trace's view ----

function showView(view, duration) {
  const position = $("position");
  position.max = String(Math.max(0, duration - view.span));
  position.value = String(view.start);
  position.disabled = view.span >= duration;
  position.setAttribute("aria-valuetext", `${view.start.toFixed(1)} s`);
  $("pan-left").disabled = view.start <= 0;
  $("pan-right").disabled = view.start + view.span >= duration - 1e-6;
  $("view-text").textContent =
    `Showing ${view.start.toFixed(1)}–${(view.start + view.span).toFixed(1)} s of ${duration.toFixed(1)} s.`;
}

function bindViewControls() {
  $("zoom-in").addEventListener("click", () => trace.zoom(2));
  $("zoom-out").addEventListener("click", () => trace.zoom(0.5));
  $("zoom-all").addEventListener("click", () => trace.showAll());
  $("zoom-paper").addEventListener("click", () => trace.showPaperSpeed(trace.view.start + trace.view.span / 2));
  $("pan-left").addEventListener("click", () => trace.pan(-0.8 * trace.view.span));
  $("pan-right").addEventListener("click", () => trace.pan(0.8 * trace.view.span));
  $("position").addEventListener("input", (event) => trace.setView(Number(event.target.value), trace.view.span));
  $("beats-table").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-index]");
    if (button) trace.focusBeat(Number(button.dataset.index));
  });
}

// ---- the inputs ----

async function loadStripList() {
  const response = await fetch(`${STRIPS_URL}index.json`);
  if (!response.ok) throw new Error(`strip list: HTTP ${response.status}`);
  const index = await response.json();
  const select = $("strip-select");
  for (const strip of index.strips) {
    const option = document.createElement("option");
    option.value = strip.id;
    option.textContent = strip.title;
    option.dataset.file = strip.file;
    select.append(option);
  }
}

async function loadStrip(id) {
  if (!stripCache.has(id)) {
    const option = $("strip-select").querySelector(`option[value="${CSS.escape(id)}"]`);
    const response = await fetch(STRIPS_URL + option.dataset.file);
    if (!response.ok) throw new Error(`strip ${id}: HTTP ${response.status}`);
    stripCache.set(id, await response.json());
  }
  return stripCache.get(id);
}

async function analyseStrip() {
  const id = $("strip-select").value;
  let strip;
  try {
    strip = await loadStrip(id);
  } catch (err) {
    failed(`Could not load the strip: ${err.message}`);
    return;
  }
  await analyse({
    id, label: `MIT-BIH record ${strip.record} from ${strip.start_s} s`, values: strip.signal_data,
    samplingRate: strip.sampling_rate, derivation: strip.lead, reference: strip.reference_beats,
  });
}

async function analyseOwn() {
  const file = $("own-file").files[0];
  const useFile = ownSource === "file" && file;
  let parsed;
  try {
    const text = useFile ? await file.text() : $("own-text").value;
    parsed = parseSignal(text, Number($("own-column").value) || 1);
  } catch (err) {
    if (!(err instanceof SignalFormatError)) throw err;
    failed(err.message);
    return;
  }
  // a request body brings its own rate and lead: show them in the form
  if (parsed.samplingRate !== undefined) $("own-rate").value = String(parsed.samplingRate);
  if (typeof parsed.derivation === "string") $("own-lead").value = parsed.derivation;
  $("own-note").textContent = `${useFile ? file.name : "Pasted"}: ${parsed.note}.`;
  await analyse({
    id: "own", label: useFile ? file.name : "your signal", values: parsed.values,
    // sent as typed: the API says what a valid rate is
    samplingRate: Number($("own-rate").value), derivation: $("own-lead").value.trim() || "MLII",
  });
}

function bindInputs() {
  $("strip-form").addEventListener("submit", (event) => {
    event.preventDefault();
    analyseStrip();
  });
  $("own-form").addEventListener("submit", (event) => {
    event.preventDefault();
    analyseOwn();
  });
  $("own-text").addEventListener("input", () => {
    ownSource = "text";
    $("own-file").value = "";
  });
  $("own-file").addEventListener("change", () => {
    ownSource = "file";
    const file = $("own-file").files[0];
    $("own-note").textContent = file ? `Will send ${file.name} (${Math.ceil(file.size / 1024)} kB).` : "";
  });
}

async function start() {
  bindInputs();
  bindViewControls();
  new HolterView({ showStrip, setStatus, showError, clearError });
  try {
    await loadStripList();
  } catch (err) {
    showError(`Could not load the list of strips: ${err.message}`);
    return;
  }
  // show something at once: the first strip, analysed
  await analyseStrip();
}

start();
