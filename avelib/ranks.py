"""What each rank runs under torchrun: its share of one stage's training jobs (avelib.distributed.spread).

`python -m avelib.ranks SPEC` reads the spec the stage wrote, joins the process group and calls the
stage's job function with this rank's Shard; the stage's own process evaluates afterwards.
"""

from __future__ import annotations

import sys
from pathlib import Path

from avelib.distributed import init_process_group
from avelib.io import read_json


def main(argv: list[str]) -> int:
    import torch.distributed as dist

    from avelib.stages.localizer import JOBS as LOCALIZER_JOBS
    from avelib.stages.tasks import JOBS as TASK_JOBS

    jobs = {**LOCALIZER_JOBS, **TASK_JOBS}
    if len(argv) != 1:
        raise SystemExit("usage: python -m avelib.ranks SPEC.json (written by avelib.distributed.spread)")
    spec = read_json(argv[0])
    if spec.get("stage") not in jobs:
        raise SystemExit(f"{argv[0]}: unknown stage {spec.get('stage')!r}; expected one of {sorted(jobs)}")
    shard = init_process_group()
    jobs[spec["stage"]](**spec["arguments"], work=Path(spec["work"]), shard=shard)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
