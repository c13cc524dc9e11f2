"""reports/index.html: built from small fake reports, checked statically and in a real headless Chromium."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import matplotlib.pyplot as plt
import numpy as np
import pytest

from avelib.io import write_json
from avelib.report import ReportInputError, build_index, caption_from_name, data_hashes
from avelib.report.confirm import write_confirm_report
from avelib.viz.report import figure_to_data_uri, new_figure
from test_claims import _history, _run, make_reports


def _stat(mean: float, std: float) -> dict[str, Any]:
    return {"mean": mean, "std": std, "per_seed": [mean - std, mean + std]}


def _png(path: Path) -> None:
    fig, axes = new_figure(3, 2)
    axes[0, 0].plot([0, 1, 2], [0, 1, 0])
    path.write_bytes(base64.b64decode(figure_to_data_uri(fig).split(",", 1)[1]))


def make_fake_reports(root: Path) -> tuple[Path, Path, Path]:
    """A reports/ folder, params.yaml and dvc.lock as the pipeline would leave them."""
    reports = root / "reports"
    (reports / "figures").mkdir(parents=True)
    (reports / "html").mkdir()
    (reports / "plots").mkdir()
    (reports / "metrics.json").write_text(json.dumps({
        "dataset": "SynthAVE", "test_accuracy": _stat(0.8123, 0.011),
        "test_accuracy_no_postprocess": _stat(0.80, 0.012), "val_accuracy": _stat(0.82, 0.01),
        "history": [[{"epoch": e, "train_loss": 1.0 / (e + 1), "val_accuracy": 0.5 + 0.1 * e} for e in range(3)]],
        "confusion_matrix": (np.eye(29, dtype=int) * 5 + 1).tolist(),
    }))  # fmt: skip
    (reports / "baselines.json").write_text(json.dumps({
        "avel": {"label": "AVEL (our impl.)", "test_accuracy": _stat(0.70, 0.02), "val_accuracy": _stat(0.71, 0.02)},
    }))  # fmt: skip
    (reports / "ablations.json").write_text(json.dumps({"variants": [
        {"axis": "attention", "name": "temporal", "params": {"localizer.attention": "temporal"},
         "test_accuracy": _stat(0.78, 0.01), "val_accuracy": _stat(0.79, 0.01)},
        {"axis": "attention", "name": "both", "params": {"localizer.attention": "both"},
         "test_accuracy": _stat(0.81, 0.01)},
        {"axis": "windows", "name": "10 only", "params": {"localizer.windows": [10]}, "test_accuracy": _stat(0.75, 0.03)},
    ]}))  # fmt: skip
    _png(reports / "figures" / "confusion_matrix.png")
    (reports / "plots" / "train_loss.csv").write_text("epoch,loss,val_acc\n0,1.5,0.3\n1,1.0,0.5\n2,0.7,0.6\n")
    (reports / "html" / "localizer.html").write_text("<html><body><h1>executed notebook</h1></body></html>")
    params = root / "params.yaml"
    params.write_text("seed: 0\nreport:\n  title: test page\n")
    lock = root / "dvc.lock"
    lock.write_text(
        "schema: '2.0'\nstages:\n  decode:\n    cmd: papermill ...\n    outs:\n"
        "    - path: data/cache\n      hash: md5\n      md5: 0123456789abcdef0123456789abcdef.dir\n"
        "      size: 1234\n      nfiles: 3\n"
    )
    return reports, params, lock


EXTERNAL = re.compile(r"""(?:src|href|srcset|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def test_index_is_self_contained(tmp_path: Path) -> None:
    reports, params, lock = make_fake_reports(tmp_path)
    out = build_index(reports, params, lock, reports / "index.html")
    page = out.read_text()
    assert not EXTERNAL.search(page), "the page links an external resource"
    assert "@import" not in page and "url(http" not in page and "<script" not in page
    # main table: ours (as %), the baseline, each row's dataset
    assert 'id="main-table"' in page and "81.23 ± 1.10" in page and "AVEL (our impl.)" in page
    assert "SynthAVE" in page
    # ablations grouped by axis with their overrides in words, figures inlined with captions, notebook link relative
    assert '<h3 id="ablation-attention">' in page and '<h3 id="ablation-windows">' in page
    assert "<td>attention temporal</td>" in page and "<td>windows 10</td>" in page
    assert "localizer.attention" not in page.split("<pre>")[0]  # not the raw overrides
    assert "Confusion matrix" in page and "Training curves per seed against epoch" in page
    assert page.count('src="data:image/png;base64,') == 4  # curves, confusion matrix, reports/figures, reports/plots
    assert 'href="html/localizer.html"' in page and 'href="confirm/index.html"' in page and "make confirm" in page
    assert "0123456789abcdef0123456789abcdef.dir" in page and "seed: 0" in page
    assert "python" in page and "package torch" in page


def test_missing_inputs_render_notes(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    out = build_index(reports, tmp_path / "params.yaml", tmp_path / "dvc.lock", reports / "index.html")
    page = out.read_text()
    for name in ("metrics.json", "ablations.json", "baselines.json", "dvc.lock", "params.yaml"):
        assert re.search(rf"not available: [^<]*{re.escape(name)} missing", page), name


def test_malformed_metrics_raise_naming_the_file(tmp_path: Path) -> None:
    reports, params, lock = make_fake_reports(tmp_path)
    (reports / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match="metrics.json"):
        build_index(reports, params, lock, reports / "index.html")
    (reports / "metrics.json").write_text(json.dumps({"dataset": "SynthAVE", "test_accuracy": 0.8}))
    with pytest.raises(ReportInputError, match=r"metrics\.json.*test_accuracy"):
        build_index(reports, params, lock, reports / "index.html")
    (reports / "metrics.json").write_text(json.dumps({"dataset": "SynthAVE", "test_accuracy": _stat(0.8, 0.0),
                                                      "confusion_matrix": [[1, 2], [3, 4]]}))
    with pytest.raises(ReportInputError, match=r"metrics\.json.*confusion_matrix"):
        build_index(reports, params, lock, reports / "index.html")
    assert not (reports / "index.html").exists(), "a failed build must not leave a page behind"


def test_lock_hashes_and_captions(tmp_path: Path) -> None:
    _, _, lock = make_fake_reports(tmp_path)
    assert data_hashes(lock) == [("decode", "data/cache", "0123456789abcdef0123456789abcdef.dir", "1234 B, 3 files")]
    assert caption_from_name(Path("example_timelines-test.png")) == "Example timelines test"
    plt.close("all")


def test_cli_report(tmp_path: Path) -> None:
    from avelib.__main__ import main

    reports, params, lock = make_fake_reports(tmp_path)
    out = tmp_path / "site" / "index.html"
    rc = main(["report", "--reports-dir", str(reports), "--params", str(params), "--lock", str(lock), "--out", str(out)])
    assert rc == 0 and "<title>test page</title>" in out.read_text()


# ---------------------------------------------------------------- real browser


class Chromium:
    """Headless Chromium driven over the DevTools protocol through --remote-debugging-pipe.

    The pipe transport needs no extra dependency: commands are NUL-terminated JSON on fd 3,
    replies and events come back on fd 4.
    """

    def __init__(self, binary: str, profile: Path) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire_fds() -> None:  # in the child: fd 3 = commands in, fd 4 = replies out
            # copy above 10 first: a pipe end may already sit on fd 3/4 (dup2 onto itself keeps CLOEXEC)
            cmd_in, out = fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 10), fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 10)
            os.dup2(cmd_in, 3)  # dup2 clears CLOEXEC on the target
            os.dup2(out, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
             "--remote-debugging-pipe", "--no-first-run", "--no-default-browser-check", "--disable-component-update",
             "--disable-background-networking", "--disable-extensions", "--disable-sync", f"--user-data-dir={profile}",
             "--window-size=1280,2000", "about:blank"],
            preexec_fn=wire_fds, close_fds=False,  # python fds are CLOEXEC anyway
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._next(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        for ev in self.events:
            if ev.get("method") == method:
                return ev
        while True:
            ev = self._next(deadline)
            self.events.append(ev)
            if ev.get("method") == method:
                return ev

    def _next(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - the browser may already be gone
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_child)
        os.close(self._from_child)


def _chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no chromium binary on PATH (install the Debian package `chromium`); browser test skipped")


def _evaluate(browser: Chromium, session: str, expression: str) -> Any:
    return browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)["result"]["value"]


