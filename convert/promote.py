"""``python -m convert.promote``: the best MLflow run becomes the verified ONNX production model.

1. ranks the experiment's FINISHED runs by ``--metric`` (default ``val_f1_V``, the DS1
   validation figure: ranking by a DS2 figure would make the reported DS2 figure optimistic);
2. downloads the run's Keras model and card, exports ONNX (tf2onnx);
3. verifies before writing anything: ONNX Runtime against Keras on >= 2,000 real beats,
   and the card's end-to-end DS2 figures reproduced through the serving code path;
4. writes ``model.onnx`` and ``model.json`` into ``--output`` (the previous version kept in
   ``<output>.previous`` for ``--rollback``), registers the version in the MLflow Model
   Registry as ``ECG_Arritmias_NvsV`` with alias ``production``, optionally commits.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from train import tracking

REGISTERED_MODEL = "ECG_Arritmias_NvsV"
ALIAS = "production"
DEFAULT_OUTPUT = tracking.PROJECT_DIR / "models" / "ecg_nv_cnn"
# how candidates are ordered after the chosen metric: ties go to the next figure
TIE_BREAKERS = {"val_f1_V": ["val_f1_V_no_ruleguard"], "test_f1_V": ["test_accuracy"]}
PARITY_MIN_BEATS = 2000
PARITY_MAX_ABS = 1e-5
E2E_TOLERANCE = 0.002
E2E_KEYS = ("e2e_f1_V", "e2e_strip_f1_V")
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
        raise PromotionError(f"no experiment {experiment!r} in {tracking.tracking_uri()}: "
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
    lines = [f"{'':2}{'run id':32}  {'name':34}  " + "  ".join(f"{c:>14}" for c in cols) + "  started"]
    for i, r in enumerate(runs[:n]):
        vals = "  ".join(f"{r.data.metrics.get(c, float('nan')):>14.4f}" for c in cols)
        start = datetime.fromtimestamp(r.info.start_time / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M")
        lines.append(f"{'*' if i == 0 else ' ':2}{r.info.run_id:32}  {(r.info.run_name or '')[:34]:34}  {vals}  {start}")
    return "\n".join(lines)


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
    same = bool(np.array_equal(classify(pk, features, decision)[0], classify(po, features, decision)[0]))
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

    from .serving_check import end_to_end_served, reference_served

    try:
        directory = find_data(data_dir)
    except FileNotFoundError:
        log("end-to-end check SKIPPED: no MIT-BIH copy (pass --data DIR or set ECG_DATA_DIR)")
        return {"skipped": "no MIT-BIH data directory"}
    decision = card["decision"]
    decisions = {"card": decision}
    if decision.get("pooling"):
        # the training run's figures were made without the pooling: the drift check compares
        # like with like, and the pooled figures are recorded beside it
        unpooled = {k: v for k, v in decision.items() if k != "pooling"}
        unpooled["threshold"] = decision["pooling"]["chosen_on"]["threshold_without"]
        decisions = {"card": unpooled, "with_pooling": decision}
    model = load_model(model_dir)  # as the service reads the candidate: its card and sha256 checks
    served = end_to_end_served(model, card["data_split"]["test"], directory, 10.0, decisions)
    got = served["card"]
    result = {}
    for key in E2E_KEYS:
        want = card["metrics"].get(key)
        if want is None:
            continue
        result[key] = {"card": want, "onnx": got[key]}
        log(f"end to end {key}: card {want:.4f}, ONNX serving path {got[key]:.4f}")
        if abs(got[key] - want) > E2E_TOLERANCE:
            raise PromotionError(f"{key} through the serving path is {got[key]:.4f}, the card says {want:.4f}: "
                                 "preprocessing changed since training? retrain, then promote")
    if decision.get("pooling"):
        pooled = {**served["with_pooling"], **reference_served(model, card["data_split"]["test"], directory)}
        result["with_pooling"] = {k: pooled[k] for k in POOLED_KEYS}
        log("DS2 with the pooling: " + ", ".join(f"{k} {pooled[k]:.4f}" for k in POOLED_KEYS))
    return result


# --- writing ----------------------------------------------------------------------------

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_write(path, data):
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def install(files, output):
    """Put ``files`` ({name: bytes}) into ``output`` so no reader sees a half-written model.

    The current version is first copied to ``<output>.previous``. Each file is written
    and fsynced under a temporary name, then renamed over the old one (atomic on one
    file system), the card last. If any step fails, the old files are put back before
    the error propagates; a reader between the two renames sees an ONNX file whose
    sha256 differs from the card, and the service refuses such a pair.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    if not os.access(output, os.W_OK):
        raise PromotionError(f"{output} is not writable: fix its permissions or pass --output")
    previous = output.with_name(output.name + ".previous")
    # the whole current version (a cascade's graphs too) goes to .previous
    old = {f.name: f.read_bytes() for f in sorted(output.iterdir())
           if f.is_file() and not f.name.startswith(".") and f.suffix in (".onnx", ".json")}
    if {"model.onnx", "model.json"} <= set(old):
        staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.previous."))
        staging.chmod(0o755)
        for name, data in old.items():
            _fsync_write(staging / name, data)
        if previous.exists():
            shutil.rmtree(previous)
        staging.rename(previous)
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


def release_graphs(card):
    """{file name: sha256} of every ONNX graph a card names (the model, a cascade's two)."""
    from service.model import graph_files

    return dict(graph_files(card).values())


def rollback(output):
    output = Path(output)
    previous = output.with_name(output.name + ".previous")
    if not (previous / "model.json").exists():
        raise PromotionError(f"no previous version in {previous}: nothing to roll back to")
    card = json.loads((previous / "model.json").read_bytes())
    try:
        graphs = release_graphs(card)
    except (KeyError, TypeError) as exc:
        raise PromotionError(f"{previous}/model.json names no ONNX graph ({exc!r}): "
                             "restore it from git history") from None
    for name, want in graphs.items():
        if not (previous / name).exists() or sha256(previous / name) != want:
            raise PromotionError(f"{previous}/{name} does not match its card: restore it from git history")
    old = {n: (previous / n).read_bytes() for n in [*graphs, "model.json"]}
    install(old, output)  # the current version becomes the new 'previous', so rollback toggles
    log(f"rolled back to {card.get('name')} version {card.get('version')} (run {card['mlflow']['run_id']})")
    return card


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
        "mlflow": {**train_card.get("mlflow", {}), "run_id": run.info.run_id,
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


def git_commit(output, card):
    m = card["metrics"]
    subject = f"Deploy: MLflow model (F1-V: {m.get('test_f1_V', float('nan')):.4f}, Acc: {m.get('test_accuracy', float('nan')):.4f})"
    body = (f"MLflow run {card['mlflow']['run_id']} ({card['mlflow'].get('run_name', '')}), "
            f"registered as {REGISTERED_MODEL} version {card['version']}.\n"
            f"Chosen by val_f1_V {m.get('val_f1_V', float('nan')):.4f} on the DS1 validation split; "
            f"F1-V and accuracy above are DS2 on reference beats; "
            f"end to end (own detector) DS2 F1-V {m.get('e2e_f1_V', float('nan')):.4f}.")
    output = Path(output)
    paths = [str(output)] + ([str(output.with_name(output.name + ".previous"))]
                             if output.with_name(output.name + ".previous").exists() else [])
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=output, capture_output=True, text=True)
    if top.returncode:
        raise PromotionError(f"{output} is not in a git work tree: promote without --commit")
    subprocess.run(["git", "add", "--", *paths], cwd=top.stdout.strip(), check=True)
    subprocess.run(["git", "commit", "-m", subject, "-m", body, "--", *paths], cwd=top.stdout.strip(), check=True)
    log(subject)


# --- the command ------------------------------------------------------------------------

