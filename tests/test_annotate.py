"""python -m train.annotate: WFDB annotations and the report, scored against MIT-BIH's .atr like the service."""

import json

import numpy as np
import pytest

from ecg.ec57 import end_to_end_metrics
from tests.conftest import FIXTURES
from tests.service_helpers import app, client  # noqa: F401
from train import annotate
from train.data import load_record


def score(samples, symbols, record):
    """EC57 end-to-end figures of V beats at ``samples`` against ``record``'s reference."""
    ref_labels = np.where(record.ann_classes == "V", "V", "N")
    return end_to_end_metrics(record.ann_samples, ref_labels, samples, symbols, record.fs, record.excluded)


@pytest.mark.parametrize("name", ["208"])
def test_annotations_read_back_and_score_as_the_service(tmp_path, client, name):  # noqa: F811
    import wfdb

    assert annotate.main([str(FIXTURES / name), "--out", str(tmp_path), "--processes", "1"]) == 0
    ann = wfdb.rdann(str(tmp_path / name), annotate.ANNOTATION_EXTENSION)
    assert ann.fs == 360 and set(ann.symbol) == {"N", "V"}
    report = json.loads((tmp_path / f"{name}.holter.json").read_text())
    assert len(ann.sample) == report["total_beats"] and ann.symbol.count("V") == report["ventricular_beats"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.holter.json", f"{name}.nv"]  # no leftovers

    # the service, on the same signal (the CLI's EDF of the record)
    (tmp_path / "edf").mkdir()
    edf = annotate.wfdb_as_edf(str(FIXTURES / name), None, tmp_path / "edf")
    r = client.post("/api/v1/recordings?include_beats=true", data=edf.read_bytes(),
                    content_type="application/octet-stream")
    assert r.status_code == 201
    beats = r.get_json()["beats"]
    record = load_record(name, FIXTURES)
    ours = score(ann.sample, np.array(ann.symbol), record)
    service = score([b["sample"] for b in beats], np.array([b["type"] for b in beats]), record)
    assert ours == service
    assert ours["matched"]["TP"] > 100 and ours["qrs"]["Se"] > 0.98  # it scored real V beats


def test_errors_are_one_line_and_write_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.edf"
    bad.write_bytes(b"not an edf" * 100)
    out = tmp_path / "out"
    assert annotate.main([str(bad), "--out", str(out)]) == 2
    assert annotate.main(["no_such_record", "--out", str(out), "--data", str(FIXTURES)]) == 2
    assert annotate.main([str(FIXTURES / "119"), "--channel", "V9", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("annotate: ") for line in err)
    assert "not an EDF file" in err[0] and "no such" in err[1] and "V9" in err[2]
    assert "Traceback" not in "".join(err)
    assert not out.exists() or not list(out.iterdir())


def test_unreadable_stretches_are_bracketed_by_noise_annotations(tmp_path, client):  # noqa: F811
    import wfdb

    from bench.edf_files import write_edf
    from tests.test_quality import muscle_like

    x = load_record("119", FIXTURES).signal.copy()
    x[20 * 360:35 * 360] += muscle_like(15 * 360, 1, rms=2.4)
    edf = tmp_path / "noisy.edf"
    write_edf(edf, [x], 360, ["MLII"])
    out = tmp_path / "out"
    assert annotate.main([str(edf), "--out", str(out), "--processes", "1"]) == 0
    ann = wfdb.rdann(str(out / "noisy"), annotate.ANNOTATION_EXTENSION)
    report = json.loads((out / "noisy.holter.json").read_text())
    symbols, subtypes = np.array(ann.symbol), np.array(ann.subtype)
    noise = symbols == "~"
    assert report["unreadable_intervals_s"] and noise.sum() == 2 * len(report["unreadable_intervals_s"])
    assert subtypes[noise].tolist() == [-1, 0] * len(report["unreadable_intervals_s"])  # start, end in turn
    starts = ann.sample[noise][::2] / 360
    assert np.allclose(starts, [a for a, _ in report["unreadable_intervals_s"]], atol=1 / 360)
    assert (~noise).sum() == report["total_beats"] and (symbols == "V").sum() == report["ventricular_beats"]


def test_ventricular_flutter_is_bracketed_as_mit_bih_marks_it(tmp_path):
    import wfdb

    from tests.test_flutter import FLUTTER

    out = tmp_path / "out"
    assert annotate.main([str(FLUTTER / "207"), "--out", str(out), "--processes", "1"]) == 0
    ann = wfdb.rdann(str(out / "207"), annotate.ANNOTATION_EXTENSION)
    report = json.loads((out / "207.holter.json").read_text())
    symbols = np.array(ann.symbol)
    opened, closed = ann.sample[symbols == "["] / 360, ann.sample[symbols == "]"] / 360
    assert report["ventricular_flutter_intervals_s"]
    # a stretch that runs to the end of the recording closes on its last sample
    assert np.allclose(np.stack([opened, closed], axis=1), report["ventricular_flutter_intervals_s"], atol=1.5 / 360)
    reference = wfdb.rdann(str(FLUTTER / "207"), "atr")
    assert abs(opened[0] - reference.sample[list(reference.symbol).index("[")] / 360) < 2.0
    assert np.isin(symbols, ["N", "V", "~", "[", "]"]).all()
