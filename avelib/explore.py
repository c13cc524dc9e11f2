"""What the explore notebook shows: ablation groups and per-video media, features and predictions,
from the pipeline's outputs, or a clearly labelled in-memory demo where those are missing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avelib.eval.loaders import load_ablations
from avelib.predict import LocalizerBundle, encode_video, load_localizer


def pipeline_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: the working directory) holding dvc.yaml: a kernel
    started in notebooks/ reads the pipeline's outputs, not a notebooks/reports that does not exist."""
    here = Path(start or Path.cwd()).resolve()
    return next((d for d in (here, *here.parents) if (d / "dvc.yaml").is_file()), here)


def from_root(*paths: str | Path, root: Path | None = None) -> list[Path]:
    """`paths` with the relative ones taken from the pipeline root."""
    base = root or pipeline_root()
    return [Path(p) if Path(p).is_absolute() else base / p for p in paths]


def show_in(area: Any, *objects: Any) -> None:
    """Replace what an ipywidgets Output area shows, through its state: never inside `with area:`, whose
    capture of the cell's messages made a headless run (papermill) wait forever for the cell's end."""
    area.outputs = ()
    for obj in objects:
        area.append_display_data(obj)


def explore_ablations(reports_dir: str | Path = "reports") -> tuple[dict[str, list[dict[str, Any]]], str]:
    """(variants by axis, a line saying where they come from); no axis when ablations.json is missing."""
    path = Path(reports_dir) / "ablations.json"
    if path.is_file():
        return load_ablations(path), f"ablations from {path}"
    return {}, f"not available: {path} missing (run the pipeline: `make repro`)"


@dataclass
class VideoSet:
    """What the explore notebook shows per video: media, ground truth, features and a localizer."""

    names: list[str]
    labels: Any  # int64 [N,10] ground truth
    frames: Any  # uint8 [N,10,K,S,S,3]
    audio: Any  # float32 [N,10,R]
    sample_rate: int
    audio_features: Any  # float32 [N,10,Ea]
    visual_features: Any  # float32 [N,10,Ev]
    localizer: Any  # avelib.predict.LocalizerBundle
    source: str  # where all this comes from (pipeline outputs or DEMO)


def load_video_set(
    data_root: str | Path, cache_dir: str | Path, features_dir: str | Path, checkpoint: str | Path,
    split: str = "test", max_videos: int = 50,
) -> VideoSet:  # fmt: skip
    """The `split` videos from the pipeline outputs (dataset, decode cache, features, localizer checkpoint)."""
    import numpy as np

    from avelib.data.ave import load_dataset
    from avelib.data.cache import SegmentCache
    from avelib.data.features import load_feature_set

    for p in (Path(data_root), Path(cache_dir), Path(features_dir), Path(checkpoint)):
        if not p.exists():
            raise FileNotFoundError(f"{p} missing (run the pipeline: dvc repro)")
    ds = load_dataset(data_root)
    cache = SegmentCache.open(cache_dir)
    bundle = load_localizer(checkpoint)
    audio_f, visual_f = load_feature_set(features_dir, visual=bundle.visual)  # [N,10,E] each
    idx = np.asarray(ds.splits[split])
    idx = idx[np.asarray(cache.ok)[idx]][:max_videos]  # decoded videos only
    return VideoSet(
        names=[f"{ds.records[i].video_id} ({ds.records[i].category})" for i in idx],
        labels=np.asarray(ds.labels)[idx], frames=cache.frames[idx], audio=cache.audio[idx],
        sample_rate=int(cache.sample_rate), audio_features=audio_f[idx], visual_features=visual_f[idx],
        localizer=bundle, source=f"{split} split of {data_root}, features {features_dir}, localizer {checkpoint}",
    )  # fmt: skip


