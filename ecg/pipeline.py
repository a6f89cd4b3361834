"""From a raw ECG lead to classifier inputs: the one code path of training and serving.

Changing anything that alters the arrays :func:`extract_beats` returns means a new
``PREPROCESSING["version"]``: a model card names the version its model was trained
on, and the service refuses a model whose version it does not produce. The versions it
produces are ``SUPPORTED_VERSIONS``: a later version appended feature columns, which a
model of an earlier version does not take (:func:`network_rr`), or added a step that
:func:`extract_beats` takes only for the versions that have it (``TURNED_UPRIGHT``).
"""

from dataclasses import dataclass

import numpy as np

from . import MODEL_FS
from .detect import detect_r_peaks, qrs_energy_envelope
from .dsp import median_rows
from .quality import beat_quality, flat_stretches, lead_on_runs, outside_flat_stretches
from .features import (
    RR_FEATURE_NAMES,
    beat_features,
    beat_windows,
    equal_spans,
    group_median,
    groups_within,
    qrs_widths,
    rr_intervals,
)
from .signal import bandpass, map_positions, remove_mains, resample

PREPROCESSING = {
    "version": "nv-pre-3",
    "fs_hz": MODEL_FS,
    "bandpass_hz": [0.5, 40.0],
    "window_samples": [180, 180],  # before and after the R peak at fs_hz: 1 s centred on it
    "group_size_beats": 16,
    "amplitude": "divided by the group's median QRS peak-to-peak (±100 ms)",
    "polarity": "the signal negated when its beats' median largest QRS deflection (±50 ms) is negative",
    "beat_channels": ["beat", "beat_minus_group_median_beat"],
    "rr_features": list(RR_FEATURE_NAMES),
    "network_slowest_rr_s": 1.5,  # the network reads a slower rhythm at this RR (:func:`network_rr`)
    "detector": "ecg.detect.detect_r_peaks",
}
BANDPASS_ORDER = 2  # of the Butterworth prototype: a 4th-order band-pass, run forward and back
# The QRS complex in a beat window: R peak +-100 ms, wide enough for a ventricular QRS and
# short of most of the P and T waves. The amplitude scale is its peak-to-peak, and the
# decision's pooling compares beats over it (a model card's "core_samples" records it).
QRS_CORE_S = 0.100
_R_PEAK = PREPROCESSING["window_samples"][0]  # the R peak's sample in a beat window
QRS_CORE_SAMPLES = (_R_PEAK - round(QRS_CORE_S * MODEL_FS),
                    _R_PEAK + round(QRS_CORE_S * MODEL_FS))  # (144, 216) of the 360-sample window
# version -> how many feature columns its models take, the first of RR_FEATURE_NAMES
# ("nv-pre-2" added the neighbours' six to "nv-pre-1"). A version's count never changes:
# appending a column makes a new version, which takes them all.
SUPPORTED_VERSIONS = {"nv-pre-1": 10, "nv-pre-2": 16, "nv-pre-3": 16}
# The RRs the network reads in seconds. 16 of DS1's 50,999 beats lie in a rhythm slower than
# 40 bpm (their 16-beat group's median RR over 1.5 s), so a slow rhythm's beats (sleep, an athlete,
# sinus node disease) are inputs the network never learned, and it called many of them V. It reads
# them as a rhythm of ``network_slowest_rr_s``, every RR of the beat scaled alike, so that a PVC's
# prematurity and pause keep their proportions (docs/ROBUSTNESS.md, "Slow rhythms").
_RR_SECONDS_COLUMNS = np.array([RR_FEATURE_NAMES.index(name) for name in ("rr_prev_s", "rr_next_s", "local_rr_s")])
_LOCAL_RR_S = RR_FEATURE_NAMES.index("local_rr_s")
# versions whose signals are turned upright (:func:`polarity`) before the beat windows are cut:
# "nv-pre-3" added it; the earlier versions' networks learned each lead as it was sent
TURNED_UPRIGHT = frozenset({"nv-pre-3"})
# a beat's direction is that of its largest deflection this close to its R peak (s): the QRS
# complex, short of the T wave, which an upright lead may show inverted
UPRIGHT_HALF_WINDOW_S = 0.050


