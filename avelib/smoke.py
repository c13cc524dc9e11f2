"""Smoke sizes: the pipeline in miniature (20 tiny videos, an epoch or two), for the tests and CI.

`SMOKE` shrinks params.yaml (tests/test_stage_notebooks.py runs every stage on it). `build_models` makes the
towers and the localizer of such a pipeline in a folder of its own, by the stages' own functions, with the
arguments the stage runner would pass: what the walkthrough notebook needs, in about a minute on 2 cores
instead of `make repro`'s quarter of an hour (`python -m avelib.walkthrough smoke DIR`).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Mapping

import yaml

from avelib.params import load_params, section

ROOT = Path(__file__).resolve().parents[1]

SMOKE: dict[str, Any] = {
    "synth": {"num_videos": 20, "image_size": 32, "fps": 4, "sample_rate": 8000, "workers": 1},
    "decode": {"frames_per_second": 2, "image_size": 64, "sample_rate": 16000, "workers": 1},
    "pretrain": {"pool": {"videos": 20, "seed": 1}, "towers": {"epochs": 1, "batch_size": 8, "eval_batch_size": 16, "pairs": "clip"}},
    "finetune": {"epochs": 1, "batch_size": 8, "eval_batch_size": 16, "device": "cpu"},
    "extract": {"batch_size": 32, "device": "cpu"},
    "tower_runs": {"count": 2, "nproc": 1},
    "localizer": {"hidden": 32, "heads": 2},
    "train": {"phases": [{"windows": [10], "epochs": 2}, {"windows": [10, 5, 3, 2], "epochs": 3}], "threads": 1},
    "evaluate": {"seeds": [0, 1], "postprocess_candidates": [0, 1]},
    "distributed": {"localizer_nproc": 1, "extract_nproc": 1},
    "ablations": {"encoder": {"frozen": {"features": "frozen"}, "finetuned": {"features": "finetuned"}}},
    "weak": {"thresholds": [0.3, 0.5]},
    "crossmodal": {"epochs": 2},
}
# build_models: the towers fine-tuned from a random init (no pretraining stage), the localizer on one seed
MODELS_ONLY: dict[str, Any] = {"audioclip": {"checkpoint": None}, "pretrain": {"enabled": False},
                               "evaluate": {"seeds": [0]}}


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `over` merged in, section by section; `ablations` is replaced whole (its variants are the axes)."""
    out = dict(base)
    for key, value in over.items():
        nested = isinstance(value, Mapping) and isinstance(base.get(key), Mapping) and key != "ablations"
        out[key] = merge(base[key], value) if nested else value
    return out


def build_models(out: str | Path, base: str | Path = ROOT / "params.yaml") -> Path:
    """A smoke pipeline in `out`: params.yaml (`base` shrunk by SMOKE and MODELS_ONLY), SynthAVE, its decode cache,
    the fine-tuned towers, their features and the localizer, each where its stage puts it. Returns `out`."""
    from avelib.notebook import check_params

    out = Path(out).resolve()
    params = merge(merge(load_params(base), SMOKE), MODELS_ONLY)
    check_params(params)
    out.mkdir(parents=True, exist_ok=True)
    (out / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    start = time.perf_counter()
    with contextlib.chdir(out):  # the stages' paths and params are relative to the pipeline root
        _run_model_stages(out)
    print(f"smoke towers and localizer in {out} ({time.perf_counter() - start:.0f} s)")
    return out


def _run_model_stages(root: Path) -> None:
    """data -> decode -> finetune -> extract (fine-tuned features) -> train, as the stage runner calls them."""
    from avelib.data.cache import DataConfig, DecodeConfig, build_cache
    from avelib.data.prepare import prepare_dataset
    from avelib.data.synth import SynthConfig
    from avelib.notebook import stage_arguments
    from avelib.stages.localizer import run_train
    from avelib.stages.towers import run_extract, run_finetune

    data = stage_arguments(root, "data")["params"]
    dataset = section(data, "data", DataConfig)
    prepare_dataset(dataset, section(data, "synth", SynthConfig), progress=False)
    decode = section(stage_arguments(root, "decode")["params"], "decode", DecodeConfig)
    build_cache(dataset.root, dataset.cache_dir, decode, progress=False)
    finetune = stage_arguments(root, "finetune")
    run_finetune(finetune["params"], dataset.cache_dir, dataset.root, finetune["out_dir"], progress=False)
    extract = stage_arguments(root, "extract")
    run_extract(extract["params"], dataset.cache_dir, extract["checkpoint"], Path(extract["out_dir"]) / "finetuned",
                progress=False)
    train = stage_arguments(root, "train")
    run_train(train["params"], train["features_dir"], train["out_dir"], progress=False)
