"""Targets met or not, and the Markdown table of bench/results.md."""

from .inprocess import STAGES

TARGETS = {
    # the serving-only venv on a PGO + LTO CPython, as the Space's image runs it (bench.interpreters)
    "inprocess_10s_median_ms": ("10-s strip in-process, median (serving-only venv, as deployed)", "<=", 2.0, "ms"),
    # the same, in the bench's own process: the project's .venv on pyenv's CPython (no PGO, no LTO)
    "inprocess_10s_median_ms_project_venv": ("10-s strip in-process, median (project .venv, pyenv CPython)",
                                             "<=", 2.0, "ms"),
    "predict_over_onnx_10s": ("10-s strip: model.predict path / ONNX path", ">=", 25.0, "x"),
    "http_c16_req_per_s": ("HTTP 10-s strips, concurrency 16: throughput", ">=", 400.0, "req/s"),
    "http_c16_p99_ms": ("HTTP 10-s strips, concurrency 16: p99", "<=", 50.0, "ms"),
    "http_c16_errors": ("HTTP 10-s strips, concurrency 16: errors", "<=", 0, ""),
    "inprocess_30min_median_s": ("30-min record in-process, median", "<=", 0.5, "s"),
    "worker_rss_mb": ("serving worker RSS after warm-up (largest worker)", "<=", 150.0, "MB"),
    "venv_api_over_tf": ("serving venv / TensorFlow venv size", "<=", 0.2, "x"),
}


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def figures(r):
    f = {}
    # both rows from part 1b, timed the same way (part 1 alternates the whole call with the
    # staged one, which costs the whole call ~0.1-0.25 ms of cache misses); part 1's own
    # figure when 1b did not run
    f["inprocess_10s_median_ms_project_venv"] = (_get(r, "interpreters", "project_venv", "median_ms")
                                                 or _get(r, "inprocess", "10s", "whole", "median_ms"))
    f["inprocess_10s_median_ms"] = _get(r, "interpreters", "serving_venv", "median_ms")
    m30 = _get(r, "inprocess", "30min", "whole", "median_ms")
    f["inprocess_30min_median_s"] = m30 / 1000 if m30 is not None else None
    tf10 = _get(r, "tensorflow", "request_10s")
    if tf10 and "onnx" in tf10:
        f["predict_over_onnx_10s"] = tf10["keras_predict"]["median_ms"] / tf10["onnx"]["median_ms"]
    levels = _get(r, "http", "levels")
    c16 = next((lv for lv in levels if lv["connections"] == 16), None) if isinstance(levels, list) else None
    if c16:
        f["http_c16_req_per_s"], f["http_c16_p99_ms"], f["http_c16_errors"] = \
            c16["req_per_s"], c16["p99_ms"], c16["errors"]
    rss = _get(r, "http", "rss_workers_after_load_mb")
    f["worker_rss_mb"] = max(rss) if rss else None
    f["venv_api_over_tf"] = _get(r, "footprint", "api_over_tensorflow")
    return f


def evaluate_targets(r):
    f = figures(r)
    out = {}
    for key, (what, op, target, unit) in TARGETS.items():
        v = f.get(key)
        met = None if v is None else (v <= target if op == "<=" else v >= target)
        out[key] = {"what": what, "value": v, "target": f"{op} {target:g} {unit}".strip(), "met": met}
    return out


def _fmt(v, digits=2):
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.{digits}f}" if abs(v) >= 0.1 else f"{v:.3f}"


def write_markdown(r):
    """``bench/results.md``'s text from a results dict (``bench/results.json``): the targets,
    then one section per part of the bench that ran (or why it did not)."""
    h, tf = r.get("http", {}), r.get("tensorflow", {})
    sections = [_md_summary(r), _md_inprocess(r.get("inprocess", {})), _md_interpreters(r.get("interpreters", {})),
                _md_tensorflow(tf), _md_http(h), _md_footprint(r.get("footprint", {}), h, tf),
                _md_accuracy(r.get("accuracy", {}))]
    return "\n".join(line for lines in sections for line in lines) + "\n"


