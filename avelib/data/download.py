"""Resumable, verified downloads (AudioCLIP release weights) and safe zip extraction.

`download` writes to `<dest>.part`, resumes it with an HTTP Range request, verifies size and
sha256, and only then renames it onto `dest`: a `dest` that exists is always complete.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable

from tqdm import tqdm

from avelib.io import atomic_path

AUDIOCLIP_BASE_URL = "https://github.com/AndreyGuzhov/AudioCLIP/releases/download/v0.1"
CHUNK = 1 << 20


@dataclass(frozen=True)
class ReleaseFile:
    name: str
    size: int  # bytes
    sha256: str | None  # None: not published; only the size is checked


# GitHub release v0.1 of AndreyGuzhov/AudioCLIP (sizes from spec/audioclip.md)
AUDIOCLIP_RELEASE: dict[str, ReleaseFile] = {
    f.name: f
    for f in (
        ReleaseFile("AudioCLIP-Full-Training.pt", 537_302_068, None),
        ReleaseFile("AudioCLIP-Partial-Training.pt", 537_302_068, None),
        ReleaseFile("CLIP.pt", 408_415_159, None),
        ReleaseFile("ESRNXFBSP.pt", 124_795_647, None),
    )
}


class DownloadError(RuntimeError):
    """A download that failed verification or could not complete."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _verify(path: Path, name: str, size: int | None, sha256: str | None) -> None:
    """Raise DownloadError naming the file when size or hash differ."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise DownloadError(f"{name}: size mismatch: expected {size} bytes, got {actual}")
    if sha256 is not None:
        digest = sha256_file(path)
        if digest != sha256.lower():
            raise DownloadError(f"{name}: sha256 mismatch: expected {sha256.lower()}, got {digest}")


def download(
    url: str,
    dest: str | Path,
    size: int | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Fetch `url` to `dest`, resuming `<dest>.part`; verify size/sha256; rename atomically.

    An existing `dest` is verified and returned (a bad one raises: delete it to re-download).
    On a size or hash mismatch the partial file is removed and nothing is left at `dest`.
    """
    dest = Path(dest)
    if dest.exists():
        _verify(dest, str(dest), size, sha256)
        return dest
    if sha256 is None:
        warnings.warn(f"{dest.name}: no sha256 known; only the size is verified", stacklevel=2)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:  # cannot be a prefix of the right file
        part.unlink()
        have = 0
    if size is None or have < size:
        _fetch_into(url, part, have, size, progress, timeout)
    try:
        _verify(part, str(dest), size, sha256)
    except DownloadError:
        part.unlink(missing_ok=True)  # corrupt bytes must not be resumed later
        raise
    os.replace(part, dest)
    return dest


def _fetch_into(url: str, part: Path, have: int, size: int | None, progress: bool, timeout: float) -> None:
    """Append the rest of `url` to `part` (which holds `have` bytes)."""
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and size is not None and have == size:
            return  # the part file is already complete
        raise DownloadError(f"{part.name[:-5]}: HTTP {e.code} {e.reason} for {url}") from e
    except urllib.error.URLError as e:
        raise DownloadError(f"{part.name[:-5]}: cannot reach {url}: {e.reason}") from e
    with response:
        status = getattr(response, "status", 200)
        mode = "ab" if (have and status == 206) else "wb"  # a 200 means the server sent it all
        start = have if mode == "ab" else 0
        bar = tqdm(
            total=size, initial=start, unit="B", unit_scale=True, desc=part.name[:-5],
            disable=None if progress else True,
        )
        try:
            with bar, open(part, mode) as out:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
        except (OSError, http.client.HTTPException) as e:  # dropped connection, timeout
            raise DownloadError(
                f"{part.name[:-5]}: transfer interrupted ({type(e).__name__}: {e}); "
                f"{part} is kept, run again to resume"
            ) from e


def fetch_weights(
    names: Iterable[str],
    cache_dir: str | Path,
    base_url: str = AUDIOCLIP_BASE_URL,
    progress: bool = True,
) -> dict[str, Path]:
    """Download AudioCLIP release files (see AUDIOCLIP_RELEASE) into cache_dir; name -> path."""
    cache_dir = Path(cache_dir)
    out = {}
    for name in names:
        if name not in AUDIOCLIP_RELEASE:
            raise KeyError(f"unknown AudioCLIP release file {name!r}; known: {sorted(AUDIOCLIP_RELEASE)}")
        f = AUDIOCLIP_RELEASE[name]
        out[name] = download(f"{base_url.rstrip('/')}/{name}", cache_dir / name, f.size, f.sha256, progress)
    return out


def _check_member(info: zipfile.ZipInfo, zip_path: Path) -> None:
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ValueError(f"{zip_path}: refusing symlink member {name!r}")
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise ValueError(f"{zip_path}: refusing absolute path member {name!r}")
    if ".." in pure.parts:
        raise ValueError(f"{zip_path}: refusing path traversal member {name!r}")


def safe_extract_zip(zip_path: str | Path, dest: str | Path) -> Path:
    """Extract `zip_path` into `dest` (new, or an existing empty directory) after checking every
    member first: absolute paths, `..` components and symlinks are refused and nothing is
    extracted then. Members are unpacked beside/inside `dest` and moved into place at the end, so
    a failure never leaves a half-filled `dest`."""
    zip_path, dest = Path(zip_path), Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"{dest}: exists and is not an empty directory; remove it or choose another")
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, FileNotFoundError) as e:
        raise ValueError(f"{zip_path}: not a readable zip file ({e})") from e
    with zf:
        members = zf.infolist()
        for info in members:
            _check_member(info, zip_path)
        if not dest.exists():
            with atomic_path(dest) as tmp:
                tmp.mkdir()
                _extract(zf, members, tmp, zip_path)
            return dest
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest))
        try:
            _extract(zf, members, staging, zip_path)
            for child in staging.iterdir():
                os.replace(child, dest / child.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return dest


def _extract(zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], into: Path, zip_path: Path) -> None:
    root = into.resolve()
    for info in members:
        target = (into / info.filename).resolve()
        if root != target and root not in target.parents:  # belt and braces after _check_member
            raise ValueError(f"{zip_path}: member {info.filename!r} escapes the destination")
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK)
