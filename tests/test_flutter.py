"""Ventricular flutter: found in MIT-BIH record 207's episode, not in heart rhythms or noise.

``tests/data/mitdb-flutter`` holds one minute of record 207 (DS1), both leads: 21 s of its
rhythm, then the start of its longest episode of ventricular flutter (the annotators' ``[`` at
20.8 s, to the excerpt's end). Without the flutter detector the service called that episode noise.
"""

from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecg.flutter import flutter_intervals
from ecg.pipeline import preprocess
from ecg.signal import resample
from tests.conftest import FIXTURE_RECORDS, FIXTURES, TWO_LEADS
from tests.service_helpers import PREDICT, app, client  # noqa: F401
from train.augment import rms_snr_gain
from train.data import OTHER_LEAD, load_record

FLUTTER = Path(__file__).parent / "data" / "mitdb-flutter"
NOISE = Path(__file__).parent / "data" / "nstdb-noise"


def flagged(x, fs):
    return flutter_intervals(preprocess(x, fs)[1], 360)


def seconds(intervals, lo=0.0, hi=np.inf):
    """Seconds of ``intervals`` (k, 2) within [lo, hi)."""
    return float(sum(max(0.0, min(b, hi) - max(a, lo)) for a, b in intervals))


@pytest.fixture(scope="module")
def episode_start():
    ann = wfdb.rdann(str(FLUTTER / "207"), "atr")
    return float(ann.sample[list(ann.symbol).index("[")] / ann.fs)


@pytest.mark.parametrize("lead", ["MLII", OTHER_LEAD])
@pytest.mark.parametrize("fs", [360, 250, 128])
def test_record_207s_ventricular_flutter_is_found_and_its_rhythm_before_is_not(lead, fs, episode_start):
    rec = load_record("207", FLUTTER, lead=lead)
    x = resample(rec.signal, rec.fs, fs)
    iv = flagged(x, fs)
    end = len(x) / fs
    # the flutter windows are 4 s long: at most one reaches back before the episode's first wave
    assert seconds(iv, hi=episode_start - 1.0) == 0
    assert seconds(iv, lo=episode_start) >= 0.8 * (end - episode_start)


@pytest.mark.parametrize("name", FIXTURE_RECORDS)
def test_no_flutter_in_mlii_rhythms_full_of_pvcs(name):
    rec = load_record(name, FIXTURES)
    assert flagged(rec.signal, rec.fs).shape == (0, 2)


@pytest.mark.parametrize("name", ["119", "208", "214", "233"])
def test_no_flutter_in_v1_bundle_branch_block_or_bigeminy(name):
    rec = load_record(name, TWO_LEADS, lead=OTHER_LEAD)
    assert rec.lead == "V1"
    assert flagged(rec.signal, rec.fs).shape == (0, 2)


def test_muscle_noise_is_not_flutter():
    rec = load_record("100", FIXTURES)
    noise = wfdb.rdrecord(str(NOISE / "ma")).p_signal[:, 0]
    noise = np.resize(noise - noise.mean(), len(rec.signal))
    for snr_db in (6.0, 0.0, -6.0):
        x = rec.signal + rms_snr_gain(rec.signal, noise, snr_db) * noise
        assert flagged(x, rec.fs).shape == (0, 2), snr_db


@pytest.mark.parametrize("hz, is_flutter", [(1.0, False), (2.0, False), (3.0, True), (6.0, True), (10.0, False)])
def test_a_steady_wave_is_flutter_only_at_150_to_540_per_minute(hz, is_flutter):
    t = np.arange(0, 20, 1 / 360)
    iv = flagged(np.sin(2 * np.pi * hz * t), 360)
    assert seconds(iv) == (20.0 if is_flutter else 0.0)


def test_a_signal_shorter_than_one_window_has_no_flutter():
    t = np.arange(0, 3.9, 1 / 360)
    assert flagged(np.sin(2 * np.pi * 4 * t), 360).shape == (0, 2)


