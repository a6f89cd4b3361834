"""A whole recording's beats and its Holter report, in chunks and processes (``ecg.chunks``).

:func:`analyse` runs two stages over an EDF channel (``service.edf.Channel``), each a
list of independent tasks that read their own slice of the file:

1. detection: time chunks (30 min by default) -> R peaks, plus the signal's checks
   (all zeros, saturated);
2. classification: beat ranges holding whole pools of the decision (~4,096 beats, about
   an hour) -> each beat's label, from the same inputs, network and decision as a
   whole-signal prediction.

With more than one process the tasks go to a pool of processes started from a
forkserver (never a fork of a threaded gunicorn worker), each loading the model itself;
with one they run in the calling thread on the worker's own model.
"""

import multiprocessing
import multiprocessing.forkserver
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ecg import MODEL_FS, chunks
from ecg import quality as quality_module
from ecg.decision import classify
from ecg.features import equal_spans, groups_within
from ecg.holter import pause_starts
from ecg.pipeline import PREPROCESSING, polarity, upright_factor
from ecg.quality import Q_LEAD_S, T_WAVE_S, baseline_moves, lead_on_runs
from ecg.signal import map_positions

from .edf import EdfError
from .inference import dominant_calls, qrs_sizes, short_rhythm_beats
from .model import ModelUnavailable, load_model
from .schemas import MIN_SECONDS

# a channel this share of whose samples sit at its physical minimum or maximum is saturated (those
# held there for RAIL_HELD_S or more left out: a lead off the recorder pins to a rail, whose
# stretch is flat and unreadable, not a clipped signal) ...
SATURATED_SHARE = 0.5
RAIL_HELD_S = 1.0
# ... and from this share on, the report warns of clipping
CLIPPED_WARNING_SHARE = 0.01
# a continuous part of an EDF+D shorter than this is not analysed: a prediction's shortest signal
MIN_PART_S = MIN_SECONDS
FLAT_SPAN_MV = 1e-6  # a channel whose samples all lie within this span carries no signal
ZERO_MV = 1e-3  # ... and is "all zeros" within 1 uV of 0 (the calibration of digital 0 is rarely exactly 0)
# the pauses' baseline test reads the signal in spans of up to this long, not once per RR interval:
# a day of sinus bradycardia under 30 bpm has tens of thousands of intervals of ecg.holter.PAUSE_S
BASELINE_READ_S = 600.0


class NoBeats(Exception):
    """No beat found in the whole channel (a flat line, or no QRS complex)."""


class Overtime(Exception):
    """The analysis ran past its time limit; the message is the stage it stopped in."""


@dataclass(frozen=True)
class Settings:
    """How a recording is cut and spread (service/config.py's ECG_RECORDING_*)."""

    processes: int = 0  # 0: as many as the cores the machine leaves idle (at least 1)
    chunk_s: float = 1800.0  # detection chunk
    task_beats: int = 2048  # a classification task: whole pools, at least this many beats
    timeout_s: float | None = 600.0


def process_count(requested):
    """Processes for one recording: ``requested``, or (0) the cores not busy now, at least 1.

    Busy cores are the 1-min load average, rounded: other requests, gunicorn workers
    and jobs on the machine. A busy machine analyses the recording in the worker itself.
    """
    if requested > 0:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores - int(round(os.getloadavg()[0])))


# --- the tasks: plain functions of picklable arguments, run in a child or in the worker --

_ENVIRON_LOCK = threading.Lock()
_CHILD = {}  # in a child process: its "model", or the "error" that stopped it loading


def _init_child(model_dir, card):
    """Load the model once per child; it must be the model the request started with."""
    try:
        model = load_model(model_dir)
        if model.card != card:
            raise ModelUnavailable("the model changed while the recording was analysed; send it again")
        _CHILD["model"] = model
    except ModelUnavailable as exc:
        _CHILD["error"] = str(exc)


def _child_model():
    if "error" in _CHILD:
        raise ModelUnavailable(_CHILD["error"])
    return _CHILD["model"]


