"""``python -m convert.promote``: the best MLflow run becomes the verified ONNX production model.

1. ranks the experiment's FINISHED runs by ``--metric`` (default ``val_f1_V``, a DS1
   validation figure: DS2 is a test set and never ranks), among the runs measured like
   production (the same validation protocol, ``train/protocol.py``);
2. compares the candidate with production like for like, and refuses it unless it was trained
   on the full MIT-BIH, measured on production's protocol, is not worse there, and does not
   lose more than ``DS2_GUARD_TOLERANCE`` of DS2 end-to-end F1 of V (a guard, not a ranking);
   ``--force`` overrides, saying what it overrode;
3. downloads the run's Keras model and card, exports ONNX (tf2onnx);
4. verifies before writing anything: ONNX Runtime against Keras on >= 2,000 real beats,
   and the card's end-to-end DS2 figures reproduced through the serving code path;
5. writes ``model.onnx`` and ``model.json`` into ``--output``, records the release in
   ``<output>.history`` for ``--rollback`` (convert/releases.py), registers the version in the
   MLflow Model Registry as ``ECG_Arritmias_NvsV`` with alias ``production``, optionally commits.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from train import protocol, tracking
from train.cli import one_line, quiet_tensorflow, run_cli

from . import releases
from .releases import release_graphs, sha256  # noqa: F401  (the release's files, as the service reads them)

REGISTERED_MODEL = "ECG_Arritmias_NvsV"
ALIAS = "production"
DEFAULT_OUTPUT = tracking.PROJECT_DIR / "models" / "ecg_nv_cnn"
# how candidates are ordered after the chosen metric: ties go to the next figure
TIE_BREAKERS = {"val_f1_V": ["val_f1_V_no_ruleguard"]}
PARITY_MIN_BEATS = 2000
PARITY_MAX_ABS = 1e-5
E2E_TOLERANCE = 0.002
E2E_KEYS = ("e2e_f1_V", "e2e_strip_f1_V")
# DS2 only guards: a candidate whose end-to-end F1 of V on production's test records is more
# than this below production's card is refused; DS2 never ranks (that would make it optimistic)
DS2_GUARD = "e2e_f1_V"
DS2_GUARD_TOLERANCE = 0.02
# the DS2 figures recorded for a pooled decision (the training run's were made without it)
POOLED_KEYS = ("test_f1_V", "test_recall_V", "test_precision_V", "e2e_f1_V", "e2e_recall_V", "e2e_precision_V",
               "e2e_strict_f1_V", "e2e_strip_f1_V", "e2e_strip_recall_V", "e2e_strip_precision_V")


class PromotionError(Exception):
    """A refusal: the message says the cause and the next step."""


def log(msg):
    print(msg, flush=True)


# --- choosing the run -------------------------------------------------------------------

def find_candidates(client, experiment, metric):
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise PromotionError(f"no experiment {experiment!r} in {tracking.mask_url(tracking.tracking_uri())}: "
                             "train first: python -m train")
    order = [metric, *TIE_BREAKERS.get(metric, [])]
    runs = client.search_runs(
        [exp.experiment_id], filter_string="attributes.status = 'FINISHED'",
        order_by=[f"metrics.`{m}` DESC" for m in order] + ["attributes.start_time DESC"], max_results=1000,
    )
    # ablation runs measure what an input is worth; they are not models to serve
    runs = [r for r in runs if metric in r.data.metrics and "ablation" not in r.data.tags]
    if not runs:
        raise PromotionError(f"no finished run in {experiment!r} has the metric {metric!r}: "
                             "train first: python -m train")
    return runs


def describe(runs, metric, n=5):
    cols = [metric, "val_f1_V", "test_f1_V", "test_accuracy", "e2e_f1_V"]
    cols = list(dict.fromkeys(cols))
    lines = [f"{'':2}{'run id':32}  {'name':34}  {'protocol':33}  " + "  ".join(f"{c:>14}" for c in cols)
             + "  started"]
    for i, r in enumerate(runs[:n]):
        vals = "  ".join(f"{r.data.metrics.get(c, float('nan')):>14.4f}" for c in cols)
        start = datetime.fromtimestamp(r.info.start_time / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M")
        lines.append(f"{'*' if i == 0 else ' ':2}{r.info.run_id:32}  {(r.info.run_name or '')[:34]:34}  "
                     f"{protocol.from_run(r)['id'][:33]:33}  {vals}  {start}")
    return "\n".join(lines)


def get_run(client, run_id):
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise PromotionError(f"no run {run_id} in {tracking.mask_url(tracking.tracking_uri())} "
                             f"({exc.error_code}): run without --run-id to list the candidates") from None
    if run.info.status != "FINISHED":
        raise PromotionError(f"run {run_id} is {run.info.status}, not FINISHED: pick a finished run")
    return run


def choose_run(client, args, production):
    """The candidate: ``--run-id``, else the best run by ``args.metric`` among those measured
    on production's validation protocol (among all runs when none was: it is then refused)."""
    if args.run_id:
        runs = [get_run(client, args.run_id)]
    else:
        runs = find_candidates(client, args.experiment, args.metric)
        if production is not None:
            want = protocol.from_card(production)["id"]
            alike = [r for r in runs if protocol.from_run(r)["id"] == want]
            if len(alike) < len(runs):
                log(f"{len(runs) - len(alike)} of {len(runs)} runs were measured otherwise than production "
                    f"({want}): " + ("set aside" if alike else "none was measured like it"))
            runs = alike or runs
    log(f"candidates by {args.metric} ({tracking.mask_url(tracking.tracking_uri())}):\n{describe(runs, args.metric)}")
    return runs[0]


