"""Faults against a real gunicorn on 127.0.0.1: hostile bodies, a 50 MB upload, a worker
killed under load, SIGTERM with a request in flight, SIGHUP onto a newly promoted model,
and a corrupt release. What each does is in docs/RELIABILITY.md."""

import http.client
import json
import os
import signal
import socket
import threading
import time

import pytest

from bench.common import rss_kb, worker_pids
from bench.hostile import hostile_cases
from convert.promote import install
from tests.service_helpers import PAYLOAD_PATH, PREDICT, model_copy, start_gunicorn, stop
from tests.service_helpers import http as request

BODY = PAYLOAD_PATH.read_bytes()
JSON = {"Content-Type": "application/json"}


def workers(master):
    return worker_pids(master.pid)


def wait_for(condition, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def post(base, body=BODY, headers=JSON, timeout=60):
    """One request on a new connection, as curl sends it: (status, parsed body) or (error name, None)."""
    host, port = base.rsplit("/", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("POST", PREDICT, body, headers)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__, None
    finally:
        conn.close()


@pytest.fixture(scope="module")
def server():
    # the default body limit (32 MB); two workers of two threads, as on a 2-core Space
    proc, base = start_gunicorn({"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "2"})
    wait_for(lambda: len(workers(proc)) == 2, 30, "two workers")
    yield proc, base
    stop(proc)


def _send(base, cases, concurrency=4):
    """Post the cases from ``concurrency`` clients at once (every thread of every worker works)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda c: post(base, c.body, {"Content-Type": c.content_type})[0], cases))


def test_hostile_inputs_never_5xx_and_worker_memory_stays_bounded(server):
    proc, base = server
    cases = hostile_cases()
    warm_up = cases * 5  # allocator arenas, lazy imports and caches settle first
    assert _send(base, warm_up) == [c.status for c in warm_up]
    before = {pid: rss_kb(pid) for pid in workers(proc)}
    measured = (cases * 14)[:300]
    answers = _send(base, measured)
    after = {pid: rss_kb(pid) for pid in workers(proc)}
    assert answers == [c.status for c in measured]  # each its documented answer, no 5xx
    assert after.keys() == before.keys(), "a worker died or was replaced"
    growth_mb = {pid: round((after[pid] - before[pid]) / 1024, 1) for pid in after}
    print(f"worker RSS growth over 300 hostile requests (MB): {growth_mb}")
    # bench/hostile.py, 10,000 requests: +2.3 MB after the first 1,000, flat at the end
    assert all(g < 16 for g in growth_mb.values()), growth_mb


def _raw(base, head, body_part):
    """Send a request head and only ``body_part`` of the body, then read the answer."""
    host, port = base.rsplit("/", 1)[1].split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    s.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{head}\r\n".encode())
    s.sendall(body_part)
    return s


def _read_answer(s):
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = s.recv(65536)
        if not chunk:
            break
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(next(ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")))
    while len(body) < length:
        body += s.recv(65536)
    return int(head.split()[1]), json.loads(body)


def test_a_50_mb_body_is_refused_413_before_it_is_read(server):
    proc, base = server
    before = {pid: rss_kb(pid) for pid in workers(proc)}
    # announce 50 MB, send 64 KB: the 413 comes back without the server waiting for the rest
    s = _raw(base, f"Content-Length: {50 * 1024 * 1024}\r\n", b"[" + b"0.5," * 16384)
    try:
        status, body = _read_answer(s)
    finally:
        s.close()
    assert status == 413 and "32 MB limit" in body["detail"]
    after = {pid: rss_kb(pid) for pid in workers(proc)}
    assert all(after[p] - before[p] < 8 * 1024 for p in after), (before, after)
    assert post(base)[0] == 201


def test_a_worker_killed_under_load_is_replaced_and_only_its_requests_are_lost(server):
    proc, base = server
    n_clients, results, stop_load = 6, [], threading.Event()

    def client():
        while not stop_load.is_set():
            started = time.monotonic()
            status = post(base)[0]
            results.append((started, time.monotonic(), status))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(n_clients)]
    for t in threads:
        t.start()
    wait_for(lambda: len(results) >= 20, 60, "load to start")
    victim = workers(proc)[0]
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(workers(proc)) == 2 and victim not in workers(proc), 60, "a replacement worker")
    replaced_at = time.monotonic()
    wait_for(lambda: sum(1 for t, _, _ in results if t > replaced_at) >= 20, 60, "load after the replacement")
    stop_load.set()
    for t in threads:
        t.join(timeout=60)
    lost = [(start, end, s) for start, end, s in results if s != 201]
    print(f"{len(results)} requests, {len(lost)} lost when the worker was killed: {[s for *_, s in lost]}")
    # lost: only requests in flight at the kill (started before it), at most one per client
    assert len(lost) <= n_clients
    assert all(start < killed_at for start, _, _ in lost), lost
    assert all(s == 201 for start, _, s in results if start > killed_at)
    assert request("GET", base + "/health")[2]["status"] == "healthy"


def test_sigterm_lets_the_request_in_flight_finish(tmp_path):
    proc, base = start_gunicorn({"WEB_CONCURRENCY": "1"})
    try:
        # a request in flight: its head and half its body are in, the rest still coming
        half = len(BODY) // 2
        s = _raw(base, f"Content-Length: {len(BODY)}\r\n", BODY[:half])
        time.sleep(0.5)  # the worker's thread is now reading the body
        proc.send_signal(signal.SIGTERM)
        # new connections are refused once the worker has seen the signal (within ~1 s);
        # one made before that is still answered, not dropped
        wait_for(lambda: post(base, timeout=5)[0] == "ConnectionRefusedError", 20, "refusal")
        s.sendall(BODY[half:])
        status, body = _read_answer(s)
        s.close()
        assert status == 201 and body["total_beats"] >= 1
        assert proc.wait(timeout=40) == 0
    finally:
        if proc.poll() is None:
            stop(proc)


def test_a_worker_with_no_free_thread_leaves_new_connections_to_the_other(tmp_path):
    # one thread per worker; a client holds one worker's thread (its body half sent)
    proc, base = start_gunicorn({"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "1"})
    try:
        half = len(BODY) // 2
        for _ in range(2):  # the second time, the worker held first must be listening again
            s = _raw(base, f"Content-Length: {len(BODY)}\r\n", BODY[:half])
            time.sleep(0.5)
            # every new client is served by the free worker; one accepted by the held worker
            # would wait for a thread until its timeout (each had an even chance before)
            assert [post(base, timeout=5)[0] for _ in range(6)] == [201] * 6
            s.sendall(BODY[half:])
            status, _ = _read_answer(s)
            s.close()
            assert status == 201
            # the worker notices the close with one more job on its thread; let it run first.
            # Were the next held client accepted before it, that job's end would let the
            # worker take one new client, which would wait behind the held thread: the
            # worker's rule (one new connection per finished job), not a lost request.
            # This raced about 1 run in 15 without the pause.
            time.sleep(0.5)
    finally:
        stop(proc)


def _promote(model_dir, version):
    card = json.loads((model_dir / "model.json").read_text())
    card["version"] = version
    install({"model.onnx": (model_dir / "model.onnx").read_bytes(),
             "model.json": json.dumps(card).encode()}, model_dir)


def test_sighup_serves_a_newly_promoted_model_without_failing_a_request(tmp_path):
    model_dir = model_copy(tmp_path)
    _promote(model_dir, "before-reload")
    proc, base = start_gunicorn({"WEB_CONCURRENCY": "2", "ECG_MODEL_DIR": str(model_dir)})
    try:
        results, stop_load = [], threading.Event()

        def light_load():  # one client, a request every ~50 ms
            while not stop_load.is_set():
                status, body = post(base)
                results.append((status, (body or {}).get("metadata", {}).get("model_version")))
                time.sleep(0.05)

        t = threading.Thread(target=light_load, daemon=True)
        t.start()
        wait_for(lambda: len(results) >= 5, 60, "load to start")
        old_workers = workers(proc)
        _promote(model_dir, "after-reload")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: not set(old_workers) & set(workers(proc)) and len(workers(proc)) == 2,
                 90, "the old workers to be replaced")
        mark = len(results)
        wait_for(lambda: len(results) >= mark + 10, 60, "requests after the reload")
        stop_load.set()
        t.join(timeout=60)
        failed = [r for r in results if r[0] != 201]
        versions = [v for _, v in results]
        print(f"{len(results)} requests across the reload, {len(failed)} failed")
        assert failed == []
        assert versions[0] == "before-reload" and set(versions[mark:]) == {"after-reload"}

        # a corrupt release then reloaded: workers come up degraded and stay up
        (model_dir / "model.onnx").write_bytes(b"\0" * 1000)
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: request("GET", base + "/health")[2]["status"] == "degraded"
                 and request("GET", base + "/health")[2]["status"] == "degraded", 90, "degraded workers")
        _assert_degraded_and_stable(proc, base)
    finally:
        stop(proc)


def _assert_degraded_and_stable(proc, base):
    wait_for(lambda: len(workers(proc)) == 2, 60, "two workers")
    pids = workers(proc)
    for _ in range(6):  # both workers answer: degraded with the reason, predictions 503
        status, _, body = request("GET", base + "/health")
        assert status == 200 and body["status"] == "degraded" and body["model_loaded"] is False
        assert "sha256 of model.onnx" in body["reason"]
        status, answer = post(base)
        assert status == 503 and "sha256" in answer["detail"]
    time.sleep(2)
    assert workers(proc) == pids, "workers restarted: a crash loop"
    assert proc.poll() is None


def test_a_corrupt_model_at_start_leaves_the_service_degraded_not_crashing(tmp_path):
    model_dir = model_copy(tmp_path)
    blob = (model_dir / "model.onnx").read_bytes()
    (model_dir / "model.onnx").write_bytes(blob[: len(blob) // 2])  # a half-copied file
    proc, base = start_gunicorn({"WEB_CONCURRENCY": "2", "ECG_MODEL_DIR": str(model_dir)})
    try:
        _assert_degraded_and_stable(proc, base)
    finally:
        stop(proc)
