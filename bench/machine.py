"""What machine a benchmark ran on: printed under every benchmark's results."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["machine"]


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
