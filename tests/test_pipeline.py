import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ecg.ec57 import detection_stats
from ecg.pipeline import (
    PREPROCESSING, SUPPORTED_VERSIONS, TURNED_UPRIGHT, extract_beats, network_rr, polarity, qrs_deflections,
    upright_factor,
)
from ecg.signal import resample
from train import dataset
from train.dataset import record_beats, strip_bounds


def test_training_and_serving_paths_give_identical_inputs(record_119):
    rec = record_119
    train = record_beats(rec, strip_s=10.0)
    for k, (a, b) in enumerate(strip_bounds(len(rec.signal), rec.fs, 10.0)[:6]):
        # what a client would send: a JSON list of floats
        served = extract_beats(list(map(float, rec.signal[a:b])), 360)
        sel = train.strips == k
        assert np.array_equal(train.positions[sel], served.peaks + a)
        assert np.array_equal(train.windows[sel], served.windows)
        assert np.array_equal(train.features[sel], served.features)


def test_inputs_have_the_documented_shapes(record_119):
    b = extract_beats(record_119.signal[:3600], 360)
    n = len(b)
    assert n > 8
    before, after = PREPROCESSING["window_samples"]
    assert b.windows.shape == (n, before + after, 2) and b.windows.dtype == np.float32
    assert b.features.shape == (n, len(PREPROCESSING["rr_features"]))
    assert np.isfinite(b.windows).all() and np.isfinite(b.features).all()
    assert np.isnan(b.rr_prev_s[0]) and np.isnan(b.rr_next_s[-1])


def test_the_current_version_takes_every_feature_column_and_older_ones_keep_their_count():
    # a column appended to ecg.features.FEATURE_COLUMNS needs a new preprocessing version:
    # the models of the current one take exactly its columns
    assert SUPPORTED_VERSIONS[PREPROCESSING["version"]] == len(PREPROCESSING["rr_features"])
    assert SUPPORTED_VERSIONS == {"nv-pre-1": 10, "nv-pre-2": 16, "nv-pre-3": 16}
    assert TURNED_UPRIGHT <= set(SUPPORTED_VERSIONS) and PREPROCESSING["version"] in TURNED_UPRIGHT


def test_the_network_reads_a_rhythm_slower_than_40_bpm_at_40_bpm():
    """A beat whose local RR is over ``network_slowest_rr_s`` has its three RRs in seconds scaled
    alike (a PVC's prematurity and pause kept in proportion); ratios and faster rhythms untouched,
    and the features the decision's rules read stay as computed."""
    names = PREPROCESSING["rr_features"]
    at = {name: names.index(name) for name in ("rr_prev_s", "rr_next_s", "local_rr_s", "rr_prev_ratio")}
    features = np.zeros((3, len(names)), np.float32)
    for row, (prev, nxt, local) in enumerate([(0.8, 0.8, 0.8), (1.2, 3.0, 2.0), (2.0, 2.0, 2.0)]):
        features[row, [at["rr_prev_s"], at["rr_next_s"], at["local_rr_s"]]] = prev, nxt, local
        features[row, at["rr_prev_ratio"]] = prev / local
    before = features.copy()
    rr = network_rr(features, len(names))
    assert PREPROCESSING["network_slowest_rr_s"] == 1.5
    assert np.array_equal(rr[0], features[0])  # 75 bpm: as computed
    seconds = [at["rr_prev_s"], at["rr_next_s"], at["local_rr_s"]]
    assert np.allclose(rr[1, seconds], [0.9, 2.25, 1.5]) and np.allclose(rr[2, seconds], 1.5)  # 30 bpm reads 40
    assert np.array_equal(rr[:, at["rr_prev_ratio"]], features[:, at["rr_prev_ratio"]])
    assert np.array_equal(features, before)
    assert network_rr(features, 10).shape == (3, 10)  # an nv-pre-1 network's ten columns


def assert_same_inputs(a, b):
    assert np.array_equal(a.peaks, b.peaks)
    assert np.array_equal(a.windows, b.windows) and np.array_equal(a.features, b.features)


def test_an_upright_lead_gives_the_versions_without_the_step_the_same_inputs(record_119):
    # MLII points up: turning it upright changes nothing, so nv-pre-3 is nv-pre-2 on it
    x = record_119.signal[:360 * 30]
    b = extract_beats(x, 360)
    assert polarity(qrs_deflections(b.filtered, b.peaks)) == b.qrs_direction == 1.0
    assert_same_inputs(extract_beats(x, 360, version="nv-pre-3"), extract_beats(x, 360, version="nv-pre-2"))


