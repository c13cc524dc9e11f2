"""SynthAVE generator: determinism, AVE layout, distractors, event lengths, modalities; data plots."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from avelib.data import ave, synth, synth_render
from avelib.data.media import decode_video
from avelib.params import ParamsError, section

TINY = synth.SynthConfig(num_videos=10, split_fractions=(0.8, 0.1, 0.1), image_size=32, fps=4, sample_rate=8000, workers=1, seed=3)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth.generate(TINY, tmp_path_factory.mktemp("syn") / "synthave", progress=False)


def test_layout_and_annotations(tiny_root: Path) -> None:
    ann = (tiny_root / "Annotations.txt").read_text().splitlines()
    assert ann[0] == ave.HEADER and len(ann) == 11
    ds = ave.load_dataset(tiny_root)
    assert len(ds) == 10
    assert sorted(np.concatenate(list(ds.splits.values())).tolist()) == list(range(10))
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 8, "val": 1, "test": 1}
    for i in range(len(ds)):
        assert ds.video_path(i).is_file() and len(ds.records[i].video_id) == 11
    # no temp dir left beside the dataset
    assert [p.name for p in tiny_root.parent.iterdir()] == ["synthave"]
    meta = json.loads((tiny_root / synth.META_FILE).read_text())
    for rec, v in zip(ds.records, meta["videos"]):
        assert (rec.label, rec.start, rec.end) == (v["label"], v["start"], v["end"])
        np.testing.assert_array_equal(ave.segment_labels([rec])[0], v["segment_labels"])


def test_decoded_video_has_both_modalities_in_event_seconds(tiny_root: Path) -> None:
    meta = json.loads((tiny_root / synth.META_FILE).read_text())
    n_checked = 0
    for v in meta["videos"]:
        d = decode_video(tiny_root / "AVE" / f"{v['video_id']}.mp4", 4, 32, 8000)
        assert d.frames.shape == (10, 4, 32, 32, 3) and d.audio.shape == (10, 8000)
        assert d.info["padded_s"] == 0 and d.info["warnings"] == []
        rms = np.sqrt((d.audio.astype(np.float64) ** 2).mean(1))  # [10]
        f = d.frames.astype(np.int16)
        saturated = ((f.max(-1) - f.min(-1)) > 90).mean((1, 2, 3))  # objects are saturated, background grey
        for t in range(10):
            # skip the second after a change: AAC/H.264 smear a few ms/px across it
            if 0 < t and (v["audio"][t - 1] != v["audio"][t] or v["visual"][t - 1] != v["visual"][t]):
                continue
            heard, seen = v["audio"][t] >= 0, v["visual"][t] >= 0
            assert (rms[t] > 0.1) == heard, (v["video_id"], t, rms[t])
            assert (saturated[t] > 0.02) == seen, (v["video_id"], t, saturated[t])
            if v["kinds"][t] == synth.KIND_EVENT:
                assert heard and seen
                n_checked += 1
    assert n_checked > 20


def test_determinism(tiny_root: Path, tmp_path: Path) -> None:
    small = dataclasses.replace(TINY, num_videos=3)
    a = synth.generate(small, tmp_path / "a", progress=False)
    b = synth.generate(dataclasses.replace(small, workers=2), tmp_path / "b", progress=False)  # process pool
    assert (a / "Annotations.txt").read_text() == (b / "Annotations.txt").read_text()
    assert (a / "trainSet.txt").read_text() == (b / "trainSet.txt").read_text()
    for vid in ("syn00000000", "syn00000001", "syn00000002"):  # same bytes, not just similar pictures
        assert (a / "AVE" / f"{vid}.mp4").read_bytes() == (b / "AVE" / f"{vid}.mp4").read_bytes(), vid
    for vid in ("syn00000000", "syn00000002"):
        da, db = decode_video(a / "AVE" / f"{vid}.mp4", 4, 32, 8000), decode_video(b / "AVE" / f"{vid}.mp4", 4, 32, 8000)
        np.testing.assert_array_equal(da.frames, db.frames)
        np.testing.assert_array_equal(da.audio, db.audio)
    # the per-video content depends only on (seed, index): the first videos of the 10-video set match
    full = decode_video(tiny_root / "AVE" / "syn00000000.mp4", 4, 32, 8000)
    assert synth.plan_video(small, 0, 5) == synth.plan_video(TINY, 0, 5)
    other = synth.generate(dataclasses.replace(small, seed=4), tmp_path / "c", progress=False)
    assert (other / "Annotations.txt").read_text() != (a / "Annotations.txt").read_text()
    assert full.frames.shape == da.frames.shape


_ENCODE_ONE = """
import sys
from pathlib import Path
from avelib.data import synth, synth_render
cfg = synth.SynthConfig(num_videos=1, image_size=64, fps=8, sample_rate=8000, seed=0)
plan = synth.plan_video(cfg, 0, 0)
frames, audio = synth_render.render_frames(cfg, plan, 0), synth_render.render_audio(cfg, plan, 0)
synth.write_video(Path(sys.argv[1]), frames, audio, cfg.fps, cfg.sample_rate, cfg.crf)
"""


def test_encoding_ignores_process_heap_state(tmp_path: Path) -> None:
    """The mp4 bytes depend on the frames only, not on what the process allocated before.

    x264's run-time SIMD (AVX-512) once read heap memory it never wrote: the same frames gave
    different files depending on the test order or on being a pool worker. Fresh processes with
    the heap pre-filled with different bytes (glibc MALLOC_PERTURB_) expose such reads.
    """
    import os
    import subprocess
    import sys

    outs = []
    for fill in ("17", "170"):
        out = tmp_path / f"perturb{fill}.mp4"
        env = {**os.environ, "MALLOC_PERTURB_": fill}
        subprocess.run([sys.executable, "-c", _ENCODE_ONE, str(out)], env=env, check=True, timeout=120)
        outs.append(out.read_bytes())
    cfg = synth.SynthConfig(num_videos=1, image_size=64, fps=8, sample_rate=8000, seed=0)
    plan = synth.plan_video(cfg, 0, 0)
    here = tmp_path / "here.mp4"  # this process: a heap full of other tests' leftovers
    frames, audio = synth_render.render_frames(cfg, plan, 0), synth_render.render_audio(cfg, plan, 0)
    synth.write_video(here, frames, audio, cfg.fps, cfg.sample_rate, cfg.crf)
    assert outs[0] == outs[1] == here.read_bytes()


def _plans(cfg: synth.SynthConfig, n: int) -> list[dict]:
    return [synth.plan_video(cfg, i, i % 28) for i in range(n)]


def test_distractor_fraction_per_split(tiny_root: Path) -> None:
    cfg = synth.SynthConfig(num_videos=600)
    labels, splits = synth.assign_labels_and_splits(cfg)
    plans = [synth.plan_video(cfg, i, labels[i]) for i in range(cfg.num_videos)]
    for name, idx in splits.items():
        st = synth.distractor_stats(plans, idx)
        assert st["background_seconds"] > 50
        assert st["distractor_fraction"] >= 0.2, (name, st)
        assert st["visual_only"] > 0 and st["audio_only"] > 0 and st["plain"] > 0
    meta = json.loads((tiny_root / synth.META_FILE).read_text())
    assert set(meta["split_stats"]) == {"train", "val", "test"}
    # both own-class and other-class distractors occur
    kinds = {p["distractor_class"] == p["label"] for p in plans}
    assert kinds == {True, False}


def test_event_length_distribution() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    lengths = np.bincount([e - s for s, e in (synth.sample_event(rng) for _ in range(n))], minlength=11)
    total = sum(synth.AVE_LENGTH_COUNTS.values())
    for k, c in synth.AVE_LENGTH_COUNTS.items():
        assert abs(lengths[k] / n - c / total) < 0.03, (k, lengths[k] / n, c / total)
    assert lengths[1] == 0
    starts = [synth.sample_event(rng) for _ in range(500)]
    assert all(0 <= s <= e <= 10 for s, e in starts)
    assert len({s for s, e in starts if e - s == 2}) > 4  # start positions vary


def test_signatures_distinct_and_pair_unambiguous() -> None:
    sigs = [synth_render.signature(c) for c in range(28)]
    assert len({(s["shape"], s["colour"], s["texture"]) for s in sigs}) == 28
    assert len({(s["timbre"], s["pitch_hz"], s["rhythm_hz"]) for s in sigs}) == 28
    # the coarse visual group (shape) and coarse audio group (timbre) together name the class
    assert len({(synth_render.visual_group(c), synth_render.audio_group(c)) for c in range(28)}) == 28


def test_ambiguity_knobs() -> None:
    clear = _plans(synth.SynthConfig(visual_ambiguity=0.0, audio_ambiguity=0.0), 200)
    assert all(p["shown_member"][str(p["label"])] == synth.visual_member(p["label"]) for p in clear)
    murky = _plans(synth.SynthConfig(visual_ambiguity=1.0, audio_ambiguity=1.0), 200)
    assert all(p["shown_member"][str(p["label"])] != synth.visual_member(p["label"]) for p in murky)
    assert all(p["played_member"][str(p["label"])] != synth.audio_member(p["label"]) for p in murky)
    none = _plans(synth.SynthConfig(distractor_fraction=0.0), 100)
    assert all(k in (synth.KIND_EVENT, synth.KIND_PLAIN) for p in none for k in p["kinds"])


def test_config_from_params_and_validation(tmp_path: Path) -> None:
    cfg = section({"synth": {"num_videos": 5, "split_fractions": [0.6, 0.2, 0.2]}}, "synth", synth.SynthConfig)
    assert cfg.num_videos == 5 and cfg.split_fractions == (0.6, 0.2, 0.2)
    with pytest.raises(ParamsError):
        section({"synth": {"num_video": 5}}, "synth", synth.SynthConfig)
    with pytest.raises(ValueError, match="distractor_fraction"):
        synth.generate(dataclasses.replace(TINY, distractor_fraction=1.5), tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_main_params_yaml_sections_build() -> None:
    from avelib.data.cache import DecodeConfig
    from avelib.params import load_params

    p = Path(__file__).resolve().parents[1] / "params.yaml"
    params = load_params(p)
    assert section(params, "synth", synth.SynthConfig).num_videos >= 100
    assert section(params, "decode", DecodeConfig).frames_per_second >= 1
    from avelib.data.cache import DataConfig

    assert section(params, "data", DataConfig).root.name == "synthave"


def test_viz_data_figures(tiny_root: Path) -> None:
    from avelib.viz import data as vd

    ds = ave.load_dataset(tiny_root)
    d = decode_video(ds.video_path(0), 4, 32, 8000)
    figs = [
        vd.class_distribution(ds),
        vd.event_length_histogram(ds.records, reference=synth.AVE_LENGTH_COUNTS),
        vd.event_length_histogram(ds.records),
        vd.frame_strip(d.frames, ds.labels[0], title="x"),
        vd.frame_strip(d.frames[:, 0], ds.labels[0]),
        vd.spectrogram(d.audio, 8000, ds.labels[0]),
        vd.label_timelines(ds.labels, [r.video_id for r in ds.records]),
    ]
    assert all(isinstance(f, Figure) for f in figs)
    assert len(figs[3].axes) == 10
    assert vd.stft_db(np.zeros(8000, np.float32)).shape == (257, 1 + (8000 - 512) // 128)