def _md_summary(r):
    L = []
    m0, m1 = r.get("machine_at_start", {}), r.get("machine_at_end", {})
    busy = m0.get("training_jobs_running") or m1.get("training_jobs_running")
    L.append(f"Measured {r['created_at']} on {m0.get('cpus')} cores (Python {m0.get('python')}), "
             f"`{r['command']}`, {r['seconds']:.0f} s. "
             + ("**A training job shared the cores during this run.**" if busy else
                "No training job ran during the run.")
             + (" **--quick: tiny counts, not figures to quote.**" if r.get("quick") else ""))
    L.append("")
    L.append("| target | measured | target | met |")
    L.append("|---|---|---|---|")
    for key, t in r["targets"].items():
        unit = TARGETS[key][3]
        met = {True: "met", False: "**not met**", None: "not measured"}[t["met"]]
        L.append(f"| {t['what']} | {_fmt(t['value'])} {unit} | {t['target']} | {met} |")
    L.append("")
    return L


def _md_inprocess(ip):
    L = []
    cols = [k for k in ("10s", "30min") if "whole" in ip.get(k, {})]
    if cols:
        L.append("In-process request path (one WSGI call per request, as gunicorn makes it), ms:")
        L.append("")
        L.append("| stage | " + " | ".join(f"{ip[c]['label']} ({ip[c]['beats']} beats), median" for c in cols) + " |")
        L.append("|---|" + "---|" * len(cols))
        for s in STAGES:
            L.append(f"| {s} | " + " | ".join(_fmt(ip[c]["stages"][s]["median_ms"], 3) for c in cols) + " |")
        L.append("| framework (Flask, webargs, hooks: whole − stages) | "
                 + " | ".join(_fmt(ip[c]["framework_ms"], 3) for c in cols) + " |")
        L.append("| **whole request, median** | "
                 + " | ".join(f"**{_fmt(ip[c]['whole']['median_ms'], 3)}**" for c in cols) + " |")
        L.append("| whole request, p99 | " + " | ".join(_fmt(ip[c]["whole"]["p99_ms"], 3) for c in cols) + " |")
        L.append("| slowest stage | " + " | ".join(ip[c]["slowest_stage"] for c in cols) + " |")
        L.append("")
        casc = [(ip[c]["label"], ip[c]["cascade"]) for c in cols if ip[c].get("cascade")]
        if casc:
            L.append(f"The model is served as a cascade (`decision.cascade` in its card): the first of its "
                     f"{casc[0][1]['members']} members on every beat, the others only on beats near the "
                     "threshold: "
                     + "; ".join(f"{label}, {d['sent']} of {d['beats']} beats" for label, d in casc) + ".")
            L.append("")
    for k in ("10s", "30min"):
        if "skipped" in ip.get(k, {}):
            L.append(f"In-process {k}: skipped ({ip[k]['skipped']}).")
    return L


def _md_interpreters(it):
    L = []
    if "serving_venv" in it:
        L.append("The whole 10-s request (one WSGI call, as above) in each venv, in processes of their own "
                 f"alternated round by round ({it['rounds']} rounds of {it['requests_per_run']} requests; "
                 "the median of the rounds' medians), ms:")
        L.append("")
        L.append("| venv | interpreter | median | p99 | each round's median |")
        L.append("|---|---|---|---|---|")
        names = {"serving_venv": "serving-only (requirements-api.txt, as in the image; also gunicorn's below)",
                 "project_venv": "the project's .venv (the stages above, the TensorFlow comparison)"}
        for k in ("serving_venv", "project_venv"):
            v = it[k]
            L.append(f"| {names[k]} | CPython {v['python']} ({v.get('base_executable', v['executable'])}) | "
                     f"**{_fmt(v['median_ms'], 3)}** | "
                     f"{_fmt(v['p99_ms'], 3)} | {', '.join(_fmt(m, 3) for m in v['run_medians_ms'])} |")
        L.append("")
        L.append(f"Serving interpreter: {it.get('serving_interpreter')}. The project's .venv over the "
                 f"serving-only venv: {_fmt(it['project_over_serving'], 3)}x.")
        L.append("")
    elif "skipped" in it:
        L.append(f"Serving-only venv against the project's: skipped ({it['skipped']}).")
        L.append("")
    return L


