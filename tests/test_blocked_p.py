"""A V call small beside its neighbours and its group, with no T wave after it, is N
(``ecg.blocked_p``): the rule on hand-made beat windows, then through the API on MIT-BIH excerpts
made 2:1 AV blocks (``bench.robustness.two_to_one_block``)."""

from pathlib import Path

import numpy as np
import pytest

import ecg.blocked_p
from bench.robustness import two_to_one_block
from ecg.blocked_p import neighbour_qrs_size, small_without_t_wave_mask
from ecg.features import RR_FEATURE_NAMES
from ecg.pipeline import QRS_CORE_SAMPLES
from tests.service_helpers import PREDICT, app, client, matched, recording_report, v_positions  # noqa: F401
from train.data import load_record

TWO_LEADS = Path(__file__).parent / "data" / "mitdb-two-leads"
R = 180  # the R peak's sample in a 360-sample window at 360 Hz


def _features(has_prev):
    f = np.zeros((len(has_prev), len(RR_FEATURE_NAMES)), np.float32)
    f[:, RR_FEATURE_NAMES.index("has_prev")] = has_prev
    return f


def _window(qrs, t_wave):
    """One beat window (360, 2) as the service scales it (``ecg.pipeline``: by its group's median
    QRS size, here 1 mV): a QRS core of peak to peak ``qrs`` (mV) and a T wave ``t_wave`` times
    that, 300 ms after."""
    t = np.arange(360)
    w = qrs * (np.exp(-0.5 * ((t - R) / 6.0) ** 2) + t_wave * np.exp(-0.5 * ((t - R - 108) / 25.0) ** 2))
    lo, hi = QRS_CORE_SAMPLES
    assert np.isclose(np.ptp(w[lo:hi]), qrs, rtol=0.01)
    return np.stack([w, np.zeros(360)], axis=1)


def test_the_neighbour_size_is_the_smaller_neighbours_within_a_signal():
    size = np.array([1.0, 0.2, 1.5, 4.0, 1.0, 2.0])
    # a lead off between beats 3 and 4: beat 4 starts a new signal
    got = neighbour_qrs_size(size, _features([0, 1, 1, 1, 0, 1]))
    np.testing.assert_allclose(got, [0.2, 1.0, 0.2, 1.5, 2.0, 1.0])
    assert np.isnan(neighbour_qrs_size(np.array([1.0]), _features([0]))).all()  # a beat alone: no reference


def test_a_small_v_call_with_no_t_wave_is_taken_and_a_pvc_is_not():
    cases = {  # (QRS size in mV, T wave over its own QRS, the smaller neighbour's QRS in mV) -> taken
        "blocked P wave: small, nothing after": ((0.2, 0.05, 1.0), True),
        "small, with a T wave 0.3 of the neighbours' QRS": ((0.2, 1.5, 1.0), False),
        "PVC: large, with its T wave": ((1.5, 0.4, 1.0), False),
        "PVC under a third of its neighbours' QRS, with its T wave": ((0.25, 1.2, 1.0), False),
        "as large as a third of its neighbours, no T wave": ((0.35, 0.1, 1.0), False),
        "between two pulses 3 mV high, half its group's size": ((0.5, 0.1, 3.0), False),
    }
    size, t_wave, neighbour = np.array([c for c, _ in cases.values()]).T
    windows = np.stack([_window(q, t) for q, t in zip(size, t_wave)])
    got = small_without_t_wave_mask(np.ones(len(cases), bool), windows, size, neighbour)
    np.testing.assert_array_equal(got, [taken for _, taken in cases.values()])
    assert not small_without_t_wave_mask(np.zeros(len(cases), bool), windows, size, neighbour).any()
    assert not small_without_t_wave_mask(np.ones(1, bool), windows[:1], size[:1], [np.nan]).any()


# --- through the API ------------------------------------------------------------------------

def _predict(client, rec):  # noqa: F811
    r = client.post(PREDICT, json={"signal_data": rec.signal.tolist(), "sampling_rate": rec.fs,
                                   "derivation": rec.lead})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


@pytest.fixture(scope="module")
def blocked_115():
    """Two minutes of MIT-BIH 115's V1 (a sinus rhythm, no PVC) as a 2:1 AV block
    (``bench.robustness.two_to_one_block``): the detector takes many of the blocked P waves for beats."""
    return two_to_one_block(load_record("115", TWO_LEADS, lead="other"))


def test_blocked_p_waves_taken_for_beats_are_n_and_counted(client, blocked_115, monkeypatch):  # noqa: F811
    rec = blocked_115
    body = _predict(client, rec)
    taken = body["metadata"]["v_small_without_t_wave_beats"]
    monkeypatch.setattr(ecg.blocked_p, "SMALL_SHARE", 0.0)  # the rule never met
    without = _predict(client, rec)
    assert without["metadata"]["v_small_without_t_wave_beats"] == 0
    turned = np.setdiff1d(v_positions(without), v_positions(body))
    assert len(turned) == taken == without["ventricular_beats"] - body["ventricular_beats"] >= 20
    assert taken >= 4 * body["ventricular_beats"]  # most of the V calls were blocked P waves
    assert matched(rec.ann_samples, turned, rec.fs) == 0  # none of them a conducted beat


def test_pvcs_in_a_block_stay_v(client):  # noqa: F811
    """119's V1 (PVCs in bigeminy and trigeminy) as a 2:1 block: its PVCs are as large as the
    conducted beats and have T waves; the rule takes none."""
    rec = two_to_one_block(load_record("119", TWO_LEADS, lead="other"))
    body = _predict(client, rec)
    pvcs = rec.ann_samples[rec.ann_classes == "V"]
    assert body["metadata"]["v_small_without_t_wave_beats"] == 0
    assert matched(pvcs, v_positions(body), rec.fs) == len(pvcs) >= 15


def test_the_holter_report_counts_them_as_the_predictions_do(blocked_115, tmp_path):
    rec = blocked_115
    report, holter = recording_report(rec.signal, rec.fs, "ECG V1", tmp_path)
    whole = _predict(holter, rec)
    assert report["v_small_without_t_wave_beats"] == whole["metadata"]["v_small_without_t_wave_beats"] >= 20
