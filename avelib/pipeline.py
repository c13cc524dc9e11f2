"""The stage table: one entry per DVC stage says what it runs, which params keys it reads and which files.

Everything else follows from it: the stage runner (`python -m avelib stage NAME`) passes the notebook
exactly the listed keys as `params`; `python -m avelib dvc-yaml` writes dvc.yaml with those keys as
`params:` and, as `deps:`, the stage's inputs plus every avelib file its notebook imports, directly or
not (the import closure, never a whole folder), and requirements.lock (the package versions). So a stage
reruns only when code it runs, a key it reads or a locked version changes. The runner and this table are not deps of any stage: what they do for a stage is its
`cmd` and `params:` in dvc.yaml, which DVC compares itself.

A `foreach` stage (the ablation axes) runs once per key of that params section; `{item}` in its
strings is the key (`${key}` in dvc.yaml).

Two tiers, two pipelines from this one table: the quick study (`dvc.yaml`, `dvc repro`) runs the whole suite
on one training run of the towers; the tower-run study (`confirm/dvc.yaml` with its own lock, `make confirm`)
holds the recipe grid, the further tower runs and every comparison between tower sets, with every run on the
frozen towers (avelib.data.features.study_encoders), under `reports/confirm/`. No quick stage reads a tower-run study output, so a bare `dvc repro` stays quick.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from avelib.params import ParamsError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = "notebooks"
REPORTS = "reports"
QUICK, CONFIRM = "quick", "confirm"
TIERS = {QUICK: (Path("dvc.yaml"), REPORTS), CONFIRM: (Path("confirm/dvc.yaml"), f"{REPORTS}/confirm")}
"""Each tier's dvc.yaml (relative to the repository) and the folder its executed notebooks and timings go to."""


@dataclass(frozen=True)
class Out:
    """A DVC output; `cache=False` keeps it in the workspace only, `persist` keeps it across reruns."""

    path: str
    cache: bool = True
    persist: bool = False


@dataclass(frozen=True)
class Stage:
    """One DVC stage: the notebook it executes and the avelib function that notebook calls."""

    name: str
    notebook: str | None
    """notebooks/<notebook>.ipynb, run by papermill; None for a command stage (`command`)."""
    entry: str
    """The avelib function doing the stage's work, `module:function` (the notebook imports and calls it)."""
    keys: tuple[str, ...] = ()
    """Dotted params keys the stage reads; the runner passes exactly these (a section name = all its keys)."""
    paths: Mapping[str, str] = field(default_factory=dict)
    """The notebook's path parameters (`{item}` = the foreach key)."""
    inputs: tuple[str, ...] = ()
    """Data and other files the stage reads (deps besides the code)."""
    outs: tuple[Out, ...] = ()
    metrics: tuple[str, ...] = ()
    """JSON metric files (never cached: small, and `dvc metrics diff` reads them from git)."""
    plots: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    ranks: bool = False
    """Starts worker processes or torchrun ranks, which run avelib.ranks (a dep then)."""
    foreach: str | None = None
    command: str | None = None
    """The command of a stage without a notebook."""
    tier: str = QUICK
    """QUICK (dvc.yaml) or CONFIRM (confirm/dvc.yaml, the tower-run study)."""

    @property
    def reports_dir(self) -> str:
        return TIERS[self.tier][1]

    def output_name(self, item: str | None = None) -> str:
        """Name of the executed notebook and its HTML under reports/ (one per foreach item)."""
        assert self.notebook is not None
        return f"{self.notebook}_{item}" if item is not None else self.notebook


def _stage(name: str, notebook: str, entry: str, keys: tuple[str, ...], outs: tuple[Out, ...] = (),
           metrics: tuple[str, ...] = (), tier: str = QUICK, **kw: Any) -> Stage:
    """A notebook stage: its executed copy, HTML and timings (plain files, not metrics) are outputs."""
    out_name = f"{notebook}_{{item}}" if kw.get("foreach") else notebook
    reports = TIERS[tier][1]
    written = (f"{reports}/notebooks/{out_name}.ipynb", f"{reports}/html/{out_name}.html",
               f"{reports}/timings/{out_name}.json")
    return Stage(name, notebook, entry, keys, outs=outs + tuple(Out(p, cache=not p.endswith(".json")) for p in written),
                 metrics=metrics, tier=tier, **kw)


