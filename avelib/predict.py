"""Own-video inference: per-second audio-visual event labels for a video of any length.

decode (K frames + R audio samples per second, frames S x S, every second of the file)
-> AudioCLIP towers: visual = mean of the K frame embeddings (or the middle frame, as the
   checkpoint's `visual` says), audio = embedding of each 1-s clip          # [T,E] each
-> cut into 10-s windows (the last one padded with black frames and silence, as the decode
   stage pads short videos) -> localizer -> per-second labels + alpha      # [W,10]
-> trimmed back to the T real seconds -> post-processing with the checkpoint's L.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from avelib import captions
from avelib.data.ave import BACKGROUND, NUM_SEGMENTS, label_name
from avelib.io import atomic_path, write_json
from avelib.models.localizer import LOCALIZER_CHECKPOINT_KEYS as CHECKPOINT_KEYS
from avelib.params import from_dict, load_params
from avelib.train.checkpointing import load_torch


@dataclass(frozen=True)
class PredictDefaults:
    """params.yaml section `report.predict`: own-video inference defaults."""

    checkpoint: str = "models/localizer/seed0/best.pt"
    """Localizer checkpoint (avelib.models.localizer.localizer_checkpoint format)."""
    towers: str | None = "models/finetune/best.pt"
    """AudioCLIP checkpoint the features are computed with (null: random-init towers of `audioclip_profile`, for smoke tests only)."""
    audioclip_profile: str = "small"
    """AudioCLIP profile ("small" | "paper") used when `towers` is null."""
    frames_per_second: int = 4
    """K frames per second averaged into the visual feature; keep it equal to the decode stage's K."""
    batch_size: int = 64
    """Images/audio seconds encoded per forward pass of the towers."""
    out: str = "predictions"
    """Output folder; each video gets `<out>/<video stem>/` (labels.json/.csv/.vtt/.srt, timeline.png, video.html)."""


def predict_defaults(params_path: str | Path = "params.yaml") -> PredictDefaults:
    """The `report.predict` section of params.yaml (defaults when the file or the section is absent)."""
    path = Path(params_path)
    report = load_params(path).get("report") if path.is_file() else None
    if not isinstance(report, dict) or "predict" not in report:
        return PredictDefaults()
    return from_dict(PredictDefaults, report["predict"], "report.predict")


@dataclass
class LocalizerBundle:
    """A loaded localizer and the facts of its checkpoint needed at inference."""

    model: torch.nn.Module
    postprocess_max_len: int
    encoder: str  # "finetuned" | "frozen": which towers its features came from
    visual: str  # "mean" | "single": K-frame mean or the middle frame
    audio_dim: int
    visual_dim: int
    path: Path
    dataset: str = "not recorded"  # what it was trained on (checkpoints before this field: not recorded)


def load_localizer(path: str | Path, device: str | torch.device = "cpu") -> LocalizerBundle:
    """Load a localizer checkpoint (`models/localizer/seed<k>/best.pt`, written by `localizer_checkpoint`)."""
    from avelib.models.localizer import AVECLIPLocalizer, LocalizerConfig
    from avelib.params import ParamsError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: localizer checkpoint not found (has the train stage run?)")
    ck = load_torch(path)
    if not isinstance(ck, dict):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(ck).__name__}")
    missing = [k for k in CHECKPOINT_KEYS if k not in ck]
    if missing:
        raise ValueError(f"{path}: not a localizer checkpoint: missing key(s) {missing} (has {sorted(ck)})")
    try:
        cfg = from_dict(LocalizerConfig, ck["config"], where=f"{path}: config")
    except ParamsError as e:
        raise ValueError(str(e)) from None
    model = AVECLIPLocalizer(cfg, int(ck["audio_dim"]), int(ck["visual_dim"]))
    try:
        model.load_state_dict(ck["state_dict"])
    except RuntimeError as e:
        raise ValueError(f"{path}: state_dict does not fit the stored config: {e}") from None
    if ck.get("windows"):  # the multi-scale phase the best epoch was in
        model.set_windows(tuple(ck["windows"]))
    if ck["visual"] not in ("mean", "single"):
        raise ValueError(f"{path}: 'visual' must be 'mean' or 'single', got {ck['visual']!r}")
    return LocalizerBundle(
        model=model.to(device).eval(),
        postprocess_max_len=int(ck["postprocess_max_len"]),
        encoder=str(ck["encoder"]),
        visual=str(ck["visual"]),
        audio_dim=int(ck["audio_dim"]),
        visual_dim=int(ck["visual_dim"]),
        path=path,
        dataset=str(ck.get("dataset", "not recorded")),
    )


