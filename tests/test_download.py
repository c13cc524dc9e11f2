"""Downloads against a real HTTP server on 127.0.0.1 (Range support written here); safe unzip."""

from __future__ import annotations

import hashlib
import http.server
import stat
import threading
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

from avelib.data.download import (
    AUDIOCLIP_RELEASE,
    DownloadError,
    ReleaseFile,
    download,
    fetch_weights,
    safe_extract_zip,
)

PAYLOAD = bytes(range(256)) * 1000 + b"tail"  # 256,004 bytes, every offset distinct-ish


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.files[path]; honours `Range: bytes=N-`; records every Range header."""

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        files: dict[str, bytes] = self.server.files  # type: ignore[attr-defined]
        self.server.ranges.append(self.headers.get("Range"))  # type: ignore[attr-defined]
        body = files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            body = body[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files = {"/weights.pt": PAYLOAD}  # type: ignore[attr-defined]
    srv.ranges = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _url(srv: http.server.ThreadingHTTPServer, path: str = "/weights.pt") -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}{path}"


SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_download_success(server, tmp_path: Path) -> None:
    dest = tmp_path / "w" / "weights.pt"
    out = download(_url(server), dest, size=len(PAYLOAD), sha256=SHA, progress=False)
    assert out == dest and dest.read_bytes() == PAYLOAD
    assert not dest.with_name("weights.pt.part").exists()
    assert server.ranges == [None]
    download(_url(server), dest, size=len(PAYLOAD), sha256=SHA, progress=False)  # present: no request
    assert len(server.ranges) == 1


def test_download_resumes_partial_file(server, tmp_path: Path) -> None:
    dest = tmp_path / "weights.pt"
    dest.with_name("weights.pt.part").write_bytes(PAYLOAD[:100_000])
    download(_url(server), dest, size=len(PAYLOAD), sha256=SHA, progress=False)
    assert server.ranges == ["bytes=100000-"]
    assert dest.read_bytes() == PAYLOAD


def test_checksum_failure_leaves_nothing(server, tmp_path: Path) -> None:
    dest = tmp_path / "weights.pt"
    wrong = "0" * 64
    with pytest.raises(DownloadError) as err:
        download(_url(server), dest, size=len(PAYLOAD), sha256=wrong, progress=False)
    msg = str(err.value)
    assert "weights.pt" in msg and wrong in msg and SHA in msg
    assert not dest.exists() and not dest.with_name("weights.pt.part").exists()


def test_size_mismatch_raises(server, tmp_path: Path) -> None:
    dest = tmp_path / "weights.pt"
    with pytest.warns(UserWarning, match="only the size"):
        with pytest.raises(DownloadError, match=rf"weights\.pt: size mismatch: expected {len(PAYLOAD) + 7}"):
            download(_url(server), dest, size=len(PAYLOAD) + 7, progress=False)
    assert not dest.exists()


def test_http_error_names_file(server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="missing.pt: HTTP 404"):
        download(_url(server, "/missing.pt"), tmp_path / "missing.pt", size=3, sha256=SHA, progress=False)


def test_fetch_weights_uses_release_table(server, tmp_path: Path, monkeypatch) -> None:
    assert AUDIOCLIP_RELEASE["AudioCLIP-Full-Training.pt"].size == 537_302_068
    assert AUDIOCLIP_RELEASE["ESRNXFBSP.pt"].size == 124_795_647
    server.files["/CLIP.pt"] = PAYLOAD
    small = {"CLIP.pt": ReleaseFile("CLIP.pt", len(PAYLOAD), None)}
    monkeypatch.setattr("avelib.data.download.AUDIOCLIP_RELEASE", small)
    base = _url(server, "")
    with pytest.warns(UserWarning, match="no sha256"):
        paths = fetch_weights(["CLIP.pt"], tmp_path, base_url=base, progress=False)
    assert paths["CLIP.pt"].read_bytes() == PAYLOAD
    with pytest.raises(KeyError, match="unknown AudioCLIP release file"):
        fetch_weights(["nope.pt"], tmp_path, base_url=base)


def test_safe_extract_rejects_traversal(tmp_path: Path) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("AVE_Dataset/ok.txt", "fine")
        zf.writestr("../evil", "boom")
    with pytest.raises(ValueError, match=r"path traversal member '\.\./evil'"):
        safe_extract_zip(evil, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil").exists()


def test_safe_extract_rejects_absolute_and_symlink(tmp_path: Path) -> None:
    absolute = tmp_path / "abs.zip"
    with zipfile.ZipFile(absolute, "w") as zf:
        zf.writestr("/etc/passwd_copy", "x")
    with pytest.raises(ValueError, match="absolute path"):
        safe_extract_zip(absolute, tmp_path / "out")
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("AVE/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc")
    with pytest.raises(ValueError, match="symlink"):
        safe_extract_zip(link, tmp_path / "out")


def test_safe_extract_good_zip(tmp_path: Path) -> None:
    good = tmp_path / "AVE_Dataset.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("AVE_Dataset/Annotations.txt", "Category&VideoID&Quality&StartTime&EndTime\n")
        zf.writestr("AVE_Dataset/AVE/", "")
        zf.writestr("AVE_Dataset/AVE/a.mp4", b"\x00\x01")
    out = safe_extract_zip(good, tmp_path / "raw")
    assert (out / "AVE_Dataset" / "Annotations.txt").read_text().startswith("Category&")
    assert (out / "AVE_Dataset" / "AVE" / "a.mp4").read_bytes() == b"\x00\x01"
    with pytest.raises(FileExistsError):
        safe_extract_zip(good, tmp_path / "raw")  # not empty
    empty = tmp_path / "empty"
    empty.mkdir()
    safe_extract_zip(good, empty)
    assert sorted(p.name for p in empty.iterdir()) == ["AVE_Dataset"]
    assert (empty / "AVE_Dataset" / "AVE" / "a.mp4").is_file()


# ---- `python -m avelib weights` end to end (same local server) ----


def _fake_release(monkeypatch, name: str, sha256: str | None) -> None:
    """Swap the release table for one small file served by the test server."""
    table = {name: ReleaseFile(name, len(PAYLOAD), sha256)}
    monkeypatch.setattr("avelib.data.download.AUDIOCLIP_RELEASE", table)


def test_weights_cli_downloads_into_cache(server, tmp_path: Path, monkeypatch, capsys) -> None:
    from avelib.__main__ import main

    server.files["/AudioCLIP-Full-Training.pt"] = PAYLOAD
    _fake_release(monkeypatch, "AudioCLIP-Full-Training.pt", SHA)
    cache = tmp_path / "models" / "pretrained"
    code = main(["weights", "--cache", str(cache), "--base-url", _url(server, "")])  # default --files
    assert code == 0
    landed = cache / "AudioCLIP-Full-Training.pt"
    assert landed.read_bytes() == PAYLOAD
    assert f"AudioCLIP-Full-Training.pt: {landed}" in capsys.readouterr().out
    assert server.ranges == [None]
    assert main(["weights", "--cache", str(cache), "--base-url", _url(server, "")]) == 0  # cached: verified, no fetch
    assert len(server.ranges) == 1


def test_weights_cli_wrong_checksum_exits_nonzero(server, tmp_path: Path, monkeypatch, capsys) -> None:
    from avelib.__main__ import main

    server.files["/CLIP.pt"] = PAYLOAD
    _fake_release(monkeypatch, "CLIP.pt", "f" * 64)
    code = main(["weights", "--cache", str(tmp_path), "--files", "CLIP.pt", "--base-url", _url(server, "")])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "CLIP.pt" in err and "sha256 mismatch" in err
    assert "Traceback" not in err
    assert not (tmp_path / "CLIP.pt").exists() and not (tmp_path / "CLIP.pt.part").exists()


def test_weights_cli_as_subprocess(server, tmp_path: Path) -> None:
    """The real `python -m avelib weights` (unknown name: clear error, exit 1; no table patch possible here)."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "avelib", "weights", "--cache", str(tmp_path), "--files", "nope.pt",
         "--base-url", _url(server, "")],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1],
    )
    assert run.returncode == 1
    assert "unknown AudioCLIP release file 'nope.pt'" in run.stderr and "Traceback" not in run.stderr
    assert server.ranges == []  # rejected before any request
