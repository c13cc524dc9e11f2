"""Throughput of the AudioCLIP towers as used by stages A and B (prints figures; not a test).

Random weights, synthetic inputs: uint8 frames [B,S,S,3] normalized on the device as in extraction,
1-s audio [B,R]. bf16 autocast + channels_last on CUDA, plain fp32 on the CPU. Warm-up iterations,
then the median of timed iterations.

    python benchmarks/bench_towers.py --profile small --device cpu --batch 32
    python benchmarks/bench_towers.py --profile paper --device cuda --batch 256 --train-batch 128
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from torch import nn

from avelib.models.audioclip import build_audioclip
from avelib.models.device import autocast, prepare_model, resolve_device
from avelib.models.images import to_images
from avelib.train.objective import contrastive_loss


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_it(fn: Callable[[], object], device: torch.device, warmup: int, iters: int) -> float:
    """Median seconds of one call of `fn` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def random_inputs(n: int, image_size: int, sample_rate: int, pin: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 frames [n,S,S,3] and 1-s audio [n,R] in [-0.5, 0.5]."""
    frames = torch.randint(0, 256, (n, image_size, image_size, 3), dtype=torch.uint8)
    audio = (torch.rand(n, sample_rate) * 2 - 1) * 0.5
    return (frames.pin_memory(), audio.pin_memory()) if pin else (frames, audio)


def inference_throughput(model: nn.Module, device: torch.device, amp: bool, channels_last: bool,
                         batch: int, warmup: int, iters: int) -> tuple[float, float]:
    """(images/s, audio clips/s) of the eval-mode towers, as stage B runs them."""
    frames, audio = random_inputs(batch, model.config.image_size, model.config.sample_rate, device.type == "cuda")
    model.eval()

    @torch.inference_mode()
    def image_step() -> None:
        with autocast(device, amp):
            model.encode_image(to_images(frames, device, channels_last))  # [B,E]

    @torch.inference_mode()
    def audio_step() -> None:
        with autocast(device, amp):
            model.encode_audio(audio.to(device, non_blocking=True))  # [B,E]

    return batch / time_it(image_step, device, warmup, iters), batch / time_it(audio_step, device, warmup, iters)


def finetune_throughput(model: nn.Module, device: torch.device, amp: bool, channels_last: bool,
                        batch: int, warmup: int, iters: int) -> float:
    """(audio, frame) pairs/s of one stage-A step: both towers, contrastive + FBSP loss, AdamW."""
    frames, audio = random_inputs(batch, model.config.image_size, model.config.sample_rate, device.type == "cuda")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def train_step() -> None:
        with autocast(device, amp):
            a = model.encode_audio(audio.to(device, non_blocking=True))  # [B,E]
            i = model.encode_image(to_images(frames, device, channels_last))  # [B,E]
            loss = contrastive_loss(model, a, i) + model.fbsp_loss().float()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return batch / time_it(train_step, device, warmup, iters)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=["paper", "small"], default="small")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--batch", type=int, default=32, help="inference batch (images / audio clips)")
    ap.add_argument("--train-batch", type=int, default=None, help="fine-tuning batch (pairs); default = --batch")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--no-amp", action="store_true", help="fp32 on CUDA too")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    amp, cuda = not args.no_amp, device.type == "cuda"
    torch.manual_seed(0)
    model = prepare_model(build_audioclip(args.profile, None), device, channels_last=True)
    print(f"device={device} ({torch.cuda.get_device_name() if cuda else torch.get_num_threads()} "
          f"{'gpu' if cuda else 'threads'}), profile={args.profile}, S={model.config.image_size}, "
          f"R={model.config.sample_rate}, params={sum(p.numel() for p in model.parameters()) / 1e6:.2f}M, "
          f"{'bf16+channels_last' if cuda and amp else 'fp32'}")
    B, TB = args.batch, args.train_batch or args.batch
    img, aud = inference_throughput(model, device, amp, True, B, args.warmup, args.iters)
    print(f"encode_image  batch {B}: {img:10.1f} img/s")
    print(f"encode_audio  batch {B}: {aud:10.1f} clips/s")
    pairs = finetune_throughput(model, device, amp, True, TB, args.warmup, args.iters)
    print(f"finetune step batch {TB}: {pairs:10.1f} pairs/s")


if __name__ == "__main__":
    main()
