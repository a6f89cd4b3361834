"""One ECG channel of an EDF/EDF+ file: checked, then read in slices (edfio).

edfio maps the file and reads only the data records a slice needs (docs/HOLTER.md has
the figures against pyedflib). It warns, rather than refuses, when a file is cut short,
and reads an EDF+D's data records one after the other as if they had no gaps, so
:func:`open_channel` checks the header against the file first and finds an EDF+D's
continuous parts from its timekeeping annotations. Every way a file can be wrong raises
:class:`EdfError`, whose message is the client's 4xx ``detail``.
"""

import datetime
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ecg.signal import MIN_FS

from .inference import lead_name

HEADER_BYTES = 256  # the fixed part; each signal adds 256 more
ANNOTATIONS_LABEL = "EDF Annotations"
# labels of a signal that looks like an ECG lead: without lead II, the default channel is the first such
ECG_LABEL = re.compile(r"\b(ECG|EKG|ML ?I{1,3}|MLV\d?|I{1,3}|AVR|AVL|AVF|V\d|CM\d|CC\d|LEAD)\b", re.I)
UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3}
# highest channel rate read (Hz). Recorders store ECG above a request's 1000 Hz (polysomnographs
# 512-1024, BioSemi 2048); 24 h of one 16-bit channel at 4096 Hz (708 MB) still fits
# ECG_MAX_RECORDING_MB's default, and the recording is resampled to 360 Hz in chunks.
MAX_EDF_FS = 4096


class EdfError(ValueError):
    """The file cannot be analysed; the message says why (a client's 4xx ``detail``)."""


@dataclass(frozen=True)
class Part:
    """A continuous stretch of a channel: its stored samples ``lo:hi`` (the data records one
    after the other, as edfio reads them), recorded from ``onset_s`` seconds into the recording."""

    lo: int
    hi: int
    onset_s: float


@dataclass
class Channel:
    """One signal of an EDF file, ready to read in slices (``read``).

    An EDF+D with gaps is several continuous :class:`Part` s; :meth:`continuous_parts`
    gives each as a channel of its own, analysed as a signal of its own.
    """

    path: str
    index: int  # among the file's ordinary signals (annotation signals not counted)
    label: str
    fs: int  # Hz
    n_samples: int  # stored samples (the gaps hold none)
    start_time: datetime.datetime | None  # the first sample's, None when anonymised or unreadable
    to_mv: float  # physical unit -> mV
    physical_range_mv: tuple  # (min, max) the channel can hold: samples there are clipped
    warnings: list = field(default_factory=list)
    parts: tuple = ()  # the continuous Parts of an EDF+D with gaps; () when the channel is one
    offset: int = 0  # a part's first stored sample in the file
    onset_s: float = 0.0  # a part's start in the recording (s)

    @property
    def duration_s(self):
        """The recording's length in seconds, gaps included."""
        if not self.parts:
            return self.n_samples / self.fs
        last = self.parts[-1]
        return last.onset_s + (last.hi - last.lo) / self.fs

    @property
    def gap_intervals_s(self):
        """(g, 2) float64: ``[start, end)`` seconds of each gap between two parts."""
        ends = [p.onset_s + (p.hi - p.lo) / self.fs for p in self.parts[:-1]]
        return np.array([[e, p.onset_s] for e, p in zip(ends, self.parts[1:])]).reshape(-1, 2)

    def continuous_parts(self):
        """Each continuous part as a :class:`Channel` of its own (``read`` from its start); this
        channel itself when it has no gap."""
        if not self.parts:
            return [self]
        return [replace(self, n_samples=p.hi - p.lo, offset=p.lo, onset_s=p.onset_s, parts=())
                for p in self.parts]

    def read(self, lo, hi):
        """Samples ``lo:hi`` in mV, (hi - lo,) float64 (the file is mapped anew: see :func:`read_samples`)."""
        return read_samples(self.path, self.index, self.fs, self.offset + lo, self.offset + hi) * self.to_mv


def read_samples(path, index, fs, lo, hi):
    """Physical samples ``lo:hi`` of ordinary signal ``index``, (hi - lo,) float64.

    The file is opened and mapped for this slice only: the mapped pages a slice touches
    count in the process's RSS until the map goes, and a day's file is 0.5 GB.
    """
    import edfio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # checked once by open_channel
        signal = edfio.read_edf(path, lazy_load_data=True).signals[index]
        return np.asarray(signal.get_data_slice(lo / fs, hi / fs), dtype=np.float64)


def _field(header, start, length):
    return header[start:start + length].decode("ascii", "replace").strip()


def _int_field(header, start, length, what):
    text = _field(header, start, length)
    try:
        return int(text)
    except ValueError:
        raise EdfError(f"not an EDF file: the header's {what} is {text!r}, not a whole number") from None


