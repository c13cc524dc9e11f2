"""`benchmarks/gpu_check.py --device cpu --quick`: the GPU check's code runs, so it cannot rot on
machines without a GPU (part of `make paper-smoke`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.paper_smoke, pytest.mark.timeout(600)]  # the GPU check on the CPU
ROWS = ["image tower", "audio tower", "fine-tuning step", "localizer (hidden 256)", "extraction end to end",
        "extraction, N processes"]


def test_gpu_check_quick_on_cpu():
    run = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--quick"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    print(run.stdout)
    table = [line for line in run.stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]
    measured = {(c[0], c[1]): c[2] for c in (re.split(r"\s*\|\s*", line.strip("| ")) for line in table)}
    assert {what for what, _ in measured} == set(ROWS)
    for what, mode in [("image tower", "fp32"), ("audio tower", "fp32"), ("image tower", "torch.compile (fp32, aot_eager)"),
                       ("audio tower", "torch.compile (fp32, aot_eager)"), ("fine-tuning step", "fp32")]:
        assert float(measured[what, mode].replace(",", "")) > 0, (what, mode)
    assert measured["image tower", "bf16"] == "n/a"  # bf16 autocast is the CUDA path
    shared = [value for (what, mode), value in measured.items() if what == "extraction, N processes"]
    assert len(shared) == 1 and float(shared[0].replace(",", "")) > 0
    assert "extract: on this process and 1 worker(s)" in run.stdout  # the stage shared its chunks with a worker
