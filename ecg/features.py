"""Per-beat inputs of the classifier: beat windows, local templates, RR and QRS features.

Every function is vectorised over beats. ``peaks`` are R-peak sample indices (int,
shape (n,), sorted) into a filtered signal ``x`` (mV) sampled at ``fs`` Hz.
Training and serving both call :func:`ecg.pipeline.extract_beats`, which uses these.
"""

import warnings
from dataclasses import dataclass

import numpy as np

from .dsp import gradient_1d, median_1d

OWN = "own"  # a column computed from the beat itself
PREVIOUS, NEXT = -1, 1  # a neighbour column: an own column's value at the previous / the next beat

# The classifier's feature columns, in order: each one's name and source, OWN or
# (own column, PREVIOUS or NEXT). Models of one preprocessing version take the first
# columns (ecg.pipeline.SUPPORTED_VERSIONS), so a new column goes at the end, with a new
# version. A neighbour column needs nothing more; an own column also needs its
# computation in :func:`beat_features`.
FEATURE_COLUMNS = (
    ("rr_prev_ratio", OWN),  # RR before the beat / local mean RR (1 when missing)
    ("rr_next_ratio", OWN),  # RR after the beat / local mean RR (1 when missing)
    ("rr_prev_s", OWN),  # seconds (local mean RR when missing)
    ("rr_next_s", OWN),
    ("local_rr_s", OWN),  # median RR of the beat's group, seconds
    ("has_prev", OWN),  # 1 when the previous beat exists in this signal
    ("has_next", OWN),
    ("qrs_width_ratio", OWN),  # QRS width / median QRS width of the group
    ("qrs_width_s", OWN),
    ("template_corr", OWN),  # correlation of the beat with its group's median beat
    # the neighbours' (nv-pre-2): a couplet's or a run's beats are premature, wide and
    # unlike the template together, and a beat alone does not show it
    ("prev_template_corr", ("template_corr", PREVIOUS)),
    ("next_template_corr", ("template_corr", NEXT)),
    ("prev_qrs_width_ratio", ("qrs_width_ratio", PREVIOUS)),
    ("next_qrs_width_ratio", ("qrs_width_ratio", NEXT)),
    ("prev_rr_prev_ratio", ("rr_prev_ratio", PREVIOUS)),  # how premature the previous beat was
    ("next_rr_next_ratio", ("rr_next_ratio", NEXT)),  # the pause after the next beat
)
# the columns of rr_features, in its order
RR_COLUMNS = ("rr_prev_ratio", "rr_next_ratio", "rr_prev_s", "rr_next_s", "local_rr_s",
              "has_prev", "has_next", "qrs_width_ratio", "qrs_width_s")


@dataclass(frozen=True)
class FeatureLayout:
    """Where each column of a feature table comes from and goes (:func:`feature_layout`)."""

    names: tuple  # every column, in order
    own: tuple  # the own columns' names, in order: the columns of the ``own`` arrays below
    own_at: np.ndarray  # (k,) their places among ``names``
    neighbours_at: np.ndarray  # (m,) the neighbour columns' places among ``names``
    neighbour_source: np.ndarray  # (m,) each neighbour column's own column (index into ``own``)
    from_previous: np.ndarray  # (m,) bool: copied from the previous beat (else from the next)


def feature_layout(columns):
    """The :class:`FeatureLayout` of a table of ``(name, source)`` rows like ``FEATURE_COLUMNS``."""
    names = tuple(name for name, _ in columns)
    if len(set(names)) != len(names):
        raise ValueError(f"feature column names repeat: {names}")
    own = tuple(name for name, source in columns if source == OWN)
    neighbours = [(i, source) for i, (_, source) in enumerate(columns) if source != OWN]
    for i, source in neighbours:
        if not (isinstance(source, tuple) and len(source) == 2 and source[0] in own
                and source[1] in (PREVIOUS, NEXT)):
            raise ValueError(f"feature column {names[i]!r}: source {source!r} is neither OWN nor "
                             "(an own column, PREVIOUS or NEXT)")
    return FeatureLayout(
        names=names,
        own=own,
        own_at=np.array([i for i, (_, source) in enumerate(columns) if source == OWN], np.int64),
        neighbours_at=np.array([i for i, _ in neighbours], np.int64),
        neighbour_source=np.array([own.index(source[0]) for _, source in neighbours], np.int64),
        from_previous=np.array([source[1] == PREVIOUS for _, source in neighbours], bool),
    )


