import numpy as np
import pytest

from ecg.features import (
    FEATURE_COLUMNS,
    NEIGHBOUR_SOURCES,
    OWN,
    PREVIOUS,
    RR_FEATURE_NAMES,
    beat_features,
    beat_groups,
    beat_windows,
    equal_spans,
    feature_layout,
    group_median,
    neighbour_features,
    qrs_widths,
    rr_features,
    rr_intervals,
)
from ecg.signal import bandpass
from tests.conftest import synthetic_ecg


def test_beat_windows_pad_edges_with_zeros():
    x = np.arange(1, 11, dtype=float)
    w = beat_windows(x, [0, 5, 9], 3, 3)
    assert w.shape == (3, 6)
    assert w[0].tolist() == [0, 0, 0, 1, 2, 3]
    assert w[1].tolist() == [3, 4, 5, 6, 7, 8]
    assert w[2].tolist() == [7, 8, 9, 10, 0, 0]


def test_rr_intervals_leave_missing_sides_missing():
    prev, nxt = rr_intervals([0, 360, 900], 360)
    assert np.isnan(prev[0]) and np.isnan(nxt[-1])
    assert np.allclose(prev[1:], [1.0, 1.5]) and np.allclose(nxt[:-1], [1.0, 1.5])
    assert [len(a) for a in rr_intervals([], 360)] == [0, 0]


def test_equal_spans_cover_the_labels_in_order():
    starts, ends = equal_spans(np.array([3, 3, 1, 1, 1, 3, 2]))  # a label may come back later
    assert starts.tolist() == [0, 2, 5, 6] and ends.tolist() == [2, 5, 6, 7]
    assert [a.tolist() for a in equal_spans(np.array([True]))] == [[0], [1]]
    assert [len(a) for a in equal_spans(np.array([]))] == [0, 0]


def test_groups_within_signals_restart_at_each_signal():
    from ecg.features import groups_within

    signals = np.array(["a"] * 40 + ["b"] * 10 + ["a"] * 20)  # a record may come back later
    g = groups_within(signals, 16)
    assert np.array_equal(g[:40], beat_groups(40, 16))
    assert np.array_equal(g[40:50], np.full(10, g[39] + 1))
    assert np.array_equal(g[50:], beat_groups(20, 16) + g[49] + 1)
    assert len(groups_within(np.array([]), 16)) == 0


def test_groups_cover_every_beat_in_order():
    g = beat_groups(100, 16)
    assert len(g) == 100 and g[0] == 0 and np.all(np.diff(g) >= 0) and g.max() == 5
    assert set(beat_groups(12, 16)) == {0}


def test_rr_features_premature_beat():
    fs = 360
    peaks = np.array([0, 288, 576, 760, 1152, 1440])  # the 4th beat is early, then a pause
    f = rr_features(peaks, fs, np.zeros(6, int), np.full(6, 0.08))
    assert f.shape == (6, 9)
    assert f[3, 0] < 0.75 and f[3, 1] > 1.2  # premature, compensatory pause after
    assert f[0, 5] == 0 and f[0, 0] == 1 and f[-1, 6] == 0 and f[-1, 1] == 1


def test_qrs_width_tells_narrow_from_wide():
    fs = 360
    beats = np.arange(0.5, 9.6, 0.8)
    narrow = bandpass(synthetic_ecg(fs, beats, 10.0, qrs_width_s=0.08), fs)
    wide = bandpass(synthetic_ecg(fs, beats, 10.0, qrs_width_s=0.16), fs)
    peaks = (beats * fs).astype(int)
    wn, ww = np.median(qrs_widths(narrow, peaks, fs)), np.median(qrs_widths(wide, peaks, fs))
    assert 0.03 < wn < 0.11 and ww > 1.5 * wn


def test_qrs_width_on_real_pvcs(record_119):
    from ecg.pipeline import extract_beats

    rec = record_119
    b = extract_beats(rec.signal, rec.fs, peaks=rec.ann_samples)
    c = rec.ann_classes
    # record 119's PVCs are wide; its normal beats narrow
    assert np.median(b.qrs_width_s[c == "V"]) > 0.11
    assert np.median(b.qrs_width_s[c == "N"]) < 0.09


