"""torch.distributed for the suite: a stage spreads its training jobs over ranks started by torchrun.

A stage with `nproc > 1` writes a job spec and runs `torchrun --standalone --nproc-per-node N -m
avelib.ranks SPEC` itself (so `dvc repro` stays the one command); every rank runs the same stage code
with a `Shard`, which hands it every N-th job (a seed of a configuration) in one fixed order, so the
split does not depend on timing. Jobs write their finished runs (checkpoints, per-seed records) into
the stage's work dir; the stage's own process then evaluates them on the same code path as with one
process, resuming each finished run. The process group uses NCCL on CUDA and gloo on the CPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from avelib.io import write_json
from avelib.params import value

SPEC = "ranks_spec.json"


@dataclass(frozen=True)
class DistributedConfig:
    """params.yaml section `distributed`."""

    localizer_nproc: int = 2
    """Processes sharing the seeds of the train, evaluate, ablate and weak stages (1 = the stage's own)."""
    extract_nproc: int = 2
    """Processes sharing the videos of the extract stage (1 = the stage's own); each gets its share of the threads."""
    finetune_nproc: int = 1
    """Data-parallel processes of contrastive fine-tuning: each encodes its share of every batch, the
    embeddings are gathered for the loss and the gradients summed (1 = the stage's own process)."""
    torchrun_args: tuple[str, ...] = ()
    """Extra torchrun arguments replacing `--standalone`, e.g. a multi-node rendezvous (README)."""


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
