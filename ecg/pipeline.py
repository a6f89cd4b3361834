"""From a raw ECG lead to classifier inputs: the one code path of training and serving.

Changing anything that alters the arrays :func:`extract_beats` returns means a new
``PREPROCESSING["version"]``: a model card names the version its model was trained
on, and the service refuses a model whose version it does not produce. A version may
append feature columns and change nothing else: a model of an earlier version then
takes the first columns (:func:`network_rr`), so the service still serves it.
"""

from dataclasses import dataclass

import numpy as np

from . import MODEL_FS
from .detect import QRS_BAND_HZ, QRS_BAND_ORDER, detect_r_peaks
from .dsp import median_rows
from .features import (
    OWN_FEATURES,
    RR_FEATURE_NAMES,
    beat_groups,
    beat_windows,
    group_median,
    neighbour_features,
    qrs_widths,
    rr_features,
    rr_intervals,
    template_correlation,
)
from .signal import bandpass, bandpasses, map_positions, resample

PREPROCESSING = {
    "version": "nv-pre-2",
    "fs_hz": MODEL_FS,
    "bandpass_hz": [0.5, 40.0],
    "window_samples": [180, 180],  # before and after the R peak at fs_hz: 1 s centred on it
    "group_size_beats": 16,
    "amplitude": "divided by the group's median QRS peak-to-peak (±100 ms)",
    "beat_channels": ["beat", "beat_minus_group_median_beat"],
    "rr_features": list(RR_FEATURE_NAMES),
    "detector": "ecg.detect.detect_r_peaks",
}
BANDPASS_ORDER = 2  # of the Butterworth prototype: a 4th-order band-pass, run forward and back
# version -> its feature columns, the first of RR_FEATURE_NAMES ("nv-pre-2" added the
# neighbours' six to "nv-pre-1")
SUPPORTED_VERSIONS = {"nv-pre-1": OWN_FEATURES, "nv-pre-2": len(RR_FEATURE_NAMES)}


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
    filtered: np.ndarray  # (m,) float64, the band-passed signal at 360 Hz (mV)
    groups: np.ndarray  # (n,) int64, the beats' groups (templates, local RR, the decision's pooling)

    def __len__(self):
        return len(self.peaks)


def preprocess(x, fs):
    """Resample ``x`` (mV, shape (n,)) from ``fs`` Hz to 360 Hz and band-pass it.

    Returns ``(resampled, filtered)``, both shape (m,) at 360 Hz.
    """
    x360 = resample(x, fs, MODEL_FS)
    lo, hi = PREPROCESSING["bandpass_hz"]
    return x360, bandpass(x360, MODEL_FS, lo, hi, order=BANDPASS_ORDER)


def preprocess_for_detection(x, fs):
    """:func:`preprocess`, plus the detector's QRS band-pass of the resampled signal.

    Both band-passes in one filtering pass (``ecg.signal.bandpasses``): the same arrays,
    bit for bit, as :func:`preprocess` and the detector's own filtering, for half the
    numpy calls on a strip. Returns ``(resampled, filtered, qrs_band)``, each (m,) at 360 Hz.
    """
    x360 = resample(x, fs, MODEL_FS)
    filtered, qrs_band = bandpasses(x360, MODEL_FS, [(*PREPROCESSING["bandpass_hz"], BANDPASS_ORDER),
                                                     (*QRS_BAND_HZ, QRS_BAND_ORDER)])
    return x360, filtered, qrs_band


def extract_beats(x, fs, peaks=None):
    """Detect beats in ``x`` (one lead, mV, shape (n,), ``fs`` Hz) and compute their inputs.

    ``peaks``: optional R-peak samples at 360 Hz to use instead of the detector
    (training on reference positions). Returns :class:`Beats`; zero beats when
    none is found.
    """
    if peaks is None:
        x360, filtered, qrs_band = preprocess_for_detection(x, fs)
        peaks = detect_r_peaks(x360, MODEL_FS, qrs_band=qrs_band)
    else:
        _, filtered = preprocess(x, fs)
    return beat_inputs(filtered, peaks, fs, len(x))


def beat_inputs(filtered, peaks, fs, n_samples, groups=None):
    """The classifier's inputs for ``peaks`` (R peaks at 360 Hz) in ``filtered``.

    ``filtered``: the band-passed 360 Hz signal from :func:`preprocess`; ``fs`` and
    ``n_samples``: the caller's rate and signal length (positions are mapped back
    to them). The last stage of :func:`extract_beats`, apart so it can be timed.
    ``groups``: (n,) the beats' group labels when they are part of a longer signal's
    beats (``ecg.chunks``: a day in pieces); default ``beat_groups`` of these n beats.
    """
    peaks = np.asarray(peaks, dtype=np.int64)
    n = len(peaks)
    before, after = PREPROCESSING["window_samples"]
    groups = beat_groups(n, PREPROCESSING["group_size_beats"]) if groups is None else np.asarray(groups)

    windows = beat_windows(filtered, peaks, before, after)
    windows -= median_rows(windows)  # np.median's figures, sooner
    core = windows[:, before - 36:before + 36]  # ±100 ms: the QRS
    scale = group_median(core.max(axis=1) - core.min(axis=1), groups)
    windows /= np.maximum(scale, 1e-3)[:, None]
    templates = group_median(windows, groups) if n else windows
    if n and groups[-1] == 0:  # one group (a strip): its one template row, broadcast below
        templates = templates[:1]

    qrs_s = qrs_widths(filtered, peaks, MODEL_FS) if n else np.zeros(0)
    rr_prev, rr_next = rr_intervals(peaks, MODEL_FS)
    if n:
        own = np.column_stack([rr_features(peaks, MODEL_FS, groups, qrs_s),
                               template_correlation(windows, templates)])
        feats = np.column_stack([own, neighbour_features(own, groups)]).astype(np.float32)
    else:
        feats = np.zeros((0, len(RR_FEATURE_NAMES)), np.float32)

    return Beats(
        peaks=peaks,
        positions=map_positions(peaks, MODEL_FS, fs, n_to=n_samples),
        windows=_two_channels(windows, templates),
        features=feats,
        rr_prev_s=rr_prev,
        rr_next_s=rr_next,
        qrs_width_s=qrs_s,
        filtered=filtered,
        groups=groups,
    )


def _two_channels(windows, templates):
    """The network's beat input (n, 360, 2) float32: each window and its difference from its template."""
    out = np.empty(windows.shape + (2,), np.float32)
    out[..., 0] = windows
    np.subtract(windows, templates, out=out[..., 1])
    return out


def network_rr(features, width):
    """The ``rr`` input of a network that takes ``width`` features: the first ``width`` columns.

    ``features``: (n, 16) from :func:`extract_beats`. A network trained on an earlier
    preprocessing version takes fewer (``SUPPORTED_VERSIONS``): versions only append
    columns. Returns a view (n, width).
    """
    return features[:, :width]
