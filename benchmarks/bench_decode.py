"""Throughput of `decode_video` (prints figures; not a test): sampled frames per second of wall time.

One process, torch on one thread by default (as in a decode worker, of which there is one per core).
`--synthetic WxH` encodes a moving test pattern of that size with PyAV into a temp file and decodes it.

    python benchmarks/bench_decode.py ../shared/media/bbb_trailer_55s.mp4 --sizes 224 64 --k 4
    python benchmarks/bench_decode.py --synthetic 640x360 --sizes 224 64 --k 4
    python benchmarks/bench_decode.py --synthetic 640x360 --quick
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from avelib.data.media import decode_video


def write_pattern_video(path: Path, width: int, height: int, seconds: float, fps: int = 25) -> Path:
    """H.264 video of a moving gradient with noise (yuv444p where a side is odd: x264's 4:2:0 needs even sides)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]  # [H,W]
    pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
        vs.options = {"preset": "ultrafast", "crf": "23"}
        for i in range(round(seconds * fps)):
            base = np.stack([(xx + 4 * i) % 256, (yy * 2 + i) % 256, (xx + yy) // 3 % 256], -1)  # [H,W,3]
            img = (base + rng.integers(0, 32, size=base.shape)).clip(0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    return path


def best_seconds(video: Path, size: int, k: int, seconds: int, repeat: int) -> tuple[float, dict]:
    """Fastest of `repeat` decodes (seconds) and that decode's info."""
    times, info = [], {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        info = decode_video(video, frames_per_second=k, image_size=size, seconds=seconds).info
        times.append(time.perf_counter() - t0)
    return min(times), info


def report(video: Path, sizes: list[int], k: int, seconds: int, repeat: int) -> None:
    decode_video(video, frames_per_second=k, image_size=sizes[0], seconds=1)  # untimed: one-off imports
    for size in sizes:
        wall, info = best_seconds(video, size, k, seconds, repeat)
        source = min(seconds, info["duration"]) * (info["fps"] or 0.0)  # decoded source frames, about
        print(f"{video.name} {info['width']}x{info['height']} S={size} K={k} {seconds} s: {wall:.3f} s, "
              f"{seconds * k / wall:.1f} sampled frames/s, {source / wall:.0f} source frames/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", nargs="?", type=Path, help="video file to decode")
    ap.add_argument("--synthetic", metavar="WxH", help="decode a PyAV-encoded test pattern of this size instead")
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 64], help="image sizes S")
    ap.add_argument("--k", type=int, default=4, help="frames sampled per second")
    ap.add_argument("--seconds", type=int, default=10, help="seconds decoded (as the decode stage: 10)")
    ap.add_argument("--repeat", type=int, default=3, help="decodes per size; the fastest counts")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (a decode worker's: 1)")
    ap.add_argument("--quick", action="store_true", help="3 s, one decode per size: a few seconds in all")
    args = ap.parse_args()
    if (args.video is None) == (args.synthetic is None):
        ap.error("give either a video file or --synthetic WxH")
    if args.quick:
        args.seconds, args.repeat = 3, 1
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        video = args.video
        if args.synthetic:
            width, height = (int(v) for v in args.synthetic.lower().split("x"))
            video = write_pattern_video(Path(tmp) / f"pattern_{width}x{height}.mp4", width, height, args.seconds)
        report(video, args.sizes, args.k, args.seconds, args.repeat)


if __name__ == "__main__":
    main()
