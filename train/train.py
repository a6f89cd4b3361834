"""``python -m train``: fit the N-vs-V network on DS1, tune its decision on a DS1
validation split made by record, evaluate on DS2, and track everything in MLflow.
"""

import argparse
import csv
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ecg.features import NEIGHBOUR_SOURCES
from ecg.pipeline import PREPROCESSING, network_rr

from . import augment, dataset, protocol, tracking
from .checkpoint import PROCESS_TAG, Checkpoints, check_same_params, resumable_run, this_process
from .cli import at_least
from .data import DS1, DS2, OTHER_LEAD, data_dir
from .evaluate import DS2_EVALUATIONS, best_f1_threshold, label_beats, predict_raw, score_ds2, tune_decision
from .model import DEFAULTS as MODEL_DEFAULTS
from .nested import log_oof, nested_out_of_fold

# DS1 records held out for early stopping, calibration, threshold and rules: by
# record, so validation patients are unseen, with ~1/3 of DS1's V beats. The atrial
# fibrillation (201, 203) and noisiest (108, 203) DS1 records stay in training: they
# are the only teachers of irregular-but-not-ventricular beats.
VALIDATION = ("106", "114", "116", "205", "215", "223", "230")


def log(msg):
    print(f"[{datetime.now():%H:%M:%S}] {msg}", flush=True)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m train", description=__doc__)
    ap.add_argument("--data", help="MIT-BIH directory (default: $ECG_DATA_DIR, data/mitdb, ../shared/data/mitdb)")
    ap.add_argument("--train-records", nargs="+", help="default: DS1 minus --val-records")
    ap.add_argument("--val-records", nargs="+", default=list(VALIDATION))
    ap.add_argument("--test-records", nargs="+", default=list(DS2))
    ap.add_argument("--epochs", type=at_least(int, 1), default=15)
    ap.add_argument("--patience", type=at_least(int, 0), default=3,
                    help="epochs without a better validation score before stopping")
    ap.add_argument("--stop-on", choices=["f1", "ap"], default="f1",
                    help="early-stopping score on the held-out records: F1-V at its best threshold, or "
                         "average precision of V (threshold-free, less noisy on a few patients)")
    ap.add_argument("--batch-size", type=at_least(int, 1), default=256)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--imbalance", choices=["none", "balanced", "sqrt"], default="sqrt",
                    help="class weight of V: none (1), balanced (n_nonV/n_V) or its square root")
    ap.add_argument("--strip-seconds", type=at_least(float, 5.0), default=10.0,
                    help="strip length the records are cut into (at least 5 s, as a request)")
    ap.add_argument("--train-offsets", type=at_least(float, 0.0), nargs="+", default=[0.0, 5.0],
                    help="strip offsets (s) for training: each gives every beat another context")
    ap.add_argument("--augment", type=at_least(float, 0.0), default=0.1,
                    help="noise augmentation level (0: off): each epoch sees beats with random "
                         "amplitude change and noise of up to this fraction of the QRS amplitude")
    ap.add_argument("--leads", nargs="+", choices=["MLII", OTHER_LEAD], default=["MLII"],
                    help=f"leads of the DS1 records to train on ({OTHER_LEAD!r}: the channel that is not MLII, "
                         "V1 in most records): more patients' worth of morphology")
    ap.add_argument("--signal-augment", nargs="*", choices=augment.KINDS, default=[], metavar="KIND",
                    help="transformations drawn per training strip before detection (train/augment.py): "
                         f"{', '.join(augment.KINDS)}; the MLII lead at the first offset stays clean")
    ap.add_argument("--noise", help="nstdb noise records ma and bw (default: $ECG_NOISE_DIR, "
                                    "data/nstdb-noise, ../shared/data/nstdb-noise)")
    ap.add_argument("--val-views", nargs="*", default=[], metavar="VIEW",
                    help="extra DS1 validation views besides clean MLII, e.g. other ma6 em0 bw-6 other-ma6: "
                         "out-of-fold F1 of V on each is logged (val_f1_V_<view>) and early stopping "
                         "scores them all")
    ap.add_argument("--folds", type=at_least(int, 1), default=5,
                    help="> 1: cross-fit over DS1 by record; one member per fold, decision tuned out of fold")
    ap.add_argument("--members", type=at_least(int, 1), default=1,
                    help="networks trained with different seeds and averaged into one model")
    ap.add_argument("--nested-oof", action="store_true",
                    help="also cross-fit an inner ensemble inside each outer fold and log its members' "
                         "out-of-fold probabilities (evaluation/nested_oof.npz, train/nested.py): honest DS1 "
                         "predictions of an ensemble, on which the cascade (train/cascade.py) and the pooling "
                         "(train/pooling.py) are chosen; 5x the training time")
    ap.add_argument("--no-ruleguard", action="store_true", help="do not tune a RuleGuard")
    ap.add_argument("--ablate-relative", action="store_true",
                    help="measurement only: blank the patient-relative inputs (beat minus median beat, "
                         "RR and QRS ratios, template correlation) to see what they are worth on DS2")
    ap.add_argument("--max-train-beats", type=at_least(int, 1), help="subsample training beats (tests, quick looks)")
    ap.add_argument("--skip-e2e", action="store_true", help="only the reference-beat DS2 evaluation")
    ap.add_argument("--run-name", help="MLflow run name (default says what was tried)")
    ap.add_argument("--resume", metavar="RUN_ID",
                    help="go on with a run that was cut short, given with its own arguments: the networks "
                         "it saved are loaded, the others fitted (train/checkpoint.py)")
    ap.add_argument("--cache", default="cache", help="directory for cached beat sets ('' for none)")
    for k, v in MODEL_DEFAULTS.items():
        ap.add_argument("--" + k.replace("_", "-"), type=type(v), default=v)
    return ap.parse_args(argv)


