"""A paced rhythm through the API, with and without a declared pacemaker.

One minute of MIT-BIH record 217 (paced, outside DS1 and DS2) on its V1 lead: 50 paced beats,
wide and on time, 14 PVCs and 9 fusion beats. Sent as 10-s strips, too short for the own-rhythm
rule, the served networks call most paced beats V: a phantom PVC burden. Declared
(``pacemaker: true``), the strips' dominant on-time shape is the paced rhythm, N, and the PVCs,
premature, stay V.
"""

from pathlib import Path

import numpy as np
import pytest

from ecg.ec57 import MATCH_WINDOW_S, match_beats
from tests.service_helpers import PREDICT, app, client  # noqa: F401
from train.data import OTHER_LEAD, load_record

PACED = Path(__file__).parent / "data" / "mitdb-paced"
STRIP_S = 10


@pytest.fixture(scope="module")
def record_217_v1():
    return load_record("217", PACED, lead=OTHER_LEAD)


def strip_calls(client, rec, pacemaker):
    """Positions and V calls of the record sent as 10-s strips, and each strip's metadata."""
    pos, called_v, metas = [], [], []
    for start in range(0, len(rec.signal), STRIP_S * rec.fs):
        body = {"signal_data": rec.signal[start:start + STRIP_S * rec.fs].tolist(), "sampling_rate": rec.fs,
                "derivation": rec.lead, "pacemaker": pacemaker}
        r = client.post(PREDICT, json=body)
        assert r.status_code == 201, r.get_json()
        result = r.get_json()
        pos += [b["position_sample"] + start for b in result["beat_predictions"]]
        called_v += [b["arrhythmia_type"] == "V" for b in result["beat_predictions"]]
        metas.append(result["metadata"])
    return np.array(pos), np.array(called_v), metas


def test_paced_beats_are_n_only_with_a_declared_pacemaker(client, record_217_v1):
    rec = record_217_v1
    assert rec.lead == "V1"
    shares = {}
    for pacemaker in (False, True):
        pos, called_v, metas = strip_calls(client, rec, pacemaker)
        ref, test = match_beats(rec.ann_samples, pos, int(MATCH_WINDOW_S * rec.fs))
        symbols = rec.ann_symbols[ref]
        paced, pvc = symbols == "/", symbols == "V"
        assert paced.sum() >= 45 and pvc.sum() >= 12
        shares[pacemaker] = called_v[test[paced]].mean()
        assert called_v[test[pvc]].mean() >= 0.9  # premature: V either way
        assert all(m["pacemaker"] is pacemaker for m in metas)
        turned = sum(m["own_rhythm_beats"] for m in metas)
        said = [any("paced beats (pacemaker declared)" in w for w in m["warnings"]) for m in metas]
        assert said == [m["own_rhythm_beats"] > 0 for m in metas]
        if pacemaker:
            assert turned >= 30
        else:
            assert turned == 0 and any(any("pacemaker: true" in w for w in m["warnings"]) for m in metas)
    assert shares[False] >= 0.6 and shares[True] <= 0.2, shares


@pytest.mark.parametrize("name", ["119", "200", "208", "233"])
def test_a_pacemaker_leaves_premature_and_minority_pvcs_alone(client, name):
    """Bigeminy, frequent, coupled and multiform PVCs (MLII strips, no pacing): the same calls."""
    rec = load_record(name, Path(__file__).parent / "data" / "mitdb")
    calls = {}
    for pacemaker in (False, True):
        calls[pacemaker] = [b["arrhythmia_type"] for start in range(0, len(rec.signal) - STRIP_S * rec.fs + 1,
                                                                    STRIP_S * rec.fs)
                            for b in client.post(PREDICT, json={
                                "signal_data": rec.signal[start:start + STRIP_S * rec.fs].tolist(),
                                "sampling_rate": rec.fs, "pacemaker": pacemaker}).get_json()["beat_predictions"]]
    assert calls[True] == calls[False] and calls[True].count("V") >= 30


