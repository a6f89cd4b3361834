"""POST /api/v1/recordings: EDF files built from the MIT-BIH excerpts in tests/data/mitdb.

The central check: a recording analysed in chunks (1-min detection chunks, pools of 128
beats here, so that many borders fall inside 13 min) gives the beats that
POST /api/v1/predictions gives for the same signal, position, label and confidence.
"""

import numpy as np
import pytest

from bench.edf_files import without_records, write_edf
from ecg import holter
from ecg.pipeline import TURNED_UPRIGHT
from ecg.signal import resample
from service import create_app, edf
from service.edf import open_channel
from tests.conftest import FIXTURE_RECORDS, FIXTURES, PAUSES_FIXTURES, write_swung_232
from tests.service_helpers import MODEL_DIR, app, client, edit_card, model_copy  # noqa: F401

RECORDINGS = "/api/v1/recordings"
PREDICT = "/api/v1/predictions"


@pytest.fixture(scope="module")
def excerpts():
    """The five excerpts back to back: 13 min of MLII at 360 Hz (mV)."""
    from train.data import load_record

    return np.concatenate([load_record(r, FIXTURES).signal for r in FIXTURE_RECORDS])


@pytest.fixture(scope="module")
def edf_360(excerpts, tmp_path_factory):
    path = tmp_path_factory.mktemp("edf") / "five_360.edf"
    write_edf(path, [excerpts], 360, ["MLII"])
    return path


@pytest.fixture(scope="module")
def edf_1000(excerpts, tmp_path_factory):
    """Three signals at 1000 Hz, MLII second: the default channel."""
    path = tmp_path_factory.mktemp("edf") / "three_1000.edf"
    x = resample(excerpts, 360, 1000)
    write_edf(path, [np.sin(np.arange(len(x)) / 800.0), x, -x], 1000, ["Resp", "ECG MLII", "ECG V1"])
    return path


def small_pools_app(tmp_path, processes=1, version=None):
    """The served model with pools of 128 beats, and 1-min detection chunks; ``version``:
    the preprocessing version its card names instead of its own."""
    folder = model_copy(tmp_path)

    def change(card):
        card["decision"]["pooling"].update(pool_size_beats=128)
        card["preprocessing"]["version"] = version or card["preprocessing"]["version"]

    edit_card(folder, change)
    return create_app({"TESTING": True, "MODEL_DIR": str(folder), "LOG_LEVEL": "WARNING",
                       "RECORDING_CHUNK_S": 60.0, "RECORDING_PROCESSES": processes,
                       "RECORDING_TMP_DIR": str(tmp_path / "uploads")})


def post_edf(client, path, query="", **kwargs):
    return client.post(RECORDINGS + query, data=path.read_bytes(), content_type="application/octet-stream", **kwargs)


def assert_same_beats(client, path, channel, report):
    ch = open_channel(path, channel)
    x = ch.read(0, ch.n_samples)
    r = client.post(PREDICT, json={"signal_data": x.tolist(), "sampling_rate": ch.fs})
    assert r.status_code == 201, r.get_json()
    whole = r.get_json()["beat_predictions"]
    beats = report["beats"]
    assert len(beats) == len(whole) > 900
    assert [b["sample"] for b in beats] == [b["position_sample"] for b in whole]
    assert [b["type"] for b in beats] == [b["arrhythmia_type"] for b in whole]
    assert np.allclose([b["confidence"] for b in beats], [b["confidence"] for b in whole], atol=2e-6)
    assert report["ventricular_beats"] == r.get_json()["ventricular_beats"] > 100


def test_chunked_beats_are_the_whole_signal_beats_at_360_hz(tmp_path, edf_360):
    app = small_pools_app(tmp_path)
    client = app.test_client()
    r = post_edf(client, edf_360, "?include_beats=true")
    assert r.status_code == 201, r.get_json()
    assert_same_beats(client, edf_360, None, r.get_json())


