"""Shared by the benchmarks: the machine they ran on, and running an R peer script."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["machine", "run_r"]


def blas() -> str:
    try:
        config: Any = np.show_config(mode="dicts")
        info = config["Build Dependencies"]["blas"]
        return f"{info.get('name', '?')} {info.get('version', '')}".strip()
    except Exception:
        return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(r_version: str | None = None) -> list[str]:
    """Lines naming the processor, the CPUs usable, the Python stack and R (when a peer)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    lines = [
        f"machine: {platform.system()} {platform.machine()}, {cpu_model()}, "
        f"{os.cpu_count()} CPUs ({usable} usable)",
        f"python {platform.python_version()}, numpy {np.__version__} ({blas()}), "
        f"pandas {pd.__version__}, scipy {metadata.version('scipy')}, "
        f"statsmodels {metadata.version('statsmodels')}, lumbar {metadata.version('lumbar')}",
    ]
    if r_version is not None:
        lines.append(f"R: {r_version}")
    return lines


def run_r(arguments: list[str], timeout: float) -> tuple[dict[str, Any] | None, str]:
    """Run ``Rscript arguments...``; (its last stdout line as JSON, "") or (None, why it failed).

    R runs in its own process group, so a timeout ends R and only R.
    """
    process = subprocess.Popen(
        ["Rscript", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return None, f"did not finish within {timeout:g} s (killed)"
    if process.returncode != 0 or not stdout.strip():
        tail = " / ".join(stderr.strip().splitlines()[-3:])
        return None, f"Rscript failed ({process.returncode}): {tail}"
    reply: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return reply, ""
