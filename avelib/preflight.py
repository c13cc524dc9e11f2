"""Checks of the real inputs, run by the data stage before any work starts.

A user of the paper setting brings two large files: `AVE_Dataset.zip` and an AudioCLIP
checkpoint. The mistakes made with them (a cut-short download, an incomplete release, the wrong
checkpoint, a checkpoint of the other tower size) would otherwise surface an hour later, deep in
decoding or fine-tuning. Each error here names the file, the cause and the fix.
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

import torch

from avelib.data.ave import SPLIT_FILES, parse_annotations, read_annotations
from avelib.data.cache import DataConfig, DecodeConfig
from avelib.models.audioclip import (
    CHECKPOINT_FORMAT,
    AudioCLIP,
    AudioCLIPConfig,
    AudioCLIPParams,
    CheckpointError,
    fit_state,
    profile_config,
    read_checkpoint,
)

ANNOTATIONS = "Annotations.txt"
PROFILES = ("paper", "small")


class PreflightError(ValueError):
    """An input of the pipeline that cannot work: the message names the file, the cause and the fix."""


def _fail(path: Path | str, cause: str, fix: str) -> PreflightError:
    return PreflightError(f"{path}: {cause}. Fix: {fix}")


# ---- the AVE release ---------------------------------------------------------------------
def check_ave_zip(zip_path: Path, max_missing_fraction: float = 0.0) -> list[str]:
    """The zip is complete and holds Annotations.txt, the split files and (but for at most
    `max_missing_fraction` of the split ids) their videos; returns the ids with no video."""
    fix_download = "download AVE_Dataset.zip again and check its size, then point data.ave_zip at it"
    if not zip_path.is_file():
        raise _fail(zip_path, "AVE zip not found", "put AVE_Dataset.zip there, or set data.ave_zip to where it is")
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = zf.namelist()
            folder = _release_folder(zip_path, names)
            split_ids = {f: _ids(zf.read(folder + f), f"{zip_path}:{folder}{f}") for f in SPLIT_FILES.values()}
    except zipfile.BadZipFile as e:
        raise _fail(zip_path, f"not a complete zip archive ({e}); the download was probably cut short", fix_download) from e
    videos = {PurePosixPath(n).stem for n in names if n.startswith(f"{folder}AVE/") and n.endswith(".mp4")}
    return _check_missing(zip_path, split_ids, videos, max_missing_fraction, fix_download)


def _ids(text: bytes, where: str) -> set[str]:
    return {r.video_id for r in parse_annotations(text.decode("utf-8", "replace"), where)}


def _release_folder(zip_path: Path, names: list[str]) -> str:
    """The member prefix ('AVE_Dataset/') of the folder holding Annotations.txt and the split files."""
    found = [n[: -len(ANNOTATIONS)] for n in names if PurePosixPath(n).name == ANNOTATIONS]
    if not found:
        raise _fail(zip_path, f"no {ANNOTATIONS} inside", "data.ave_zip must be the AVE release zip (AVE_Dataset.zip)")
    folder = min(found, key=len)
    absent = [f for f in SPLIT_FILES.values() if f"{folder}{f}" not in names]
    if absent:
        raise _fail(zip_path, f"{absent} missing beside {folder}{ANNOTATIONS}", "use the complete AVE release zip")
    return folder


def check_split_videos(root: Path, max_missing_fraction: float = 0.0) -> list[str]:
    """As `check_ave_zip`, for a dataset unpacked at `root` (videos `root/AVE/<id>.mp4`)."""
    split_ids = {f: {r.video_id for r in read_annotations(root / f)} for f in SPLIT_FILES.values()}
    videos = {p.stem for p in (root / "AVE").glob("*.mp4")}
    fix = "unpack the complete release again (remove data.root and set data.ave_zip), or point data.root at it"
    return _check_missing(root / "AVE", split_ids, videos, max_missing_fraction, fix)


def _check_missing(where: Path, split_ids: Mapping[str, set[str]], videos: set[str], max_fraction: float, fix: str) -> list[str]:
    """The split ids with no video; raises when they are more than `max_fraction` of all split ids."""
    missing = {f: sorted(ids - videos) for f, ids in split_ids.items()}
    ids = sorted(set().union(*missing.values()))
    fraction = len(ids) / max(1, len(set().union(*split_ids.values())))
    if fraction > max_fraction:
        shown = "; ".join(f"{f}: {len(m)} id(s), e.g. {', '.join(m[:5])}" for f, m in missing.items() if m)
        cause = f"{len(ids)} split id(s) have no video ({fraction:.1%} > decode.max_failed_fraction {max_fraction:.1%}): {shown}"
        raise _fail(where, cause, fix)
    return ids


# ---- the AudioCLIP checkpoint ------------------------------------------------------------
def checkpoint_kind(state: Mapping[str, Any]) -> str:
    """'avelib' (ours), 'audioclip' (a full official file), 'clip' (CLIP.pt), 'esresnext' (ESRNXFBSP.pt) or 'unknown'."""
    if state.get("format") == CHECKPOINT_FORMAT:
        return "avelib"
    visual = any(k.startswith("visual.") for k in state)
    audio = any(k.startswith("audio.") for k in state)
    if visual:
        return "audioclip" if audio else "clip"
    if any(k.startswith("fbsp.") for k in state):
        return "esresnext"
    return "unknown"


def check_towers_checkpoint(path: Path, second: Path | None, profile: str) -> None:
    """The checkpoint is an AudioCLIP file that fits the towers of `profile`."""
    full = "point audioclip.checkpoint at AudioCLIP-Full-Training.pt (`make weights`)"
    try:
        state = read_checkpoint(path)
    except CheckpointError as e:  # a truncated download, a pickle of objects, not a torch file
        raise PreflightError(f"{e}. Fix: {full}") from e
    kind = checkpoint_kind(state)
    if kind == "unknown":
        keys = ", ".join(list(state)[:5])
        raise _fail(path, f"not an AudioCLIP checkpoint (no visual.* or audio.* key among {len(state)}: {keys}, ...)", full)
    if kind == "clip" and second is None:
        raise _fail(path, "this is CLIP.pt: image and text towers, no audio tower",
                    f"{full}, or add the audio tower with audioclip.second_checkpoint=ESRNXFBSP.pt")
    if kind == "esresnext" and second is None:
        raise _fail(path, "this is ESRNXFBSP.pt: the audio tower alone",
                    f"{full}, or set audioclip.checkpoint=CLIP.pt and audioclip.second_checkpoint={path.name}")
    if kind in ("audioclip", "avelib") and second is not None:
        raise _fail(second, f"a second checkpoint given, but {path} already holds both towers",
                    "set audioclip.second_checkpoint=null")
    if kind == "avelib":
        stored = AudioCLIPConfig.from_dict(state["config"], where=f"{path}: config").name
        _check_profile(path, stored, profile)
    elif kind == "audioclip":
        _check_profile(path, _fitting_profile(path, state), profile)


def _fitting_profile(path: Path, state: Mapping[str, Any]) -> str:
    """The profile whose towers the official-layout `state` fits; raises naming the problems when none does."""
    problems = {}
    for name in PROFILES:
        with torch.device("meta"):  # shapes only: no memory, no init time
            own = AudioCLIP(profile_config(name)).state_dict()  # type: ignore[arg-type]
        problems[name] = fit_state(own, state, str(path))[2]
        if not problems[name]:
            return name
    raise _fail(path, f"an AudioCLIP file that fits neither tower profile (paper: {'; '.join(problems['paper'])})",
                "the file is damaged or of another release: download AudioCLIP-Full-Training.pt again (`make weights`)")


def _check_profile(path: Path, found: str, profile: str) -> None:
    if found != profile:
        sizes = "decode.image_size=224 decode.sample_rate=44100" if found == "paper" else "the small decode sizes"
        raise _fail(path, f"a {found!r}-profile checkpoint, but audioclip.profile={profile!r}",
                    f"set audioclip.profile={found} (with {sizes}), or use a {profile!r} checkpoint")


# ---- the data stage's entry --------------------------------------------------------------
def check_inputs(data: DataConfig, decode: DecodeConfig, towers: AudioCLIPParams, pretrain_enabled: bool) -> list[str]:
    """Everything the pipeline will read from the user, before the first stage does any work;
    returns the split ids with no video (tolerated up to `decode.max_failed_fraction`, then listed
    by the decode stage as failures).

    The towers checkpoint is checked when it is a user's file: with `pretrain.enabled` the
    pipeline writes it itself (stage `pretrain`).
    """
    check_decode_sizes(decode, towers.profile)
    missing: list[str] = []
    if data.dataset == "ave":
        if (data.root / ANNOTATIONS).is_file():
            missing = check_split_videos(data.root, decode.max_failed_fraction)
        elif data.ave_zip is None:
            raise _fail(data.root / ANNOTATIONS, "not found and data.ave_zip is null",
                        "unpack AVE_Dataset.zip so that data.root holds AVE/ and Annotations.txt, or set data.ave_zip")
        else:
            missing = check_ave_zip(data.ave_zip, decode.max_failed_fraction)
    if towers.checkpoint is not None and not pretrain_enabled:
        path = Path(towers.checkpoint)
        if not path.is_file():
            raise _fail(path, "towers checkpoint not found",
                        "`make weights` downloads AudioCLIP-Full-Training.pt into models/pretrained/")
        second = Path(towers.second_checkpoint) if towers.second_checkpoint else None
        check_towers_checkpoint(path, second, towers.profile)
    return missing


def check_decode_sizes(decode: DecodeConfig, profile: str) -> None:
    """The decode stage cuts frames and audio to the sizes the towers of `profile` take."""
    cfg = profile_config(profile)  # type: ignore[arg-type]
    wrong = [
        f"decode.{k}={have} (the towers take {want})"
        for k, have, want in (("image_size", decode.image_size, cfg.image_size), ("sample_rate", decode.sample_rate, cfg.sample_rate))
        if have != want
    ]
    if wrong:
        fix = " ".join(f"-S decode.{k}={v}" for k, v in (("image_size", cfg.image_size), ("sample_rate", cfg.sample_rate)))
        raise _fail("params.yaml", f"audioclip.profile={profile!r} but {', '.join(wrong)}", fix)