def promote(args):
    import mlflow

    output = Path(args.output)
    if args.rollback:
        rollback(output)
        return 0
    mlflow.set_tracking_uri(tracking.tracking_uri())
    client = mlflow.MlflowClient()
    if args.metric.startswith("test_"):
        log(f"WARNING: ranking by {args.metric}, a DS2 figure: the chosen run's DS2 figures are then "
            "optimistic (selection on the test set). The default, val_f1_V, avoids that.")
    if args.run_id:
        run = client.get_run(args.run_id)
        if run.info.status != "FINISHED":
            raise PromotionError(f"run {args.run_id} is {run.info.status}, not FINISHED: pick a finished run")
        runs = [run]
    else:
        runs = find_candidates(client, args.experiment, args.metric)
    run = runs[0]
    log(f"candidates by {args.metric} ({tracking.tracking_uri()}):\n{describe(runs, args.metric)}")
    score = run.data.metrics.get(args.metric, float("nan"))

    current = output / "model.json"
    if current.exists():
        cur = json.loads(current.read_text())
        if cur.get("mlflow", {}).get("run_id") == run.info.run_id and not args.force:
            log(f"run {run.info.run_id} is already in production: nothing to do")
            return 0
        cur_score = cur.get("metrics", {}).get(args.metric)
        if cur_score is not None and score < cur_score and not args.force:
            raise PromotionError(f"candidate {args.metric} {score:.4f} is worse than production's {cur_score:.4f}: "
                                 "nothing written; --force to promote it anyway")

    import keras

    from .onnx_export import OPSET, export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        try:
            local = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="model",
                                                             dst_path=str(tmp)))
        except Exception as exc:  # MLflow raises several types for a missing artifact
            raise PromotionError(f"run {run.info.run_id} has no model artifact ({type(exc).__name__}): "
                                 "train it again with python -m train") from None
        if not (local / "model.keras").exists() or not (local / "model_card.json").exists():
            raise PromotionError(f"run {run.info.run_id} has no model/model.keras and model_card.json: "
                                 "train it again with python -m train")
        train_card = json.loads((local / "model_card.json").read_text())
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
                model, json.loads(Path(args.cascade).read_text()), train_card["decision"], tmp, args.data)
            files.update({f"{role}.onnx": path for role, (path, _) in graphs.items()})
        # the candidate as the service will read it: the same card fields and sha256 check
        candidate = tmp / "candidate"
        candidate.mkdir()
        for name, path in files.items():
            shutil.copy2(path, candidate / name)
        pooling = (pooling_part(json.loads(Path(args.pooling).read_text()), train_card["decision"], run.info.run_id)
                   if args.pooling else None)
        cand_card = build_card(train_card, run, onnx_path, OPSET, verification, "candidate", cascade, pooling)
        (candidate / "model.json").write_text(json.dumps(cand_card, indent=2))
        verification["end_to_end"] = check_end_to_end(candidate, cand_card, args.data)

        if args.dry_run:
            log(f"dry run: {run.info.run_id} verified; nothing written, registered or committed")
            return 0
        version = None
        card_path = tmp / "model.json"
        if not args.no_registry:
            card_path.write_text(json.dumps(build_card(train_card, run, onnx_path, OPSET, verification, "pending",
                                                       cascade, pooling), indent=2))
            version = register(client, run.info.run_id, onnx_path, card_path,
                               [p for n, p in files.items() if n != "model.onnx"])
        version = str(version or datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S"))
        card = build_card(train_card, run, onnx_path, OPSET, verification, version, cascade, pooling)
        install({**{n: p.read_bytes() for n, p in files.items()},
                 "model.json": json.dumps(card, indent=2).encode()}, output)
        log(f"wrote {output}/model.onnx ({card['onnx']['bytes']} bytes, sha256 {card['onnx']['sha256'][:12]}...) "
            f"and model.json, version {version}")
        if not args.no_registry:
            client.set_registered_model_alias(REGISTERED_MODEL, ALIAS, version)
            log(f"registry: {REGISTERED_MODEL} version {version} is now @{ALIAS}")
        if args.commit:
            git_commit(output, card)
    return 0


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m convert.promote", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default=tracking.EXPERIMENT)
    ap.add_argument("--metric", default="val_f1_V", help="rank runs by this metric, higher first")
    ap.add_argument("--run-id", help="promote this run instead of the best one")
    ap.add_argument("--output", default=str(DEFAULT_OUTPUT))
    ap.add_argument("--data", help="MIT-BIH directory for the checks (default: $ECG_DATA_DIR, ...)")
    ap.add_argument("--dry-run", action="store_true", help="choose, convert and verify; write nothing")
    ap.add_argument("--force", action="store_true", help="promote even if worse than production")
    ap.add_argument("--commit", action="store_true", help="git commit models/ with a 'Deploy: MLflow model' message")
    ap.add_argument("--cascade", metavar="JSON",
                    help="serve the ensemble as a cascade with the band python -m train.cascade chose")
    ap.add_argument("--pooling", metavar="JSON",
                    help="pool each strip's beats by morphology as python -m train.pooling chose")
    ap.add_argument("--rollback", action="store_true", help="restore the previous production model")
    ap.add_argument("--no-registry", action="store_true", help="skip the MLflow Model Registry")
    return ap.parse_args(argv)


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return promote(parse_args(argv))
    except PromotionError as exc:
        print(f"promote: refused: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
