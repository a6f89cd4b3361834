"""The patient's own rhythm through the API: left bundle branch block in lead V1.

Three minutes of MIT-BIH record 214 on its V1 lead: 207 beats of left bundle branch block,
wide QS complexes that look like PVCs one by one, and 23 PVCs. Sent whole, the block's
beats are the dominant on-time shape of the recording (``ecg.decision.own_rhythm_mask``):
a Holter reader's N, and no phantom PVC burden; the PVCs, premature, stay V.

The served networks (preprocessing nv-pre-3) see V1 turned upright and call few of the block's
beats V by themselves; release 10 (``tests/data/model_nv_pre_2``), which learned V1 as it is
sent, calls many of them V one by one, so the rule's work is checked with it.
"""

from pathlib import Path

import numpy as np
import pytest

from ecg.decision import noisy_threshold
from ecg.ec57 import MATCH_WINDOW_S, match_beats
from bench.edf_files import write_edf
from service import create_app
from tests.conftest import TWO_LEADS
from tests.service_helpers import MODEL_DIR, PREDICT, app, client  # noqa: F401
from train.data import OTHER_LEAD, load_record

RELEASE_10 = Path(__file__).parent / "data" / "model_nv_pre_2"


@pytest.fixture(scope="module")
def record_214_v1():
    return load_record("214", TWO_LEADS, lead=OTHER_LEAD)


@pytest.mark.parametrize("model_dir, turned", [(MODEL_DIR, 0), (RELEASE_10, 50)])
def test_a_bundle_branch_block_in_v1_is_not_called_a_pvc_burden(record_214_v1, model_dir, turned):
    # turned: how many block beats the rule must at least call N (release 10 calls 82 of the 207
    # V one by one, release 9 called 197)
    rec = record_214_v1
    assert rec.lead == "V1"
    client = create_app({"TESTING": True, "MODEL_DIR": str(model_dir), "LOG_LEVEL": "WARNING"}).test_client()
    r = client.post(PREDICT, json={"signal_data": rec.signal.tolist(), "sampling_rate": rec.fs,
                                   "derivation": rec.lead})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    beats = body["beat_predictions"]
    pos = np.array([b["position_sample"] for b in beats])
    called_v = np.array([b["arrhythmia_type"] == "V" for b in beats])
    ref, test = match_beats(rec.ann_samples, pos, int(MATCH_WINDOW_S * rec.fs))
    symbols = rec.ann_symbols[ref]
    lbbb, pvc = symbols == "L", symbols == "V"
    assert lbbb.sum() >= 200 and pvc.sum() >= 20
    assert called_v[test[lbbb]].mean() < 0.25
    assert called_v[test[pvc]].mean() >= 0.9
    # said, and counted: the beats over the threshold that the rule called N
    meta = body["metadata"]
    p_v = 1 - np.array([b["confidence"] for b in beats])  # of the beats called N
    quality = np.array([b["signal_quality"] for b in beats])
    # over the threshold, and over the surer one a noisy beat needs; unreadable beats are never V
    over = (p_v >= body["threshold_used"]) & ((quality != "noisy") | (p_v >= noisy_threshold(body["threshold_used"])))
    # called N: the rule's, and the no-pause rule's (a block beat on time with the rhythm's own T wave)
    turned_n = int(np.count_nonzero(~called_v & over & (quality != "unreadable")))
    assert meta["own_rhythm_beats"] + meta["v_without_pause_beats"] == turned_n
    assert meta["own_rhythm_beats"] >= turned
    assert any("own rhythm" in w for w in meta["warnings"]) == (meta["own_rhythm_beats"] > 0)


