"""ecg.detect.detect_r_peaks on synthetic ECGs whose beat positions are known.

The synthetic beat is a sum of Gaussian bumps (P, Q, R, S, T) placed relative to a
known R time; baseline wander and white noise are added. Real MIT-BIH excerpts are
scored too when tests/data/mitdb holds some (skipped otherwise), alone and with a minute
of nstdb's muscle noise (tests/data/nstdb-noise).
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ecg.detect as ecg_detect
from ecg.detect import detect_r_peaks
from ecg.ec57 import detection_stats, match_beats
from tests.conftest import TWO_LEADS

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "data" / "mitdb"

# (amplitude mV, centre s relative to R, width s) of a normal narrow beat
NORMAL = ((0.15, -0.16, 0.025), (-0.10, -0.025, 0.010), (1.00, 0.0, 0.010),
          (-0.25, 0.025, 0.010), (0.30, 0.25, 0.045))
# a wide ventricular beat: no P wave, large slow biphasic QRS, discordant T
WIDE = ((1.3, -0.02, 0.025), (-0.6, 0.05, 0.025), (-0.45, 0.30, 0.06))


def synthetic_ecg(r_times, fs, duration, beat=NORMAL, kinds=None, wander_mv=0.3,
                  noise_mv=0.02, seed=0):
    """ECG (mV, shape (round(duration*fs),)) with an R wave at each of ``r_times`` (s).

    ``kinds``: optional per-beat booleans, True for a wide (ventricular) beat.
    T waves move closer at fast rates (QT shortens), as they do in real ECGs.
    """
    rng = np.random.default_rng(seed)
    n = int(round(duration * fs))
    t = np.arange(n) / fs
    x = np.zeros(n)
    r_times = np.asarray(r_times, float)
    rr = np.diff(r_times).mean() if len(r_times) > 1 else 1.0
    qt_scale = min(1.0, np.sqrt(rr))
    for i, r in enumerate(r_times):
        shape = WIDE if kinds is not None and kinds[i] else beat
        for amp, centre, width in shape:
            c = centre * qt_scale if centre > 0.1 else centre
            lo, hi = int((r + c - 5 * width) * fs), int((r + c + 5 * width) * fs) + 1
            lo, hi = max(lo, 0), min(hi, n)
            if hi > lo:
                x[lo:hi] += amp * np.exp(-0.5 * ((t[lo:hi] - r - c) / width) ** 2)
    x += wander_mv * np.sin(2 * np.pi * 0.25 * t + 0.7) + 0.5 * wander_mv * np.sin(2 * np.pi * 0.07 * t)
    x += noise_mv * rng.standard_normal(n)
    return x


def regular_beats(bpm, duration, first=0.4, jitter=0.0, seed=1):
    rng = np.random.default_rng(seed)
    rr = 60.0 / bpm
    times = np.arange(first, duration, rr)
    return np.sort(times + jitter * rr * rng.uniform(-1, 1, len(times)))


def score(r_times, peaks, fs):
    ref = np.rint(np.asarray(r_times) * fs).astype(np.int64)
    return detection_stats(ref, peaks, fs)


@pytest.mark.parametrize("fs", [100, 250, 360, 500, 1000])
def test_finds_every_beat_at_every_rate(fs):
    r = regular_beats(72, 10.0, jitter=0.1)
    peaks = detect_r_peaks(synthetic_ecg(r, fs, 10.0), fs)
    st = score(r, peaks, fs)
    assert st["FN"] == 0 and st["FP"] == 0, st
    # placed on the R wave, not ~50 ms late
    assert np.all(np.abs(st["errors_ms"]) <= 20.0), st["errors_ms"]


def test_output_type_sorted_unique():
    fs = 360
    r = regular_beats(80, 10.0)
    peaks = detect_r_peaks(synthetic_ecg(r, fs, 10.0), fs)
    assert peaks.dtype == np.int64 and peaks.ndim == 1
    assert np.all(np.diff(peaks) > 0)
    assert peaks.min() >= 0 and peaks.max() < 10 * fs


def test_inverted_polarity_gives_the_same_beats():
    fs = 360
    r = regular_beats(65, 10.0, jitter=0.15)
    x = synthetic_ecg(r, fs, 10.0)
    up, down = detect_r_peaks(x, fs), detect_r_peaks(-x, fs)
    assert len(up) == len(down) == len(r)
    assert np.max(np.abs(up - down)) <= 2
    st = score(r, down, fs)
    assert st["FN"] == 0 and st["FP"] == 0


def test_baseline_wander_does_not_move_peaks():
    fs = 360
    r = regular_beats(75, 10.0, jitter=0.1)
    calm = detect_r_peaks(synthetic_ecg(r, fs, 10.0, wander_mv=0.0), fs)
    # 1.5 mV of slow wander plus a 2 mV offset: larger than the QRS itself
    wavy = detect_r_peaks(synthetic_ecg(r, fs, 10.0, wander_mv=1.5) + 2.0, fs)
    assert len(calm) == len(wavy) == len(r)
    assert np.max(np.abs(calm - wavy)) <= 2


@pytest.mark.parametrize("fs", [250, 360])
def test_beats_at_the_strip_edges(fs):
    duration = 8.0
    # first R 60 ms after the start, last R 60 ms before the end
    r = np.linspace(0.06, duration - 0.06, 10)
    peaks = detect_r_peaks(synthetic_ecg(r, fs, duration), fs)
    st = score(r, peaks, fs)
    assert st["FN"] == 0 and st["FP"] == 0, (r * fs, peaks)
    assert np.all(np.abs(st["errors_ms"]) <= 30.0)


@pytest.mark.parametrize("bpm", [30, 220])
def test_very_slow_and_very_fast_rhythms(bpm):
    fs, duration = 360, 20.0
    r = regular_beats(bpm, duration, first=0.5, jitter=0.03)
    peaks = detect_r_peaks(synthetic_ecg(r, fs, duration), fs)
    st = score(r, peaks, fs)
    assert st["FN"] == 0 and st["FP"] == 0, st


def test_even_runs_of_gaps():
    even = np.full(12, 90)
    assert ecg_detect.in_even_run(even).all()  # to its ends
    assert not ecg_detect.in_even_run(even[:3]).any()  # too few gaps to call it a run
    jittered = even * np.array([1.0, 1.1, 0.92, 1.05, 0.95, 1.08, 1.0, 0.95, 1.1, 0.9, 1.0, 1.05])
    assert ecg_detect.in_even_run(jittered).all()
    one_missed = even.copy()
    one_missed[6] = 180
    assert ecg_detect.in_even_run(one_missed)[[4, 5, 7, 8]].all()
    assert not ecg_detect.in_even_run(np.tile([80, 220], 8)).any()  # a T wave at each beat
    assert ecg_detect.in_even_run(np.zeros(0, int)).shape == (0,)


def test_close_pairs_in_a_fast_regular_run_are_kept(monkeypatch):
    """At 240 bpm (90 samples at 360 Hz) beats of alternating strength are all kept; with a T
    wave taken at each beat of a 60 bpm rhythm the gaps alternate, and the T waves go."""
    fs = 360
    levels = np.tile([1.0, 0.6], 10)
    fast = np.arange(20) * 90
    assert len(ecg_detect.drop_weaker_of_close_pairs(fast, levels, fs)[0]) == 20
    with_t_waves = np.sort(np.concatenate([np.arange(10) * 360, np.arange(10) * 360 + 80]))
    kept, _ = ecg_detect.drop_weaker_of_close_pairs(with_t_waves, levels, fs)
    assert np.array_equal(kept, np.arange(10) * 360)
    monkeypatch.setattr(ecg_detect, "EVEN_RUN_TOLERANCE", 0.0)  # the rule as it was
    assert len(ecg_detect.drop_weaker_of_close_pairs(fast, levels, fs)[0]) < 15


def test_a_fast_rhythm_with_electrical_alternans(monkeypatch):
    """A supraventricular tachycardia at 230 bpm whose QRS amplitude alternates beat to beat
    (electrical alternans, common at such rates): past the first seconds, where the levels
    settle, every beat is found; the close-pair rule without its even-run exception loses
    about every other one."""
    fs, duration = 360, 20.0
    r = regular_beats(230, duration, first=0.5, jitter=0.02)
    x = synthetic_ecg(r[::2], fs, duration) + 0.75 * synthetic_ecg(r[1::2], fs, duration, wander_mv=0.0, seed=7)
    ref = np.rint(r * fs).astype(np.int64)

    def missed():
        found, _ = match_beats(ref, detect_r_peaks(x, fs), int(0.15 * fs))
        return np.setdiff1d(ref, ref[found])

    assert np.all(missed() < 3 * fs), missed() / fs
    monkeypatch.setattr(ecg_detect, "EVEN_RUN_TOLERANCE", 0.0)
    assert np.sum(missed() >= 3 * fs) > 20


def test_pause_and_rate_change():
    """A 3-s pause between a fast and a slow run (search-back must not invent beats)."""
    fs = 360
    r = np.concatenate([regular_beats(110, 6.0, first=0.3), 9.0 + regular_beats(55, 11.0, first=0.0)])
    peaks = detect_r_peaks(synthetic_ecg(r, fs, 20.0), fs)
    st = score(r, peaks, fs)
    assert st["FN"] == 0 and st["FP"] == 0, st


def test_wide_ventricular_beats_and_noise():
    fs, duration = 360, 60.0
    rng = np.random.default_rng(3)
    r = regular_beats(75, duration, jitter=0.05)
    wide = rng.random(len(r)) < 0.2
    # premature wide beats: move them 25 % earlier than their slot
    r[wide] -= 0.25 * 0.8
    r = np.sort(r[r > 0.2])
    wide = wide[-len(r):]
    x = synthetic_ecg(r, fs, duration, kinds=wide, noise_mv=0.05, seed=4)
    st = score(r, detect_r_peaks(x, fs), fs)
    assert st["Se"] >= 0.99 and st["PPV"] >= 0.99, st


def test_long_record_and_strips_agree():
    """A 5-min record and its independent 10-s strips find the same beats."""
    fs, duration = 360, 300.0
    r = regular_beats(70, duration, jitter=0.15, seed=5)
    x = synthetic_ecg(r, fs, duration, seed=6)
    whole = detect_r_peaks(x, fs)
    step = 10 * fs
    strips = np.concatenate([detect_r_peaks(x[s:s + step], fs) + s for s in range(0, len(x), step)])
    for peaks in (whole, strips):
        st = score(r, peaks, fs)
        assert st["Se"] >= 0.995 and st["PPV"] >= 0.995, st


@pytest.mark.parametrize("signal", ["zeros", "offset", "tiny_noise"])
def test_flat_line_has_no_beats(signal):
    fs = 360
    n = 10 * fs
    x = {"zeros": np.zeros(n), "offset": np.full(n, 1.7),
         "tiny_noise": 1e-3 * np.random.default_rng(0).standard_normal(n)}[signal]
    assert len(detect_r_peaks(x, fs)) == 0


def test_short_input_and_bad_arguments():
    assert len(detect_r_peaks(np.zeros(10), 360)) == 0
    with pytest.raises(ValueError):
        detect_r_peaks(np.zeros((2, 3600)), 360)
    with pytest.raises(ValueError):
        detect_r_peaks(np.zeros(3600), 50)
    x = np.zeros(3600)
    x[100] = np.nan
    with pytest.raises(ValueError):
        detect_r_peaks(x, 360)


def test_no_ecg_module_pulls_in_training_code_the_service_wfdb_or_scipy():
    # ecg/ is the numpy-only core the service imports: every module of it, imported alone; the
    # layers point one way (ecg/ imports neither train/ nor service/, nor what sits on them)
    code = ("import importlib, pkgutil, sys, ecg; "
            "[importlib.import_module(m.name) for m in pkgutil.walk_packages(ecg.__path__, 'ecg.')]; "
            "assert 'ecg.dsp.iir' in sys.modules and 'ecg.no_pause' in sys.modules; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'wfdb', 'train', 'scipy', 'service', 'convert', 'bench')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_detector_eval_answers_bad_data_with_one_line_and_no_traceback(tmp_path):
    # run where train.data's default folders do not exist, ECG_DATA_DIR unset: no data at all
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    cases = [[], ["--data", str(tmp_path / "missing")], ["--data", str(tmp_path)],
             ["--data", str(FIXTURES), "--records", "999"],
             ["--data", str(FIXTURES), "--records", "119", "--lead", "3"],
             ["--data", str(FIXTURES), "--records", "119", "--lead", "V5"]]  # 119 has MLII and V1
    for args in cases:
        out = subprocess.run([sys.executable, "-m", "train.detector_eval", *args], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and out.stdout == "", (args, out)
        assert len(out.stderr.splitlines()) == 1 and "Traceback" not in out.stderr, (args, out.stderr)
        assert out.stderr.startswith("python -m train.detector_eval: error: "), out.stderr


def test_detector_eval_scores_the_fixture_records(tmp_path):
    import json

    out = subprocess.run([sys.executable, "-m", "train.detector_eval", "--data", str(FIXTURES),
                          "--records", "119", "233", "--strip-seconds", "10", "--json", str(tmp_path / "o.json")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "o.json").read_text())
    assert [r["record"] for r in result["records"]] == ["119", "233"]
    assert result["gross"]["Se"] > 0.99 and "gross Se" in out.stdout


FIXTURE_RECORDS = sorted(p.stem for p in FIXTURES.glob("*.hea"))


@pytest.mark.skipif(not FIXTURE_RECORDS, reason="no MIT-BIH excerpts in tests/data/mitdb")
@pytest.mark.parametrize("name", FIXTURE_RECORDS)
def test_mitdb_excerpts(name):
    from train.data import load_record

    from train.detector_eval import detect_in_strips

    rec = load_record(name, str(FIXTURES))
    whole = detect_r_peaks(rec.signal, rec.fs)
    strips = detect_in_strips(rec.signal, rec.fs, 10.0)  # as the service sees a record
    for peaks in (whole, strips):
        st = detection_stats(rec.ann_samples, peaks, rec.fs, rec.excluded)
        assert st["Se"] >= 0.99 and st["PPV"] >= 0.99, (name, st["TP"], st["FN"], st["FP"])


@pytest.mark.skipif(not FIXTURE_RECORDS, reason="no MIT-BIH excerpts in tests/data/mitdb")
@pytest.mark.parametrize("gain", [1e-3, 0.2, 1000.0])
def test_the_floor_is_the_detectors_one_absolute_level(gain, monkeypatch):
    """Every threshold but the QRS floor (MIN_QRS_SLOPE) follows the lead's own levels, the mains
    subtraction's included: a lead scaled by ``gain`` (in volts, a low-voltage lead, in microvolts),
    with the floor scaled alike, gets the beats of the lead as recorded, MLII and V1
    (docs/ROBUSTNESS.md, "Units and offsets")."""
    from train.data import OTHER_LEAD, load_record

    leads = [(FIXTURES, name, "MLII") for name in FIXTURE_RECORDS]
    leads += [(TWO_LEADS, p.stem, OTHER_LEAD) for p in sorted(TWO_LEADS.glob("*.hea"))]
    for directory, name, lead in leads:
        x = load_record(name, str(directory), lead=lead).signal
        as_recorded = detect_r_peaks(x, 360)
        with monkeypatch.context() as m:
            m.setattr(ecg_detect, "MIN_QRS_SLOPE", ecg_detect.MIN_QRS_SLOPE * gain)
            np.testing.assert_array_equal(detect_r_peaks(x * gain, 360), as_recorded, err_msg=f"{name} {lead}")


def electrode_pop(x, fs, at_s, mv=40.0):
    """``x`` with an electrode pop at ``at_s``: a step of ``mv`` that relaxes in 0.3 s, and
    its mirror 1 s later (the electrode losing and regaining contact)."""
    t = np.arange(len(x)) / fs
    for t0, a in ((at_s, mv), (at_s + 1.0, -mv)):
        x = x + a * (t >= t0) * np.exp(-np.clip(t - t0, 0, None) / 0.3)
    return x


@pytest.mark.skipif("100" not in FIXTURE_RECORDS, reason="no MIT-BIH excerpt 100 in tests/data/mitdb")
def test_an_electrode_pop_does_not_lock_the_detector_out(monkeypatch):
    """Step 3's signal level only falls on beats it takes: after a pop tens of times a QRS's
    slope it stood above every beat, and Pan-Tompkins' search-back (at 0.6 x the threshold)
    could not reach them; the levels are seeded again after RELEARN_S without a beat."""
    from train.data import load_record

    rec = load_record("100", str(FIXTURES))
    x = electrode_pop(rec.signal, rec.fs, 30.0)
    after = rec.ann_samples > 30 * rec.fs

    def missed_after_the_pop():
        matched, _ = match_beats(rec.ann_samples, detect_r_peaks(x, rec.fs), int(0.15 * rec.fs))
        found = np.zeros(len(rec.ann_samples), bool)
        found[matched] = True
        return int(np.sum(after & ~found))

    assert missed_after_the_pop() <= 5  # the pop's own 2-3 s
    monkeypatch.setattr(ecg_detect, "RELEARN_S", 1e9)
    assert missed_after_the_pop() > 30  # locked out for most of the remaining 90 s


@pytest.mark.skipif("119" not in FIXTURE_RECORDS, reason="no MIT-BIH excerpt 119 in tests/data/mitdb")
@pytest.mark.parametrize("mains_hz", [50.0, 60.0])
@pytest.mark.parametrize(("gain", "hum_mv"), [(1.0, 1.0), (0.1, 0.1)])
def test_mains_hum_puts_no_beat_at_the_ends_of_strips(mains_hz, gain, hum_mv, monkeypatch):
    """Hum cut mid-cycle at a strip's end is a kink to the band-pass's padding, which rang in the
    QRS band: 1 mV of it made a false beat at one end of most 10-s strips. So does 0.1 mV on a lead
    a tenth the size (a low-voltage lead): what is negligible hum depends on the lead's size."""
    from train.data import load_record

    from train.detector_eval import detect_in_strips

    rec = load_record("119", str(FIXTURES))
    x = gain * rec.signal
    hum = hum_mv * np.sin(2 * np.pi * mains_hz * np.arange(len(x)) / rec.fs + 0.7)

    def false_beats():
        st = detection_stats(rec.ann_samples, detect_in_strips(x + hum, rec.fs, 10.0), rec.fs)
        return st["FP"]

    clean = detection_stats(rec.ann_samples, detect_in_strips(x, rec.fs, 10.0), rec.fs)["FP"]
    assert false_beats() <= clean
    monkeypatch.setattr(ecg_detect, "remove_mains", lambda x, fs: x)
    assert false_beats() >= clean + 3  # 5 in its 18 strips