def test_an_inverted_lead_is_turned_upright_only_for_the_versions_that_learned_it(record_119):
    x = record_119.signal[:360 * 30]
    upright, inverted = extract_beats(x, 360, version="nv-pre-3"), extract_beats(-x, 360, version="nv-pre-3")
    assert len(upright) > 20
    assert_same_inputs(inverted, upright)
    # the models of earlier versions learned each lead as it was sent: they see it inverted
    as_sent = extract_beats(-x, 360, version="nv-pre-2")
    assert np.array_equal(as_sent.peaks, upright.peaks)
    assert np.allclose(as_sent.windows, -upright.windows)


def test_a_beat_set_is_built_and_cached_for_the_version_asked(record_119, fixture_dir, tmp_path):
    # promotion scores a candidate on its card's version, whatever the current one is
    import dataclasses

    inverted = dataclasses.replace(record_119, signal=-record_119.signal)
    as_sent = record_beats(inverted, strip_s=10.0, version="nv-pre-2")
    turned = record_beats(inverted, strip_s=10.0, version="nv-pre-3")
    assert np.array_equal(as_sent.positions, turned.positions)
    assert np.allclose(as_sent.windows, -turned.windows)
    for version in ("nv-pre-2", "nv-pre-3"):
        dataset.build(["119"], fixture_dir, cache_dir=tmp_path, progress=None, version=version)
    assert sorted(p.name.split("_")[4] for p in tmp_path.iterdir()) == ["nv-pre-2", "nv-pre-3"]


def test_the_median_beat_decides_the_polarity():
    # mostly downward QRS complexes with upward PVCs among them: turned over
    assert polarity(np.array([-1.2, -1.1, 0.9, -1.0, 1.5, -1.3])) == -1.0
    assert polarity(np.array([1.2, 1.1, -0.9, 1.0, -1.5, 1.3])) == 1.0
    assert polarity(np.zeros(0)) == 1.0  # no beats: as sent
    assert upright_factor(-1.0, "nv-pre-2") == 1.0 and upright_factor(-1.0, "nv-pre-3") == -1.0


def test_a_beats_deflection_is_its_qrs_not_its_t_wave():
    # an R peak of +1 mV with a T wave of -1.5 mV 250 ms later: the beat points up
    fs = 360
    x = np.zeros(fs * 3)
    peaks = np.array([fs, 2 * fs])
    x[peaks] = 1.0
    x[peaks + int(0.25 * fs)] = -1.5
    assert np.array_equal(qrs_deflections(x, peaks), [1.0, 1.0])
    # near the signal's ends the window is clipped to it
    assert qrs_deflections(x, np.array([0, len(x) - 1])).shape == (2,)


def test_other_sampling_rates_map_back_to_the_callers_samples(record_119):
    rec = record_119
    x = rec.signal[:20 * 360]
    ref = rec.ann_samples[rec.ann_samples < len(x)]
    at_360 = extract_beats(x, 360).positions
    for fs in (125, 250, 500, 1000):
        b = extract_beats(resample(x, 360, fs), fs)
        assert b.positions.max() < len(x) * fs / 360 + 1
        s = detection_stats(np.round(ref * fs / 360).astype(int), b.positions, fs)
        assert s["Se"] >= 0.95 and s["PPV"] >= 0.95, (fs, s)
        assert np.percentile(np.abs(s["errors_ms"]), 95) <= 30
        # the same beats as at 360 Hz, within a sample of the caller's rate (+ 2 at 360 Hz)
        same = detection_stats(np.round(at_360 * fs / 360).astype(int), b.positions, fs)
        assert same["Se"] >= 0.95 and np.all(np.abs(same["errors_ms"]) <= 1000 / fs + 2000 / 360)


def test_no_beats_in_a_flat_line():
    b = extract_beats(np.zeros(3600), 360)
    assert len(b) == 0 and b.windows.shape[0] == 0 and b.features.shape[0] == 0



def test_beats_carry_their_groups_and_a_beat_set_forms_them_alike(record_119):
    from ecg.features import beat_groups

    b = extract_beats(record_119.signal[:360 * 60], 360)  # a minute: several groups
    assert len(b) > 32
    assert np.array_equal(b.groups, beat_groups(len(b), PREPROCESSING["group_size_beats"]))
    # a BeatSet of 10-s strips: groups within each strip, labels unique over the set
    train = record_beats(record_119, strip_s=10.0)
    groups = train.groups()
    for k in np.unique(train.strips)[:5]:
        sel = train.strips == k
        assert len(np.unique(groups[sel])) == len(np.unique(beat_groups(int(sel.sum()), 16)))
        assert not np.isin(groups[sel], groups[~sel]).any()