@dataclass
class Beats:
    """Detected beats of one signal and the classifier's inputs for them (n beats)."""

    peaks: np.ndarray  # (n,) int64, R peaks in the 360 Hz signal
    positions: np.ndarray  # (n,) int64, R peaks in the caller's signal at the caller's rate
    windows: np.ndarray  # (n, 360, 2) float32, model input "beat"
    features: np.ndarray  # (n, 16) float32, model input "rr" (its first columns: network_rr)
    rr_prev_s: np.ndarray  # (n,) float64, NaN for the first beat
    rr_next_s: np.ndarray  # (n,) float64, NaN for the last beat
    qrs_width_s: np.ndarray  # (n,) float64
    qrs_size_mv: np.ndarray  # (n,) float64, the QRS core's peak to peak (QRS_CORE_SAMPLES) in ``filtered``
    filtered: np.ndarray  # (m,) float64, the band-passed signal at 360 Hz (mV)
    groups: np.ndarray  # (n,) int64, the beats' groups (templates, local RR, the decision's pooling)
    runs: np.ndarray  # (n,) int64, the runs of beats between leads off (ecg.quality.lead_on_runs)
    quality: np.ndarray  # (n,) int8, ecg.quality's GOOD / NOISY / UNREADABLE
    unreadable: np.ndarray  # (m, 2) int64, [start, end) stretches judged unreadable, 360 Hz samples
    qrs_direction: float = 1.0  # -1.0 when the lead's QRS complexes mostly point down (:func:`polarity`)

    def __len__(self):
        return len(self.peaks)


def preprocess(x, fs):
    """Resample ``x`` (mV, shape (n,)) from ``fs`` Hz to 360 Hz, take its mains hum away and
    band-pass it.

    The 40-Hz low-pass leaves a third of 50-Hz hum in the beat windows, and the networks
    were trained on leads with little: 1 mV of it cost 0.02 of F1 of V on DS2's 10-s
    strips, none once subtracted (:func:`ecg.signal.remove_mains`, which leaves hum under
    ``MAINS_NEGLIGIBLE_SHARE`` of the lead's size as it is). Returns ``(resampled,
    filtered)``, both shape (m,) at 360 Hz:
    ``resampled`` without its hum, for the detector and the quality, since a lead off picks
    up mains hum and is flat only without it.
    """
    x360 = remove_mains(resample(x, fs, MODEL_FS), MODEL_FS)
    lo, hi = PREPROCESSING["bandpass_hz"]
    return x360, bandpass(x360, MODEL_FS, lo, hi, order=BANDPASS_ORDER)


def extract_beats(x, fs, peaks=None, version=PREPROCESSING["version"]):
    """Detect beats in ``x`` (one lead, mV, shape (n,), ``fs`` Hz) and compute their inputs.

    ``peaks``: optional R-peak samples at 360 Hz to use instead of the detector
    (training on reference positions). Each beat's signal quality is judged on the
    resampled lead (:func:`ecg.quality.beat_quality`). ``version``: the preprocessing
    version of the model the inputs are for (a model card's), one of ``SUPPORTED_VERSIONS``.
    Returns :class:`Beats`; zero beats when none is found.
    """
    x360, filtered = preprocess(x, fs)
    envelope = qrs_energy_envelope(x360, MODEL_FS)  # the detector's QRS band, and the quality's
    flat = flat_stretches(x360, MODEL_FS)
    if peaks is None:
        peaks = outside_flat_stretches(detect_r_peaks(x360, MODEL_FS, envelope), flat)
    quality = beat_quality(x360, peaks, MODEL_FS, env=envelope[2], flat=flat)
    return upright_beat_inputs(filtered, peaks, fs, len(x), quality, version, lead_on_runs(peaks, flat, MODEL_FS))