def download_model(run, tmp):
    """The run's ``model`` artifact folder (Keras model and training card), downloaded into ``tmp``."""
    import mlflow

    try:
        local = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="model",
                                                         dst_path=str(tmp)))
    except Exception as exc:  # MLflow raises several types for a missing artifact
        raise PromotionError(f"run {run.info.run_id} has no model artifact ({type(exc).__name__}): "
                             "train it again with python -m train") from None
    if not (local / "model.keras").exists() or not (local / "model_card.json").exists():
        raise PromotionError(f"run {run.info.run_id} has no model/model.keras and model_card.json: "
                             "train it again with python -m train")
    return local


# --- the like-for-like gate -------------------------------------------------------------

def gate(candidate, production, metric):
    """Why ``candidate`` may not replace ``production`` (an empty list: it may).

    ``candidate``: its training card, with the run's metrics under ``metrics``;
    ``production``: the card in production, or None when there is none.
    """
    reasons = []
    cand_protocol = protocol.from_card(candidate)
    if cand_protocol["training_data"] != protocol.FULL:
        reasons.append(f"it was trained on {protocol.TRAINING_DATA.get(cand_protocol['training_data'], 'other data')}"
                       ": such a run is never promoted without --force")
    if production is None:
        return reasons
    prod_protocol = protocol.from_card(production)
    if cand_protocol["id"] != prod_protocol["id"]:
        reasons.append(f"its validation protocol {cand_protocol['id']} ({cand_protocol['description']}) is not "
                       f"production's {prod_protocol['id']} ({prod_protocol['description']}): their {metric} "
                       "are not comparable")
    else:
        ours, theirs = candidate["metrics"].get(metric), production.get("metrics", {}).get(metric)
        if theirs is not None and (ours is None or ours < theirs):
            reasons.append(f"its {metric} {figure(ours)} is below production's {theirs:.4f} on the same protocol")
    return reasons + ds2_guard(candidate, production)


def ds2_guard(candidate, production):
    """The DS2 regression guard: reasons to refuse (an empty list: no drop beyond the tolerance)."""
    theirs = production.get("metrics", {}).get(DS2_GUARD)
    if theirs is None:  # nothing to guard: said in the comparison
        return []
    test = sorted((production.get("data_split") or {}).get("test") or [])
    if sorted((candidate.get("data_split") or {}).get("test") or []) != test:
        return [f"it was tested on other records than production's DS2 test set, so its {DS2_GUARD} "
                "cannot show whether it drops"]
    ours = candidate["metrics"].get(DS2_GUARD)
    if ours is None:
        return [f"it has no DS2 {DS2_GUARD} (trained with --skip-e2e?) to show whether it drops"]
    if ours < theirs - DS2_GUARD_TOLERANCE:
        return [f"its DS2 {DS2_GUARD} {ours:.4f} is more than {DS2_GUARD_TOLERANCE} below production's {theirs:.4f}"]
    return []


def figure(x):
    return "none" if x is None else f"{x:.4f}"