# ---- step 4: candidates must stand out of the local noise --------------------------------

NOISE_FIXTURES = ROOT / "tests" / "data" / "nstdb-noise"


def muscle_noise(n):
    """(n,) mV: the committed minute of nstdb's muscle-artefact record ``ma`` (channel 0), tiled."""
    import wfdb

    return np.resize(wfdb.rdrecord(str(NOISE_FIXTURES / "ma")).p_signal[:, 0], n)


def without_noise_test(monkeypatch):
    """Step 4 switched off: every candidate clearing step 3's threshold is a beat (the old detector)."""
    monkeypatch.setattr(ecg_detect, "NOISE_FLOOR_RATIO", 0.0)
    monkeypatch.setattr(ecg_detect, "LOCAL_MAX_FRACTION", 0.0)


def test_local_noise_floor_follows_the_noise_not_the_beats():
    fs = 360
    r = regular_beats(120, 20.0, jitter=0.1)
    x = synthetic_ecg(r, fs, 20.0, noise_mv=0.0)
    x[10 * fs:] += 0.5 * np.random.default_rng(7).standard_normal(10 * fs)  # noisy second half
    _, _, env = ecg_detect.qrs_energy_envelope(x, fs)
    cand = ecg_detect.candidate_peaks(env, fs)
    floors = ecg_detect.local_noise_floor(env, cand, fs)
    beat_level = np.median(np.sqrt(env[np.rint(r * fs).astype(int)]))
    quiet, noisy = floors[cand < 8 * fs], floors[cand > 12 * fs]
    # at 120 bpm, QRS humps do not lift the floor: the beats clear twice the gate
    assert np.all(2 * ecg_detect.NOISE_FLOOR_RATIO * quiet < beat_level)
    assert np.all(noisy > 3 * np.max(quiet))


