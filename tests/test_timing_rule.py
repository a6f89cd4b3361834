"""A PVC's timing through the API: three minutes of MIT-BIH record 214 (DS2), lead MLII.

One of its PVCs (at 169 s) gets a V probability of about 0.1 from the served networks, under the
card's threshold, but is early, followed by a pause, wide and unlike its neighbours in a regular
rhythm: the service calls it V by its timing (``ecg.decision.ectopic_timing_mask``) and counts it
in ``metadata.v_by_timing_beats``, in the predictions and in the Holter report alike.
"""

import numpy as np
import pytest

import ecg.decision
from ecg.ec57 import MATCH_WINDOW_S, match_beats
from tests.conftest import TWO_LEADS
from tests.service_helpers import PREDICT, app, client, recording_report  # noqa: F401
from train.data import load_record


@pytest.fixture(scope="module")
def record_214():
    return load_record("214", TWO_LEADS, lead="MLII")


def _predict(client, rec):  # noqa: F811
    r = client.post(PREDICT, json={"signal_data": rec.signal.tolist(), "sampling_rate": rec.fs, "derivation": "MLII"})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _by_timing(body):
    """The V beats whose probability is under the threshold: called V by their timing alone."""
    return [b for b in body["beat_predictions"]
            if b["arrhythmia_type"] == "V" and b["confidence"] < body["threshold_used"]]


def test_a_pvc_the_network_is_unsure_of_is_v_by_its_timing(client, record_214, monkeypatch):  # noqa: F811
    body = _predict(client, record_214)
    timed = _by_timing(body)
    assert body["metadata"]["v_by_timing_beats"] == len(timed) >= 1
    assert all(b["signal_quality"] == "good" and b["confidence"] >= ecg.decision.ECTOPIC_MIN_P for b in timed)
    # each is a PVC of the reference
    pos = np.array([b["position_sample"] for b in timed])
    ref_i, test_i = match_beats(record_214.ann_samples, pos, int(MATCH_WINDOW_S * record_214.fs))
    assert len(test_i) == len(timed) and set(np.asarray(record_214.ann_classes)[ref_i]) == {"V"}

    # neither timing rule reached (the one-beat rule's and its shape's)
    monkeypatch.setattr(ecg.decision, "ECTOPIC_MIN_P", 1.01)
    monkeypatch.setattr(ecg.decision, "TIMED_SHAPE_MIN_P", 1.01)
    without = _predict(client, record_214)
    assert without["metadata"]["v_by_timing_beats"] == 0 and not _by_timing(without)
    assert without["ventricular_beats"] == body["ventricular_beats"] - len(timed)


def test_the_holter_report_counts_them_as_the_predictions_do(record_214, tmp_path):
    report, holter = recording_report(record_214.signal, record_214.fs, "ECG MLII", tmp_path)
    whole = _predict(holter, record_214)
    assert report["v_by_timing_beats"] == whole["metadata"]["v_by_timing_beats"] >= 1
