"""Smoke tests of the bench (python -m bench) with tiny counts.

They check that every part runs and reports well-formed, positive figures; they never
check speed (the targets are judged by the bench's own report, on a quiet machine).
"""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import http_load, inprocess, report
from bench.__main__ import main as bench_main
from bench.common import PROJECT_DIR, payload_10s
from tests.conftest import FIXTURES, TWO_LEADS


def positive(x):
    return isinstance(x, (int, float)) and x > 0


def test_staged_path_answers_like_the_service_and_times_every_stage():
    body, _ = payload_10s()
    r = inprocess.measure(body, 3, "10 s")
    assert r["beats"] == 14 and r["n_samples"] == 3600
    assert set(r["stages"]) == set(inprocess.STAGES)
    assert all(positive(s["median_ms"]) and s["n"] == 3 for s in r["stages"].values())
    assert positive(r["whole"]["median_ms"]) and r["whole"]["p99_ms"] >= r["whole"]["median_ms"]
    assert r["slowest_stage"] in inprocess.STAGES


def test_staged_path_turns_an_inverted_strip_upright_as_the_service_does():
    import orjson

    _, obj = payload_10s()
    body = orjson.dumps({**obj, "signal_data": [-v for v in obj["signal_data"]]})
    r = inprocess.measure(body, 1, "10 s, inverted")  # fails unless the answers are the same
    assert r["beats"] == 14


def test_quick_run_writes_results_json_and_table(tmp_path):
    bench_main(["--quick", "--skip", "tf", "http", "venvs", "--no-30min", "--out", str(tmp_path)])
    res = json.loads((tmp_path / "results.json").read_text())
    assert {"inprocess", "tensorflow", "http", "footprint", "targets", "machine_at_start"} <= set(res)
    assert positive(res["inprocess"]["10s"]["whole"]["median_ms"])
    assert res["inprocess"]["30min"] == {"skipped": "--no-30min"}
    assert set(res["targets"]) == set(report.TARGETS)
    t = res["targets"]["inprocess_10s_median_ms_project_venv"]
    assert positive(t["value"]) and t["met"] in (True, False)
    # --skip venvs: no serving-only venv, so its figure is not measured rather than borrowed
    assert res["targets"]["inprocess_10s_median_ms"]["met"] is None
    assert res["targets"]["http_c16_req_per_s"]["met"] is None  # skipped, so not measured
    assert res["inprocess"]["profile_10s_top"][0]["tottime_ms_per_request"] > 0
    md = (tmp_path / "results.md").read_text()
    assert "| target | measured | target | met |" in md and "| onnx |" in md


def test_targets_are_judged_on_the_right_side():
    r = {"inprocess": {"10s": {"whole": {"median_ms": 1.5}}, "30min": {"whole": {"median_ms": 700.0}}},
         "tensorflow": {"request_10s": {"onnx": {"median_ms": 2.0}, "keras_predict": {"median_ms": 60.0}}},
         "http": {"levels": [{"connections": 16, "req_per_s": 420.0, "p99_ms": 80.0, "errors": 0}],
                  "rss_workers_after_load_mb": [120.0, 151.0]},
         "footprint": {"api_over_tensorflow": 0.15},
         "interpreters": {"serving_venv": {"median_ms": 1.9}, "project_venv": {"median_ms": 2.1}}}
    t = report.evaluate_targets(r)
    assert t["inprocess_10s_median_ms"]["met"] is True and t["inprocess_10s_median_ms"]["value"] == 1.9
    assert t["inprocess_10s_median_ms_project_venv"]["value"] == 2.1  # 1b's, timed as the serving one
    del r["interpreters"]
    t = report.evaluate_targets(r)  # without 1b: part 1's figure, and the serving one not measured
    assert t["inprocess_10s_median_ms_project_venv"]["value"] == 1.5
    assert t["inprocess_10s_median_ms"]["met"] is None
    assert t["inprocess_30min_median_s"]["met"] is False and t["inprocess_30min_median_s"]["value"] == 0.7
    assert t["predict_over_onnx_10s"]["met"] is True and t["predict_over_onnx_10s"]["value"] == 30.0
    assert t["http_c16_req_per_s"]["met"] is True and t["http_c16_p99_ms"]["met"] is False
    assert t["http_c16_errors"]["met"] is True
    assert t["worker_rss_mb"]["met"] is False and t["venv_api_over_tf"]["met"] is True


def test_gunicorn_cold_start_load_and_accuracy_on_a_fixture(tmp_path):
    from bench import accuracy

    body, _ = payload_10s()
    with http_load.Server() as srv:
        cold = srv.wait_first_201(body)
        assert positive(cold)
        assert srv.worker_pids() and all(positive(p) for p in srv.worker_pids())
        if http_load.wrk_available():
            f = tmp_path / "body.json"
            f.write_bytes(body)
            lv = http_load.run_wrk(srv.port, 2, 1, f, server=srv)
            assert lv["requests"] > 0 and lv["errors"] == 0 and positive(lv["req_per_s"])
            assert lv["p99_ms"] >= lv["p50_ms"] > 0 and lv["generator_cpu_s"] >= 0
        acc = accuracy.measure(srv.port, FIXTURES, records=["119"])  # many V beats in 119
    assert acc["http_statuses"] == {"201": acc["strips"]} and acc["strips"] >= 10
    assert acc["V_matched"]["TP"] > 0 and 0 < acc["qrs"]["Se"] <= 1


