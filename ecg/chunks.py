"""A whole-day recording in pieces, with the beats of one pass over the whole signal (numpy only).

``ecg.pipeline.extract_beats`` and ``ecg.decision.classify`` see a signal whole: the
detector is sequential (running signal and noise levels), the band-passes run forward
and back over the whole signal, and the groups of ~16 beats (templates, amplitude
scale, local RR, ``ecg.features.beat_groups``) and the pools of 4,096 beats (the decision's
morphology pooling, ``ecg.decision.pool_blocks``) depend on the signal's *total* number of
beats. A day does not fit in memory that way (24 h at 360 Hz: 31 M samples, 250 MB per
float64 copy), so:

1. **Detection** in time chunks (:func:`detection_chunks`): each chunk is read with
   ``DETECTOR_LEAD_S`` of signal before its core and ``FILTER_SETTLE_S`` after it, and
   keeps the R peaks inside its core (the cores tile the signal: no beat is kept twice
   or lost at a border). By the core's start the detector's levels have forgotten how
   they started (0.875 per beat: ~1e-4 after 70 beats) and the filters' start-up
   transients have decayed (the 0.5-Hz high-pass's as e^(-2.2 t/s): 1e-19 after 20 s).
2. **Groups and pools** over all the day's peaks at once, as for a whole signal
   (:func:`decision_units`; each run of beats between leads off of a minute or more apart,
   ``ecg.quality.lead_on_runs``, from the flat stretches each chunk reports); so is whether
   the signal is turned upright, from the QRS deflections of all its beats
   (``ecg.pipeline.upright_factor``).
3. **Beat inputs** in beat ranges (:func:`classification_tasks`) that hold whole pools
   (whole groups when the decision pools within groups): each range is computed with
   its neighbouring groups around it (:func:`context_range`), so that every group
   median, RR interval and neighbour feature of its beats is the whole signal's, on a
   piece of signal with ``FILTER_SETTLE_S`` of margin (:func:`segments_for_beats`: a long
   stretch without beats between two of them, a lead off all night, is not read).

The same beats as the whole-signal path, chunk borders included, are checked on real
records in tests/test_recordings.py and on all 48 MIT-BIH records by ``python -m bench.holter``.
"""

from dataclasses import dataclass
from math import gcd
from typing import NamedTuple

import numpy as np

from . import MODEL_FS
from .decision import pool_groups
from .detect import detect_r_peaks, qrs_energy_envelope
from .features import equal_spans, groups_within
from .flutter import flutter_intervals
from .pipeline import PREPROCESSING, beat_inputs, preprocess, qrs_deflections
from .quality import beat_quality, beat_snrs, flat_stretches, outside_flat_stretches

# the 0.5-Hz band-pass's start-up transient decays as e^(-2.2 t/s): under 1e-19 of it after 20 s
FILTER_SETTLE_S = 20.0
# the detector's running levels keep 0.875 of their past per beat: ~1e-4 of their start after
# 70 beats, a minute at 70 bpm; its 8-beat RR history is the last 8 beats' by then
DETECTOR_LEAD_S = 60.0
# a beat's window reaches 180 samples each side, its QRS-width envelope 55 + smoothing: 0.6 s covers both
BEAT_REACH_S = 0.6


def alignment(fs):
    """``(input samples, 360-Hz samples)`` of the shortest stretch both rates divide.

    A chunk starting at a multiple of the first starts at a whole 360-Hz sample (the
    second's multiple), so that its resampled samples are the whole signal's.
    """
    g = gcd(int(fs), MODEL_FS)
    return int(fs) // g, MODEL_FS // g