def test_chunked_beats_are_the_whole_signal_beats_at_1000_hz_in_two_processes(tmp_path, edf_1000):
    app = small_pools_app(tmp_path, processes=2)
    client = app.test_client()
    r = post_edf(client, edf_1000, "/?include_beats=true")
    assert r.status_code == 201, r.get_json()
    report = r.get_json()
    assert report["channel"] == {"index": 1, "label": "ECG MLII", "sampling_rate": 1000}
    assert_same_beats(client, edf_1000, None, report)


@pytest.mark.parametrize("fs", [128, 257])
def test_chunked_beats_are_the_whole_signal_beats_at_other_databases_rates(tmp_path, excerpts, fs):
    # MIT-BIH Long-Term's 128 Hz and INCART's 257 Hz, which shares no factor with the model's 360
    path = tmp_path / f"five_{fs}.edf"
    write_edf(path, [resample(excerpts, 360, fs)], fs, ["ECG II"])
    client = small_pools_app(tmp_path).test_client()
    r = post_edf(client, path, "?include_beats=true")
    assert r.status_code == 201, r.get_json()
    assert_same_beats(client, path, None, r.get_json())


def test_a_lead_off_for_minutes_gives_no_beats_and_the_whole_signals_around_it(tmp_path, excerpts, monkeypatch):
    """The excerpts with 10 min of a lead off (held at a constant level) in the middle, in one
    classification task: no beat inside it, the beats either side are the whole signal's (each
    side grouped and pooled apart), and no read for them spans it (a lead off all night would be
    hours of signal in memory)."""
    half = len(excerpts) // 2
    flat = (half, half + 600 * 360)
    x = np.concatenate([excerpts[:half], np.full(600 * 360, 0.3), excerpts[half:]])
    path = tmp_path / "lead_off.edf"
    write_edf(path, [x], 360, ["MLII"])
    reads = []
    real_read = edf.read_samples
    monkeypatch.setattr(edf, "read_samples", lambda *a: reads.append(a[3:]) or real_read(*a))
    client = small_pools_app(tmp_path).test_client()  # one process: the reads are this one's
    r = post_edf(client, path, "?include_beats=true")
    assert r.status_code == 201, r.get_json()
    report = r.get_json()
    samples = np.array([b["sample"] for b in report["beats"]])
    assert not np.any((samples > flat[0] + 360) & (samples < flat[1] - 360))
    assert report["unreadable_intervals_s"][0][1] - report["unreadable_intervals_s"][0][0] >= 598
    assert reads and not [(lo, hi) for lo, hi in reads if lo < flat[0] + 60 * 360 and hi > flat[1] - 60 * 360]
    assert_same_beats(client, path, None, report)


@pytest.mark.parametrize("rms_mv", [0.005, 0.05])
def test_a_lead_off_carrying_noise_is_unreadable_whole_and_gives_no_heart_rate(tmp_path, excerpts, rms_mv):
    """The excerpts with 10 min of white noise in the middle, a lead off that is not flat (the
    amplifier's own noise, 5 or 50 uV RMS). At 5 uV the detector finds next to nothing in it, at
    50 uV a detection every half second, all unreadable: either way the 10 min are unreadable and
    the heart rates are those of the excerpts alone."""
    half = len(excerpts) // 2
    noise = rms_mv * np.random.default_rng(1).standard_normal(600 * 360)
    reports = []
    for name, x in (("plain", excerpts), ("noise", np.concatenate([excerpts[:half], noise, excerpts[half:]]))):
        path = tmp_path / f"{name}.edf"
        write_edf(path, [x], 360, ["MLII"])
        r = post_edf(small_pools_app(tmp_path / name).test_client(), path)
        assert r.status_code == 201, r.get_json()
        reports.append(r.get_json())
    plain, report = reports
    a, b = half / 360, half / 360 + 600
    covered = sum(max(0.0, min(e, b) - max(s, a)) for s, e in report["unreadable_intervals_s"])
    assert covered > 599 and report["unreadable_seconds"] < 601
    assert report["heart_rate_bpm"] == plain["heart_rate_bpm"]
    assert sum(h["unreadable_beats"] for h in report["hourly"]) == report["unreadable_beats"] > 10