def parse_view(name, split="validation"):
    """A validation view from its name: ``other``, ``ma6``, ``em-6``, ``other-bw0`` (noise kind
    and nstdb SNR in dB, on the MLII lead unless prefixed ``other-``)."""
    lead, rest = (OTHER_LEAD, name[len(OTHER_LEAD) + 1:]) if name.startswith(OTHER_LEAD + "-") else ("MLII", name)
    if rest == OTHER_LEAD:
        return dataset.View(lead=OTHER_LEAD)
    kind = rest[:2]
    try:
        snr = float(rest[2:])
    except ValueError:
        snr = None
    if kind not in augment.NOISE_KINDS or snr is None:
        raise SystemExit(f"unknown validation view {name!r}: use other, or a noise ({', '.join(augment.NOISE_KINDS)}) "
                         "and an SNR in dB such as ma6 or em-6, optionally prefixed other-")
    return dataset.View(lead=lead, noise=(kind, snr), noise_split=split)


def training_views(args):
    """``[(view, offsets)]`` of the training set: MLII clean at the first offset, and every other
    (lead, offset) with ``--signal-augment``'s transformations (clean when there are none)."""
    first, rest = args.train_offsets[:1], args.train_offsets[1:]
    kinds = tuple(args.signal_augment)
    views = []
    if "MLII" in args.leads:
        views.append((dataset.CLEAN, first))
        if rest:
            views.append((dataset.View(transforms=kinds), rest))
    if OTHER_LEAD in args.leads:
        views.append((dataset.View(lead=OTHER_LEAD, transforms=kinds), args.train_offsets))
    return views


def view_figures(decision, views, p_views):
    """Out-of-fold F1, Se and +P of V on each extra validation view, with the decision tuned on
    clean MLII (the one served), and their mean F1 (``val_f1_V_views_mean``)."""
    from ecg.decision import classify
    from ecg.ec57 import binary_metrics

    out = {}
    for name, v in views.items():
        is_v = classify(p_views[name], v.features, decision).is_v
        m = binary_metrics(np.where(v.y == 1, "V", "N"), np.where(is_v, "V", "N"), "V")
        out.update({f"val_f1_V_{name}": m["F1"], f"val_recall_V_{name}": m["Se"], f"val_precision_V_{name}": m["PPV"]})
    if views:
        out["val_f1_V_views_mean"] = float(np.mean([out[f"val_f1_V_{name}"] for name in views]))
    return out


