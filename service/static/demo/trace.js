// One ECG lead on ECG paper, with a focusable marker per beat and a view window to zoom
// and scroll. The canvas holds the paper, the trace and a dot on each R peak; the markers
// are buttons in a lane above the paper so that keyboards and screen readers reach them.

const LANE_HEIGHT = 28;   // CSS px above the paper, for the N/V markers
const AXIS_LEFT = 46;     // room for the mV labels
const AXIS_BOTTOM = 22;   // room for the time labels
const PAD_RIGHT = 8;
const MIN_LINE_GAP = 4;   // grid lines closer than this (px) would wash the paper grey
const MIN_MARKER_GAP = 18; // below this, markers shrink to ticks without their letter
const PAPER_PX_PER_S = 100; // "paper speed" view: 4 px per 40 ms small square

const COLORS = {
  paper: "#fff8f6", minor: "#f7d4cf", major: "#e49a90", label: "#7a3b34",
  trace: "#161616", N: "#1d5fa6", V: "#c0182c", unreadable: "#dcdcdc", flutter: "#f9c5cc",
};

export class EcgTrace {
  constructor(container, { describeBeat, onViewChange }) {
    this.container = container;
    this.canvas = container.querySelector("canvas");
    this.lane = container.querySelector(".markers");
    this.tooltip = container.querySelector(".tooltip");
    this.describeBeat = describeBeat;
    this.onViewChange = onViewChange;
    this.signal = new Float32Array(0);
    this.fs = 360;
    this.beats = [];
    this.unreadable = [];
    this.flutter = [];
    this.beatTimes = [];
    this.markers = [];
    this.current = 0;          // the beat whose marker takes the Tab stop
    this.shown = [0, 0];       // beats whose markers are shown: [first, end)
    this.view = { start: 0, span: 1 };
    this.frame = 0;

    new ResizeObserver(() => this.requestDraw()).observe(container);
    this.bindPointer();
    this.bindKeys();
  }

  get duration() {
    return this.signal.length / this.fs;
  }

  // unreadable: [[start_s, end_s], ...], stretches the service judged too noisy to read (grey);
  // flutter: stretches that look like ventricular flutter or fibrillation (pink, over the grey)
  setData(signal, fs, beats, unreadable = [], flutter = []) {
    this.signal = Float32Array.from(signal);
    this.fs = fs;
    this.unreadable = unreadable;
    this.flutter = flutter;
    this.beats = beats;
    this.beatTimes = beats.map((b) => b.position_sample / fs);
    this.yRange = paperRange(this.signal);
    this.buildMarkers();
    this.showPaperSpeed();
  }

  // ---- view: which seconds of the signal fill the width ----

  plotWidth() {
    return Math.max(50, this.container.clientWidth - AXIS_LEFT - PAD_RIGHT);
  }

  setView(start, span) {
    const minSpan = Math.min(this.duration, Math.max(0.5, 20 / this.fs));
    span = Math.min(Math.max(span, minSpan), this.duration);
    start = Math.min(Math.max(start, 0), this.duration - span);
    this.view = { start, span };
    this.requestDraw();
    this.onViewChange?.(this.view, this.duration);
  }

  zoom(factor, centre = this.view.start + this.view.span / 2) {
    const span = this.view.span / factor;
    const ratio = (centre - this.view.start) / this.view.span;
    this.setView(centre - ratio * span, span);
  }

  pan(seconds) {
    this.setView(this.view.start + seconds, this.view.span);
  }

  showAll() {
    this.setView(0, this.duration);
  }

  // 25 mm/s with 4 px per mm: a 10-s strip across a desktop, ~3 s on a phone
  showPaperSpeed(centre) {
    const span = this.plotWidth() / PAPER_PX_PER_S;
    const start = centre === undefined ? this.view.start : centre - span / 2;
    this.setView(start, span);
  }

