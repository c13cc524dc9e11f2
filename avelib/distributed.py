"""More processes for a stage: worker processes that share its jobs, or torch.distributed ranks.

A stage with `nproc > 1` writes a job spec; every process runs the same stage code with a `Shard`, which
hands it every N-th job (a seed of a configuration, a chunk of seconds) in one fixed order, so the split
does not depend on timing. The stage code hands the training loops `Shard.take` (asked once per job, in
that order): the loops learn which jobs are theirs, not how the processes were started.

Jobs that only write files (the localizer seeds and variants, the extract chunks, the tower runs) are
`share`d: the stage's own process takes rank 0 and starts N - 1 workers (`python -m avelib.ranks SPEC
--rank R --world N`) beside it, no process group, no torchrun (whose start cost ~4 s a stage). When
`distributed.torchrun_args` names a multi-node rendezvous (`--nnodes` above 1), they run under torchrun
instead: N ranks on each node, the jobs in the same Shard order, so the files are the same. The stage prints
its torchrun line; the same line with each other node's `--node-rank` is started there, and the stage's work
dir (its `<out>.partial/`, a seed's checkpoints, a chunk's memmap rows) must be on a filesystem every node sees.
The extract chunks of all nodes are rows of the same memory-mapped files: that filesystem must keep writes of
several nodes to one file coherent (Lustre and GPFS do; NFS writes back whole pages, another node's rows too).
Data-parallel fine-tuning needs a process group: `spread` runs `torchrun --standalone --nproc-per-node N -m
avelib.ranks SPEC` (NCCL on CUDA, gloo on the CPU). With CUDA every process works on its own GPU: local rank
r on GPU r % (GPUs of its node), the stage's own process being rank 0. Either way the stage's own process
then evaluates or assembles the finished jobs on the same code path as with one process, resuming each
finished run.
"""

from __future__ import annotations

import argparse
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
    rendezvous (docs/speed.md "Fine-tuning on two machines"); with `--nnodes` above 1 the jobs of the other
    stages run under torchrun too, their `*_nproc` ranks on each node."""


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


def ownership(shard: Shard | None) -> Callable[[], bool] | None:
    """What a loop asks once per job, in order, whether it runs it (`shard.take`); None without a shard: the
    stage's own process, which runs (or resumes) every job and evaluates."""
    return shard.take if shard is not None else None


@dataclass(frozen=True)
class Launch:
    """How one stage starts its ranks: the two `distributed` keys it reads."""

    nproc: int = 1
    torchrun_args: tuple[str, ...] = ()

    @property
    def more_processes(self) -> bool:
        """Whether `share` runs the jobs on more processes than the stage's own."""
        return self.nproc > 1 or self.nodes > 1

    @property
    def nodes(self) -> int:
        """The most nodes `--nnodes` of `torchrun_args` admits (N or MIN:MAX); 1 without it."""
        parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        parser.add_argument("--nnodes", default="1")
        known, _ = parser.parse_known_args(list(self.torchrun_args))
        return int(known.nnodes.split(":")[-1])


def launch(params: Mapping[str, Any], kind: str) -> Launch:
    """`distributed.<kind>_nproc` and `distributed.torchrun_args` (one process when absent, and for a stage whose
    table entry lists no `distributed` key, such as the recipe grid)."""
    if "distributed" not in params:
        return Launch()
    return Launch(value(params, f"distributed.{kind}_nproc", int, default=1), torchrun_args(params))


def torchrun_args(params: Mapping[str, Any]) -> tuple[str, ...]:
    """`distributed.torchrun_args` (none when absent)."""
    if "distributed" not in params:
        return ()
    return value(params, "distributed.torchrun_args", tuple[str, ...], default=())


def rank_world() -> tuple[int, int]:
    """(RANK, WORLD_SIZE) as torchrun sets them; (0, 1) outside torchrun."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def node_processes(shard: Shard) -> int:
    """The processes of `shard`'s world on this node: torchrun's LOCAL_WORLD_SIZE, else (`share`) the world."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", shard.world))


def local_rank() -> int:
    """LOCAL_RANK as torchrun and `share` set it for their processes; 0 in the stage's own process."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def device_for(local_rank: int, device_count: int) -> int:
    """The GPU of the process with `local_rank` on its node: more processes than GPUs share them round-robin."""
    return local_rank % device_count


def gpu_count() -> int:
    """CUDA devices this process sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def pin_gpu(local_rank: int) -> None:
    """Make `device_for(local_rank)` this process's current CUDA device ("cuda" means it); nothing without CUDA."""
    import torch

    count = gpu_count()
    if count:
        torch.cuda.set_device(device_for(local_rank, count))


