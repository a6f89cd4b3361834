// The Holter view: an EDF recording sent to POST /api/v1/recordings, its report as
// charts (V beats per hour, the heart-rate trend) and a list of runs; a click on an
// hour or a run shows that strip, read from the local file, on the page's trace.

import { EdfFormatError, readEdfHeader, readEdfStrip } from "./edf.js";
import { lowerBound } from "./trace.js";

const RECORDINGS_URL = "/api/v1/recordings/?include_beats=true";
const TREND_BIN_S = 300; // the heart-rate trend's points: 5-min means
const MAX_RR_S = 3; // longer RR intervals are pauses or gaps: left out of rates (ecg.holter)
const EVENT_STRIP_BEFORE_S = 10; // a run's or a pause's strip: from this long before it...
const EVENT_STRIP_S = 30; // ...this long
const MAX_LISTED_EVENTS = 200; // runs, pauses
const SVG_NS = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

// the summary's row when a pacemaker was declared (predictions' metadata and the Holter report alike)
export function pacemakerRow(ownRhythmBeats) {
  return ["Pacemaker", `declared: ${ownRhythmBeats} paced beat(s) the networks would call V called N`];
}

export class HolterView {
  // showStrip({ id, label, values, fs, beats, unreadable, flutter, focusTime }): puts a strip on the trace
  constructor({ showStrip, setStatus, showError, clearError }) {
    Object.assign(this, { showStrip, setStatus, showError, clearError });
    this.file = null;
    this.report = null;
    $("holter-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.analyse();
    });
    $("holter-hours").addEventListener("click", (event) => {
      const bar = event.target.closest("button[data-hour]");
      if (bar) this.showHour(Number(bar.dataset.hour));
    });
    $("holter-runs").addEventListener("click", (event) => {
      const item = event.target.closest("button[data-run]");
      if (item) this.showRun(Number(item.dataset.run));
    });
    $("holter-pauses").addEventListener("click", (event) => {
      const item = event.target.closest("button[data-pause]");
      if (item) this.showPause(Number(item.dataset.pause));
    });
  }

  async analyse() {
    const file = $("holter-file").files[0];
    if (!file) return;
    this.clearError();
    this.setStatus(`Sending ${file.name} (${(file.size / 1e6).toFixed(1)} MB)…`);
    $("holter").setAttribute("aria-busy", "true");
    let response, answer;
    try {
      response = await fetch(`${RECORDINGS_URL}&pacemaker=${$("holter-pacemaker").checked}`, {
        method: "POST", headers: { "Content-Type": "application/octet-stream", Accept: "application/json" },
        body: file,
      });
      answer = await response.json().catch(() => null);
    } catch (err) {
      this.failed(`Could not reach the service: ${err.message}`);
      return;
    }
    if (!response.ok) {
      this.failed(answer?.detail || `The service answered ${response.status}.`, response.status);
      return;
    }
    this.file = file;
    this.report = answer;
    this.beatTimes = answer.beats.map((b) => b.time_s);
    this.beatReadable = answer.beats.map((b) => b.signal_quality !== "unreadable");
    try {
      this.header = await readEdfHeader(file);
    } catch (err) {
      if (!(err instanceof EdfFormatError)) throw err;
      this.header = null;
    }
    this.render();
    $("holter").removeAttribute("aria-busy");
    this.setStatus(`${file.name}: ${answer.total_beats} beats, ${answer.ventricular_beats} V in `
      + `${formatDuration(answer.duration_s)}.`);
  }

  failed(detail, status = null) {
    $("holter").removeAttribute("aria-busy");
    $("holter").hidden = true;
    this.setStatus(status ? `The service refused the recording (HTTP ${status}).` : "Nothing analysed.");
    this.showError(detail);
  }

  render() {
    const r = this.report;
    const section = $("holter");
    section.hidden = false;
    section.dataset.recordingId = r.recording_id;
    const hr = r.heart_rate_bpm;
    const rate = (x) => (x == null ? "–" : `${Math.round(x)}`);
    const rows = [
      ["Recording", `${this.file.name}: ${formatDuration(r.duration_s)}, channel ${r.channel.label} at `
        + `${r.channel.sampling_rate} Hz` + (r.start_time ? `, from ${r.start_time.replace("T", " ")}` : "")],
      ["Beats", `${r.total_beats} (${r.normal_beats} N, ${r.ventricular_beats} V)`],
      ...(r.pacemaker ? [pacemakerRow(r.own_rhythm_beats)] : []),
      ["PVC burden", `${r.pvc_burden_percent.toFixed(2)} %, ${r.pvc_per_hour.toFixed(1)} per hour`],
      ["Heart rate", `${rate(hr.min)} / ${rate(hr.mean)} / ${rate(hr.max)} bpm (min / mean / max of 1-min rates)`],
      ["Couplets, triplets", `${r.couplets}, ${r.triplets}`],
      ["Ventricular runs", `${r.ventricular_runs.length} (3 or more V; `
        + `${r.ventricular_runs.filter((x) => x.kind === "NSVT").length} NSVT)`],
      ["Bigeminy, trigeminy", `${r.bigeminy_episodes}, ${r.trigeminy_episodes} episodes`],
      ["Pauses", `${r.pauses.length} of 2 s or more, ${r.long_pauses} of 3 s or more`
        + (r.longest_pause_s == null ? "" : `; the longest ${r.longest_pause_s.toFixed(1)} s`)],
      ["Unreadable", `${r.unreadable_seconds.toFixed(0)} s`],
      ...(r.gap_seconds ? [["Not recorded", `${r.gap_seconds.toFixed(0)} s in ${r.gap_intervals_s.length} gap(s)`]] : []),
      ["Ventricular flutter", `${r.ventricular_flutter_seconds.toFixed(0)} s`,
        r.ventricular_flutter_seconds ? "risk risk-HIGH" : ""],
      ["Model", `${r.model.name} ${r.model.version}`],
      ["Processing time", `${(r.processing_time_ms / 1000).toFixed(1)} s in the service`],
    ];
    for (const warning of r.warnings) rows.push(["Warning", warning, "warning"]);
    const list = $("holter-summary");
    list.replaceChildren(...rows.flatMap(([name, value, className]) => {
      const term = document.createElement("dt");
      term.textContent = name;
      const data = document.createElement("dd");
      data.textContent = value;
      data.dataset.field = name;
      if (className) data.className = className;
      return [term, data];
    }));
    this.renderHours();
    this.renderTrend();
    this.renderRuns();
    this.renderPauses();
  }

  renderHours() {
    const hours = this.report.hourly;
    const most = Math.max(1, ...hours.map((h) => h.ventricular_beats));
    $("holter-hours").replaceChildren(...hours.map((h, i) => {
      const bar = document.createElement("button");
      bar.type = "button";
      bar.className = "hour";
      bar.dataset.hour = String(i);
      bar.dataset.v = String(h.ventricular_beats);
      bar.setAttribute("aria-label", `Hour ${i + 1} (${clock(this.report, h.hour_start_s)}): `
        + `${h.ventricular_beats} V of ${h.beats} beats; show its strip`);
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.height = `${(100 * h.ventricular_beats) / most}%`;
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = clock(this.report, h.hour_start_s).slice(0, 5);
      const count = document.createElement("span");
      count.className = "count";
      count.textContent = String(h.ventricular_beats);
      bar.append(count, fill, label);
      return bar;
    }));
  }

  // 5-min heart rates from the beats: 60 x intervals / their seconds, as ecg.holter counts them
  // (no interval spans a gap of the recording or has an unreadable beat: a noisy lead off's are the noise's)
  trendPoints() {
    const t = this.beatTimes;
    const readable = this.beatReadable;
    const gaps = this.report.gap_intervals_s;
    const bins = Math.max(1, Math.ceil(this.report.duration_s / TREND_BIN_S));
    const count = new Float64Array(bins);
    const total = new Float64Array(bins);
    let g = 0; // the first gap ending after beat i - 1
    for (let i = 1; i < t.length; i++) {
      while (g < gaps.length && gaps[g][1] <= t[i - 1]) g++;
      const rr = t[i] - t[i - 1];
      if (rr > MAX_RR_S || !readable[i] || !readable[i - 1] || (g < gaps.length && gaps[g][0] < t[i])) continue;
      const b = Math.min(bins - 1, Math.floor(t[i] / TREND_BIN_S));
      count[b] += 1;
      total[b] += rr;
    }
    const points = [];
    for (let b = 0; b < bins; b++) {
      if (count[b] >= 10) points.push([(b + 0.5) * TREND_BIN_S, (60 * count[b]) / total[b]]);
    }
    return points;
  }

  renderTrend() {
    const svg = $("holter-trend");
    const points = this.trendPoints();
    const width = 600;
    const height = 160;
    const pad = { left: 36, right: 8, top: 8, bottom: 18 };
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.replaceChildren();
    if (!points.length) return;
    const rates = points.map((p) => p[1]);
    const low = Math.floor(Math.min(...rates) / 10) * 10;
    const high = Math.max(low + 20, Math.ceil(Math.max(...rates) / 10) * 10);
    const x = (s) => pad.left + (s / this.report.duration_s) * (width - pad.left - pad.right);
    const y = (bpm) => pad.top + ((high - bpm) / (high - low)) * (height - pad.top - pad.bottom);
    for (const bpm of [low, (low + high) / 2, high]) {
      svg.append(svgElement("line", { x1: pad.left, x2: width - pad.right, y1: y(bpm), y2: y(bpm), class: "grid" }),
        svgElement("text", { x: pad.left - 4, y: y(bpm) + 4, class: "axis", "text-anchor": "end" }, `${Math.round(bpm)}`));
    }
    const line = svgElement("polyline", {
      points: points.map(([s, bpm]) => `${x(s).toFixed(1)},${y(bpm).toFixed(1)}`).join(" "), class: "rate",
    });
    svg.append(line, svgElement("text", { x: pad.left, y: height - 4, class: "axis" }, clock(this.report, 0)),
      svgElement("text", { x: width - pad.right, y: height - 4, class: "axis", "text-anchor": "end" },
        clock(this.report, this.report.duration_s)));
    svg.setAttribute("aria-label", `Heart rate in 5-min means: ${Math.round(Math.min(...rates))} to `
      + `${Math.round(Math.max(...rates))} bpm`);
    svg.dataset.points = String(points.length);
  }

  renderRuns() {
    this.renderEvents("holter-runs", "holter-no-runs", this.report.ventricular_runs, "run",
      (run) => `${clock(this.report, run.start_s)}: ${run.beats} V at ${Math.round(run.rate_bpm)} bpm (${run.kind})`);
  }

  renderPauses() {
    this.renderEvents("holter-pauses", "holter-no-pauses", this.report.pauses, "pause",
      (pause) => `${clock(this.report, pause.start_s)}: ${pause.duration_s.toFixed(1)} s`);
  }

  // a list of the report's events, each a button whose data-<kind> is its index
  renderEvents(listId, emptyId, events, kind, describe) {
    const items = events.slice(0, MAX_LISTED_EVENTS).map((event, i) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "link";
      button.dataset[kind] = String(i);
      button.textContent = describe(event);
      item.append(button);
      return item;
    });
    if (events.length > MAX_LISTED_EVENTS) {
      const more = document.createElement("li");
      more.textContent = `… and ${events.length - MAX_LISTED_EVENTS} more`;
      items.push(more);
    }
    $(listId).replaceChildren(...items);
    $(emptyId).hidden = events.length > 0;
  }

  showHour(i) {
    const start = this.report.hourly[i].hour_start_s;
    this.showWindow(`hour-${i}`, `Hour ${i + 1} (${clock(this.report, start)})`, start,
      Math.min(start + 3600, this.report.duration_s), null);
  }

  showRun(i) {
    const run = this.report.ventricular_runs[i];
    const start = Math.max(0, run.start_s - EVENT_STRIP_BEFORE_S);
    this.showWindow(`run-${i}`, `Run ${i + 1} (${clock(this.report, run.start_s)}, ${run.beats} V)`, start,
      Math.min(start + EVENT_STRIP_S, this.report.duration_s), run.start_s);
  }

  showPause(i) {
    const pause = this.report.pauses[i];
    const start = Math.max(0, pause.start_s - EVENT_STRIP_BEFORE_S);
    this.showWindow(`pause-${i}`, `Pause ${i + 1} (${clock(this.report, pause.start_s)}, `
      + `${pause.duration_s.toFixed(1)} s)`, start, Math.min(start + EVENT_STRIP_S, this.report.duration_s),
    pause.start_s);
  }

  async showWindow(id, label, t0, t1, focusTime) {
    if (!this.header) {
      this.showError("The file's signal cannot be read in this browser: no strip to show.");
      return;
    }
    this.clearError();
    // the file holds no samples in the recording's gaps: read from the part holding t0, up to its end
    const at = inStoredData(this.report.gap_intervals_s, t0);
    const stored = await readEdfStrip(this.file, this.header, this.report.channel.index, at.t,
      Math.min(at.t + (t1 - t0), at.partEnd));
    const strip = { ...stored, firstSample: stored.firstSample + Math.round(at.shift * stored.fs) };
    const beats = [];
    const first = lowerBound(this.beatTimes, strip.firstSample / strip.fs);
    const last = strip.firstSample + strip.values.length;
    for (let i = first; i < this.report.beats.length && this.report.beats[i].sample < last; i++) {
      const b = this.report.beats[i];
      beats.push({
        beat_index: beats.length, position_sample: b.sample - strip.firstSample,
        arrhythmia_type: b.type, confidence: b.confidence, rr_previous: null, rr_next: null, qrs_width_ms: null,
        signal_quality: b.signal_quality,
      });
    }
    // the report's unreadable and flutter stretches, in seconds of this strip
    const offset = strip.firstSample / strip.fs;
    const inStrip = (stretches) => (stretches || [])
      .filter(([a, b]) => b > offset && a < offset + strip.values.length / strip.fs)
      .map(([a, b]) => [a - offset, b - offset]);
    const unreadable = inStrip(this.report.unreadable_intervals_s);
    const flutter = inStrip(this.report.ventricular_flutter_intervals_s);
    this.showStrip({ id, label, values: strip.values, fs: strip.fs, beats, unreadable, flutter,
      focusTime: focusTime == null ? null : focusTime - strip.firstSample / strip.fs,
      offsetS: strip.firstSample / strip.fs });
  }
}

// time t of the recording (s) in the file's stored data, whose gaps hold no samples: { t, partEnd,
// shift }, t moved to a gap's end when inside it, partEnd where its continuous part ends (stored
// time), shift the gaps' seconds before it
function inStoredData(gaps, t) {
  let shift = 0;
  for (const [a, b] of gaps) {
    if (t < a) return { t: t - shift, partEnd: a - shift, shift };
    t = Math.max(t, b);
    shift += b - a;
  }
  return { t: t - shift, partEnd: Infinity, shift };
}

function svgElement(name, attributes, content) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (content !== undefined) element.textContent = content;
  return element;
}

// a time in the recording as the wall clock read it (from the file's start), or as an offset
function clock(report, seconds) {
  if (report.start_time) {
    const t = new Date(new Date(report.start_time + "Z").getTime() + seconds * 1000);
    return t.toISOString().slice(11, 19);
  }
  return formatDuration(seconds);
}

function formatDuration(seconds) {
  const s = Math.round(seconds);
  const hh = String(Math.floor(s / 3600)).padStart(2, "0");
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
  return `${hh}:${mm}:${String(s % 60).padStart(2, "0")}`;
}