def comparison(candidate, production, metric, reasons, output):
    """What was compared, for both models, and the verdict: lines to print."""
    def model_lines(role, card):
        p, m, run = protocol.from_card(card), card.get("metrics", {}), card.get("mlflow", {})
        return [f"  {role:11}run {run.get('run_id', '?')[:8]} {run.get('run_name', '')}: "
                f"{metric} {figure(m.get(metric))}, DS2 {DS2_GUARD} {figure(m.get(DS2_GUARD))}",
                f"  {'':11}protocol {p['id']}: {p['description']}"]

    if production is None:
        lines = [f"no production model in {output}: nothing to compare with", *model_lines("candidate", candidate)]
    else:
        lines = [f"candidate against production ({output}, version {production.get('version')}), like for like:",
                 *model_lines("candidate", candidate), *model_lines("production", production),
                 f"  {metric} ranks on the same protocol only; DS2 {DS2_GUARD} only guards against a drop of "
                 f"more than {DS2_GUARD_TOLERANCE}"]
    if reasons:
        lines += ["  verdict: the candidate loses:", *(f"    - {reason}" for reason in reasons)]
    elif production is not None:
        theirs = production.get("metrics", {})
        lines.append(f"  verdict: the candidate wins: {metric} {figure(candidate['metrics'].get(metric))} >= "
                     f"{figure(theirs.get(metric))} on the same protocol"
                     + (f", DS2 {DS2_GUARD} {figure(candidate['metrics'].get(DS2_GUARD))} within {DS2_GUARD_TOLERANCE}"
                        f" of {figure(theirs.get(DS2_GUARD))}" if theirs.get(DS2_GUARD) is not None
                        else f" (production's card has no DS2 {DS2_GUARD}: no drop to guard against)"))
    else:
        lines.append("  verdict: the candidate may be promoted: trained on the full MIT-BIH")
    return lines


def judge(run, train_card, production, args):
    """Print the comparison; raise ``PromotionError`` when the candidate loses, unless ``--force``.

    Returns the gate's verdict for the card: ``{"forced": bool, "reasons": [...]}`` (the
    reasons it lost, overridden by ``--force``; none when it won).
    """
    candidate = {**train_card, "metrics": {k: float(v) for k, v in run.data.metrics.items()},
                 "mlflow": {**train_card.get("mlflow", {}), "run_name": run.info.run_name}}
    reasons = gate(candidate, production, args.metric)
    for line in comparison(candidate, production, args.metric, reasons, args.output):
        log(line)
    if reasons and not args.force:
        raise PromotionError("the candidate loses: " + "; ".join(reasons) + ": nothing written; "
                             "--force to promote it anyway")
    if reasons:
        log("--force: going on although the candidate loses")
    return {"forced": bool(reasons), "reasons": reasons}


# --- verification -----------------------------------------------------------------------

def parity_beats(data_dir):
    """Real beat inputs for the parity check: DS2 records when the data is there, else the fixtures."""
    from ecg.pipeline import extract_beats
    from train.data import DS2, available_records, load_record
    from train.data import data_dir as find_data

    try:
        directory = find_data(data_dir)
    except FileNotFoundError:
        directory = tracking.PROJECT_DIR / "tests" / "data" / "mitdb"
    present = available_records(directory)
    if set(DS2) <= set(present):
        records, source = DS2, f"DS2 ({directory})"
    else:  # e.g. the bundled excerpts: fewer beats than the full check wants, and said so
        records, source = present, f"{directory}, not the full DS2"
    windows, features = [], []
    for name in records:
        rec = load_record(name, directory)
        b = extract_beats(rec.signal, rec.fs)
        windows.append(b.windows), features.append(b.features)
        if sum(len(w) for w in windows) >= PARITY_MIN_BEATS * 2:
            break
    return np.concatenate(windows), np.concatenate(features), source


def check_parity(model, onnx_path, decision, data_dir):
    from ecg.decision import classify

    from .onnx_export import compare, onnx_session

    windows, features, source = parity_beats(data_dir)
    pk, po = compare(model, onnx_session(onnx_path), windows, features)
    max_abs = float(np.max(np.abs(pk - po)))
    same = bool(np.array_equal(classify(pk, features, decision).is_v, classify(po, features, decision).is_v))
    result = {"beats": int(len(pk)), "source": source, "max_abs_diff": max_abs, "same_decisions": same}
    log(f"parity: {len(pk)} beats from {source}: max |keras - onnx| = {max_abs:.2e}, "
        f"decisions {'identical' if same else 'DIFFER'}")
    if len(pk) < PARITY_MIN_BEATS:
        if not source.startswith("DS2"):
            log(f"parity: NOTE only {len(pk)} beats (< {PARITY_MIN_BEATS}) because the full DS2 is not available")
    if len(pk) < PARITY_MIN_BEATS and source.startswith("DS2"):
        raise PromotionError(f"parity check found only {len(pk)} DS2 beats: check the data directory")
    if max_abs > PARITY_MAX_ABS or not same:
        raise PromotionError(f"ONNX and Keras disagree (max diff {max_abs:.2e}, same decisions: {same}): "
                             "nothing written; check the tf2onnx/onnxruntime versions")
    return result


