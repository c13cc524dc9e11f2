"""Process settings that make a run repeatable: the same machine, thread count and seed give the same bits.

`import avelib` calls `set_numerics`: `AVELIB_THREADS` intra-op threads (default 2; the reduction
order follows the thread count), `torch.use_deterministic_algorithms` and no cuDNN autotuning. Each
library keeps its fastest code path for the CPU (MKL, oneDNN, ATen's AVX-512 kernels), so another CPU
family may round differently: `python -m avelib compare-runs` checks that such a run reaches the same
conclusions (docs/statistics.md "Same conclusions on every machine"). `numerics_state` is what a run records.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections.abc import MutableMapping

THREADS_VARIABLE = "AVELIB_THREADS"
DEFAULT_THREADS = 2
CUBLAS_WORKSPACE = ("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by use_deterministic_algorithms on CUDA


def thread_count(env: MutableMapping[str, str] | None = None) -> int:
    """Intra-op threads of a run (`AVELIB_THREADS`, default 2): part of what makes it repeatable."""
    text = (os.environ if env is None else env).get(THREADS_VARIABLE, str(DEFAULT_THREADS))
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{THREADS_VARIABLE}={text!r}: expected a positive integer")
    return int(text)


def set_numerics() -> dict[str, object]:
    """Threads, deterministic algorithms, no autotuning (see the module docstring); returns the state."""
    os.environ.setdefault(*CUBLAS_WORKSPACE)
    import torch

    torch.set_num_threads(thread_count())
    torch.backends.cudnn.benchmark = False
    deterministic_algorithms()
    return numerics_state()


def deterministic_algorithms(warn_only: bool = False) -> None:
    """`torch.use_deterministic_algorithms(True)` without its import of torch._inductor (4 s per
    process, paid by every stage kernel): inductor's own flag is set only where it is loaded. New
    tensors are not filled with NaN first (a debugging aid of the deterministic mode: 13 % of a
    localizer training step); every operation writes all of its output."""
    import torch

    torch._C._set_deterministic_algorithms(True, warn_only=warn_only)
    torch.utils.deterministic.fill_uninitialized_memory = False
    inductor = sys.modules.get("torch._inductor.config")
    if inductor is not None:
        inductor.deterministic = True


def numerics_state() -> dict[str, object]:
    """The numerics settings of this process (recorded with a run's reports)."""
    import torch

    return {
        "threads": torch.get_num_threads(),
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": bool(torch.backends.mkldnn.enabled),
    }


def pool_context() -> mp.context.BaseContext:
    """Process pools of the media workers (decode, SynthAVE, stand-ins): forked from a fresh server process
    where available, never from the caller. A worker forked from a process that had run multi-threaded torch
    ops could hang in torchvision's resize (OpenMP's state is not fork-safe)."""
    return mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")


def peak_rss_mib() -> float:
    """Peak resident memory in MiB of this process or of its largest finished descendant (a stage's
    kernel, a torchrun rank, a decode worker): Linux keeps the maximum over every waited-for process."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024  # KiB on Linux
