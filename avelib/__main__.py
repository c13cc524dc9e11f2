"""`python -m avelib <command>`: the suite's small command-line face.

Each command is one `add_<name>(subparsers)` function that registers its arguments and sets
`func` (args -> exit code); adding a command = writing one such function and listing it in
COMMANDS. Expected failures (bad input files, missing checkpoints) print one line naming the
file and the cause and exit with status 1, without a traceback; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

DEFAULT_PARAMS = "params.yaml"


def _report(args: argparse.Namespace) -> int:
    from avelib.report.config import report_config
    from avelib.report.index import write_report

    out = write_report(report_config(args.params), args.params, args.lock, args.reports_dir, args.out)
    print(f"wrote {out}")
    return 0


def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="build reports/index.html (self-contained, offline)")
    p.add_argument("--reports-dir", default=None, help="reports folder (default: params report.reports_dir)")
    p.add_argument("--params", default=DEFAULT_PARAMS, help="params file shown on the page (default: %(default)s)")
    p.add_argument("--lock", default="dvc.lock", help="DVC lock file with the data hashes (default: %(default)s)")
    p.add_argument("--out", default=None, help="output page (default: params report.out)")
    p.set_defaults(func=_report)


def _confirm_report(args: argparse.Namespace) -> int:
    from avelib.report.confirm import write_confirm_report

    print(f"wrote {write_confirm_report(args.reports_dir, args.out, args.lock)}")
    return 0


def add_confirm_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("confirm-report", help="build reports/confirm/index.html, the tower-run study's page")
    p.add_argument("--reports-dir", default="reports", help="reports folder; the study's files are in its confirm/ "
                   "(default: %(default)s)")
    p.add_argument("--lock", default="confirm/dvc.lock", help="the study's DVC lock file (default: %(default)s)")
    p.add_argument("--out", default="reports/confirm/index.html", help="output page (default: %(default)s)")
    p.set_defaults(func=_confirm_report)


def _readme_tables(args: argparse.Namespace) -> int:
    from avelib.eval.tables import sync_readme, sync_results_page

    stale = []
    for path, sync in ((args.readme, sync_readme), (args.results, sync_results_page)):
        current = sync(path, args.reports_dir, check=args.check)
        if args.check and not current:
            stale.append(path)
            print(f"{path}: results block differs from {args.reports_dir}/*.json; run `python -m avelib readme-tables`",
                  file=sys.stderr)
        else:
            print(f"{path}: results block {'already current' if current else 'rewritten'}")
    return 1 if stale else 0


def add_readme_tables(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("readme-tables", help="write the results blocks of README.md (headline, main table) and "
                       "docs/results.md (every table) from reports/*.json")
    p.add_argument("--readme", type=Path, default=Path("README.md"), help="default: %(default)s")
    p.add_argument("--results", type=Path, default=Path("docs/results.md"), help="default: %(default)s")
    p.add_argument("--reports-dir", type=Path, default=Path("reports"), help="default: %(default)s")
    p.add_argument("--check", action="store_true", help="only check; exit 1 when a block is stale")
    p.set_defaults(func=_readme_tables)


def _predict(args: argparse.Namespace) -> int:
    from avelib.predict import predict_cli

    return predict_cli(args)


def add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="per-second event labels of your own video(s)",
        description="Decode a video of any length, encode it with the AudioCLIP towers, run the localizer "
        "on 10-s windows and write per-second labels (JSON, CSV) and a timeline PNG.",
    )
    p.add_argument("videos", nargs="+", type=Path, help="video file(s), any length")
    p.add_argument("--checkpoint", default=None, help="localizer checkpoint (default: params report.predict.checkpoint)")
    towers = p.add_mutually_exclusive_group()
    towers.add_argument("--towers", default=None, help="AudioCLIP checkpoint (default: params report.predict.towers)")
    towers.add_argument(
        "--audioclip-profile",
        default=None,
        help="use RANDOM-INIT towers of this profile instead of a checkpoint (smoke tests only)",
    )
    p.add_argument("--frames-per-second", type=int, default=None, help="K frames per second (default: params)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <report.predict.out>/<video stem>)")
    p.add_argument("--params", default=DEFAULT_PARAMS, help="params file with the `report` section (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    p.set_defaults(func=_predict)


def _compare_runs(args: argparse.Namespace) -> int:
    from avelib.eval.compare import changed_verdicts, committed_reports, compare_runs

    reference = Path(args.reference) if Path(args.reference).is_dir() else committed_reports(args.reference)
    rows, lines = compare_runs(reference, args.this)
    print("\n".join(lines))
    return 1 if changed_verdicts(rows) else 0


def add_compare_runs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare-runs",
        help="this run's numbers and verdicts against a reference run (exit 1 when a verdict changed)",
        description="For every number of the result files: the reference value, this run's, the difference and "
        "whether it lies inside the reference's 95 % CI; for every paired comparison whether the verdict is the "
        "same. Exit 1 when a verdict changed.",
    )
    p.add_argument("reference", nargs="?", default="HEAD",
                   help="a reports folder, or a git commit whose reports/ is the reference (default: %(default)s)")
    p.add_argument("--this", type=Path, default=Path("reports"), help="this run's reports folder (default: %(default)s)")
    p.set_defaults(func=_compare_runs)


def _plots_template(args: argparse.Namespace) -> int:
    from avelib.plots import write_template

    print(f"wrote {write_template(args.out)}")
    return 0


def add_plots_template(sub: argparse._SubParsersAction) -> None:
    from avelib.plots import DEFAULT_OUT

    p = sub.add_parser(
        "plots-template",
        help="write the offline HTML template for `dvc plots show`",
        description="Write an HTML page template with vega, vega-lite and vega-embed inlined, so that "
        "`dvc plots show` renders without network (.dvc/config [plots] html_template names it).",
    )
    p.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help="template file (default: %(default)s)")
    p.set_defaults(func=_plots_template)


def _weights(args: argparse.Namespace) -> int:
    from avelib.data.download import fetch_weights

    # one at a time, so each verified file is reported even if a later one fails
    for name in args.files:
        path = fetch_weights([name], args.cache, base_url=args.base_url)[name]
        print(f"{name}: {path}", flush=True)
    return 0


def add_weights(sub: argparse._SubParsersAction) -> None:
    from avelib.data.download import AUDIOCLIP_BASE_URL

    p = sub.add_parser(
        "weights",
        help="download the AudioCLIP release checkpoints (resumable; size-checked, and sha256 where one is recorded)",
        description="Fetch AudioCLIP release files into a cache folder. An interrupted download is kept "
        "as <file>.part and resumed by the next run; a file is renamed into place only after its size "
        "(and sha256, where published) matched.",
    )
    p.add_argument("--cache", type=Path, default=Path("models/pretrained"), help="folder (default: %(default)s)")
    p.add_argument(
        "--files",
        nargs="+",
        default=["AudioCLIP-Full-Training.pt"],
        metavar="NAME",
        help="release file names, e.g. AudioCLIP-Full-Training.pt CLIP.pt ESRNXFBSP.pt (default: %(default)s)",
    )
    p.add_argument("--base-url", default=AUDIOCLIP_BASE_URL, help="release folder URL (default: %(default)s)")
    p.set_defaults(func=_weights)


def _fixtures(args: argparse.Namespace) -> int:
    from avelib.fixtures import write_paper_fixtures, write_release_features

    if args.kind == "release":
        print(f"release features: {write_release_features(args.out, args.videos, args.seed)}")
        return 0
    for name, path in write_paper_fixtures(args.out, args.keys, args.videos, args.seed).items():
        print(f"{name}: {path} ({path.stat().st_size / 1e6:.1f} MB)", flush=True)
    return 0


def add_fixtures(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fixtures",
        help="write stand-ins of real inputs (AVE_Dataset.zip and AudioCLIP-Full-Training.pt, or the release features)",
        description="paper: a stand-in AVE_Dataset.zip in the release layout (SynthAVE content encoded like "
        "YouTube-derived AVE files) and a full-size AudioCLIP-Full-Training.pt in the official key layout "
        "(values by the conformance stand-in rule), for the paper-profile smoke run. release: the AVE release's "
        "feature folder (VGG19/VGGish h5 files, labels, *_order.h5) with learnable stand-in features.",
    )
    p.add_argument("kind", choices=["paper", "release"], help="which set of inputs")
    p.add_argument("--out", type=Path, required=True, help="folder to write into")
    p.add_argument("--keys", type=Path, default=Path("../shared/conformance/audioclip/keys.tsv"),
                   help="keys.tsv of the official checkpoint (default: %(default)s)")
    p.add_argument("--videos", type=int, default=12, help="videos (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="content seed (default: %(default)s)")
    p.set_defaults(func=_fixtures)


def add_release_chain(sub: argparse._SubParsersAction) -> None:
    from avelib.release_chain import add_release_chain as add

    add(sub)


def add_stage(sub: argparse._SubParsersAction) -> None:
    from avelib.notebook import add_stage as add

    add(sub)


def add_dvc_yaml(sub: argparse._SubParsersAction) -> None:
    from avelib.notebook import add_dvc_yaml as add

    add(sub)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_stage, add_dvc_yaml, add_predict, add_report, add_confirm_report, add_readme_tables, add_compare_runs,
    add_plots_template, add_weights, add_fixtures, add_release_chain,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m avelib", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        # expected failures: the message already names the file and the cause
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