def trained_on_warning(bundle: LocalizerBundle) -> str | None:
    """Why the labels of other videos are not meaningful, unless the localizer was trained on real AVE."""
    if bundle.dataset == "AVE":
        return None
    return (f"{bundle.path} was trained on {bundle.dataset}, not on real AVE videos: it knows only that data, so its "
            "labels of other videos are not meaningful")


def towers_record(towers: torch.nn.Module) -> str:
    """What the towers' checkpoint records of their training (avelib.train.finetune_record.save_best)."""
    report = getattr(towers, "load_report", {})
    if report.get("source") is None:
        return f"random-init AudioCLIP towers ({towers.config.name} profile): a smoke test, the labels are meaningless"
    extra = report.get("extra") or {}
    if "epoch" not in extra:
        return f"{report['source']}: AudioCLIP weights without this suite's training record (not written by stage A)"
    videos = ((extra.get("params") or {}).get("data") or {}).get("num_videos", "?")
    return (f"{report['source']}: fine-tuned by stage A on the {videos} videos of its data cache, kept epoch "
            f"{extra['epoch']} (the checkpoint names no dataset)")


def load_towers(towers: str | Path | None, profile: str | None = "small") -> torch.nn.Module:
    """AudioCLIP from a checkpoint, or RANDOM-INIT towers of `profile` when `towers` is None (smoke tests)."""
    from avelib.models.audioclip import AudioCLIP, build_audioclip

    if towers is not None:
        path = Path(towers)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: AudioCLIP checkpoint not found (run the finetune stage or `make weights`)")
        return AudioCLIP.from_checkpoint(path).eval()
    if profile is None:
        raise ValueError("predict: give --towers CHECKPOINT or --audioclip-profile NAME")
    return build_audioclip(profile, None).eval()