def held_then_eased(level, to, n):
    """A lead off held at ``level`` mV, eased over its last second to ``to``: n samples at 360 Hz."""
    return np.r_[np.full(n - 360, level), level + (to - level) * 0.5 * (1 - np.cos(np.pi * np.arange(360) / 360))]


@pytest.mark.parametrize("off_s, line", [(5, held_then_eased), (90, np.linspace)])  # drifting: 0.009 mV/s
def test_pvcs_either_side_of_a_lead_off_are_no_couplet(tmp_path, off_s, line):
    """Record 119's bigeminy cut after a PVC by a lead off, resuming just before the next PVC:
    the two are neighbours in the beat list, but a lead off however short hides whatever it
    held, so the report counts no couplet."""
    from train.data import load_record

    rec = load_record("119", FIXTURES)
    pvcs = rec.ann_samples[rec.ann_symbols == "V"]
    cut, resume = int(pvcs[4] + 0.35 * 360), int(pvcs[5] - 0.3 * 360)
    off = line(rec.signal[cut], rec.signal[resume], off_s * 360)
    x = np.concatenate([rec.signal[:cut], off, rec.signal[resume:]])
    path = tmp_path / "bigeminy_lead_off.edf"
    write_edf(path, [x], 360, ["MLII"])
    report = post_edf(small_pools_app(tmp_path).test_client(), path, "?include_beats=true").get_json()
    beats = report["beats"]
    after = int(np.searchsorted([b["time_s"] for b in beats], cut / 360))
    assert [b["type"] for b in beats[after - 1:after + 1]] == ["V", "V"]
    assert beats[after]["time_s"] - beats[after - 1]["time_s"] > off_s
    assert report["couplets"] == 0 and report["isolated_pvcs"] == report["ventricular_beats"]


@pytest.mark.parametrize("fs", [1024, 2048])
def test_a_recorder_rate_above_a_requests_1000_hz_gives_the_beats_of_360_hz(tmp_path, excerpts, edf_360, fs):
    # a polysomnograph's 1024 Hz, BioSemi's 2048: past what a request may send, not what a file holds
    path = tmp_path / f"five_{fs}.edf"
    write_edf(path, [resample(excerpts, 360, fs)], fs, ["ECG II"])
    client = small_pools_app(tmp_path).test_client()
    high, at_360 = (post_edf(client, p, "?include_beats=true") for p in (path, edf_360))
    assert high.status_code == 201, high.get_json()
    high, at_360 = high.get_json(), at_360.get_json()
    assert high["channel"]["sampling_rate"] == fs
    seconds = [np.array([b["sample"] for b in r["beats"]]) / rate for r, rate in ((high, fs), (at_360, 360))]
    assert len(seconds[0]) == len(seconds[1]) > 900
    moved = np.abs(seconds[0] - seconds[1])  # the lead went through two resamplings: a flat apex may move
    assert np.mean(moved <= 0.003) >= 0.99 and moved.max() <= 0.030
    assert [b["type"] for b in high["beats"]] == [b["type"] for b in at_360["beats"]]
    assert high["ventricular_beats"] == at_360["ventricular_beats"] > 100