def detect_task(channel, fs, chunk):
    """Stage 1 on one ``ecg.chunks.Chunk``: ``(findings, stats)``, ``findings`` its
    ``ecg.chunks.ChunkFindings``.

    ``stats``: over the chunk's core samples: ``samples``, ``at_rails`` (how many sit at
    the channel's physical minimum or maximum), ``held_at_rails`` (of those, how many in runs of
    ``RAIL_HELD_S`` or more at a rail, as the chunk's read sees them), ``min`` and ``max`` (mV).
    """
    x = channel.read(chunk.read_lo, chunk.read_hi)
    core = slice(chunk.lo - chunk.read_lo, chunk.hi - chunk.read_lo)
    lo, hi = channel.physical_range_mv
    at_rails = (x <= lo) | (x >= hi)
    held = at_rails & in_long_runs(at_rails, RAIL_HELD_S * fs)
    stats = {"samples": core.stop - core.start, "at_rails": int(np.count_nonzero(at_rails[core])),
             "held_at_rails": int(np.count_nonzero(held[core])),
             "min": float(x[core].min()), "max": float(x[core].max())}
    return chunks.detect_in_chunk(x, fs, chunk), stats


def in_long_runs(mask, min_len):
    """(n,) bool: the samples of ``mask`` (n,) bool that lie in a run of True at least ``min_len`` long."""
    starts, ends = equal_spans(mask)
    return np.repeat(mask[starts] & (ends - starts >= min_len), ends - starts)


# what classify_task returns for each beat of its range, in order (read back by _part_labels);
# all but "dominant" (read by _short_rhythm) go into the result per beat
LABEL_FIELDS = ("is_v", "p_v", "flipped", "own_rhythm", "by_timing", "no_pause", "no_t_wave", "dominant")


def classify_task(model, channel, peaks, groups, runs, core, units, quality, decision, apply_ruleguard, pacemaker,
                  upright):
    """Stage 2 on one beat range: ``(is_v, p_v, flipped, own_rhythm, by_timing, no_pause, no_t_wave)`` of its beats
    (``ecg.decision.Calls``), and which are of their pool's dominant on-time slow shape
    (``service.inference.dominant_calls``: the short-rhythm warning's count reads it).

    ``peaks``, ``groups``, ``runs``: (m,) of the range with its context (``ecg.chunks.context_range``);
    ``core``: the slice of them that is the range; ``units``, ``quality``: the range's pools
    (or groups) and signal quality; ``decision``: the card's, pooling within ``units``
    (:func:`task_decision`); ``pacemaker``: declared (``ecg.decision.own_rhythm_mask``);
    ``upright``: the day's ``ecg.pipeline.upright_factor``.
    """
    beats = chunks.beats_in_context(channel.read, channel.fs, channel.n_samples, peaks, groups, upright, runs)
    windows, features = beats.windows[core], beats.features[core]
    p_raw = model.p_v(windows, features)
    sizes = tuple(s[core] for s in qrs_sizes(beats))  # the range's first and last beats' neighbours from the context
    calls = classify(p_raw, features, decision, apply_ruleguard, windows=windows, groups=units,
                     quality=quality, paced=pacemaker, qrs_sizes=sizes)
    return (calls.is_v, calls.p_v, calls.flipped, calls.own_rhythm, calls.by_timing, calls.no_pause, calls.no_t_wave,
            dominant_calls(calls, features))


def task_decision(decision):
    """The card's decision for one task: pooling within the pools it is given, not its own."""
    pooling = decision.get("pooling")
    if not pooling or not pooling.get("pool_size_beats"):
        return decision
    return {**decision, "pooling": {k: v for k, v in pooling.items() if k != "pool_size_beats"}}


def _classify_in_child(*args):
    return classify_task(_child_model(), *args)


# --- running them --------------------------------------------------------------------