def _result(path: str) -> Out:
    """A result table: in git (small, read by the report and `compare-runs`), not a DVC metric."""
    return Out(path, cache=False)


TOWER_FEATURES = "data/features/tower_runs"  # runs 1.. of the tower_runs stage (avelib.data.features.tower_feature_dirs)
LOCALIZER_KEYS = ("data", "localizer", "train", "evaluate", "distributed.localizer_nproc", "distributed.torchrun_args")

QUICK_STAGES: tuple[Stage, ...] = (
    _stage("data", "01_data", "avelib.data.prepare:prepare_dataset",
           ("data", "synth", "decode", "audioclip", "pretrain.enabled"),
           outs=(Out("${data.root}", persist=True),)),  # cached like every data output: `dvc pull` brings it
    _stage("decode", "02_decode", "avelib.data.cache:build_cache", ("data", "decode"),
           inputs=("${data.root}",), outs=(Out("${data.cache_dir}"),)),
    _stage("pretrain", "03_pretrain", "avelib.stages.pretrain:run_pretrain",
           ("synth", "decode", "audioclip.profile", "pretrain"),
           paths={"pool_dir": "data/pretrain", "out_dir": "models/pretrain"},
           # persisted: an interrupted run reuses the pool and resumes from last.pt
           outs=(Out("data/pretrain", persist=True), Out("models/pretrain", persist=True))),
    # one recipe (finetune.lr, finetune.layers): the tower-run study's recipe_grid checks that validation keeps it
    _stage("finetune", "04_finetune", "avelib.stages.towers:run_finetune",
           ("data", "audioclip", "finetune", "distributed.finetune_nproc", "distributed.torchrun_args"),
           paths={"out_dir": "models/finetune", "summary_out": "reports/finetune.json"},
           inputs=("models/pretrain", "${data.cache_dir}"), ranks=True,
           # persisted: an interrupted run resumes from last.pt (it restarts if the params differ)
           outs=(Out("models/finetune/best.pt", persist=True), Out("models/finetune/history.json", persist=True),
                 Out("models/finetune/last.pt", persist=True), _result("reports/finetune.json")),
           plots={"models/finetune/plots/finetune_loss.csv": {"x": "epoch"},
                  "models/finetune/plots/finetune_recall.csv": {"x": "epoch"}}),
    _stage("extract", "05_extract", "avelib.stages.towers:run_extract",
           ("data.cache_dir", "audioclip", "extract", "distributed.extract_nproc",
            "distributed.torchrun_args"),
           paths={"checkpoint": "models/finetune/best.pt", "out_dir": "data/features"},
           inputs=("models/finetune/best.pt", "models/pretrain", "${data.cache_dir}"), ranks=True,
           # one out, not data/features: a killed run's data/features/<name>.partial must survive DVC's cleanup
           outs=(Out("data/features/finetuned"),)),
    _stage("train", "06_train", "avelib.stages.localizer:run_train", LOCALIZER_KEYS,
           paths={"features_dir": "data/features/finetuned", "out_dir": "models/localizer",
                  "plots_dir": "reports/plots"},
           inputs=("data/features/finetuned",), ranks=True, outs=(Out("models/localizer"),),
           plots={"reports/plots/localizer_history.csv": {"x": "epoch", "y": "val_accuracy"}}),
    _stage("evaluate", "07_evaluate", "avelib.stages.localizer:run_evaluate",
           tuple(k for k in LOCALIZER_KEYS if k != "localizer") + ("baselines",),
           paths={"features_dir": "data/features/finetuned", "train_dir": "models/localizer",
                  "reports_dir": "reports", "out_dir": "models/evaluate"},
           inputs=("data/features/finetuned", "models/localizer"), ranks=True,
           outs=(Out("models/evaluate"), _result("reports/metrics.json"), _result("reports/baselines.json"))),
    _stage("ablate", "08_ablation", "avelib.stages.localizer:run_ablation", (*LOCALIZER_KEYS, "ablations.{item}"),
           foreach="ablations",
           paths={"axis": "{item}", "features_root": "data/features", "main_metrics": "models/localizer/metrics.json",
                  "out": "reports/ablations/{item}.json", "out_dir": "models/ablations/{item}"},
           inputs=("models/localizer", "data/features/finetuned"), ranks=True,
           outs=(Out("models/ablations/{item}"), _result("reports/ablations/{item}.json"))),
    _stage("ablation_table", "09_ablation_table", "avelib.train.ablations:merge_axes", (),
           paths={"axes_dir": "reports/ablations", "out": "reports/ablations.json"},
           inputs=("reports/ablations",), outs=(_result("reports/ablations.json"),)),
    _stage("weak", "10_weak", "avelib.stages.weak:run_weak", (*LOCALIZER_KEYS, "baselines", "weak"),
           paths={"features_root": "data/features", "supervised_metrics": "models/localizer/metrics.json",
                  "out": "reports/weak.json", "out_dir": "models/weak"},
           inputs=("data/features/finetuned", "models/localizer"), ranks=True,
           outs=(Out("models/weak"), _result("reports/weak.json"))),
    _stage("crossmodal", "11_crossmodal", "avelib.stages.crossmodal:run_crossmodal",
           ("data", "evaluate.seeds", "evaluate.visual", "crossmodal"),
           paths={"features_root": "data/features", "out": "reports/crossmodal.json"},
           inputs=("data/features/finetuned",), outs=(_result("reports/crossmodal.json"),)),
    Stage("report", None, "avelib.report.index:write_report", ("report",), command="python -m avelib report",
          inputs=("params.yaml",  # the page shows the whole file
                  "reports/metrics.json", "reports/baselines.json", "reports/ablations.json", "reports/finetune.json",
                  "reports/weak.json", "reports/crossmodal.json", "reports/html", "reports/plots", "reports/timings"),
          outs=(Out("reports/index.html", cache=False), Out("reports/machine.json", cache=False),
                Out("reports/timings.json", cache=False)),
          metrics=("reports/headline.json",)),  # the results a user compares between experiments
)