@pytest.mark.parametrize("version", ["nv-pre-2", "nv-pre-3"])
def test_an_inverted_channel_is_turned_upright_in_chunks_only_for_the_versions_that_learned_it(
        tmp_path, edf_1000, version):
    # channel 2 is channel 1 negated; the day's beats decide its polarity, as a whole signal's do
    client = small_pools_app(tmp_path, version=version).test_client()
    inverted = post_edf(client, edf_1000, "?channel=2&include_beats=true").get_json()
    upright = post_edf(client, edf_1000, "?channel=1&include_beats=true").get_json()
    confidences = [[b["confidence"] for b in r["beats"]] for r in (inverted, upright)]
    assert [b["sample"] for b in inverted["beats"]] == [b["sample"] for b in upright["beats"]]
    assert np.allclose(*confidences, atol=2e-6) == (version in TURNED_UPRIGHT)
    assert [r["turned_upright"] for r in (inverted, upright)] == [version in TURNED_UPRIGHT, False]
    assert not any("point down" in w for w in inverted["warnings"])  # labelled V1: it may
    if version in TURNED_UPRIGHT:
        assert_same_beats(client, edf_1000, "2", inverted)


def test_report_fields_agree_with_the_beats(client, edf_360):
    r = post_edf(client, edf_360, "?include_beats=true")
    assert r.status_code == 201
    rep = r.get_json()
    for key in ("recording_id", "channel", "start_time", "duration_s", "total_beats", "normal_beats",
                "ventricular_beats", "pvc_burden_percent", "pvc_per_hour", "heart_rate_bpm", "couplets",
                "triplets", "ventricular_runs", "bigeminy_episodes", "trigeminy_episodes", "hourly",
                "unreadable_seconds", "model", "processing_time_ms", "warnings", "beats"):
        assert key in rep, key
    assert rep["start_time"] == "2026-01-05T08:30:00" and rep["duration_s"] == 780.0
    is_v = np.array([b["type"] == "V" for b in rep["beats"]])
    times = np.array([b["time_s"] for b in rep["beats"]])
    assert rep["ventricular_beats"] == is_v.sum() and rep["total_beats"] == len(is_v)
    assert rep["couplets"] == holter.run_counts(is_v)["couplets"] > 0
    assert rep["bigeminy_episodes"] == holter.episode_counts(is_v)["bigeminy_episodes"] > 0
    assert len(rep["ventricular_runs"]) == len(holter.ventricular_runs(is_v, times))
    assert rep["pvc_burden_percent"] == pytest.approx(100 * is_v.mean(), abs=1e-3)
    assert rep["pvc_per_hour"] == pytest.approx(is_v.sum() / (780 / 3600), abs=0.01)
    assert rep["hourly"] == [{"hour_start_s": 0.0, "beats": len(is_v), "ventricular_beats": int(is_v.sum()),
                              "unreadable_beats": 0, "heart_rate_mean": rep["heart_rate_bpm"]["mean"]}]
    assert 40 < rep["heart_rate_bpm"]["min"] <= rep["heart_rate_bpm"]["mean"] <= rep["heart_rate_bpm"]["max"] < 150
    assert rep["model"]["name"] and rep["unreadable_seconds"] == 0.0
    assert "beats" not in post_edf(client, edf_360).get_json()