def _forkserver():
    """The forkserver context, its server started (once per process) with one BLAS thread.

    Processes, not threads, share the cores: a child's OpenBLAS threads (the pooling's
    matrix products) would only compete with the other children. The server's
    environment is the worker's at its start, with ``OPENBLAS_NUM_THREADS=1`` added.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["service.holter"])  # children start with numpy, ORT, ecg imported
    with _ENVIRON_LOCK:  # a worker's two threads may both start a recording
        saved = os.environ.get("OPENBLAS_NUM_THREADS")
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            if saved is None:
                del os.environ["OPENBLAS_NUM_THREADS"]
            else:
                os.environ["OPENBLAS_NUM_THREADS"] = saved
    return ctx


class _Runner:
    """Tasks in a process pool (``processes`` > 1) or in this thread, under one deadline."""

    def __init__(self, model, model_dir, processes, deadline):
        self.model, self.deadline = model, deadline
        self.pool = None
        if processes > 1:
            self.pool = ProcessPoolExecutor(processes, mp_context=_forkserver(), initializer=_init_child,
                                            initargs=(str(model_dir), model.card))

    def _check(self, stage):
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise Overtime(stage)

    def map(self, stage, func_here, func_child, jobs):
        """Results of ``func(*job)`` for each of ``jobs``, in order."""
        if self.pool is None:
            out = []
            for job in jobs:
                self._check(stage)
                out.append(func_here(*job))
            return out
        futures = [self.pool.submit(func_child, *job) for job in jobs]
        left = None if self.deadline is None else max(self.deadline - time.perf_counter(), 0.0)
        done, pending = wait(futures, timeout=left, return_when=FIRST_EXCEPTION)
        for f in done:
            if f.exception() is not None:
                raise f.exception()
        if pending:
            raise Overtime(stage)
        return [f.result() for f in futures]

    def close(self):
        if self.pool is not None:
            for proc in list(self.pool._processes.values()):  # no waiting for a task past the deadline
                proc.terminate()
            self.pool.shutdown(wait=True, cancel_futures=True)


def analyse(model, model_dir, channel, settings, apply_ruleguard=True, pacemaker=False):
    """Every beat of ``channel`` (``service.edf.Channel``) classified, and the report's counts;
    ``pacemaker``: the patient has one (``service.inference.predict``).

    Each continuous part of the channel (an EDF+D with gaps has several) is analysed as a
    signal of its own; a part under ``MIN_PART_S`` is not analysed. The R peaks' polarity is
    the whole recording's.

    Returns a dict: ``positions`` (n,) samples at the channel's rate from the recording's
    start (gaps included), ``times_s`` (n,), ``part`` (n,) the continuous part of each beat,
    ``unbroken`` (n,) the stretch recorded without a break each beat is in (a part, cut again by
    each lead off, however short; no V run, chain or pause joins two),
    ``is_v``, ``p_v``, ``flipped``, ``own_rhythm``, ``by_timing``, ``no_pause``, ``no_t_wave``, ``quality``,
    ``own_snr_db`` (n,),
    ``short_rhythm_beats`` and
    ``short_rhythm_of`` (the short-rhythm warning's counts: :func:`_short_rhythm`), ``pacemaker``
    (as declared), ``qrs_direction`` (-1.0 when the day's QRS complexes mostly point down,
    ``ecg.pipeline.polarity``),
    ``unreadable_intervals_s`` (u, 2), ``unreadable_s``, ``flutter_intervals_s`` (f, 2) and
    ``flutter_s`` (``ecg.flutter``), ``gap_intervals_s`` (g, 2) and ``gap_s`` (not recorded),
    ``short_parts_s`` (parts not analysed), ``disturbed_intervals_s`` (:func:`disturbed_intervals`),
    ``checks`` (stage 1's counts), ``processes``. Raises ``service.edf.EdfError`` (a saturated
    or all-zero channel), :class:`NoBeats`, :class:`Overtime`, ``service.model.ModelUnavailable``.
    """
    budget = settings.timeout_s
    deadline = time.perf_counter() + budget if budget else None
    processes = process_count(settings.processes)
    parts, short = analysable_parts(channel)
    runner = _Runner(model, model_dir, processes, deadline)
    try:
        found, checks = _detect(runner, parts, settings)
        _check_signal(checks, channel)
        beating = [f for f in found if len(f.peaks)]
        if not beating:
            raise NoBeats()
        qrs_direction = polarity(np.concatenate([f.deflections for f in beating]))
        upright = upright_factor(qrs_direction, model.preprocessing_version)
        jobs = [classification_jobs(f, model.decision, settings, apply_ruleguard, pacemaker, upright)
                for f in beating]
        labels = runner.map("beat classification", _classify_here(model), _classify_in_child,
                            [job for part_jobs in jobs for job in part_jobs])
    except BrokenProcessPool:
        raise RuntimeError("a process analysing the recording died") from None
    finally:
        runner.close()
    bounds = np.cumsum([0] + [len(part_jobs) for part_jobs in jobs])
    per_part = [_part_labels(labels[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    stretches = _stretches(channel, found, short)
    unseen = np.concatenate([stretches["unreadable_intervals_s"], stretches["flutter_intervals_s"]])
    return {**_beats(channel, beating, per_part), **stretches,
            "disturbed_intervals_s": disturbed_intervals(channel, beating, unseen),
            "pacemaker": bool(pacemaker), "qrs_direction": qrs_direction, "checks": checks,
            "processes": processes}


def analysable_parts(channel):
    """``(parts, short)``: the channel's continuous parts to analyse, and those under ``MIN_PART_S``
    left out (only a channel with gaps has any); raises ``service.edf.EdfError`` when none is left."""
    parts = channel.continuous_parts()
    if len(parts) == 1:
        return parts, []
    long_enough = [p for p in parts if p.duration_s >= MIN_PART_S]
    if not long_enough:
        raise EdfError(f"EDF+D file whose continuous parts are all shorter than {MIN_PART_S:g} s "
                       "(the gaps between its data records leave no signal long enough to analyse)")
    return long_enough, [p for p in parts if p.duration_s < MIN_PART_S]


@dataclass
class PartFindings:
    """Stage 1's findings in one continuous part, at ``ecg.MODEL_FS`` from the part's start."""

    part: object  # the part, a service.edf.Channel
    peaks: np.ndarray  # (m,) R peaks
    quality: np.ndarray  # (m,) int8, ecg.quality's
    unreadable: np.ndarray  # (u, 2) [start, end) stretches
    flutter: np.ndarray  # (f, 2)
    deflections: np.ndarray  # for ecg.pipeline.polarity
    flat: np.ndarray  # (l, 2) flat stretches: a lead off for a minute or more ends a run of beats
    own_snr_db: np.ndarray  # (m,) each beat's own SNR (ecg.quality.beat_snrs): a pause's beats must stand out

    @cached_property
    def runs(self):
        """(m,) the run of each beat between leads off of a minute or more (``ecg.quality.lead_on_runs``)."""
        return lead_on_runs(self.peaks, self.flat, MODEL_FS)

    @cached_property
    def positions(self):
        """(m,) the R peaks at the channel's rate, samples from the part's start."""
        return map_positions(self.peaks, MODEL_FS, self.part.fs, n_to=self.part.n_samples)


def _detect(runner, parts, settings):
    """Stage 1 over every part: ``(findings, checks)``, a :class:`PartFindings` per part and
    the channel's sample counts (``detect_task``'s stats, summed)."""
    jobs = [[(part, part.fs, c) for c in chunks.detection_chunks(part.n_samples, part.fs, settings.chunk_s)]
            for part in parts]
    found = runner.map("beat detection", detect_task, detect_task, [job for js in jobs for job in js])
    stats = [s for _, s in found]
    checks = {k: sum(s[k] for s in stats) for k in ("samples", "at_rails", "held_at_rails")}
    checks.update(min=min(s["min"] for s in stats), max=max(s["max"] for s in stats))
    bounds = np.cumsum([0] + [len(js) for js in jobs])
    findings = [_part_findings(part, [f for f, _ in found[a:b]]) for part, a, b in zip(parts, bounds[:-1], bounds[1:])]
    return findings, checks


def _part_findings(part, mine):
    """One part's :class:`PartFindings` from its chunks' ``ecg.chunks.ChunkFindings`` ``mine``, in order."""
    peaks = np.concatenate([f.peaks for f in mine]).astype(np.int64)
    quality = np.concatenate([f.quality for f in mine]).astype(np.int8)
    n = chunks.model_length(part.n_samples, part.fs)
    # a chunk sees the stretch between two unreadable beats, or a beatless one, only when it holds it whole
    unreadable = [f.unreadable for f in mine] + [quality_module.between_unreadable(peaks, quality),
                                                 quality_module.beatless_stretches(peaks, n, MODEL_FS)]
    return PartFindings(part, peaks, quality, quality_module.merge_intervals(np.concatenate(unreadable)),
                        quality_module.merge_intervals(np.concatenate([f.flutter for f in mine])),
                        np.concatenate([f.deflections for f in mine]),
                        quality_module.merge_intervals(np.concatenate([f.flat for f in mine])),
                        np.concatenate([f.own_snr_db for f in mine]))


def _part_labels(results):
    """One part's stage-2 ``results`` (a :func:`classify_task` tuple per task, in order) as
    ``{field: (m,) array}`` over its beats, for each of ``LABEL_FIELDS``."""
    return {name: np.concatenate(arrays) for name, arrays in zip(LABEL_FIELDS, zip(*results))}


def _beats(channel, beating, labels):
    """The result's per-beat arrays from the parts with beats and each one's :func:`_part_labels`."""
    positions = np.concatenate([int(round(f.part.onset_s * channel.fs)) + f.positions for f in beating])
    part = np.repeat(np.arange(len(beating)), [len(f.peaks) for f in beating])
    # a lead off of any length hides whatever beats it held: nothing is counted across it
    off = np.concatenate([lead_on_runs(f.peaks, f.flat, MODEL_FS, min_s=0.0) for f in beating])
    return {
        "positions": positions,
        "times_s": positions / channel.fs,
        "part": part,
        "unbroken": np.cumsum(np.r_[0, (np.diff(part) != 0) | (np.diff(off) != 0)]),
        **{name: np.concatenate([p[name] for p in labels]) for name in LABEL_FIELDS if name != "dominant"},
        **_short_rhythm(beating, labels),
        "quality": np.concatenate([f.quality for f in beating]),
        "own_snr_db": np.concatenate([f.own_snr_db for f in beating]),
    }


def _short_rhythm(beating, labels):
    """The short-rhythm warning's counts over every part's runs (``service.inference.short_rhythm_beats``):
    ``short_rhythm_beats``, and ``short_rhythm_of`` the beats of the runs counted."""
    counts = [short_rhythm_beats(p["is_v"], p["dominant"], f.runs) for f, p in zip(beating, labels)]
    return {"short_rhythm_beats": sum(c for c, _ in counts), "short_rhythm_of": sum(n for _, n in counts)}


def disturbed_intervals(channel, beating, unseen):
    """(d, 2) ``[start, end]`` seconds (in the recording) of the RR intervals that would be pauses
    (``ecg.holter.pause_starts`` given ``unseen``, (u, 2) seconds: the unreadable and flutter
    stretches, and the beats' own SNRs) but in which the baseline jumps or recovers (``ecg.quality.baseline_moves``):
    beats may be hidden there, so they are no pauses. Each is the stretch read, between its first
    beat's T wave and its second beat's Q, so that it touches neither beat (nor the next RR
    interval). An interval across an unseen stretch is not read: a lead off all night is hours."""
    out = []
    for f in beating:
        at = f.positions
        long_rr = pause_starts(f.part.onset_s + at / channel.fs, unseen=unseen, own_snr_db=f.own_snr_db)
        for batch in read_batches(at[long_rr], at[long_rr + 1], int(BASELINE_READ_S * channel.fs)):
            begins = long_rr[batch]
            lo = at[begins[0]]
            x = f.part.read(lo, at[begins[-1] + 1])
            out += [[f.part.onset_s + at[i] / channel.fs + T_WAVE_S, f.part.onset_s + at[i + 1] / channel.fs - Q_LEAD_S]
                    for i in begins if baseline_moves(x[at[i] - lo:at[i + 1] - lo], channel.fs)]
    return np.array(out, dtype=np.float64).reshape(-1, 2)


def read_batches(starts, ends, span):
    """``[indices]``: the sorted intervals ``starts[k]:ends[k]`` (samples) in consecutive groups
    that each fit in one read of at most ``span`` samples (an interval longer than that alone)."""
    batches, first = [], 0
    for k in range(1, len(starts) + 1):
        if k == len(starts) or ends[k] - starts[first] > span:
            batches.append(np.arange(first, k))
            first = k
    return batches


def _stretches(channel, found, short):
    """The result's stretches in seconds from the recording's start: unreadable, flutter, gaps."""
    def in_recording(key):
        return np.concatenate([getattr(f, key) / MODEL_FS + f.part.onset_s for f in found]).reshape(-1, 2)

    unreadable, flutter, gaps = in_recording("unreadable"), in_recording("flutter"), channel.gap_intervals_s
    return {
        "unreadable_intervals_s": unreadable,
        "unreadable_s": float(np.sum(unreadable[:, 1] - unreadable[:, 0])),
        "flutter_intervals_s": flutter,
        "flutter_s": float(np.sum(flutter[:, 1] - flutter[:, 0])),
        "gap_intervals_s": gaps,
        "gap_s": float(np.sum(gaps[:, 1] - gaps[:, 0])),
        "short_parts_s": float(sum(p.duration_s for p in short)),
    }


def _classify_here(model):
    return lambda *args: classify_task(model, *args)


def classification_jobs(found, decision, settings, apply_ruleguard, pacemaker, upright):
    """Stage 2's task arguments for one part's :class:`PartFindings`: whole pools of its beats,
    with their context, each run between leads off grouped as a signal of its own;
    ``apply_ruleguard``, ``pacemaker``: as the request set them; ``upright``: the day's
    ``ecg.pipeline.upright_factor``."""
    peaks, runs = found.peaks, found.runs
    groups = groups_within(runs, PREPROCESSING["group_size_beats"])
    units = chunks.decision_units(runs, decision)
    own = task_decision(decision)
    jobs = []
    for a, b in chunks.classification_tasks(units, settings.task_beats):
        e0, e1 = chunks.context_range(groups, a, b)
        jobs.append((found.part, peaks[e0:e1], groups[e0:e1], runs[e0:e1], slice(a - e0, b - e0), units[a:b],
                     found.quality[a:b], own, apply_ruleguard, pacemaker, upright))
    return jobs


def _check_signal(checks, channel):
    n = max(checks["samples"], 1)
    if checks["max"] - checks["min"] < FLAT_SPAN_MV:
        level = "all zeros" if abs(checks["max"]) < ZERO_MV else f"flat at {checks['max']:.3f} mV"
        raise EdfError(f"channel {channel.index} ({channel.label!r}) is {level}: no signal was recorded")
    clipped, live = checks["at_rails"] - checks["held_at_rails"], n - checks["held_at_rails"]
    if clipped and clipped >= SATURATED_SHARE * live:
        raise EdfError(f"channel {channel.index} ({channel.label!r}) is saturated: "
                       f"{100 * clipped / live:.0f}% of its samples sit at its physical minimum or maximum "
                       f"({channel.physical_range_mv[0]:g} / {channel.physical_range_mv[1]:g} mV), not held there "
                       "as a lead off is")