@dataclass
class Layout:
    """What the fixed header says of the data records."""

    header_bytes: int
    n_records: int
    record_s: float
    reserved: str  # "EDF+C", "EDF+D" or blank (plain EDF)
    labels: list  # every signal's label, annotation signals included
    per_record: list  # every signal's samples per data record

    @property
    def record_bytes(self):
        return 2 * sum(self.per_record)


def check_layout(path):
    """The :class:`Layout` of the file at ``path``, checked against its size.

    Raises :class:`EdfError` when it is not EDF, cut short, or longer than its header says.
    """
    size = Path(path).stat().st_size
    with open(path, "rb") as f:
        head = f.read(HEADER_BYTES)
        if len(head) < HEADER_BYTES or head[:8] != b"0       ":
            raise EdfError("not an EDF file: it must start with the 256-byte EDF header "
                           "(version '0'); BDF and other formats are not read")
        n_signals = _int_field(head, 252, 4, "number of signals")
        header_bytes = _int_field(head, 184, 8, "header size")
        if n_signals < 1 or header_bytes != HEADER_BYTES * (n_signals + 1):
            raise EdfError(f"not an EDF file: a header of {header_bytes} bytes for {n_signals} signals")
        signal_headers = f.read(HEADER_BYTES * n_signals)
    if len(signal_headers) < HEADER_BYTES * n_signals:
        raise EdfError(f"truncated EDF file: {size} bytes, shorter than its own header ({header_bytes})")
    n_records = _int_field(head, 236, 8, "number of data records")
    try:
        record_s = float(_field(head, 244, 8))
    except ValueError:
        raise EdfError("not an EDF file: unreadable data record duration") from None
    layout = Layout(header_bytes, n_records, record_s, _field(head, 192, 44),
                    [_field(signal_headers, 16 * i, 16) for i in range(n_signals)],
                    [_int_field(signal_headers, 216 * n_signals + 8 * i, 8, "samples per data record")
                     for i in range(n_signals)])
    if n_records < 0:
        raise EdfError("the EDF header gives the number of data records as -1 (a recording not "
                       "closed properly): its length is unknown")
    if n_records == 0:
        raise EdfError("the EDF file holds no data record: no signal was recorded")
    if layout.record_bytes <= 0 or record_s <= 0:
        raise EdfError("EDF header with empty data records (no samples or a zero duration)")
    expected = header_bytes + n_records * layout.record_bytes
    if size < expected:
        raise EdfError(f"truncated EDF file: its header announces {n_records} data records "
                       f"({expected} bytes) but the file holds {size} bytes, "
                       f"{(size - header_bytes) // layout.record_bytes} whole records")
    if size > expected:
        raise EdfError(f"the EDF header does not match the file's length: {n_records} data records "
                       f"make {expected} bytes, the file has {size} ({size - expected} more)")
    return layout


def start_time(path):
    """The recording's start from the fixed header (EDF+'s 4-digit year when given), or None."""
    with open(path, "rb") as f:
        head = f.read(HEADER_BYTES)
    recording = _field(head, 88, 80).split()
    try:
        day, month, year = (int(v) for v in _field(head, 168, 8).split("."))
        hh, mm, ss = (int(v) for v in _field(head, 176, 8).split("."))
        year += 1900 if year >= 85 else 2000  # EDF's clipping date: 1985
        if len(recording) > 1 and recording[0] == "Startdate" and recording[1] != "X":
            year = datetime.datetime.strptime(recording[1].title(), "%d-%b-%Y").year
        return datetime.datetime(year, month, day, hh, mm, ss)
    except ValueError:
        return None


def _pick(signals, channel):
    """Index of the requested ordinary signal: ``channel`` an index, a label, or None (default)."""
    labels = [s.label.strip() for s in signals]
    if channel is None:
        return default_channel(labels)
    if re.fullmatch(r"\d+", channel.strip()):
        index = int(channel)
        if index >= len(labels):
            raise EdfError(f"no channel {index}: the file has {len(labels)} signal(s), "
                           f"0 to {len(labels) - 1} ({', '.join(map(repr, labels))})")
        return index
    wanted = channel.strip().lower()
    for i, lab in enumerate(labels):
        if lab.lower() == wanted:
            return i
    raise EdfError(f"no channel labelled {channel.strip()!r}: the file's signals are "
                   f"{', '.join(map(repr, labels))}")


def default_channel(labels):
    """The signal analysed when none is asked for: the first labelled lead II or MLII (the lead
    the networks call best: a 12-lead or 3-lead file often starts with lead I), else the first
    whose label looks like an ECG lead, else signal 0. ``labels``: the ordinary signals'."""
    for i, label in enumerate(labels):
        if lead_name(label) == "MLII":
            return i
    return next((i for i, label in enumerate(labels) if ECG_LABEL.search(label)), 0)


