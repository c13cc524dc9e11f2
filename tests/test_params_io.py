"""The typed params loader and atomic writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from avelib.io import atomic_path, read_json, write_json
from avelib.params import ParamsError, from_dict, load_params, resolved, section

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Inner:
    windows: list[int] = field(default_factory=lambda: [10, 5])
    mode: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    lr: float
    steps: int = 3
    flag: bool = False
    ckpt: str | None = None
    inner: Inner = field(default_factory=Inner)


def test_section_builds_nested_dataclass():
    cfg = section({"train": {"lr": 1, "inner": {"windows": [2], "mode": "b"}}}, "train", Outer)
    assert cfg == Outer(lr=1.0, inner=Inner(windows=[2], mode="b"))
    assert isinstance(cfg.lr, float)
    assert resolved(cfg) == {"lr": 1.0, "steps": 3, "flag": False, "ckpt": None,
                             "inner": {"windows": [2], "mode": "b"}}


@pytest.mark.parametrize(
    "data, message",
    [
        ({"lr": 0.1, "stpes": 2}, "unknown key"),
        ({"steps": 2}, "required key 'lr'"),
        ({"lr": "fast"}, "expected a number"),
        ({"lr": 0.1, "steps": 2.5}, "expected an integer"),
        ({"lr": 0.1, "flag": "yes"}, "true/false"),
        ({"lr": 0.1, "inner": {"mode": "c"}}, "not one of"),
        ({"lr": 0.1, "inner": {"windows": [1, "x"]}}, "windows[1]"),
    ],
)
def test_bad_params_raise_with_location(data, message):
    with pytest.raises(ParamsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        from_dict(Outer, data, where="train")


def test_missing_section_and_file(tmp_path):
    with pytest.raises(ParamsError, match="'nope' is missing"):
        section({}, "nope", Outer)
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)


def test_repository_params_file_loads_and_checks():
    from avelib.notebook import check_params

    params = load_params(ROOT / "params.yaml")
    check_params(params)
    assert "seed" not in params and "baseline" not in params["evaluate"]  # dead and moved keys stay gone


def test_atomic_path_keeps_old_output_on_failure(tmp_path):
    target = tmp_path / "out.json"
    write_json({"v": 1}, target)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer crashed")
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_path_replaces_directories(tmp_path):
    target = tmp_path / "cache"
    for value in ("old", "new"):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "f.txt").write_text(value)
    assert (target / "f.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_read_json_names_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.json"):
        read_json(tmp_path / "absent.json")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"finetune": {"lrr": 0.1}}, r"finetune: unknown key\(s\) \['lrr'\]"),
        ({"train": {"epochs": "many"}}, r"train\.epochs: expected an integer"),
        ({"decode": {"workers": 1.5}}, r"decode\.workers: expected an integer"),
        ({"report": {"predict": {"batch_size": "x"}}}, r"report\.predict\.batch_size"),
        ({"ablations": {"refine": {"off": {"localizer": {"refine": "maybe"}}}}}, r"ablations\.refine\.off\.localizer\.refine"),
        ({"trian": {"epochs": 3}}, r"unknown section\(s\) \['trian'\]"),
    ],
)
def test_whole_params_file_is_checked_before_any_stage_runs(tmp_path, monkeypatch, change, message):
    import yaml

    import avelib.notebook as N
    from avelib.notebook import check_params, run_stage

    started = []
    monkeypatch.setattr(N, "run_notebook", lambda *a, **k: started.append(a))

    params = load_params(ROOT / "params.yaml")
    check_params(params)  # the repository's file is valid
    for key, value in change.items():
        params[key] = {**params.get(key, {}), **value} if key != "trian" else value
        if key == "report":
            params[key] = {**load_params(ROOT / "params.yaml")["report"], "predict": value["predict"]}
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=message):
        run_stage("data", None, bad)
    assert started == []  # no notebook was started


def test_dataclass_defaults_are_the_params_yaml_values():
    """Defaults live once: a library caller without params.yaml gets what the pipeline runs."""
    from avelib.notebook import params_sections
    from avelib.params import from_dict, resolved

    params = load_params(ROOT / "params.yaml")
    differ = {}
    for name, cls in params_sections().items():
        file, default = resolved(from_dict(cls, params[name], name)), resolved(cls())
        differ |= {f"{name}.{k}": (file[k], default[k]) for k in file if file[k] != default[k]}
    assert not differ, f"params.yaml value vs dataclass default: {differ}"
