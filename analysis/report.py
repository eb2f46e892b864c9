"""`python -m analysis.report <study dir>... --out report/`: one Markdown + HTML report of a study.

Holds the ranking, the method table (Table 1 layout), an ablation section for every on/off
factor, the figures (metric bars vs Retrain, Pareto front of Avg. Disparity vs run time,
fANOVA hyperparameter importance, parallel coordinates), failed trials, the exact commands
that made the study and the versions of the main packages. The folder is written under a
temporary name and renamed when complete.
"""
from __future__ import annotations

import argparse
import html
import json
from pathlib import Path

import pandas as pd
import yaml

from analysis import ablation, plots
from analysis.formatting import format_number, markdown_table, output_folder
from analysis.rank import not_finished, ranked_by, ranking
from analysis.table import sparsity_label, study_runs, summarize, wide_table
from study.core.errors import UserError, cli_entry
from study.evaluation.names import PARETO, label
from study.records.trials import find_study_dirs, finished, load_study

REPORT_FILE = "report.md"


class Report:
    """An ordered list of blocks rendered both to Markdown and to HTML."""

    def __init__(self) -> None:
        self.blocks: list[tuple[str, object]] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", (level, text)))

    def text(self, text: str) -> None:
        self.blocks.append(("text", text))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    def table(self, table: pd.DataFrame) -> None:
        self.blocks.append(("table", table))

    def image(self, path: Path, caption: str) -> None:
        self.blocks.append(("image", (path, caption)))

    def markdown(self) -> str:
        out = []
        for kind, value in self.blocks:
            if kind == "heading":
                out.append("#" * value[0] + " " + value[1])
            elif kind == "text":
                out.append(value)
            elif kind == "code":
                out.append("```\n" + value + "\n```")
            elif kind == "table":
                out.append(markdown_table(value))
            else:
                out.append(f"![{value[1]}]({value[0]})\n\n*{value[1]}*")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
               "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
               "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}pre{background:#f4f4f4;padding:6px}"
               "</style></head><body>"]
        for kind, value in self.blocks:
            if kind == "heading":
                out.append(f"<h{value[0]}>{html.escape(value[1])}</h{value[0]}>")
            elif kind == "text":
                out.append(f"<p>{html.escape(value)}</p>")
            elif kind == "code":
                out.append(f"<pre>{html.escape(value)}</pre>")
            elif kind == "table":
                out.append(value.to_html(index=False, float_format=format_number, na_rep=""))
            else:
                out.append(f"<figure><img src='{value[0]}' style='max-width:100%'>"
                           f"<figcaption>{html.escape(value[1])}</figcaption></figure>")
        out.append("</body></html>")
        return "\n".join(out)


def _study_meta(path: str | Path) -> list[dict]:
    metas = []
    for study_dir in find_study_dirs(path):
        meta_file = study_dir / "study.json"
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        metas.append({"dir": str(study_dir), **meta})
    return metas


def _search_section(meta: dict) -> dict | None:
    """The space file's `search` section for this study's method, if the file is still there."""
    space_file = Path(meta.get("space_file") or "")
    if not space_file.is_file():
        return None
    raw = yaml.safe_load(space_file.read_text()) or {}
    if "methods" in raw:
        return (raw["methods"].get(meta.get("method")) or {}).get("search")
    return raw.get("search")