def worker_env(rank: int) -> dict[str, str]:
    """A `share` worker's environment: one intra-op thread, and its rank as LOCAL_RANK (its GPU, `pin_gpu`)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "LOCAL_RANK": str(rank)}


def init_process_group() -> Shard:
    """Join torchrun's process group (NCCL on CUDA, gloo on the CPU; the caller pins this rank's GPU first,
    `pin_gpu`); this rank's Shard."""
    import torch
    import torch.distributed as dist

    rank, world = rank_world()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return Shard(rank, world)


def spread(ranks: Launch, stage: str, arguments: Mapping[str, Any], work: Path) -> None:
    """With `ranks.nproc > 1`, run `stage`'s jobs on that many torchrun ranks in a process group
    (avelib.ranks) and wait.

    `arguments` are the stage function's (JSON-able) arguments; a rank that fails fails the stage.
    """
    if ranks.nproc <= 1:
        return
    spec = _write_spec(stage, arguments, work, process_group=True)
    _torchrun(ranks, stage, spec)
    spec.unlink()


def share(ranks: Launch, stage: str, arguments: Mapping[str, Any], work: Path, job: Callable[..., Any]) -> None:
    """Run `stage`'s jobs, each process calling `job(**arguments, work=work, shard=...)`, and wait; a process
    that fails fails the stage. The jobs only write files into `work`, so no process group is joined.

    With `ranks.nodes > 1`: under torchrun (`ranks.torchrun_args`), `ranks.nproc` ranks on this node and as
    many on every other, where the same torchrun line is started; `work` must be on a filesystem they share.
    Else with `ranks.nproc > 1`: on this process (rank 0, `job` here) and nproc - 1 workers beside it; this
    process's thread count is restored afterwards (a job may set its own). Else nothing (the caller's job)."""
    if not ranks.more_processes:
        return
    spec = _write_spec(stage, arguments, work, process_group=False)
    if ranks.nodes > 1:
        _torchrun(ranks, stage, spec)
    else:
        _with_workers(ranks.nproc, stage, spec, lambda shard: job(**arguments, work=work, shard=shard))
    spec.unlink()


def _write_spec(stage: str, arguments: Mapping[str, Any], work: Path, process_group: bool) -> Path:
    """The spec every rank or worker reads (avelib.ranks): the stage, its arguments, and whether to join a group."""
    spec = work / SPEC
    write_json({"stage": stage, "arguments": dict(arguments), "work": str(work), "process_group": process_group}, spec)
    return spec


def _gpus_note() -> str:
    """Where `pin_gpu` puts the processes, for a stage's first line ('' without CUDA)."""
    count = gpu_count()
    return f", each rank r on GPU r % {count}" if count else ""


def _torchrun(ranks: Launch, stage: str, spec: Path) -> None:
    """Run `python -m avelib.ranks SPEC` on torchrun's ranks of this node and wait (for every node: torchrun's
    agents leave together); the ranks' output is printed, a failure raises."""
    rendezvous = list(ranks.torchrun_args) or ["--standalone"]
    cmd = [sys.executable, "-m", "torch.distributed.run", *rendezvous, f"--nproc-per-node={ranks.nproc}",
           "-m", "avelib.ranks", str(spec)]
    where = (f" on each of {ranks.nodes} nodes (start this line on the others, with their --node-rank)"
             if ranks.nodes > 1 else "")
    print(f"{stage}: on {ranks.nproc} ranks{where}{_gpus_note()}: {' '.join(cmd[1:])}", flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)  # shown here: a notebook cell does not see the ranks' fds
    print(done.stdout[-4000:], done.stderr[-4000:], sep="\n", flush=True)
    if done.returncode != 0:
        raise RuntimeError(f"{stage}: torchrun exited with {done.returncode} (spec {spec}); the ranks' output is above")


def _with_workers(nproc: int, stage: str, spec: Path, run_here: Callable[[Shard], Any]) -> None:
    """`run_here(Shard(0, nproc))` in this process while nproc - 1 workers run the other shards of `spec`."""
    import torch

    print(f"{stage}: on this process and {nproc - 1} worker(s){_gpus_note()}: python -m avelib.ranks {spec} "
          f"--rank R --world {nproc}", flush=True)
    pin_gpu(0)
    workers = [_start_worker(spec, rank, nproc) for rank in range(1, nproc)]
    threads = torch.get_num_threads()
    try:
        run_here(Shard(0, nproc))
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


def _start_worker(spec: Path, rank: int, world: int) -> tuple[subprocess.Popen, Path]:
    """One worker process writing its output to a log beside the spec (a pipe could fill and stall it)."""
    log = spec.with_name(f"rank{rank}.log")
    cmd = [sys.executable, "-m", "avelib.ranks", str(spec), "--rank", str(rank), "--world", str(world)]
    with open(log, "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=worker_env(rank)), log


def _finish_worker(proc: subprocess.Popen, log: Path) -> bool:
    """Wait for a worker; print and remove its log; whether it failed."""
    code = proc.wait()
    text = log.read_text()
    log.unlink()
    if code != 0 or text.strip():
        print(text[-4000:], flush=True)
    return code != 0