def demo_video_set(num_videos: int = 2, seed: int = 0, frames_per_second: int = 4) -> VideoSet:
    """A tiny in-memory stand-in: SynthAVE videos rendered in memory, random-init small AudioCLIP
    features and an UNTRAINED localizer (its predictions and attention are meaningless)."""
    import numpy as np
    import torch

    from avelib.data.ave import CATEGORIES, NUM_SEGMENTS
    from avelib.data.synth import SynthConfig, plan_video
    from avelib.data.synth_render import render_audio, render_frames
    from avelib.models.audioclip import build_audioclip
    from avelib.models.localizer import AVECLIPLocalizer, LocalizerConfig

    torch.manual_seed(seed)
    towers = build_audioclip("small", None)
    cfg = SynthConfig(image_size=towers.config.image_size, sample_rate=towers.config.sample_rate, seed=seed)
    pick = (np.arange(frames_per_second) + 0.5) * cfg.fps / frames_per_second  # K frame times in a second
    names, labels, frames, audio, fa, fv = [], [], [], [], [], []
    for i in range(num_videos):
        label = (5 * i + seed) % len(CATEGORIES)
        plan = plan_video(cfg, i, label)
        f = render_frames(cfg, plan, i).reshape(NUM_SEGMENTS, cfg.fps, *([cfg.image_size] * 2), 3)
        f = f[:, pick.astype(int)]  # [10,K,S,S,3]
        a = render_audio(cfg, plan, i).reshape(NUM_SEGMENTS, cfg.sample_rate)  # [10,R]
        ea, ev = encode_video(towers, f, a)  # [10,E] each
        names.append(f"demo{i} ({CATEGORIES[label]})")
        labels.append(plan["segment_labels"])
        frames.append(f), audio.append(a), fa.append(ea), fv.append(ev)
    e = towers.config.embed_dim
    model = AVECLIPLocalizer(LocalizerConfig(), e, e).eval()
    bundle = LocalizerBundle(model, 1, "frozen", "mean", e, e, Path("<untrained demo localizer>"))
    return VideoSet(
        names=names, labels=np.asarray(labels, dtype=np.int64), frames=np.stack(frames), audio=np.stack(audio),
        sample_rate=cfg.sample_rate, audio_features=np.stack(fa), visual_features=np.stack(fv), localizer=bundle,
        source="MADE-UP DEMO: in-memory SynthAVE videos, random-init towers, untrained localizer",
    )  # fmt: skip


def explore_videos(
    data_root: str | Path, cache_dir: str | Path, features_dir: str | Path, checkpoint: str | Path,
    split: str = "test", max_videos: int = 50,
) -> tuple[VideoSet, str]:  # fmt: skip
    """The pipeline's videos, or the in-memory demo set (said so in the returned line) when outputs are missing."""
    try:
        vs = load_video_set(data_root, cache_dir, features_dir, checkpoint, split, max_videos)
    except FileNotFoundError as e:
        vs = demo_video_set()
        return vs, f"not available: {e} -> showing a {vs.source}"
    return vs, f"videos: {vs.source}"


def video_figures(vs: VideoSet, i: int) -> dict[str, Any]:
    """Frames strip, spectrogram, ground truth vs prediction (+ alpha) timeline and attention maps of video i."""
    import torch

    from avelib.eval.postprocess import smooth_predictions
    from avelib.viz.data import frame_strip, spectrogram
    from avelib.viz.localizer import attention_maps, timelines

    model = vs.localizer.model
    a = torch.as_tensor(vs.audio_features[i : i + 1])  # [1,10,Ea]
    v = torch.as_tensor(vs.visual_features[i : i + 1])  # [1,10,Ev]
    with torch.inference_mode():
        out = model(a, v, return_attention=True)
    pred = smooth_predictions(model.predict(out).numpy(), vs.localizer.postprocess_max_len)[0]  # [10]
    gt = vs.labels[i]
    figures = {
        "frames": frame_strip(vs.frames[i], gt, title=vs.names[i]),
        "spectrogram": spectrogram(vs.audio[i], vs.sample_rate, gt, title=f"{vs.names[i]}: audio"),
        "timeline": timelines(gt, pred, out.alpha[0].numpy(), titles=[vs.names[i]]),
        "attention": attention_maps(out.attention or {}, 0, title=f"{vs.names[i]}: attention (mean over heads)"),
    }
    a2v = a2v_figure(vs, i)
    return figures if a2v is None else figures | {"a2v": a2v}


def a2v_figure(vs: VideoSet, i: int) -> Any:
    """Zero-shot A2V of video i (cosine of its audio and visual embeddings), or None where the protocol
    does not score it (no event, or a 10-s one) or the embeddings differ in size."""
    from avelib.eval import crossmodal as X
    from avelib.viz.tasks import similarity_map

    a, v = vs.audio_features[i : i + 1], vs.visual_features[i : i + 1]  # [1,10,E] each
    start, length = X.event_spans(vs.labels[i : i + 1])
    if a.shape[-1] != v.shape[-1] or not X.eligible(length)[0]:
        return None
    sim = X.cosine_similarity(a, v)  # [1,10,10]
    pred = int(X.predicted_starts(sim, start, length)[0])
    return similarity_map(sim[0], int(start[0]), int(length[0]), pred,
                          title=f"{vs.names[i]}: zero-shot A2V, true start {start[0]} (green), predicted {pred} (red)")