def class_weights(y, mode):
    n_v = max(float(np.sum(y)), 1.0)
    ratio = (len(y) - n_v) / n_v
    w = {"none": 1.0, "balanced": ratio, "sqrt": np.sqrt(ratio)}[mode]
    return {0: 1.0, 1: float(w)}


# the beat's own relative inputs, and the neighbours' (all relative: ratios and correlations)
RELATIVE_FEATURES = ("rr_prev_ratio", "rr_next_ratio", "qrs_width_ratio", "template_corr",
                     *NEIGHBOUR_SOURCES)


def blank_relative(beats):
    """The ablation: zero the inputs that compare a beat with its own patient's context."""
    from ecg.features import RR_FEATURE_NAMES

    beats.windows[..., 1] = 0.0
    beats.features[:, [RR_FEATURE_NAMES.index(n) for n in RELATIVE_FEATURES]] = 0.0
    return beats


def augment_windows(windows, level, rng):
    """A noisy copy of beat windows (n, t, 2): channel 0 the beat, 1 the beat minus its template.

    The beat is scaled by 1 ± level and gets white plus slow (baseline) noise of up to
    ``level``; the difference channel changes by the same amount, as the template
    (a median over many beats) would barely move.
    """
    n, t, _ = windows.shape
    scale = 1 + rng.uniform(-level, level, (n, 1)).astype(np.float32)
    sigma = rng.uniform(0, level, (n, 1)).astype(np.float32)
    noise = sigma * rng.standard_normal((n, t)).astype(np.float32)
    drift = rng.uniform(-level, level, (n, 1)).astype(np.float32) * np.linspace(-1, 1, t, dtype=np.float32)
    beat = windows[..., 0]
    delta = (scale - 1) * beat + noise + drift
    return np.stack([beat + delta, windows[..., 1] + delta], axis=-1)


