// A signal a person pastes or uploads: a JSON array, a JSON request body, or a CSV column.
// Only what cannot be sent as JSON is refused here; every rule on the values themselves
// (length, sampling rate, finite numbers) is the API's, and its answer is shown as it is.

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export class SignalFormatError extends Error {}

// -> { values, samplingRate?, derivation?, note }
export function parseSignal(text, column = 1) {
  const trimmed = text.trim();
  if (!trimmed) throw new SignalFormatError("No values: paste a column of numbers or choose a file.");
  if (trimmed.startsWith("[") || trimmed.startsWith("{")) return parseJson(trimmed);
  return parseCsv(trimmed, column);
}

function parseJson(text) {
  let data;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new SignalFormatError(`Not valid JSON: ${err.message}`);
  }
  if (Array.isArray(data)) {
    return { values: data, note: `${data.length} values from a JSON array` };
  }
  if (data && Array.isArray(data.signal_data)) {
    // a request body as the API takes it: its own rate and lead come with it
    return {
      values: data.signal_data,
      samplingRate: data.sampling_rate,
      derivation: data.derivation,
      note: `${data.signal_data.length} values from signal_data`,
    };
  }
  throw new SignalFormatError("JSON must be an array of numbers or an object with signal_data.");
}

function parseCsv(text, column) {
  const lines = text.split(/\r\n|\n|\r/);
  const separator = [",", ";", "\t"].find((s) => lines[0].includes(s));
  const values = [];
  let header = null;
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n].trim();
    if (!line || line.startsWith("#")) continue;
    const fields = separator ? line.split(separator) : line.split(/\s+/);
    if (column > fields.length) {
      throw new SignalFormatError(`Line ${n + 1} has ${fields.length} column(s), not a column ${column}.`);
    }
    const field = fields[column - 1].trim().replace(/^"(.*)"$/, "$1");
    if (NUMBER.test(field)) {
      values.push(Number(field));
    } else if (!values.length && header === null) {
      header = field; // a first line of names, e.g. "MLII"
    } else {
      throw new SignalFormatError(`Line ${n + 1}: "${field.slice(0, 40)}" is not a number.`);
    }
  }
  const named = header ? ` (header "${header.slice(0, 40)}")` : "";
  return { values, note: `${values.length} values from column ${column}${named}` };
}
