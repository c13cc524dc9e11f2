"""Peak memory of decoding and extraction as the number of videos grows (prints figures; not a test).

For each N in `--videos`, a fresh process generates N SynthAVE stand-in videos, decodes them into
the memory-mapped segment cache (avelib.data.cache.build_cache) and extracts both towers' features
from it (avelib.train.extract.extract_features); each step runs in its own process. Two figures per
step: the kernel's peak RSS of the largest process (ru_maxrss; it counts the cache's file pages the
process has touched, which the OS can drop at any time) and the peak private memory, RSS minus
shared file pages, summed over the step's processes (decode workers included), sampled every 50 ms.
Streaming means the private memory stays flat in N: a decoded video goes straight to the memmap,
extraction reads one chunk of seconds at a time.

    python benchmarks/bench_memory.py --videos 16 128
    python benchmarks/bench_memory.py --videos 16 128 --profile paper --image-size 224 --fps 16 --sample-rate 44100
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

STEP = r"""
import json, sys
from avelib.runtime import peak_rss_mib
step, work, n, profile, size, fps, rate, k = sys.argv[1:9]
n, size, fps, rate, k = int(n), int(size), int(fps), int(rate), int(k)
if step == "generate":
    from avelib.data.synth import SynthConfig, generate
    generate(SynthConfig(num_videos=n, image_size=size, fps=fps, sample_rate=rate, workers=2), f"{work}/synth", progress=False)
elif step == "decode":
    from avelib.data.cache import DecodeConfig, build_cache
    build_cache(f"{work}/synth", f"{work}/cache", DecodeConfig(frames_per_second=k, image_size=size, sample_rate=rate, workers=2),
                progress=False)
else:
    import torch
    from avelib.data.cache import SegmentCache
    from avelib.models.audioclip import build_audioclip
    from avelib.train.extract import ExtractConfig, extract_features
    torch.manual_seed(0)
    extract_features(build_audioclip(profile, None), SegmentCache.open(f"{work}/cache"), ExtractConfig(batch_size=64),
                     f"{work}/features", progress=False)
print(json.dumps({"peak_rss_mib": peak_rss_mib()}))
"""


def _private_mib(proc: psutil.Process) -> float:
    """RSS minus shared (file-backed) pages, summed over `proc` and its children, in MiB."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            m = p.memory_info()
            total += m.rss - m.shared
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def measure(step: str, work: Path, n: int, args: argparse.Namespace) -> tuple[float, float]:
    """(peak RSS of the largest process, peak private memory summed over processes), MiB, of one step."""
    argv = [step, str(work), str(n), args.profile, str(args.image_size), str(args.fps), str(args.sample_rate), str(args.k)]
    proc = subprocess.Popen([sys.executable, "-c", STEP, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched, private = psutil.Process(proc.pid), 0.0
    while proc.poll() is None:
        try:
            private = max(private, _private_mib(watched))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{step} with {n} videos failed:\n{err[-3000:]}")
    return float(json.loads(out.strip().splitlines()[-1])["peak_rss_mib"]), private


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, nargs="+", default=[16, 128], help="values of N")
    ap.add_argument("--profile", default="small", choices=["small", "paper"], help="AudioCLIP tower profile")
    ap.add_argument("--image-size", type=int, default=64, help="frame size of the videos and the decode")
    ap.add_argument("--fps", type=int, default=8, help="frame rate of the stand-in videos")
    ap.add_argument("--sample-rate", type=int, default=16000)
    ap.add_argument("--k", type=int, default=4, help="frames decoded per second")
    args = ap.parse_args()
    rows = []
    for n in args.videos:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            measure("generate", work, n, args)
            rows.append((n, *measure("decode", work, n, args), *measure("extract", work, n, args)))
    print(f"\nprofile {args.profile}, {args.image_size} px, K={args.k}; MiB")
    print(f"{'videos':>8} {'decode RSS':>11} {'private':>8} {'extract RSS':>12} {'private':>8}")
    for n, dec, dec_p, ext, ext_p in rows:
        print(f"{n:>8} {dec:>11.0f} {dec_p:>8.0f} {ext:>12.0f} {ext_p:>8.0f}")
    first, last = rows[0], rows[-1]
    growth = [f"{name} x{b / a:.2f}" for name, a, b in zip(("decode RSS", "private", "extract RSS", "private"),
                                                            first[1:], last[1:])]
    print(f"from {first[0]} to {last[0]} videos: " + ", ".join(growth) + " (flat = x1.00)")

if __name__ == "__main__":
    main()
