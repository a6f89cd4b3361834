"""Resampling and filtering of one ECG lead.

All functions take a 1-D float array in millivolts and a sampling rate in Hz. numpy
only: the scipy functions they were written with are in ``ecg.dsp``.
"""

from functools import lru_cache
from math import gcd

import numpy as np

from . import MODEL_FS
from .dsp import butter_bandpass_sos, median_1d, resample_poly, sosfilt_zi, sosfiltfilt
from .dsp.numeric import matmul_single_threaded

MIN_FS = 100
MAX_FS = 1000
MAINS_HZ = (50.0, 60.0)  # the world's two mains frequencies
MAINS_BLOCK_S = 1.0  # the hum is fitted over blocks this long: whole periods of both, and
# short enough that a mains frequency off by 0.1 Hz turns its phase by a tenth of a cycle
MAINS_MAX_FRACTION = 0.45  # fitted only below this x fs (a 100-Hz signal has no 60 Hz)
# hum under this share of the lead's own size (its median peak to peak over the blocks) is left:
# 0.2 mV on a 1.7-mV MLII, where 0.3 mV of it cost next to no beat or label; a share, not a level in
# mV, so that a low-voltage lead loses its hum as a large one does (docs/ROBUSTNESS.md, "Mains hum")
MAINS_NEGLIGIBLE_SHARE = 0.12
# a block flatter than this peak to peak (mV) holds no ECG: a lead off (ecg.quality), which says
# nothing of the lead's size
FLAT_MV = 0.02


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


def remove_mains(x, fs):
    """``x`` (shape (n,), mV at ``fs`` Hz) without its 50- and 60-Hz mains hum.

    Over blocks of ``MAINS_BLOCK_S`` every half block (and one ending at the last
    sample), the hum's complex amplitude is the block's Fourier coefficient at the
    mains frequency (a least-squares fit: the block holds whole periods); between block
    centres it is interpolated, before the first and after the last extrapolated (a
    mains frequency off by 0.1 Hz turns the hum's phase by 18 degrees in half a block).
    Hum under ``MAINS_NEGLIGIBLE_SHARE`` x the lead's size, its median peak to peak over the
    blocks that are not flat (``FLAT_MV``: a lead off), is left in every block, as is any on a
    lead flat all through: the band-passes attenuate that much enough, and an ECG's noise and
    QRS complexes have some 50- and 60-Hz content of their own (up to 0.17 of its size in
    MIT-BIH's leads, whose fits of it are left but in two V1 leads). Unlike a notch filter this
    has no transient at a strip's ends: hum cut mid-cycle is a kink there for any filter
    that pads the ends, and the kink rings in the QRS band (1 mV of hum made a false beat
    at an end of most 10-s strips). Signals shorter than a block are returned as they
    are. Returns (n,) float64.
    """
    x = np.asarray(x, dtype=np.float64)
    n, half = len(x), max(int(round(MAINS_BLOCK_S * fs / 2)), 1)
    n_halves = n // half
    if n_halves < 2:
        return x
    starts = np.arange(n_halves - 1) * half
    if n % half:
        starts = np.concatenate([starts, [n - 2 * half]])
    centres = starts + half - 0.5
    blocks = x[:n_halves // 2 * 2 * half].reshape(-1, 2 * half)
    sizes = blocks.max(axis=1) - blocks.min(axis=1)
    sizes = sizes[sizes >= FLAT_MV]
    if not len(sizes):
        return x
    negligible = MAINS_NEGLIGIBLE_SHARE * median_1d(sizes)
    out = x
    for f0 in MAINS_HZ:
        if f0 >= MAINS_MAX_FRACTION * fs:
            continue
        w = 2 * np.pi * f0 / fs
        basis = np.exp(-1j * w * np.arange(half))
        # each half block's Fourier sum (one matrix product), turned to the half block's phase
        cos_sin = matmul_single_threaded(x[:n_halves * half].reshape(n_halves, half),
                                         np.stack([basis.real, basis.imag], axis=1))
        halves = (cos_sin[:, 0] + 1j * cos_sin[:, 1]) * np.exp(-1j * w * half * np.arange(n_halves))
        sums = halves[:-1] + halves[1:]
        if n % half:
            sums = np.concatenate([sums, [x[n - 2 * half:] @ np.exp(-1j * w * np.arange(n - 2 * half, n))]])
        amplitude = sums / half  # 2 / (block length): a cosine of amplitude A sums to A x length / 2
        if np.abs(amplitude).max() < negligible:
            continue
        samples = np.arange(n)
        hum = (_interpolate_linearly(samples, centres, amplitude.real)
               + 1j * _interpolate_linearly(samples, centres, amplitude.imag))
        out = out - (hum * np.exp(1j * w * samples)).real
    return out


def _interpolate_linearly(at, centres, values):
    """``np.interp`` that continues the end segments' lines instead of holding the end values."""
    out = np.interp(at, centres, values)
    if len(centres) > 1:
        for side, (i, j) in ((at < centres[0], (0, 1)), (at > centres[-1], (-2, -1))):
            slope = (values[j] - values[i]) / (centres[j] - centres[i])
            out[side] = values[i] + slope * (at[side] - centres[i])
    return out


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
