"""V calls the rhythm does not need, through the API: two minutes of MIT-BIH record 100 (lead MLII,
a regular sinus rhythm) with humps added that the detector takes for beats and the networks often
call V (``bench.robustness.pulse_artefacts``, at nst's 12 dB).

No pause follows such a hump, nor a normal beat one fell on (on time, with the rhythm's own T wave),
and a hump the detector took instead of a beat of the rhythm leaves that beat's QRS in its window, so
the service calls them N (``ecg.no_pause``) and counts them in
``metadata.v_without_pause_beats``, in the predictions and in the Holter report alike; the PVCs of
record 119 stay V.
"""

from pathlib import Path

import numpy as np
import pytest

import ecg.no_pause
from bench.robustness import pulse_artefacts, two_to_one_block
from tests.service_helpers import PREDICT, app, client, matched, recording_report, v_positions  # noqa: F401
from train.augment import nst_snr_gain, qrs_amplitude
from train.data import load_record

MITDB = Path(__file__).parent / "data" / "mitdb"
SNR_DB = 12.0  # nst's definition (train.augment.nst_snr_gain)


def _humped(name):
    rec = load_record(name, MITDB)
    humps = pulse_artefacts(len(rec.signal), rec.fs, np.random.default_rng(0))
    gain = nst_snr_gain(qrs_amplitude(rec.signal, rec.ann_samples, rec.fs), humps, rec.fs, SNR_DB)
    return rec, rec.signal + gain * humps


@pytest.fixture(scope="module")
def humped_100():
    return _humped("100")


def _predict(client, x, fs):  # noqa: F811
    r = client.post(PREDICT, json={"signal_data": x.tolist(), "sampling_rate": fs, "derivation": "MLII"})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


# a sinus rhythm, and one with PVCs in bigeminy and trigeminy; how many normal beats a hump fell on
# this draw makes V calls of at least
@pytest.mark.parametrize("name, beats_a_hump_fell_on", [("100", 1), ("119", 0)])
def test_v_calls_the_rhythm_does_not_need_are_n_and_counted(client, name, beats_a_hump_fell_on,  # noqa: F811
                                                            monkeypatch):
    rec, x = _humped(name)
    assert _predict(client, rec.signal, rec.fs)["metadata"]["v_without_pause_beats"] == 0
    body = _predict(client, x, rec.fs)
    dropped = body["metadata"]["v_without_pause_beats"]
    assert dropped >= 1
    monkeypatch.setattr(ecg.no_pause, "HIDDEN_BEAT_MIN_CORR", 2.0)  # no hidden beat ever found
    no_hidden = _predict(client, x, rec.fs)
    monkeypatch.setattr(ecg.no_pause, "REPOLARISATION_MAX_DIFF", 0.0)  # the on-time form never reached
    extra_only = _predict(client, x, rec.fs)
    monkeypatch.setattr(ecg.no_pause, "NO_PAUSE_SPAN", 0.0)  # nor the other
    without = _predict(client, x, rec.fs)
    assert without["metadata"]["v_without_pause_beats"] == 0
    turned = np.setdiff1d(v_positions(without), v_positions(body))
    assert len(turned) == dropped == without["ventricular_beats"] - body["ventricular_beats"]
    assert matched(rec.ann_samples[rec.ann_classes == "V"], turned, rec.fs) == 0  # no PVC among them
    # between two of the rhythm's beats an RR apart: the humps themselves, no beat of the reference
    assert matched(rec.ann_samples, np.setdiff1d(v_positions(without), v_positions(extra_only)), rec.fs) == 0
    # on time with the rhythm's repolarisation: the reference's beats a hump fell on
    on_beats = np.setdiff1d(v_positions(extra_only), v_positions(no_hidden))
    assert matched(rec.ann_samples, on_beats, rec.fs) == len(on_beats) >= beats_a_hump_fell_on


def test_the_holter_report_counts_them_as_the_predictions_do(humped_100, tmp_path):
    rec, x = humped_100
    report, holter = recording_report(x, rec.fs, "ECG MLII", tmp_path)
    whole = _predict(holter, x, rec.fs)
    assert report["v_without_pause_beats"] == whole["metadata"]["v_without_pause_beats"] >= 1


def test_pvcs_of_a_rhythm_slower_than_50_bpm_keep_their_v_without_a_pause(client, monkeypatch):  # noqa: F811
    """Record 119 (PVCs in bigeminy and trigeminy) as a 2:1 AV block (``bench.robustness.
    two_to_one_block``): its conducted rhythm runs at half the sinus rate, and a PVC between two
    conducted beats leaves them one such RR apart, as an interpolated PVC does. In a rhythm that
    slow the first form does not apply, so every PVC stays V; with no such bound it takes some."""
    blocked = two_to_one_block(load_record("119", MITDB))
    pvcs = blocked.ann_samples[blocked.ann_classes == "V"]
    body = _predict(client, blocked.signal, blocked.fs)
    assert matched(pvcs, v_positions(body), blocked.fs) == len(pvcs) >= 30
    assert body["metadata"]["v_without_pause_beats"] == 0
    monkeypatch.setattr(ecg.no_pause, "NO_PAUSE_MAX_RR_S", np.inf)
    unbounded = _predict(client, blocked.signal, blocked.fs)
    assert unbounded["metadata"]["v_without_pause_beats"] >= 5
    assert matched(pvcs, v_positions(unbounded), blocked.fs) <= len(pvcs) - 5