def save_plots(out_dir, y_true, p_v, threshold, labels_true, labels_pred):
    """Confusion matrix and precision-recall curve (DS2, reference beats) as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = ["N", "S", "V", "F", "Q"]
    cm = np.array([[np.sum((labels_true == t) & (labels_pred == p)) for p in ("N", "V")] for t in classes])
    fig, ax = plt.subplots(figsize=(4, 5))
    ax.imshow(np.log1p(cm), cmap="Blues")
    for i in range(len(classes)):
        for j in range(2):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center")
    ax.set_xticks([0, 1], ["pred N", "pred V"])
    ax.set_yticks(range(len(classes)), classes)
    ax.set_title("DS2 reference beats")
    fig.tight_layout()
    fig.savefig(out_dir / "confusion_matrix.png", dpi=100)
    plt.close(fig)

    order = np.argsort(-p_v)
    tp = np.cumsum(y_true[order])
    prec = tp / np.arange(1, len(order) + 1)
    rec = tp / max(y_true.sum(), 1)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(rec, prec)
    t_pred = p_v >= threshold
    ax.scatter([np.sum(t_pred & (y_true == 1)) / max(y_true.sum(), 1)],
               [np.sum(t_pred & (y_true == 1)) / max(t_pred.sum(), 1)], color="red", label=f"threshold {threshold:.2f}")
    ax.set_xlabel("recall V")
    ax.set_ylabel("precision V")
    ax.set_title("DS2 precision-recall (reference beats)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "precision_recall.png", dpi=100)
    plt.close(fig)
    return cm


def write_csv(path, rows):
    if not rows:
        return
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def assign_folds(records, k, directory):
    """Split records into k folds with similar numbers of V beats (largest first, round robin)."""
    from .data import load_record

    n_v = {r: int(np.sum(load_record(r, directory).ann_classes == "V")) for r in records}
    order = sorted(records, key=lambda r: (-n_v[r], r))
    folds = [[] for _ in range(k)]
    for i, r in enumerate(order):
        # snake order (0..k-1, k-1..0) keeps the V counts of the folds close
        j = i % (2 * k)
        folds[j if j < k else 2 * k - 1 - j].append(r)
    return [sorted(f) for f in folds]


def average_precision(p, y):
    """Average precision of the positive class: mean precision at each positive's rank.

    ``p`` (n,) scores, ``y`` (n,) 0/1 labels; ties are broken by order (as
    sklearn's ``average_precision_score`` up to ties). 0 when there is no positive.
    """
    y = np.asarray(y, bool)[np.argsort(-np.asarray(p), kind="stable")]
    if not y.any():
        return 0.0
    hits = np.cumsum(y)
    return float(np.mean(hits[y] / (np.flatnonzero(y) + 1)))


def fit_member(model, train, val, args, weights, seed, prefix="", on_epoch=None):
    """Fit one network epoch by epoch, keep the weights of its best validation score.

    The score is F1-V at its best threshold, or with ``--stop-on ap`` the average
    precision of V. Logs ``{prefix}loss``, ``val_loss``, ``val_f1_V_best_threshold``,
    ``val_f1_V_at_0.5`` and ``val_ap_V`` per epoch; returns the best epoch (1-based).
    """
    import mlflow

    # a weight per beat rather than Keras' class_weight, which needs integer labels
    sample_weight = np.where(train.y == 1, weights[1], weights[0]).astype(np.float32)
    best = {"score": -1.0, "epoch": -1, "weights": None}
    rng = np.random.default_rng(seed)  # augmentation noise
    rr = network_rr(train.features, train.features.shape[1])  # as predict_raw and the service give it
    for epoch in range(args.epochs):
        t0 = time.time()
        windows = augment_windows(train.windows, args.augment, rng) if args.augment > 0 else train.windows
        hist = model.fit({"beat": windows, "rr": rr}, train.y, batch_size=args.batch_size,
                         epochs=1, verbose=0, sample_weight=sample_weight, shuffle=True)
        loss = float(hist.history["loss"][-1])
        p_val = predict_raw(model, val)
        _, f1 = best_f1_threshold(p_val, val.y)
        f1_05 = best_f1_threshold(p_val, val.y, grid=[0.5])[1]
        eps = 1e-7
        val_loss = float(-np.mean(val.y * np.log(p_val + eps) + (1 - val.y) * np.log(1 - p_val + eps)))
        ap_v = average_precision(p_val, val.y)
        mlflow.log_metrics({f"{prefix}loss": loss, f"{prefix}val_loss": val_loss,
                            f"{prefix}val_f1_V_best_threshold": f1, f"{prefix}val_f1_V_at_0.5": f1_05,
                            f"{prefix}val_ap_V": ap_v}, step=epoch)
        log(f"{prefix}epoch {epoch + 1}/{args.epochs}: loss {loss:.4f} val_loss {val_loss:.4f} "
            f"val F1-V {f1:.4f} AP-V {ap_v:.4f} ({time.time() - t0:.0f} s)")
        score = ap_v if args.stop_on == "ap" else f1
        if score > best["score"] + 1e-4:
            best = {"score": score, "epoch": epoch, "weights": model.get_weights()}
        if on_epoch is not None:
            try:
                on_epoch(epoch, f1)
            except Exception as exc:
                mlflow.set_tag("stopped_by", type(exc).__name__)
                raise
        if epoch - best["epoch"] >= args.patience:
            log(f"{prefix}early stop: no better validation {args.stop_on} since epoch {best['epoch'] + 1}")
            break
    model.set_weights(best["weights"])
    return best["epoch"] + 1


def evaluate_ds2(model, decision, beats, test_records, strip, ddir, skip_e2e=False):
    """DS2 figures of ``model`` with ``decision`` (:func:`train.evaluate.score_ds2`): reference
    beats, then end to end on whole records and on ``strip``-s strips.

    ``beats(records, strip_s, reference=False, progress=...)`` builds a BeatSet. Returns
    ``(metrics, per-record rows, (reference BeatSet, calibrated p_v (n,), labels (n,)))``.
    """
    reference = {}

    def label(beat_set, evaluation):
        labels, p_v = label_beats(model, beat_set, decision)
        if evaluation == "test":  # kept for the plots
            reference["beats"], reference["p_v"], reference["labels"] = beat_set, p_v, labels
        return {"model": labels}

    metrics, rows = score_ds2(label, test_records, ddir, strip, ("test",) if skip_e2e else DS2_EVALUATIONS,
                              build=lambda records, s, ref: beats(records, s, reference=ref, progress=None),
                              progress=log)
    return metrics["model"], rows["model"], (reference["beats"], reference["p_v"], reference["labels"])


def log_model(model, card, reference, rows):
    """The Keras model, its card, DS2 plots and the per-record table, into the active run."""
    import mlflow

    test_ref, p_ref, pred_ref = reference
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model.save(tmp / "model.keras")
        (tmp / "model_card.json").write_text(json.dumps(card, indent=2))
        mlflow.log_artifact(str(tmp / "model.keras"), "model")
        mlflow.log_artifact(str(tmp / "model_card.json"), "model")
        save_plots(tmp, test_ref.y, p_ref, card["decision"]["threshold"],
                   np.where(test_ref.labels == "-", "N", test_ref.labels), pred_ref)
        write_csv(tmp / "per_record.csv", rows)
        for f in ("confusion_matrix.png", "precision_recall.png", "per_record.csv"):
            if (tmp / f).exists():
                mlflow.log_artifact(str(tmp / f), "evaluation")


@dataclass
class Split:
    """Which DS1 records a run fits and validates on. Holdout (``folds == 1``): fit on
    ``fit_records``, validate on ``val_records``. Cross-fitting: DS1 dealt by record into
    ``folds``; member k is fitted on the other folds and early-stopped on fold k, and the
    decision is tuned on the out-of-fold predictions of every DS1 patient."""

    fit_records: list
    val_records: list  # the records whose beats validate (every DS1 record when cross-fitted)
    folds: list  # lists of records; holdout: [the validation records]
    cross_fitted: bool


def split_records(args, ddir):
    """The run's :class:`Split`; ``SystemExit`` when a test record is also trained or
    validated on, or when there are fewer DS1 records than folds."""
    val_records = list(args.val_records)
    train_records = args.train_records or [r for r in DS1 if r not in val_records]
    overlap = set(train_records) & set(args.test_records) | set(val_records) & set(args.test_records)
    if overlap:
        raise SystemExit(f"records in both training/validation and test: {sorted(overlap)}")
    dev_records = train_records + [r for r in val_records if r not in train_records]
    if args.folds > len(dev_records):
        raise SystemExit(f"--folds {args.folds} needs at least as many DS1 records, got {len(dev_records)}")
    if args.nested_oof and args.folds < 3:
        raise SystemExit("--nested-oof needs --folds of at least 3")
    if args.folds == 1:
        return Split(train_records, val_records, [val_records], cross_fitted=False)
    folds = assign_folds(dev_records, args.folds, ddir)
    log(f"cross-fitting over {len(dev_records)} DS1 records in {args.folds} folds: {folds}")
    return Split(dev_records, dev_records, folds, cross_fitted=True)


@dataclass
class BeatSets:
    """The run's beats: ``train`` (every training view), ``val`` (clean MLII of the validation
    records) and ``views`` ({name: the same records seen otherwise}, ``--val-views``)."""

    train: dataset.BeatSet
    val: dataset.BeatSet
    views: dict

    def stop_set(self, records):
        """The held-out beats that early-stop a member: clean MLII and every extra view."""
        return dataset.BeatSet.concat([v.subset(np.isin(v.records, records)) for v in (self.val, *self.views.values())])


def beat_builder(args, ddir):
    """``beats(records, strip_s, offsets, reference, progress, view)``: a BeatSet built as the
    service would (cached under ``--cache``), blanked by ``--ablate-relative``."""
    def beats(records, strip_s, offsets=(0.0,), reference=False, progress=log, view=dataset.CLEAN):
        bs = dataset.build(records, ddir, strip_s, offsets, use_reference=reference, cache_dir=args.cache or None,
                           progress=progress, view=view, noise_dir=args.noise)
        return blank_relative(bs) if args.ablate_relative else bs
    return beats


def build_beat_sets(args, split, beats, ddir):
    """The run's :class:`BeatSets`, cut into ``--strip-seconds`` strips."""
    strip = args.strip_seconds or None
    log(f"building training beats from {len(split.fit_records)} records ({ddir})")
    train_all = dataset.BeatSet.concat([beats(split.fit_records, strip, offsets, view=view)
                                        for view, offsets in training_views(args)])
    log("building validation beats")
    val = beats(split.val_records, strip)
    # extra views of the same validation beats (other lead, noise): scored out of fold too
    views = {name: beats(split.val_records, strip, view=parse_view(name), progress=None) for name in args.val_views}
    log(f"train {len(train_all)} beats ({int(train_all.y.sum())} V), "
        f"validation {len(val)} beats ({int(val.y.sum())} V)"
        + (f" and {sum(len(v) for v in views.values())} in views {', '.join(views)}" if views else ""))
    return BeatSets(train_all, val, views)