def test_an_edf_plus_d_with_gaps_is_analysed_part_by_part(client, excerpts, edf_360, tmp_path):
    """Each continuous part gives the beats its own EDF+C gives, at its time in the recording;
    a part under 5 s is not analysed, and no couplet, run or RR interval spans a gap."""
    gapped = tmp_path / "gapped.edf"
    # records 0-9 missing (the recording starts 10 s later), 2 min, 2 s between PVCs, then a 3-s part
    without_records(edf_360, gapped, np.r_[0:10, 300:420, 481:483, 600:603, 606:620])
    rep = post_edf(client, gapped, "?include_beats=true").get_json()
    assert rep["start_time"] == "2026-01-05T08:30:10" and rep["duration_s"] == 770.0
    assert rep["gap_intervals_s"] == [[290.0, 410.0], [471.0, 473.0], [590.0, 593.0], [596.0, 610.0]]
    assert rep["gap_seconds"] == 139.0
    assert any("4 gap(s)" in w for w in rep["warnings"])
    assert any("3.0 s" in w and "not analysed" in w for w in rep["warnings"])
    expected, parts = [], []
    for i, (first, end) in enumerate(((10, 300), (420, 481), (483, 600), (620, 780))):
        alone = tmp_path / f"part_{first}.edf"
        write_edf(alone, [excerpts[first * 360:end * 360]], 360, ["MLII"])
        beats = post_edf(client, alone, "?include_beats=true").get_json()["beats"]
        expected += [(b["sample"] + (first - 10) * 360, b["type"]) for b in beats]
        parts += [i] * len(beats)
    assert [(b["sample"], b["type"]) for b in rep["beats"]] == expected
    is_v, times = np.array([t == "V" for _, t in expected]), np.array([b["time_s"] for b in rep["beats"]])
    def counts(part):
        return {**holter.run_counts(is_v, part), **holter.episode_counts(is_v, part),
                "heart_rate_bpm": {k: round(v, 1) for k, v in holter.heart_rate_summary(times, 770.0, part).items()}}

    assert counts(parts) != counts(None)  # the 2-s gap joins two PVCs, and an RR interval, if unseen
    assert {k: rep[k] for k in counts(parts)} == counts(parts)
    assert rep["pvc_per_hour"] == pytest.approx(is_v.sum() / ((770 - 139 - 3) / 3600), abs=0.01)


def test_pauses_are_the_reference_long_rr_intervals_and_none_where_the_lead_was_off(client, tmp_path):
    """Two minutes of record 232 (sick sinus syndrome, tests/data/mitdb-pauses): its 13 pauses of
    2 s or more, as its reference beats give them; with the lead off for 1 s inside the longest
    (a flat line), that pause is not one, its beats may have gone unseen."""
    from train.data import load_record

    rec = load_record("232", PAUSES_FIXTURES)
    want = holter.pauses(rec.ann_samples / 360.0)
    assert len(want) == 13
    path = tmp_path / "232.edf"
    write_edf(path, [rec.signal], 360, ["MLII"])
    rep = post_edf(client, path).get_json()
    got = np.array([[p["start_s"], p["start_s"] + p["duration_s"]] for p in rep["pauses"]])
    assert got.shape == want.shape and np.abs(got - want).max() < 0.05
    duration = want[:, 1] - want[:, 0]
    assert rep["long_pauses"] == np.sum(duration >= 3.0) == 4
    assert rep["longest_pause_s"] == pytest.approx(duration.max(), abs=0.05)

    off = rec.signal.copy()
    off[99 * 360:100 * 360] = 0.0  # inside the 5.7-s pause from 97.9 s
    write_edf(path, [off], 360, ["MLII"])
    rep = post_edf(client, path).get_json()
    assert rep["unreadable_intervals_s"] == [[99.0, 100.0]]
    got = np.array([[p["start_s"], p["start_s"] + p["duration_s"]] for p in rep["pauses"]])
    longest = np.argmax(duration)
    assert len(got) == 12 and np.abs(got - np.delete(want, longest, axis=0)).max() < 0.05


