"""What each rank or worker runs: its share of one stage's jobs (avelib.distributed.spread and share).

`python -m avelib.ranks SPEC` (under torchrun) reads the spec the stage wrote, joins the process group when
the spec asks for one (data parallel; `share`'s file-writing jobs need none) and calls the stage's job
function with this rank's Shard; `python -m avelib.ranks SPEC --rank R --world N` (a worker of `share`) does
the same without a process group. Every process first takes its GPU (avelib.distributed.pin_gpu). The
stage's own process evaluates afterwards.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from avelib.distributed import Shard, init_process_group, local_rank, pin_gpu, rank_world
from avelib.io import read_json


# stage -> the module whose JOBS holds its job function (imported alone: a rank starts faster)
JOB_MODULES = {"train": "avelib.stages.localizer", "evaluate": "avelib.stages.localizer",
               "ablate": "avelib.stages.localizer", "weak": "avelib.stages.weak", "finetune": "avelib.stages.towers",
               "extract": "avelib.stages.towers", "tower_runs": "avelib.stages.tower_runs"}


def main(argv: list[str]) -> int:
    import importlib

    import torch.distributed as dist

    ap = argparse.ArgumentParser(prog="python -m avelib.ranks", description="a stage's share of jobs (avelib.distributed)")
    ap.add_argument("spec", type=Path, help="the spec the stage wrote (ranks_spec.json)")
    ap.add_argument("--rank", type=int, default=None, help="a worker of `share`: its rank (no process group)")
    ap.add_argument("--world", type=int, default=None, help="a worker of `share`: the number of processes")
    args = ap.parse_args(argv)
    if (args.rank is None) != (args.world is None):
        ap.error("--rank and --world go together")
    spec = read_json(args.spec)
    if spec.get("stage") not in JOB_MODULES:
        ap.error(f"{args.spec}: unknown stage {spec.get('stage')!r}; expected one of {sorted(JOB_MODULES)}")
    job = importlib.import_module(JOB_MODULES[spec["stage"]]).JOBS[spec["stage"]]
    pin_gpu(local_rank())
    job(**spec["arguments"], work=Path(spec["work"]), shard=_shard(args, spec))
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return 0


def _shard(args: argparse.Namespace, spec: dict[str, Any]) -> Shard:
    """A worker's rank from its arguments; a torchrun rank's from torchrun, in the process group if asked."""
    if args.rank is not None:
        return Shard(args.rank, args.world)
    return init_process_group() if spec["process_group"] else Shard(*rank_world())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
