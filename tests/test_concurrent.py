"""`matching.concurrent.Later`: a step of one request begun beside another."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from verifier.matching.concurrent import Later
from verifier.simprov.device import usable_cpus


def test_a_parallel_step_runs_in_its_own_thread_and_returns_its_value() -> None:
    started = threading.Event()
    release = threading.Event()

    def step() -> str:
        started.set()
        assert release.wait(5)  # it runs while the caller goes on (a sequential run would hang here)
        return threading.current_thread().name

    later = Later(step, parallel=True)
    assert started.wait(5)
    release.set()
    assert later.result() == "verifier-step" != threading.current_thread().name
    assert later.result() == "verifier-step"  # asked again: the same value, not a second run


def test_a_sequential_step_runs_only_when_asked_and_once() -> None:
    calls: list[str] = []

    def step() -> int:
        calls.append(threading.current_thread().name)
        return 7

    later = Later(step, parallel=False)
    later.wait()
    assert calls == []  # nothing computed that nobody asked for
    assert later.result() == 7 and later.result() == 7
    assert calls == [threading.current_thread().name]


@pytest.mark.parametrize("parallel", [True, False])
def test_a_steps_error_is_raised_by_result_and_dropped_by_wait(parallel: bool) -> None:
    def step() -> None:
        raise ValueError("undecodable")

    later = Later(step, parallel)
    later.wait()
    with pytest.raises(ValueError, match="undecodable"):
        later.result()


def _spin_counts(env: dict[str, str]) -> list[str]:
    """libgomp's spin count as each OpenMP runtime (torch's, faiss's) reports it at start-up."""
    code = "import verifier.simprov.embedding, faiss, torch; torch.ones(512, 512).sum(); faiss.omp_get_max_threads()"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | env | {"OMP_DISPLAY_ENV": "VERBOSE"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    return re.findall(r"GOMP_SPINCOUNT = '(\d+)'", out.stderr)


def test_openmp_workers_sleep_unless_the_operator_says_otherwise() -> None:
    counts = _spin_counts({})
    if not counts:
        pytest.skip("not GNU OpenMP (libgomp): nothing to check")
    assert set(counts) == {"0"}  # passive: an idle worker sleeps at once (libgomp's default spins 300,000 times)
    assert "0" not in _spin_counts({"OMP_WAIT_POLICY": "ACTIVE"})  # the operator's choice is kept


_BLAS_RUNNING = """
import os, time
import verifier  # before NumPy, as the service's entry points import it
import numpy as np
a = np.random.default_rng(0).random((800, 800))
for _ in range(3):
    a @ a  # OpenBLAS's workers take part, then wait for the next call
time.sleep(0.03)
states = []
for t in os.listdir("/proc/self/task"):
    with open(f"/proc/self/task/{t}/stat") as fh:
        states.append(fh.read().rsplit(")", 1)[1].split()[0])
print(sum(s == "R" for s in states))
"""


def _running_threads_after_blas(env: dict[str, str]) -> int:
    """Threads still running (state R) 30 ms after NumPy's last matrix product: the caller's own,
    plus OpenBLAS's workers while they spin instead of sleeping."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"} | env
    out = subprocess.run([sys.executable, "-c", _BLAS_RUNNING], env=env, capture_output=True, text=True, timeout=120, check=True)
    return int(out.stdout.split()[-1])


def test_openblas_workers_sleep_after_a_call_unless_the_operator_says_otherwise() -> None:
    """Spinning OpenBLAS workers held a core for ~50 ms after stage 1's region scores, and the torch
    passes that followed ran that much slower (BENCHMARKS.md, "OpenBLAS workers that sleep")."""
    if not Path("/proc/self/task").is_dir() or usable_cpus() < 2:
        pytest.skip("needs Linux's /proc and two cores (OpenBLAS has no worker on one)")
    assert _running_threads_after_blas({}) == 1  # only the caller: the workers went to sleep at once
    assert _running_threads_after_blas({"OPENBLAS_THREAD_TIMEOUT": "30"}) >= 2  # the operator's (spinning) choice is kept
