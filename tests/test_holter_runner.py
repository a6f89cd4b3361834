"""service.holter's process pool: a dying child or a task past the deadline stops the analysis, not the worker."""

import os
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

from service import holter
from service.model import load_model
from tests.service_helpers import MODEL_DIR


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL_DIR)


def test_a_child_that_dies_breaks_the_pool_not_this_process(model):
    runner = holter._Runner(model, MODEL_DIR, 2, deadline=None)
    try:
        with pytest.raises(BrokenProcessPool):
            runner.map("a test", None, os._exit, [(3,)])
    finally:
        runner.close()
    assert runner.pool._processes is None or not any(p.is_alive() for p in runner.pool._processes.values())


def test_a_task_past_the_deadline_is_stopped(model):
    started = time.perf_counter()
    runner = holter._Runner(model, MODEL_DIR, 2, deadline=time.perf_counter() + 1.0)
    children = []
    try:
        with pytest.raises(holter.Overtime, match="a test"):
            runner.map("a test", None, time.sleep, [(30,), (30,)])
        children = list(runner.pool._processes.values())
    finally:
        runner.close()
    assert time.perf_counter() - started < 20  # not the 30 s the tasks wanted
    assert children and not any(p.is_alive() for p in children)


def test_in_the_worker_the_deadline_is_checked_between_tasks(model):
    runner = holter._Runner(model, MODEL_DIR, 1, deadline=time.perf_counter() - 1)
    with pytest.raises(holter.Overtime):
        runner.map("a test", lambda: None, None, [()])
    assert runner.map("a test", lambda x: x + 1, None, []) == []


def test_auto_process_count_is_the_idle_cores():
    assert holter.process_count(3) == 3
    assert 1 <= holter.process_count(0) <= (os.cpu_count() or 1)


def test_in_long_runs_keeps_only_runs_at_least_that_long():
    import numpy as np

    mask = np.array([1, 1, 0, 1, 1, 1, 0, 0, 1], dtype=bool)
    assert holter.in_long_runs(mask, 3).astype(int).tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0]
    assert holter.in_long_runs(mask, 1).tolist() == mask.tolist()
    assert len(holter.in_long_runs(np.zeros(0, bool), 3)) == 0