def test_the_holter_report_counts_the_own_rhythm_as_the_predictions_do(record_214_v1, tmp_path):
    rec = record_214_v1
    path = tmp_path / "214_v1.edf"
    write_edf(path, [rec.signal], rec.fs, ["ECG V1"])
    holter_app = create_app({"TESTING": True, "MODEL_DIR": str(RELEASE_10), "LOG_LEVEL": "WARNING",
                             "RECORDING_TMP_DIR": str(tmp_path / "uploads")})
    client = holter_app.test_client()
    r = client.post("/api/v1/recordings", data=path.read_bytes(),
                                      content_type="application/octet-stream")
    assert r.status_code == 201, r.get_json()
    report = r.get_json()
    whole = client.post(PREDICT, json={"signal_data": rec.signal[:len(rec.signal) // rec.fs * rec.fs].tolist(),
                                       "sampling_rate": rec.fs, "derivation": "V1"}).get_json()["metadata"]
    assert report["own_rhythm_beats"] == whole["own_rhythm_beats"] >= 50
    assert report["short_rhythm_beats"] == whole["short_rhythm_beats"] == 0  # long enough for the rule
    assert report["ventricular_beats"] == whole["ventricular_beats"] < 60
    assert any("own rhythm" in w for w in report["warnings"])


def _short_rhythm_warning(meta):
    said = [w for w in meta["warnings"] if "share one QRS shape" in w]
    return said[0] if said else None


def test_a_short_request_mostly_called_v_in_one_on_time_shape_is_said_to_be_ambiguous(record_214_v1):
    # release 10 calls many block beats V one by one; in 10-s strips, too short for the own-rhythm
    # rule, they stay V (a slow ventricular rhythm looks the same), and the response says so
    rec = record_214_v1
    client = create_app({"TESTING": True, "MODEL_DIR": str(RELEASE_10), "LOG_LEVEL": "WARNING"}).test_client()
    strip = 10 * rec.fs
    warned = 0
    for a in range(0, len(rec.signal) - strip + 1, strip):
        body = client.post(PREDICT, json={"signal_data": rec.signal[a:a + strip].tolist(), "sampling_rate": rec.fs,
                                          "derivation": rec.lead}).get_json()
        beats, said = body["beat_predictions"], _short_rhythm_warning(body["metadata"])
        assert body["metadata"]["own_rhythm_beats"] == 0  # too short for the rule
        if said:
            warned += 1
            words = said.split()
            dominant, n = int(words[0]), int(words[3])
            assert n == len(beats) and 2 * dominant > n
            assert body["metadata"]["short_rhythm_beats"] == dominant
            assert sum(b["arrhythmia_type"] == "V" for b in beats) >= dominant
        else:
            assert body["metadata"]["short_rhythm_beats"] == 0
    assert warned >= 2
    whole = client.post(PREDICT, json={"signal_data": rec.signal.tolist(), "sampling_rate": rec.fs,
                                       "derivation": rec.lead}).get_json()["metadata"]
    assert _short_rhythm_warning(whole) is None and whole["short_rhythm_beats"] == 0  # the rule decides, and says so


def test_premature_pvcs_in_a_short_request_are_not_said_to_be_a_rhythm(client):
    # record 208: bigeminy and couplets, some strips more than half V; premature, so no rhythm of theirs
    rec = load_record("208", Path(__file__).parent / "data" / "mitdb")
    strip = 10 * rec.fs
    most_v = 0
    for a in range(0, len(rec.signal) - strip + 1, strip):
        body = client.post(PREDICT, json={"signal_data": rec.signal[a:a + strip].tolist(),
                                          "sampling_rate": rec.fs}).get_json()
        beats = body["beat_predictions"]
        most_v += 2 * sum(b["arrhythmia_type"] == "V" for b in beats) > len(beats)
        assert _short_rhythm_warning(body["metadata"]) is None and body["metadata"]["short_rhythm_beats"] == 0
    assert most_v >= 1


def test_the_holter_report_of_a_short_recording_gives_the_short_request_warning(record_214_v1, tmp_path):
    # a recording too short for the own-rhythm rule gets the warning a request of it gets
    rec = record_214_v1
    app = create_app({"TESTING": True, "MODEL_DIR": str(RELEASE_10), "LOG_LEVEL": "WARNING",
                      "RECORDING_TMP_DIR": str(tmp_path / "uploads")})
    client = app.test_client()
    strip = 10 * rec.fs
    compared = warned = 0
    for a in range(0, len(rec.signal) - strip + 1, strip):
        path = tmp_path / f"214_v1_{a}.edf"
        write_edf(path, [rec.signal[a:a + strip]], rec.fs, ["ECG V1"])
        report = client.post("/api/v1/recordings", data=path.read_bytes(),
                             content_type="application/octet-stream").get_json()
        meta = client.post(PREDICT, json={"signal_data": rec.signal[a:a + strip].tolist(), "sampling_rate": rec.fs,
                                          "derivation": "V1"}).get_json()["metadata"]
        if report["total_beats"] != meta["total_beats"] or report["ventricular_beats"] != meta["ventricular_beats"]:
            continue  # the file's 16-bit samples moved a call: not the same input
        compared += 1
        assert report["short_rhythm_beats"] == meta["short_rhythm_beats"]
        assert (_short_rhythm_warning(report) is not None) == (report["short_rhythm_beats"] > 0)
        if report["short_rhythm_beats"]:
            warned += 1
            assert _short_rhythm_warning(report) == _short_rhythm_warning(meta)
    assert compared >= 12 and warned >= 2


def test_a_short_stretch_between_leads_off_gets_the_short_request_warning(record_214_v1, tmp_path):
    """Record 214's V1 whole (3 min, long enough for the own-rhythm rule), a 90-s lead off, then
    60 s of it again: that last stretch is a signal of its own (``ecg.quality.lead_on_runs``),
    too short for the rule, so its block beats stay V, and the request and the recording say so
    as a 60-s request of it does."""
    rec = record_214_v1
    fs = rec.fs
    tail = rec.signal[75 * fs:135 * fs]
    x = np.concatenate([rec.signal, np.full(90 * fs, 0.3), tail])
    app = create_app({"TESTING": True, "MODEL_DIR": str(RELEASE_10), "LOG_LEVEL": "WARNING",
                      "RECORDING_TMP_DIR": str(tmp_path / "uploads")})
    client = app.test_client()

    def metadata(signal):
        r = client.post(PREDICT, json={"signal_data": signal.tolist(), "sampling_rate": fs, "derivation": "V1"})
        assert r.status_code == 201, r.get_json()
        return r.get_json()["metadata"]

    alone, meta = metadata(tail), metadata(x)
    assert alone["short_rhythm_beats"] > 30
    assert meta["short_rhythm_beats"] == alone["short_rhythm_beats"]
    # the count and the stretch's beats (one more than alone: the lead coming back on is a step)
    said = _short_rhythm_warning(meta).split()
    assert int(said[0]) == meta["short_rhythm_beats"] and 0 <= int(said[3]) - alone["total_beats"] <= 1
    path = tmp_path / "214_v1_lead_off.edf"
    write_edf(path, [x], fs, ["ECG V1"])
    report = client.post("/api/v1/recordings", data=path.read_bytes(),
                         content_type="application/octet-stream").get_json()
    assert report["short_rhythm_beats"] == meta["short_rhythm_beats"]
    assert _short_rhythm_warning(report).split()[0] == str(meta["short_rhythm_beats"])
