"""Hostile and odd requests, and a long run of them against a running service.

``hostile_cases()`` builds every odd input the reliability tests send (tests/test_reliability*.py
import it): broken JSON, huge numbers, deep nesting, unknown fields, raw ADC counts, clipping,
inverted polarity, noise, one or two beats, 30 and 220 bpm. Signals are made from the real
10-s strip of test_payload_10s.json (MIT-BIH record 200), so no database is needed.

As a script it sends them round and round to a service and watches one worker's memory:

    .venv/bin/python -m bench.hostile --requests 10000 [--url http://127.0.0.1:7860]

Without --url it starts its own gunicorn (one worker) on a free loopback port. It prints the
answers seen per case, any 5xx, and the worker's RSS every 1,000 requests. Run it under
``nice -n 19`` on a shared machine.
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import numpy as np

from train.cli import at_least

from .common import PROJECT_DIR, rss_kb, unreachable, worker_pids

PAYLOAD = json.loads((PROJECT_DIR / "test_payload_10s.json").read_text())
FS = PAYLOAD["sampling_rate"]
STRIP = np.asarray(PAYLOAD["signal_data"], dtype=np.float64)
# a normal beat of the strip (R peak at sample 2758, RR ~0.78 s on both sides)
BEAT_R = 2758
JSON = "application/json"


@dataclass
class Case:
    name: str
    what: str
    body: bytes
    content_type: str = JSON
    # what the service answers: a status, and for a 201 the warnings expected in metadata
    status: int = 201
    warning: str | None = None  # a substring of one of metadata.warnings (201) or of detail (4xx)


def _body(signal, **fields):
    obj = {"signal_data": np.round(np.asarray(signal, dtype=np.float64), 4).tolist(),
           "sampling_rate": FS}
    obj.update(fields)
    return json.dumps(obj).encode()


def rhythm(bpm, seconds=10.0, fs=FS):
    """Copies of one real N beat of record 200 every 60/bpm s: a regular rhythm at ``bpm``."""
    rr = 60.0 / bpm
    before = min(int(0.25 * fs), int(0.4 * rr * fs))
    after = min(int(0.45 * fs), int(0.6 * rr * fs))
    beat = STRIP[BEAT_R - before:BEAT_R + after].copy()
    beat -= np.linspace(beat[0], beat[-1], len(beat))  # ends at 0: no steps between copies
    # a little noise, as any recording has: exact copies would tie at their extremes
    x = 0.005 * np.random.default_rng(int(bpm)).standard_normal(int(seconds * fs))
    for r in np.arange(0.5 * rr, seconds, rr):
        at = int(r * fs)
        lo, hi = max(at - before, 0), min(at + after, len(x))
        x[lo:hi] += beat[lo - (at - before):hi - (at - before)]
    return x


def hostile_cases():
    """Every odd request with the answer the service gives it (docs/RELIABILITY.md's table)."""
    ok = json.dumps(PAYLOAD).encode()
    rng = np.random.default_rng(6)
    clipped = np.clip(STRIP, -1.0, 0.6)
    one_beat = np.zeros(5 * FS)
    one_beat[FS:FS + 250] = rhythm(60, 10.0)[int(4.5 * FS) - 100:int(4.5 * FS) + 150]
    two_beats = rhythm(24, 5.0)  # 2 beats in 5 s
    return [
        Case("nan_token", "NaN token in the JSON text", ok.replace(b"[", b"[NaN, ", 1),
             status=400, warning="NaN and Infinity"),
        Case("infinity_token", "Infinity / -Infinity tokens", ok.replace(b"[", b"[-Infinity, ", 1),
             status=400, warning="NaN and Infinity"),
        Case("number_1e400", "a number beyond float range (1e400)", ok.replace(b"[", b"[1e400, ", 1),
             status=400, warning="Malformed JSON"),
        Case("number_1e300", "a finite but absurd number (1e300)", ok.replace(b"[", b"[1e300, ", 1),
             status=422, warning="not a finite number within"),
        Case("nested_deep", "arrays nested 100,000 deep", b'{"signal_data": ' + b"[" * 100_000
             + b"]" * 100_000 + b"}", status=400, warning="Malformed JSON"),
        Case("nested_signal", "signal_data as an array of arrays",
             json.dumps({"signal_data": [[0.1, 0.2]] * 400}).encode(), status=422,
             warning="an array"),
        # numpy's own type discovery would make this a string array: 1 MB for every sample
        Case("long_string", "a 1-MB string among the samples",
             ok.replace(b"[", b'["' + b"x" * 1_000_000 + b'", ', 1), status=422,
             warning="a string"),
        Case("not_an_object", "a JSON array as the body", b"[1, 2, 3]", status=422,
             warning="Validation failed"),
        Case("empty_body", "an empty body", b"", status=400, warning="empty"),
        Case("not_utf8", "bytes that are not UTF-8", b"\xff\xfe\x00{", status=400,
             warning="Malformed JSON"),
        Case("text_plain", "the right JSON sent as text/plain", ok, content_type="text/plain",
             status=415, warning="application/json"),
        Case("unknown_fields", "unknown fields beside the real ones",
             _body(STRIP, sampling_frequency=250, extra={"a": [1, 2]}), warning="unknown field"),
        Case("adc_counts", "raw ADC counts (1024 + 200 per mV)", _body(np.round(1024 + 200 * STRIP)),
             warning="in millivolts?"),
        Case("clipped", "saturated at -1.0 / +0.6 mV", _body(clipped), warning="clipped"),
        Case("inverted", "inverted polarity (the strip times -1)", _body(-STRIP)),
        Case("noise", "white noise only, 0.5 mV", _body(0.5 * rng.standard_normal(len(STRIP)))),
        Case("flat", "a flat line", _body(np.zeros(len(STRIP))), status=422,
             warning="No heartbeat"),
        Case("volts", "a lead in volts (the strip / 1000)", _body(STRIP / 1000.0), status=422,
             warning="signal_data is read in millivolts"),
        Case("one_beat", "5 s holding a single beat", _body(one_beat), warning="beat(s) detected"),
        Case("two_beats", "5 s holding two beats (24 bpm)", _body(two_beats),
             warning="beat(s) detected"),
        Case("bpm_30", "a regular rhythm at 30 bpm (real beats, 10 s)", _body(rhythm(30))),
        Case("bpm_220", "a regular rhythm at 220 bpm (real beats, 10 s)", _body(rhythm(220))),
        Case("too_short", "4 s at 360 Hz (under the 5-s minimum)", _body(STRIP[:4 * FS]),
             status=422, warning="At least 5 s"),
        Case("rate_as_string", '"sampling_rate": "360"', _body(STRIP, sampling_rate="360"),
             status=422, warning="sampling_rate"),
    ]


# --- the long run -----------------------------------------------------------------------

def post(url, case, timeout=60):
    req = urllib.request.Request(url + "/api/v1/predictions", data=case.body, method="POST",
                                 headers={"Content-Type": case.content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def start_server(workers=1):
    from tests.service_helpers import start_gunicorn

    return start_gunicorn({"WEB_CONCURRENCY": str(workers), "GUNICORN_THREADS": "2"})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=at_least(int, 1), default=10_000)
    ap.add_argument("--url", help="a running service (default: start a 1-worker gunicorn)")
    ap.add_argument("--master-pid", type=int, help="with --url: gunicorn master, to read RSS")
    args = ap.parse_args(argv)
    why = args.url and unreachable(args.url)
    if why:
        print(f"hostile: {why}", file=sys.stderr)
        return 2

    proc = None
    if args.url:
        url, master = args.url, args.master_pid
    else:
        proc, url = start_server()
        master = proc.pid
    cases = hostile_cases()
    seen, server_errors = {}, 0
    try:
        pids = worker_pids(master) if master else []
        rss = [(0, rss_kb(pids[0]))] if pids else []
        t0 = time.monotonic()
        for i in range(args.requests):
            case = cases[i % len(cases)]
            status, _ = post(url, case)
            seen.setdefault(case.name, set()).add(status)
            server_errors += status >= 500
            if pids and (i + 1) % 1000 == 0:
                rss.append((i + 1, rss_kb(pids[0])))
                print(f"{i + 1} requests, worker RSS {rss[-1][1] / 1024:.1f} MB, "
                      f"{time.monotonic() - t0:.0f} s, load {os.getloadavg()[0]:.2f}", flush=True)
        if pids and worker_pids(master) != pids:
            print(f"worker changed during the run: {pids} -> {worker_pids(master)}")
    finally:
        if proc is not None:
            from tests.service_helpers import stop

            stop(proc)
    print(json.dumps({"requests": args.requests, "server_errors": server_errors,
                      "statuses": {k: sorted(v) for k, v in seen.items()},
                      "rss_kb": rss, "loadavg": os.getloadavg()}, indent=1))
    return 1 if server_errors else 0


if __name__ == "__main__":
    sys.path.insert(0, str(PROJECT_DIR))
    sys.exit(main())
