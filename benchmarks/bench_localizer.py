"""Training speed of the AVE-CLIP localizer at the paper's size (prints figures; not a test).

Random features with synthetic labels (avelib.data.features.synthetic_features): 4,143 videos of
1024-d audio and visual features, the size of AVE with the paper-profile AudioCLIP towers. The
localizer trains with the training harness of stage C (avelib.train.localizer.train_model) for
`--epochs` epochs; the script prints epochs/s (after the first, warm-up epoch) and the time of a full
run of the configured schedule (params.yaml `train.phases`, 30 epochs by default).

    python benchmarks/bench_localizer.py --device cpu --epochs 2
    python benchmarks/bench_localizer.py --device cuda --epochs 10
    python benchmarks/bench_localizer.py --model avel --videos 600 --dim 128 --threads 1 --epochs 6

`--batch` replaces the training batch: an epoch covers the same videos in fewer, larger steps, so the ratio
of two epoch times bounds what stacking models into one batch could save (README "Speed, memory and more processes"):

    python benchmarks/bench_localizer.py --videos 600 --dim 128 --hidden 64 --heads 4 --threads 1 --epochs 6 --batch 320
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from avelib.data.features import synthetic_features
from avelib.models.localizer import AVECLIPLocalizer, LocalizerConfig
from avelib.params import load_params, section
from avelib.train.localizer import BaselinesConfig, PhaseConfig, TrainConfig, train_model
from avelib.train.runs import build_model
from avelib.train.seeding import seed_everything


def localizer_speed(device: str, epochs: int, videos: int, dim: int, hidden: int, heads: int, threads: int = 0,
                    kind: str = "aveclip", batch: int | None = None) -> dict:
    """Train the localizer (or AVEL, with its recipe) for `epochs` on random features; epochs/s after the first
    (warm-up) epoch."""
    params = load_params()
    full = section(params, "train", TrainConfig)
    audio, visual, labels, splits = synthetic_features(videos, dim, dim, seed=0)
    model_cfg = dataclasses.replace(section(params, "localizer", LocalizerConfig), hidden=hidden, heads=heads)
    cfg = dataclasses.replace(full, phases=(PhaseConfig(tuple(model_cfg.windows), epochs),), device=device, threads=threads)
    seed_everything(0)
    model = AVECLIPLocalizer(model_cfg, dim, dim)
    if kind == "avel":  # AVEL with its own recipe (params.yaml baselines.avel)
        baselines = section(params, "baselines", BaselinesConfig)
        full = baselines.train_config(full, "avel")
        cfg = dataclasses.replace(full, epochs=epochs, device=device, threads=threads)
        model = build_model("avel", baselines.model, dim, dim)
    if batch is not None:
        cfg = dataclasses.replace(cfg, batch_size=batch)
    t0 = time.perf_counter()
    result = train_model(model, (audio, visual), labels, splits, cfg, progress=False)
    seconds = [h["seconds"] for h in result.history]  # per epoch, validation included
    per_epoch = sum(seconds[1:]) / len(seconds[1:])
    return {
        "epochs_per_s": 1 / per_epoch, "per_epoch_s": per_epoch, "first_epoch_s": seconds[0],
        "total_s": time.perf_counter() - t0, "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "windows": list(model_cfg.windows), "batch": cfg.batch_size, "train_videos": len(splits["train"]),
        "full_epochs": sum(p.epochs for p in full.phases) if full.phases else full.epochs,
        "best_val_accuracy": result.best_val_accuracy,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--epochs", type=int, default=3, help="epochs to time (the first is warm-up)")
    ap.add_argument("--videos", type=int, default=4143)
    ap.add_argument("--dim", type=int, default=1024, help="audio and visual feature size")
    ap.add_argument("--hidden", type=int, default=256, help="localizer.hidden (the README's paper setting)")
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0, help="torch threads on the CPU (0 = torch's default)")
    ap.add_argument("--model", default="aveclip", choices=["aveclip", "avel"],
                    help="avel: the AVEL baseline with its recipe (--hidden and --heads then unused)")
    ap.add_argument("--batch", type=int, default=None, help="training batch (default: the recipe's)")
    args = ap.parse_args()
    if args.epochs < 2:
        ap.error("--epochs must be >= 2 (the first epoch is warm-up)")
    r = localizer_speed(args.device, args.epochs, args.videos, args.dim, args.hidden, args.heads, args.threads, args.model,
                        args.batch)
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; {args.model} {r['params_m']:.2f} M params" + (
        f", hidden {args.hidden}, heads {args.heads}, windows {r['windows']}" if args.model == "aveclip" else ""))
    print(f"data: {args.videos} videos x 10 s x {args.dim}-d audio + visual; batch {r['batch']}; "
          f"{r['train_videos']} training videos")
    print(f"epochs/s: {r['epochs_per_s']:.3f} ({r['per_epoch_s']:.2f} s per epoch incl. validation; first epoch "
          f"{r['first_epoch_s']:.2f} s, whole call {r['total_s']:.1f} s)")
    print(f"full run ({r['full_epochs']} epochs): {r['full_epochs'] * r['per_epoch_s']:.1f} s (projected); "
          f"best val accuracy in this short run {r['best_val_accuracy']:.3f}")


if __name__ == "__main__":
    main()
