"""Benchmark CLI on a tiny size: writes JSON and Markdown with the expected fields."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bisestdc_core.cli import benchmark

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_cli_tiny_run_writes_json_and_md(tmp_path, monkeypatch):
    monkeypatch.setenv("BISESTDC_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "bench"
    assert benchmark.main(["--engines", "onnxruntime", "torch", "--models", "bisestdc",
                           "stdc1", "--sizes", "64x128", "--warmup", "1", "--runs", "2",
                           "--device", "cpu", "--out", str(out), "--name", "tiny"]) == 0
    report = json.loads((out / "tiny.json").read_text())
    assert "bisestdc_core.cli.benchmark" in report["command"] and report["date"]
    assert report["hardware"]["cpu"] and report["hardware"]["torch"]
    assert len(report["entries"]) == 4
    for entry in report["entries"]:
        assert entry["median_ms"] > 0 and entry["p99_ms"] >= entry["median_ms"] * 0.5
        assert entry["runs"] == 2 and set(entry["stage_median_ms"]) == set(benchmark.STAGES)
    md = (out / "tiny.md").read_text()
    assert "BiSeSTDC-Seg" in md and "STDC1-Seg" in md and "Command:" in md


@pytest.mark.parametrize("script", [["-m", "bisestdc_core.cli.benchmark"],
                                    [str(REPO / "benchmarks" / "gpu_latency.py")]])
@pytest.mark.slow
def test_help(script):
    done = subprocess.run([sys.executable, *script, "--help"], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout
