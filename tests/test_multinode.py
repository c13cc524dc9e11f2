"""Jobs shared over two torchrun "nodes" (both on 127.0.0.1, one rank each, c10d rendezvous) give the very
features and localizer results of one process, and every process of `share` or torchrun takes its own GPU
(checked on the CPU with a faked CUDA device count)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from avelib import ranks
from avelib.data.features import FEATURE_FILES
from avelib.distributed import Launch, Shard, device_for, share, worker_env
from avelib.io import partial_dir, write_json
from avelib.stages import localizer

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[1]
NODE_SECONDS = 120  # the other node's limit once the stage returned (both nodes leave torchrun together)


def _rendezvous() -> list[str]:
    """torchrun arguments of a two-node c10d rendezvous on a free port of 127.0.0.1, joined within a minute."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return ["--nnodes=2", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-conf=join_timeout=60"]


@contextmanager
def _second_node(rendezvous: list[str], spec: Path, log: Path) -> Iterator[None]:
    """Node 1 of `rendezvous`, as a cluster user starts it: its rank reads `spec` once the stage's node joined."""
    cmd = [sys.executable, "-m", "torch.distributed.run", *rendezvous, "--node-rank=1", "--nproc-per-node=1",
           "-m", "avelib.ranks", str(spec)]
    with open(log, "w") as out:
        node = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield
        assert node.wait(timeout=NODE_SECONDS) == 0, log.read_text()[-4000:]
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()


def _on_two_nodes(rendezvous: list[str]) -> dict:
    """The `distributed` section of the stage's node: one rank on each of the two nodes."""
    return {"localizer_nproc": 1, "extract_nproc": 1, "torchrun_args": [*rendezvous, "--node-rank=0"]}


@pytest.mark.usefixtures("one_torch_thread")  # every process on one thread: the CPU's float sums depend on it
def test_two_nodes_extract_the_same_features_as_one_process(tmp_path, capfd, monkeypatch):
    from test_contrastive import make_dataset

    from avelib.stages.towers import run_extract

    monkeypatch.setenv("AVELIB_THREADS", "1")  # the nodes' ranks: one rank a node keeps all threads (avelib.runtime)
    _, cache_dir = make_dataset(tmp_path / "ds", n=14)
    params = {"audioclip": {"profile": "small", "checkpoint": None}, "finetune": {"seed": 5},
              "extract": {"batch_size": 6, "device": "cpu"}}
    one = run_extract(params, cache_dir, None, tmp_path / "one", progress=False)
    rendezvous = _rendezvous()
    with _second_node(rendezvous, partial_dir(tmp_path / "two") / "ranks_spec.json", tmp_path / "node1.log"):
        two = run_extract({**params, "distributed": _on_two_nodes(rendezvous)}, cache_dir, None, tmp_path / "two",
                          progress=False)
    assert "extract: on 1 ranks on each of 2 nodes" in capfd.readouterr().out
    for name in FEATURE_FILES.values():  # a chunk one node left unencoded would have failed the stage
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    assert two.failed == one.failed and not (tmp_path / "two.partial").exists()


def test_two_nodes_train_the_same_seeds_as_one_process(tmp_path, capfd):
    from test_distributed import _params, _tiny_root, _without_times

    root, features = _tiny_root(tmp_path)
    one = localizer.run_train(_params(root, 1), features / "finetuned", tmp_path / "one", progress=False)
    rendezvous = _rendezvous()
    params = {**_params(root, 1), "distributed": _on_two_nodes(rendezvous)}
    with _second_node(rendezvous, partial_dir(tmp_path / "two") / "ranks_spec.json", tmp_path / "node1.log"):
        two = localizer.run_train(params, features / "finetuned", tmp_path / "two", progress=False)
    out = capfd.readouterr().out
    assert "train: on 1 ranks on each of 2 nodes" in out
    for seed in (0, 1, 2):  # trained by the nodes (seed 1 by the other one), only resumed by the stage
        assert re.search(rf"seed {seed}: resumed from .* \(complete: not trained again\)", out), seed
    assert _without_times(two) == _without_times(one)


@pytest.fixture
def two_gpus(monkeypatch) -> list[int]:
    """CUDA faked with two devices; the devices set current, in order."""
    pinned: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", pinned.append)
    return pinned


def test_processes_take_the_gpus_round_robin():
    assert [device_for(rank, 3) for rank in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    env = worker_env(5)
    assert env["LOCAL_RANK"] == "5" and env["OMP_NUM_THREADS"] == "1"
    rendezvous = ((), ("--nnodes=2",), ("--nnodes", "1:4"), ("--standalone",))
    assert [Launch(1, args).nodes for args in rendezvous] == [1, 2, 4, 1]


@pytest.mark.parametrize("argv, env, shard, gpu", [
    (["--rank", "3", "--world", "4"], {"LOCAL_RANK": worker_env(3)["LOCAL_RANK"]}, Shard(3, 4), 1),  # a `share` worker
    ([], {"RANK": "4", "WORLD_SIZE": "8", "LOCAL_RANK": "2"}, Shard(4, 8), 0),  # a torchrun rank (node 1 of 2)
])
def test_a_rank_pins_its_gpu_before_its_jobs(tmp_path, monkeypatch, two_gpus, argv, env, shard, gpu):
    jobs: list[tuple[Shard, list[int]]] = []
    monkeypatch.setitem(localizer.JOBS, "train", lambda work, shard: jobs.append((shard, list(two_gpus))))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    spec = {"stage": "train", "arguments": {}, "work": str(tmp_path), "process_group": False}
    write_json(spec, tmp_path / "spec.json")
    assert ranks.main([str(tmp_path / "spec.json"), *argv]) == 0
    assert jobs == [(shard, [gpu])]


def test_share_names_the_gpus_and_pins_its_own_process_to_rank_0s(tmp_path, capfd, two_gpus):
    here: list[Shard] = []
    arguments = {"params": {"tower_runs": {"count": 1}}, "recipe": {}, "pool_dir": "", "cache_dir": "",
                 "dataset_root": "", "models_dir": "", "features_dir": ""}  # the worker's share: no run at all
    share(Launch(2), "tower_runs", arguments, tmp_path, lambda **kw: here.append(kw["shard"]))
    assert "tower_runs: on this process and 1 worker(s), each rank r on GPU r % 2" in capfd.readouterr().out
    assert two_gpus == [0] and here == [Shard(0, 2)]
