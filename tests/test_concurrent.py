"""`matching.concurrent.Later`: a step of one request begun beside another."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading

import pytest

from verifier.matching.concurrent import Later


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