def test_the_holter_report_reads_a_declared_pacemaker_as_the_predictions_do(record_217_v1, tmp_path):
    """The minute as an EDF file (73 beats, too short for the rule without a pacemaker): each
    way, the report's counts are those of the same minute sent whole to the predictions."""
    from bench.edf_files import write_edf
    from service import create_app
    from tests.service_helpers import MODEL_DIR

    rec = record_217_v1
    path = tmp_path / "217_v1.edf"
    write_edf(path, [rec.signal], rec.fs, ["ECG V1"])
    client = create_app({"TESTING": True, "MODEL_DIR": str(MODEL_DIR), "LOG_LEVEL": "WARNING",
                         "RECORDING_TMP_DIR": str(tmp_path / "uploads")}).test_client()
    reports = {}
    for pacemaker in (False, True):
        r = client.post(f"/api/v1/recordings?pacemaker={str(pacemaker).lower()}", data=path.read_bytes(),
                        content_type="application/octet-stream")
        assert r.status_code == 201, r.get_json()
        report = reports[pacemaker] = r.get_json()
        whole = client.post(PREDICT, json={"signal_data": rec.signal.tolist(), "sampling_rate": rec.fs,
                                           "derivation": "V1", "pacemaker": pacemaker}).get_json()["metadata"]
        assert report["pacemaker"] is pacemaker
        for field in ("ventricular_beats", "own_rhythm_beats", "short_rhythm_beats"):
            assert report[field] == whole[field], field
        assert any("pacemaker declared" in w for w in report["warnings"]) == pacemaker
    assert reports[True]["own_rhythm_beats"] >= 30 and reports[False]["own_rhythm_beats"] == 0
    assert reports[True]["ventricular_beats"] < reports[False]["ventricular_beats"] - 30


def test_the_bench_counts_what_the_declaration_changes(tmp_path):
    """``bench.paced`` on the committed minute: the declaration removes false V on V1's strips,
    keeps every PVC found, and leaves MLII, whose paced beats the networks call N, as it was."""
    from bench.paced import run, write_markdown
    from service.model import load_model
    from tests.service_helpers import MODEL_DIR

    results = run(load_model(MODEL_DIR), ["217"], PACED)
    strips = results["other lead"]["strips"]
    before, after = strips["not declared"], strips["declared"]
    assert after["V_FP"] <= before["V_FP"] - 30 and after["V_TP"] == before["V_TP"] >= 12
    # per record, every false V, unmatched detections called V among them
    assert strips["per_record"]["217"]["declared"]["false_v"] >= after["V_FP"]
    mlii = results["MLII"]["whole"]  # the networks already call 217's paced beats N in MLII
    assert {k: mlii["declared"][k] for k in ("V_TP", "V_FP")} == {k: mlii["not declared"][k] for k in ("V_TP", "V_FP")}
    assert strips["per_record"]["217"]["lead"] == "V1"
    out = tmp_path / "paced.md"
    write_markdown(out, {"records": ["217"], "model": {"version": "test"}, "results": results})
    assert f"| other lead | strips | 217 (V1) | {strips['per_record']['217']['not declared']['false_v']} -> " \
           f"{strips['per_record']['217']['declared']['false_v']} |" in out.read_text()


def test_the_bench_puts_one_pacing_spike_before_each_paced_beat(record_217_v1):
    from bench.paced import SPIKE_BEFORE_R_MS, SPIKE_FS, with_pacing_spikes

    rec = record_217_v1
    plain, _ = with_pacing_spikes(rec, 0.0)
    spiked, fs = with_pacing_spikes(rec, 10.0)
    assert fs == SPIKE_FS and len(spiked) == len(plain) == len(rec.signal) * SPIKE_FS // rec.fs
    added = spiked - plain
    peaks = np.flatnonzero((added[1:-1] > added[:-2]) & (added[1:-1] >= added[2:]) & (added[1:-1] > 1.0)) + 1
    paced = rec.ann_samples[np.isin(rec.ann_symbols, ["/", "f"])] * SPIKE_FS // rec.fs - SPIKE_BEFORE_R_MS
    assert len(peaks) == len(paced) >= 50
    assert np.abs(peaks - paced).max() <= 2  # the front end delays the pulse by a sample or two