def upright_beat_inputs(filtered, peaks, fs, n_samples, quality, version, runs=None):
    """:func:`beat_inputs` of ``filtered`` turned upright as preprocessing ``version`` asks
    (:func:`upright_factor` of the lead's :func:`polarity`), with ``Beats.qrs_direction`` set.

    ``filtered``: the band-passed 360 Hz signal (m,); ``peaks``: its R peaks (k,); ``fs``,
    ``n_samples``: the caller's rate and length; ``quality``: ``ecg.quality.beat_quality``'s pair;
    ``runs``: as :func:`beat_inputs` reads them.
    """
    direction = polarity(qrs_deflections(filtered, peaks))
    beats = beat_inputs(filtered * upright_factor(direction, version), peaks, fs, n_samples, quality=quality,
                        runs=runs)
    beats.qrs_direction = direction
    return beats


def qrs_deflections(filtered, peaks):
    """Each beat's largest deflection (mV, signed), shape (k,): the value of ``filtered``
    (the band-passed 360 Hz signal) farthest from zero within ``UPRIGHT_HALF_WINDOW_S`` of
    each R peak of ``peaks`` (k,)."""
    peaks = np.asarray(peaks, dtype=np.int64)
    half = int(round(UPRIGHT_HALF_WINDOW_S * MODEL_FS))
    idx = np.clip(peaks[:, None] + np.arange(-half, half + 1)[None, :], 0, len(filtered) - 1)
    around = filtered[idx]
    return around[np.arange(len(peaks)), np.argmax(np.abs(around), axis=1)]


def upright_factor(qrs_direction, version):
    """The factor (1.0 or -1.0) the band-passed signal is multiplied by for a model of
    preprocessing ``version``: the lead's ``qrs_direction`` (:func:`polarity`) for the
    versions in ``TURNED_UPRIGHT``, 1.0 for the others."""
    return qrs_direction if version in TURNED_UPRIGHT else 1.0


def polarity(deflections):
    """-1.0 when the beats' QRS complexes mostly point down (the median of their
    ``deflections`` (k,) is negative), else 1.0: the factor that turns a signal upright.

    An inverted lead, a lead such as aVR or V1 and an upright lead, multiplied by it, show
    the networks upright beats. The median over the beats decides, so that PVCs pointing
    the other way do not.
    """
    return -1.0 if len(deflections) and np.median(deflections) < 0 else 1.0


