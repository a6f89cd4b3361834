"""``python -m bench.annotated_noise``: the stretches MIT-BIH's annotators marked noisy, lead by lead."""

import json

import numpy as np

from bench import annotated_noise
from tests.conftest import TWO_LEADS
from train.data import load_record


def test_a_subtypes_bit_marks_its_own_lead_and_minus_one_marks_both():
    samples, symbols = [100, 200, 300, 400, 500], ["~", "N", "~", "~", "~"]
    subtypes = [1, 0, 3, -1, 0]  # signal 0 noisy, both noisy, all unreadable, clean
    assert annotated_noise.noisy_ranges(samples, symbols, subtypes, 0, 1000).tolist() == [[100, 300], [300, 400],
                                                                                        [400, 500]]
    assert annotated_noise.noisy_ranges(samples, symbols, subtypes, 1, 1000).tolist() == [[300, 400], [400, 500]]
    # a stretch still open at the end runs to the record's end
    assert annotated_noise.noisy_ranges([50], ["~"], [2], 1, 1000).tolist() == [[50, 1000]]
    assert annotated_noise.complement([[100, 300], [400, 500]], 1000).tolist() == [[0, 100], [300, 400],
                                                                                    [500, 1000]]
    assert annotated_noise.overlap([[100, 300], [400, 500]], [[250, 450]]) == 100


def test_the_report_splits_every_beat_between_the_clean_and_the_noisy_stretches(tmp_path):
    # 208's first minute has two noisy stretches in V1 and none in MLII; 214's first 3 min one in each
    out = tmp_path / "noise.json"
    assert annotated_noise.main(["--data", str(TWO_LEADS), "--records", "208", "214", "--out", str(out)]) == 0
    report = json.loads(out.read_text())["splits"]["records"]
    assert out.with_suffix(".md").exists()
    v1 = report["other"]["whole"]["marked noisy"]
    assert np.isclose(v1["seconds"], ((8093 - 6482) + (19850 - 13030) + (29231 - 27869)) / 360)
    assert v1["records_marked"] == 2 and report["MLII"]["whole"]["marked noisy"]["records_marked"] == 1
    assert np.isclose(report["MLII"]["whole"]["marked noisy"]["seconds"], (29808 - 27619) / 360)
    n_beats = sum(len(load_record(name, TWO_LEADS).ann_samples) for name in ("208", "214"))
    for lead in ("MLII", "other"):
        for mode in ("whole", "strips"):
            parts = report[lead][mode]
            assert sum(parts[m]["all"]["ref_beats"] for m in annotated_noise.MARKS) == n_beats
            assert 0 <= parts["marked noisy"]["unreadable_share"] <= 1
            for mark in annotated_noise.MARKS:  # the records' counts add up to the totals
                by_record = parts[mark]["by_record"]
                assert sum(r["false_v"] for r in by_record.values()) == round(
                    parts[mark]["all"]["false_v_rate"] * parts[mark]["all"]["ref_beats"])
    assert set(report["other"]["whole"]["marked noisy"]["by_record"]) == {"208", "214"}
    assert set(report["MLII"]["whole"]["marked noisy"]["by_record"]) == {"214"}


def test_a_missing_record_is_one_line_and_exit_2(tmp_path, capsys):
    assert annotated_noise.main(["--data", str(TWO_LEADS), "--records", "999", "--out", str(tmp_path / "x.json")]) == 2
    assert "999" in capsys.readouterr().err