@pytest.mark.parametrize("strips", [False, True])
def test_muscle_noise_makes_fewer_false_beats(strips, monkeypatch):
    """Record 119 (bigeminy) with a minute of nstdb's muscle noise at 0 dB (RMS over RMS).

    The bounds sit between the detector without step 4 (+P 0.787 whole, 0.852 in 10-s strips)
    and with it (0.871, 0.887); sensitivity must not pay for it.
    """
    from train.augment import add_noise
    from train.data import load_record

    from train.detector_eval import detect_in_strips

    rec = load_record("119", str(FIXTURES))
    x = add_noise(rec.signal, muscle_noise(len(rec.signal)), rec.fs, 0.0, definition="rms")

    def run():
        peaks = detect_in_strips(x, rec.fs, 10.0) if strips else detect_r_peaks(x, rec.fs)
        return detection_stats(rec.ann_samples, peaks, rec.fs, rec.excluded)

    bound = 0.87 if strips else 0.85
    st = run()
    assert st["PPV"] >= bound and st["Se"] >= 0.99, (st["TP"], st["FN"], st["FP"])
    without_noise_test(monkeypatch)
    old = run()
    assert old["PPV"] < bound and old["FP"] > st["FP"], (old["FP"], st["FP"])


@pytest.mark.parametrize("name", FIXTURE_RECORDS)
def test_noise_test_costs_no_beat_of_a_clean_excerpt(name, monkeypatch):
    from train.data import load_record

    rec = load_record(name, str(FIXTURES))

    def found():
        st = detection_stats(rec.ann_samples, detect_r_peaks(rec.signal, rec.fs), rec.fs, rec.excluded)
        return st["TP"], st["FN"]

    with_test = found()
    without_noise_test(monkeypatch)
    assert with_test == found()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_premature_wide_beats_in_muscle_noise_are_kept(seed):
    """Large early ventricular beats in muscle noise at 6 dB (nstdb's SNR): none is lost."""
    from train.augment import add_noise

    fs, duration = 360, 60.0
    rng = np.random.default_rng(3 + seed)
    r = regular_beats(75, duration, jitter=0.05)
    wide = rng.random(len(r)) < 0.2
    r[wide] -= 0.25 * 0.8
    keep = r > 0.2
    r, wide = r[keep], wide[keep]
    ref = np.rint(r * fs).astype(np.int64)
    x = synthetic_ecg(r, fs, duration, kinds=wide, noise_mv=0.02, seed=4)
    x = add_noise(x, muscle_noise(len(x)), fs, 6.0, beats=ref)
    peaks = detect_r_peaks(x, fs)
    found, _ = match_beats(ref, peaks, int(0.15 * fs))
    assert set(np.flatnonzero(wide)) <= set(found.tolist())
    assert len(found) >= 0.98 * len(ref)