def run_params(args, split, sets, weights, n_members):
    """The MLflow parameters of a run."""
    return {
        **{k: getattr(args, k) for k in MODEL_DEFAULTS}, "seed": args.seed, "imbalance": args.imbalance,
        "class_weight_V": weights[1], "batch_size": args.batch_size, "augment": args.augment,
        "ablate_relative": args.ablate_relative, "members": n_members, "folds": args.folds,
        "epochs_max": args.epochs, "patience": args.patience, "stop_on": args.stop_on, "nested_oof": args.nested_oof,
        "strip_seconds": args.strip_seconds or None, "train_offsets": json.dumps(args.train_offsets),
        "train_records": " ".join(split.fit_records), "val_records": " ".join(split.val_records),
        "fold_records": json.dumps(split.folds) if split.cross_fitted else "",
        "test_records": " ".join(args.test_records), "train_beats": len(sets.train), "val_beats": len(sets.val),
        "preprocessing_version": PREPROCESSING["version"], "detector": PREPROCESSING["detector"],
        "beat_code": dataset.code_fingerprint(),  # the code that made the beats: a resume must match it
        "leads": " ".join(args.leads), "signal_augment": " ".join(args.signal_augment) or "none",
        "val_views": " ".join(args.val_views) or "none",
    }


def network_maker(args, weights, checkpoints, t_start):
    """``network(fit_set, stop_set, seed, prefix, name, report)``: a fresh network fitted on
    ``fit_set`` and early-stopped on ``stop_set``, or loaded from the run's ``checkpoints``
    when an earlier process of the run fitted it; returns ``(network, its best epoch)``.
    ``t_start``: when this process started (``time.time()``), for the checkpoints' minutes."""
    import keras

    from .model import build_model

    params = {k: getattr(args, k) for k in MODEL_DEFAULTS}

    def network(fit_set, stop_set, seed, prefix, name="ecg_nv_cnn", report=None):
        if args.max_train_beats and len(fit_set) > args.max_train_beats:
            keep = np.random.default_rng(args.seed).choice(len(fit_set), args.max_train_beats, replace=False)
            fit_set = fit_set.subset(np.sort(keep))
        keras.utils.set_random_seed(seed)
        rr = network_rr(fit_set.features, fit_set.features.shape[1])
        net = build_model(fit_set.windows.shape[1:], rr.shape[1], rr.mean(axis=0), rr.std(axis=0) + 1e-6, params,
                          name=name)
        key = prefix.rstrip("_") or "network"
        best = checkpoints.load(key, net)
        if best is not None:
            log(f"{key}: loaded from the run's checkpoint (best epoch {best})")
            return net, best
        best = fit_member(net, fit_set, stop_set, args, weights, seed, prefix, report)
        checkpoints.save(key, net, best, (time.time() - t_start) / 60)
        return net, best
    return network


