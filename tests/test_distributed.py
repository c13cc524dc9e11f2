"""More processes on this machine (2 CPU processes): seeds shared with a worker process give the very
numbers of one process, for the supervised and the weak localizer stages, videos shared the same way give
the very features of one process, and data-parallel fine-tuning on torchrun ranks (gloo) follows the
loss curve of one process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from avelib.data.ave import BACKGROUND, CATEGORIES
from avelib.data.features import FEATURE_FILES, synthetic_features, write_features
from avelib.distributed import Shard
from avelib.stages.localizer import run_train
from avelib.stages.weak import run_weak

# run by `make faults` (CI); a whole smoke pipeline per test
pytestmark = [pytest.mark.slow, pytest.mark.distributed, pytest.mark.timeout(900)]
TRAIN = {"phases": [{"windows": [10], "epochs": 1}, {"windows": [10, 5], "epochs": 2}], "threads": 1}


def test_shard_hands_out_jobs_round_robin():
    shards = [Shard(r, 3) for r in range(3)]
    taken = [[s.take() for _ in range(7)] for s in shards]
    assert [[j for j, t in enumerate(row) if t] for row in taken] == [[0, 3, 6], [1, 4], [2, 5]]
    assert all(sum(col) == 1 for col in zip(*taken))  # every job on exactly one rank


def _tiny_root(tmp: Path) -> tuple[Path, Path]:
    """An AVE-layout root (annotations and splits only) and a features root for the same 40 videos."""
    audio, visual, labels, splits = synthetic_features(n=40, audio_dim=8, visual_dim=8, seed=3)
    root = tmp / "ave"
    root.mkdir()
    lines = []
    for i, row in enumerate(labels):
        event = np.flatnonzero(row != BACKGROUND)
        cls, start, end = (int(row[event[0]]), int(event[0]), int(event[-1]) + 1) if len(event) else (0, 0, 0)
        lines.append(f"{CATEGORIES[cls]}&v{i:03d}&good&{start}&{end}")
    (root / "Annotations.txt").write_text("\n".join(lines) + "\n")
    for name, file in (("train", "trainSet.txt"), ("val", "valSet.txt"), ("test", "testSet.txt")):
        (root / file).write_text("\n".join(lines[i] for i in splits[name]) + "\n")
    for enc in ("finetuned", "frozen"):
        for key, arr in (("audio", audio), ("mean", visual), ("single", visual)):
            write_features(tmp / "features" / enc / FEATURE_FILES[key], arr)
    return root, tmp / "features"


def _without_times(obj):
    """A result without its wall-clock fields (they differ on every run)."""
    if isinstance(obj, dict):
        return {k: _without_times(v) for k, v in obj.items() if k not in ("seconds", "train_seconds")}
    if isinstance(obj, list):
        return [_without_times(v) for v in obj]
    return obj


def _params(root: Path, nproc: int) -> dict:
    return {"data": {"dataset": "synthave", "root": str(root)}, "localizer": {"hidden": 16, "heads": 2},
            "train": TRAIN, "evaluate": {"seeds": [0, 1, 2], "postprocess_candidates": [0, 1]},
            "weak": {"models": ["aveclip", "mlp"], "encoders": ["finetuned"], "thresholds": [0.3, 0.5]},
            "baselines": {}, "distributed": {"localizer_nproc": nproc}}


def test_two_ranks_train_the_same_seeds_as_one_process(tmp_path, capfd):
    root, features = _tiny_root(tmp_path)
    one = run_train(_params(root, 1), features / "finetuned", tmp_path / "one", progress=False)
    two = run_train(_params(root, 2), features / "finetuned", tmp_path / "two", progress=False)
    assert "train: on this process and 1 worker(s)" in capfd.readouterr().out
    assert _without_times(two) == _without_times(one)
    for seed in (0, 1, 2):  # every seed's checkpoint came from a rank and was only resumed here
        assert (tmp_path / "two" / f"seed{seed}" / "best.pt").is_file()
    assert not (tmp_path / "two" / "ranks_spec.json").exists()

    weak_one = run_weak(_params(root, 1), features, None, tmp_path / "weak_one")
    weak_two = run_weak(_params(root, 2), features, None, tmp_path / "weak_two")
    assert weak_two == weak_one


@pytest.mark.usefixtures("one_torch_thread")  # as each of 2 processes on 2 cores: the CPU's float sums depend on it
def test_two_ranks_extract_the_same_features_as_one_process(tmp_path, capfd):
    from test_contrastive import make_dataset

    from avelib.stages.towers import run_extract

    _, cache_dir = make_dataset(tmp_path / "ds", n=14)
    params = {"audioclip": {"profile": "small", "checkpoint": None}, "finetune": {"seed": 5},
              "extract": {"batch_size": 6, "device": "cpu"}}
    one = run_extract({**params, "distributed": {"extract_nproc": 1}}, cache_dir, None, tmp_path / "one", progress=False)
    two = run_extract({**params, "distributed": {"extract_nproc": 2}}, cache_dir, None, tmp_path / "two", progress=False)
    assert "extract: on this process and 1 worker(s)" in capfd.readouterr().out
    for name in FEATURE_FILES.values():  # the very bytes: each second is encoded alike on any rank
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    assert two.failed == one.failed and not (tmp_path / "two.partial").exists()


STEP_TOLERANCE = 1e-4  # relative, per parameter gradient (measured on an Intel Xeon: 1.3e-5, from the order of float sums)
FINETUNE_TOLERANCE = 0.01  # relative, per epoch's mean loss (measured: 0.2-0.5 % after 3 epochs of Adam)


def _one_step(towers, images, audio, shard=None):
    """The fine-tuning loss of one batch (contrastive + FBSP) and its backward, on one rank of `shard`."""
    from avelib.train.data_parallel import all_reduce_gradients, gather_batch, local_rows
    from avelib.train.objective import contrastive_loss

    if shard is None:
        a, i = towers.encode_audio(audio), towers.encode_image(images)
    else:
        mine = torch.as_tensor(local_rows(np.arange(len(audio)), shard.rank, shard.world))
        a, i = (gather_batch(e, shard.world, len(audio)) for e in (towers.encode_audio(audio[mine]), towers.encode_image(images[mine])))
    loss = contrastive_loss(towers, a, i) + towers.fbsp_loss()
    (loss / (shard.world if shard else 1)).backward()
    if shard is not None:
        all_reduce_gradients([p for p in towers.parameters() if p.grad is not None])
        towers.audio.fbsp.normalize_gradients()
    return float(loss.detach()), {n: p.grad for n, p in towers.named_parameters() if p.grad is not None}


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(8, 3, 64, 64, generator=g), 0.1 * torch.randn(8, 16000, generator=g)  # images, audio


def _towers(data_parallel: bool):
    from avelib.models.audioclip import build_audioclip
    from avelib.train.data_parallel import sync_batch_norm

    torch.manual_seed(0)
    towers = build_audioclip("small", None).train()
    if data_parallel:
        towers.audio.fbsp.defer_normalization = True
        sync_batch_norm(towers)
    return towers


def _rank_step(rank: int, world: int, store: str, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    result = _one_step(_towers(True), *_batch(), Shard(rank, world))
    if rank == 0:
        torch.save(result, out)
    dist.destroy_process_group()


def test_a_data_parallel_step_is_the_step_of_one_process(tmp_path):
    """Two gloo ranks, each encoding half of a batch (BatchNorm in training mode): the loss and every
    gradient equal one process's on the whole batch in the gathered order, up to float rounding."""
    import torch.multiprocessing as mp

    from avelib.train.data_parallel import gathered_rows

    mp.spawn(_rank_step, args=(2, str(tmp_path / "store"), str(tmp_path / "step.pt")), nprocs=2)
    loss2, grads2 = torch.load(tmp_path / "step.pt", weights_only=True)
    images, audio = _batch()
    order = torch.as_tensor(gathered_rows(np.arange(8), 2))
    loss1, grads1 = _one_step(_towers(False), images[order], audio[order])
    tolerance = max(STEP_TOLERANCE, 2 * _rounding_floor(images[order], audio[order], grads1))
    assert loss2 == pytest.approx(loss1, rel=1e-5) and grads2.keys() == grads1.keys()
    for name, g in _compared(grads1).items():
        assert _relative(grads2[name], g) < tolerance, (name, tolerance)


