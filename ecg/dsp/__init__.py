"""numpy-only versions of the few scipy functions the signal core uses.

The service must not import scipy: ``import scipy.signal`` alone adds about 78 MB to
each worker's RSS and scipy is about 100 MB of the serving image, for a handful of
functions. The deployed model was trained on features computed with scipy, so each
function below gives scipy's result to float64 rounding on what ecg/ feeds it (same
filter coefficients, same output alignment and length, same peak-selection rules);
tests/test_dsp.py compares them with scipy on the MIT-BIH excerpts and edge cases.

Plain functions on 1-D float64 arrays, named after the scipy functions they replace,
one module per concern:

- ``butter``: :func:`butter_bandpass_sos` (``scipy.signal.butter``), Butterworth band-pass design;
- ``iir``: :func:`sosfilt_zi`, :func:`sosfilt`, :func:`sosfiltfilt` (``scipy.signal``),
  zero-phase IIR filtering;
- ``resample``: :func:`resample_poly` (``scipy.signal``), polyphase FIR resampling;
- ``peaks``: :func:`find_peaks` (``scipy.signal``, ``distance`` only), local maxima;
- ``medians``: :func:`median_1d` (``np.nanmedian`` of a short 1-D array, without its
  per-call overhead), :func:`median_rows` and :func:`nanquantile_rows`;
- ``numeric``: :func:`uniform_filter1d` (``scipy.ndimage``, centred moving average),
  :func:`expit` (``scipy.special``, the logistic sigmoid), :func:`gradient_1d`, and the
  single-threaded matrix product the filters and the resampler share.

Import them from here (``from ecg.dsp import find_peaks``), as from ``scipy.signal``.
"""

from .butter import butter_bandpass_sos
from .iir import sosfilt, sosfilt_zi, sosfiltfilt
from .medians import median_1d, median_rows, nanquantile_rows
from .numeric import expit, gradient_1d, uniform_filter1d
from .peaks import find_peaks, local_maxima, select_by_distance
from .resample import firwin_kaiser_lowpass, resample_poly

__all__ = [
    "butter_bandpass_sos", "expit", "find_peaks", "firwin_kaiser_lowpass", "gradient_1d",
    "local_maxima", "median_1d", "median_rows", "nanquantile_rows", "resample_poly", "select_by_distance",
    "sosfilt", "sosfilt_zi", "sosfiltfilt", "uniform_filter1d",
]
