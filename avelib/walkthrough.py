"""The walkthrough notebook (notebooks/walkthrough.ipynb): a pipeline's trained towers and localizer on one test video.

It reads one pipeline: the repository after `make repro`, or the folder that AVELIB_WALKTHROUGH_ROOT names. From
it: the two checkpoints of params.yaml's `report.predict`, the test video's decoded seconds (decode cache), and
what the stages stored from the same models (the extract stage's features, the train stage's test predictions),
which its two checks compare with what it computes here. Its figures are the explorer's (avelib.explore).

CI checks the committed notebook on smoke-size models (avelib.smoke), whose numbers and pictures differ from the
stored ones: nbval compares only the cells marked `# NBVAL_CHECK_OUTPUT` (the two checks, whose text holds on any
models) and runs every other cell. `python -m avelib.walkthrough smoke DIR` builds such models;
`python -m avelib.walkthrough execute [--smoke]` re-executes the notebook in place, storing its outputs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from avelib.explore import VideoSet
from avelib.predict import LocalizerBundle

ROOT_ENV = "AVELIB_WALKTHROUGH_ROOT"
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"
SANITIZE = NOTEBOOK.with_name("walkthrough_sanitize.cfg")
MIN_COSINE = 0.999  # features here vs the extract stage's: equal but for rounding (its bf16 autocast on a GPU)
PROVENANCE = "**Stored outputs:**"  # the line of the first markdown cell that `execute` rewrites
REPRO_MODELS = ("from this repository's `make repro` models (`models/finetune/best.pt`, "
                "`models/localizer/seed0/best.pt`), stored by `python -m avelib.walkthrough execute`.")
SMOKE_MODELS = ("from **smoke-size** models, not `make repro`'s: a few tiny SynthAVE videos, towers fine-tuned for an "
                "epoch from a random init and a localizer trained for a few (avelib.smoke; `python -m "
                "avelib.walkthrough execute --smoke`). Their numbers and pictures say nothing about the method; "
                "`python -m avelib.walkthrough execute` stores the real ones after `make repro`.")


@dataclass
class Walkthrough:
    """One test video of a pipeline run through its towers and localizer, and what the stages stored of it."""

    root: Path
    towers: Path
    localizer: LocalizerBundle
    video: VideoSet  # this one video: media, truth, the features computed here, the localizer
    result: dict[str, np.ndarray]  # avelib.predict.localize of those features: labels, alpha, ... [10] each
    stored_features: tuple[np.ndarray, np.ndarray]  # the extract stage's audio, visual [10,E] of this video
    stored_labels: np.ndarray  # the train stage's post-processed test prediction [10] (the localizer's seed)


def load(root: str | Path | None = None, video: str | None = None) -> Walkthrough:
    """The walkthrough of `video` (a test video id; None: the first with an event of 1-9 s) in the pipeline at
    `root` (None: the one holding the working directory)."""
    from avelib.data.cache import DataConfig
    from avelib.notebook import pipeline_root, stage_arguments
    from avelib.params import section
    from avelib.predict import load_localizer, load_towers, localize, predict_defaults

    root = Path(root).resolve() if root else pipeline_root()
    predict = predict_defaults(root / "params.yaml")
    if predict.towers is None:
        raise ValueError(f"{root / 'params.yaml'}: report.predict.towers is null; the walkthrough shows trained towers")
    train = stage_arguments(root, "train")
    bundle = load_localizer(root / predict.checkpoint)
    towers, data = load_towers(root / predict.towers), section(train["params"], "data", DataConfig)
    row, one = encoded_video(root, data, video, towers, bundle, predict.batch_size)
    features = (one.audio_features[0], one.visual_features[0])
    return Walkthrough(root, root / predict.towers, bundle, one, localize(bundle, *features),
                       stored_features(root / train["features_dir"], row, bundle.visual),
                       stored_labels(root / train["out_dir"], row, bundle.path))


def encoded_video(root: Path, data: Any, video: str | None, towers: Any, bundle: LocalizerBundle,
               batch_size: int) -> tuple[int, VideoSet]:
    """(dataset row, the video with the features `towers` give it) of test video `video` (pick_video), read from
    the dataset and decode cache of `data` (avelib.data.cache.DataConfig) under `root`."""
    from avelib.data.ave import load_dataset
    from avelib.data.cache import SegmentCache
    from avelib.predict import encode_video

    dataset, cache = load_dataset(root / data.root), SegmentCache.open(root / data.cache_dir)
    row = pick_video(dataset, cache.ok, video)
    # copies [10,K,S,S,3], [10,R]: torch warns on a read-only memmap
    frames, audio = np.array(cache.frames[row]), np.array(cache.audio[row])
    a, v = encode_video(towers, frames, audio, bundle.visual, batch_size)  # [10,E] each
    record = dataset.records[row]
    return row, VideoSet(
        names=[f"{record.video_id} ({record.category})"], labels=dataset.labels[row : row + 1], frames=frames[None],
        audio=audio[None], sample_rate=cache.sample_rate, audio_features=a[None], visual_features=v[None],
        localizer=bundle, source=f"test video {record.video_id} ({record.category}) of {data.root}")


def pick_video(dataset: Any, decoded: np.ndarray, video: str | None) -> int:
    """The dataset row of test video `video`, or of the first decoded test video with an event of 1-9 s (the
    videos the A2V protocol scores)."""
    from avelib.eval.crossmodal import eligible, event_spans

    test = [int(i) for i in dataset.splits["test"] if decoded[i]]
    if video is not None:
        rows = [i for i in test if dataset.records[i].video_id == video]
        if not rows:
            raise ValueError(f"{video}: not a decoded test video of {dataset.root}")
        return rows[0]
    scored = eligible(event_spans(dataset.labels[test])[1])
    if not scored.any():
        raise ValueError(f"{dataset.root}: no decoded test video has an event of 1-9 s; name one as `video`")
    return test[int(np.argmax(scored))]


def stored_features(features_dir: Path, row: int, visual: str) -> tuple[np.ndarray, np.ndarray]:
    """The extract stage's audio and visual features [10,E] of dataset row `row`."""
    from avelib.data.features import load_feature_set

    audio, vis = load_feature_set(features_dir, visual)  # [N,10,E] each
    return audio[row], vis[row]