def fit_models(args, split, sets, network, on_epoch=None):
    """The served model: one network per fold (cross-fitting) or ``--members`` networks
    (holdout), averaged. Returns ``(model, raw validation p_v (n,), {view: p_v}, best epochs)``:
    out of fold when cross-fitted."""
    from .model import average_models

    n_members = args.folds if split.cross_fitted else args.members
    members, best_epochs = [], []
    p_val = np.zeros(len(sets.val))
    p_views = {name: np.zeros(len(v)) for name, v in sets.views.items()}
    for m in range(n_members):
        held_out = split.folds[m] if split.cross_fitted else split.folds[0]
        fit_set = sets.train.subset(~np.isin(sets.train.records, held_out)) if split.cross_fitted else sets.train
        # one step sequence across members, so Optuna compares trials at like points
        report = (lambda e, f1, m=m: on_epoch(m * args.epochs + e, f1)) if on_epoch else None
        member, best = network(fit_set, sets.stop_set(held_out), args.seed + 1000 * m,
                               f"member{m}_" if n_members > 1 else "",
                               name=f"ecg_nv_cnn_{m}" if n_members > 1 else "ecg_nv_cnn", report=report)
        best_epochs.append(best)
        members.append(member)
        if split.cross_fitted:
            for beats, p in ((sets.val, p_val), *((v, p_views[name]) for name, v in sets.views.items())):
                held = np.isin(beats.records, held_out)
                p[held] = predict_raw(member, beats.subset(held))
    model = average_models(members) if n_members > 1 else members[0]
    if not split.cross_fitted:
        p_val = predict_raw(model, sets.val)
        p_views = {name: predict_raw(model, v) for name, v in sets.views.items()}
    return model, p_val, p_views, best_epochs