def _compared(grads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Biases in front of a BatchNorm have a zero gradient: theirs is rounding noise, left out."""
    return {name: g for name, g in grads.items() if g.norm() > 1e-3}


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _rounding_floor(images: torch.Tensor, audio: torch.Tensor, reference: dict[str, torch.Tensor]) -> float:
    """The largest relative gradient difference of the same one-process step at another thread count.

    Kernels split their sums by thread, so this is how far float rounding alone moves the gradients on this
    CPU (an Intel Xeon: ~1e-5; a 2-core AMD EPYC: ~2e-3 through the audio tower), the floor of any
    comparison of two ways to compute one step."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if threads > 1 else 2)
    try:
        _, other = _one_step(_towers(False), images, audio)
    finally:
        torch.set_num_threads(threads)
    return max(_relative(other[name], g) for name, g in _compared(reference).items())


def test_two_ranks_finetune_along_the_loss_curve_of_one_process(tmp_path, capfd):
    """Same global batches, embeddings gathered for the loss, gradients summed, BatchNorm over the whole
    batch: the curves agree up to float rounding (amplified by Adam over the steps)."""
    from test_contrastive import make_dataset

    from avelib.stages.towers import run_finetune

    root, cache_dir = make_dataset(tmp_path / "ds")
    params = {"audioclip": {"profile": "small", "checkpoint": None},
              "finetune": {"epochs": 3, "batch_size": 8, "passes_per_epoch": 4, "lr": 1e-4, "logit_scale_init": 14.285714, "device": "cpu",
                           "seed": 3, "eval_batch_size": 8}}
    runs = {n: run_finetune({**params, "distributed": {"finetune_nproc": n}}, cache_dir, root, tmp_path / f"ft{n}",
                            progress=False) for n in (1, 2)}
    assert "finetune: on 2 ranks" in capfd.readouterr().out
    one, two = ([h["train_loss"] for h in runs[n].history if h["epoch"] > 0] for n in (1, 2))
    print(f"fine-tuning loss per epoch, 1 process: {one}\n                         2 ranks:   {two}")
    assert len(one) == len(two) == 3 and one != two  # two computations, not one run read twice
    np.testing.assert_allclose(two, one, rtol=FINETUNE_TOLERANCE)
    assert [h["train_pairs"] for h in runs[2].history[1:]] == [h["train_pairs"] for h in runs[1].history[1:]]
    assert runs[2].history[0] == runs[1].history[0]  # epoch 0: the same towers before training, scored alike
    assert not (tmp_path / "ft2" / "ranks_spec.json").exists() and (tmp_path / "ft2" / "best.pt").is_file()


def test_a_failing_rank_fails_the_stage(tmp_path):
    root, features = _tiny_root(tmp_path)
    params = _params(root, 2)
    params["evaluate"]["seeds"] = [0, "x"]  # the ranks' configs fail to parse too
    with pytest.raises(Exception, match="evaluate.seeds|worker rank"):
        run_train(params, features / "finetuned", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # nothing that looks complete


def test_a_failing_worker_fails_the_stage_with_its_output(tmp_path, capsys):
    from avelib.distributed import SPEC, Launch, share

    done = []  # this process's share succeeds; the worker's train job has no data section and fails
    with pytest.raises(RuntimeError, match=r"train: worker rank\(s\) \[1\] failed"):
        share(Launch(2), "train", {"params": {}, "features_dir": str(tmp_path)}, tmp_path, lambda **kw: done.append(kw["shard"]))
    assert done == [Shard(0, 2)]
    assert "Traceback" in capsys.readouterr().out  # the worker's output is shown
    assert (tmp_path / SPEC).is_file() and not (tmp_path / "rank1.log").exists()