def _md_tensorflow(tf):
    L = []
    if "skipped" in tf:
        L.append(f"TensorFlow path: skipped ({tf['skipped']}).")
    elif tf:
        src = tf["model_source"]
        L.append("TensorFlow path, same process, same request path and preprocessing, in alternating "
                 "blocks of calls, the first calls of each block not kept (column \"warm-up\"), so that "
                 f"each path is timed warm as in a server of its own (Keras model: {src['kind']}"
                 + (f"; {src['note']}" if src.get("note") else "") + "), median ms:")
        L.append("")
        L.append("| | ONNX Runtime | Keras `model.predict` | Keras `model(x)` | predict / ONNX | call / ONNX "
                 "| warm-up calls per block |")
        L.append("|---|---|---|---|---|---|---|")
        rows = [("model only, 10-s strip beats", tf.get("model_only_10s")),
                ("whole request, 10-s strip", tf.get("request_10s")),
                ("whole request, 30-min record", tf.get("request_30min"))]
        for name, d in rows:
            if not d or "onnx" not in d:
                continue
            o, p, c = d["onnx"]["median_ms"], d["keras_predict"]["median_ms"], d["keras_call"]["median_ms"]
            L.append(f"| {name} ({d.get('beats')} beats) | {_fmt(o, 3)} | {_fmt(p)} | {_fmt(c)} | "
                     f"{_fmt(p / o)}x | {_fmt(c / o)}x | {d.get('settle_calls', '')} |")
        L.append("")
        alt = (tf.get("request_10s") or {}).get("alternated_per_call")
        if alt:
            o, p = alt["onnx"]["median_ms"], alt["keras_predict"]["median_ms"]
            L.append(f"Alternated call by call instead, each ONNX call right after a TensorFlow one finds "
                     f"TensorFlow's data in the CPU caches: 10-s request path {_fmt(o, 3)} ms with ONNX, "
                     f"{_fmt(p)} ms with `model.predict` ({_fmt(p / o)}x). Not used for the ratios: the two "
                     "never share a process in production.")
            L.append("")
    return L


def _md_http(h):
    L = []
    if "skipped" in h:
        L.append(f"HTTP: skipped ({h['skipped']}).")
    elif h:
        conf = h.get("server", {}).get("gunicorn_conf", {})
        L.append(f"HTTP, 10-s strips, `{h['server']['command']}` on {h['server']['bind']} "
                 f"({conf.get('workers')} workers x {conf.get('threads')} threads, {conf.get('worker_class')}), "
                 f"{h['generator']}:")
        L.append("")
        if isinstance(h.get("levels"), list):
            reps = max(lv.get("repeats", 1) for lv in h["levels"])
            if reps > 1:
                L.append(f"Each concurrency is {reps} wrk runs on fresh connections (each run splits them anew "
                         "between the workers); the figures are their medians, errors their sum.")
                L.append("")
            L.append("| concurrency | req/s | p50 ms | p99 ms | errors | server CPU ms/req | wrk CPU (share of a core) "
                     "| each run: req/s / p99 ms |")
            L.append("|---|---|---|---|---|---|---|---|")
            trivial = [{**h["trivial_endpoint"], "label": "GET /health"}] if h.get("trivial_endpoint") else []
            for lv in h["levels"] + trivial:
                name = lv.get("label", "") + f" c={lv['connections']}" if lv.get("label") else str(lv["connections"])
                each = ", ".join(f"{_fmt(r['req_per_s'])} / {_fmt(r['p99_ms'])}" for r in lv.get("runs", []))
                L.append(f"| {name} | {_fmt(lv['req_per_s'])} | {_fmt(lv['p50_ms'])} | {_fmt(lv['p99_ms'])} | "
                         f"{lv['errors']} | {_fmt(lv.get('server_cpu_ms_per_request'))} | "
                         f"{100 * lv['generator_cpu_share_of_one_core']:.0f}% | {each} |")
        else:
            L.append(f"Load levels: skipped ({h['levels'].get('skipped')}).")
        L.append("")
        rec = h.get("record_30min")
        if rec:
            L.append(f"One 30-min record over HTTP ({rec['request_mb']:.1f} MB of JSON): "
                     f"{_fmt(rec['median_s'], 3)} s median of {len(rec['seconds'])}, statuses {rec['statuses']}.")
        L.append(f"Cold start, process start to the first 201: {_fmt(h.get('cold_start_to_first_201_s'))} s.")
        L.append("")
    return L