def load_in_browser(page: Path, workdir: Path) -> dict[str, Any]:
    """Open `page` (fresh profile) and return its requests, failures, console errors, main-table text, whole text,
    every href/src as the browser resolved it, and a screenshot."""
    browser = Chromium(_chromium_binary(), Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir)))
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Network", "Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=sid)
        browser.events.clear()
        browser.send("Page.navigate", {"url": page.resolve().as_uri()}, session=sid)
        browser.wait_event("Page.loadEventFired")
        table = _evaluate(browser, sid, "(document.getElementById('main-table')||{innerText:''}).innerText")
        text = _evaluate(browser, sid, "document.body.innerText")
        targets = _evaluate(browser, sid, "Array.from(document.querySelectorAll('[href],[src]')).map(e => e.href || e.src)")
        images = _evaluate(browser, sid, "Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=sid)
    finally:
        browser.close()
    ev = browser.events
    return {
        "requests": [e["params"]["request"]["url"] for e in ev if e.get("method") == "Network.requestWillBeSent"],
        "failed": [e["params"] for e in ev if e.get("method") == "Network.loadingFailed"],
        "bad_status": [e["params"]["response"]["url"] for e in ev if e.get("method") == "Network.responseReceived"
                       and e["params"]["response"].get("status", 200) >= 400],
        "errors": [e["params"] for e in ev if e.get("method") == "Runtime.exceptionThrown"
                   or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
                   or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")],
        "table": table,
        "text": text,
        "targets": targets,
        "images": images,
        "screenshot": base64.b64decode(shot["data"]),
    }  # fmt: skip


def dead_links(targets: list[str]) -> list[str]:
    """The file: URLs among `targets` (fragment dropped) that name no file."""
    return [u for u in targets if u.startswith("file:") and not Path(unquote(urlparse(u).path)).is_file()]


def make_complete_reports(root: Path) -> tuple[Path, Path, Path]:
    """Every file both pages read, as `dvc repro` and `make confirm` leave them: a page of them says nothing is missing."""
    from avelib.eval.results import pretraining_summary, stage_a_across_runs, stage_summary, write_history_csv
    from avelib.eval.stats import compare_tower_runs

    reports, params, lock = make_fake_reports(root)
    make_reports(reports)  # metrics, baselines and ablations with their paired differences
    metrics = json.loads((reports / "metrics.json").read_text())
    write_json({**metrics, "confusion_matrix": (np.eye(29, dtype=int) * 5 + 1).tolist()}, reports / "metrics.json")
    history = [[{"epoch": e, "train_loss": 1.0 / (e + 1), "val_accuracy": 0.5 + 0.1 * e + 0.01 * s, "lr": 1e-3}
                for e in range(4)] for s in range(2)]
    write_history_csv(history, [0, 1], reports / "plots" / "localizer_history.csv")
    write_json(stage_summary(_history([0.3, 0.5, 0.9], best=2)), reports / "finetune.json")
    write_json({"seconds": 12.5, "peak_rss_mib": 800.0}, reports / "timings" / "06_train.json")
    _task_reports(reports)
    confirm = reports / "confirm"
    runs = stage_a_across_runs([_history([0.3, 0.5, 0.9], best=2), _history([0.3, 0.8], best=1)])
    write_json({**runs, "pretraining": [pretraining_summary(_history([0.1, 0.2], best=1))] * 2}, confirm / "tower_runs.json")
    grid = [{"lr": 1e-4, "layers": "all", "kept_epoch": 2, "a2i_r1": 0.8, "a2i_r1_ci": [0.7, 0.9], "chosen": True},
            {"lr": 1e-5, "layers": "heads", "kept_epoch": 1, "a2i_r1": 0.3, "a2i_r1_ci": [0.2, 0.4], "chosen": False}]
    write_json({**stage_summary(_history([0.3, 0.5, 0.9], best=2)), "grid": grid}, confirm / "recipe_grid.json")
    frozen = {**_run(0.8, 3), "axis": "encoder", "name": "frozen", "params": {"features": "frozen"}, "is_full_model": False,
              "vs_reference": compare_tower_runs([_run(0.8, 3), _run(0.8, 5)], [_run(0.9, 4), _run(0.9, 6)])}
    write_json({"axis": "encoder", "variants": [frozen]}, confirm / "ablation_encoder.json")
    for name in ("weak.json", "crossmodal.json"):
        shutil.copy(reports / name, confirm / name)
    return reports, params, lock


def test_index_loads_in_headless_chromium(tmp_path: Path) -> None:
    """Both pages, from complete reports: no failed request, no console error, nothing missing, no dead link."""
    binary = _chromium_binary()
    assert binary
    # the probe: a page with a broken image and a dead link must be caught, or the checks prove nothing
    probe = tmp_path / "probe.html"
    probe.write_text('<html><body><table id="main-table"><tr><td>x</td></tr></table><img src="missing.png">'
                     '<a href="gone.html">gone</a><script>console.error("probe")</script></body></html>')
    seen = load_in_browser(probe, tmp_path)
    assert seen["failed"] and seen["errors"] and len(dead_links(seen["targets"])) == 2

    reports, params, lock = make_complete_reports(tmp_path)
    index = build_index(reports, params, lock, reports / "index.html")
    confirm = write_confirm_report(reports, reports / "confirm" / "index.html", tmp_path / "confirm" / "dvc.lock")
    pages = {page: load_in_browser(page, tmp_path) for page in (index, confirm)}
    for page, seen in pages.items():
        assert seen["failed"] == [] and seen["bad_status"] == [] and seen["errors"] == [], page
        external = [u for u in seen["requests"] if not u.startswith(("file:", "data:"))]
        assert external == [], f"{page} fetched {external}"
        assert "missing" not in seen["text"].lower(), page
        assert dead_links(seen["targets"]) == [], page
        assert seen["images"] and all(seen["images"]), f"{page}: an inlined image did not decode"
        shot = tmp_path / f"{page.parent.name}_screenshot.png"  # kept for a look: pytest --basetemp=DIR
        shot.write_bytes(seen["screenshot"])
        assert seen["screenshot"].startswith(b"\x89PNG") and shot.stat().st_size > 10_000
    first = pages[index]
    assert "AVE-CLIP (ours)" in first["table"] and "Results on SynthAVE, not on real AVE" in first["text"]
    assert "Training curves per seed against epoch (from localizer_history.csv)" in first["text"]
    assert any(u.endswith("/reports/confirm/index.html") for u in first["targets"])


def test_published_rows_come_from_eval_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    fake = types.ModuleType("avelib.eval.tables")
    fake.PUBLISHED = [  # type: ignore[attr-defined]
        {"method": "AVE-CLIP, WACV'23", "accuracy": 83.7, "features": "AudioCLIP, fine-tuned"},
        {"method": "CMBS, CVPR'22", "accuracy": 0.793, "features": "VGG19 + VGGish"},
    ]
    monkeypatch.setitem(sys.modules, "avelib.eval.tables", fake)
    reports, params, lock = make_fake_reports(tmp_path)
    page = build_index(reports, params, lock, reports / "index.html").read_text()
    published = _table(page, "published-table")
    assert "AVE-CLIP, WACV&#39;23" in published and "83.7" in published and "79.3" in published
    assert published.count("<td>AVE</td>") == 2 and "SynthAVE" not in published  # its own table, each row's dataset
    main = _table(page, "main-table")
    assert "AVE-CLIP (ours)" in main and "WACV" not in main and "CMBS" not in main
    assert "PUBLISHED missing" not in page


def _table(page: str, id: str) -> str:
    start = page.index(f'id="{id}"')
    return page[start : page.index("</table>", start)]


def _task_reports(reports: Path) -> None:
    """reports/weak.json and reports/crossmodal.json from tiny real runs."""
    from avelib.data.features import synthetic_features
    from avelib.eval.tasks import crossmodal_summary, weak_summary
    from avelib.io import write_json
    from avelib.train.distance import CrossmodalConfig, crossmodal_runs
    from avelib.models.baselines import BaselineConfig
    from avelib.train.localizer import BaselinesConfig, EvalConfig, TrainConfig
    from avelib.train.weak import WeakConfig, train_weak_seeds

    audio, visual, labels, splits = synthetic_features(n=40, audio_dim=8, visual_dim=8, seed=0)
    video = np.eye(29, dtype=np.float32)[np.where((labels != 28).any(1), labels.min(1), 28)]
    ev = EvalConfig(seeds=(0,))
    train = BaselinesConfig().train_config(TrainConfig(phases=(), epochs=2), "mlp")
    runs = {("aveclip", "finetuned"): train_weak_seeds((audio, visual), video, labels, splits, "mlp", BaselineConfig(),
                                                    train, ev, WeakConfig(), None, False)}
    write_json(weak_summary(runs, None, "SynthAVE", "protocol text"), reports / "weak.json")
    res = crossmodal_runs(audio, visual, labels, splits, CrossmodalConfig(epochs=1), (0,), progress=False)
    write_json(crossmodal_summary({"finetuned": res}, "SynthAVE", [0]), reports / "crossmodal.json")


def test_index_shows_the_weak_and_crossmodal_tasks(tmp_path: Path) -> None:
    from avelib.report import task_html

    reports, params, lock = make_fake_reports(tmp_path)
    page = build_index(reports, params, lock, reports / "index.html").read_text()
    assert "reports/weak.json" in page and "reports/crossmodal.json" in page  # missing files are named
    _task_reports(reports)
    page = build_index(reports, params, lock, reports / "index.html").read_text()
    for anchor in ('id="weak-table"', 'id="crossmodal-table"', "protocol text", "AVDLN", "PSP", "chance, exact"):
        assert anchor in page
    assert page.count("not available: no source of this number was read here") == 3  # AVEL weak, both A2V/V2A rows
    assert "73.5" in page and "source: the maintainer in CMBS issue #1" in page  # weak numbers with a source
    assert "A2V zero_shot (finetuned)" in page and page.count("data:image/png;base64,") >= 2
    assert "AVDLN" not in _table(page, "crossmodal-table") and "PSP" not in _table(page, "weak-table")
    assert "<td>test videos × seeds</td>" in page  # what each comparison's CI resamples
    assert 'id="weak-table"' in task_html(reports, "weak")
    with pytest.raises(ValueError, match="unknown task"):
        task_html(reports, "parsing")
    (reports / "weak.json").write_text('{"runs": []}')
    with pytest.raises(ReportInputError, match="weak.json"):
        build_index(reports, params, lock, reports / "index.html")


def test_crossmodal_without_scored_videos_says_so(tmp_path: Path) -> None:
    from avelib.eval.tasks import crossmodal_summary
    from avelib.io import write_json

    reports, params, lock = make_fake_reports(tmp_path)
    empty = {"videos": 0, "test_rows": [], "lengths": [], "chance": None, "zero_shot": None, "learned": None}
    write_json(crossmodal_summary({"finetuned": empty}, "SynthAVE", [0]), reports / "crossmodal.json")
    page = build_index(reports, params, lock, reports / "index.html").read_text()
    table = page[page.index('id="crossmodal-table"'):]
    assert table.count("not available: no test video with a 1-9 s event") >= 3


def test_the_machine_record_names_the_cpu_generation():
    """Two clouds' "AMD EPYC" of other generations give other bits: machine.json tells them apart."""
    from avelib.report.environment import _cpu_field, environment_info

    if not _cpu_field("cpu family"):
        pytest.skip("no /proc/cpuinfo cpu family on this machine")
    info = environment_info(packages=())
    assert info["cpu generation"] == f"family {_cpu_field('cpu family')}, model {_cpu_field('model')}"
