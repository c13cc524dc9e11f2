"""Pinned CPU numerics: the same seed gives the same bits on any x86-64 CPU with AVX2.

Three libraries inside torch pick their code path by the CPU, and each path rounds differently:
MKL's BLAS (every linear layer and im2col convolution), oneDNN (convolutions) and ATen's own
vectorized kernels (reductions, softmax, exp/log/sin). `pin_numerics` fixes each to its AVX2 path
and the intra-op thread count, so the reduction order no longer depends on the machine:

- `MKL_CBWR=AVX2,STRICT`: MKL's conditional numerical reproducibility on the AVX2 branch;
- `ATEN_CPU_CAPABILITY=avx2`: ATen's AVX2 kernels even on AVX-512 machines;
- oneDNN and NNPACK off: convolutions go through ATen + MKL, whose results MKL guarantees across
  CPUs (oneDNN's blocking also follows the cache sizes, so its ISA cap alone is not enough);
- `torch.set_num_threads(AVELIB_THREADS)` (default 2) and `torch.use_deterministic_algorithms`.

`import avelib` applies it, so every stage kernel, test and command goes through it; the stage
runner also exports the variables to the papermill kernels it starts. `AVELIB_NUMERICS=native`
switches it off (each library's fastest path for this CPU; numbers then differ between CPUs).
The variables are read when each library first computes, so pinning works as long as it happens
before the first tensor operation of the process.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import warnings
from collections.abc import MutableMapping

MODE_VARIABLE = "AVELIB_NUMERICS"
THREADS_VARIABLE = "AVELIB_THREADS"
DEFAULT_THREADS = 2
PINNED_ENV = {
    "MKL_CBWR": "AVX2,STRICT",
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN is off; the cap keeps any op that still reaches it on AVX2
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",  # required by use_deterministic_algorithms on CUDA
}


def pinned(env: MutableMapping[str, str] | None = None) -> bool:
    """Whether numerics are pinned (the default), per `AVELIB_NUMERICS` in `env` (os.environ)."""
    mode = (os.environ if env is None else env).get(MODE_VARIABLE, "pinned")
    if mode not in ("pinned", "native"):
        raise ValueError(f"{MODE_VARIABLE}={mode!r}: expected 'pinned' (default) or 'native'")
    return mode == "pinned"


def thread_count(env: MutableMapping[str, str] | None = None) -> int:
    """Intra-op threads of a pinned run (`AVELIB_THREADS`, default 2): part of the guarantee."""
    text = (os.environ if env is None else env).get(THREADS_VARIABLE, str(DEFAULT_THREADS))
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{THREADS_VARIABLE}={text!r}: expected a positive integer")
    return int(text)


def pin_environment(env: MutableMapping[str, str] | None = None) -> None:
    """Write the pinned variables into `env` (os.environ), for this process and its children."""
    env = os.environ if env is None else env
    if pinned(env):
        env.update(PINNED_ENV)


def pin_numerics() -> dict[str, object]:
    """Pin this process (see the module docstring); returns what is in force, for run records."""
    pin_environment()
    import torch

    if not pinned():
        return numerics_state()
    torch.set_num_threads(thread_count())
    torch.backends.mkldnn.enabled = False
    torch.backends.nnpack.set_flags(False)
    torch.backends.cudnn.benchmark = False
    deterministic_algorithms()
    capability = torch.backends.cpu.get_cpu_capability()
    if capability != "AVX2":
        warnings.warn(
            f"avelib: ATen runs its {capability} kernels although {MODE_VARIABLE} is pinned (torch computed "
            "before avelib was imported, or the CPU lacks AVX2): numbers may differ from other machines",
            RuntimeWarning, stacklevel=2,
        )
    return numerics_state()


def deterministic_algorithms(warn_only: bool = False) -> None:
    """`torch.use_deterministic_algorithms(True)` without its import of torch._inductor (4 s per
    process, paid by every stage kernel): inductor's own flag is set only where it is loaded."""
    import torch

    torch._C._set_deterministic_algorithms(True, warn_only=warn_only)
    inductor = sys.modules.get("torch._inductor.config")
    if inductor is not None:
        inductor.deterministic = True


def numerics_state() -> dict[str, object]:
    """The numerics settings of this process (stored beside metrics so a run shows how it ran)."""
    import torch

    return {
        "mode": "pinned" if pinned() else "native",
        "threads": torch.get_num_threads(),
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": bool(torch.backends.mkldnn.enabled),
        **{k: os.environ.get(k) for k in ("MKL_CBWR", "ONEDNN_MAX_CPU_ISA")},
    }


def pool_context() -> mp.context.BaseContext:
    """Process pools of the media workers (decode, SynthAVE, stand-ins): fork where available, so
    callers need no `if __name__ == "__main__"` guard and start fast; the workers run numpy + PyAV only."""
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


def peak_rss_mib() -> float:
    """Peak resident memory in MiB of this process or of its largest finished descendant (a stage's
    kernel, a torchrun rank, a decode worker): Linux keeps the maximum over every waited-for process."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024  # KiB on Linux
