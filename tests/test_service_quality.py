"""The signal-quality flag through the API: per beat, in metadata, in the Holter report."""

import numpy as np
import pytest

from bench.edf_files import write_edf
from tests.conftest import FIXTURE_RECORDS, FIXTURES
from tests.service_helpers import PREDICT, app, client  # noqa: F401
from tests.test_quality import muscle_like
from tests.test_recordings import RECORDINGS, post_edf, small_pools_app

FS = 360


def loud_noise(n, seed, rms=2.4):
    """Real muscle noise (the committed nstdb minute) at about the QRS's peak-to-peak RMS."""
    return muscle_like(n, seed, rms)


@pytest.fixture(scope="module")
def noisy_119():
    """A minute of record 119 (bigeminy: half its beats are PVCs) with 15 s of loud muscle noise."""
    from train.data import load_record

    x = load_record("119", FIXTURES).signal.copy()
    x[25 * FS:40 * FS] += loud_noise(15 * FS, 5)
    return x


def test_unreadable_beats_are_flagged_called_n_and_left_out_of_the_burden(client, noisy_119):
    r = client.post(PREDICT, json={"signal_data": noisy_119.tolist(), "sampling_rate": FS})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    meta, beats = body["metadata"], body["beat_predictions"]
    kinds = [b["signal_quality"] for b in beats]
    assert set(kinds) <= {"good", "noisy", "unreadable"}
    unreadable = [b for b in beats if b["signal_quality"] == "unreadable"]
    assert len(unreadable) >= 5
    assert all(b["arrhythmia_type"] == "N" for b in unreadable)
    assert meta["signal_quality"] == {k: kinds.count(k) for k in ("good", "noisy", "unreadable")}
    # the noisy stretch, in seconds of the signal, and nothing far from it
    assert 10.0 <= meta["unreadable_seconds"] <= 20.0
    assert all(20.0 <= a < b <= 45.0 for a, b in meta["unreadable_intervals_s"])
    readable = len(beats) - len(unreadable)
    assert meta["pvc_burden_percent"] == pytest.approx(100 * body["ventricular_beats"] / readable, abs=0.01)
    assert any("unreadable" in w for w in meta["warnings"])
    # away from the noise the beats are called as in the clean signal
    from train.data import load_record

    clean = client.post(PREDICT, json={"signal_data": load_record("119", FIXTURES).signal.tolist(),
                                       "sampling_rate": FS}).get_json()["beat_predictions"]

    def v_away_from_noise(bs):
        return [b["position_sample"] for b in bs
                if b["arrhythmia_type"] == "V" and not 20 * FS < b["position_sample"] < 45 * FS]
    assert len(v_away_from_noise(clean)) > 10
    assert v_away_from_noise(beats) == v_away_from_noise(clean)


def test_the_same_signal_at_another_rate_is_judged_alike(client, noisy_119):
    from ecg.signal import resample

    at_250 = resample(noisy_119, FS, 250)
    a = client.post(PREDICT, json={"signal_data": noisy_119.tolist(), "sampling_rate": FS}).get_json()
    b = client.post(PREDICT, json={"signal_data": at_250.tolist(), "sampling_rate": 250}).get_json()
    assert abs(a["metadata"]["unreadable_seconds"] - b["metadata"]["unreadable_seconds"]) < 3.0


def test_a_recording_in_chunks_flags_the_beats_the_whole_signal_path_flags(tmp_path):
    """Noise across a chunk border: the report's quality is the predictions endpoint's."""
    from train.data import load_record

    x = np.concatenate([load_record(r, FIXTURES).signal for r in FIXTURE_RECORDS])
    for start_s in (55, 170, 400):  # 1-min chunks: bursts across borders at 60 s and 180 s
        a = start_s * FS
        x[a:a + 12 * FS] += loud_noise(12 * FS, start_s)
    path = tmp_path / "noisy.edf"
    write_edf(path, [x], FS, ["MLII"])
    client = small_pools_app(tmp_path).test_client()
    report = post_edf(client, path, "?include_beats=true").get_json()
    whole = client.post(PREDICT, json={"signal_data": x.tolist(), "sampling_rate": FS}).get_json()
    assert [b["sample"] for b in report["beats"]] == [b["position_sample"] for b in whole["beat_predictions"]]
    assert [b["signal_quality"] for b in report["beats"]] == [b["signal_quality"] for b in whole["beat_predictions"]]
    assert [b["type"] for b in report["beats"]] == [b["arrhythmia_type"] for b in whole["beat_predictions"]]
    assert report["unreadable_beats"] == whole["metadata"]["signal_quality"]["unreadable"] > 10
    assert report["unreadable_seconds"] == pytest.approx(whole["metadata"]["unreadable_seconds"], abs=0.05)
    assert report["pvc_burden_percent"] == pytest.approx(whole["metadata"]["pvc_burden_percent"], abs=0.01)
    assert RECORDINGS.endswith("recordings")


def test_a_signal_unreadable_throughout_has_no_burden(app):  # noqa: F811
    """Every beat unreadable: no V, and the burden is null, not 0 % (there is nothing to read)."""
    from ecg.decision import classify
    from ecg.pipeline import extract_beats
    from ecg.quality import UNREADABLE
    from service.inference import build_result
    from service.model import get_state
    from train.data import load_record

    model = get_state(app).model
    x = load_record("119", FIXTURES).signal[:20 * FS]
    beats = extract_beats(x, FS)
    beats.quality[:] = UNREADABLE
    p_raw = model.p_v(beats.windows, beats.features)
    calls = classify(p_raw, beats.features, model.decision, windows=beats.windows,
                     groups=beats.groups, quality=beats.quality)
    meta = build_result(model, beats, calls, x, FS, "MLII", True)["metadata"]
    assert meta["ventricular_beats"] == 0 and meta["pvc_burden_percent"] is None
    assert meta["signal_quality"]["unreadable"] == len(beats) > 10


def test_lead_labels_are_read_as_devices_spell_them():
    from service.inference import lead_name

    assert [lead_name(s) for s in ("MLII", "ECG II", "Lead II", "ml2", "v1", "ECG V5", "Lead-aVR", "III", "EKG II")] \
        == ["MLII", "MLII", "MLII", "MLII", "V1", "V5", "AVR", "III", "MLII"]