def export_cascade(model, chosen, decision, tmp, data_dir):
    """First member and mean of the others as two ONNX graphs, each checked against Keras.

    ``chosen``: ``python -m train.cascade``'s output (the band in logits around the raw
    threshold). Returns ``(cascade_parts, {role: (path, members)}, parity results)``.
    """
    from train.cascade import band
    from train.model import average_models, ensemble_members

    from .onnx_export import OPSET, export_onnx

    members = ensemble_members(model)
    if len(members) < 2:
        raise PromotionError("--cascade needs an ensemble run (several members); this run has one network")
    keras_graphs = {"first": (members[0], 1), "rest": (average_models(members[1:]), len(members) - 1)}
    paths, parity = {}, {}
    for role, (net, n) in keras_graphs.items():
        path = tmp / f"{role}.onnx"
        export_onnx(net, path, OPSET)
        log(f"cascade: {role}.onnx ({n} member{'s' if n > 1 else ''})")
        parity[role] = check_parity(net, path, decision, data_dir)
        paths[role] = (path, n)
    low, high = band(decision, chosen["below_logit"], chosen["above_logit"])
    log(f"cascade: members 2..{len(members)} run on beats whose first-member probability is in "
        f"({low:.4g}, {high:.4g})")
    return cascade_parts({**chosen, "low": low, "high": high}, paths), paths, parity


def check_end_to_end(model_dir, card, data_dir):
    """Recompute the card's e2e DS2 figures with the candidate in ``model_dir``, served as the service serves."""
    from service.model import load_model
    from train.data import data_dir as find_data

    from .serving_check import served_figures

    try:
        directory = find_data(data_dir)
    except FileNotFoundError:
        log("end-to-end check SKIPPED: no MIT-BIH copy (pass --data DIR or set ECG_DATA_DIR)")
        return {"skipped": "no MIT-BIH data directory"}
    decision = card["decision"]
    decisions, evaluations = {"card": decision}, ("e2e", "e2e_strip")
    if decision.get("pooling"):
        # the training run's figures were made without the pooling: the drift check compares
        # like with like, and the pooled figures, reference beats included, are recorded beside it
        unpooled = {k: v for k, v in decision.items() if k != "pooling"}
        unpooled["threshold"] = decision["pooling"]["chosen_on"]["threshold_without"]
        decisions, evaluations = {"card": unpooled, "with_pooling": decision}, ("e2e", "e2e_strip", "test")
    model = load_model(model_dir)  # as the service reads the candidate: its card and sha256 checks
    served = served_figures(model, card["data_split"]["test"], directory, decisions, evaluations)
    got = served["card"]
    result = {}
    for key in E2E_KEYS:
        want = card["metrics"].get(key)
        if want is None:
            continue
        result[key] = {"card": want, "onnx": got[key]}
        log(f"end to end {key}: card {want:.4f}, ONNX serving path {got[key]:.4f}")
        if abs(got[key] - want) > E2E_TOLERANCE:
            cause = ("the cascade's band changes calls the whole ensemble makes (promote without --cascade, "
                     "or choose a narrower band), or the preprocessing changed since training"
                     if decision.get("cascade") else "preprocessing changed since training? retrain, then promote")
            raise PromotionError(f"{key} through the serving path is {got[key]:.4f}, the card says {want:.4f}: "
                                 + cause)
    if decision.get("pooling"):
        pooled = served["with_pooling"]
        result["with_pooling"] = {k: pooled[k] for k in POOLED_KEYS}
        log("DS2 with the pooling: " + ", ".join(f"{k} {pooled[k]:.4f}" for k in POOLED_KEYS))
    return result


def not_verified(verification):
    """The checks that could not run in full, each with its reason (an empty list: verified)."""
    reasons = []
    parity = verification["parity"]
    if not parity["source"].startswith("DS2"):
        reasons.append(f"ONNX was checked against Keras on only {parity['beats']} beats of {parity['source']}")
    e2e = verification["end_to_end"]
    if "skipped" in e2e:
        reasons.append(f"the end-to-end check did not run ({e2e['skipped']}: pass --data DIR)")
    elif not any(k in e2e for k in E2E_KEYS):
        reasons.append("the run has no end-to-end DS2 figure for the end-to-end check to reproduce")
    return reasons


# --- writing ----------------------------------------------------------------------------