LAYOUT = feature_layout(FEATURE_COLUMNS)
RR_FEATURE_NAMES = LAYOUT.names
# neighbour column -> (own column it copies, PREVIOUS or NEXT)
NEIGHBOUR_SOURCES = {name: source for name, source in FEATURE_COLUMNS if source != OWN}


def beat_windows(x, peaks, before, after):
    """Windows of ``x`` around each peak: shape (n, before + after), sample r-before .. r+after-1.

    Samples beyond the signal's ends are zero: ``x`` is expected band-pass filtered,
    so zero is its baseline, and beats near a strip's edge still get a full window.
    """
    x = np.asarray(x, dtype=np.float32)
    peaks = np.asarray(peaks, dtype=np.int64)
    padded = np.concatenate([np.zeros(before, np.float32), x, np.zeros(after, np.float32)])
    if len(peaks) and (peaks.min() < 0 or peaks.max() > len(x)):  # off the signal: as numpy indexes
        return padded[peaks[:, None] + np.arange(before + after)[None, :]]
    # row p of the strided view is padded[p:p + before + after] (p = 0 .. len(x)): the same
    # windows, gathered without an (n, before + after) index array; as_strided rather than
    # sliding_window_view, whose argument checks cost more than the gather on a strip
    step = padded.strides[0]
    rows = np.lib.stride_tricks.as_strided(padded, shape=(len(x) + 1, before + after),
                                           strides=(step, step), writeable=False)
    return rows[peaks]


def beat_groups(n, group_size=16):
    """Group label (n,) for n consecutive beats split into runs of about ``group_size``.

    A 10-s strip is one group; a 30-min record ~150. Templates, amplitude scale and
    local RR are computed per group, so a beat's context is the same whether it was
    sent in a short strip or a whole record.
    """
    n_groups = max(1, int(round(n / group_size)))
    if n_groups == 1:  # a strip: one group (what the general case gives, sooner)
        return np.zeros(n, np.int64)
    bounds = np.linspace(0, n, n_groups + 1).round().astype(np.int64)
    return np.repeat(np.arange(n_groups), np.diff(bounds))


def equal_spans(labels):
    """``(starts, ends)``, each (k,) int64: the maximal spans ``labels[a:b]`` of one value, in
    order, of ``labels`` (n,) (a beat's signal, run, group or task unit); none when n is 0."""
    labels = np.asarray(labels)
    if not len(labels):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    return starts, np.r_[starts[1:], len(labels)]


def groups_within(signals, group_size, layout=beat_groups):
    """:func:`beat_groups` within each signal: group labels (n,) unique over all signals.

    ``signals``: (n,) the label of the signal each beat was found in (a record, or a strip
    of one), each signal one run of consecutive beats. One request is one signal.
    ``layout(n, group_size)``: the labels (n,) of one signal's groups, from 0 and consecutive
    (``ecg.decision.pool_blocks`` for the decision's pools).
    """
    out = np.zeros(len(signals), np.int64)
    offset = 0
    for a, b in zip(*equal_spans(signals)):
        g = layout(b - a, group_size)
        out[a:b] = g + offset
        offset += int(g[-1]) + 1
    return out