def beat_inputs(filtered, peaks, fs, n_samples, groups=None, quality=None, at=None, runs=None):
    """The classifier's inputs for ``peaks`` (R peaks at 360 Hz) in ``filtered``.

    ``filtered``: the band-passed 360 Hz signal from :func:`preprocess`; ``fs`` and
    ``n_samples``: the caller's rate and signal length (positions are mapped back
    to them). The last stage of :func:`extract_beats`, apart so it can be timed.
    ``runs``: (n,) the run of beats between leads off each beat lies in
    (``ecg.quality.lead_on_runs``), each a signal of its own (its own groups, no RR interval
    or neighbour across a lead off); default one run.
    ``groups``: (n,) the beats' group labels when they are part of a longer signal's
    beats (``ecg.chunks``: a day in pieces); default ``beat_groups`` within each run.
    ``quality``: ``(quality (n,), unreadable (m, 2))`` as :func:`ecg.quality.beat_quality`
    returns them; default every beat good and nothing unreadable.
    ``at``: (n,) where each beat lies in ``filtered`` when that is pieces of a signal joined, the
    stretches between them left out (``ecg.chunks``); default ``peaks``. Only the windows and
    QRS widths read it: RR intervals and positions are ``peaks``'.
    """
    peaks = np.asarray(peaks, dtype=np.int64)
    at = peaks if at is None else np.asarray(at, dtype=np.int64)
    n = len(peaks)
    if quality is None:
        quality = (np.zeros(n, np.int8), np.zeros((0, 2), np.int64))
    before, after = PREPROCESSING["window_samples"]
    runs = np.zeros(n, np.int64) if runs is None else np.asarray(runs, dtype=np.int64)
    groups = groups_within(runs, PREPROCESSING["group_size_beats"]) if groups is None else np.asarray(groups)

    windows = beat_windows(filtered, at, before, after)
    windows -= median_rows(windows)  # np.median's figures, sooner
    lo, hi = QRS_CORE_SAMPLES
    core = windows[:, lo:hi]
    qrs_size = core.max(axis=1) - core.min(axis=1)
    scale = group_median(qrs_size, groups)
    windows /= np.maximum(scale, 1e-3)[:, None]
    templates = group_median(windows, groups) if n else windows
    if n and groups[-1] == 0:  # one group (a strip): its one template row, broadcast below
        templates = templates[:1]

    qrs_s = qrs_widths(filtered, at, MODEL_FS) if n else np.zeros(0)
    rr_prev, rr_next, features = _by_run(peaks, runs, groups, qrs_s, windows, templates)

    return Beats(
        peaks=peaks,
        positions=map_positions(peaks, MODEL_FS, fs, n_to=n_samples),
        windows=_two_channels(windows, templates),
        features=features,
        rr_prev_s=rr_prev,
        rr_next_s=rr_next,
        qrs_width_s=qrs_s,
        qrs_size_mv=qrs_size.astype(np.float64),
        filtered=filtered,
        groups=groups,
        runs=runs,
        quality=np.asarray(quality[0], dtype=np.int8),
        unreadable=np.asarray(quality[1], dtype=np.int64).reshape(-1, 2),
    )


def _by_run(peaks, runs, groups, qrs_s, windows, templates):
    """``(rr_prev, rr_next, features)`` of the beats, each run of ``runs`` (n,) a signal of its own:
    the RR intervals (n,) NaN across a lead off, as at a signal's ends, and ``beat_features`` (n, k)
    of each run's beats alone (their neighbour columns stop at it too). ``templates``: (n, m), or
    (1, m) for one group."""
    starts, ends = equal_spans(runs)
    if not len(peaks):  # no beat: one empty run, whose features keep their columns
        starts, ends = np.zeros(1, np.int64), np.zeros(1, np.int64)
    rr_prev, rr_next = rr_intervals(peaks, MODEL_FS)
    rr_prev[starts[1:]], rr_next[starts[1:] - 1] = np.nan, np.nan
    features = [beat_features(peaks[a:b], MODEL_FS, groups[a:b], qrs_s[a:b], windows[a:b],
                              templates[a:b] if len(templates) == len(peaks) else templates)
                for a, b in zip(starts, ends)]
    return rr_prev, rr_next, features[0] if len(features) == 1 else np.concatenate(features)


def _two_channels(windows, templates):
    """The network's beat input (n, 360, 2) float32: each window and its difference from its template."""
    out = np.empty(windows.shape + (2,), np.float32)
    out[..., 0] = windows
    np.subtract(windows, templates, out=out[..., 1])
    return out


def network_rr(features, width):
    """The ``rr`` input of a network that takes ``width`` features: the first ``width`` columns,
    a beat's RRs in seconds scaled down where its local RR is over
    ``PREPROCESSING["network_slowest_rr_s"]``, so that it reads that long.

    ``features``: (n, 16) from :func:`extract_beats`. A network trained on an earlier
    preprocessing version takes fewer (``SUPPORTED_VERSIONS``): versions only append
    columns. The RRs' ratios to the local RR are as computed, and the decision's rules read
    ``features`` itself. Returns a new array (n, width).
    """
    rr = np.array(features[:, :width])
    slower = np.minimum(1.0, PREPROCESSING["network_slowest_rr_s"] / np.maximum(features[:, _LOCAL_RR_S], 1e-3))
    rr[:, _RR_SECONDS_COLUMNS] *= slower[:, None].astype(rr.dtype)
    return rr
