"""Signal-level augmentation (train/augment.py) and the views of a record (train/dataset.py)."""

import numpy as np
import pytest

from tests.conftest import TWO_LEADS
from train import augment
from train.data import OTHER_LEAD, load_record
from train.dataset import CLEAN, View, build


def nst_snr(clean, added, beats, fs=360):
    """The SNR nstdb's definition gives to ``added`` on ``clean``, measured independently."""
    return 10 * np.log10(augment.qrs_amplitude(clean, beats, fs) ** 2 / 8 / augment.noise_power(added, fs))


@pytest.fixture(scope="module")
def record_208():
    return load_record("208", TWO_LEADS)


@pytest.fixture(scope="module")
def noise_dir(tmp_path_factory):
    """Records shaped like nstdb's ma and bw (two channels, 360 Hz), written by wfdb: the
    loader and its splits are what is tested here, not the recordings. Channel 0 counts
    samples (1 uV each), so a split shows where it was cut."""
    import wfdb

    d = tmp_path_factory.mktemp("nstdb")
    rng = np.random.default_rng(0)
    n = 360 * 60
    for name in augment.NSTDB_RECORDS:
        x = np.column_stack([np.arange(n) / 1000.0, rng.standard_normal(n) * 0.2])
        wfdb.wrsamp(name, fs=360, units=["mV", "mV"], sig_name=["noise1", "noise2"], p_signal=x,
                    fmt=["16", "16"], adc_gain=[1000.0, 1000.0], baseline=[0, 0], write_dir=str(d))
    return d


@pytest.mark.parametrize("snr_db", [24.0, 6.0, 0.0, -6.0])
def test_noise_is_scaled_to_the_nst_snr(record_208, snr_db):
    x = record_208.signal[:3600]
    beats = record_208.ann_samples[record_208.ann_samples < 3600]
    noise = augment.electrode_motion(len(x), 360, np.random.default_rng(1))
    y = augment.add_noise(x, noise, 360, snr_db, beats)
    assert nst_snr(x, y - x, beats) == pytest.approx(snr_db, abs=0.01)


def test_rms_snr_is_rms_over_rms(record_208):
    x = record_208.signal[:3600]
    noise = np.random.default_rng(2).standard_normal(len(x))
    y = augment.add_noise(x, noise, 360, 6.0, definition="rms")
    rms = lambda v: np.sqrt(np.mean((v - v.mean()) ** 2))  # noqa: E731
    assert 20 * np.log10(rms(x) / rms(y - x)) == pytest.approx(6.0, abs=0.01)


def test_electrode_motion_is_mostly_slow_with_a_share_in_the_qrs_band():
    y = augment.electrode_motion(360 * 60, 360, np.random.default_rng(3))
    assert np.sqrt(np.mean(y ** 2)) == pytest.approx(1.0)
    f = np.fft.rfftfreq(len(y), 1 / 360)
    power = np.abs(np.fft.rfft(y)) ** 2
    share = lambda lo, hi: power[(f >= lo) & (f < hi)].sum() / power.sum()  # noqa: E731
    assert share(0.5, 5) > 0.5  # the skin's stretch follows body motion
    assert 0.03 < share(5, 20) < 0.4  # impacts ring in the QRS band: why it is detected as beats
    assert share(40, 180) < 0.01
    again = augment.electrode_motion(360 * 60, 360, np.random.default_rng(3))
    assert np.array_equal(y, again)


def test_a_strip_transform_is_reproducible_and_keeps_the_length(record_208):
    x = record_208.signal[:3600]
    recipe = augment.Recipe(("gain", "polarity", "baseline", "em", "hum", "rate"))
    outs = [augment.transform_strip(x, np.array([100]), 360, recipe, np.random.default_rng(s)) for s in range(20)]
    assert all(len(o) == len(x) for o in outs)
    assert np.array_equal(outs[5], augment.transform_strip(x, np.array([100]), 360, recipe, np.random.default_rng(5)))
    changed = sum(not np.array_equal(o, x) for o in outs)
    assert 10 <= changed < 20  # CLEAN_SHARE of the strips stay as they were
    assert augment.transform_strip(x, None, 360, augment.Recipe(()), np.random.default_rng(0)) is x