def _fsync_write(path, data):
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def install(files, output):
    """Put ``files`` ({name: bytes}) into ``output`` so no reader sees a half-written model.

    Each file is written and fsynced under a temporary name, then renamed over the old one
    (atomic on one file system), the card last. If any step fails, the old files are put
    back before the error propagates; a reader between the two renames sees an ONNX file
    whose sha256 differs from the card, and the service refuses such a pair. The release
    history (convert/releases.py) keeps the versions before it.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    if not os.access(output, os.W_OK):
        raise PromotionError(f"{output} is not writable: fix its permissions or pass --output")
    old = {f.name: f.read_bytes() for f in sorted(output.iterdir())
           if f.is_file() and not f.name.startswith(".") and f.suffix in (".onnx", ".json")}
    temps = {name: output / f".{name}.tmp" for name in files}
    done = []
    try:
        for name, data in files.items():
            _fsync_write(temps[name], data)
        for name in sorted(files, key=lambda n: n == "model.json"):  # the card last
            os.replace(temps[name], output / name)
            done.append(name)
    except BaseException:
        for name in done:  # put back what was already replaced
            if name in old:
                _fsync_write(temps[name], old[name])
                os.replace(temps[name], output / name)
            else:
                (output / name).unlink(missing_ok=True)
        raise
    finally:
        for t in temps.values():
            t.unlink(missing_ok=True)
    # graphs of the old version that the new card does not name (a cascade's, when a single
    # graph replaces it): removed only now, after the card. A worker that read the old card
    # and then misses one reads the card again (service/model.py, GraphMissing).
    try:
        keep = set(release_graphs(json.loads(files["model.json"]))) | set(files)
    except (KeyError, TypeError, ValueError):  # no readable card in this release: touch nothing else
        return
    for name in old:
        if name.endswith(".onnx") and name not in keep:
            (output / name).unlink(missing_ok=True)


def package_versions():
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "mlflow"):
        try:
            out[pkg.replace("-cpu", "")] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


def cascade_parts(cascade, paths):
    """The card's two cascade entries, ``(decision part, onnx part)``; ``paths``: {role: (path, members)}."""
    decision = {k: cascade[k] for k in ("low", "high", "below_logit", "above_logit")}
    decision["chosen_on"] = {k: cascade[k] for k in ("study_runs", "rule", "ds1_nested_oof", "beats")}
    graphs = {role: {"file": f"{role}.onnx", "sha256": sha256(path), "bytes": Path(path).stat().st_size,
                     "members": members} for role, (path, members) in paths.items()}
    return decision, graphs


# what promotion reads of python -m train.cascade's and train.pooling's output (a.b: b inside a)
CASCADE_KEYS = ("below_logit", "above_logit", "study_runs", "rule", "ds1_nested_oof", "beats")
POOLING_KEYS = ("min_corr", "own_weight", "core_samples", "threshold", "chosen_on.run")


def choice_file(keys):
    """An argparse type: the JSON object a file holds, with ``keys``; so that a wrong
    ``--cascade`` or ``--pooling`` is refused before minutes of conversion, not after."""
    def read(path):
        try:
            choice = json.loads(Path(path).read_text())
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"{path}: {exc.strerror}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise argparse.ArgumentTypeError(f"{path}: not JSON ({one_line(exc)})") from None
        missing = [k for k in keys if not holds(choice, k.split("."))]
        if missing:
            raise argparse.ArgumentTypeError(f"{path}: no {', '.join(missing)} in it: not the output it needs")
        return choice
    return read


def holds(node, path):
    """Whether the JSON value ``node`` has the nested keys ``path`` (a list)."""
    return not path or (isinstance(node, dict) and path[0] in node and holds(node[path[0]], path[1:]))


def pooling_part(pooling, train_decision, run_id):
    """The card's ``decision.pooling`` from ``python -m train.pooling``'s output, and its threshold.

    The setting's threshold was tuned on one run's calibrated probabilities: it serves that run only.
    """
    if pooling["chosen_on"]["run"] != run_id:
        raise PromotionError(f"the pooling was chosen on run {pooling['chosen_on']['run']}, not {run_id}: "
                             f"run python -m train.pooling {run_id} ... for it")
    part = {k: pooling[k] for k in ("min_corr", "own_weight", "core_samples")}  # a missing one stops here
    if "pool_size_beats" in pooling:  # the signal-wide pool (train.pooling --signal-wide)
        part["pool_size_beats"] = pooling["pool_size_beats"]
    part["chosen_on"] = {**pooling["chosen_on"], "threshold_without": train_decision["threshold"]}
    return part, float(pooling["threshold"])


