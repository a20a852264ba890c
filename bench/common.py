"""Shared by the benchmarks: the machine they ran on, running an R peer script, and
starting a web server (lumbar's or the bare FastAPI peer) in a process of its own."""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

__all__ = ["PEER", "free_port", "machine", "run_r", "start"]


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


PEER = """
import sqlite3, sys, threading, uvicorn
from fastapi import FastAPI
path, port = sys.argv[1], int(sys.argv[2])
local = threading.local()
def connection():
    if not hasattr(local, "db"):
        local.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        local.db.execute("PRAGMA journal_mode=WAL")
        local.db.execute("PRAGMA synchronous=FULL")
    return local.db
connection().execute("CREATE TABLE IF NOT EXISTS peer (id INTEGER PRIMARY KEY, note TEXT)")
app = FastAPI()
@app.post("/insert")
def insert() -> dict[str, bool]:
    db = connection()
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO peer (note) VALUES ('bench')")
    db.execute("COMMIT")
    return {"ok": True}
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
            timeout_keep_alive=300)
"""
"""The peer of the web benchmarks: a bare FastAPI application (one uvicorn worker) whose one
endpoint, ``POST /insert``, inserts one row into a SQLite table (WAL, ``synchronous=FULL``,
as lumbar's trial) and answers 200. Run as ``start(PEER, database_path)``."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(code: str, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """Run ``python -c code *args PORT`` on a free port; (the process, its address) once it
    answers HTTP (any status)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", code, *args, str(port)])
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(base + "/sign-in", timeout=1)
            return process, base
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the server on port {port} did not start")