def _md_footprint(fp, h, tf):
    L = []
    L.append("Footprint:")
    L.append("")
    L.append("| | value |")
    L.append("|---|---|")
    if h.get("rss_workers_after_load_mb"):
        L.append(f"| serving worker RSS after load, MB (each worker) | "
                 f"{', '.join(_fmt(v, 0) for v in h['rss_workers_after_load_mb'])} |")
    if h.get("rss_workers_after_30min_mb"):
        L.append(f"| serving worker RSS after the 30-min record, MB | "
                 f"{', '.join(_fmt(v, 0) for v in h['rss_workers_after_30min_mb'])} |")
    if tf.get("rss_keras_process_mb"):
        L.append(f"| process with the Keras model loaded and run, RSS MB | {_fmt(tf['rss_keras_process_mb'], 0)} |")
    for k in ("api", "tensorflow", "project_full_venv"):
        v = fp.get(k)
        if v and "size_mb" in v:
            L.append(f"| venv: {v['what']}, MB | {_fmt(v['size_mb'], 0)} |")
        elif v:
            L.append(f"| venv: {v['what']} | skipped: {v['skipped']} |")
    if fp.get("api_over_tensorflow"):
        L.append(f"| serving venv / TensorFlow venv | {_fmt(fp['api_over_tensorflow'], 3)} |")
    L.append("")
    return L


def _md_accuracy(acc):
    L = []
    if "V_matched" in acc:
        vm, vs, q = acc["V_matched"], acc["V_strict"], acc["qrs"]
        L.append(f"DS2 end to end through the HTTP API ({len(acc['records'])} records, {acc['strips']} independent "
                 f"10-s strips, EC57 matching{'; ' + acc['note'] if acc.get('note') else ''}):")
        L.append("")
        L.append("| | Se | +P | F1 | TP | FP | FN |")
        L.append("|---|---|---|---|---|---|---|")
        L.append(f"| V, matched beats | {_fmt(vm['Se'], 4)} | {_fmt(vm['PPV'], 4)} | {_fmt(vm['F1'], 4)} | "
                 f"{vm['TP']} | {vm['FP']} | {vm['FN']} |")
        L.append(f"| V, strict (missed V and false detections count) | {_fmt(vs['Se'], 4)} | {_fmt(vs['PPV'], 4)} | "
                 f"{_fmt(vs['F1'], 4)} | {vs['TP']} | {vs['FP']} | {vs['FN']} |")
        L.append(f"| QRS detection | {_fmt(q['Se'], 4)} | {_fmt(q['PPV'], 4)} | | {q['TP']} | {q['FP']} | {q['FN']} |")
        L.append("")
    elif acc:
        L.append(f"DS2 accuracy through the API: {acc.get('skipped')}.")
        L.append("")
    return L