def package_versions() -> dict[str, str]:
    from study.core.versions import package_versions as study_versions

    versions = study_versions()
    from importlib.metadata import PackageNotFoundError, version

    for package in ("tensorboard", "matplotlib", "scipy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            pass
    return versions


def build_report(study_dirs: list[str], figures: Path, top: int) -> Report:
    """Every section of the report; figures are written into `figures`."""
    frame = pd.concat([load_study(path) for path in study_dirs], ignore_index=True)
    metas = [meta for path in study_dirs for meta in _study_meta(path)]
    by = ranked_by(frame, None)
    ok = finished(frame, by)
    report = Report()
    report.heading("Study report", 1)
    report.heading("Studies")
    for meta in metas:
        lines = [f"{meta['dir']}: method {meta.get('method', '?')}, status {meta.get('status', 'unknown')}"]
        if "wall_seconds" in meta:
            lines.append(f"{meta.get('num_trials')} trials in {meta['wall_seconds']:.0f} s, "
                         f"{meta.get('failed_trials', 0)} failed")
        report.text("; ".join(lines))
        if meta.get("command"):
            report.code(meta["command"])
        experiment = meta.get("experiment") or {}
        if experiment:
            report.text(f"dataset {experiment.get('dataset')}, model {experiment.get('model')}, forget "
                        f"{experiment.get('forget')}, sparsity {experiment.get('sparsity')}, "
                        f"seed {experiment.get('seed')}, train size {experiment.get('train_size') or 'all'}")
    report.text(f"{len(frame)} trials, {len(ok)} finished with a result, {len(frame) - len(ok)} without.")
    if ok.empty:
        return report

    report.heading(f"Ranking by {label(by)}")
    report.table(ranking(frame, top, by))

    report.heading("Methods (Table 1 layout; best configuration per method, mean ± std over seeds)")
    try:
        summary = summarize(study_runs(frame))
        report.table(wide_table(summary))
        for sparsity in sorted(summary["sparsity"].unique()):
            name = f"metric_bars_{sparsity_label(sparsity).replace(' ', '_').replace('%', '')}.png"
            plots.metric_bars(summary[summary["sparsity"] == sparsity], figures / name)
            report.image(Path(figures.name) / name, f"Each metric per method ({sparsity_label(sparsity)}); "
                                                    "dashed line: Retrain")
    except UserError as err:
        report.text(f"No method table: {err}.")

    factors = ablation.on_off_factors(frame)
    if factors:
        report.heading("Ablations (paired over seeds)")
        for factor in factors:
            try:
                report.text(ablation.markdown_report(frame, factor))
                name = f"ablation_{factor.removeprefix('params.')}.png"
                ablation.ablation_figure(frame, factor, figures / name)
                report.image(Path(figures.name) / name, f"Ablation of {factor.removeprefix('params.')}")
            except UserError as err:
                report.text(f"{factor.removeprefix('params.')}: {err}.")

    for meta in metas:
        if meta.get("objective") == PARETO:
            searched_front_section(report, frame[frame["study"] == str(Path(meta["dir"]).resolve())], meta, figures)

    report.heading("Figures")
    plots.pareto_front(frame, figures / "pareto_front.png", by)
    report.image(Path(figures.name) / "pareto_front.png",
                 f"{label(by)} vs unlearning run time, every finished trial")
    for method, group in frame.groupby("method"):
        search = next((_search_section(m) for m in metas if m.get("method") == method), None)
        found = plots.importance(group, figures / f"importance_{method}.png", search, by)
        if found is None:
            report.text(f"{method}: too few finished trials, searched parameters or distinct objective values "
                        "for fANOVA importance.")
        else:
            path, scores = found
            report.image(Path(figures.name) / path.name, f"{method}: fANOVA importance for {by}")
            report.table(pd.DataFrame({"parameter": list(scores), "importance": list(scores.values())}))
        coords = plots.parallel_coordinates(group, figures / f"parallel_{method}.png", search, by)
        if coords is not None:
            report.image(Path(figures.name) / coords.name, f"{method}: searched parameters vs {by}")

    failed = not_finished(frame, by)
    if len(failed):
        report.heading("Trials without a result")
        report.table(failed)

    report.heading("Reproduce")
    commands = [m["command"] for m in metas if m.get("command")]
    report.code("\n".join([*commands, f"python -m analysis.report {' '.join(study_dirs)} --out <folder>"]))
    report.heading("Package versions")
    report.text(", ".join(f"{k} {v}" for k, v in package_versions().items()))
    return report


def searched_front_section(report: Report, trials: pd.DataFrame, meta: dict, figures: Path) -> None:
    """A Pareto study's searched front: its non-dominated trials and, for the first objective against
    each other one, Optuna's Pareto-front plot (every trial, the front highlighted)."""
    from study.records.pareto import front, order_front

    objectives = list(meta.get("objectives") or [])
    report.heading(f"Searched Pareto front ({meta.get('method')}: {', '.join(label(o) for o in objectives)})")
    try:
        rows = order_front(front(trials, meta["dir"], objectives), objectives)
    except UserError as err:
        report.text(f"No front: {err}.")
        return
    shown = ["trial_id", *objectives, "avg_disparity", "tow", "tow_mia"]
    report.table(rows[[c for c in shown if c in rows]].rename(columns=label))
    report.text("First row: the balanced pick (each objective scaled to [0, 1] over the front, the smallest sum), "
                "which study.export takes by default.")
    for other in objectives[1:]:
        name = f"searched_front_{meta.get('method')}_{objectives[0]}_{other}.png".replace("/", "-")
        plots.searched_front(meta["dir"], objectives, (objectives[0], other), figures / name)
        report.image(Path(figures.name) / name, f"{label(objectives[0])} vs {label(other)}, every trial of the "
                                                "search; the front as Optuna computes it on all objectives")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.splitlines()[0])
    parser.add_argument("study_dir", nargs="+")
    parser.add_argument("--out", required=True, help="report folder (report.md, report.html, figures/, CSVs)")
    parser.add_argument("--top", type=int, default=10, help="trials in the ranking (default 10)")
    args = parser.parse_args(argv)
    frame = pd.concat([load_study(path) for path in args.study_dir], ignore_index=True)
    if finished(frame, ranked_by(frame, None)).empty:
        print(not_finished(frame).to_string(index=False))
        raise UserError("no trial of this study finished; there is nothing to report (failed trials listed above)")
    with output_folder(Path(args.out), REPORT_FILE) as staging:
        figures = staging / "figures"
        figures.mkdir()
        report = build_report(args.study_dir, figures, args.top)
        frame.to_csv(staging / "trials.csv", index=False)
        ranking(frame).to_csv(staging / "ranking.csv", index=False)
        (staging / REPORT_FILE).write_text(report.markdown())
        (staging / "report.html").write_text(report.html("Study report"))
    print(f"report: {Path(args.out) / REPORT_FILE} (and report.html, {len(list((Path(args.out) / 'figures').glob('*.png')))} figures)")
    return 0


run = cli_entry(main)

if __name__ == "__main__":
    run()
