import numpy as np

from ecg.decision import calibrate, classify, fit_platt, logit, ruleguard_mask
from ecg.features import RR_FEATURE_NAMES
from ecg.quality import GOOD, NOISY, UNREADABLE


def test_platt_recovers_known_parameters():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 20000)
    p_raw = 1 / (1 + np.exp(-z))
    y = rng.random(len(z)) < 1 / (1 + np.exp(-(0.5 * z - 1.0)))
    c = fit_platt(p_raw, y)
    assert abs(c["a"] - 0.5) < 0.05 and abs(c["b"] + 1.0) < 0.08
    assert np.allclose(calibrate(p_raw, {"a": 1.0, "b": 0.0}), p_raw, atol=1e-6)
    assert np.allclose(logit([0.5]), [0.0])


def _features(rr_prev, rr_next, qrs):
    f = np.zeros((len(rr_prev), len(RR_FEATURE_NAMES)), np.float32)
    f[:, RR_FEATURE_NAMES.index("rr_prev_ratio")] = rr_prev
    f[:, RR_FEATURE_NAMES.index("rr_next_ratio")] = rr_next
    f[:, RR_FEATURE_NAMES.index("qrs_width_s")] = qrs
    return f


def test_ruleguard_flips_only_on_time_narrow_beats():
    f = _features([1.0, 0.7, 1.02, 1.0], [1.0, 1.3, 0.98, 1.0], [0.07, 0.07, 0.14, 0.07])
    rule = {"enabled": True, "rr_tolerance": 0.1, "max_qrs_width_s": 0.1}
    assert ruleguard_mask(f, rule).tolist() == [True, False, False, True]
    decision = {"calibration": {"a": 1.0, "b": 0.0}, "threshold": 0.5, "ruleguard": rule}
    p = np.array([0.9, 0.9, 0.9, 0.2])
    is_v, p_v, flipped = classify(p, f, decision)[:3]
    assert is_v.tolist() == [False, True, True, False]
    assert flipped.tolist() == [True, False, False, False]
    assert classify(p, f, decision, apply_ruleguard=False).is_v.tolist() == [True, True, True, False]


def _windows(shapes):
    """(n, 360, 2) windows whose QRS core (samples 144-216) takes one of a few shapes."""
    t = np.linspace(-1, 1, 72)
    kinds = {"narrow": np.exp(-(t / 0.1) ** 2), "wide": np.sin(3 * t) * np.exp(-(t / 0.5) ** 2), "flat": 0 * t}
    w = np.zeros((len(shapes), 360, 2), np.float32)
    for i, s in enumerate(shapes):
        w[i, 144:216, 0] = kinds[s]
    return w


def test_pooling_gives_beats_of_one_shape_one_logit():
    from ecg.decision import pool_by_morphology

    w = _windows(["narrow", "narrow", "wide", "narrow", "wide"])
    x = np.array([-3.0, -1.0, 2.0, 1.0, 0.0])
    rule = {"min_corr": 0.9, "own_weight": 0.0, "core_samples": [144, 216]}
    out = pool_by_morphology(x, w, np.zeros(5, int), rule)[0]
    assert np.allclose(out, [-1.0, -1.0, 1.0, -1.0, 1.0])
    half = pool_by_morphology(x, w, np.zeros(5, int), {**rule, "own_weight": 0.5})[0]
    assert np.allclose(half, 0.5 * x + 0.5 * out)
    # groups are pooled apart: the same shapes in two groups
    apart, counts, _ = pool_by_morphology(x, w, np.array([0, 0, 0, 1, 1]), rule)
    assert np.allclose(apart, [-2.0, -2.0, 2.0, 1.0, 0.0])
    assert counts.tolist() == [2, 2, 1, 1, 1]  # each beat's alike beats in its pool, itself included
    # groups are runs in any order (train.pooling reorders records); not runs, or not as many
    # as the beats, is an error
    assert np.allclose(pool_by_morphology(x, w, np.array([7, 7, 7, 3, 3]), rule)[0], apart)
    import pytest

    for bad in (np.array([0, 1, 0, 1, 1]), np.array([0, 0, 1, 1, 0]), np.zeros(4, int)):
        with pytest.raises(ValueError):
            pool_by_morphology(x, w, bad, rule)
    # a flat QRS is alike to nothing, and keeps its own logit (no 0/0)
    flat = pool_by_morphology(np.array([5.0, -1.0]), _windows(["flat", "narrow"]), np.zeros(2, int), rule)[0]
    assert np.allclose(flat, [5.0, -1.0])


