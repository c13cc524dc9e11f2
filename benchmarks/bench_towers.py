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

from avelib.models.audioclip import build_audioclip
from avelib.train.contrastive import autocast, contrastive_loss, prepare_model, resolve_device, to_images


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
    amp = not args.no_amp
    torch.manual_seed(0)
    model = prepare_model(build_audioclip(args.profile, None), device, channels_last=True)
    S, R = model.config.image_size, model.config.sample_rate
    B = args.batch
    TB = args.train_batch or B
    frames = torch.randint(0, 256, (B, S, S, 3), dtype=torch.uint8)
    audio = (torch.rand(B, R) * 2 - 1) * 0.5
    pin = device.type == "cuda"
    if pin:
        frames, audio = frames.pin_memory(), audio.pin_memory()
    print(f"device={device} ({torch.cuda.get_device_name() if pin else torch.get_num_threads()} "
          f"{'gpu' if pin else 'threads'}), profile={args.profile}, S={S}, R={R}, "
          f"params={sum(p.numel() for p in model.parameters()) / 1e6:.2f}M, "
          f"{'bf16+channels_last' if pin and amp else 'fp32'}")

    model.eval()

    @torch.inference_mode()
    def image_step() -> None:
        with autocast(device, amp):
            model.encode_image(to_images(frames, device, True))  # [B,E]

    @torch.inference_mode()
    def audio_step() -> None:
        with autocast(device, amp):
            model.encode_audio(audio.to(device, non_blocking=True))  # [B,E]

    t_img = time_it(image_step, device, args.warmup, args.iters)
    t_aud = time_it(audio_step, device, args.warmup, args.iters)
    print(f"encode_image  batch {B}: {B / t_img:10.1f} img/s    ({t_img * 1e3:.1f} ms/batch)")
    print(f"encode_audio  batch {B}: {B / t_aud:10.1f} clips/s  ({t_aud * 1e3:.1f} ms/batch)")

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    tf, ta = frames[:TB], audio[:TB]
    if TB > B:
        tf = torch.randint(0, 256, (TB, S, S, 3), dtype=torch.uint8)
        ta = (torch.rand(TB, R) * 2 - 1) * 0.5

    def train_step() -> None:
        with autocast(device, amp):
            a = model.encode_audio(ta.to(device, non_blocking=True))  # [TB,E]
            i = model.encode_image(to_images(tf, device, True))  # [TB,E]
            loss = contrastive_loss(model, a, i) + model.fbsp_loss().float()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t_tr = time_it(train_step, device, args.warmup, args.iters)
    print(f"finetune step batch {TB}: {TB / t_tr:10.1f} pairs/s  ({t_tr * 1e3:.1f} ms/step)")


if __name__ == "__main__":
    main()