def stored_labels(train_dir: Path, row: int, checkpoint: Path) -> np.ndarray:
    """The train stage's post-processed test prediction [10] of dataset row `row`, by the seed of `checkpoint`
    (`<train_dir>/seed<k>/best.pt`)."""
    path = train_dir / "predictions.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the train stage's test predictions are missing (has it run?)")
    stored = np.load(path)
    key = f"pred_{checkpoint.parent.name}"
    if key not in stored:
        raise KeyError(f"{path}: no {key} for {checkpoint} (it has {sorted(stored)})")
    position = np.flatnonzero(stored["test_index"] == row)
    if len(position) != 1:
        raise ValueError(f"{path}: dataset row {row} is not one of its test rows (made from another dataset?)")
    return stored[key][int(position[0])]


def summary(w: Walkthrough) -> str:
    """Which pipeline, models and video the walkthrough shows."""
    b = w.localizer
    return "\n".join([
        f"pipeline: {w.root}",
        f"towers: {w.towers.relative_to(w.root)}",
        f"localizer: {b.path.relative_to(w.root)} (trained on {b.dataset}; {b.encoder} features, visual {b.visual}, "
        f"post-processing L = {b.postprocess_max_len})",
        f"video: {w.video.source}",
    ])


def seconds_table(w: Walkthrough) -> Any:
    """Per second: the truth, the localizer's label and event score alpha, and the A2V match (the visual second
    whose features are nearest the audio second's, zero-shot cosine)."""
    import pandas as pd

    from avelib.data.ave import label_name
    from avelib.eval.crossmodal import cosine_similarity

    match = cosine_similarity(w.video.audio_features, w.video.visual_features)[0].argmax(axis=1)  # [10]
    return pd.DataFrame({
        "truth": [label_name(int(y)) for y in w.video.labels[0]],
        "prediction": [label_name(int(y)) for y in w.result["labels"]],
        "alpha": w.result["alpha"].round(3),
        "A2V: nearest visual second": match,
    }).rename_axis("second")