def build_card(train_card, run, onnx_path, opset, verification, version, cascade=None, pooling=None):
    """The served card; ``cascade``: ``cascade_parts(...)`` when the ensemble is served as a cascade;
    ``pooling``: ``pooling_part(...)`` when its beats are pooled by morphology."""
    card = {
        **train_card,
        "version": version,
        "promoted_at": datetime.now(timezone.utc).isoformat(),
        "trained_at": train_card.get("created_at"),
        "mlflow": {**train_card.get("mlflow", {}), "run_id": run.info.run_id, "run_name": run.info.run_name,
                   "experiment_id": run.info.experiment_id, "registered_model": REGISTERED_MODEL},
        "metrics": {k: float(v) for k, v in run.data.metrics.items()},
        "onnx": {"file": "model.onnx", "sha256": sha256(onnx_path), "opset": opset,
                 "bytes": Path(onnx_path).stat().st_size,
                 "inputs": train_card.get("inputs"), "outputs": train_card.get("outputs")},
        "versions": package_versions(),
        "verification": verification,
    }
    if cascade is not None:
        card["decision"] = {**card["decision"], "cascade": cascade[0]}
        card["onnx"]["cascade"] = cascade[1]
    if pooling is not None:
        card["decision"] = {**card["decision"], "pooling": pooling[0], "threshold": pooling[1]}
    return card


def register(client, run_id, onnx_path, card_path, cascade_paths=()):
    """Log the ONNX model and card (and a cascade's two graphs) on the run and register
    them; returns the new version number."""
    import mlflow
    import onnx

    with mlflow.start_run(run_id=run_id):
        info = mlflow.onnx.log_model(onnx.load(str(onnx_path)), name="onnx_model")
        mlflow.log_artifact(str(card_path), "onnx_model_card")
        for path in cascade_paths:
            mlflow.log_artifact(str(path), "onnx_model_cascade")
    mv = mlflow.register_model(info.model_uri, REGISTERED_MODEL, tags={"run_id": run_id})
    return mv.version


def git_commit(output, subject, body):
    """Commit ``output``, its release history and a migrated ``.previous`` (its removal)."""
    output = Path(output)
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=output, capture_output=True, text=True)
    if top.returncode:
        raise PromotionError(f"{output} is not in a git work tree: run without --commit")
    top = top.stdout.strip()
    paths = [str(output), str(releases.history_dir(output))]
    previous = releases.legacy_previous(output)
    tracked = subprocess.run(["git", "ls-files", "--", str(previous)], cwd=top, capture_output=True, text=True)
    if previous.exists() or tracked.stdout.strip():
        paths.append(str(previous))
    subprocess.run(["git", "add", "-A", "--", *paths], cwd=top, check=True)
    subprocess.run(["git", "commit", "-q", "-m", subject, "-m", body, "--", *paths], cwd=top, check=True)
    log(subject)


def deploy_message(card):
    m = card["metrics"]
    p = protocol.from_card(card)
    subject = (f"Deploy: MLflow model (F1-V: {m.get('test_f1_V', float('nan')):.4f}, "
               f"Acc: {m.get('test_accuracy', float('nan')):.4f})")
    body = (f"MLflow run {card['mlflow']['run_id']} ({card['mlflow'].get('run_name', '')}), release version "
            f"{card['version']} (registry: {REGISTERED_MODEL} version {card['mlflow'].get('registry_version')}).\n"
            f"Chosen by val_f1_V {m.get('val_f1_V', float('nan')):.4f} on validation protocol {p['id']} "
            f"({p['description']}); F1-V and accuracy above are DS2 on reference beats; "
            f"end to end (own detector) DS2 F1-V {m.get('e2e_f1_V', float('nan')):.4f}.")
    gate_verdict = card.get("gate") or {}
    if gate_verdict.get("forced"):
        body += "\nPromoted with --force although " + "; ".join(gate_verdict["reasons"]) + "."
    return subject, body


# --- rollback ---------------------------------------------------------------------------

def rollback(args):
    """Withdraw the release in production and install the one before it in the history."""
    output = Path(args.output)
    if args.dry_run:
        with tempfile.TemporaryDirectory() as tmp:  # the plan on a copy: adopting writes
            copy = Path(tmp) / output.name
            for path in (output, releases.legacy_previous(output), releases.history_dir(output)):
                if path.exists():
                    shutil.copytree(path, Path(tmp) / path.name)
            releases.adopt(copy)
            current, target = releases.rollback_plan(copy)
        log(f"dry run: would roll back from version {current['version']} (run {current['run_id']}) to "
            f"version {target['version']} (run {target['run_id']}); nothing written")
        return 0
    adopted = releases.adopt(output)
    current, target = releases.rollback_plan(output)
    card, files = releases.target_files(output, target)
    install(files, output)
    releases.withdraw(output, current, f"rolled back to version {target['version']}")
    log(f"rolled back from version {current['version']} (run {current['run_id']}) to {card.get('name')} "
        f"version {card.get('version')} (run {card['mlflow']['run_id']})")
    registry = "not asked (--no-registry)" if args.no_registry else restore_alias(card, current)
    log(f"registry: {registry}")
    if args.commit:
        subject = (f"Rollback: {card.get('name')} version {current['version']} -> {card.get('version')} "
                   f"(MLflow run {card['mlflow']['run_id'][:8]})")
        body = (f"Version {current['version']} (MLflow run {current['run_id']}, {current.get('run_name')}) is "
                f"withdrawn; version {card.get('version')} (MLflow run {card['mlflow']['run_id']}, "
                f"{card['mlflow'].get('run_name')}, promoted {card.get('promoted_at')}) serves again.\n"
                f"Registry: {registry}." + (f"\nHistory begun with {', '.join(adopted)}." if adopted else ""))
        git_commit(output, subject, body)
    return 0