def test_neighbour_features_copy_the_neighbours_and_the_group_median_at_the_ends():
    rng = np.random.default_rng(0)
    own = rng.normal(size=(7, 10))
    groups = np.array([0, 0, 0, 0, 1, 1, 1])  # two groups: the ends take their own group's median
    nb = neighbour_features(own, groups)
    assert nb.shape == (7, 6)
    for c, name in enumerate(RR_FEATURE_NAMES[10:]):
        src, step = NEIGHBOUR_SOURCES[name]
        col = own[:, RR_FEATURE_NAMES.index(src)]
        inner = np.arange(1, 7) if step < 0 else np.arange(6)
        assert np.array_equal(nb[inner, c], col[inner + step]), name
        end, group = (0, slice(0, 4)) if step < 0 else (6, slice(4, 7))
        assert np.isclose(nb[end, c], np.median(col[group]), atol=1e-6), name
    one = neighbour_features(own[:1], groups[:1])  # a single beat: both sides "as usual"
    assert np.allclose(one[0], own[0, [9, 9, 7, 7, 0, 1]], atol=1e-6)


def test_group_median_leaves_its_input_alone():
    # own[:, idx] is Fortran-ordered: a reshaped, axis-moved view of it is contiguous,
    # and an in-place sort of that view once scrambled the caller's array
    own = np.random.default_rng(1).normal(size=(9, 10))
    v = own[:, [9, 7, 0]]
    before = v.copy()
    for groups in (np.zeros(9, np.int64), beat_groups(9, 4)):
        group_median(v, groups)
        assert np.array_equal(v, before)
    # one group, one column: the transpose of an (n, 1) array is contiguous too
    for col in (own[:, :1].copy(), np.asfortranarray(own[:, :1]), own[:, 0].copy()):
        before = col.copy()
        group_median(col, np.zeros(9, np.int64))
        assert np.array_equal(col, before)


def _beat_inputs(n=40, seed=2):
    """What beat_features takes, for n beats in three groups (a minute or so)."""
    rng = np.random.default_rng(seed)
    peaks = np.cumsum(rng.integers(250, 400, n))
    groups = beat_groups(n, 16)
    windows = rng.normal(size=(n, 360))
    return peaks, 360, groups, rng.uniform(0.05, 0.15, n), windows, group_median(windows, groups)


def test_an_appended_neighbour_column_is_laid_out_and_computed_from_the_table():
    table = FEATURE_COLUMNS + (("prev_qrs_width_s", ("qrs_width_s", PREVIOUS)),)
    layout = feature_layout(table)
    assert layout.names == RR_FEATURE_NAMES + ("prev_qrs_width_s",)
    args = _beat_inputs()
    served, longer = beat_features(*args), beat_features(*args, layout=layout)
    assert longer.shape == (40, 17) and np.array_equal(longer[:, :16], served)  # the others unchanged
    width = served[:, RR_FEATURE_NAMES.index("qrs_width_s")]
    assert np.array_equal(longer[1:, 16], width[:-1])  # the previous beat's
    groups = args[2]
    assert np.isclose(longer[0, 16], np.median(width[groups == 0]))  # the first: its group's median


def test_an_own_column_goes_anywhere_in_the_table_but_needs_its_computation():
    moved = (FEATURE_COLUMNS[-1], *FEATURE_COLUMNS[:-1])  # a neighbour column first
    layout = feature_layout(moved)
    args = _beat_inputs()
    order = [RR_FEATURE_NAMES.index(name) for name in layout.names]
    assert np.array_equal(beat_features(*args, layout=layout), beat_features(*args)[:, order])
    with pytest.raises(ValueError, match="p_wave_ms"):
        beat_features(*args, layout=feature_layout(FEATURE_COLUMNS + (("p_wave_ms", OWN),)))


def test_a_feature_table_with_a_bad_source_or_a_repeated_name_is_refused():
    for row in (("x", ("prev_template_corr", PREVIOUS)),  # a neighbour of a neighbour
                ("x", ("template_corr", 2)), ("x", "own column"), ("template_corr", OWN)):
        with pytest.raises(ValueError):
            feature_layout(FEATURE_COLUMNS + (row,))