def test_the_beat_set_cache_fingerprint_covers_every_ecg_module_a_beat_set_is_built_with():
    # a cached beat set is reused while train.dataset.code_fingerprint is unchanged: a change
    # to any ecg module that building one runs (a filter, say) must change it
    code = ("import json, sys; from train import dataset; from tests.conftest import FIXTURES; "
            "from train.data import load_record; "
            "dataset.record_beats(load_record('119', FIXTURES, sampto=7200)); "
            "print(json.dumps([m.__file__ for n, m in sys.modules.items() if n.split('.')[0] == 'ecg']))")
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    package = root / "ecg"
    used = {Path(f).relative_to(package).as_posix() for f in json.loads(out.stdout.splitlines()[-1])}
    assert {"dsp/iir.py", "signal.py", "detect.py", "ec57.py"} <= used
    assert used <= set(dataset.fingerprinted_sources())


def test_an_offset_does_not_put_beats_at_the_ends_of_resampled_strips(record_119):
    # devices record with an offset (electrode half-cell potentials, tens of mV on some);
    # a resampler that pads with zeros turns it into a step at each end of a strip
    x = record_119.signal
    for fs in (100, 1000):
        y = resample(x, 360, fs)
        for start in range(0, len(y) - 10 * fs + 1, 10 * fs):
            strip = y[start:start + 10 * fs]
            plain = extract_beats(strip, fs).positions
            for offset in (-5.0, 5.0):
                assert np.array_equal(extract_beats(strip + offset, fs).positions, plain), (fs, start, offset)


@pytest.mark.parametrize("mains_hz", [50.0, 60.0])
def test_mains_hum_does_not_reach_the_networks_inputs(record_119, mains_hz):
    x = record_119.signal[:10 * 360]
    hum = 1.0 * np.sin(2 * np.pi * mains_hz * np.arange(len(x)) / 360 + 0.7)
    clean, hummed = extract_beats(x, 360), extract_beats(x + hum, 360)
    assert np.array_equal(clean.positions, hummed.positions)
    # windows are scaled by their QRS's peak to peak (~1): a 1-mV hum would be a third of it
    assert np.abs(hummed.windows - clean.windows).max() < 0.05


def lead_off_between(x, y, off_s, fs=360, level=0.3):
    """``x``, then a lead held at ``level`` mV for ``off_s`` seconds, then ``y``."""
    return np.concatenate([x, np.full(int(off_s * fs), level), y])


def test_the_beats_before_a_lead_off_do_not_depend_on_what_follows_it(record_119):
    """After a lead off of a minute or more the beats are a new run, grouped apart, so the beats
    before it keep their groups, windows and features however many beats come after (a day's
    groups would otherwise all shift with each beat found, or not, hours later): no RR interval
    or neighbour feature reads across the lead off."""
    x = record_119.signal
    short, long = (extract_beats(lead_off_between(x[:360 * 90], x[360 * 90:360 * end], 120), 360)
                   for end in (120, 180))
    for b in (short, long):
        assert not np.any((b.peaks > 360 * 91) & (b.peaks < 360 * 209))  # no beat in the flat stretch
        assert np.array_equal(np.unique(b.runs), [0, 1])
        assert not set(b.groups[b.runs == 0]) & set(b.groups[b.runs == 1])
    a, b = short.runs == 0, long.runs == 0
    assert a.sum() == b.sum() > 90
    assert np.array_equal(short.groups[a], long.groups[b])
    assert np.allclose(short.windows[a], long.windows[b], atol=1e-5)
    assert np.allclose(short.features[a], long.features[b], atol=1e-5)
    first_after = np.argmax(long.runs == 1)
    assert np.isnan(long.rr_prev_s[first_after]) and np.isnan(long.rr_next_s[first_after - 1])
    assert np.isfinite(long.rr_prev_s[first_after + 1])


def test_a_lead_off_under_a_minute_leaves_one_run(record_119):
    x = record_119.signal
    b = extract_beats(lead_off_between(x[:360 * 90], x[360 * 90:], 30), 360)
    assert not np.any((b.peaks > 360 * 91) & (b.peaks < 360 * 119))
    assert np.all(b.runs == 0)


@pytest.mark.parametrize("hum_mv, mains_hz", [(0.3, 60.0), (1.0, 50.0)])
def test_a_lead_off_carrying_mains_hum_is_a_lead_off(record_119, hum_mv, mains_hz):
    """A floating electrode picks up the mains: 2 min of hum alone hold no beat (the detector took
    about a hundred there, most judged good), and end the run like a flat line."""
    x = record_119.signal
    hum = 0.3 + hum_mv * np.sin(2 * np.pi * mains_hz * np.arange(120 * 360) / 360)
    b = extract_beats(np.concatenate([x[:360 * 90], hum, x[360 * 90:]]), 360)
    assert not np.any((b.peaks > 360 * 91) & (b.peaks < 360 * 209))
    assert np.array_equal(np.unique(b.runs), [0, 1])
