// An EDF/EDF+ file read in the browser, a slice at a time: the Holter view shows the
// strip around an hour or a run from the file the user chose, without sending it again.

const ANNOTATIONS = "EDF Annotations";
const UNIT_TO_MV = { mv: 1, uv: 1e-3, "µv": 1e-3, "μv": 1e-3, v: 1e3 };

export class EdfFormatError extends Error {}

function text(bytes, start, length) {
  return new TextDecoder("latin1").decode(bytes.subarray(start, start + length)).trim();
}

// the header: the data records' layout and every signal's calibration
export async function readEdfHeader(file) {
  const head = new Uint8Array(await file.slice(0, 256).arrayBuffer());
  if (head.length < 256 || text(head, 0, 8) !== "0") throw new EdfFormatError("not an EDF file");
  const n = Number(text(head, 252, 4));
  const all = new Uint8Array(await file.slice(0, 256 * (n + 1)).arrayBuffer());
  const field = (offset, width, i) => text(all, 256 + offset * n + width * i, width);
  const signals = [];
  let offset = 0;
  for (let i = 0; i < n; i++) {
    const s = {
      label: field(0, 16, i),
      unit: field(96, 8, i),
      physicalMin: Number(field(104, 8, i)),
      physicalMax: Number(field(112, 8, i)),
      digitalMin: Number(field(120, 8, i)),
      digitalMax: Number(field(128, 8, i)),
      perRecord: Number(field(216, 8, i)),
      offset,
    };
    offset += 2 * s.perRecord;
    signals.push(s);
  }
  return {
    headerBytes: 256 * (n + 1),
    records: Number(text(head, 236, 8)),
    recordSeconds: Number(text(head, 244, 8)),
    recordBytes: offset,
    // indexed as the API indexes them: annotation signals not counted
    signals: signals.filter((s) => s.label !== ANNOTATIONS),
  };
}

// samples [t0, t1) s of ordinary signal `index` in mV: { values: Float32Array, fs, firstSample }
export async function readEdfStrip(file, header, index, t0, t1) {
  const s = header.signals[index];
  const fs = s.perRecord / header.recordSeconds;
  const first = Math.max(0, Math.floor(t0 / header.recordSeconds));
  const end = Math.min(header.records, Math.ceil(t1 / header.recordSeconds));
  const start = header.headerBytes + first * header.recordBytes;
  const buffer = await file.slice(start, header.headerBytes + end * header.recordBytes).arrayBuffer();
  const data = new DataView(buffer);
  const gain = (s.physicalMax - s.physicalMin) / (s.digitalMax - s.digitalMin);
  const scale = UNIT_TO_MV[s.unit.toLowerCase()] ?? 1;
  const values = new Float32Array((end - first) * s.perRecord);
  for (let r = 0; r < end - first; r++) {
    const base = r * header.recordBytes + s.offset;
    for (let k = 0; k < s.perRecord; k++) {
      const digital = data.getInt16(base + 2 * k, true);
      values[r * s.perRecord + k] = ((digital - s.digitalMin) * gain + s.physicalMin) * scale;
    }
  }
  // cut to [t0, t1): whole records were read
  const firstSample = first * s.perRecord;
  const from = Math.max(0, Math.round(t0 * fs) - firstSample);
  const to = Math.min(values.length, Math.round(t1 * fs) - firstSample);
  return { values: values.subarray(from, to), fs, firstSample: firstSample + from };
}
