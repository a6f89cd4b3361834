"""Resampling and filtering of one ECG lead.

All functions take a 1-D float array in millivolts and a sampling rate in Hz. numpy
only: the scipy functions they were written with are in ``ecg.dsp``.
"""

from functools import lru_cache
from math import gcd

import numpy as np

from . import MODEL_FS
from .dsp import butter_bandpass_sos, resample_poly, sosfilt_zi, sosfiltfilt

MIN_FS = 100
MAX_FS = 1000


def resample(x, fs_in, fs_out=MODEL_FS):
    """Resample ``x`` (shape (n,), any unit) from ``fs_in`` to ``fs_out`` Hz.

    Polyphase FIR (``scipy.signal.resample_poly``'s filter and alignment, in numpy:
    see ``ecg.dsp``), so no phase shift: a peak at time t stays at time t. Beyond the
    ends the filter sees the line through the first and last samples, not zeros: an
    ECG's offset or wander (mV, often larger than its QRS) would otherwise be a step at
    each end of a strip, in the QRS band, detected as a beat. Returns ``x`` as float64
    unchanged when the rates match.
    """
    x = np.asarray(x, dtype=np.float64)
    fs_in, fs_out = int(fs_in), int(fs_out)
    if fs_in == fs_out:
        return x
    g = gcd(fs_in, fs_out)
    return resample_poly(x, fs_out // g, fs_in // g, padtype="line")


def map_positions(positions, fs_from, fs_to, n_to=None):
    """Map sample indices from a signal at ``fs_from`` Hz to one at ``fs_to`` Hz.

    ``positions``: integer samples, shape (k,). Rounds to the nearest sample and
    clips to ``[0, n_to - 1]`` when the target length ``n_to`` is given.
    """
    p = np.asarray(positions, dtype=np.float64)
    out = np.rint(p * (float(fs_to) / float(fs_from))).astype(np.int64)
    if n_to is not None:  # np.minimum/np.maximum: np.clip's wrapper costs more on a strip
        out = np.minimum(np.maximum(out, 0), max(int(n_to) - 1, 0))
    return out


@lru_cache(maxsize=32)
def _butter_sos(fs, low_hz, high_hz, order):
    sos = butter_bandpass_sos(order, low_hz, high_hz, fs)
    # the forward-backward pass's initial conditions (a linear solve per section)
    # depend on the filter only: computed once here instead of on every call
    zi = sosfilt_zi(sos)
    zi.flags.writeable = False
    return sos, zi


def bandpass(x, fs, low_hz=0.5, high_hz=40.0, order=2):
    """Zero-phase Butterworth band-pass of ``x`` (shape (n,), mV) sampled at ``fs`` Hz.

    Forward-backward filtering (``scipy.signal.sosfiltfilt``'s, in numpy: see
    ``ecg.dsp``) keeps R peaks where they are; the 0.5 Hz high-pass removes
    baseline wander, the 40 Hz low-pass mains hum and muscle noise. Short inputs are
    padded by reflection as far as they allow. Returns (n,) float64.
    """
    x = np.asarray(x, dtype=np.float64)
    sos, zi = _butter_sos(float(fs), float(low_hz), float(high_hz), int(order))
    return sosfiltfilt(sos, x, _padlen(len(sos), len(x)), zi)


def _padlen(sections, n):
    """scipy's default odd-extension length for ``sections`` sections, cut to what ``n`` samples allow."""
    return min(3 * (2 * sections + 1) * 10, max(n - 1, 0))