def registry_version(card):
    """The registry version of a release: recorded in its card, or (a card from before the
    release numbers had their own sequence) the card's version itself."""
    mlflow_part = card.get("mlflow", {})
    if "registry_version" in mlflow_part:
        return mlflow_part["registry_version"]
    return str(card.get("version")) if mlflow_part.get("registered_model") else None


def restore_alias(card, withdrawn):
    """Point ``@production`` at the restored release when the registry has it; otherwise take
    the alias off the withdrawn release. Returns what was done, for the log and the commit."""
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = tracking.tracking_uri()
    if tracking.missing_store(uri):
        return f"no MLflow store at {uri}: @{ALIAS} not touched"
    client = mlflow.MlflowClient(uri)
    version, run_id = registry_version(card), card["mlflow"]["run_id"]
    try:
        try:
            registered = client.get_model_version(REGISTERED_MODEL, version) if version else None
        except MlflowException:
            registered = None
        if registered is not None and registered.run_id == run_id:
            client.set_registered_model_alias(REGISTERED_MODEL, ALIAS, version)
            return f"{REGISTERED_MODEL} version {version} is @{ALIAS} again"
        try:
            aliased = client.get_model_version_by_alias(REGISTERED_MODEL, ALIAS)
        except MlflowException:
            return f"this registry has no version of run {run_id} and no @{ALIAS}: nothing to change"
        if aliased.run_id != withdrawn["run_id"]:
            return f"this registry has no version of run {run_id}; @{ALIAS} (version {aliased.version}) left as it is"
        client.delete_registered_model_alias(REGISTERED_MODEL, ALIAS)
        return (f"this registry has no version of run {run_id}: @{ALIAS} removed from version {aliased.version}, "
                "the withdrawn release")
    except MlflowException as exc:
        return f"not updated ({tracking.mask_url(str(exc).splitlines()[0])})"


# --- the command ------------------------------------------------------------------------

def promote(args):
    import mlflow

    if args.rollback:
        return rollback(args)
    if not args.metric.startswith("val_"):
        raise PromotionError(f"--metric {args.metric}: runs are ranked by a DS1 validation figure (val_*); "
                             "DS2 is the test set, which only guards against a drop")
    if args.data:
        from train.data import data_dir

        data_dir(args.data)  # a wrong --data is an error, not a check quietly skipped
    output = Path(args.output)
    uri = tracking.tracking_uri()
    if missing := tracking.missing_store(uri):
        raise PromotionError(f"no MLflow store at {missing}: train first: python -m train "
                             "(or set MLFLOW_TRACKING_URI)")
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    production = releases.read_card(output)
    run = choose_run(client, args, production)
    if production and production.get("mlflow", {}).get("run_id") == run.info.run_id and not args.force:
        log(f"run {run.info.run_id} is already in production: nothing to do")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        local = download_model(run, tmp)
        train_card = json.loads((local / "model_card.json").read_text())
        verdict = judge(run, train_card, production, args)
        release = {**prepare(run, train_card, local, args, tmp), "gate": verdict}
        unverified = not_verified(release["verification"])
        if args.dry_run:
            verdict = "not verified: " + "; ".join(unverified) if unverified else "verified"
            log(f"dry run: {run.info.run_id} {verdict}; nothing written, registered or committed")
            return 0
        release["verification"]["not_verified"] = unverified
        publish(client, run, train_card, release, args, tmp)
        if unverified:
            log("not verified: " + "; ".join(unverified))
    return 0