def test_the_api_says_where_the_flutter_is_and_warns(client, episode_start):  # noqa: F811
    rec = load_record("207", FLUTTER)
    x = resample(rec.signal, rec.fs, 250)[int(15 * 250):int(45 * 250)]  # 15-45 s of the excerpt, at 250 Hz
    r = client.post(PREDICT, json={"signal_data": x.tolist(), "sampling_rate": 250})
    assert r.status_code == 201, r.get_json()
    meta = r.get_json()["metadata"]
    iv = np.array(meta["ventricular_flutter_intervals_s"])
    assert meta["ventricular_flutter_seconds"] == pytest.approx(seconds(iv))
    assert seconds(iv, lo=episode_start - 15) >= 0.8 * (30 - (episode_start - 15))  # seconds of the request
    assert seconds(iv, hi=episode_start - 15 - 1.0) == 0
    assert sum("ventricular flutter" in w for w in meta["warnings"]) == 1


def test_the_api_reports_no_flutter_in_a_sinus_rhythm(client):  # noqa: F811
    rec = load_record("100", FIXTURES)
    r = client.post(PREDICT, json={"signal_data": rec.signal[:3600].tolist(), "sampling_rate": rec.fs})
    meta = r.get_json()["metadata"]
    assert meta["ventricular_flutter_seconds"] == 0 and meta["ventricular_flutter_intervals_s"] == []
    assert not any("flutter" in w for w in meta["warnings"])


def test_a_holter_recording_reports_the_flutter_across_its_chunk_borders(tmp_path):
    from bench.edf_files import write_edf
    from service import create_app
    from tests.service_helpers import MODEL_DIR

    # 2 min of sinus rhythm, the minute of record 207, 3 min of bigeminy; chunks of 25 s put
    # borders at 125, 150 and 175 s, in the flutter
    parts = [load_record("100", FIXTURES).signal, load_record("207", FLUTTER).signal,
             load_record("119", FIXTURES).signal]
    x = np.concatenate(parts)
    path = tmp_path / "flutter.edf"
    write_edf(path, [x], 360, ["ECG II"])
    app = create_app({"TESTING": True, "MODEL_DIR": str(MODEL_DIR), "LOG_LEVEL": "WARNING",
                      "RECORDING_CHUNK_S": 25.0, "RECORDING_TMP_DIR": str(tmp_path / "uploads")})
    client = app.test_client()
    r = client.post("/api/v1/recordings", data=path.read_bytes(), content_type="application/octet-stream")
    assert r.status_code == 201, r.get_json()
    report = r.get_json()
    whole = client.post(PREDICT, json={"signal_data": x.tolist(), "sampling_rate": 360}).get_json()["metadata"]
    assert report["ventricular_flutter_intervals_s"] == whole["ventricular_flutter_intervals_s"]
    assert report["ventricular_flutter_seconds"] == whole["ventricular_flutter_seconds"] > 30
    start = len(parts[0]) / 360
    assert seconds(report["ventricular_flutter_intervals_s"], hi=start + 20) == 0
    assert sum("ventricular flutter" in w for w in report["warnings"]) == 1


def test_the_bench_scores_flagged_seconds_by_the_annotators_rhythm_marks(episode_start):
    from bench.flutter import flutter_episodes, score_lead, vt_stretches

    flutter, vt = flutter_episodes(load_record("207", FLUTTER)), vt_stretches(FLUTTER, "207")
    assert flutter == [(pytest.approx(episode_start), 60.0)] and vt == []
    # 2 s before the episode, 10 s in it; a VT stretch of 5 s holding 3 flagged seconds
    counts = score_lead([(18.0, 30.0), (70.0, 73.0)], [(20.0, 60.0)], [(69.0, 74.0)])
    assert counts == {"flutter_s": 40.0, "covered_s": 10.0, "episodes": 1, "found": 1,
                      "in_vt_s": 3.0, "false_s": 2.0}