def group_median(values, groups):
    """Median of ``values`` (n, ...) within each group, broadcast back to shape (n, ...).

    NaNs are ignored (an all-NaN group gives NaN), as ``np.nanmedian`` per group would.
    Vectorised over groups: they are stacked (padded with NaN to one size when their
    sizes differ) and sorted together, and the median is the mean of the middle two
    (or the middle) non-NaN values in ``values``' dtype, which is what ``np.nanmedian``
    computes: the same figures as :func:`_group_median_loop`
    (tests/test_pipeline_equivalence.py).
    """
    values = np.asarray(values)
    groups = np.asarray(groups)
    n = len(values)
    if n == 0 or not np.issubdtype(values.dtype, np.floating):
        return _group_median_loop(values, groups)
    change = np.empty(n, bool)
    change[0] = True
    np.not_equal(groups[1:], groups[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    n_groups = len(starts)
    if n_groups == 1:  # a strip: one group, where the general case's bookkeeping dominates
        one = _single_group_median(values)
        if one is not None:
            return one
    size = -(-n // n_groups)
    if n_groups * size == n and (n_groups == 1 or np.all(np.diff(starts) == size)):
        member = None  # runs of one size (a strip's single group): a reshape is enough
        lanes = values.reshape((n_groups, size) + values.shape[1:])
    else:
        member = np.cumsum(change) - 1  # (n,) which run of equal labels each value is in
        pos = np.arange(n) - starts[member]  # (n,) its place within the run
        size = int(pos.max()) + 1
        lanes = np.full((n_groups, size) + values.shape[1:], np.nan, dtype=values.dtype)
        lanes[member, pos] = values
    # a group's members on the last axis, contiguous, so that each lane sorts on its own.
    # Sorted in place below, so never ``values``' own memory: a reshape and a moveaxis of
    # it are views, and contiguous ones when ``values`` is Fortran-ordered (say own[:, idx])
    moved = np.moveaxis(lanes, 1, -1) if values.ndim > 1 else lanes
    lanes = moved.copy(order="C") if member is None else np.ascontiguousarray(moved)
    lanes.sort(axis=-1)  # NaNs last
    if not np.isnan(lanes[..., -1]).any():  # no NaN at all: the middle of each lane
        median = (lanes[..., (size - 1) // 2] + lanes[..., size // 2]) / 2
    else:
        count = np.count_nonzero(~np.isnan(lanes), axis=-1)[..., None]  # non-NaN per lane
        low = np.take_along_axis(lanes, np.maximum((count - 1) // 2, 0), axis=-1)[..., 0]
        high = np.take_along_axis(lanes, np.minimum(count // 2, size - 1), axis=-1)[..., 0]
        median = (low + high) / 2
        median[count[..., 0] == 0] = np.nan
    # (odd count: low is high, and (v + v) / 2 == v)
    out = np.repeat(median, size, axis=0) if member is None else median[member]
    return out.astype(np.float32, copy=False)


def _single_group_median(values):
    """:func:`group_median` of ``values`` (n,) or (n, m) that form one group; None when it cannot say.

    The middle one or two of the non-NaN values and their mean: the same figures as the
    general case, without its bookkeeping. None (the general case then answers) for
    more than two dimensions, for a 2-D ``values`` holding NaN (its columns would have
    different counts) and for an all-NaN ``values``.
    """
    n = len(values)
    if values.ndim == 1:
        count = n - int(np.count_nonzero(np.isnan(values)))
        if count == 0:
            return None
        lo, hi = (count - 1) // 2, count // 2
        part = np.partition(values, (lo, hi))  # NaNs last
        median = np.array([(part[lo] + part[hi]) / 2])
    elif values.ndim == 2:
        median = _column_medians(values)
        if median is None:
            return None
        median = median[None]
    else:
        return None
    return np.repeat(median, n, axis=0).astype(np.float32, copy=False)


def _group_median_loop(values, groups):
    """:func:`group_median` one group at a time with ``np.nanmedian`` (the reference)."""
    values = np.asarray(values)
    out = np.empty_like(values, dtype=np.float32)
    starts, ends = equal_spans(groups)
    with warnings.catch_warnings():  # an all-NaN group gives NaN, which callers handle
        warnings.simplefilter("ignore", RuntimeWarning)
        for a, b in zip(starts, ends):
            out[a:b] = np.nanmedian(values[a:b], axis=0)
    return out


def rr_intervals(peaks, fs):
    """RR before and after each beat in seconds, shape (n,) each; NaN where a side is missing."""
    peaks = np.asarray(peaks, dtype=np.float64)
    if not len(peaks):
        return np.zeros(0), np.zeros(0)
    rr = np.diff(peaks) / fs
    nan = np.array([np.nan])
    return np.concatenate([nan, rr]), np.concatenate([rr, nan])


def qrs_widths(x, peaks, fs, before_s=0.12, after_s=0.15, smooth_s=0.01, level=0.1):
    """Estimated QRS width of each beat in seconds, shape (n,).

    The slope envelope (|dx/dt| averaged over ``smooth_s``) is taken from
    ``before_s`` before to ``after_s`` after the peak; the QRS runs from the first
    to the last sample where it exceeds ``level`` times its maximum. On MIT-BIH
    this reads ~45-75 ms on normal beats, ~90-190 ms on PVCs and ~120-150 ms on
    bundle-branch-block beats: shorter than a caliper reading (the slow ends of
    the complex fall under the level) but it separates narrow from wide.
    """
    k = max(int(round(smooth_s * fs)), 1)
    env = np.convolve(np.abs(gradient_1d(np.asarray(x, dtype=np.float64))), np.ones(k) / k, mode="same")
    w = beat_windows(env, peaks, int(round(before_s * fs)), int(round(after_s * fs)) + 1)
    above = w > level * w.max(axis=1, keepdims=True)
    onset = np.argmax(above, axis=1)
    offset = w.shape[1] - 1 - np.argmax(above[:, ::-1], axis=1)
    # the moving average widened the run by k - 1 samples
    return np.maximum(offset - onset + 1 - (k - 1), 1) / fs


def template_correlation(windows, templates):
    """Pearson correlation of each window (n, m) with its template, shape (n,).

    ``templates``: (n, m), or (1, m) when all windows share one template.
    """
    a = windows - windows.mean(axis=1, keepdims=True)
    b = templates - templates.mean(axis=1, keepdims=True)
    num = np.sum(a * b, axis=1)
    den = np.sqrt(np.sum(a * a, axis=1) * np.sum(b * b, axis=1)) + 1e-12
    return num / den


def neighbour_features(own, groups, layout=LAYOUT):
    """The neighbour columns of ``layout``, shape (n, m): own columns of the previous or the next beat.

    ``own``: (n, k) the beats' own columns (``layout.own``); ``groups``: (n,) group labels
    (:func:`beat_groups`). The first beat has no previous one and the last no next one:
    they take their group's median of that column ("as usual here", as a missing RR side does).
    """
    v = own[:, layout.neighbour_source]  # (n, m): each neighbour column's own column
    prev, nxt = layout.from_previous, ~layout.from_previous
    out = np.empty_like(v, dtype=np.float64)
    out[1:, prev], out[:-1, nxt] = v[:-1, prev], v[1:, nxt]
    # only the first and the last beat need a median: of their own group's rows (the
    # source columns are ratios and correlations, finite by construction: never None)
    first = _column_medians(v if groups[0] == groups[-1] else v[groups == groups[0]])
    last = first if groups[0] == groups[-1] else _column_medians(v[groups == groups[-1]])
    out[0, prev], out[-1, nxt] = first[prev], last[nxt]
    return out


def _column_medians(rows):
    """Median of each column of ``rows`` (m, k) as :func:`group_median` gives it: (k,) float32.

    None when ``rows`` holds a NaN (its columns would have different counts).
    """
    lanes = rows.T.copy()  # always a copy (sorted below), each column's values contiguous
    lanes.sort(axis=1)  # NaNs last
    if np.isnan(lanes[:, -1]).any():
        return None
    m = lanes.shape[1]
    return ((lanes[:, (m - 1) // 2] + lanes[:, m // 2]) / 2).astype(np.float32, copy=False)


def rr_features(peaks, fs, groups, qrs_s):
    """The beat's rhythm and width relative to its own group, shape (n, 9).

    Columns follow ``RR_COLUMNS``. Missing RR sides (first/last beat) take
    the local value, with ``has_prev``/``has_next`` saying so: nothing is invented
    beyond "as usual here".
    """
    rr_prev, rr_next = rr_intervals(peaks, fs)
    local = group_median(rr_prev, groups)
    # a group without any RR (a single beat) falls back to the whole signal, then to 1 s
    overall = median_1d(rr_prev) if len(peaks) > 1 else 1.0
    local = np.where(np.isfinite(local) & (local > 0), local, overall)
    has_prev, has_next = np.isfinite(rr_prev), np.isfinite(rr_next)
    prev = np.where(has_prev, rr_prev, local)
    nxt = np.where(has_next, rr_next, local)
    q_local = group_median(qrs_s, groups)
    return np.column_stack([
        prev / local, nxt / local, prev, nxt, local,
        has_prev.astype(np.float64), has_next.astype(np.float64),
        qrs_s / np.maximum(q_local, 1e-3), qrs_s,
    ]).astype(np.float32)


def beat_features(peaks, fs, groups, qrs_s, windows, templates, layout=LAYOUT):
    """The classifier's feature matrix, shape (n, columns) float32, columns as ``layout``.

    ``peaks``: (n,) R peaks at ``fs`` Hz; ``groups``: (n,) their groups; ``qrs_s``: (n,)
    QRS widths (:func:`qrs_widths`); ``windows``: (n, m) the scaled beat windows and
    ``templates`` their group templates, (n, m) or (1, m). The own columns are computed
    here by name (:func:`rr_features`, :func:`template_correlation`), the neighbour
    columns copied from them (:func:`neighbour_features`).
    """
    if not len(peaks):
        return np.zeros((0, len(layout.names)), np.float32)
    computed = dict(zip(RR_COLUMNS, rr_features(peaks, fs, groups, qrs_s).T))
    computed["template_corr"] = template_correlation(windows, templates)
    missing = [name for name in layout.own if name not in computed]
    if missing:
        raise ValueError(f"own feature column(s) {missing} have no computation in beat_features")
    own = np.column_stack([computed[name] for name in layout.own])
    out = np.empty((len(own), len(layout.names)), np.float32)
    out[:, layout.own_at] = own
    out[:, layout.neighbours_at] = neighbour_features(own, groups, layout)
    return out