def test_a_pooled_decision_judges_the_pooled_probability():
    w = _windows(["wide", "wide", "narrow"])
    f = _features([0.7, 0.7, 1.0], [1.3, 1.3, 1.0], [0.14, 0.14, 0.07])
    decision = {"calibration": {"a": 1.0, "b": 0.0}, "threshold": 0.5, "ruleguard": {"enabled": False},
                "pooling": {"min_corr": 0.9, "own_weight": 0.0, "core_samples": [144, 216]}}
    p = np.array([0.9, 0.3, 0.2])  # the second PVC alone would be N; with its twin it is V
    calls = classify(p, f, decision, windows=w, groups=np.zeros(3, int))
    assert calls.is_v.tolist() == [True, True, False]
    assert np.allclose(calls.p_v[:2], 1 / (1 + np.exp(-(logit([0.9])[0] + logit([0.3])[0]) / 2)))
    # the pools and alike counts the rules after it read (the short-request rhythm warning)
    assert calls.alike.tolist() == [2, 2, 1] and calls.pools.tolist() == [0, 0, 0]
    plain = classify(p, f, {k: v for k, v in decision.items() if k != "pooling"})
    assert plain.alike is None and plain.pools is None
    import pytest

    with pytest.raises(ValueError, match="pools beats by morphology"):
        classify(p, f, decision)


def test_the_pooled_logits_are_the_calibrated_probabilities_logits():
    from ecg.decision import pooling_logit

    p = np.array([1e-12, 1e-6, 0.01, 0.3, 0.5, 0.9, 1 - 1e-9, 1.0])
    cal = {"a": 1.49, "b": -1.45}
    assert np.allclose(pooling_logit(p, cal), logit(calibrate(p, cal)), rtol=0, atol=1e-9)
    assert np.abs(pooling_logit(p, cal)).max() <= np.abs(logit([1.0]))[0] + 1e-12


def test_signal_wide_pools_count_from_the_start_so_later_beats_move_no_earlier_pool():
    """A recording read to 12 h and again to 24 h: the pools (and their calls) of its first hours
    are the same, all but the 12-h read's last; evenly spread pools would all move."""
    from ecg import decision as dec
    from ecg.features import beat_groups

    assert dec.pool_blocks(10, 4).tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]  # the last holds the rest
    assert dec.pool_blocks(5, 4).tolist() == [0] * 5  # one pool under 1.5 x the size
    assert all(dec.pool_blocks(n, 16)[-1] == beat_groups(n, 16)[-1] for n in range(1, 300))  # as many

    rng = np.random.default_rng(11)
    n, size = 600, 100
    w = _windows(rng.choice(["narrow", "wide"], n, p=[0.8, 0.2]).tolist())
    w[:, 144:216, 0] += rng.normal(0, 0.05, (n, 72)).astype(np.float32)
    p_raw = dec.expit(rng.normal(-1.0, 2.0, n))
    decision = {"calibration": {"a": 1.0, "b": 0.0}, "threshold": 0.5, "ruleguard": {"enabled": False},
                "pooling": {"min_corr": 0.9, "own_weight": 0.0, "core_samples": [144, 216],
                            "pool_size_beats": size}}
    f = _features([1.0] * n, [1.0] * n, [0.08] * n)
    day = classify(p_raw, f, decision, windows=w)
    first = 450  # four pools: three of 100 beats and the last 150
    morning = classify(p_raw[:first], f[:first], decision, windows=w[:first])
    assert np.array_equal(morning.pools[:300], day.pools[:300])
    assert np.array_equal(morning.p_v[:300], day.p_v[:300])
    assert not np.array_equal(morning.p_v[300:], day.p_v[300:first])  # the last pool is another
    # two signals (leads off apart): each counted from its own start
    signals = np.r_[np.zeros(250, int), np.ones(n - 250, int)]
    pools = dec.pool_groups(decision["pooling"], n, signals=signals)
    assert np.array_equal(pools, np.r_[dec.pool_blocks(250, size), dec.pool_blocks(n - 250, size) + 2])


