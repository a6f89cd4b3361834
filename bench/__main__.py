"""``python -m bench`` (``make bench``): ONNX serving against TensorFlow, side by side, in one run.

Writes ``bench/results.json`` and ``bench/results.md`` (docs/PERFORMANCE.md reads them).

1. in-process latency of the whole request path, 10-s strip and 30-min record, by stage;
2. the TensorFlow path (Keras ``model.predict`` and direct call) on the same strips;
3. HTTP under load: gunicorn as configured for the Space, wrk at several concurrencies;
4. footprint: worker RSS, Keras process RSS, venv sizes, cold start.
``--accuracy`` adds DS2 end to end through the HTTP API (a few minutes).

This machine is shared: every comparison runs in the same invocation, alternated where it
can be, and medians and ratios are what the report gives.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from . import footprint, http_load, inprocess, interpreters
from .common import PROJECT_DIR, log, machine, mitdb_dir, payload_10s, payload_30min, training_running
from .report import evaluate_targets, write_markdown

BENCH_DIR = Path(__file__).resolve().parent


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=BENCH_DIR, help="folder for results.json and results.md")
    ap.add_argument("--n10", type=int, default=500, help="in-process requests, 10-s strip")
    ap.add_argument("--n30", type=int, default=10, help="in-process requests, 30-min record")
    ap.add_argument("--tf-n10", type=int, default=100, help="TF-path requests per network, 10-s strip")
    ap.add_argument("--tf-n30", type=int, default=3, help="TF-path requests per network, 30-min record")
    ap.add_argument("--profile-n", type=int, default=300, help="requests under cProfile (0: none)")
    ap.add_argument("--seconds", type=int, default=12, help="seconds per HTTP load level")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 16, 64], help="HTTP concurrencies")
    ap.add_argument("--repeats", type=int, default=3,
                    help="wrk runs per concurrency, each on fresh connections; the table gives their medians")
    ap.add_argument("--no-30min", action="store_true", help="skip the 30-min record everywhere")
    ap.add_argument("--skip", nargs="*", default=[], choices=["tf", "http", "venvs"],
                    help="parts to leave out")
    ap.add_argument("--no-build", action="store_true", help="measure only venvs built before")
    ap.add_argument("--accuracy", action="store_true", help="also DS2 end to end through the HTTP API")
    ap.add_argument("--wait-idle", type=float, default=0.0, metavar="MIN",
                    help="wait up to MIN minutes for running training jobs to finish first")
    ap.add_argument("--quick", action="store_true", help="tiny counts: checks the bench runs, figures mean little")
    args = ap.parse_args(argv)
    if args.quick:
        args.n10, args.n30, args.tf_n10, args.tf_n30, args.profile_n = 5, 1, 2, 0, 5
        args.seconds, args.levels, args.repeats = 1, [1, 4], 1
    problem = bad_input(args)
    if problem:  # one line on stderr and exit 1, before minutes of measuring
        raise SystemExit(f"python -m bench: error: {problem}")
    return args


def bad_input(args):
    """What is wrong with the arguments, in one line (None: nothing)."""
    counts = {"--n10": args.n10, "--n30": args.n30, "--tf-n10": args.tf_n10, "--tf-n30": args.tf_n30,
              "--profile-n": args.profile_n, "--wait-idle": args.wait_idle}
    for flag, value in counts.items():
        if value < 0:
            return f"{flag} {value}: must be 0 or more"
    if args.seconds < 1 or args.repeats < 1 or min(args.levels) < 1:
        return "--seconds, --repeats and every --levels value must be at least 1"
    if args.out.exists() and not args.out.is_dir():
        return f"--out {args.out}: not a directory"
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"--out {args.out}: cannot be created ({exc.strerror})"
    if not os.access(args.out, os.W_OK):
        return f"--out {args.out}: not writable"
    given = os.environ.get("ECG_DATA_DIR")
    if args.accuracy and given and not (Path(given) / "200.hea").exists():
        return f"ECG_DATA_DIR {given}: no MIT-BIH record 200 there, which --accuracy needs"
    if args.accuracy and mitdb_dir() is None:
        return "--accuracy needs MIT-BIH: set ECG_DATA_DIR (or put it in data/mitdb)"
    return None


def wait_idle(minutes):
    deadline = time.time() + 60 * minutes
    while training_running() and time.time() < deadline:
        log(f"  training running ({len(training_running())} job(s)); waiting...")
        time.sleep(30)


def run_tf_path(args):
    cmd = [sys.executable, "-m", "bench.tf_path", "--n10", str(args.tf_n10),
           "--n30", str(0 if args.no_30min else args.tf_n30), "--model-n", str(max(args.tf_n10, 5))]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR)}
    r = subprocess.run(cmd, cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    sys.stderr.write("".join(ln + "\n" for ln in r.stderr.splitlines() if ln.startswith("  ")))
    if r.returncode:
        return {"skipped": f"bench.tf_path failed: {r.stderr.strip()[-400:]}"}
    out = json.loads(r.stdout)
    if args.no_30min or args.tf_n30 == 0:
        out["request_30min"] = {"skipped": "--no-30min" if args.no_30min else "not asked (--tf-n30 0)"}
    return out


def measure_inprocess(args, body10, body30, why30):
    """Part 1: the request path in this process, stage by stage, on the 10-s strip and the 30-min record."""
    app = inprocess.make_app()
    out = {"10s": inprocess.measure(body10, args.n10, "10-s strip", app)}
    if body30 is not None and args.n30 > 0:
        out["30min"] = inprocess.measure(body30, args.n30, "30-min record 200", app)
    else:
        out["30min"] = {"skipped": why30 or "--n30 0"}
    if args.profile_n:
        out["profile_10s_top"] = inprocess.profile(body10, args.profile_n, args.out / "profile_10s.txt", top=15)
    return out


def measure_interpreters(args):
    """Part 1b: the whole 10-s request in the serving-only venv and in the project's."""
    if "venvs" in args.skip:
        return {"skipped": "--skip venvs"}
    built = footprint.build_api_venv() if not args.no_build else \
        ((footprint.API_VENV / ".bench-installed").exists(), "not built (--no-build)")
    if not built[0]:
        return {"skipped": built[1]}
    return interpreters.measure(footprint.API_VENV, rounds=1 if args.quick else 4, n=args.n10,
                                warmup=5 if args.quick else 100)