CONFIRM_REPORTS = TIERS[CONFIRM][1]
TOWER_KEYS = ("tower_runs.count",)  # the stages that read it compare tower runs 0 .. count - 1
CONFIRM_STAGES: tuple[Stage, ...] = (
    _stage("recipe_grid", "04_finetune", "avelib.stages.towers:run_finetune",
           ("data", "audioclip", "finetune", "finetune_grid"), tier=CONFIRM,
           paths={"out_dir": "models/recipe_grid", "summary_out": f"{CONFIRM_REPORTS}/recipe_grid.json"},
           inputs=("models/pretrain", "${data.cache_dir}"),
           # persisted: an interrupted grid resumes each recipe's run
           outs=(Out("models/recipe_grid", persist=True), _result(f"{CONFIRM_REPORTS}/recipe_grid.json"))),
    _stage("tower_runs", "05b_tower_runs", "avelib.stages.tower_runs:run_tower_runs",
           # a per-run pretraining also reads synth and decode: through the pool (data/pretrain), an input here
           ("data.cache_dir", "data.root", "audioclip", "pretrain", "finetune", "extract", "tower_runs",
            "distributed.extract_nproc", "distributed.torchrun_args"), tier=CONFIRM,
           paths={"finetune_summary": "reports/finetune.json", "finetune_history": "models/finetune/history.json",
                  "pool_dir": "data/pretrain", "models_dir": "models/tower_runs", "features_dir": TOWER_FEATURES,
                  "pretrain_dir": "models/pretrain", "frozen_dir": "data/features/frozen",
                  "summary_out": f"{CONFIRM_REPORTS}/tower_runs.json"},
           inputs=("reports/finetune.json", "models/finetune/history.json", "data/pretrain", "models/pretrain",
                   "${data.cache_dir}"),
           ranks=True,  # persisted: an interrupted run resumes each run's pretraining and fine-tuning
           outs=(Out("models/tower_runs", persist=True), Out(TOWER_FEATURES), Out("data/features/frozen"),
                 _result(f"{CONFIRM_REPORTS}/tower_runs.json"))),
    _stage("tower_encoder", "08_ablation", "avelib.stages.localizer:run_ablation",
           (*LOCALIZER_KEYS, "ablations.encoder", *TOWER_KEYS), tier=CONFIRM,
           paths={"axis": "encoder", "features_root": "data/features", "main_metrics": "models/localizer/metrics.json",
                  "out": f"{CONFIRM_REPORTS}/ablation_encoder.json", "out_dir": "models/tower_encoder"},
           inputs=("models/localizer", "data/features/finetuned", "data/features/frozen", TOWER_FEATURES), ranks=True,
           outs=(Out("models/tower_encoder"), _result(f"{CONFIRM_REPORTS}/ablation_encoder.json"))),
    _stage("tower_weak", "10_weak", "avelib.stages.weak:run_weak", (*LOCALIZER_KEYS, "baselines", "weak", *TOWER_KEYS),
           tier=CONFIRM,
           paths={"features_root": "data/features", "supervised_metrics": "models/localizer/metrics.json",
                  "out": f"{CONFIRM_REPORTS}/weak.json", "out_dir": "models/tower_weak"},
           inputs=("data/features/finetuned", "data/features/frozen", TOWER_FEATURES, "models/localizer"), ranks=True,
           outs=(Out("models/tower_weak"), _result(f"{CONFIRM_REPORTS}/weak.json"))),
    _stage("tower_crossmodal", "11_crossmodal", "avelib.stages.crossmodal:run_crossmodal",
           ("data", "evaluate.seeds", "evaluate.visual", "crossmodal", *TOWER_KEYS), tier=CONFIRM,
           paths={"features_root": "data/features", "out": f"{CONFIRM_REPORTS}/crossmodal.json"},
           inputs=("data/features/finetuned", "data/features/frozen", TOWER_FEATURES),
           outs=(_result(f"{CONFIRM_REPORTS}/crossmodal.json"),)),
    Stage("confirm_report", None, "avelib.report.confirm:write_confirm_report", (), tier=CONFIRM,
          command="python -m avelib confirm-report",
          inputs=tuple(f"{CONFIRM_REPORTS}/{name}.json" for name in
                       ("recipe_grid", "tower_runs", "ablation_encoder", "weak", "crossmodal")) + (f"{CONFIRM_REPORTS}/html",),
          outs=(Out(f"{CONFIRM_REPORTS}/index.html", cache=False),),
          metrics=(f"{CONFIRM_REPORTS}/headline.json",)),  # the tower comparisons, by name
)
STAGES: tuple[Stage, ...] = QUICK_STAGES + CONFIRM_STAGES
BY_NAME = {s.name: s for s in STAGES}