def test_a_signal_wide_pool_spans_the_signal_in_blocks():
    """With ``pool_size_beats`` the pool is the whole signal (one request, or each signal of a
    set), whatever its groups; computed in blocks of rows, it equals the one-piece mean."""
    import pytest

    from ecg import decision as dec

    rng = np.random.default_rng(5)
    n = dec.BLOCK_ROWS * 2 + 37  # three blocks, the last one short
    w = _windows(rng.choice(["narrow", "wide", "flat"], n).tolist())
    w[:, 144:216, 0] += rng.normal(0, 0.02, (n, 72)).astype(np.float32)
    x = rng.normal(0, 2, n)
    rule = {"min_corr": 0.9, "own_weight": 0.25, "core_samples": [144, 216], "pool_size_beats": 4096}
    core = dec.qrs_shapes(w, rule["core_samples"])
    alike = (core @ core.T >= 0.9).astype(float)
    np.fill_diagonal(alike, 1.0)
    whole = 0.25 * x + 0.75 * (alike @ x) / alike.sum(axis=1)
    pools = dec.pool_groups(rule, n, groups=np.arange(n) // 16)  # one request: the groups are ignored
    assert np.array_equal(pools, np.zeros(n, np.int64))
    pooled, counts, _ = dec.pool_by_morphology(x, w, pools, rule)
    assert np.allclose(pooled, whole, rtol=0, atol=1e-12)
    assert np.array_equal(counts, alike.sum(axis=1))
    # two signals: two pools; a signal beyond ~1.5 x pool_size_beats is cut in runs
    signals = np.r_[np.zeros(100, int), np.ones(n - 100, int)]
    assert np.array_equal(dec.pool_groups(rule, n, signals=signals), signals)
    cut = dec.pool_groups({**rule, "pool_size_beats": 200}, n, signals=signals)
    assert len(np.unique(cut)) == 1 + 2 and np.array_equal(cut[:100], np.zeros(100))
    # without pool_size_beats the groups are the pools, and must be given
    group_rule = {k: v for k, v in rule.items() if k != "pool_size_beats"}
    assert np.array_equal(dec.pool_groups(group_rule, n, groups=np.arange(n) // 16), np.arange(n) // 16)
    f = _features([1.0] * n, [1.0] * n, [0.1] * n)
    decision = {"calibration": {"a": 1.0, "b": 0.0}, "threshold": 0.5, "pooling": group_rule}
    with pytest.raises(ValueError, match="groups"):
        classify(dec.expit(x), f, decision, windows=w)
    is_v, p_v = classify(dec.expit(x), f, {**decision, "pooling": rule}, windows=w)[:2]
    assert np.allclose(p_v, dec.expit(whole)) and np.array_equal(is_v, p_v >= 0.5)


def _rhythm(n_beats, rr_prev_ratio, local_rr_s, has_prev=1.0):
    f = _features([rr_prev_ratio] * n_beats, [1.0] * n_beats, [0.14] * n_beats)
    f[:, RR_FEATURE_NAMES.index("local_rr_s")] = local_rr_s
    f[:, RR_FEATURE_NAMES.index("has_prev")] = has_prev
    return f


def test_the_patients_own_rhythm_is_never_v_in_a_long_recording():
    """Wide beats the network calls V: in a recording of 200 beats that all share their shape,
    on time at 75 bpm, they are the patient's rhythm (a bundle branch block in V1), N; the
    same beats premature, at 100 bpm or more, in a 10-s strip, or in a minority stay V."""
    from ecg import decision as dec

    decision = {"calibration": {"a": 1.0, "b": 0.0}, "threshold": 0.5, "ruleguard": {"enabled": False},
                "pooling": {"min_corr": 0.9, "own_weight": 0.0, "core_samples": [144, 216],
                            "pool_size_beats": 4096}}
    n = 200
    assert n >= dec.OWN_RHYTHM_MIN_BEATS
    wide = _windows(["wide"] * n)
    p = np.full(n, 0.9)

    def calls(windows, features, p_raw=p):
        return classify(p_raw, features, decision, windows=windows).is_v

    assert not calls(wide, _rhythm(n, 1.0, 0.8)).any()
    own_rhythm = classify(p, _rhythm(n, 1.0, 0.8), decision, windows=wide).own_rhythm
    assert own_rhythm.all()  # reported as such: each was over the threshold
    assert not classify(np.full(n, 0.1), _rhythm(n, 1.0, 0.8), decision, windows=wide).own_rhythm.any()
    # counted only where the rule changed a call: a noisy beat under the surer odds it needs, or
    # an unreadable one, was N anyway
    p_between = np.full(n, 0.6)
    assert 0.5 < p_between[0] < dec.noisy_threshold(0.5)
    for quality, counted in ((GOOD, True), (NOISY, False), (UNREADABLE, False)):
        decided = classify(p_between, _rhythm(n, 1.0, 0.8), decision, windows=wide, quality=np.full(n, quality))
        own = decided.own_rhythm
        assert not decided.is_v.any() and own.all() == counted and own.any() == counted
    assert not calls(wide, _rhythm(n, 1.0, 0.8, has_prev=0.0)).any()  # a signal's first beat has no RR before
    assert calls(wide, _rhythm(n, 0.7, 0.8)).all()  # premature
    assert calls(wide, _rhythm(n, 1.0, 0.5)).all()  # 120 bpm: a ventricular tachycardia
    strip = dec.OWN_RHYTHM_MIN_BEATS - 1
    assert calls(wide[:strip], _rhythm(strip, 1.0, 0.8), p[:strip]).all()  # too short to tell
    # bigeminy: half the beats wide, the other half narrow: neither shape is more than half
    mixed = _windows(["wide", "narrow"] * (n // 2))
    p_mixed = np.tile([0.9, 0.1], n // 2)
    assert np.array_equal(calls(mixed, _rhythm(n, 1.0, 0.8), p_mixed), p_mixed > 0.5)
    # its rule reads pool sizes: in two pools of 100 beats nothing is long enough
    two = dec.own_rhythm_mask(np.full(n, 100), np.repeat([0, 1], 100), _rhythm(n, 1.0, 0.8))
    one = dec.own_rhythm_mask(np.full(n, 101), np.zeros(n, int), _rhythm(n, 1.0, 0.8))
    assert not two.any() and one.all()


def test_a_declared_pacemaker_makes_the_dominant_rhythm_of_a_strip_its_own():
    """In a 10-s strip the dominant wide on-time rhythm could be a slow ventricular one, so it
    keeps its V calls; with a pacemaker declared it is the paced rhythm, N, from
    ``MIN_RHYTHM_BEATS`` beats. Premature beats, fast rhythms and minority shapes keep theirs."""
    from ecg import decision as dec

    decision = {"calibration": {"a": 1.0, "b": 0.0}, "threshold": 0.5, "ruleguard": {"enabled": False},
                "pooling": {"min_corr": 0.9, "own_weight": 0.0, "core_samples": [144, 216],
                            "pool_size_beats": 4096}}
    n = 12
    assert dec.MIN_RHYTHM_BEATS <= n < dec.OWN_RHYTHM_MIN_BEATS
    wide, p = _windows(["wide"] * n), np.full(n, 0.9)

    def calls(features, windows=wide, p_raw=p, paced=True):
        return classify(p_raw, features, decision, windows=windows, paced=paced)

    assert calls(_rhythm(n, 1.0, 0.8), paced=False).is_v.all()
    paced = calls(_rhythm(n, 1.0, 0.8))
    assert not paced.is_v.any() and paced.own_rhythm.all()
    assert calls(_rhythm(n, 0.7, 0.8)).is_v.all()  # premature: PVCs
    assert calls(_rhythm(n, 1.0, 0.5)).is_v.all()  # 120 bpm
    few = dec.MIN_RHYTHM_BEATS - 1
    assert calls(_rhythm(few, 1.0, 0.8), wide[:few], p[:few]).is_v.all()  # no rhythm yet
    # paced beats with PVCs of another shape among them: the PVCs stay V
    shapes = ["wide"] * 8 + ["narrow"] * 4
    mixed = calls(_rhythm(n, 1.0, 0.8), _windows(shapes))
    assert mixed.is_v.tolist() == [s == "narrow" for s in shapes]


def _timed(rr_prev, rr_next, width_ratio, corr, has_prev=1, has_next=1, around=1.0, local_rr_s=0.8):
    """Features of beats with their RR ratios, QRS width over their group's and template
    correlation; ``around``: the RR before the previous beat and after the next (ratios); their RR
    before in seconds from the ratio and ``local_rr_s``."""
    f = _features(rr_prev, rr_next, [0.12] * len(rr_prev))
    f[:, RR_FEATURE_NAMES.index("rr_prev_s")] = np.asarray(rr_prev) * local_rr_s
    f[:, RR_FEATURE_NAMES.index("local_rr_s")] = local_rr_s
    for name, values in (("qrs_width_ratio", width_ratio), ("template_corr", corr),
                         ("has_prev", has_prev), ("has_next", has_next),
                         ("prev_rr_prev_ratio", around), ("next_rr_next_ratio", around)):
        f[:, RR_FEATURE_NAMES.index(name)] = values
    return f


def test_a_pvcs_timing_and_shape_are_each_required():
    from ecg.decision import ectopic_timing_mask

    # a PVC's timing and shape, then each criterion missed in turn, then a beat at an edge, then
    # the same PVC among irregular beats (atrial fibrillation)
    f = _timed([0.7, 0.95, 0.7, 0.7, 0.7, 0.7, 0.7], [1.3, 1.3, 1.05, 1.3, 1.3, 1.3, 1.3],
               [1.5, 1.5, 1.5, 1.0, 1.5, 1.5, 1.5], [0.3, 0.3, 0.3, 0.3, 0.9, 0.3, 0.3],
               has_next=[1, 1, 1, 1, 1, 0, 1], around=[1, 1, 1, 1, 1, 1, 0.7])
    assert ectopic_timing_mask(f).tolist() == [True, False, False, False, False, False, False]
    f[:, RR_FEATURE_NAMES.index("next_rr_next_ratio")] = 1.3  # the beat after it is followed by a pause
    assert not ectopic_timing_mask(f)[0]


def test_a_readable_beat_timed_as_a_pvc_is_v_from_a_lower_probability():
    import ecg.decision as dec

    decision = {"calibration": {"a": 1.0, "b": 0.0}, "threshold": 0.5,
                "ruleguard": {"enabled": True, "rr_tolerance": 0.15, "max_qrs_width_s": 0.1}}
    pvc = _timed([0.7], [1.3], [1.5], [0.3])
    p = np.array([0.2])  # under the threshold, over ECTOPIC_MIN_P
    assert dec.ECTOPIC_MIN_P < p[0] < decision["threshold"]
    for quality, called in ((GOOD, True), (NOISY, False), (UNREADABLE, False)):
        calls = classify(p, pvc, decision, quality=np.array([quality]))
        assert calls.is_v.tolist() == calls.by_timing.tolist() == [called], quality
    assert not classify(p, pvc, decision).is_v[0]  # no quality known: the card's threshold alone
    assert not classify(np.array([0.05]), pvc, decision, quality=np.array([GOOD])).is_v[0]
    on_time = _timed([1.0], [1.0], [1.5], [0.3])
    assert not classify(p, on_time, decision, quality=np.array([GOOD])).is_v[0]
    # a beat RuleGuard turns N (on time within 0.15, narrow) is not turned back by its timing
    edge = _timed([0.87], [1.12], [1.5], [0.3])
    edge[:, RR_FEATURE_NAMES.index("qrs_width_s")] = 0.08
    calls = classify(np.array([0.9]), edge, decision, quality=np.array([GOOD]))
    assert calls.flipped[0] and not calls.is_v[0] and not calls.by_timing[0]
    # a beat already V keeps its call and is not counted as called by its timing
    calls = classify(np.array([0.9]), pvc, decision, quality=np.array([GOOD]))
    assert calls.is_v[0] and not calls.by_timing[0]


def test_a_shape_whose_beats_mostly_come_early_with_a_pause_is_v_from_a_lower_probability():
    """Isolated PVCs of a shape the network is unsure of (pooled p_v between TIMED_SHAPE_MIN_P and
    the threshold), in a regular rhythm: every one is called V by its shape's timing, the beats
    between them are not. Each condition missed in turn leaves them N."""
    import ecg.decision as dec

    decision = {"calibration": {"a": 1.0, "b": 0.0}, "threshold": 0.5,
                "ruleguard": {"enabled": True, "rr_tolerance": 0.15, "max_qrs_width_s": 0.1},
                "pooling": {"min_corr": 0.9, "own_weight": 0.0, "core_samples": [144, 216],
                            "pool_size_beats": 4096}}
    k = dec.TIMED_SHAPE_MIN_BEATS
    shapes = ["narrow", "narrow", "wide"] * k
    n, wide = len(shapes), np.array([s == "wide" for s in shapes])
    windows = _windows(shapes)
    # early with a pause after, the beats around on time; neither wider nor unlike enough for
    # the one-beat rule: only their shape's timing tells
    f = _timed(np.where(wide, 0.75, 1.0), np.where(wide, 1.25, 1.0), 1.0, 0.9)
    f[:, RR_FEATURE_NAMES.index("qrs_width_s")] = np.where(wide, 0.14, 0.08)
    p = np.where(wide, 0.08, 0.01)
    assert dec.TIMED_SHAPE_MIN_P < 0.08 < dec.ECTOPIC_MIN_P
    assert not dec.ectopic_timing_mask(f).any()
    good = np.full(n, GOOD)

    def called(p=p, f=f, windows=windows, quality=good):
        return classify(p, f, decision, windows=windows, quality=quality)

    calls = called()
    assert calls.is_v.tolist() == calls.by_timing.tolist() == wide.tolist()
    _, alike, alike_timed = dec.pool_by_morphology(dec.logit(p), windows, np.zeros(n, int), decision["pooling"],
                                                   timed=dec.pvc_timed_mask(f))
    assert alike[wide].tolist() == alike_timed[wide].tolist() == [k] * k
    assert not alike_timed[~wide].any()
    # each condition missed in turn: unsure under the floor; no quality known; noisy; too few
    # beats of the shape; under half of them early with a pause after; an irregular rhythm
    # around them (atrial fibrillation)
    assert not called(p=np.where(wide, 0.04, 0.01)).is_v.any()
    assert not classify(p, f, decision, windows=windows).is_v.any()
    assert not called(quality=np.full(n, NOISY)).is_v.any()
    few = n - 3
    assert not called(p[:few], f[:few], windows[:few], good[:few]).is_v.any()
    late = f.copy()
    late[np.flatnonzero(wide)[:k // 2 + 1], RR_FEATURE_NAMES.index("rr_next_ratio")] = 1.0
    assert not called(f=late).is_v.any()
    irregular = f.copy()
    irregular[:, RR_FEATURE_NAMES.index("prev_rr_prev_ratio")] = 1.3
    assert not called(f=irregular).is_v.any()
    # a narrow shape barely early and late enough is one RuleGuard would turn N: it stays N
    edge = f.copy()
    edge[wide, RR_FEATURE_NAMES.index("rr_prev_ratio")] = 0.87
    edge[wide, RR_FEATURE_NAMES.index("rr_next_ratio")] = 1.12
    assert called(f=edge).is_v.tolist() == wide.tolist()
    edge[:, RR_FEATURE_NAMES.index("qrs_width_s")] = 0.08
    assert not called(f=edge).is_v.any()


def _at_times(times_s, corr=1.0):
    """Features of beats at ``times_s`` (seconds): each one's RR before it, the first without one,
    and their template correlation ``corr``."""
    rr = np.diff(times_s, prepend=np.nan)
    f = _features([1.0] * len(times_s), [1.0] * len(times_s), [0.12] * len(times_s))
    f[:, RR_FEATURE_NAMES.index("rr_prev_s")] = np.nan_to_num(rr)
    f[:, RR_FEATURE_NAMES.index("has_prev")] = ~np.isnan(rr)
    f[:, RR_FEATURE_NAMES.index("template_corr")] = corr
    return f


def test_a_v_call_no_pause_follows_in_a_regular_rhythm_is_n():
    decision = {"calibration": {"a": 1.0, "b": 0.0}, "threshold": 0.5}
    rhythm = list(np.arange(12) * 0.8)

    def calls_of(times, called_at, unlike_at=()):
        p = np.where(np.isin(times, called_at), 0.9, 0.1)
        corr = np.where(np.isin(times, unlike_at), 0.0, 1.0)
        return classify(p, _at_times(np.array(times), corr), decision, quality=np.zeros(len(times), np.int8))

    # a hump 0.35 s after a beat: the beats around it stay 0.8 s apart
    extra = sorted(rhythm + [4.35])
    calls = calls_of(extra, [4.35])
    assert calls.no_pause.tolist() == [t == 4.35 for t in extra]
    assert not calls.is_v.any()
    # a PVC 0.55 s after a beat, the next one 1.6 s after that beat (a compensatory pause)
    pvc = rhythm[:6] + [4.55] + [t + 0.8 for t in rhythm[6:]]
    calls = calls_of(pvc, [4.55])
    assert calls.is_v.tolist() == [t == 4.55 for t in pvc] and not calls.no_pause.any()
    # ... its T wave taken for a beat, unlike the rhythm's, in the pause: still a pause
    t_wave = sorted(pvc + [4.8])
    assert calls_of(t_wave, [4.55], unlike_at=[4.8]).is_v.tolist() == [t == 4.55 for t in t_wave]
    assert calls_of(t_wave, [4.55]).no_pause.sum() == 1  # were it alike, the rhythm would not pause
    # the same hump among irregular beats (atrial fibrillation), or with too few beats to show a rhythm
    irregular = list(np.cumsum([0.0, 0.9, 0.55, 1.1, 0.7, 0.6, 1.0, 0.8, 0.5, 1.05, 0.75, 0.65]))
    hump = irregular[5] + 0.3
    assert calls_of(sorted(irregular + [hump]), [hump]).is_v.sum() == 1
    assert calls_of([0.0, 0.8, 1.15, 1.6], [1.15]).is_v.sum() == 1
    # without quality (training's selection) the call is the threshold's alone
    p = np.where(np.isin(extra, [4.35]), 0.9, 0.1)
    assert classify(p, _at_times(np.array(extra)), decision).is_v.sum() == 1


def _beat_window(t_wave, on_qrs=0.0, noise=0.0, seed=0):
    """A (360, 2) beat window as ``ecg.pipeline`` cuts it (R peak at sample 180, 360 Hz, in units of
    the QRS): a QRS spike of 1, an artefact of ``on_qrs`` over it, a T wave of ``t_wave`` 300 ms on,
    white noise of RMS ``noise``."""
    n = np.arange(360)
    beat = np.exp(-0.5 * ((n - 180) / 4) ** 2) + t_wave * np.exp(-0.5 * ((n - 288) / 25) ** 2)
    beat += on_qrs * np.exp(-0.5 * ((n - 190) / 8) ** 2) + noise * np.random.default_rng(seed).normal(size=360)
    return np.stack([beat, np.zeros(360)], axis=1)


def test_a_v_call_on_time_with_the_rhythms_repolarisation_is_n():
    decision = {"calibration": {"a": 1.0, "b": 0.0}, "threshold": 0.5}
    times = np.arange(12) * 0.8  # a regular rhythm: the call at 4.0 s is on time, no pause after it

    def calls_of(call_window, times=times, windows=True, t_wave=0.3, noise=0.01):
        w = np.stack([_beat_window(t_wave, noise=noise, seed=i) for i in range(len(times))])
        w[6] = call_window
        p = np.where(np.arange(len(times)) == 6, 0.9, 0.1)
        return classify(p, _at_times(times), decision, windows=w if windows else None,
                        quality=np.zeros(len(times), np.int8))

    # a normal beat an artefact fell on: its QRS unlike the rhythm's, its T wave the rhythm's own
    calls = calls_of(_beat_window(0.3, on_qrs=-0.8, noise=0.01, seed=6))
    assert calls.no_pause.tolist() == [i == 6 for i in range(12)] and not calls.is_v.any()
    # a late PVC, as on time, its T wave inverted (a PVC changes the repolarisation): V
    assert calls_of(_beat_window(-0.5, on_qrs=-0.8, noise=0.01)).is_v.tolist() == [i == 6 for i in range(12)]
    # ... or upright but two thirds taller than the rhythm's (0.5 against 0.3), while 0.03 more passes
    assert calls_of(_beat_window(0.5, on_qrs=-0.8, noise=0.01)).is_v.sum() == 1
    assert calls_of(_beat_window(0.33, on_qrs=-0.8, noise=0.01, seed=6)).is_v.sum() == 0
    # in a quiet lead whose T waves are small beside the QRS (V1), a late PVC's inverted T differs from
    # the rhythm's by less than the threshold in units of the QRS, but far beyond the rhythm's own
    # beat-to-beat spread: V; the artefact's beat there is still N
    quiet = {"t_wave": 0.03, "noise": 0.002}
    assert calls_of(_beat_window(-0.03, on_qrs=-0.8, noise=0.002), **quiet).is_v.sum() == 1
    assert calls_of(_beat_window(0.03, on_qrs=-0.8, noise=0.002, seed=6), **quiet).is_v.sum() == 0
    # the artefact's beat is V when it comes early (0.6 s after the beat before) or without the windows
    early = times.copy()
    early[6] -= 0.2
    assert calls_of(_beat_window(0.3, on_qrs=-0.8, noise=0.01, seed=6), times=early).is_v.sum() == 1
    assert calls_of(_beat_window(0.3, on_qrs=-0.8, noise=0.01, seed=6), windows=False).is_v.sum() == 1


def test_a_v_call_beside_the_rhythms_undetected_beat_is_n():
    from ecg.no_pause import undetected

    decision = {"calibration": {"a": 1.0, "b": 0.0}, "threshold": 0.5}
    # a regular rhythm at 0.8 s; an artefact at 3.85 s taken for a beat instead of the rhythm's beat at
    # 4.0 s (within the detector's refractory period): no beat detected at 4.0 s, a pause around the call
    times = np.array([t for t in np.arange(12) * 0.8 if t != 4.0] + [3.85])
    times.sort()
    call = int(np.flatnonzero(times == 3.85)[0])
    rhythm = [_beat_window(0.3, noise=0.01, seed=i) for i in range(len(times))]

    def calls_of(call_window):
        w = np.stack(rhythm)
        w[call] = call_window
        p = np.where(np.arange(len(times)) == call, 0.9, 0.1)
        return classify(p, _at_times(times), decision, windows=w, quality=np.zeros(len(times), np.int8))

    # the artefact's window: a hump at its R peak, the rhythm's beat 0.15 s (54 samples) after it
    hump = np.exp(-0.5 * ((np.arange(360) - 180) / 8) ** 2)
    artefact = np.roll(_beat_window(0.3, noise=0.01, seed=99), 54, axis=0)
    artefact[:, 0] += 2 * hump
    calls = calls_of(artefact)
    assert calls.no_pause.tolist() == [i == call for i in range(len(times))] and not calls.is_v.any()
    # a PVC there (wide, its T wave inverted): the ventricles are refractory when the rhythm's beat is
    # due, no QRS of the rhythm's in its window: V
    pvc = _beat_window(-0.5, noise=0.01, seed=99)
    pvc[:, 0] += 2 * hump
    assert calls_of(pvc).is_v.sum() == 1
    # the rhythm's QRS found where another detection lies, or on the call itself, is no hidden beat
    t = np.array([0.0, 0.8, 1.45, 1.6, 2.4])
    assert undetected(t, np.array([2, 2, 2]), np.array([0.15, 0.03, np.nan])).tolist() == [False, False, False]
    assert undetected(np.delete(t, 3), np.array([2]), np.array([0.15])).tolist() == [True]


def test_the_rhythms_medians_are_the_same_in_blocks_of_any_size(monkeypatch):
    import ecg.no_pause as no_pause

    rng = np.random.default_rng(3)
    stretches = rng.normal(size=(60, 20)).astype(np.float32)
    rhythm_beats = np.flatnonzero(rng.random(60) < 0.7)
    after = np.array([1, 3, 4, len(rhythm_beats) - 1, 2])
    whole = no_pause.rhythm_medians(stretches, rhythm_beats, after)
    monkeypatch.setattr(no_pause, "RHYTHM_MEDIAN_BLOCK_CALLS", 2)
    blocks = no_pause.rhythm_medians(stretches, rhythm_beats, after)
    for a, b in zip(whole, blocks):
        np.testing.assert_array_equal(a, b)
    # the median of the rhythm's beats around the third call, as numpy takes it
    k = no_pause.RHYTHM_MEDIAN_HALF_BEATS
    near = rhythm_beats[max(after[2] - k, 0):after[2] + k]
    np.testing.assert_allclose(whole[0][2], np.median(stretches[near], axis=0), rtol=1e-6)