  requestDraw() {
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.draw();
      });
    }
  }

  // ---- drawing ----

  draw() {
    const width = this.container.clientWidth;
    const height = this.container.clientHeight;
    if (!width || !height || !this.signal.length) return;
    const dpr = window.devicePixelRatio || 1;
    if (this.canvas.width !== Math.round(width * dpr) || this.canvas.height !== Math.round(height * dpr)) {
      this.canvas.width = Math.round(width * dpr);
      this.canvas.height = Math.round(height * dpr);
    }
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const [mvLow, mvHigh] = this.yRange;
    const plot = {
      left: AXIS_LEFT, top: LANE_HEIGHT,
      width: width - AXIS_LEFT - PAD_RIGHT, height: height - LANE_HEIGHT - AXIS_BOTTOM,
    };
    plot.pxPerS = plot.width / this.view.span;
    plot.pxPerMv = plot.height / (mvHigh - mvLow);
    plot.x = (t) => plot.left + (t - this.view.start) * plot.pxPerS;
    plot.y = (mv) => plot.top + (mvHigh - mv) * plot.pxPerMv;

    ctx.fillStyle = COLORS.paper;
    ctx.fillRect(plot.left, plot.top, plot.width, plot.height);
    this.drawStretches(ctx, plot, this.unreadable, COLORS.unreadable);
    this.drawStretches(ctx, plot, this.flutter, COLORS.flutter);
    this.drawGrid(ctx, plot);
    ctx.save();
    ctx.beginPath();
    ctx.rect(plot.left, plot.top, plot.width, plot.height);
    ctx.clip();
    this.drawTrace(ctx, plot, dpr);
    this.drawPeaks(ctx, plot);
    ctx.restore();
    this.drawLabels(ctx, plot);
    this.placeMarkers(plot);
    if (this.lane.classList.contains("dense")) this.drawTicks(ctx, plot);
  }

  drawStretches(ctx, plot, stretches, color) {
    ctx.fillStyle = color;
    const t1 = this.view.start + this.view.span;
    for (const [a, b] of stretches) {
      if (b <= this.view.start || a >= t1) continue;
      const x0 = Math.max(plot.x(a), plot.left);
      const x1 = Math.min(plot.x(b), plot.left + plot.width);
      ctx.fillRect(x0, plot.top, x1 - x0, plot.height);
    }
  }

  drawGrid(ctx, plot) {
    const [mvLow, mvHigh] = this.yRange;
    const t0 = this.view.start;
    const t1 = t0 + this.view.span;
    // small squares 40 ms x 0.1 mV, large 200 ms x 0.5 mV (25 mm/s, 10 mm/mV paper);
    // zoomed out, the small ones go and the large ones become whole seconds or minutes
    const minorT = 0.04 * plot.pxPerS >= MIN_LINE_GAP ? 0.04 : null;
    const majorT = firstStep([0.2, 1, 5, 10, 60, 300, 600, 1800], plot.pxPerS, MIN_LINE_GAP * 2);
    const minorMv = 0.1 * plot.pxPerMv >= MIN_LINE_GAP ? 0.1 : null;
    const majorMv = firstStep([0.5, 1, 2, 5], plot.pxPerMv, MIN_LINE_GAP * 2);

    const line = (color, widthPx, draw) => {
      ctx.strokeStyle = color;
      ctx.lineWidth = widthPx;
      ctx.beginPath();
      draw();
      ctx.stroke();
    };
    const verticals = (step) => {
      for (let k = Math.ceil(t0 / step - 1e-9); k * step <= t1 + 1e-9; k++) {
        const x = crisp(plot.x(k * step));
        ctx.moveTo(x, plot.top);
        ctx.lineTo(x, plot.top + plot.height);
      }
    };
    const horizontals = (step) => {
      for (let k = Math.ceil(mvLow / step - 1e-9); k * step <= mvHigh + 1e-9; k++) {
        const y = crisp(plot.y(k * step));
        ctx.moveTo(plot.left, y);
        ctx.lineTo(plot.left + plot.width, y);
      }
    };
    if (minorT) line(COLORS.minor, 1, () => verticals(minorT));
    if (minorMv) line(COLORS.minor, 1, () => horizontals(minorMv));
    line(COLORS.major, 1, () => {
      verticals(majorT);
      horizontals(majorMv);
    });
  }

  drawTrace(ctx, plot, dpr) {
    const { signal, fs } = this;
    const n = signal.length;
    const t0 = this.view.start;
    const first = Math.max(0, Math.floor(t0 * fs) - 1);
    const end = Math.min(n, Math.ceil((t0 + this.view.span) * fs) + 2);
    const columns = Math.ceil(plot.width * dpr);
    ctx.strokeStyle = COLORS.trace;
    ctx.lineWidth = 1.25;
    ctx.lineJoin = "round";
    ctx.beginPath();
    if (end - first <= 2 * columns) {
      // few samples per pixel: every sample, joined
      ctx.moveTo(plot.x(first / fs), plot.y(signal[first]));
      for (let i = first + 1; i < end; i++) ctx.lineTo(plot.x(i / fs), plot.y(signal[i]));
    } else {
      // many samples per pixel (a 30-min record is ~650 000): each device-pixel column
      // draws the min-max span of its samples, so no R peak is lost to decimation
      const samplesPerColumn = fs / (plot.pxPerS * dpr);
      let from = first;
      for (let c = 0; c < columns && from < end; c++) {
        const to = Math.min(end, Math.floor(t0 * fs + (c + 1) * samplesPerColumn));
        if (to <= from) continue;
        let low = signal[from];
        let high = low;
        for (let i = from + 1; i < to; i++) {
          const v = signal[i];
          if (v < low) low = v;
          else if (v > high) high = v;
        }
        const x = plot.left + (c + 0.5) / dpr;
        if (c === 0) ctx.moveTo(x, plot.y(high));
        ctx.lineTo(x, plot.y(high));
        ctx.lineTo(x, plot.y(low));
        from = to;
      }
    }
    ctx.stroke();
  }

  drawPeaks(ctx, plot) {
    const [first, end] = this.visibleBeats();
    // zoomed far out the dots would only hide the trace; the marker ticks still show each beat
    if (end - first > plot.width / 8) return;
    const radius = end - first > plot.width / 16 ? 2.5 : 3.5;
    ctx.lineWidth = 1;
    ctx.strokeStyle = "#fff";
    for (let i = first; i < end; i++) {
      const beat = this.beats[i];
      const x = plot.x(this.beatTimes[i]);
      const y = plot.y(this.signal[Math.min(beat.position_sample, this.signal.length - 1)]);
      ctx.fillStyle = COLORS[beat.arrhythmia_type] || COLORS.N;
      ctx.beginPath();
      ctx.arc(x, y, radius, 0, 2 * Math.PI);
      ctx.fill();
      ctx.stroke();
    }
  }

  drawLabels(ctx, plot) {
    const [mvLow, mvHigh] = this.yRange;
    ctx.fillStyle = COLORS.label;
    ctx.font = "11px system-ui, sans-serif";

    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    const mvStep = firstStep([0.5, 1, 2, 5, 10], plot.pxPerMv, 16);
    for (let k = Math.ceil(mvLow / mvStep - 1e-9); k * mvStep <= mvHigh + 1e-9; k++) {
      const mv = k * mvStep;
      ctx.fillText(mv.toFixed(mvStep < 1 ? 1 : 0), plot.left - 5, plot.y(mv));
    }
    ctx.save();
    ctx.translate(11, plot.top + plot.height / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.fillText("mV", 0, 0);
    ctx.restore();

    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const t0 = this.view.start;
    const t1 = t0 + this.view.span;
    const tStep = firstStep([0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800], plot.pxPerS, 60);
    const labelY = plot.top + plot.height + 5;
    for (let k = Math.ceil(t0 / tStep - 1e-9); k * tStep <= t1 + 1e-9; k++) {
      const t = k * tStep;
      const x = Math.min(Math.max(plot.x(t), plot.left + 12), plot.left + plot.width - 16);
      ctx.fillText(formatTime(t, tStep), x, labelY);
    }
  }

  // ---- markers ----

  buildMarkers() {
    this.hideTooltip();
    this.lane.replaceChildren();
    this.markers = this.beats.map((beat, i) => {
      const marker = document.createElement("button");
      marker.type = "button";
      marker.className = `beat beat-${beat.arrhythmia_type}`;
      marker.dataset.type = beat.arrhythmia_type;
      marker.dataset.index = String(i);
      marker.dataset.sample = String(beat.position_sample);
      marker.textContent = beat.arrhythmia_type;
      marker.setAttribute("aria-label", this.describeBeat(beat, this.fs));
      marker.tabIndex = i === 0 ? 0 : -1;
      marker.hidden = true;
      return marker;
    });
    this.lane.append(...this.markers);
    this.current = 0;
    this.shown = [0, 0];
  }

  // beats inside the view: [first, end) by binary search on their times
  visibleBeats() {
    const t0 = this.view.start;
    const t1 = t0 + this.view.span;
    return [lowerBound(this.beatTimes, t0), lowerBound(this.beatTimes, t1 + 1e-9)];
  }

  placeMarkers(plot) {
    const [first, end] = this.visibleBeats();
    const dense = end - first > 1 && plot.width / (end - first) < MIN_MARKER_GAP;
    this.lane.classList.toggle("dense", dense);
    this.lane.style.left = `${plot.left}px`;
    this.lane.style.width = `${plot.width}px`;
    // the Tab stop must be on a shown marker, else Tab would skip the beats altogether
    if ((this.current < first || this.current >= end) && end > first && !this.lane.contains(document.activeElement)) {
      this.setCurrent(first);
    }
    // zoomed far out, thousands of shown buttons would make every redraw slow: the canvas
    // draws the beats as ticks and only the current beat keeps its button, as the Tab stop
    let [showFirst, showEnd] = [first, end];
    if (dense) [showFirst, showEnd] = this.current >= first && this.current < end ? [this.current, this.current + 1] : [0, 0];
    const [oldFirst, oldEnd] = this.shown;
    for (let i = oldFirst; i < oldEnd; i++) {
      if (i < showFirst || i >= showEnd) this.markers[i].hidden = true;
    }
    for (let i = showFirst; i < showEnd; i++) {
      const marker = this.markers[i];
      marker.hidden = false;
      marker.style.left = `${plot.x(this.beatTimes[i]) - plot.left}px`;
    }
    this.shown = [showFirst, showEnd];
  }

  // the dense view's beats: a tick per beat in the marker lane, V drawn over N
  drawTicks(ctx, plot) {
    const [first, end] = this.visibleBeats();
    for (const type of ["N", "V"]) {
      ctx.fillStyle = COLORS[type];
      for (let i = first; i < end; i++) {
        if (this.beats[i].arrhythmia_type === type) ctx.fillRect(plot.x(this.beatTimes[i]) - 0.5, 6, 1, 18);
      }
    }
  }

  setCurrent(i) {
    if (this.markers[this.current]) this.markers[this.current].tabIndex = -1;
    this.current = i;
    this.markers[i].tabIndex = 0;
  }

  focusBeat(i) {
    if (!this.beats.length) return;
    i = Math.min(Math.max(i, 0), this.beats.length - 1);
    const t = this.beatTimes[i];
    const { start, span } = this.view;
    const dense = this.lane.classList.contains("dense");
    this.setCurrent(i);
    if (dense || t < start || t > start + span) {
      // from the overview, going beat by beat means looking at beats: zoom to paper speed
      const newSpan = dense ? this.plotWidth() / PAPER_PX_PER_S : span;
      this.setView(t - newSpan / 2, newSpan);
      this.draw(); // now, so that the marker is shown before it takes focus
    }
    this.markers[i].focus();
  }

  nextOfType(type, direction) {
    for (let i = this.current + direction; i >= 0 && i < this.beats.length; i += direction) {
      if (this.beats[i].arrhythmia_type === type) return i;
    }
    return this.current;
  }

  showTooltip(marker) {
    const i = Number(marker.dataset.index);
    this.tooltip.textContent = this.describeBeat(this.beats[i], this.fs);
    this.tooltip.hidden = false;
    const x = marker.offsetLeft + this.lane.offsetLeft;
    const maxLeft = this.container.clientWidth - this.tooltip.offsetWidth - 4;
    this.tooltip.style.left = `${Math.max(4, Math.min(x - this.tooltip.offsetWidth / 2, maxLeft))}px`;
    this.tooltip.style.top = `${LANE_HEIGHT + 4}px`;
  }

  hideTooltip() {
    this.tooltip.hidden = true;
  }

  bindKeys() {
    this.lane.addEventListener("focusin", (event) => {
      const marker = event.target.closest(".beat");
      if (!marker) return;
      this.setCurrent(Number(marker.dataset.index));
      this.showTooltip(marker);
    });
    this.lane.addEventListener("focusout", () => this.hideTooltip());
    this.lane.addEventListener("pointerover", (event) => {
      const marker = event.target.closest(".beat");
      if (marker) this.showTooltip(marker);
    });
    this.lane.addEventListener("pointerout", () => {
      if (!this.lane.contains(document.activeElement)) this.hideTooltip();
    });
    this.lane.addEventListener("keydown", (event) => {
      const moves = {
        ArrowRight: () => this.current + 1, ArrowLeft: () => this.current - 1,
        Home: () => 0, End: () => this.beats.length - 1,
        v: () => this.nextOfType("V", 1), V: () => this.nextOfType("V", -1),
      };
      if (moves[event.key]) {
        event.preventDefault();
        this.focusBeat(moves[event.key]());
      } else if (event.key === "+" || event.key === "=") {
        this.zoom(2, this.beatTimes[this.current]);
      } else if (event.key === "-") {
        this.zoom(0.5, this.beatTimes[this.current]);
      } else if (event.key === "Escape") {
        this.hideTooltip();
      }
    });
  }

  bindPointer() {
    // drag to scroll; touch-action in the CSS leaves vertical swipes to the page
    let drag = null;
    this.canvas.addEventListener("pointerdown", (event) => {
      drag = { x: event.clientX, start: this.view.start };
      this.canvas.setPointerCapture(event.pointerId);
    });
    this.canvas.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const pxPerS = this.plotWidth() / this.view.span;
      this.setView(drag.start - (event.clientX - drag.x) / pxPerS, this.view.span);
    });
    const endDrag = () => { drag = null; };
    this.canvas.addEventListener("pointerup", endDrag);
    this.canvas.addEventListener("pointercancel", endDrag);
    // Ctrl + wheel (and trackpad pinch) zooms about the pointer; sideways wheel scrolls;
    // a plain vertical wheel is left to the page
    this.canvas.addEventListener("wheel", (event) => {
      const pxPerS = this.plotWidth() / this.view.span;
      if (event.ctrlKey) {
        event.preventDefault();
        const rect = this.canvas.getBoundingClientRect();
        const t = this.view.start + (event.clientX - rect.left - AXIS_LEFT) / pxPerS;
        this.zoom(Math.exp(-event.deltaY / 300), t);
      } else if (Math.abs(event.deltaX) > Math.abs(event.deltaY)) {
        event.preventDefault();
        this.pan(event.deltaX / pxPerS);
      }
    }, { passive: false });
  }
}

