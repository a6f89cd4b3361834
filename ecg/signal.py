"""Resampling and filtering of one ECG lead.

All functions take a 1-D float array in millivolts and a sampling rate in Hz.
"""

from functools import lru_cache
from math import gcd

import numpy as np
from scipy import signal as sps

from . import MODEL_FS

MIN_FS = 100
MAX_FS = 1000


def resample(x, fs_in, fs_out=MODEL_FS):
    """Resample ``x`` (shape (n,), any unit) from ``fs_in`` to ``fs_out`` Hz.

    Polyphase FIR (``scipy.signal.resample_poly``), so no phase shift: a peak at
    time t stays at time t. Returns ``x`` as float64 unchanged when the rates match.
    """
    x = np.asarray(x, dtype=np.float64)
    fs_in, fs_out = int(fs_in), int(fs_out)
    if fs_in == fs_out:
        return x
    g = gcd(fs_in, fs_out)
    return sps.resample_poly(x, fs_out // g, fs_in // g)


def map_positions(positions, fs_from, fs_to, n_to=None):
    """Map sample indices from a signal at ``fs_from`` Hz to one at ``fs_to`` Hz.

    ``positions``: integer samples, shape (k,). Rounds to the nearest sample and
    clips to ``[0, n_to - 1]`` when the target length ``n_to`` is given.
    """
    p = np.asarray(positions, dtype=np.float64)
    out = np.rint(p * (float(fs_to) / float(fs_from))).astype(np.int64)
    if n_to is not None:
        out = np.clip(out, 0, max(int(n_to) - 1, 0))
    return out


@lru_cache(maxsize=32)
def _butter_sos(fs, low_hz, high_hz, order):
    sos = sps.butter(order, [low_hz, high_hz], btype="bandpass", fs=fs, output="sos")
    # sosfiltfilt's initial conditions (a linear solve per section) depend on the
    # filter only: computed once here instead of on every call
    zi = sps.sosfilt_zi(sos)
    zi.flags.writeable = False
    return sos, zi


def bandpass(x, fs, low_hz=0.5, high_hz=40.0, order=2):
    """Zero-phase Butterworth band-pass of ``x`` (shape (n,), mV) sampled at ``fs`` Hz.

    Forward-backward filtering (``sosfiltfilt``) keeps R peaks where they are;
    the 0.5 Hz high-pass removes baseline wander, the 40 Hz low-pass mains hum
    and muscle noise. Short inputs are padded by reflection as far as they allow.
    """
    x = np.asarray(x, dtype=np.float64)
    sos, zi = _butter_sos(float(fs), float(low_hz), float(high_hz), int(order))
    padlen = min(3 * (2 * len(sos) + 1) * 10, max(len(x) - 1, 0))
    if x.ndim != 1 or len(x) < 2:
        return sps.sosfiltfilt(sos, x, padlen=padlen)
    return _sosfiltfilt_1d(sos, zi, x, padlen)


try:  # scipy's compiled kernel behind sosfilt, without sosfilt's per-call checks
    from scipy.signal._sosfilt import _sosfilt as _sosfilt_kernel
except ImportError:  # pragma: no cover - another scipy layout: the public function
    _sosfilt_kernel = None


def _sosfilt(sos, x, zi):
    """``scipy.signal.sosfilt(sos, x, zi=zi)[0]`` for 1-D float64 ``x`` and ``zi`` (sections, 2)."""
    if _sosfilt_kernel is None:
        return sps.sosfilt(sos, x, zi=zi)[0]
    y = np.array(x, dtype=np.float64, order="C", ndmin=2)  # a copy: filtered in place
    _sosfilt_kernel(sos, y, np.array(zi, dtype=np.float64, order="C", ndmin=3))
    return y[0]


def _sosfiltfilt_1d(sos, zi, x, padlen):
    """``scipy.signal.sosfiltfilt(sos, x, padlen=padlen)`` for 1-D ``x``, same operations.

    scipy's steps one by one (odd extension, forward pass from ``zi * x[0]``, backward
    pass from ``zi * y[-1]``, trim), with ``zi = sosfilt_zi(sos)`` computed once per
    filter by the caller: the output is the same array, bit for bit
    (tests/test_pipeline_equivalence.py).
    """
    if padlen > 0:  # scipy.signal._arraytools.odd_ext
        ext = np.concatenate((2 * x[0:1] - x[padlen:0:-1], x,
                              2 * x[-1:] - x[-2:-(padlen + 2):-1]))
    else:
        ext = x
    y = _sosfilt(sos, ext, zi * ext[0:1])
    y = _sosfilt(sos, y[::-1], zi * y[-1:])[::-1]
    if padlen > 0:
        y = y[padlen:-padlen]
    return y
