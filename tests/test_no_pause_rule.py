"""V calls the rhythm does not need, through the API: two minutes of MIT-BIH record 100 (lead MLII,
a regular sinus rhythm) with humps added that the detector takes for beats and the networks often
call V (``bench.robustness.pulse_artefacts``, at nst's 12 dB).

No pause follows such a hump, so the service calls it N (``ecg.decision.no_pause_mask``) and counts
it in ``metadata.v_without_pause_beats``, in the predictions and in the Holter report alike.
"""

from pathlib import Path

import numpy as np
import pytest

import ecg.decision
from bench.edf_files import write_edf
from bench.robustness import pulse_artefacts
from ecg.ec57 import MATCH_WINDOW_S, match_beats
from service import create_app
from tests.service_helpers import MODEL_DIR, PREDICT, app, client  # noqa: F401
from train.augment import nst_snr_gain, qrs_amplitude
from train.data import load_record

MITDB = Path(__file__).parent / "data" / "mitdb"
SNR_DB = 12.0  # nst's definition (train.augment.nst_snr_gain)


@pytest.fixture(scope="module")
def humped_100():
    rec = load_record("100", MITDB)
    humps = pulse_artefacts(len(rec.signal), rec.fs, np.random.default_rng(0))
    gain = nst_snr_gain(qrs_amplitude(rec.signal, rec.ann_samples, rec.fs), humps, rec.fs, SNR_DB)
    return rec, rec.signal + gain * humps


def _predict(client, x, fs):  # noqa: F811
    r = client.post(PREDICT, json={"signal_data": x.tolist(), "sampling_rate": fs, "derivation": "MLII"})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _v_positions(body):
    return {b["position_sample"] for b in body["beat_predictions"] if b["arrhythmia_type"] == "V"}


def test_v_calls_no_pause_follows_are_n_and_counted(client, humped_100, monkeypatch):  # noqa: F811
    rec, x = humped_100
    clean = _predict(client, rec.signal, rec.fs)
    assert clean["metadata"]["v_without_pause_beats"] == 0
    body = _predict(client, x, rec.fs)
    dropped = body["metadata"]["v_without_pause_beats"]
    assert dropped >= 1
    monkeypatch.setattr(ecg.decision, "NO_PAUSE_SPAN", 0.0)  # the rule never reached
    without = _predict(client, x, rec.fs)
    assert without["metadata"]["v_without_pause_beats"] == 0
    turned = sorted(_v_positions(without) - _v_positions(body))
    assert len(turned) == dropped == without["ventricular_beats"] - body["ventricular_beats"]
    # none of them is a beat of the reference, let alone a PVC: they are the humps
    ref_i, _ = match_beats(rec.ann_samples, np.array(turned), int(MATCH_WINDOW_S * rec.fs))
    assert len(ref_i) == 0


def test_the_holter_report_counts_them_as_the_predictions_do(client, humped_100, tmp_path):  # noqa: F811
    rec, x = humped_100
    path = tmp_path / "100.edf"
    write_edf(path, [x], rec.fs, ["ECG MLII"])
    holter = create_app({"TESTING": True, "MODEL_DIR": str(MODEL_DIR), "LOG_LEVEL": "WARNING",
                         "RECORDING_TMP_DIR": str(tmp_path / "uploads")}).test_client()
    r = holter.post("/api/v1/recordings", data=path.read_bytes(), content_type="application/octet-stream")
    assert r.status_code == 201, r.get_json()
    whole = _predict(holter, x, rec.fs)
    assert r.get_json()["v_without_pause_beats"] == whole["metadata"]["v_without_pause_beats"] >= 1