@torch.inference_mode()
def encode_video(
    towers: torch.nn.Module,
    frames: np.ndarray,
    audio: np.ndarray,
    visual: str = "mean",
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Per-second features: audio [T,Ea], visual [T,Ev] from frames uint8 [T,K,S,S,3], audio [T,R].

    `visual="mean"` averages the K frame embeddings; `"single"` takes the middle frame (index K//2),
    the same choice as the extract stage.
    """
    from avelib.models.audioclip import normalize_frames

    t, k = frames.shape[:2]
    if visual == "single":
        frames = frames[:, k // 2 : k // 2 + 1]  # [T,1,S,S,3]
        k = 1
    flat = frames.reshape(t * k, *frames.shape[2:])  # [T*K,S,S,3]
    img = [
        towers.encode_image(normalize_frames(torch.from_numpy(np.ascontiguousarray(flat[i : i + batch_size])).to(device))).float()
        for i in range(0, len(flat), batch_size)
    ]  # [b,E] each
    v = torch.cat(img).reshape(t, k, -1).mean(dim=1)  # [T,Ev]
    aud = [
        towers.encode_audio(torch.from_numpy(np.ascontiguousarray(audio[i : i + batch_size], dtype=np.float32)).to(device)).float()
        for i in range(0, t, batch_size)
    ]  # [b,Ea] each
    a = torch.cat(aud)  # [T,Ea]
    return a.cpu().numpy(), v.cpu().numpy()


def pad_to_windows(x: np.ndarray, window: int = NUM_SEGMENTS) -> tuple[np.ndarray, int]:
    """Zero-pad axis 0 to a multiple of `window`: ([W*window, ...], number of windows W >= 1)."""
    t = x.shape[0]
    w = max(1, math.ceil(t / window))
    pad = w * window - t
    if pad:
        x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), dtype=x.dtype)], axis=0)
    return x, w


@dataclass
class Prediction:
    """Per-second results for the T real seconds of one video."""

    video: Path
    labels: np.ndarray  # int64 [T], post-processed
    raw_labels: np.ndarray  # int64 [T], before post-processing
    alpha: np.ndarray  # float32 [T], event relevance
    class_probability: np.ndarray  # float32 [T], softmax prob. of the window's top event class
    window_class: np.ndarray  # int64 [T], the window's top event class (what an event second gets)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> int:
        return int(self.labels.shape[0])

    def rows(self) -> list[dict[str, Any]]:
        """One record per second: second, label, category, alpha, class_probability, raw_label."""
        return [
            {
                "second": t,
                "label": int(self.labels[t]),
                "category": label_name(int(self.labels[t])),
                "alpha": round(float(self.alpha[t]), 6),
                "class_probability": round(float(self.class_probability[t]), 6),
                "window_class": label_name(int(self.window_class[t])),
                "raw_label": int(self.raw_labels[t]),
            }
            for t in range(self.seconds)
        ]


@torch.inference_mode()
def localize(bundle: LocalizerBundle, audio: np.ndarray, visual: np.ndarray) -> dict[str, np.ndarray]:
    """Run the localizer on features audio [T,Ea], visual [T,Ev] of any length T (10-s windows).

    Returns labels/raw_labels/alpha/class_probability/window_class, each [T].
    """
    from avelib.eval.postprocess import smooth_predictions

    t = audio.shape[0]
    if audio.shape[-1] != bundle.audio_dim or visual.shape[-1] != bundle.visual_dim:
        raise ValueError(
            f"{bundle.path}: the localizer expects audio/visual features of size {bundle.audio_dim}/{bundle.visual_dim}, "
            f"the towers give {audio.shape[-1]}/{visual.shape[-1]}: use the towers it was trained with"
        )
    a, w = pad_to_windows(audio)  # [W*10,Ea]
    v, _ = pad_to_windows(visual)  # [W*10,Ev]
    device = next(bundle.model.parameters()).device
    a_t = torch.from_numpy(a).reshape(w, NUM_SEGMENTS, -1).to(device)  # [W,10,Ea]
    v_t = torch.from_numpy(v).reshape(w, NUM_SEGMENTS, -1).to(device)  # [W,10,Ev]
    out = bundle.model(a_t, v_t)
    raw = bundle.model.predict(out).reshape(-1)[:t].cpu().numpy().astype(np.int64)  # [T]
    probs = out.class_logits.softmax(dim=-1)  # [W,28]
    top_p, top_c = probs.max(dim=-1)  # [W], [W]
    per_second = lambda x: x.unsqueeze(1).expand(w, NUM_SEGMENTS).reshape(-1)[:t].cpu().numpy()  # noqa: E731
    # post-processing over the whole trimmed sequence, so a run crossing a window border is treated once
    labels = smooth_predictions(raw[None, :], bundle.postprocess_max_len)[0]  # [T]
    return {
        "labels": labels.astype(np.int64),
        "raw_labels": raw,
        "alpha": out.alpha.reshape(-1)[:t].cpu().numpy().astype(np.float32),
        "class_probability": per_second(top_p).astype(np.float32),
        "window_class": per_second(top_c).astype(np.int64),
    }


def predict_video(
    video: str | Path,
    bundle: LocalizerBundle,
    towers: torch.nn.Module,
    frames_per_second: int = 4,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> Prediction:
    """Decode `video` (every second), encode it and localize events second by second."""
    from avelib.data.media import decode_video

    video = Path(video)
    cfg = towers.config
    dec = decode_video(video, frames_per_second=frames_per_second, image_size=cfg.image_size,
                       sample_rate=cfg.sample_rate, seconds=None)  # fmt: skip
    if dec.frames.shape[0] == 0:
        raise ValueError(f"{video}: no whole or partial second decoded (empty video)")
    audio, visual = encode_video(towers, dec.frames, dec.audio, bundle.visual, batch_size, device)  # [T,E] each
    res = localize(bundle, audio, visual)
    missing = _missing_modality(dec.info)
    if missing is not None:  # an audio-visual event needs both: no second can hold one
        res["labels"] = np.full_like(res["labels"], BACKGROUND)
    info = {
        "video": str(video),
        "seconds": int(dec.frames.shape[0]),
        "checkpoint": str(bundle.path),
        "postprocess_max_len": bundle.postprocess_max_len,
        "encoder": bundle.encoder,
        "visual": bundle.visual,
        "frames_per_second": frames_per_second,
        "image_size": cfg.image_size,
        "sample_rate": cfg.sample_rate,
        "decode": dec.info,
        "missing_modality": missing,
        "trained_on": bundle.dataset,
        "towers": towers_record(towers),
        "warning": trained_on_warning(bundle),
    }
    return Prediction(video=video, info=info, **res)


def _missing_modality(decode_info: dict[str, Any]) -> str | None:
    """"audio" when the file has no audio track or no decodable audio sample (decoded as silence)."""
    silent = ("no audio track", "audio track has no decodable samples")
    return "audio" if any(w.startswith(silent) for w in decode_info.get("warnings", [])) else None


def copy_beside(video: Path, out_dir: Path) -> Path:
    """`video` in `out_dir` (hard-linked where the file system allows, else copied), so the page plays it from its
    own folder and the folder can be moved or shared as a whole."""
    target = out_dir / video.name
    if target.exists() and target.samefile(video):
        return target
    with atomic_path(target) as tmp:
        try:
            os.link(video, tmp)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(video, tmp)
    return target


def provenance(info: dict[str, Any]) -> list[str]:
    """What the page says the localizer and the towers were trained on, from the prediction's record."""
    return [f"Localizer {info['checkpoint']}: trained on {info['trained_on']}, on features of its {info['encoder']} "
            "towers.", f"Towers: {info['towers']}."]


def write_prediction(pred: Prediction, out_dir: str | Path) -> dict[str, Path]:
    """labels.json, labels.csv, timeline.png, the subtitles labels.vtt and labels.srt, and video.html (the
    video, copied beside it, with its timeline, avelib.captions) in `out_dir`, each written atomically."""
    from avelib.viz.localizer import timelines
    from avelib.viz.report import save_figure

    out_dir = Path(out_dir)
    rows = pred.rows()
    paths = {"json": out_dir / "labels.json", "csv": out_dir / "labels.csv", "png": out_dir / "timeline.png",
             "vtt": out_dir / "labels.vtt", "srt": out_dir / "labels.srt", "html": out_dir / "video.html"}
    write_json({**pred.info, "labels": rows}, paths["json"])
    with atomic_path(paths["csv"]) as tmp:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            writer.writeheader()
            writer.writerows(rows)
    fig = timelines(None, pred.labels, pred.alpha, titles=[f"{pred.video.name}: predicted events"])
    save_figure(fig, paths["png"])
    events = captions.cues(pred.labels)
    page = captions.video_page(copy_beside(pred.video, out_dir), paths["html"], events, rows, paths["png"].read_bytes(),
                               provenance(pred.info), pred.info["warning"])
    for key, text in (("vtt", captions.webvtt(events)), ("srt", captions.srt(events)), ("html", page)):
        with atomic_path(paths[key]) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return paths


def predict_cli(args: Any) -> int:
    """`python -m avelib predict ...` (arguments from avelib.__main__)."""
    defaults = predict_defaults(args.params)
    checkpoint = args.checkpoint or defaults.checkpoint
    if args.audioclip_profile is not None:
        towers_path, profile = None, args.audioclip_profile
        print(f"warning: RANDOM-INIT AudioCLIP towers ({profile} profile): labels are meaningless (smoke test)", file=_stderr())
    else:
        towers_path, profile = args.towers or defaults.towers, defaults.audioclip_profile
    k = args.frames_per_second or defaults.frames_per_second
    try:  # an unusable checkpoint is an unusable input file, as a video is: one line, exit 2
        bundle = load_localizer(checkpoint, args.device)
        towers = load_towers(towers_path, profile).to(args.device)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=_stderr())
        return 2
    warning = trained_on_warning(bundle)
    if warning:
        print(f"warning: {warning}", file=_stderr())
    videos = _as_paths(args.videos)
    failures = 0
    for video in videos:
        try:
            pred = predict_video(video, bundle, towers, k, defaults.batch_size, args.device)
        except (OSError, ValueError, RuntimeError) as e:
            failures += 1
            print(f"error: {e}" if str(video) in str(e) else f"error: {video}: {e}", file=_stderr())
            continue
        if args.out is None:
            out = Path(defaults.out) / video.stem
        else:  # several videos share --out: one sub-folder each
            out = Path(args.out) / video.stem if len(videos) > 1 else Path(args.out)
        paths = write_prediction(pred, out)
        events = sorted({r["category"] for r in pred.rows() if r["label"] != BACKGROUND})
        if pred.info["missing_modality"]:
            events = [f"none ({pred.info['missing_modality']} missing: no audio-visual event is possible)"]
        print(f"{video}: {pred.seconds} s, events: {', '.join(events) or 'none'} -> {paths['json'].parent}")
    return 2 if failures else 0


def _as_paths(videos: Sequence[str | Path]) -> list[Path]:
    return [Path(v) for v in videos]


def _stderr() -> Any:
    import sys

    return sys.stderr