def test_two_beats_standing_out_of_a_lead_offs_noise_are_no_pause(client, tmp_path):
    """Record 232's 2 minutes, then 2 minutes of nstdb muscle noise alone (a lead off carrying it,
    0.2 mV RMS) in which two QRS complexes 2.5 s apart stand out of a quieter second or two, as
    detections in hours of noise do. They are detected, readable and consecutive, but the half
    minute each side of them is mostly unreadable: no pause, and 232's 13 are kept."""
    import wfdb

    from train.data import load_record

    rec = load_record("232", PAUSES_FIXTURES)
    ma = wfdb.rdrecord(str(FIXTURES.parent / "nstdb-noise" / "ma")).p_signal
    noise = np.tile(np.concatenate([ma[:, 0], ma[:, 1]]), 2)
    noise = 0.2 * (noise - noise.mean()) / noise.std()
    qrs = rec.signal[rec.ann_samples[5] - 90:rec.ann_samples[5] + 150]
    qrs = qrs - np.linspace(qrs[0], qrs[-1], len(qrs))  # no step at its ends
    first, second = len(noise) // 2, len(noise) // 2 + int(2.5 * 360)
    noise[first + 150:second - 90] *= 0.15  # the muscle rests between them
    for at in (first, second):
        noise[at - 90:at + 150] += qrs
    path = tmp_path / "232_noise.edf"
    write_edf(path, [np.concatenate([rec.signal, noise])], 360, ["MLII"])
    rep = post_edf(client, path, "?include_beats=true").get_json()

    t0 = (len(rec.signal) + first) / 360
    beats = [b for b in rep["beats"] if t0 - 0.1 < b["time_s"] < t0 + 2.6]
    assert [b["signal_quality"] != "unreadable" for b in beats] == [True, True, True]
    assert beats[2]["time_s"] - beats[1]["time_s"] > 2.0  # an RR interval of a pause, readable
    want = holter.pauses(rec.ann_samples / 360.0)
    got = np.array([[p["start_s"], p["start_s"] + p["duration_s"]] for p in rep["pauses"]])
    assert got.shape == want.shape == (13, 2) and np.abs(got - want).max() < 0.05


def test_the_first_detection_in_a_lead_offs_noise_ends_no_pause(client, tmp_path, excerpts):
    """The excerpts with 10 min of white noise (50 uV RMS: a lead off carrying the amplifier's own)
    from 500 s. The last beat before it and the first detection in the noise, 6 s later, are both
    judged readable (the detection's stretch holds the beats before it), but the detection stands
    under 12 dB out of the noise on its own (``ecg.holter.PAUSE_BEAT_DB``): no pause."""
    cut = 500 * 360
    noise = 0.05 * np.random.default_rng(1).standard_normal(600 * 360)
    path = tmp_path / "edge.edf"
    write_edf(path, [np.concatenate([excerpts[:cut], noise, excerpts[cut:]])], 360, ["MLII"])
    rep = post_edf(client, path, "?include_beats=true").get_json()

    t = np.array([b["time_s"] for b in rep["beats"]])
    readable = np.array([b["signal_quality"] != "unreadable" for b in rep["beats"]])
    last = np.flatnonzero(t < 500)[-1]  # the last beat before the lead off, and the next detection
    assert readable[last] and readable[last + 1] and 2.0 < t[last + 1] - t[last] < 10.0
    assert not [p for p in rep["pauses"] if 490 < p["start_s"] < 1100]


def test_a_long_rr_interval_whose_baseline_jumps_is_no_pause(client, tmp_path):
    """Record 232's pause from 48.9 s with a 2-mV baseline swing inside it (a lead disturbed and
    recovering, smooth enough not to be taken for a beat): it is left out, its neighbours stay."""
    path = tmp_path / "disturbed.edf"
    write_swung_232(path)
    rep = post_edf(client, path).get_json()
    starts = [round(p["start_s"], 1) for p in rep["pauses"]]
    assert len(starts) == 12 and 48.9 not in starts and {51.8, 54.4} <= set(starts)
    assert any("1 RR interval(s) of 2 s or more not counted as pauses" in w for w in rep["warnings"])


def test_csv_is_the_beat_table(client, edf_360):
    r = post_edf(client, edf_360, headers={"Accept": "text/csv"})
    assert r.status_code == 201 and r.mimetype == "text/csv"
    lines = r.get_data(as_text=True).splitlines()
    assert lines[0] == "time_s,sample,type,confidence"
    beats = post_edf(client, edf_360, "?include_beats=true").get_json()["beats"]
    assert len(lines) == len(beats) + 1
    assert lines[1] == f"{beats[0]['time_s']},{beats[0]['sample']},{beats[0]['type']},{beats[0]['confidence']}"


