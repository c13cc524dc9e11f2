"""More processes for a stage: worker processes that share its jobs, or torch.distributed ranks.

A stage with `nproc > 1` writes a job spec; every process runs the same stage code with a `Shard`, which
hands it every N-th job (a seed of a configuration, a chunk of seconds) in one fixed order, so the split
does not depend on timing. Jobs that only write files (the localizer seeds, the extract chunks) are
`share`d: the stage's own process takes rank 0 and starts N - 1 workers (`python -m avelib.ranks SPEC
--rank R --world N`) beside it, no process group, no torchrun (whose start cost ~4 s a stage). Data-parallel
fine-tuning needs a process group: `spread` runs `torchrun --standalone --nproc-per-node N -m avelib.ranks
SPEC` (NCCL on CUDA, gloo on the CPU). Either way the stage's own process then evaluates or assembles the
finished jobs on the same code path as with one process, resuming each finished run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from avelib.io import write_json
from avelib.params import value

SPEC = "ranks_spec.json"


@dataclass(frozen=True)
class DistributedConfig:
    """params.yaml section `distributed`."""

    localizer_nproc: int = 2
    """Processes sharing the seeds of the train, evaluate, ablate and weak stages (1 = the stage's own;
    N = the stage's own and N - 1 workers on this machine)."""
    extract_nproc: int = 2
    """Processes sharing the videos of the extract stage, as above; each gets its share of the threads."""
    finetune_nproc: int = 1
    """Data-parallel processes of contrastive fine-tuning: each encodes its share of every batch, the
    embeddings are gathered for the loss and the gradients summed (1 = the stage's own process)."""
    torchrun_args: tuple[str, ...] = ()
    """Extra torchrun arguments of data-parallel fine-tuning replacing `--standalone`, e.g. a multi-node
    rendezvous (README)."""


@dataclass
class Shard:
    """Which jobs this rank runs: the jobs are numbered in the order `take` is called, rank r gets r, r+N, ..."""

    rank: int = 0
    world: int = 1
    _next: int = field(default=0, repr=False)

    def take(self) -> bool:
        """True when the next job in the fixed order is this rank's."""
        mine = self._next % self.world == self.rank
        self._next += 1
        return mine


@dataclass(frozen=True)
class Launch:
    """How one stage starts its ranks: the two `distributed` keys it reads."""

    nproc: int = 1
    torchrun_args: tuple[str, ...] = ()


def launch(params: Mapping[str, Any], kind: str) -> Launch:
    """`distributed.<kind>_nproc` and `distributed.torchrun_args` (one process when absent)."""
    return Launch(value(params, f"distributed.{kind}_nproc", int, default=1),
                  value(params, "distributed.torchrun_args", tuple[str, ...], default=()))


def processes(params: Mapping[str, Any], kind: str) -> int:
    """`distributed.<kind>_nproc`: the processes `share` runs a stage's jobs on (1 when absent)."""
    return value(params, f"distributed.{kind}_nproc", int, default=1)


def rank_world() -> tuple[int, int]:
    """(RANK, WORLD_SIZE) as torchrun sets them; (0, 1) outside torchrun."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def init_process_group() -> Shard:
    """Join torchrun's process group (NCCL on CUDA, gloo on the CPU) and pin this rank's GPU; this rank's Shard."""
    import torch
    import torch.distributed as dist

    rank, world = rank_world()
    cuda = torch.cuda.is_available()
    if cuda:  # more ranks than GPUs share them round-robin
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Shard(rank, world)


def spread(ranks: Launch, stage: str, arguments: Mapping[str, Any], work: Path) -> None:
    """With `ranks.nproc > 1`, run `stage`'s jobs on that many ranks (avelib.ranks) and wait.

    `arguments` are the stage function's (JSON-able) arguments; a rank that fails fails the stage.
    """
    nproc = ranks.nproc
    if nproc <= 1:
        return
    spec = work / SPEC
    write_json({"stage": stage, "arguments": dict(arguments), "work": str(work)}, spec)
    rendezvous = list(ranks.torchrun_args) or ["--standalone"]
    cmd = [sys.executable, "-m", "torch.distributed.run", *rendezvous, f"--nproc-per-node={nproc}",
           "-m", "avelib.ranks", str(spec)]
    print(f"{stage}: on {nproc} ranks: {' '.join(cmd[1:])}", flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)  # shown here: a notebook cell does not see the ranks' fds
    print(done.stdout[-4000:], done.stderr[-4000:], sep="\n", flush=True)
    if done.returncode != 0:
        raise RuntimeError(f"{stage}: torchrun exited with {done.returncode} (spec {spec}); the ranks' output is above")
    spec.unlink()


def share(nproc: int, stage: str, arguments: Mapping[str, Any], work: Path, job: Callable[..., Any]) -> None:
    """With `nproc > 1`, run `stage`'s jobs on this process (rank 0, `job` here) and nproc - 1 workers at the
    same time, each `job(**arguments, work=work, shard=...)`; a worker that fails fails the stage.

    The jobs only write files into `work`, so the workers join no process group. This process's thread
    count is restored afterwards (a job may set its own)."""
    if nproc <= 1:
        return
    import torch

    spec = work / SPEC
    write_json({"stage": stage, "arguments": dict(arguments), "work": str(work)}, spec)
    print(f"{stage}: on this process and {nproc - 1} worker(s): python -m avelib.ranks {spec} --rank R --world {nproc}",
          flush=True)
    workers = [_start_worker(spec, rank, nproc) for rank in range(1, nproc)]
    threads = torch.get_num_threads()
    try:
        job(**arguments, work=work, shard=Shard(0, nproc))
    except BaseException:
        for proc, _ in workers:
            proc.kill()
            proc.wait()
        raise
    finally:
        torch.set_num_threads(threads)
    failed = [rank for rank, (proc, log) in enumerate(workers, start=1) if _finish_worker(proc, log)]
    if failed:
        raise RuntimeError(f"{stage}: worker rank(s) {failed} failed (spec {spec}); their output is above")
    spec.unlink()


def _start_worker(spec: Path, rank: int, world: int) -> tuple[subprocess.Popen, Path]:
    """One worker process writing its output to a log beside the spec (a pipe could fill and stall it)."""
    log = spec.with_name(f"rank{rank}.log")
    cmd = [sys.executable, "-m", "avelib.ranks", str(spec), "--rank", str(rank), "--world", str(world)]
    with open(log, "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"}), log


def _finish_worker(proc: subprocess.Popen, log: Path) -> bool:
    """Wait for a worker; print and remove its log; whether it failed."""
    code = proc.wait()
    text = log.read_text()
    log.unlink()
    if code != 0 or text.strip():
        print(text[-4000:], flush=True)
    return code != 0