def stage(name: str) -> Stage:
    if name not in BY_NAME:
        raise ValueError(f"unknown stage {name!r}; the stages: {', '.join(BY_NAME)}")
    return BY_NAME[name]


# ----------------------------------------------------------------------------- what a stage reads


def stage_keys(entry: Stage, item: str | None = None) -> tuple[str, ...]:
    return tuple(k.replace("{item}", item or "") for k in entry.keys)


def stage_params(entry: Stage, params: Mapping[str, Any], item: str | None = None) -> dict[str, Any]:
    """Exactly the stage's keys of `params`, nested as in params.yaml."""
    if entry.foreach and item not in (params.get(entry.foreach) or {}):
        raise ParamsError(f"stage {entry.name}: {item!r} is not a key of params section '{entry.foreach}'")
    out: dict[str, Any] = {}
    for key in stage_keys(entry, item):
        node: Any = params
        *parents, last = key.split(".")
        for part in [*parents, last]:
            if not isinstance(node, Mapping) or part not in node:
                raise ParamsError(f"params: '{key}' is missing (read by stage {entry.name})")
            node = node[part]
        target = out
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = node
    return out


def stage_paths(entry: Stage, item: str | None = None) -> dict[str, str]:
    return {k: v.replace("{item}", item or "") for k, v in entry.paths.items()}


def covers(keys: tuple[str, ...], read: str) -> bool:
    """A read key is covered by a listed key that is it or a section above it."""
    return any(read == k or read.startswith(k + ".") for k in keys)


# ----------------------------------------------------------------------------- the code a stage runs


def module_file(module: str) -> Path | None:
    """avelib/x/y.py or avelib/x/y/__init__.py of `avelib.x.y`, relative to the repository (None: not avelib)."""
    base = Path(*module.split("."))
    for rel in (base.with_suffix(".py"), base / "__init__.py"):
        if (ROOT / rel).is_file():
            return rel
    return None