def model_card(args, run_id, name, split, sets, decision, metrics, best_epochs, validation_protocol):
    """The training card: what the model is, how it was made and measured (promotion builds
    the served card from it)."""
    return {
        "name": "ecg_nv_cnn",
        "created_at": datetime.now(timezone.utc).isoformat(),
        "mlflow": {"run_id": run_id, "experiment": tracking.EXPERIMENT, "run_name": name},
        "preprocessing": PREPROCESSING,
        "decision": decision,
        "confidence": "calibrated probability that the predicted class is right",
        "inputs": {"beat": [None, *sets.val.windows.shape[1:]], "rr": [None, sets.val.features.shape[1]]},
        "outputs": {"p_v": [None, 1]},
        "classes": {"V": "AAMI V (MIT-BIH V, E)", "N": "every other beat"},
        "validation_protocol": validation_protocol,
        "data_split": {"protocol": "de Chazal 2004 inter-patient, paced records excluded",
                       "train": split.fit_records, "validation": split.val_records,
                       "folds": split.folds if split.cross_fitted else None, "test": list(args.test_records)},
        "training": {**{k: getattr(args, k) for k in MODEL_DEFAULTS}, "seed": args.seed, "imbalance": args.imbalance,
                     "augment": args.augment, "leads": list(args.leads), "signal_augment": list(args.signal_augment),
                     "members": len(best_epochs), "folds": args.folds, "best_epochs": best_epochs},
        "metrics": {k: float(v) for k, v in metrics.items()},
        "data": "MIT-BIH Arrhythmia Database (Moody & Mark 2001; Goldberger et al. 2000), ODC-By 1.0",
    }


def nested_evidence(args, split, sets, network):
    """``--nested-oof``: the inner ensembles' out-of-fold probabilities (train/nested.py), of the
    validation beats and of every ``--val-views`` view, logged as the run's
    ``evaluation/nested_oof.npz``; returns their tuned F1 of V."""
    p_inner, p_views = nested_out_of_fold(sets.train, sets.val, split.folds, network, args.seed, log,
                                          stop_set_of=sets.stop_set, views=sets.views)
    log_oof(p_inner, sets.val, p_views, sets.views)
    report = tune_decision(p_inner.mean(axis=1), sets.val.y, sets.val.features, use_ruleguard=not args.no_ruleguard)[1]
    return {"val_f1_V_nested_ensemble": report["val_f1_V"]}