def test_without_a_channel_lead_ii_is_analysed_else_the_first_ecg_lead(client, excerpts, tmp_path):
    from service.edf import default_channel

    assert default_channel(["Resp", "ECG V1", "ECG II"]) == 2  # INCART, 12-lead files: lead I first
    assert default_channel(["V5", "MLII"]) == 1  # MIT-BIH record 114
    assert default_channel(["Resp", "EKG CM5", "ECG V1"]) == 1
    assert default_channel(["Resp", "Pleth"]) == 0
    x = excerpts[:360 * 60]
    path = tmp_path / "twelve.edf"
    write_edf(path, [-0.3 * x, x, 0.7 * x], 360, ["I", "II", "III"])
    r = post_edf(client, path)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["channel"] == {"index": 1, "label": "II", "sampling_rate": 360}
    assert not any("not among the leads" in w for w in r.get_json()["warnings"])


def test_a_form_upload_and_a_label_pick_the_channel(client, edf_1000):
    with open(edf_1000, "rb") as f:
        r = client.post(RECORDINGS + "?channel=ecg%20v1", data={"file": (f, "day.edf")},
                        content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["channel"]["index"] == 2
    # V1 draws a warning only from a model not trained on MIT-BIH's second leads
    trained = client.application.extensions["ecg_model"].model.trained_leads
    assert any("'ECG V1'" in w for w in r.get_json()["warnings"]) == ("V1" not in trained)


def test_uploads_are_removed_after_success_and_failure(tmp_path, edf_360):
    uploads = tmp_path / "uploads"
    client = create_app({"TESTING": True, "MODEL_DIR": str(MODEL_DIR), "LOG_LEVEL": "WARNING",
                         "RECORDING_TMP_DIR": str(uploads)}).test_client()
    assert post_edf(client, edf_360).status_code == 201
    assert client.post(RECORDINGS, data=b"0" * 300, content_type="application/octet-stream").status_code == 422
    assert list(uploads.iterdir()) == []


def test_start_up_removes_the_uploads_of_dead_workers_only(tmp_path):
    import subprocess

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = uploads / f"upload-{dead.pid}-{'a' * 32}.edf"
    live = uploads / f"upload-{__import__('os').getpid()}-{'b' * 32}.edf"
    other = uploads / "notes.txt"
    for p in (stale, live, other):
        p.write_bytes(b"x")
    create_app({"TESTING": True, "MODEL_DIR": str(MODEL_DIR), "LOG_LEVEL": "WARNING",
                "RECORDING_TMP_DIR": str(uploads)})
    assert not stale.exists() and live.exists() and other.exists()


def test_the_document_describes_the_endpoint(client):
    doc = client.get("/openapi.json").get_json()
    op = doc["paths"]["/api/v1/recordings/"]["post"]
    assert set(op["requestBody"]["content"]) == {"application/octet-stream", "multipart/form-data"}
    assert set(op["responses"]["201"]["content"]) == {"application/json", "text/csv"}
    assert {"channel", "include_beats"} <= {p["name"] for p in op["parameters"]}
    for status in ("400", "413", "415", "422", "503"):
        assert "detail" in str(doc["components"]["schemas"]["Error"]) and status in op["responses"]


def test_a_recording_in_processes_leaves_the_training_stack_unloaded(tmp_path, edf_360):
    import subprocess
    import sys

    from tests.service_helpers import ROOT
    from tests.test_service_imports import NOT_FOR_SERVING

    script = f"""
import sys
from pathlib import Path
import service
app = service.create_app({{"TESTING": True, "RECORDING_PROCESSES": 2, "RECORDING_TMP_DIR": {str(tmp_path)!r}}})
r = app.test_client().post("/api/v1/recordings", data=Path({str(edf_360)!r}).read_bytes(),
                           content_type="application/octet-stream")
assert r.status_code == 201, r.get_json()
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in {NOT_FOR_SERVING!r})))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "ECG_LOG_LEVEL": "WARNING"}, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == ""