def open_channel(path, channel=None):
    """The :class:`Channel` to analyse in the EDF/EDF+ file at ``path``; raises :class:`EdfError`.

    ``channel``: an index among the ordinary signals, a label (case-insensitive), or
    None for :func:`default_channel`.
    An EDF+D is read as continuous when its data records follow one another without a gap,
    and as its continuous parts (``Channel.parts``) when they do not.
    """
    import edfio

    layout = check_layout(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            edf = edfio.read_edf(path, lazy_load_data=True)
            signals = edf.signals
    except Exception as exc:  # edfio raises ValueError, IndexError, UnicodeError... on bad headers
        raise EdfError(f"not a readable EDF file: {exc}") from None
    if not signals:
        raise EdfError("the EDF file holds annotations only, no signal")
    notes = []
    index = _pick(signals, channel)
    sig = signals[index]
    fs = sig.sampling_frequency
    if fs != round(fs):
        raise EdfError(f"channel {index} ({sig.label.strip()!r}) is sampled at {fs:g} Hz: "
                       "a whole number of Hz is needed")
    fs = int(round(fs))
    if not MIN_FS <= fs <= MAX_EDF_FS:
        raise EdfError(f"channel {index} ({sig.label.strip()!r}) is sampled at {fs} Hz, "
                       f"outside {MIN_FS}-{MAX_EDF_FS} Hz")
    unit = sig.physical_dimension.strip()
    to_mv = UNIT_TO_MV.get(unit.lower())
    if to_mv is None:
        to_mv = 1.0
        notes.append(f"channel unit {unit!r} is not mV, uV or V: read as mV")
    lo, hi = sorted((sig.physical_min * to_mv, sig.physical_max * to_mv))
    ch = Channel(path=str(path), index=index, label=sig.label.strip(), fs=fs,
                 n_samples=int(round(layout.n_records * layout.record_s * fs)), start_time=start_time(path),
                 to_mv=to_mv, physical_range_mv=(lo, hi), warnings=notes)
    if layout.reserved.startswith("EDF+D"):
        _read_parts(ch, layout)
    return ch


def _read_parts(channel, layout):
    """Set an EDF+D ``channel``'s parts from its data records' onsets, and its start to the first's."""
    onsets = record_onsets(channel.path, layout)
    parts = parts_from_onsets(onsets, layout.record_s, channel.fs)
    if channel.start_time is not None and onsets[0]:
        channel.start_time += datetime.timedelta(seconds=float(onsets[0]))
    if len(parts) == 1:
        channel.warnings.append("EDF+D file whose data records have no gap between them: read as continuous")
        return
    channel.parts = tuple(parts)
    gaps = channel.gap_intervals_s
    channel.warnings.append(
        f"EDF+D file with {len(gaps)} gap(s), {np.sum(gaps[:, 1] - gaps[:, 0]):.0f} s not recorded "
        "(gap_intervals_s): each continuous part is analysed on its own, no RR interval, couplet "
        "or run spans a gap, and times are the recording's, gaps included")


def parts_from_onsets(onsets, record_s, fs):
    """The continuous :class:`Part` s of data records starting at ``onsets`` (n,) seconds,
    each ``record_s`` seconds of ``fs`` Hz samples; onsets count from the first record's.

    A record that starts later than the previous one ends, by half a sample or more, opens
    a part; one that starts before it ends (overlapping or out of order) raises :class:`EdfError`.
    """
    per_record = int(round(record_s * fs))
    steps = np.diff(onsets) - record_s
    tolerance = 0.5 / fs  # onsets are written in decimal: closer than half a sample is no gap
    if np.any(steps < -tolerance):
        i = int(np.flatnonzero(steps < -tolerance)[0]) + 1
        raise EdfError(f"EDF+D data record {i} starts at {onsets[i]:g} s, before the previous one ends "
                       f"({onsets[i - 1] + record_s:g} s): its data records overlap or are out of order")
    starts = np.concatenate(([0], np.flatnonzero(steps >= tolerance) + 1))
    ends = np.append(starts[1:], len(onsets))
    return [Part(int(a) * per_record, int(b) * per_record, float(onsets[a] - onsets[0]))
            for a, b in zip(starts, ends)]


def record_onsets(path, layout):
    """Each data record's start in seconds (its EDF+ timekeeping annotation), (n_records,) float64."""
    if ANNOTATIONS_LABEL not in layout.labels:
        raise EdfError("EDF+D file without an 'EDF Annotations' signal: its records' times are unknown")
    k = layout.labels.index(ANNOTATIONS_LABEL)
    start = 2 * sum(layout.per_record[:k])
    records = np.memmap(path, np.uint8, mode="r", offset=layout.header_bytes,
                        shape=(layout.n_records, layout.record_bytes))
    onsets = np.empty(layout.n_records)
    for r in range(layout.n_records):  # the first TAL of each record: "+<onset>\x14\x14"
        tal = records[r, start:start + 2 * layout.per_record[k]].tobytes()
        try:
            onsets[r] = float(tal[:tal.index(b"\x14")].decode("ascii"))
        except ValueError:
            raise EdfError(f"EDF+ data record {r} has no readable timekeeping annotation") from None
    del records
    return onsets