// Amplitude range of the paper: the signal's spread without rare spikes, on 0.5 mV lines,
// at least 2 mV so a small signal keeps its true size on the grid
function paperRange(signal) {
  const step = Math.max(1, Math.floor(signal.length / 20000));
  const sample = [];
  for (let i = 0; i < signal.length; i += step) sample.push(signal[i]);
  sample.sort((a, b) => a - b);
  const q = (p) => sample[Math.min(sample.length - 1, Math.floor(p * sample.length))];
  let low = Math.floor((q(0.0005) - 0.2) * 2) / 2;
  let high = Math.ceil((q(0.9995) + 0.2) * 2) / 2;
  if (high - low < 2) {
    const middle = Math.round((low + high)) / 2;
    low = middle - 1;
    high = middle + 1;
  }
  return [low, high];
}

function firstStep(steps, pxPerUnit, minPx) {
  return steps.find((s) => s * pxPerUnit >= minPx) ?? steps[steps.length - 1];
}

function crisp(v) {
  return Math.round(v) + 0.5;
}

// the index of the first element of `sorted` (ascending) not below `value`: a binary search
export function lowerBound(sorted, value) {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (sorted[mid] < value) low = mid + 1;
    else high = mid;
  }
  return low;
}

function formatTime(t, step) {
  if (step >= 60) {
    const minutes = Math.floor(t / 60);
    return `${minutes}:${String(Math.round(t - minutes * 60)).padStart(2, "0")}`;
  }
  return `${t.toFixed(step < 1 ? 1 : 0)} s`;
}
