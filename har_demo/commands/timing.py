"""Timing primitives and machine facts for the benchmarks (``python -m har_demo bench`` and
``benchmarks/*.py``): warm-up then median of timed calls, alternating pairs, thread setup, and a
``progress`` logger the benchmark prints to stderr."""

from __future__ import annotations

import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger("har_demo.bench")


def progress(msg: str) -> None:
    """One progress line (stderr, unless ``bench --quiet``; see ``commands.bench.cmd_bench``)."""
    log.info("  %s", msg)


@dataclass
class Timing:
    """Seconds per call: median and minimum of ``runs`` timed calls (after warm-up)."""

    median_s: float
    min_s: float
    runs: int

    def to_json(self) -> dict:
        return {"median_s": round(self.median_s, 5), "min_s": round(self.min_s, 5), "runs": self.runs}


def time_call(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1, budget_s: float | None = None) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then up to ``repeats`` times timed. With ``budget_s``
    it stops early (after at least 2 timed calls) once the timed calls used up the budget."""
    for _ in range(max(0, warmup)):
        fn()
    times: list[float] = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if budget_s is not None and len(times) >= 2 and sum(times) >= budget_s:
            break
    return Timing(statistics.median(times), min(times), len(times))


def time_pair(
    ours: Callable[[], Any], reference: Callable[[], Any], repeats: int = 5, warmup: int = 1, budget_s: float | None = None
) -> tuple[Timing, Timing]:
    """Time two alternatives alternately (ours, reference, ours, ...), so a change in machine
    load hits both alike. Returns (ours, reference); ``budget_s`` as in ``time_call`` (for the pair)."""
    for _ in range(max(0, warmup)):
        ours()
        reference()
    a: list[float] = []
    b: list[float] = []
    for _ in range(max(1, repeats)):
        for fn, times in ((ours, a), (reference, b)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        if budget_s is not None and len(a) >= 2 and sum(a) + sum(b) >= budget_s:
            break
    return Timing(statistics.median(a), min(a), len(a)), Timing(statistics.median(b), min(b), len(b))


def speed_ratio(reference: Timing, ours: Timing) -> float:
    """``reference / ours`` on the medians: > 1 means our path is faster."""
    return round(reference.median_s / ours.median_s, 3) if ours.median_s > 0 else float("nan")


def physical_cores() -> int:
    """Physical CPU cores (SMT siblings counted once); falls back to ``os.cpu_count()``."""
    try:
        cores, phys, core = set(), None, None
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    phys = value.strip()
                elif key == "core id":
                    core = value.strip()
                elif not key and core is not None:
                    cores.add((phys, core))
                    phys = core = None
        if core is not None:
            cores.add((phys, core))
        if cores:
            return len(cores)
    except OSError:
        pass
    return os.cpu_count() or 1


def configure_threads(n: int | None = None) -> int:
    """``torch.set_num_threads`` to ``n`` (default: the physical cores; more threads than cores
    only contend). Returns the number set."""
    n = int(n or physical_cores())
    torch.set_num_threads(n)
    return n


def machine_info() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "cpu": _cpu_name(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": physical_cores(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": device,
        "python": platform.python_version(),
        "load_avg": [round(x, 2) for x in load] if load else None,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