def model_length(n, fs):
    """Samples at 360 Hz of ``n`` samples at ``fs`` Hz (``ecg.signal.resample``'s output length)."""
    step_in, step_out = alignment(fs)
    return -(-int(n) * step_out // step_in)


def to_model_samples(k, fs):
    """An aligned input sample index ``k`` at ``fs`` Hz as a 360-Hz sample index."""
    step_in, step_out = alignment(fs)
    return int(k) // step_in * step_out


def _aligned_up(samples, step):
    return -(-int(samples) // step) * step


@dataclass(frozen=True)
class Chunk:
    """One time chunk of a signal: what it reads, and whose beats it keeps."""

    read_lo: int  # input samples read (read_lo aligned)
    read_hi: int
    lo: int  # its core in input samples: the cores tile the signal
    hi: int
    core_lo: int  # its core in 360-Hz samples: the R peaks it keeps
    core_hi: int


def detection_chunks(n, fs, chunk_s, lead_s=DETECTOR_LEAD_S, tail_s=FILTER_SETTLE_S):
    """Time chunks (:class:`Chunk`) over ``n`` input samples at ``fs`` Hz.

    ``chunk_s``: a core's length in seconds (rounded up to the alignment). A chunk reads
    ``lead_s`` before its core and ``tail_s`` after it; the 360-Hz cores tile
    ``0 .. model_length(n, fs)``.
    """
    step_in, _ = alignment(fs)
    chunk = max(_aligned_up(chunk_s * fs, step_in), step_in)
    lead, tail = _aligned_up(lead_s * fs, step_in), _aligned_up(tail_s * fs, step_in)
    out = []
    for lo in range(0, int(n), chunk):
        hi = min(lo + chunk, int(n))
        core_hi = model_length(n, fs) if hi == n else to_model_samples(hi, fs)
        out.append(Chunk(max(lo - lead, 0), min(hi + tail, int(n)), lo, hi, to_model_samples(lo, fs), core_hi))
    return out


class ChunkFindings(NamedTuple):
    """What stage 1 finds in one :class:`Chunk`'s core (360-Hz samples of the whole signal)."""

    peaks: np.ndarray  # (k,) int64 R peaks
    quality: np.ndarray  # (k,) int8, ecg.quality's
    unreadable: np.ndarray  # (u, 2) int64 [start, end) stretches judged unreadable
    deflections: np.ndarray  # (k,) mV, ecg.pipeline.qrs_deflections: the day's polarity is decided on them
    flutter: np.ndarray  # (f, 2) int64 [start, end) stretches that look like ventricular flutter
    flat: np.ndarray  # (l, 2) int64 [start, end) flat stretches (ecg.quality.flat_stretches): leads off
    own_snr_db: np.ndarray  # (k,) each beat's own SNR (ecg.quality.beat_snrs): a pause's beats must stand out


def detect_in_chunk(x, fs, chunk):
    """:class:`ChunkFindings` of one :class:`Chunk`: the R peaks in its core, their signal
    quality, own SNR and QRS deflections, and its unreadable and flutter stretches clipped to the core.

    ``x``: the chunk's samples ``chunk.read_lo:chunk.read_hi`` (mV, (m,)) at ``fs`` Hz. The
    chunk reads seconds beyond its core on both sides, more than the quality's context, the
    flutter windows and the filters' settling, so its beats and stretches are judged as in the
    whole signal (the flutter windows to within their 1-s step).
    """
    x360, filtered = preprocess(x, fs)  # as ecg.pipeline.extract_beats: detection on the resampled lead
    envelope = qrs_energy_envelope(x360, MODEL_FS)
    flat = flat_stretches(x360, MODEL_FS)
    local = outside_flat_stretches(detect_r_peaks(x360, MODEL_FS, envelope), flat)
    snrs = beat_snrs(envelope[2], local, MODEL_FS)
    quality, unreadable = beat_quality(x360, local, MODEL_FS, flat=flat, snrs=snrs)
    flutter = np.rint(flutter_intervals(filtered, MODEL_FS) * MODEL_FS).astype(np.int64)
    offset = to_model_samples(chunk.read_lo, fs)
    peaks = local + offset
    keep = (peaks >= chunk.core_lo) & (peaks < chunk.core_hi)

    def in_core(intervals):
        clipped = np.clip(intervals + offset, chunk.core_lo, chunk.core_hi)
        return clipped[clipped[:, 1] > clipped[:, 0]]

    return ChunkFindings(peaks[keep], quality[keep], in_core(unreadable),
                         qrs_deflections(filtered, local)[keep], in_core(flutter), in_core(flat), snrs[1][keep])


def decision_units(runs, decision):
    """Labels (n,) of the runs of beats a classification task holds whole.

    ``runs``: (n,) the beats' runs between leads off (``ecg.quality.lead_on_runs``), each a
    signal of its own. The decision's pools when it pools over the signal (``pool_size_beats``),
    else the groups of ~16 beats (the pools of a decision pooling within groups; any
    group-aligned cut serves a decision without pooling).
    """
    pooling = decision.get("pooling") or {}
    if pooling.get("pool_size_beats"):
        return pool_groups(pooling, len(runs), signals=runs)
    return groups_within(runs, PREPROCESSING["group_size_beats"])


def classification_tasks(units, task_beats):
    """Beat ranges ``(a, b)`` of about ``task_beats`` beats each, cut only where ``units`` (n,) change.

    A unit larger than ``task_beats`` is one task of its own.
    """
    n = len(units)
    tasks, a = [], 0
    for end in equal_spans(units)[1].tolist():
        if end - a >= task_beats or end == n:
            tasks.append((a, end))
            a = end
    return tasks


def context_range(groups, a, b):
    """The beats ``e0:e1`` whose inputs are computed for the beats ``a:b``.

    ``groups``: (n,) every beat's group. Beat a - 1's whole group and beat b's come along
    (the neighbour features of a and b - 1 read them), and one beat beyond each, so that
    those groups' RR intervals and medians are the whole signal's too.
    """
    groups = np.asarray(groups)
    n = len(groups)
    e0 = 0 if a == 0 else max(int(np.searchsorted(groups, groups[a - 1], "left")) - 1, 0)
    e1 = n if b == n else min(int(np.searchsorted(groups, groups[b], "right")) + 1, n)
    return e0, e1


def segments_for_beats(peaks, fs, n, settle_s=FILTER_SETTLE_S):
    """The input samples to read for the beats at ``peaks`` (360-Hz, sorted): ``[(read_lo,
    read_hi, a, b)]``, one segment per run of beats ``a:b`` whose reaches (``settle_s`` and
    ``BEAT_REACH_S`` each side) overlap. Where two beats lie further apart than both reaches (a
    lead off for hours) nothing between them is read.

    ``n``: the signal's input samples at ``fs`` Hz; each ``read_lo`` is aligned.
    """
    step_in, _ = alignment(fs)
    reach = (settle_s + BEAT_REACH_S) * MODEL_FS
    peaks = np.asarray(peaks)
    bounds = np.r_[0, np.flatnonzero(np.diff(peaks) > 2 * reach) + 1, len(peaks)]
    segments = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        lo = int(np.floor((peaks[a] - reach) * fs / MODEL_FS))
        hi = int(np.ceil((peaks[b - 1] + reach) * fs / MODEL_FS))
        segments.append((max(lo // step_in * step_in, 0), min(hi, int(n)), int(a), int(b)))
    return segments


def beats_in_context(read, fs, n, peaks, groups, upright_factor=1.0, runs=None):
    """``ecg.pipeline.Beats`` of ``peaks`` (360-Hz samples of the whole signal) with their ``groups``
    and ``runs`` between leads off (default one run).

    ``read(lo, hi)``: the signal's input samples ``lo:hi`` (mV), ``n`` of them in all, at ``fs``
    Hz; it is called for each of :func:`segments_for_beats`.
    ``upright_factor``: the whole signal's ``ecg.pipeline.upright_factor`` (of the
    ``polarity`` of all its beats' deflections), which the band-passed signal is multiplied by.
    The returned ``peaks`` count from the first segment's start (``positions`` are not the whole
    signal's either); ``filtered`` is the segments' band-passed signal, joined.
    """
    segments = segments_for_beats(peaks, fs, n)
    peaks = np.asarray(peaks, dtype=np.int64)
    pieces, at, joined = [], [], 0
    for lo, hi, a, b in segments:
        _, piece = preprocess(read(lo, hi), fs)
        pieces.append(piece)
        at.append(peaks[a:b] - to_model_samples(lo, fs) + joined)
        joined += len(piece)
    filtered = np.concatenate(pieces)
    filtered *= upright_factor  # in place: the joined copy is the only one, as the one read was before
    first = to_model_samples(segments[0][0], fs)
    span = model_length(segments[-1][1] - segments[0][0], fs)
    return beat_inputs(filtered, peaks - first, MODEL_FS, span, groups=groups, at=np.concatenate(at), runs=runs)