def test_noise_records_are_split_in_time(noise_dir):
    counts = {split: augment.load_noise(noise_dir, split)["ma"][:, 0] * 1000 for split in augment.NOISE_SPLITS}
    n = 360 * 60
    for split, (lo, hi) in augment.NOISE_SPLITS.items():  # each split: its own stretch, in order
        assert np.allclose(counts[split], np.arange(int(lo * n), int(hi * n))), split


def test_an_explicit_noise_dir_without_records_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no nstdb noise records"):
        augment.noise_dir(tmp_path)


def test_the_other_lead_is_the_channel_mlii_does_not_read(record_208):
    other = load_record("208", TWO_LEADS, lead=OTHER_LEAD)
    assert (record_208.lead, other.lead) == ("MLII", "V1")
    assert not np.array_equal(record_208.signal, other.signal)
    assert np.array_equal(record_208.ann_samples, other.ann_samples)


def test_views_are_built_reproducibly_and_cached_apart(noise_dir, tmp_path):
    views = [CLEAN, View(lead=OTHER_LEAD), View(noise=("ma", 0.0), noise_split="validation"),
             View(transforms=("gain", "polarity", "ma", "em"))]
    assert len({v.key() for v in views}) == len(views)
    sets = [build(["208"], TWO_LEADS, 10.0, cache_dir=tmp_path, progress=None, view=v, noise_dir=noise_dir)
            for v in views]
    assert len(list(tmp_path.glob("*.npz"))) == len(views)
    for v, s in zip(views[1:], sets[1:]):
        assert not np.array_equal(s.features[:10], sets[0].features[:10]), v.key()
        assert np.all(np.isin(s.labels, list("NSVFQ-")))
    again = build(["208"], TWO_LEADS, 10.0, cache_dir=None, progress=None, view=views[3], noise_dir=noise_dir)
    assert np.array_equal(again.windows, sets[3].windows)


def test_noise_at_0_db_brings_false_detections_labelled_non_v(noise_dir):
    clean = build(["208"], TWO_LEADS, 10.0, cache_dir=None, progress=None)
    noisy = build(["208"], TWO_LEADS, 10.0, cache_dir=None, progress=None,
                  view=View(noise=("em", -6.0), noise_split="validation"), noise_dir=noise_dir)
    assert np.sum(noisy.labels == "-") > np.sum(clean.labels == "-")
    assert not np.any(noisy.y[noisy.labels == "-"])


def test_training_on_both_leads_with_augmentation_logs_each_views_figures(noise_dir, tmp_path, monkeypatch):
    pytest.importorskip("tensorflow")
    import mlflow

    from train.train import parse_args, run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    args = parse_args(["--data", str(TWO_LEADS), "--noise", str(noise_dir), "--train-records", "208",
                       "--val-records", "119", "--test-records", "233", "--folds", "1", "--epochs", "1",
                       "--leads", "MLII", OTHER_LEAD, "--signal-augment", "gain", "polarity", "ma", "em",
                       "--val-views", OTHER_LEAD, "ma6", "em-6", "--cache", "", "--skip-e2e", "--seed", "3"])
    run_id, metrics = run(args)
    for view in (OTHER_LEAD, "ma6", "em-6"):
        assert 0.0 <= metrics[f"val_f1_V_{view}"] <= 1.0
    assert metrics["val_f1_V_views_mean"] == pytest.approx(
        np.mean([metrics[f"val_f1_V_{v}"] for v in (OTHER_LEAD, "ma6", "em-6")]))
    params = mlflow.MlflowClient(uri).get_run(run_id).data.params
    assert params["leads"] == f"MLII {OTHER_LEAD}"
    assert params["signal_augment"] == "gain polarity ma em"
    # the training set: MLII clean at offset 0, MLII augmented at 5 s, the other lead at both
    assert int(params["train_beats"]) > 3.5 * 70


def test_an_unknown_validation_view_is_refused():
    from train.train import parse_view

    with pytest.raises(SystemExit, match="unknown validation view"):
        parse_view("xx6")
    assert parse_view("other-em-6") == View(lead=OTHER_LEAD, noise=("em", -6.0), noise_split="validation")
