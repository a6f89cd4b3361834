"""Decision tuning on validation beats and DS2 evaluation (reference beats and end to end)."""

import numpy as np

from ecg import MODEL_FS
from ecg.decision import classify, fit_platt, ruleguard_mask
from ecg.ec57 import binary_metrics, count_metrics, end_to_end_metrics, f1_from_counts
from ecg.pipeline import PREPROCESSING, network_rr

from .data import load_record


def rr_width(model):
    """How many feature columns a Keras network takes (its preprocessing version's)."""
    return int(model.input["rr"].shape[-1])


def predict_raw(model, beats, batch_size=4096):
    """The network's V probability for every beat of a BeatSet, shape (n,)."""
    out = []
    rr = network_rr(beats.features, rr_width(model))
    for i in range(0, len(beats), batch_size):
        x = {"beat": beats.windows[i:i + batch_size], "rr": rr[i:i + batch_size]}
        out.append(np.asarray(model(x, training=False)).reshape(-1))
    return np.concatenate(out) if out else np.zeros(0)


THRESHOLDS = np.unique(np.concatenate([np.geomspace(1e-4, 0.02, 24), np.linspace(0.02, 0.98, 97),
                                       1 - np.geomspace(1e-4, 0.02, 24)]))


def best_f1_threshold(p, y, grid=THRESHOLDS):
    """Threshold on ``p`` (n,) with the best F1 of the positive class ``y`` (n,), and that F1.

    A beat is positive at threshold t when ``p >= t``. The lowest threshold wins a tie (to
    1e-9); an undefined F1 (no positive beat either way) counts as 0.
    """
    y = np.asarray(y, bool)
    p, grid = np.asarray(p), np.asarray(grid, dtype=np.float64)
    # counts at every threshold at once: the beats at or above t among the sorted positives
    # and the sorted negatives
    pos, neg = np.sort(p[y]), np.sort(p[~y])
    tp = len(pos) - np.searchsorted(pos, grid, side="left")
    fp = len(neg) - np.searchsorted(neg, grid, side="left")
    f1 = np.nan_to_num(f1_from_counts(tp, fp, len(pos) - tp), nan=0.0)
    best = (0.5, -1.0)
    for t, f in zip(grid.tolist(), f1.tolist()):
        if f > best[1] + 1e-9:
            best = (t, f)
    return best


def tune_decision(p_raw, y, features, use_ruleguard=True):
    """Calibration, threshold and RuleGuard from validation beats only.

    Returns ``(decision, report)``: the card's ``decision`` object and the
    validation figures that chose it.
    """
    calibration = fit_platt(p_raw, y)
    decision = {"calibration": calibration, "threshold": 0.5, "ruleguard": {"enabled": False}}
    p = classify(p_raw, features, decision, apply_ruleguard=False).p_v
    threshold, f1 = best_f1_threshold(p, y)
    decision["threshold"] = threshold
    report = {"val_f1_V_no_ruleguard": f1, "val_f1_V": f1}
    if use_ruleguard:
        best = None
        for tol in (0.05, 0.1, 0.15):
            for width in (0.06, 0.08, 0.1):
                rule = {"enabled": True, "rr_tolerance": tol, "max_qrs_width_s": width}
                pred = (p >= threshold) & ~ruleguard_mask(features, rule)
                m = binary_metrics(np.where(y, "V", "N"), np.where(pred, "V", "N"))
                if best is None or m["F1"] > best[0]:
                    best = (m["F1"], rule)
        # keep the rule only when it helps on validation beats
        if best[0] > f1 + 1e-4:
            decision["ruleguard"] = best[1]
            report["val_f1_V"] = best[0]
        else:
            decision["ruleguard"] = {**best[1], "enabled": False}
    return decision, report


def label_beats(model, beats, decision, apply_ruleguard=True):
    """Predicted labels 'V'/'N' (n,) and calibrated V probabilities (n,) of a BeatSet."""
    is_v, p_v = classify(predict_raw(model, beats), beats.features, decision, apply_ruleguard)[:2]
    return np.where(is_v, "V", "N"), p_v


def reference_metrics(labels_true, labels_pred):
    """Figures on reference beat positions, named as the old pipeline logged them."""
    m = binary_metrics(labels_true, labels_pred, "V")
    return {
        "test_f1_V": m["F1"], "test_precision_V": m["PPV"], "test_recall_V": m["Se"],
        "test_accuracy": m["accuracy"], "test_fpr_V": m["FPR"],
        "test_TP": m["TP"], "test_FP": m["FP"], "test_FN": m["FN"], "test_TN": m["TN"],
    }