def imported_modules(tree: ast.AST) -> set[str]:
    """avelib modules (and their packages) imported anywhere in `tree`, inside functions too."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "avelib"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "avelib":
            found.add(node.module)  # `from avelib.eval import stats` imports avelib.eval.stats too
            found |= {f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}")}
    parents = {".".join(m.split(".")[:i]) for m in found for i in range(1, m.count(".") + 1)}
    return found | parents


def import_closure(roots: set[str]) -> list[str]:
    """The files of `roots` and of every avelib module they import, directly or not, sorted."""
    seen: set[str] = set()
    todo = sorted(roots)
    while todo:
        module = todo.pop()
        path = module_file(module)
        if module in seen or path is None:
            continue
        seen.add(module)
        todo += sorted(imported_modules(ast.parse((ROOT / path).read_text())) - seen)
    return sorted(str(module_file(m)) for m in seen)


def notebook_source(notebook: str) -> str:
    """The code cells of a notebook as one Python source (magics dropped)."""
    import nbformat

    cells = nbformat.read(ROOT / NOTEBOOKS / f"{notebook}.ipynb", as_version=4).cells
    lines = "\n".join(c.source for c in cells if c.cell_type == "code").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!")))


def code_roots(entry: Stage) -> set[str]:
    """The modules a stage runs: its notebook's avelib imports (or its entry's module), and avelib.ranks."""
    if entry.notebook is None:
        roots = {entry.entry.split(":")[0]}
    else:
        roots = imported_modules(ast.parse(notebook_source(entry.notebook)))
    return roots | ({"avelib.ranks"} if entry.ranks else set())


LOCK = "requirements.lock"  # the exact package versions: another PyAV or numpy may write other bytes


def code_deps(entry: Stage) -> list[str]:
    notebook = [f"{NOTEBOOKS}/{entry.notebook}.ipynb"] if entry.notebook else []
    return notebook + import_closure(code_roots(entry)) + [LOCK]


# ----------------------------------------------------------------------------- dvc.yaml from the table

DVC_YAML_HEADER = """\
# Written by `python -m avelib dvc-yaml` from the stage table in avelib/pipeline.py: edit the table, not
# this file (tests/test_pipeline.py fails when it is stale). Each stage lists the params keys it reads
# and, as deps, its inputs, every avelib file its notebook imports, directly or not, and requirements.lock.
"""
CONFIRM_HEADER = """\
# The tower-run study (`make confirm`): the recipe grid, the further tower runs and every comparison between
# tower sets. Its stages run from the repository root (wdir) and read the root params.yaml; they read the
# quick study's outputs (dvc.yaml), never the other way round.
"""


def _dvc(text: str) -> str:
    return text.replace("{item}", "${key}")


def _out(out: Out) -> Any:
    options = {**({"cache": False} if not out.cache else {}), **({"persist": True} if out.persist else {})}
    return {_dvc(out.path): options} if options else _dvc(out.path)


def dvc_stage(entry: Stage) -> dict[str, Any]:
    """The dvc.yaml body of one stage."""
    cmd = entry.command or f"python -m avelib stage {entry.name}" + (" --item ${key}" if entry.foreach else "")
    body: dict[str, Any] = {"cmd": cmd} if entry.tier == QUICK else {"wdir": "..", "cmd": cmd}
    body["deps"] = code_deps(entry) + [_dvc(p) for p in entry.inputs]
    if entry.keys:
        body["params"] = [_dvc(k) for k in entry.keys]
    body["outs"] = [_out(o) for o in entry.outs]
    if entry.metrics:
        body["metrics"] = [{_dvc(m): {"cache": False}} for m in entry.metrics]
    if entry.plots:
        # a plot under reports/ is committed to git; one beside its checkpoints (models/) is DVC-cached, so pushed
        body["plots"] = [{p: {"cache": not p.startswith(f"{REPORTS}/"), **axes}} for p, axes in entry.plots.items()]
    return {"foreach": f"${{{entry.foreach}}}", "do": body} if entry.foreach else body


def render_dvc_yaml(tier: str = QUICK) -> str:
    """The dvc.yaml of one tier (TIERS)."""
    import yaml

    stages = {s.name: dvc_stage(s) for s in STAGES if s.tier == tier}
    if tier == QUICK:
        return DVC_YAML_HEADER + yaml.safe_dump({"stages": stages}, sort_keys=False, width=120)
    body = {"vars": ["../params.yaml"], "stages": stages}  # interpolation reads the root params.yaml
    return DVC_YAML_HEADER + CONFIRM_HEADER + yaml.safe_dump(body, sort_keys=False, width=120)