def features_check(w: Walkthrough) -> str:
    """One line: whether the towers give here the features the extract stage stored for this video."""
    here = (w.video.audio_features[0], w.video.visual_features[0])
    lowest = min(float(_cosines(a, b).min()) for a, b in zip(here, w.stored_features))
    verdict = "yes" if lowest >= MIN_COSINE else f"NO: lowest cosine {lowest:.4f}"
    return f"towers: the features here are the extract stage's (cosine >= {MIN_COSINE} every second): {verdict}"


def predictions_check(w: Walkthrough) -> str:
    """One line: whether the localizer labels this video as the train stage's stored test predictions do."""
    differ = int((w.result["labels"] != w.stored_labels).sum())
    verdict = "yes" if differ == 0 else f"NO: {differ} of {len(w.stored_labels)} seconds differ"
    return f"localizer: its labels here are the train stage's test predictions of this video: {verdict}"


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of a [T,E] with the same row of b [T,E]: [T]."""
    return (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)


# ----------------------------------------------------------------------------- storing the notebook's outputs


def execute(root: Path | None, provenance: str) -> None:
    """Run notebooks/walkthrough.ipynb in place (the kernel in notebooks/, as Jupyter starts it) on the pipeline at
    `root` (None: this repository) and store its outputs, its first markdown cell saying where they came from."""
    import nbformat
    from nbconvert.preprocessors import ExecutePreprocessor

    from avelib.io import atomic_path
    from avelib.notebook import IPCKernelManager

    nb = nbformat.read(NOTEBOOK, as_version=4)
    first = nb.cells[0]
    if PROVENANCE not in first.source:
        raise ValueError(f"{NOTEBOOK}: its first markdown cell has no '{PROVENANCE}' line to rewrite")
    lines = first.source.splitlines()
    first.source = "\n".join(f"{PROVENANCE} {provenance}" if line.startswith(PROVENANCE) else line for line in lines)
    with _environment(ROOT_ENV, None if root is None else str(root)):
        client = ExecutePreprocessor(timeout=900, kernel_name="python3", kernel_manager_class=IPCKernelManager)
        client.preprocess(nb, {"metadata": {"path": str(NOTEBOOK.parent)}})
    with atomic_path(NOTEBOOK) as tmp:
        nbformat.write(nb, tmp)
    print(f"{NOTEBOOK}: executed and stored")


@contextlib.contextmanager
def _environment(name: str, value: str | None) -> Iterator[None]:
    """`name` set to `value` (None: unset) for the block; a kernel started in it inherits that."""
    old = os.environ.pop(name, None)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)
        if old is not None:
            os.environ[name] = old


def main(argv: list[str] | None = None) -> int:
    """`python -m avelib.walkthrough smoke DIR | execute [--smoke]`."""
    from avelib.smoke import build_models

    parser = argparse.ArgumentParser(prog="python -m avelib.walkthrough", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    smoke = sub.add_parser("smoke", help="build smoke-size towers and localizer into DIR (avelib.smoke, ~1 min)")
    smoke.add_argument("dir", type=Path)
    run = sub.add_parser("execute", help="re-execute notebooks/walkthrough.ipynb in place, storing its outputs")
    run.add_argument("--smoke", action="store_true", help="on smoke models built in a temporary folder, not the "
                     "repository's `make repro` models")
    args = parser.parse_args(argv)
    if args.command == "smoke":
        build_models(args.dir)
    elif args.smoke:
        with tempfile.TemporaryDirectory() as tmp:
            execute(build_models(Path(tmp) / "pipeline"), SMOKE_MODELS)
    else:
        execute(None, REPRO_MODELS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
