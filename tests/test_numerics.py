"""Same seed, same bits on other CPUs: a short pretrain/fine-tune/train under two simulated CPU
capability settings (AVX-512 as found vs capped to AVX2) gives byte-identical checkpoints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from avelib import runtime

HERE = Path(__file__).parent
CHECKPOINTS = ("pretrain/best.pt", "finetune/best.pt", "localizer/best.pt")
# what a machine without AVX-512 looks like to each library that picks its code path by the CPU
AVX2_MACHINE = {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def _run_both(tmp_path: Path, extra: dict[str, str]) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The chain under the CPU as found and under a simulated AVX2 machine, side by side (one core each)."""
    base = {k: v for k, v in os.environ.items() if k not in (*runtime.PINNED_ENV, "MKL_ENABLE_INSTRUCTIONS")}
    base[runtime.THREADS_VARIABLE] = "1"  # two runs side by side on two cores
    outs = (tmp_path / "avx512", tmp_path / "avx2")
    procs = [subprocess.Popen([sys.executable, str(HERE / "numerics_run.py"), str(out)],
                              env={**base, **extra, **machine}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for out, machine in zip(outs, ({}, AVX2_MACHINE))]
    for proc in procs:
        log = proc.communicate(timeout=300)[0].decode(errors="replace")
        assert proc.returncode == 0, log[-3000:]
    return tuple({name: (out / name).read_bytes() for name in CHECKPOINTS} for out in outs)  # type: ignore[return-value]


@pytest.mark.slow
def test_pinned_numerics_identical_on_avx512_and_avx2_machines(tmp_path):
    native, capped = _run_both(tmp_path, {})
    for name in CHECKPOINTS:
        assert native[name] == capped[name], f"{name} differs between the two CPU settings"


@pytest.mark.slow
@pytest.mark.control  # about a minute: `make control`, outside make test's 6 minutes and CI's 30
def test_native_numerics_differ_between_the_two_settings(tmp_path):
    """The control: without pinning the same run diverges, so the test above can fail."""
    native, capped = _run_both(tmp_path, {runtime.MODE_VARIABLE: "native"})
    if native == capped:
        pytest.skip("this CPU has no AVX-512 path that differs from AVX2: nothing to contrast")
    assert native["localizer/best.pt"] != capped["localizer/best.pt"] or native["finetune/best.pt"] != capped["finetune/best.pt"]


def test_settings_parse_and_reject_bad_values():
    assert runtime.pinned({}) and not runtime.pinned({runtime.MODE_VARIABLE: "native"})
    assert runtime.thread_count({}) == runtime.DEFAULT_THREADS
    with pytest.raises(ValueError, match="AVELIB_NUMERICS"):
        runtime.pinned({runtime.MODE_VARIABLE: "fast"})
    with pytest.raises(ValueError, match="AVELIB_THREADS"):
        runtime.thread_count({runtime.THREADS_VARIABLE: "0"})
    env: dict[str, str] = {}
    runtime.pin_environment(env)
    assert env["MKL_CBWR"] == "AVX2,STRICT" and env["ATEN_CPU_CAPABILITY"] == "avx2"
