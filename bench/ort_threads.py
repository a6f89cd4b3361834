"""Would a second ONNX Runtime thread per worker make a request faster?

``python -m bench.ort_threads``: the whole 10-s request path (one WSGI call, as in
``bench.inprocess``) with the served graphs in sessions of 1 thread (the service's
setting), 2 threads without spinning, and 2 threads spinning only inside a run
(``session.force_spinning_stop``: the pool stops spinning when the run ends, so a
worker does not burn the other core between requests). Alternating blocks of calls,
median wall time and CPU time per request. Not part of ``python -m bench``: it
answers one design question, and its answer is in docs/PERFORMANCE.md.
"""

import contextlib
import os
import time

import numpy as np
import onnxruntime as ort

from service import model as service_model

from .common import blocked, log, payload_10s
from .inprocess import make_app, wsgi_caller

CONFIGS = {  # name -> (intra-op threads, spinning, stop spinning when a run ends)
    "1 thread (served)": (1, False, False),
    "2 threads, no spinning": (2, False, False),
    "2 threads, spinning within a run": (2, True, True),
}


def session_options(threads, spin, stop):
    """The service's session options (``service.model._session_options``) with other threads and spinning."""
    ort.set_default_logger_severity(3)  # overriding a config entry is what we mean: no warning
    so = service_model._session_options(threads)
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if stop:
        so.add_session_config_entry("session.force_spinning_stop", "1")
    return so


def cpu_timed(call):
    """``call`` wrapped to record this process's CPU time (all threads) per call."""
    cpu = []

    def run():
        c = time.process_time()
        call()
        cpu.append(time.process_time() - c)

    return run, cpu


def main(n=400):
    body, _ = payload_10s()
    calls, cpus = {}, {}
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        for name, cfg in CONFIGS.items():
            app = make_app()
            state = service_model.get_state(app)
            state.model = service_model.load_model(app.config["MODEL_DIR"], session_options=session_options(*cfg))
            calls[name], cpus[name] = cpu_timed(wsgi_caller(app, body))
        runs = blocked(calls, n)
    print("| ONNX Runtime sessions | wall ms per request (median) | CPU ms per request (median) |")
    print("|---|---|---|")
    for name in CONFIGS:
        wall = 1000.0 * float(np.median(runs[name]))
        cpu = 1000.0 * float(np.median(cpus[name]))  # every call, the settling ones too
        print(f"| {name} | {wall:.3f} | {cpu:.3f} |")
    log("(CPU time counts every thread of the process: a spinning thread shows there)")


if __name__ == "__main__":
    main()