def measure_accuracy(args, body10):
    """Part 5 (``--accuracy``): DS2 end to end through the HTTP API of a gunicorn."""
    d = mitdb_dir()
    if d is None:
        return {"skipped": "MIT-BIH not found"}
    from . import accuracy

    venv = footprint.API_VENV if (footprint.API_VENV / ".bench-installed").exists() else None
    with http_load.Server(venv=venv) as srv:
        srv.wait_first_201(body10)
        return accuracy.measure(srv.port, d)


def previous_accuracy(out_dir):
    """Without ``--accuracy``: the last measured accuracy of ``results.json``, saying when."""
    try:
        old = json.loads((out_dir / "results.json").read_text()).get("accuracy")
    except (OSError, ValueError):
        old = None
    if old and "V_matched" in old:
        when = old.get("measured_at", "an earlier run")
        return {**old, "note": old.get("note") or f"from the --accuracy run of {when}"}
    return {"skipped": "run with --accuracy"}


def main(argv=None):
    args = parse_args(argv)
    if args.wait_idle:
        wait_idle(args.wait_idle)
    started = time.perf_counter()
    results = {"created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
               "quick": args.quick, "machine_at_start": machine()}
    body10, _ = payload_10s()
    body30, why30 = (None, "--no-30min") if args.no_30min else payload_30min()

    log("1. in-process request path")
    results["inprocess"] = measure_inprocess(args, body10, body30, why30)
    log("1b. the 10-s request path in the serving-only venv and in the project's venv")
    results["interpreters"] = measure_interpreters(args)
    log("2. TensorFlow path")
    results["tensorflow"] = {"skipped": "--skip tf"} if "tf" in args.skip else run_tf_path(args)

    log("3. HTTP under load (gunicorn, loopback)")
    if "http" in args.skip:
        results["http"] = {"skipped": "--skip http"}
    else:
        if "venvs" not in args.skip and not args.no_build:  # gunicorn runs in the serving-only venv
            footprint.build_api_venv()
        venv = footprint.API_VENV if (footprint.API_VENV / ".bench-installed").exists() else None
        results["http"] = http_load.measure(body10, body30, levels=args.levels, seconds=args.seconds,
                                            venv=venv, n30=1 if args.quick else 3, repeats=args.repeats)
        levels = results["http"]["levels"]  # a list of levels, or {"skipped": why}
        if isinstance(levels, dict):  # the load levels need wrk; say so here, not only in the report
            log(f"  load levels not measured: {levels['skipped']}")

    log("4. footprint")
    results["footprint"] = {"skipped": "--skip venvs"} if "venvs" in args.skip else \
        footprint.measure(build=not args.no_build)

    if args.accuracy:
        log("5. DS2 end to end through the HTTP API")
    results["accuracy"] = measure_accuracy(args, body10) if args.accuracy else previous_accuracy(args.out)

    results["machine_at_end"] = machine()
    results["seconds"] = time.perf_counter() - started
    results["targets"] = evaluate_targets(results)
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=float) + "\n")
    md = write_markdown(results)
    (args.out / "results.md").write_text(md)
    print(md)
    log(f"wrote {args.out / 'results.json'} and {args.out / 'results.md'} in {results['seconds']:.0f} s")
    return results


if __name__ == "__main__":
    main()
