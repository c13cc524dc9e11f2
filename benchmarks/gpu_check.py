"""Every GPU figure of the paper setting in one table (prints figures; not a test).

- image tower img/s and audio tower clips/s in fp32, bf16, bf16 + channels_last and torch.compile
  (bf16 + channels_last, inductor; `--quick` on the CPU traces with aot_eager and skips code generation);
- the contrastive fine-tuning step (stage A, bf16 + channels_last) in pairs/s;
- the paper-size localizer (hidden 256, 8 heads, 1024-d features of 4,143 videos) in epochs/s;
- one extraction pass over stand-in AVE videos (avelib.fixtures: 24-30 fps, 480x360 and 640x360,
  44.1/48 kHz mono/stereo AAC) in frames/s end to end: decoding in a pool of one process per core
  (K frames per second at S px, audio resampled to R), then both towers;
- the extract stage (avelib.stages.towers.run_extract) on the segment cache of those videos, shared by N
  processes (`distributed.extract_nproc`), each on its own GPU: N = the GPUs (2 on the CPU), in frames/s
  of the whole stage, the processes' start included.

Targets on one H100/H200 (../shared/spec/performance.md): image >= 15,000 img/s, audio >= 10,000
clips/s, fine-tuning >= 2,000 pairs/s. Run from the repository root; it needs torch, numpy, av,
tqdm and pyyaml (carry the wheels to a bare GPU machine):

    python benchmarks/gpu_check.py                       # CUDA, paper profile (a few minutes)
    python benchmarks/gpu_check.py --device cpu --quick  # small profile, tiny sizes: CI keeps it working
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from avelib.data.cache import DecodeConfig, SegmentCache, build_cache
from avelib.data.media import decode_video
from avelib.data.prepare import unpack_ave_zip
from avelib.fixtures import iter_standin_videos, write_ave_zip
from avelib.models.audioclip import build_audioclip, profile_config
from avelib.models.device import autocast, prepare_model, resolve_device
from avelib.models.images import to_images
from avelib.runtime import pool_context
from avelib.stages.towers import run_extract
from bench_localizer import localizer_speed
from bench_towers import finetune_throughput, inference_throughput

TARGETS = {"image tower": 15_000, "audio tower": 10_000, "fine-tuning step": 2_000}  # H100/H200


@dataclass(frozen=True)
class Sizes:
    """What one run measures: the full check or the CPU smoke (`--quick`)."""

    profile: str
    batch: int  # inference batch (images / clips)
    train_batch: int  # fine-tuning pairs per step
    warmup: int
    iters: int
    localizer_videos: int
    localizer_epochs: int  # the first is warm-up
    videos: int  # stand-in videos of the extraction pass
    frames_per_second: int  # K of the extraction pass
    # torch.compile's backend: inductor, as on the GPU; the CPU smoke traces the towers (dynamo + AOT autograd,
    # where a model change would break compilation) but skips inductor's C++ code generation, ~50 s on 2 cores
    # that the GPU path (Triton) never runs
    compile_backend: str = "inductor"


FULL = Sizes("paper", batch=512, train_batch=256, warmup=3, iters=10, localizer_videos=4143, localizer_epochs=4,
             videos=32, frames_per_second=16)
QUICK = Sizes("small", batch=4, train_batch=4, warmup=1, iters=1, localizer_videos=64, localizer_epochs=2,
              videos=4, frames_per_second=2, compile_backend="aot_eager")
# (name, bf16 autocast, channels_last, torch.compile)
MODES = (("fp32", False, False, False), ("bf16", True, False, False),
         ("bf16 + channels_last", True, True, False), ("torch.compile", True, True, True))


def towers(profile: str, device: torch.device, channels_last: bool, compile_backend: str | None) -> nn.Module:
    """Random-init towers of `profile` (speed does not depend on the values), compiled with `compile_backend` if given."""
    torch.manual_seed(0)
    model = prepare_model(build_audioclip(profile, None), device, channels_last)
    if compile_backend:  # the towers are what runs; AudioCLIP's encode_* call them
        model.visual = torch.compile(model.visual, backend=compile_backend)
        model.audio = torch.compile(model.audio, backend=compile_backend)
    return model


def tower_rows(sizes: Sizes, device: torch.device) -> list[tuple[str, str, float, str]]:
    cuda = device.type == "cuda"
    rows = []
    for name, amp, channels_last, compile_ in MODES:
        if amp and not cuda and not compile_:
            rows += [(tower, name, float("nan"), "CUDA only") for tower in ("image tower", "audio tower")]
            continue
        amp, channels_last = amp and cuda, channels_last and cuda  # on the CPU, compile runs in fp32
        model = towers(sizes.profile, device, channels_last, sizes.compile_backend if compile_ else None)
        img, aud = inference_throughput(model, device, amp, channels_last, sizes.batch, sizes.warmup, sizes.iters)
        shown = name if cuda or not compile_ else f"torch.compile (fp32, {sizes.compile_backend})"
        rows += [("image tower", shown, img, "img/s"), ("audio tower", shown, aud, "clips/s")]
    model = towers(sizes.profile, device, cuda, None)
    pairs = finetune_throughput(model, device, cuda, cuda, sizes.train_batch, sizes.warmup, sizes.iters)
    rows.append(("fine-tuning step", "bf16 + channels_last" if cuda else "fp32", pairs, "pairs/s"))
    return rows


def _decode(args: tuple[str, int, int, int]):
    path, k, s, r = args
    return decode_video(path, k, s, r, seconds=10)


def extraction_row(sizes: Sizes, device: torch.device) -> tuple[str, str, float, str]:
    """Stand-in videos -> decode pool (one process per core) -> both towers; frames/s of the whole pass."""
    cuda = device.type == "cuda"
    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder, pool_context().Pool(workers) as pool:
        paths = [str(p) for p in iter_standin_videos(folder, sizes.videos, seed=0, workers=workers, progress=False)]
        model = towers(sizes.profile, device, cuda, None).eval()  # the decoders run PyAV + numpy only
        s, r, k = model.config.image_size, model.config.sample_rate, sizes.frames_per_second
        t0 = time.perf_counter()
        with torch.inference_mode(), autocast(device, cuda):
            for clip in pool.imap(_decode, [(p, k, s, r) for p in paths]):
                frames = torch.from_numpy(np.ascontiguousarray(clip.frames.reshape(-1, s, s, 3)))  # [10*K,S,S,3]
                model.encode_image(to_images(frames, device, cuda))  # [10*K,E]
                model.encode_audio(torch.from_numpy(clip.audio).to(device))  # [10,E]
            if cuda:
                torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    mode = f"{len(paths)} videos, K={k}, {workers} decoders"
    return ("extraction end to end", mode, len(paths) * 10 * k / seconds, "frames/s")


def standin_cache(folder: Path, sizes: Sizes, workers: int) -> SegmentCache:
    """The segment cache (decode stage) of the stand-in AVE zip's videos, at the towers' image size and rate."""
    config = profile_config(sizes.profile)
    root = unpack_ave_zip(write_ave_zip(folder / "AVE_Dataset.zip", sizes.videos, workers=workers, progress=False),
                          folder / "ave")
    decode = DecodeConfig(frames_per_second=sizes.frames_per_second, image_size=config.image_size,
                          sample_rate=config.sample_rate, workers=workers)
    return SegmentCache.open(build_cache(root, folder / "cache", decode, progress=False))


def shared_extraction_row(sizes: Sizes, device: torch.device) -> tuple[str, str, float, str]:
    """The extract stage on N processes, each pinned to its own GPU by the stage (N = the GPUs; 2 on the CPU);
    frames/s of the whole stage."""
    cuda = device.type == "cuda"
    nproc = torch.cuda.device_count() if cuda else 2
    params = {"audioclip": {"profile": sizes.profile, "checkpoint": None}, "finetune": {"seed": 0},
              "extract": {"batch_size": sizes.batch, "device": device.type}, "distributed": {"extract_nproc": nproc}}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        cache = standin_cache(Path(folder), sizes, os.cpu_count() or 1)
        t0 = time.perf_counter()
        run_extract(params, cache.dir, None, Path(folder) / "features", progress=False)
        seconds = time.perf_counter() - t0
        frames = int(cache.ok.sum()) * 10 * sizes.frames_per_second  # of the seconds encoded
    where = f"{nproc} GPUs" if cuda else f"{nproc} CPU processes"
    mode = f"{len(cache)} samples, K={sizes.frames_per_second}, {where}"
    return ("extraction, N processes", mode, frames / seconds, "frames/s")


def localizer_row(sizes: Sizes, device: torch.device) -> tuple[str, str, float, str]:
    r = localizer_speed(device.type, sizes.localizer_epochs, sizes.localizer_videos, 1024, 256, 8)
    return ("localizer (hidden 256)", f"{sizes.localizer_videos} videos, batch {r['batch']}", r["epochs_per_s"], "epochs/s")


def print_table(rows: list[tuple[str, str, float, str]], header: str) -> None:
    print(header)
    print(f"| {'what':<24} | {'mode':<34} | {'value':>12} | {'unit':<9} | {'target (H100/H200)':>18} |")
    print(f"|{'-' * 26}|{'-' * 36}|{'-' * 14}|{'-' * 11}|{'-' * 20}|")
    for what, mode, value, unit in rows:
        target = f">= {TARGETS[what]:,}" if what in TARGETS else ""
        shown = "n/a" if np.isnan(value) else f"{value:,.1f}"
        print(f"| {what:<24} | {mode:<34} | {shown:>12} | {unit:<9} | {target:>18} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--quick", action="store_true", help="small profile and tiny sizes (the CPU smoke run by CI)")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    sizes = QUICK if args.quick else FULL
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    t0 = time.perf_counter()
    rows = [*tower_rows(sizes, device), localizer_row(sizes, device), extraction_row(sizes, device),
            shared_extraction_row(sizes, device)]
    print_table(rows, f"gpu_check on {name}: profile {sizes.profile}, batch {sizes.batch} (fine-tuning "
                      f"{sizes.train_batch}), torch {torch.__version__}, {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