def prepare(run, train_card, local, args, tmp):
    """Export the run's model to ONNX and verify it as the service will run it; writes in ``tmp`` only.

    Returns {"files": {name: path}, "onnx": path, "verification", "cascade", "pooling"}.
    """
    quiet_tensorflow()
    import keras

    from .onnx_export import OPSET, export_onnx

    model = keras.saving.load_model(local / "model.keras")
    onnx_path = tmp / "model.onnx"
    try:
        export_onnx(model, onnx_path, OPSET)
    except Exception as exc:
        raise PromotionError(f"ONNX conversion failed ({type(exc).__name__}: {exc}): "
                             "check tf2onnx/onnx versions in requirements-train.txt") from None
    verification = {"parity": check_parity(model, onnx_path, train_card["decision"], args.data)}
    files = {"model.onnx": onnx_path}
    cascade = None
    if args.cascade:
        cascade, graphs, verification["parity_cascade"] = export_cascade(
            model, args.cascade, train_card["decision"], tmp, args.data)
        files.update({f"{role}.onnx": path for role, (path, _) in graphs.items()})
    # the candidate as the service will read it: the same card fields and sha256 check
    candidate = tmp / "candidate"
    candidate.mkdir()
    for name, path in files.items():
        shutil.copy2(path, candidate / name)
    pooling = pooling_part(args.pooling, train_card["decision"], run.info.run_id) if args.pooling else None
    cand_card = build_card(train_card, run, onnx_path, OPSET, verification, "candidate", cascade, pooling)
    (candidate / "model.json").write_text(json.dumps(cand_card, indent=2))
    verification["end_to_end"] = check_end_to_end(candidate, cand_card, args.data)
    return {"files": files, "onnx": onnx_path, "opset": OPSET, "verification": verification,
            "cascade": cascade, "pooling": pooling}


def publish(client, run, train_card, release, args, tmp):
    """Register, install and record the verified release; point @production at it; commit."""
    output = Path(args.output)
    adopted = releases.adopt(output)  # the release in production (and a legacy .previous) into the history
    files, onnx_path = release["files"], release["onnx"]

    def card_of(version):
        return build_card(train_card, run, onnx_path, release["opset"], release["verification"], version,
                          release["cascade"], release["pooling"])

    registered = None
    if not args.no_registry:
        card_path = tmp / "model.json"
        card_path.write_text(json.dumps(card_of("pending"), indent=2))
        registered = str(register(client, run.info.run_id, onnx_path, card_path,
                                  [p for n, p in files.items() if n != "model.onnx"]))
    version = releases.next_version(output, registered)  # never below a version given before
    card = card_of(version)
    card["mlflow"]["registry_version"] = registered
    card["gate"] = release["gate"]  # a forced promotion says so, in the card and the commit
    blobs = {**{n: p.read_bytes() for n, p in files.items()}, "model.json": json.dumps(card, indent=2).encode()}
    install(blobs, output)
    releases.record(output, card, blobs, "promoted")
    log(f"wrote {output}/model.onnx ({card['onnx']['bytes']} bytes, sha256 {card['onnx']['sha256'][:12]}...) "
        f"and model.json, version {version}" + (f" (history begun with {', '.join(adopted)})" if adopted else ""))
    if registered:
        client.set_registered_model_alias(REGISTERED_MODEL, ALIAS, registered)
        log(f"registry: {REGISTERED_MODEL} version {registered} is now @{ALIAS}")
    if args.commit:
        git_commit(output, *deploy_message(card))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m convert.promote", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default=tracking.EXPERIMENT)
    ap.add_argument("--metric", default="val_f1_V", help="rank runs by this DS1 validation metric, higher first")
    ap.add_argument("--run-id", help="promote this run instead of the best one")
    ap.add_argument("--output", default=str(DEFAULT_OUTPUT))
    ap.add_argument("--data", help="MIT-BIH directory for the checks (default: $ECG_DATA_DIR, ...)")
    ap.add_argument("--dry-run", action="store_true", help="choose, compare, convert and verify; write nothing")
    ap.add_argument("--force", action="store_true",
                    help="promote even if the candidate loses against production (says why it lost)")
    ap.add_argument("--commit", action="store_true",
                    help="git commit models/ with a 'Deploy: MLflow model' (or 'Rollback: ...') message")
    ap.add_argument("--cascade", metavar="JSON", type=choice_file(CASCADE_KEYS),
                    help="serve the ensemble as a cascade with the band python -m train.cascade chose")
    ap.add_argument("--pooling", metavar="JSON", type=choice_file(POOLING_KEYS),
                    help="pool each strip's beats by morphology as python -m train.pooling chose")
    ap.add_argument("--rollback", action="store_true",
                    help="withdraw the release in production and restore the one before it (again: the one "
                         "before that)")
    ap.add_argument("--no-registry", action="store_true", help="skip the MLflow Model Registry")
    return ap.parse_args(argv)


def refusing(argv):
    try:
        return promote(parse_args(argv))
    except (PromotionError, releases.HistoryError) as exc:
        print(f"promote: refused: {exc}", file=sys.stderr)
        return 2


def main(argv=None):
    return run_cli("python -m convert.promote", refusing, argv)


if __name__ == "__main__":
    sys.exit(main())
