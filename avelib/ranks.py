"""What each rank runs under torchrun: its share of one stage's training jobs (avelib.distributed.spread).

`python -m avelib.ranks SPEC` reads the spec the stage wrote, joins the process group and calls the
stage's job function with this rank's Shard; the stage's own process evaluates afterwards.
"""

from __future__ import annotations

import sys
from pathlib import Path

from avelib.distributed import init_process_group
from avelib.io import read_json


# stage -> the module whose JOBS holds its job function (imported alone: a rank starts faster)
JOB_MODULES = {"train": "avelib.stages.localizer", "evaluate": "avelib.stages.localizer",
               "ablate": "avelib.stages.localizer", "weak": "avelib.stages.weak", "finetune": "avelib.stages.towers",
               "extract": "avelib.stages.towers"}


def main(argv: list[str]) -> int:
    import importlib

    import torch.distributed as dist

    if len(argv) != 1:
        raise SystemExit("usage: python -m avelib.ranks SPEC.json (written by avelib.distributed.spread)")
    spec = read_json(argv[0])
    if spec.get("stage") not in JOB_MODULES:
        raise SystemExit(f"{argv[0]}: unknown stage {spec.get('stage')!r}; expected one of {sorted(JOB_MODULES)}")
    job = importlib.import_module(JOB_MODULES[spec["stage"]]).JOBS[spec["stage"]]
    shard = init_process_group()
    job(**spec["arguments"], work=Path(spec["work"]), shard=shard)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
