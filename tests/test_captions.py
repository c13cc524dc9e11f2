"""Subtitles and the video page of `predict` (avelib.captions), the page opened in a real browser."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from avelib import captions
from avelib.data.ave import BACKGROUND, label_name
from avelib.data.synth import write_video

LABELS = np.array([BACKGROUND, 3, 3, BACKGROUND, 5, 5, 5, BACKGROUND, BACKGROUND, 3])


def test_cues_are_runs_of_one_event_class():
    assert captions.cues(LABELS) == [captions.Cue(1, 3, label_name(3)), captions.Cue(4, 7, label_name(5)),
                                     captions.Cue(9, 10, label_name(3))]
    assert captions.cues(np.full(10, BACKGROUND)) == []


def test_webvtt_and_srt_text():
    events = [captions.Cue(1, 3, "Dog"), captions.Cue(3661, 3662, "Church bell")]
    assert captions.webvtt(events) == ("WEBVTT\n\n1\n00:00:01.000 --> 00:00:03.000\nDog\n\n"
                                       "2\n01:01:01.000 --> 01:01:02.000\nChurch bell\n\n")
    assert captions.srt(events) == ("1\n00:00:01,000 --> 00:00:03,000\nDog\n\n"
                                    "2\n01:01:01,000 --> 01:01:02,000\nChurch bell\n\n")


def _page(tmp_path: Path) -> Path:
    video = tmp_path / "videos" / "clip.mp4"
    video.parent.mkdir()
    frames = np.zeros((30, 32, 32, 3), dtype=np.uint8)
    write_video(video, frames, np.zeros(3 * 16000, dtype=np.float32), fps=10, sample_rate=16000, crf=30)
    rows = [{"second": t, "category": label_name(int(LABELS[t])), "alpha": 0.5, "class_probability": 0.9}
            for t in range(3)]
    page = tmp_path / "out" / "video.html"
    page.parent.mkdir()
    page.write_text(captions.video_page(video, page, captions.cues(LABELS[:3]), rows, b"\x89PNG fake"))
    return page


def test_page_points_at_the_video_and_loads_nothing_else(tmp_path):
    html = _page(tmp_path).read_text()
    assert 'src="../videos/clip.mp4"' in html
    assert "http://" not in html and "https://" not in html


def test_page_shows_the_events_as_subtitles_in_chromium(tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed: skipping the browser check (apt-get install chromium)")
    page = _page(tmp_path)
    run = subprocess.run([chromium, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={tmp_path / 'p'}",
                          "--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert 'data-cues="1"' in run.stdout, "the page's script did not add the subtitle cue"