def end_to_end(beats, pred_labels, records, data_dir=None, prefix="e2e"):
    """EC57 scoring of detected, classified beats against each record's reference.

    ``beats``: a BeatSet of detections (its ``records`` and ``positions``);
    ``pred_labels``: 'V'/'N' per detection. Returns ``(metrics, rows)``: gross
    figures over all records and one row per record.
    """
    rows, matched, strict, qrs = [], [], [], []
    for name in records:
        rec = load_record(name, data_dir)
        sel = beats.records == name
        ref_labels = rec.ann_classes
        m = end_to_end_metrics(rec.ann_samples, ref_labels, beats.positions[sel], pred_labels[sel],
                               MODEL_FS, excluded=rec.excluded)
        matched.append(m["matched"]), strict.append(m["strict"]), qrs.append(m["qrs"])
        rows.append({
            "record": name, "ref_beats": m["qrs"]["TP"] + m["qrs"]["FN"], "ref_V": int(np.sum(ref_labels == "V")),
            "qrs_FN": m["qrs"]["FN"], "qrs_FP": m["qrs"]["FP"],
            "V_TP": m["matched"]["TP"], "V_FP": m["matched"]["FP"], "V_FN": m["matched"]["FN"],
            "V_Se": m["matched"]["Se"], "V_PPV": m["matched"]["PPV"], "V_F1": m["matched"]["F1"],
            "strict_V_F1": m["strict"]["F1"],
        })
    out = {}
    for tag, parts in (("", matched), ("_strict", strict)):
        m = count_metrics(*(sum(p[k] for p in parts) for k in ("TP", "FP", "FN", "TN")))
        out.update({f"{prefix}{tag}_recall_V": m["Se"], f"{prefix}{tag}_precision_V": m["PPV"],
                    f"{prefix}{tag}_f1_V": m["F1"]})
    q = {k: sum(p[k] for p in qrs) for k in ("TP", "FP", "FN")}
    out[f"{prefix}_qrs_se"] = q["TP"] / max(q["TP"] + q["FN"], 1)
    out[f"{prefix}_qrs_ppv"] = q["TP"] / max(q["TP"] + q["FP"], 1)
    return out, rows


def decide(p_raw, beats, decision):
    """'V'/'N' labels (n,) of a BeatSet's beats from the networks' raw V probabilities (n,),
    decided as the service decides: calibration, a card's pooling by QRS shape (over the
    beats' strips, or each record's whole signal), threshold, RuleGuard."""
    pooled = {}
    if decision.get("pooling"):
        pooled = {"windows": beats.windows, "groups": beats.groups(), "signals": beats.signals()}
    return np.where(classify(p_raw, beats.features, decision, **pooled).is_v, "V", "N")


# DS2, three ways. "test": at the reference beat positions of whole records, the protocol the
# literature scores; "e2e": the beats the service's own detector finds in whole records;
# "e2e_strip": the same in independent strips, as 10-s requests see them. The end-to-end
# ones match detections to the reference EC57-style.
DS2_EVALUATIONS = ("test", "e2e", "e2e_strip")


def score_ds2(label, records, data_dir=None, strip_s=10.0, evaluations=DS2_EVALUATIONS, build=None,
              cache_dir=None, progress=None, version=PREPROCESSING["version"]):
    """DS2 figures of one or several classifiers, all scored on the same beats.

    ``label(beats, evaluation)``: ``{name: labels}``, 'V'/'N' (n,) for each beat of the
    BeatSet ``beats``, one entry per classifier; ``evaluation``: one of
    :data:`DS2_EVALUATIONS`. ``strip_s``: the strips' length in s (None: whole records).
    ``build(records, strip_s, reference)``: the BeatSet of ``records`` (default:
    :func:`train.dataset.build` with ``cache_dir``, of preprocessing ``version``). Returns ``({name: metrics}, {name:
    rows})``: the figures named ``test_*`` (:func:`reference_metrics`), ``e2e_*`` and
    ``e2e_strip_*`` (:func:`end_to_end`), and one row per record and end-to-end evaluation.
    """
    if build is None:
        from . import dataset

        def build(records, strip, reference):
            return dataset.build(records, data_dir, strip, (0.0,), use_reference=reference, cache_dir=cache_dir,
                                 progress=None, version=version)

    metrics, rows = {}, {}
    for evaluation in evaluations:
        reference, strip = evaluation == "test", strip_s if evaluation == "e2e_strip" else None
        if progress is not None:
            what = "reference beats" if reference else "whole records" if strip is None else f"{strip:g}-s strips"
            progress(f"DS2 {'end to end, ' if not reference else ''}{what} ({len(records)} records)")
        beats = build(records, strip, reference)
        for name, labels in label(beats, evaluation).items():
            if reference:
                m, r = reference_metrics(np.where(beats.labels == "V", "V", "N"), labels), []
            else:
                m, r = end_to_end(beats, labels, records, data_dir, prefix=evaluation)
            metrics.setdefault(name, {}).update(m)
            rows.setdefault(name, []).extend({"evaluation": evaluation, **row} for row in r)
    return metrics, rows