def test_tf_path_without_the_run_times_as_many_networks_as_the_card_serves(monkeypatch, tmp_path):
    pytest.importorskip("tensorflow")
    from bench.tf_path import load_keras_model
    from train.evaluate import rr_width
    from train.model import ensemble_members

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'empty.db'}")  # the run is not there
    model, source = load_keras_model()
    card = json.loads((PROJECT_DIR / "models" / "ecg_nv_cnn" / "model.json").read_text())
    assert source["kind"] == "train.model.build_model"
    assert len(ensemble_members(model)) == source["members"] == card["training"]["members"] > 1
    assert rr_width(model) == card["inputs"]["rr"][-1]


def test_tf_path_runs_in_its_own_process():
    pytest.importorskip("tensorflow")
    r = subprocess.run([sys.executable, "-m", "bench.tf_path", "--n10", "2", "--n30", "0", "--model-n", "2"],
                       cwd=PROJECT_DIR, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["model_source"]["kind"] in ("mlflow", "train.model.build_model")
    for key in ("onnx", "keras_predict", "keras_call"):
        assert positive(out["request_10s"][key]["median_ms"])
        assert positive(out["model_only_10s"][key]["median_ms"])
    assert positive(out["rss_keras_process_mb"])
    assert "skipped" in out["request_30min"]
    assert positive(out["request_10s"]["alternated_per_call"]["onnx"]["median_ms"])
    assert out["request_10s"]["settle_calls"] == out["model_only_10s"]["settle_calls"] == 5


def test_blocked_timing_keeps_n_warm_calls_of_each_path():
    import time

    from bench.common import blocked

    last = []

    def path(name):
        def call():  # slow when another path ran just before: a cold cache, exaggerated
            if last and last[-1] != name:
                time.sleep(0.02)
            last.append(name)
        return call

    out = blocked({"a": path("a"), "b": path("b")}, 12, block=5, settle=1)
    assert {k: len(v) for k, v in out.items()} == {"a": 12, "b": 12}
    assert max(max(v) for v in out.values()) < 0.01  # the slow first call of each block is dropped
    assert last[:6] == ["a"] * 5 + ["b"]  # in blocks, in turn


def test_a_load_level_reports_the_median_of_its_runs_and_every_error(monkeypatch):
    from bench import http_load

    draws = iter([(300.0, 90.0, 0), (650.0, 45.0, 1), (600.0, 55.0, 0)])

    def fake_run(port, connections, seconds, body_path=None, server=None):
        rps, p99, errors = next(draws)
        return {"connections": connections, "req_per_s": rps, "p50_ms": p99 / 2, "p90_ms": p99, "p99_ms": p99,
                "mean_ms": p99 / 2, "max_ms": 2 * p99, "errors": errors, "requests": int(rps * seconds),
                "generator_cpu_share_of_one_core": 0.02, "generator_cpu_us_per_request": 50.0}

    monkeypatch.setattr(http_load, "run_wrk", fake_run)
    level = http_load.run_level(1, 16, 10, None, None, 3)
    assert level["req_per_s"] == 600.0 and level["p99_ms"] == 55.0  # medians, not the best run
    assert level["errors"] == 1 and level["max_ms"] == 180.0  # any run's error counts
    assert [r["req_per_s"] for r in level["runs"]] == [300.0, 650.0, 600.0]


def test_thread_configurations_run_the_served_graphs():
    # bench.ort_threads compares ONNX Runtime settings: each must compute what the service does
    import numpy as np

    from bench import ort_threads
    from ecg.pipeline import extract_beats
    from service import model as service_model
    from tests.service_helpers import MODEL_DIR

    served = service_model.load_model(MODEL_DIR)
    _, obj = payload_10s()
    beats = extract_beats(np.array(obj["signal_data"]), obj["sampling_rate"])
    want = served.p_v(beats.windows, beats.features)
    for cfg in ort_threads.CONFIGS.values():
        model = service_model.load_model(MODEL_DIR, session_options=ort_threads.session_options(*cfg))
        assert (model.rest is None) == (served.rest is None)
        assert np.allclose(model.p_v(beats.windows, beats.features), want, atol=1e-6)


def test_interpreter_comparison_times_each_venv_in_its_own_processes():
    # this venv stands in for the serving-only one: the point is the plumbing, not the figures
    from bench import interpreters

    out = interpreters.measure(Path(sys.executable).parent.parent, rounds=1, n=3, warmup=1)
    for key in ("serving_venv", "project_venv"):
        assert out[key]["median_ms"] > 0 and len(out[key]["run_medians_ms"]) == 1
        assert out[key]["python"] == sys.version.split()[0]
    assert out["project_over_serving"] > 0
    # what it was built on comes from the child, not from what the bench would build it on
    assert out["serving_interpreter"] == interpreters.describe(sys._base_executable)


def test_the_serving_venv_falls_back_to_the_benchs_interpreter(monkeypatch):
    # Debian's python3.11 without its python3.11-venv package cannot make a venv
    from bench import footprint

    tried = []

    def build(path, requirements, python=None):
        tried.append(python)
        return (False, "ensurepip is not available") if python == "/no/such/python3.11" else (True, "built")

    monkeypatch.setattr(footprint, "build_venv", build)
    monkeypatch.setenv("BENCH_SERVING_PYTHON", "/no/such/python3.11")
    assert footprint.build_api_venv() == (True, "built")
    assert tried == ["/no/such/python3.11", getattr(sys, "_base_executable", sys.executable)]


def test_detector_noise_scores_the_clean_fixture_and_refuses_unknown_conditions(tmp_path, capsys):
    import json

    from bench import detector_noise

    assert detector_noise.main(["--data", str(FIXTURES), "--conditions", "no such"]) == 2
    assert "unknown condition" in capsys.readouterr().err
    out = tmp_path / "d.json"
    assert detector_noise.main(["--data", str(FIXTURES), "--records", "119", "233", "--conditions", "clean",
                                "--out", str(out)]) == 0
    gross = json.loads(out.read_text())["conditions"]["clean"]["gross"]
    assert gross["Se"] > 0.99 and gross["PPV"] > 0.99


def test_detector_noise_scores_slow_rhythms_against_their_own_beats(tmp_path):
    """The slow conditions score the detector against the spread beats, not the record's own
    positions (which no longer hold beats: Se would be near 0), losing none but a window cut by
    the record's ends."""
    import json

    from bench import detector_noise
    from train.data import load_record

    out = tmp_path / "d.json"
    assert detector_noise.main(["--data", str(FIXTURES), "--records", "100", "--conditions", "slow 30 bpm",
                                "--out", str(out)]) == 0
    gross = json.loads(out.read_text())["conditions"]["slow 30 bpm"]["gross"]
    beats = len(load_record("100", FIXTURES).ann_samples)
    assert beats - 2 <= gross["TP"] + gross["FN"] <= beats
    assert gross["Se"] > 0.99 and gross["PPV"] > 0.99


def test_a_two_to_one_block_removes_every_second_qrs_and_keeps_its_p_wave():
    """record 100 (sinus rhythm) as a 2:1 block: about half its beats are gone from the signal
    and from the reference; their P waves, and everything outside the blocked stretches, stay."""
    from bench import robustness
    from train.data import load_record

    rec = load_record("100", FIXTURES)
    blocked_rec = robustness.two_to_one_block(rec)
    x, beats = blocked_rec.signal, blocked_rec.ann_samples
    blocked = np.setdiff1d(rec.ann_samples, beats)
    assert 0.4 < len(blocked) / len(rec.ann_samples) < 0.55 and np.isin(beats, rec.ann_samples).all()
    assert np.array_equal(blocked_rec.ann_symbols, rec.ann_symbols[np.isin(rec.ann_samples, beats)])
    qrs = int(0.05 * rec.fs)
    for r in blocked:
        assert np.ptp(x[r - qrs:r + qrs]) < 0.25 * np.ptp(rec.signal[r - qrs:r + qrs])  # the QRS is gone
        p_wave = slice(r - int(0.25 * rec.fs), r - int(robustness.BLOCKED_FROM_S * rec.fs))
        assert np.array_equal(x[p_wave], rec.signal[p_wave])
    for r in beats[1:-1]:  # conducted beats are untouched
        assert np.array_equal(x[r - qrs:r + qrs], rec.signal[r - qrs:r + qrs])


def test_detector_noise_scores_the_two_to_one_block_against_the_beats_left(tmp_path):
    import json

    from bench import detector_noise

    out = tmp_path / "d.json"
    assert detector_noise.main(["--data", str(FIXTURES), "--records", "100", "--conditions", "clean",
                                detector_noise.BLOCK_2TO1, "--out", str(out)]) == 0
    report = json.loads(out.read_text())["conditions"]
    clean, block = report["clean"]["gross"], report[detector_noise.BLOCK_2TO1]["gross"]
    assert block["TP"] + block["FN"] < 0.6 * (clean["TP"] + clean["FN"])  # scored without the blocked beats
    assert block["Se"] > 0.99


def test_a_fast_rhythm_keeps_each_beats_qrs_at_an_even_rr():
    """record 119 (sinus rhythm and PVCs) at 210 bpm: the beats come every 60/210 s, each
    one's QRS as recorded; scored by the CLI against those beats, not the record's."""
    from bench import detector_noise
    from train.data import load_record

    rec = load_record("119", FIXTURES)
    x, beats = detector_noise.fast_rhythm(rec.signal, rec.ann_samples, rec.excluded, rec.fs, 210)
    rr = int(round(60 / 210 * rec.fs))
    assert len(beats) >= len(rec.ann_samples) - 2 and np.all(np.diff(beats) == rr)
    qrs = int(0.05 * rec.fs)
    for new, old in zip(beats[1:-1], rec.ann_samples[1:]):
        assert np.array_equal(x[new - qrs:new + qrs], rec.signal[old - qrs:old + qrs])
    assert len(x) < 0.5 * len(rec.signal)


def test_an_irregular_fast_rhythm_draws_its_rrs_within_the_spread():
    from bench import detector_noise
    from train.data import load_record

    rec = load_record("119", FIXTURES)
    args = (rec.signal, rec.ann_samples, rec.excluded, rec.fs, 170, 0.3)
    x, beats = detector_noise.fast_rhythm(*args, seed=1)
    rr = np.diff(beats) / (60 / 170 * rec.fs)
    assert rr.min() >= 0.69 and rr.max() <= 1.31 and rr.std() > 0.1  # uniform within +-30 %
    again, _ = detector_noise.fast_rhythm(*args, seed=1)
    other, _ = detector_noise.fast_rhythm(*args, seed=2)
    assert np.array_equal(x, again) and not np.array_equal(x[:len(other)], other[:len(x)])
    qrs = int(0.05 * rec.fs)
    for new, old in zip(beats[1:-1], rec.ann_samples[1:]):
        assert np.array_equal(x[new - qrs:new + qrs], rec.signal[old - qrs:old + qrs])


def test_detector_noise_scores_a_fast_rhythm_against_its_own_beats(tmp_path):
    import json

    from bench import detector_noise

    out = tmp_path / "d.json"
    assert detector_noise.main(["--data", str(FIXTURES), "--records", "119", "--conditions", "clean",
                                "fast 210 bpm", "fast 170 bpm irregular", "--out", str(out)]) == 0
    report = json.loads(out.read_text())["conditions"]
    clean = report["clean"]["gross"]
    for name in ("fast 210 bpm", "fast 170 bpm irregular"):
        fast = report[name]["gross"]
        assert abs((fast["TP"] + fast["FN"]) - (clean["TP"] + clean["FN"])) <= 2
        assert fast["Se"] > 0.95 and fast["PPV"] > 0.99


def test_a_slow_rhythm_spreads_the_records_own_beats_keeping_their_timing_in_proportion(record_119):
    """record 119 (bigeminy) at 30 bpm: each beat's P-QRS-T as recorded at its new time, every
    RR scaled alike (a PVC's prematurity and pause kept), straight lines between the windows."""
    from bench import robustness

    rec = record_119
    slow = robustness.slow_rhythm(rec, 30)
    kept = rec.ann_samples[:-1]  # the excerpt ends 39 samples after its last beat, inside its window
    assert np.array_equal(slow.ann_symbols, rec.ann_symbols[:-1]) and len(slow.excluded) == 0
    new_rr, old_rr = np.diff(slow.ann_samples), np.diff(kept)
    assert np.median(new_rr) == pytest.approx(2.0 * rec.fs, abs=1)
    assert np.allclose(new_rr / old_rr, np.median(new_rr) / np.median(old_rr), atol=0.01)
    qrs = int(0.1 * rec.fs)
    for new, old in zip(slow.ann_samples, kept):
        assert np.array_equal(slow.signal[new - qrs:new + qrs], rec.signal[old - qrs:old + qrs])
    between = slow.signal[slow.ann_samples[10] + int(0.6 * rec.fs):slow.ann_samples[11] - int(0.4 * rec.fs)]
    assert len(between) > rec.fs // 2 and np.allclose(np.diff(between, 2), 0.0, atol=1e-9)  # a straight line
    faster = robustness.slow_rhythm(rec, 200)  # a rhythm already slower than asked keeps its rate
    assert np.array_equal(np.diff(faster.ann_samples), old_rr)


def test_robustness_conditions_corrupt_the_signal_as_named(record_119):
    from bench import robustness

    by_name = {c.name: c for c in robustness.conditions()}
    clean, _ = robustness.corrupt(record_119, by_name["clean"], None, 0)
    inverted, _ = robustness.corrupt(record_119, by_name["inverted"], None, 0)
    assert np.array_equal(inverted, -clean)
    hum, fs = robustness.corrupt(record_119, by_name["hum 0.3 mV"], None, 0)
    spectrum = np.abs(np.fft.rfft(hum - clean)) * 2 / len(clean)
    freqs = np.fft.rfftfreq(len(clean), 1 / fs)
    assert spectrum[np.argmin(np.abs(freqs - 60))] == pytest.approx(0.3, rel=0.02)
    hum, fs = robustness.corrupt(record_119, by_name["hum 50 Hz 1 mV"], None, 0)
    spectrum = np.abs(np.fft.rfft(hum - clean)) * 2 / len(clean)
    assert spectrum[np.argmin(np.abs(freqs - 50))] == pytest.approx(1.0, rel=0.02)
    assert spectrum[np.argmin(np.abs(freqs - 150))] < 0.01  # no harmonic
    micro, _ = robustness.corrupt(record_119, by_name["uV, offset 300 mV"], None, 0)
    assert np.allclose(micro, (clean + 300.0) * 1000.0)
    clipped, _ = robustness.corrupt(record_119, by_name["clipped 1.5 mV"], None, 0)
    within = np.abs(clean - np.median(clean)) <= 1.5
    assert np.ptp(clipped) <= 3.0 + 1e-9 < np.ptp(clean) and np.array_equal(clipped == clean, within)
    resampled, fs = robustness.corrupt(record_119, by_name["fs128"], None, 0)
    assert fs == 128 and len(resampled) == pytest.approx(len(clean) * 128 / 360, abs=2)
    stepped, _ = robustness.corrupt(record_119, by_name["ADC step 50 uV"], None, 0)
    assert np.allclose(stepped / 0.05, np.round(stepped / 0.05)) and np.abs(stepped - clean).max() <= 0.025 + 1e-9
    assert len(np.unique(stepped)) < len(np.unique(clean))
    # breathing: the lead scaled about its median by 1 +- 0.3 over each 4-s breath, its offset kept
    swung, _ = robustness.corrupt(record_119, by_name["breathing 30 %"], None, 0)
    centre = np.median(clean)
    away = np.abs(clean - centre) > 0.2  # the QRS complexes, where the ratio is well defined
    breath = 1.0 + 0.3 * np.sin(2 * np.pi * np.arange(len(clean)) / 360 / 4.0)
    assert np.allclose((swung - centre)[away] / (clean - centre)[away], breath[away])
    assert np.median(swung) == pytest.approx(centre, abs=0.01)
    # nst's protocol: clean for 5 min, then noisy and clean in 2-min turns, with no step at a switch
    mask = robustness.noisy_mask(360 * 600, 360)
    assert not mask[:300 * 360].any() and mask[300 * 360:420 * 360].all() and not mask[420 * 360:540 * 360].any()


def test_the_held_out_pulses_are_isolated_beat_like_humps_at_the_nst_snr(record_119):
    from bench import robustness
    from train import augment

    fs = 360
    y = robustness.pulse_artefacts(fs * 120, fs, np.random.default_rng(0))
    assert np.sqrt(np.mean(y ** 2)) == pytest.approx(1.0)
    assert np.array_equal(y, robustness.pulse_artefacts(fs * 120, fs, np.random.default_rng(0)))
    # about one pulse a second: the 67-ms blocks whose slope stands out of the walk's come in
    # separate groups, one per pulse but for the smallest (log-normal sizes): some 40-160 in 2 min
    slope = np.abs(np.diff(y))[: fs * 120 - 24].reshape(-1, 24).max(axis=1)
    loud = slope > 5 * np.median(slope)
    assert 40 < np.count_nonzero(np.diff(loud.astype(int)) == 1) < 160
    # the report's draw: per record and channel, and no noise kind training draws from
    a = robustness.noise_signal("pulses", fs * 60, "119", 0, None)
    assert np.array_equal(a, robustness.noise_signal("pulses", fs * 60, "119", 0, None))
    assert not np.array_equal(a, robustness.noise_signal("pulses", fs * 60, "119", 1, None))
    assert "pulses" not in augment.NOISE_KINDS
    cond = {c.name: c for c in robustness.conditions()}["pulses +6 dB"]
    x = np.tile(record_119.signal, 4)[: fs * 420]  # the excerpt repeated past nst's 5 clean minutes
    beats = np.concatenate([record_119.ann_samples + k * len(record_119.signal) for k in range(4)])
    rec = dataclasses.replace(record_119, signal=x, ann_samples=beats[beats < len(x)])
    noisy, _ = robustness.corrupt(rec, cond, None, 0)
    added = noisy - x
    assert np.ptp(added[: fs * 300]) < 1e-9 < np.ptp(added[fs * 300:])
    pp = augment.qrs_amplitude(x, rec.ann_samples, fs)
    assert 10 * np.log10(pp ** 2 / 8 / augment.noise_power(added[fs * 300:], fs)) == pytest.approx(6.0, abs=0.3)


def test_a_virtual_lead_condition_sends_a_combination_of_the_two_leads():
    from bench import robustness
    from train.data import MIXED_LEAD, OTHER_LEAD, load_record

    mlii, v1 = (load_record("208", TWO_LEADS, lead=lead).signal for lead in ("MLII", OTHER_LEAD))
    by_name = {c.name: c for c in robustness.conditions()}
    both = load_record("208", TWO_LEADS, lead=MIXED_LEAD)
    for name, sign in (("virtual 45°", 1), ("virtual 135°", -1)):
        x, fs = robustness.corrupt(both, by_name[name], None, 0)
        assert fs == 360 and np.allclose(x, (sign * mlii + v1) / np.sqrt(2))


def test_robustness_sweeps_virtual_leads_by_angle(tmp_path):
    """``--angles``: 0° is MLII as sent, 90° the other lead, and a lead and its reverse are alike."""
    import json

    from bench import robustness

    common = ["--data", TWO_LEADS, "--records", "208"]  # no noise condition: no noise records needed
    for args, out in ((["--angles", "0", "90", "270"], "angles.json"), (["--only", "clean", "lead1"], "named.json")):
        assert robustness.main([*map(str, common), *args, "--out", str(tmp_path / out)]) == 0
    angles = json.loads((tmp_path / "angles.json").read_text())["conditions"]
    named = json.loads((tmp_path / "named.json").read_text())["conditions"]
    assert list(angles) == ["virtual 0°", "virtual 90°", "virtual 270°"]
    assert angles["virtual 0°"] == named["clean"] and angles["virtual 90°"] == named["lead1"]
    assert angles["virtual 270°"] == angles["virtual 90°"]  # turned upright, the reverse is the same lead
    # each record's counts are kept beside the totals (one record here: they are the totals)
    for mode in ("whole", "strips"):
        cell = named["clean"][mode]
        assert list(cell["records"]) == ["208"]
        assert {k: cell["records"]["208"][k] for k in ("V_TP", "V_FP", "V_FN")} == \
            {k: cell["all"][k] for k in ("V_TP", "V_FP", "V_FN")}


def _report(cells):
    """A report as bench.robustness writes it: ``cells`` {condition: {mode: (f1, pvcs, false_v, records)}},
    ``records`` {record: (pvcs, false_v)} or None."""
    def counts(f1, pvcs, false_v, records):
        out = {"all": {"v_f1": f1, "V_TP": pvcs, "false_v_rate": false_v / 1000, "ref_beats": 1000}}
        if records is not None:
            out["records"] = {r: {"V_TP": p, "false_v": f} for r, (p, f) in records.items()}
        return out
    return {"conditions": {name: {mode: counts(*c) for mode, c in modes.items()} for name, modes in cells.items()}}


def test_compare_reports_each_cells_change_and_the_records_that_made_it(tmp_path, capsys):
    from bench import compare

    before = _report({"clean": {"whole": (0.90, 100, 10, {"a": (60, 4), "b": (40, 6)}),
                                "strips": (0.80, 90, 20, None)},
                      "only before": {"whole": (0.5, 1, 1, None), "strips": (0.5, 1, 1, None)}})
    after = _report({"clean": {"whole": (0.92, 103, 12, {"a": (63, 4), "b": (40, 8)}),
                               "strips": (0.79, 90, 21, None)}})
    paths = []
    for name, rep in (("before.json", before), ("after.json", after)):
        paths.append(tmp_path / name)
        paths[-1].write_text(json.dumps(rep))
    assert compare.main([*map(str, paths), "--records"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("clean") and "0.9000 -> 0.9200 (+0.0200), PVCs +3, false V +2" in out[0]
    assert out[1:3] == ["    a: PVCs +3, false V +0", "    b: PVCs +0, false V +2"]
    assert "(-0.0100), PVCs +0, false V +1" in out[3]  # strips: no record's counts kept, none listed
    assert out[4] == "whole: 1 conditions, F1 of V mean +0.02000, lowest +0.0200, 1 up, 0 down; PVCs +3, false V +2"
    assert out[5].startswith("strips: 1 conditions, F1 of V mean -0.01000") and "0 up, 1 down" in out[5]
    assert len(out) == 6  # the condition only one report holds is not compared
    # a missing or malformed report: one line on stderr, exit 2
    (tmp_path / "bad.json").write_text(json.dumps({"conditions": {"clean": {"whole": {}}}}))
    for bad in (tmp_path / "missing.json", tmp_path / "bad.json"):
        assert compare.main([str(paths[0]), str(bad)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("compare: ") and err.count("\n") == 1


def test_robustness_block_condition_scores_the_served_path_against_the_beats_left(tmp_path):
    """``block 2:1`` and ``lead1, block 2:1``: record 119's two leads with every second normal beat
    blocked, sent to the service and scored against the conducted beats only, so the blocked
    P waves it takes for beats count as false detections, not as the blocked beats found."""
    import json

    from bench import robustness
    from train.data import load_record

    out = tmp_path / "block.json"
    assert robustness.main(["--data", str(TWO_LEADS), "--records", "119", "--only", "clean", "block 2:1",
                            "lead1, block 2:1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())["conditions"]
    rec = load_record("119", TWO_LEADS, lead="MLII")
    left = len(robustness.two_to_one_block(rec).ann_samples)
    assert left <= len(rec.ann_samples) - 10
    for name in ("block 2:1", "lead1, block 2:1"):
        whole = report[name]["whole"]["all"]
        assert whole["ref_beats"] < report["clean"]["whole"]["all"]["ref_beats"]
        assert whole["ref_beats"] == left
        assert whole["qrs_se"] > 0.95


def test_robustness_sends_strips_of_the_length_asked(record_119):
    """``--strip-seconds``: a strip as long as the signal is the whole signal; 10-s strips are not."""
    from bench import robustness
    from service.model import load_model
    from tests.service_helpers import MODEL_DIR

    model = load_model(MODEL_DIR)
    x, fs = record_119.signal, record_119.fs
    whole = robustness.request(model, x, fs, "MLII", "whole")
    as_one = robustness.request(model, x, fs, "MLII", "strips", strip_s=len(x) / fs)
    in_ten = robustness.request(model, x, fs, "MLII", "strips")
    assert np.array_equal(as_one[0], whole[0]) and np.array_equal(as_one[1], whole[1])
    assert not (np.array_equal(in_ten[0], whole[0]) and np.array_equal(in_ten[1], whole[1]))


def test_holter_bench_writes_a_lead_off_and_scores_the_day_around_it(tmp_path):
    """``bench.holter`` section 4 on record 119's excerpt: the lead off is flat, hum, white noise
    or a random walk held within the amplifier's rails as asked, the signal around it is the
    day's, and its figures count the detections inside it but judge V calls outside it only."""
    from bench.edf_files import write_edf
    from bench.holter import lead_off_figures
    from bench.holter_data import RAIL_MV, build_lead_off
    from service.edf import open_channel
    from train.data import load_record

    rec = load_record("119", FIXTURES)
    day = tmp_path / "day.edf"
    write_edf(day, [rec.signal], 360, ["ECG MLII"])
    lo, hi = 60 * 360, 120 * 360
    for hum_mv, noise_mv in ((0.0, 0.0), (0.5, 0.0), (0.0, 0.05)):
        path = tmp_path / f"lead_off_{hum_mv}_{noise_mv}.edf"
        build_lead_off(day, path, 60.0, 120.0, hum_mv=hum_mv, noise_mv=noise_mv)
        x = open_channel(path).read(0, len(rec.signal))
        assert np.allclose(x[:lo], rec.signal[:lo], atol=0.01) and np.allclose(x[hi:], rec.signal[hi:], atol=0.01)
        if noise_mv:
            assert np.std(x[lo:hi]) == pytest.approx(noise_mv, rel=0.05) and abs(np.mean(x[lo:hi])) < 0.005
        else:
            assert abs(np.ptp(x[lo:hi]) - 2 * hum_mv) < 0.02
    path = tmp_path / "lead_off_drift.edf"  # a random walk driven into the amplifier's rails
    build_lead_off(day, path, 60.0, 120.0, drift_mv=2.0)
    x = open_channel(path).read(0, len(rec.signal))
    assert np.allclose(x[hi:], rec.signal[hi:], atol=0.01) and np.abs(x[lo:hi]).max() <= RAIL_MV + 0.01
    assert np.mean(np.abs(x[lo:hi]) > RAIL_MV - 0.01) > 0.1 and np.ptp(x[lo:hi]) > RAIL_MV

    ref = {"samples": rec.ann_samples, "classes": rec.ann_classes, "excluded": np.zeros((0, 2), np.int64)}
    outside = (rec.ann_samples < lo) | (rec.ann_samples >= hi)
    phantoms = np.arange(lo + 180, hi, 720)  # called V: false V if the lead off were judged
    beats = [{"sample": int(s), "type": str(c)} for s, c in zip(rec.ann_samples[outside], rec.ann_classes[outside])]
    beats += [{"sample": int(s), "type": "V"} for s in phantoms]
    report = {"beats": sorted(beats, key=lambda b: b["sample"]), "total_beats": len(beats), "unreadable_seconds": 60.0,
              "heart_rate_bpm": {"mean": 80.0, "max": 90.0}, "pvc_per_hour": 10.0, "pauses": []}
    got = lead_off_figures(report, ref, 60.0, 120.0)
    assert got["detections_inside"] == got["v_inside"] == len(phantoms) == 30
    assert got["v_outside"] == {"Se": 1.0, "PPV": 1.0}


def test_out_of_fold_scores_each_ds1_record_with_the_member_that_held_it_out(record_119):
    from bench.out_of_fold import HeldOutMember
    from ecg.pipeline import extract_beats
    from service.model import load_model

    model_dir = PROJECT_DIR / "models" / "ecg_nv_cnn"
    served = load_model(str(model_dir))
    held_out = HeldOutMember(served, model_dir)
    beats = extract_beats(record_119.signal[:360 * 60], 360, version=served.preprocessing_version)
    members = held_out.members_p_v(beats.windows, beats.features)
    # the outputs found in the graph are the members the served model averages
    assert members.shape == (len(beats), len(served.card["data_split"]["folds"]))
    assert np.allclose(members.mean(axis=1), served.p_v(beats.windows, beats.features), atol=1e-6)
    fold = next(k for k, f in enumerate(served.card["data_split"]["folds"]) if "119" in f)
    assert np.array_equal(held_out.for_record("119").p_v(beats.windows, beats.features), members[:, fold])
    assert held_out.threshold == served.threshold  # all else is the served card's
    with pytest.raises(ValueError, match="none of the card's DS1 folds"):
        held_out.for_record("100")  # a DS2 record: every member is out of its fold, none held it out


def test_out_of_fold_writes_its_report_and_refuses_what_it_cannot_score(tmp_path, capsys):
    from bench import out_of_fold

    out = tmp_path / "oof.json"
    assert out_of_fold.main(["--data", str(FIXTURES), "--records", "119", "208", "--only", "clean",
                             "--angles", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    whole = report["conditions"]["clean"]["whole"]["all"]
    assert whole["qrs_se"] > 0.99 and whole["V_TP"] > 100 and 0 < whole["v_f1"] <= 1
    assert out.with_suffix(".md").read_text().startswith("# Out of fold: 119 208 through the served model")
    capsys.readouterr()  # the run's progress lines
    for argv, said in ((["--records", "100"], "none of the card's DS1 folds"),
                       (["--only", "no such"], "unknown condition")):
        assert out_of_fold.main(["--data", str(FIXTURES), *argv, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1, err


def test_out_of_fold_secant_steps_toward_the_false_v_asked_and_never_repeats_a_flat_pass():
    from bench.out_of_fold import MATCH_FIRST_STEP, MATCH_MAX_STEP, next_shift

    assert next_shift([(0.0, 100)], 300) == MATCH_FIRST_STEP and next_shift([(0.0, 100)], 30) == -MATCH_FIRST_STEP
    # false V growing as exp(shift): one secant step from two passes lands on log(3)
    tried = [(0.0, 100), (0.3, 100 * np.exp(0.3))]
    assert abs(next_shift(tried, 300) - np.log(3)) < 0.01
    assert next_shift([(0.0, 100), (0.3, 100)], 300) == 0.6  # flat: onward, not back to 0.3
    assert next_shift([(0.0, 100), (0.01, 101)], 10_000) == 0.01 + MATCH_MAX_STEP


def test_out_of_fold_matches_another_reports_false_v_by_moving_the_v_logits(tmp_path, capsys):
    from bench import out_of_fold

    def run(*argv):
        out = tmp_path / f"oof{len(list(tmp_path.glob('*.json')))}.json"
        assert out_of_fold.main(["--data", str(FIXTURES), "--records", "119", "208", "--only", "clean",
                                 "--angles", *argv, "--out", str(out)]) == 0
        return json.loads(out.read_text()), out

    as_served, _ = run()
    raised, raised_path = run("--logit-shift=1.5")
    assert raised["logit_shift"] == 1.5 and raised["title"] == "Out of fold, V logits +1.500"
    assert out_of_fold.false_v(raised) > out_of_fold.false_v(as_served)  # higher V logits call more V
    matched, _ = run("--match-false-v", str(raised_path), "--records", "119")  # the reference's records win
    target = out_of_fold.false_v(raised)
    assert matched["matched_false_v"] == target and matched["false_v"] == out_of_fold.false_v(matched)
    assert abs(matched["false_v"] - target) <= max(1, out_of_fold.MATCH_TOLERANCE * target)
    assert len(matched["passes"]) > 1 and matched["passes"][0][0] == 0.0 and matched["logit_shift"] > 0
    assert matched["records"] == ["119", "208"]
    capsys.readouterr()
    (tmp_path / "not_a_report.json").write_text('{"title": "something else"}')
    assert out_of_fold.main(["--data", str(FIXTURES), "--match-false-v", str(tmp_path / "not_a_report.json"),
                             "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "not a report of bench.out_of_fold" in err and err.count("\n") == 1, err


def test_st_deviation_displaces_conducted_beats_only_from_their_j_point():
    """record 119 (bigeminy): every N beat's ST segment reaches the displacement, V beats and
    QRS complexes are left as they are."""
    from bench import st_deviation
    from train.data import load_record

    rec = load_record("119", FIXTURES)
    shift = st_deviation.st_displacement(rec.ann_samples, rec.ann_classes, rec.fs, len(rec.signal), -0.3)
    j = int(st_deviation.J_POINT_S * rec.fs)
    plateau = j + int(st_deviation.RISE_S * rec.fs) + 1
    for r, cls in zip(rec.ann_samples[1:-1], rec.ann_classes[1:-1]):
        assert not shift[r - j:r + j].any()  # the QRS itself is never moved
        if cls == "V":
            assert not shift[r:r + int(0.3 * rec.fs)].any()
        elif cls == "N":
            assert shift[r + plateau] == pytest.approx(-0.3)
    assert shift.min() == pytest.approx(-0.3) and shift.max() == 0.0


def test_st_deviation_scores_each_condition_and_its_zero_as_the_clean_report(tmp_path):
    from bench import robustness, st_deviation
    from bench.common import log
    from service.model import load_model

    out = tmp_path / "st.json"
    assert st_deviation.main(["--data", str(FIXTURES), "--records", "119", "--out", str(out)]) == 0
    conditions = json.loads(out.read_text())["conditions"]
    assert len(conditions) == len(st_deviation.CONDITIONS)
    clean = robustness.run_condition(load_model(str(PROJECT_DIR / "models" / "ecg_nv_cnn")),
                                     robustness.Condition("clean"), ["119"], FIXTURES, {}, log)
    for mode in robustness.MODES:
        zero, ref = conditions["st +0.0 mV"][mode]["all"], clean[mode]["all"]
        assert (zero["V_TP"], zero["V_FP"], zero["qrs_se"]) == (ref["V_TP"], ref["V_FP"], ref["qrs_se"])
        assert zero["V_TP"] > 0


def test_st_deviation_refuses_a_missing_record_on_one_line(capsys):
    from bench import st_deviation

    for argv in (["--records", "999"], ["--out-of-fold", "--records", "233"]):  # 233: DS2, no held-out member
        assert st_deviation.main(["--data", str(FIXTURES), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("st_deviation: "), err
