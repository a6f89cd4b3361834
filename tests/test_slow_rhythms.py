"""Slow rhythms (sleep, an athlete, sinus node disease): the networks learned rhythms faster than
40 bpm, and read a slower one at 40 bpm (``ecg.pipeline.network_rr``)."""

import numpy as np

from bench.robustness import request, slow_rhythm
from ecg import pipeline
from ecg.ec57 import end_to_end_metrics
from service.model import load_model
from tests.conftest import FIXTURES, TWO_LEADS
from tests.service_helpers import MODEL_DIR
from train.data import load_record


def v_counts(model, records):
    """True and false V over ``records`` (Record objects) sent as independent 10-s strips."""
    tp = fp = 0
    for rec in records:
        pos, lab, _ = request(model, rec.signal, rec.fs, rec.lead, "strips")
        m = end_to_end_metrics(rec.ann_samples, rec.ann_classes, pos, lab, rec.fs, excluded=rec.excluded)
        tp, fp = tp + m["strict"]["TP"], fp + m["strict"]["FP"]
    return tp, fp


def test_a_30_bpm_rhythm_is_called_v_far_less_often_read_at_40_bpm(monkeypatch):
    """Records 200 and 233 (PVCs) and 214 (bundle branch block) of MLII spread to 30 bpm
    (``bench.robustness.slow_rhythm``): read at 40 bpm, the strips' false V fall by more than
    a third and the PVCs found stay."""
    model = load_model(MODEL_DIR)
    records = [slow_rhythm(load_record(name, FIXTURES), 30) for name in ("200", "233")]
    records.append(slow_rhythm(load_record("214", TWO_LEADS, lead="MLII"), 30))
    assert all(np.median(np.diff(r.ann_samples)) == 2 * r.fs for r in records)
    read_at_40 = v_counts(model, records)
    monkeypatch.setitem(pipeline.PREPROCESSING, "network_slowest_rr_s", 1e9)  # read as they are
    as_they_are = v_counts(model, records)
    assert read_at_40[1] < 0.67 * as_they_are[1], (read_at_40, as_they_are)
    assert read_at_40[0] >= as_they_are[0] - 1, (read_at_40, as_they_are)