def run(args, nested=False, on_epoch=None, tags=None):
    """Train, tune, evaluate and log one MLflow run; returns ``(run_id, metrics)``.

    ``nested``: start the run under the active one (Optuna trials under their study's
    run). ``on_epoch(epoch, val_f1)`` is called after every epoch and may raise to stop
    (Optuna's pruning); the run then ends FAILED with a ``stopped_by`` tag, and
    promotion, which only looks at FINISHED runs, never picks it.
    """
    import keras
    import mlflow
    import tensorflow as tf

    t_start = time.time()
    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    ddir = data_dir(args.data)
    split = split_records(args, ddir)
    # how val_f1_V is measured: promotion compares runs measured the same way only
    validation_protocol = protocol.protocol(split.folds if split.cross_fitted else None, split.val_records,
                                            args.strip_seconds or None, protocol.training_data(ddir))
    exp_id = tracking.setup()
    resumed = resumable_run(args.resume, exp_id) if args.resume else None
    beats = beat_builder(args, ddir)
    sets = build_beat_sets(args, split, beats, ddir)
    weights = class_weights(sets.train.y, args.imbalance)
    n_members = args.folds if split.cross_fitted else args.members
    name = args.run_name or (f"cnn{args.filters}-k{args.kernel}-{args.imbalance}"
                             f"{f'-cv{args.folds}' if split.cross_fitted else ''}-seed{args.seed}")
    params = run_params(args, split, sets, weights, n_members)
    if resumed:
        check_same_params(resumed, params)
        opened = mlflow.start_run(run_id=args.resume, nested=nested)
    else:
        opened = mlflow.start_run(experiment_id=exp_id, run_name=name, nested=nested, tags=tags)
    with opened as active:
        run_id, name = active.info.run_id, active.info.run_name
        mlflow.log_params(params)
        mlflow.set_tags({"split": "de Chazal 2004 inter-patient; validation by record within DS1"
                                  + (" (cross-fitted folds)" if split.cross_fitted else ""),
                         "host": platform.node(), PROCESS_TAG: this_process(), **protocol.tags(validation_protocol)})
        if args.ablate_relative:
            mlflow.set_tag("ablation", "relative inputs blanked: a measurement, not a model to serve")
        checkpoints = Checkpoints(run_id, resumed)
        network = network_maker(args, weights, checkpoints, t_start)
        extra = nested_evidence(args, split, sets, network) if args.nested_oof else {}
        model, p_val, p_views, best_epochs = fit_models(args, split, sets, network, on_epoch)
        mlflow.log_metric("best_epoch", max(best_epochs))
        log("tuning calibration, threshold and RuleGuard on the validation "
            + ("out-of-fold predictions" if split.cross_fitted else "split"))
        decision, val_report = tune_decision(p_val, sets.val.y, sets.val.features, use_ruleguard=not args.no_ruleguard)
        metrics = {**val_report, **extra, **view_figures(decision, sets.views, p_views)}
        m, rows, reference = evaluate_ds2(model, decision, beats, args.test_records, args.strip_seconds or None, ddir,
                                          args.skip_e2e)
        metrics.update(m)
        metrics["train_minutes"] = checkpoints.minutes_before + (time.time() - t_start) / 60
        if checkpoints.loaded:
            mlflow.set_tag("resumed", f"{checkpoints.loaded} networks loaded from checkpoints")
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        card = model_card(args, run_id, name, split, sets, decision, metrics, best_epochs, validation_protocol)
        log_model(model, card, reference, rows)
        summary = {k: round(float(v), 4) for k, v in metrics.items() if "f1" in k or "recall" in k or "precision" in k}
        log(f"run {run_id} done in {metrics['train_minutes']:.1f} min: {json.dumps(summary)}")
        return run_id, metrics


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run(parse_args(argv))


if __name__ == "__main__":
    main()
