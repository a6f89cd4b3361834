"""``python -m bench.holter``: whole-day recordings through POST /api/v1/recordings, side by side.

1. speed and memory: the 24-h MIT-BIH day (360 Hz, one lead) and the 24-h 3-lead 1000-Hz
   file, each one in-process WSGI request (the upload streamed from disk, as gunicorn
   hands it) in a fresh process: wall time, CPU seconds, the worker's and each
   analysing process's peak RSS (VmHWM), with 2 processes and with 1;
2. the same beats: each of the 48 records alone, its 30-min path (``service.inference.predict``)
   against the chunked path at the service's settings and at 5-min chunks with
   512-beat pools (many more borders);
3. the day's report against the reference annotations, counted the same way (``ecg.holter``),
   its pauses matched to the reference's;
4. a lead off overnight: the day with its lead off from 4 h to 14 h, flat, carrying mains hum,
   the amplifier's noise (white, 5 and 50 uV RMS), nstdb's muscle noise alone (0.5 mV RMS) or a
   random-walk drift (0.5 mV per square-root second) clipped at the amplifier's rails
   (``bench.holter_data.build_lead_off``):
   detections inside it, seconds judged unreadable, the heart rate, PVCs per hour, V Se/+P over
   the rest, time and memory.

Writes ``bench/holter_results.json`` and prints a Markdown summary. The recordings are
built under ``--work`` (``bench.holter_data``; 0.6 GB, not committed). Targets: 24 h at
360 Hz in <= 17 s on 2 cores (>= 5,000x real time), worker peak RSS <= 400 MB.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .common import PROJECT_DIR, log, machine, mitdb_dir

BENCH_DIR = Path(__file__).resolve().parent
DAY_S = 86400.0
TARGET_S, TARGET_RSS_MB = 17.0, 400.0


# --- 1. one request in a fresh process --------------------------------------------------


def _descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        out += [int(k) for k in kids]
        todo += [int(k) for k in kids]
    return out


def _status(pid):
    """(VmHWM MB, CPU seconds) of a live process, or None."""
    try:
        hwm = next(int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith("VmHWM:"))
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return hwm / 1024.0, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, ValueError):
        return None


def one_request(path, processes, include_beats):
    """Child side: one POST of ``path``; prints a JSON line of timings, memory and the report."""
    from service import create_app

    app = create_app({"MODEL_DIR": str(PROJECT_DIR / "models" / "ecg_nv_cnn"), "LOG_LEVEL": "WARNING",
                      "RECORDING_PROCESSES": processes, "RECORDING_TIMEOUT_S": 3600.0})
    client = app.test_client()
    seen, stop = {}, threading.Event()

    def sample():  # the analysing processes' peak RSS and CPU, last seen alive
        while not stop.is_set():
            for pid in _descendants(os.getpid()):
                s = _status(pid)
                if s:
                    seen[pid] = s
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0, t0 = os.times(), time.perf_counter()
    with open(path, "rb") as f:
        r = client.post("/api/v1/recordings" + ("?include_beats=true" if include_beats else ""),
                        input_stream=f, content_length=os.path.getsize(path),
                        content_type="application/octet-stream")
    wall, cpu1 = time.perf_counter() - t0, os.times()
    stop.set()
    sampler.join()
    report = r.get_json()
    own_rss, _ = _status(os.getpid())
    print(json.dumps({
        "status": r.status_code, "wall_s": wall, "worker_cpu_s": cpu1.user - cpu0.user + cpu1.system - cpu0.system,
        "worker_peak_rss_mb": own_rss, "children": sorted(seen.values(), reverse=True),
        "loadavg_after": os.getloadavg()[0], "report": report}))


def run_request(path, processes, include_beats=False):
    """:func:`one_request` in a fresh interpreter (clean RSS); returns its figures."""
    code = f"from bench.holter import one_request; one_request({str(path)!r}, {processes}, {include_beats})"
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if res["status"] != 201:
        raise RuntimeError(f"{path.name}: {res['status']} {res['report']}")
    res["cpu_s"] = res["worker_cpu_s"] + sum(cpu for _, cpu in res["children"])
    res["speed_x_real_time"] = res["report"]["duration_s"] / res["wall_s"]
    return res


# --- 2. the same beats as the 30-min path ----------------------------------------------


def same_beats(data_dir, work):
    """Each record alone: predict() against the chunked analysis, at two settings."""
    from service import holter, inference
    from service.edf import open_channel
    from service.model import load_model
    from train.data import ALL_RECORDS, load_record

    from .edf_files import write_edf

    model_dir = PROJECT_DIR / "models" / "ecg_nv_cnn"
    settings = {"service (30-min chunks, 4096-beat pools)": (1800.0, None),
                "5-min chunks, 512-beat pools": (300.0, 512)}
    out = {name: {"records": 0, "beats": 0, "borders": 0, "records_differing": [], "position_diffs": 0,
                  "label_diffs": 0, "max_confidence_diff": 0.0} for name in settings}
    for rec_name in ALL_RECORDS:
        rec = load_record(rec_name, data_dir)
        path = Path(work) / f"{rec_name}.edf"
        write_edf(path, [rec.signal], 360, [rec.lead])
        ch = open_channel(path)
        x = ch.read(0, ch.n_samples)
        for name, (chunk_s, pool) in settings.items():
            model = load_model(model_dir)
            if pool:
                model.card["decision"]["pooling"]["pool_size_beats"] = pool
            whole = inference.predict(model, x, ch.fs)["beat_predictions"]
            got = holter.analyse(model, model_dir, ch, holter.Settings(processes=1, chunk_s=chunk_s))
            _compare(out[name], rec_name, whole, got, ch, chunk_s, pool)
        path.unlink()
    return out


def _compare(acc, rec_name, whole, got, ch, chunk_s, pool):
    pos = np.array([b["position_sample"] for b in whole])
    lab = np.array([b["arrhythmia_type"] == "V" for b in whole])
    conf = np.array([b["confidence"] for b in whole])
    acc["records"] += 1
    acc["beats"] += len(pos)
    acc["borders"] += int(np.ceil(ch.duration_s / chunk_s)) - 1 + (len(pos) // pool if pool else 0)
    if len(pos) != len(got["positions"]) or (pos != got["positions"]).any():
        acc["position_diffs"] += len(np.setxor1d(pos, got["positions"]))
        acc["records_differing"].append(rec_name)
        return
    ours = np.where(got["is_v"], got["p_v"], 1 - got["p_v"])
    acc["label_diffs"] += int((lab != got["is_v"]).sum())
    acc["max_confidence_diff"] = max(acc["max_confidence_diff"], float(np.abs(conf - ours).max()))
    if (lab != got["is_v"]).any():
        acc["records_differing"].append(rec_name)


# --- 3. the day's report against the reference ------------------------------------------

COMPARED = ("total_beats", "ventricular_beats", "pvc_burden_percent", "isolated_pvcs", "couplets",
            "triplets", "ventricular_runs", "nsvt_runs", "bigeminy_episodes", "trigeminy_episodes")


def _counts(summary):
    runs = summary["ventricular_runs"]
    out = {k: summary[k] for k in COMPARED if k not in ("ventricular_runs", "nsvt_runs")}
    out["ventricular_runs"] = len(runs)
    out["nsvt_runs"] = sum(r["kind"] == "NSVT" for r in runs)
    return out


def report_errors(report, ref, beats=None):
    """The report's counts against the reference's, counted the same way (``ecg.holter``)."""
    from ecg import holter
    from ecg.ec57 import end_to_end_metrics

    ref_v = ref["classes"] == "V"
    ref_summary = holter.holter_summary(ref["samples"] / 360.0, ref_v, report["duration_s"])
    got, want = _counts(report), _counts(ref_summary)
    table = {k: {"service": got[k], "reference": want[k], "error": got[k] - want[k],
                 "relative_error_percent": 100.0 * (got[k] - want[k]) / want[k] if want[k] else None}
             for k in COMPARED}
    out = {"counts": table, "pauses": pause_matches(report, ref)}
    if beats is not None:
        samples = np.array([b["sample"] for b in beats])
        labels = np.array([b["type"] for b in beats])
        e2e = end_to_end_metrics(ref["samples"], np.where(ref_v, "V", "N"), samples, labels, 360, ref["excluded"])
        out["ec57_v"] = {k: e2e["matched"][k] for k in ("Se", "PPV", "F1")}
        out["qrs"] = {k: e2e["qrs"][k] for k in ("Se", "PPV")}
        out["per_record_burden"] = _per_record_burden(samples, labels == "V", ref, ref_v)
    return out


def pause_matches(report, ref):
    """The report's pauses against the reference beats' (``ecg.holter.pauses``, leaving out the
    stretches the reference excludes), matched when they overlap: for pauses of 2 s and of 3 s
    or more, how many each has and how many of each the other matches."""
    from ecg import holter

    ours = np.array([[p["start_s"], p["start_s"] + p["duration_s"]] for p in report["pauses"]]).reshape(-1, 2)
    theirs = holter.pauses(ref["samples"] / 360.0, unseen=ref["excluded"] / 360.0)

    def matched(a, b):
        return int(sum(np.any((b[:, 0] < x1) & (b[:, 1] > x0)) for x0, x1 in a))

    out = {}
    for low in (holter.PAUSE_S, holter.LONG_PAUSE_S):
        a, b = (x[x[:, 1] - x[:, 0] >= low] for x in (ours, theirs))
        out[f"{low:g} s"] = {"service": len(a), "reference": len(b), "service_matched": matched(a, b),
                             "reference_matched": matched(b, a)}
    return out


def _per_record_burden(samples, is_v, ref, ref_v):
    """Each record as a 30-min patient: its PVC burden error (percentage points)."""
    edges = np.r_[ref["record_starts"], ref["n"]]
    errors = []
    for a, b in zip(edges[:-1], edges[1:]):
        mine, theirs = (samples >= a) & (samples < b), (ref["samples"] >= a) & (ref["samples"] < b)
        if mine.any() and theirs.any():
            errors.append(100.0 * (is_v[mine].mean() - ref_v[theirs].mean()))
    e = np.abs(errors)
    return {"median_abs_pp": float(np.median(e)), "p90_abs_pp": float(np.percentile(e, 90)),
            "max_abs_pp": float(e.max()), "records_within_1pp": int((e <= 1.0).sum()), "records": len(e)}


# --- 4. a lead off overnight -------------------------------------------------------------

LEAD_OFF_SPAN_S = (4 * 3600.0, 14 * 3600.0)  # a night without the electrode
# 0 mV; 50-Hz mains hum as a floating electrode picks up; white noise, an open input's own; muscle
# noise and a wandering input, which the detector finds beats in (ECG_NOISE_DIR for the muscle noise)
LEAD_OFF_VARIANTS = {"flat": {}, "hum": {"hum_mv": 0.5}, "noise_5uV": {"noise_mv": 0.005},
                     "noise_50uV": {"noise_mv": 0.05}, "muscle_0.5mV": {"muscle_mv": 0.5},
                     "drift_0.5mV": {"drift_mv": 0.5}}


def lead_off_figures(report, ref, lo_s, hi_s):
    """What a lead off from ``lo_s`` to ``hi_s`` (s) leaves in the day's ``report`` (with its beats):
    detections inside it and how many are called V, seconds judged unreadable, the mean and maximum
    heart rate, PVCs per hour, pauses, and V Se/+P over the rest (EC57 matching, a missed PVC a false
    negative and an unmatched V call a false positive; the reference's excluded stretches and the
    lead off left out)."""
    from ecg.ec57 import end_to_end_metrics

    samples = np.array([b["sample"] for b in report["beats"]])
    labels = np.array([b["type"] for b in report["beats"]])
    off = np.array([[lo_s, hi_s]]) * 360
    excluded = np.concatenate([ref["excluded"].reshape(-1, 2), off]).astype(np.int64)
    e2e = end_to_end_metrics(ref["samples"], np.where(ref["classes"] == "V", "V", "N"), samples, labels, 360,
                             excluded)
    inside = (samples >= off[0, 0]) & (samples < off[0, 1])
    return {"total_beats": report["total_beats"], "detections_inside": int(np.count_nonzero(inside)),
            "v_inside": int(np.count_nonzero(inside & (labels == "V"))),
            "unreadable_seconds": report["unreadable_seconds"], "heart_rate_mean_bpm": report["heart_rate_bpm"]["mean"],
            "heart_rate_max_bpm": report["heart_rate_bpm"]["max"],
            "pvc_per_hour": report["pvc_per_hour"], "pauses": len(report["pauses"]),
            "v_outside": {k: e2e["strict"][k] for k in ("Se", "PPV")}}


def lead_off_runs(day, work):
    """Section 4: each lead-off variant of ``day`` through one request, 2 processes."""
    from .holter_data import build_lead_off, load_reference

    out, ref = {}, load_reference(day)
    for name, carrying in LEAD_OFF_VARIANTS.items():
        path = work / f"mitdb_day_lead_off_{name}.edf"
        if not path.exists():
            log("building", path)
            build_lead_off(day, path, *LEAD_OFF_SPAN_S, **carrying)
        log(f"lead off, {name}: 2 processes")
        res = run_request(path, 2, include_beats=True)
        out[name] = {**lead_off_figures(res["report"], ref, *LEAD_OFF_SPAN_S),
                     **{k: res[k] for k in ("wall_s", "worker_peak_rss_mb", "children")}}
    return out


# --- the run --------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.holter", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ecg-holter-bench")
    ap.add_argument("--out", type=Path, default=BENCH_DIR / "holter_results.json")
    ap.add_argument("--skip-same-beats", action="store_true")
    ap.add_argument("--lead-off-only", action="store_true", help="section 4 alone, its results printed")
    args = ap.parse_args(argv)
    data = mitdb_dir()
    if data is None:
        sys.exit("bench.holter: MIT-BIH not found (ECG_DATA_DIR, data/mitdb, ../shared/data/mitdb)")
    for folder in (args.work, args.out.parent):  # told now, not after minutes of work
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            sys.exit(f"bench.holter: {folder}: cannot be created ({exc.strerror})")
    from .holter_data import build_day, build_three_lead, load_reference

    day, big = args.work / "mitdb_day.edf", args.work / "three_lead_1000.edf"
    if not day.exists():
        log("building", day)
        build_day(day, data)
    if args.lead_off_only:
        print(json.dumps(lead_off_runs(day, args.work), indent=1, default=float))
        return
    if not big.exists():
        log("building", big)
        build_three_lead(big, data)
    results = {"machine_before": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    for name, path in (("day_360hz_1_lead", day), ("day_1000hz_3_leads", big)):
        for procs in (2, 1):
            log(f"{name}: {procs} process(es)")
            res = run_request(path, procs, include_beats=(name.startswith("day_360") and procs == 2))
            if "beats" in res["report"]:
                results["day_report_errors"] = report_errors(res["report"], load_reference(day),
                                                             res["report"].pop("beats"))
            res["report"].pop("hourly")
            results[f"{name}_{procs}p"] = res
    results["lead_off"] = lead_off_runs(day, args.work)
    if not args.skip_same_beats:
        log("same beats: 48 records, two settings")
        with tempfile.TemporaryDirectory() as tmp:
            results["same_beats"] = same_beats(data, tmp)
    results["machine_after"] = machine()
    args.out.write_text(json.dumps(results, indent=1, default=float))
    print(summary_markdown(results))


def summary_markdown(r):
    lines = ["| recording | processes | wall s | x real time | CPU s | worker peak RSS MB | "
             "each child's peak RSS MB | load avg after |", "|---|---|---|---|---|---|---|---|"]
    for name in ("day_360hz_1_lead", "day_1000hz_3_leads"):
        for procs in (2, 1):
            x = r.get(f"{name}_{procs}p")
            if x:
                kids = ", ".join(f"{m:.0f}" for m, _ in x["children"]) or "-"
                lines.append(f"| {name} | {procs} | {x['wall_s']:.1f} | {x['speed_x_real_time']:,.0f} | "
                             f"{x['cpu_s']:.1f} | {x['worker_peak_rss_mb']:.0f} | {kids} | {x['loadavg_after']:.1f} |")
    if "day_report_errors" in r:
        lines += ["", "| count | service | reference | error | relative |", "|---|---|---|---|---|"]
        for k, v in r["day_report_errors"]["counts"].items():
            rel = "-" if v["relative_error_percent"] is None else f"{v['relative_error_percent']:+.1f}%"
            lines.append(f"| {k} | {v['service']:.6g} | {v['reference']:.6g} | {v['error']:+.4g} | {rel} |")
        for low, v in r["day_report_errors"]["pauses"].items():
            lines.append(f"\npauses of {low} or more: service {v['service']} ({v['service_matched']} matching the "
                         f"reference's), reference {v['reference']} ({v['reference_matched']} found)")
    for name, v in (r.get("same_beats") or {}).items():
        lines.append(f"\nsame beats, {name}: {v['records']} records, {v['beats']} beats, ~{v['borders']} borders: "
                     f"{v['position_diffs']} position and {v['label_diffs']} label differences, "
                     f"max confidence difference {v['max_confidence_diff']:.1e}, records differing: "
                     f"{v['records_differing'] or 'none'}")
    if r.get("lead_off"):
        lines += ["", "| lead off 4-14 h | total beats | detections inside (V) | unreadable s | HR mean / max bpm | "
                  "PVCs per hour | pauses | V Se / +P outside | wall s | worker, children's peak RSS MB |",
                  "|---" * 10 + "|"]
        for name, v in r["lead_off"].items():
            kids = ", ".join(f"{m:.0f}" for m, _ in v["children"])
            lines.append(f"| {name} | {v['total_beats']:,} | {v['detections_inside']:,} ({v['v_inside']}) | "
                         f"{v['unreadable_seconds']:,.0f} | {v['heart_rate_mean_bpm']} / {v['heart_rate_max_bpm']} | "
                         f"{v['pvc_per_hour']} | {v['pauses']} | "
                         f"{v['v_outside']['Se']:.4f} / {v['v_outside']['PPV']:.4f} | {v['wall_s']:.1f} | "
                         f"{v['worker_peak_rss_mb']:.0f}; {kids} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
