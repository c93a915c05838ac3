"""Results table and figures for finished runs, from their workdirs alone.

    python -m resize_jax.tools.report runs/demo                  # every run under runs/demo
    python -m resize_jax.tools.report runs/in_r50_fixed runs/in_r50_flops runs/in_r50_learned \\
        --out runs/imagenet_report

Each workdir must hold what `resize_jax.train.train_and_evaluate` writes: `config.json`,
`metrics.jsonl`, TensorBoard events and a checkpoint. A directory that is not a workdir but
holds workdirs stands for all of them. Writes to `--out` (default: the workdirs' common
parent) `results.md`, `results.json` and PNG figures:

- `learning_curves.png`: training loss and the eval metric of every run against the step;
- `frontends.png`: test images next to what each front-end feeds its network;
- `learned_residual.png`: the learned resizer's output minus its own skip path (the plain
  resize the paper adds the network's correction to);
- `saliency.png`: the saliency map and the sampling grid over the input, and the sample.

The image figures need the eval split of the runs' dataset where the report runs; without it
they are skipped with a warning and the table is still written. Runs that differ only in
their seed are one row (mean and range over seeds). When a backbone has a learned-resizer run
and a fixed run at a larger size (the paper's comparable-FLOPs baseline), the paper's layout
is added: backbone × {fixed at the task size, fixed at comparable FLOPs, learned} with top-1
error and GFLOPs.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import statistics
import sys
from collections.abc import Iterable, Sequence

import jax
import numpy as np
from absl import logging

from resize_jax import frontends, ops, tasks
from resize_jax.train.workdir import (
    CONFIG_FILE,
    TrainedRun,
    describe,
    image_size,
    load_config,
    load_run,
    read_class_names,
)
from resize_jax.train.writer import read_metrics

RESULTS_MD, RESULTS_JSON = "results.md", "results.json"
_COLORS = ("tab:red", "tab:orange", "tab:brown", "tab:green", "tab:blue", "tab:gray")
_LINESTYLES = ("-", "--", ":", "-.")


def headline_metric(task: str) -> tasks.HeadlineMetric:
    """The metric the table reports for `task`: the task's own `headline_metric` (the eval
    loss for a task this installation does not know)."""
    known = task in tasks.task_names()
    return (tasks.task_class(task) if known else tasks.Task).headline_metric


def _metric_label(metric: str) -> str:
    """The name of a headline metric from its key after "eval/" ("top1" → "top-1 accuracy")."""
    headlines = [tasks.task_class(name).headline_metric for name in tasks.task_names()]
    return next((h.label for h in headlines if h.key == f"eval/{metric}"), "metric")


def _size(pair) -> str:
    return f"{int(pair[0])}×{int(pair[1])}"


@dataclasses.dataclass
class Run:
    """What the report knows of one finished run (all of it read from its workdir)."""

    name: str
    workdir: str
    label: str
    group: str
    task: str
    metric: str
    value: float | None
    frontend: str
    backbone: str
    input_size: tuple[int, int]
    network_input: tuple[int, int]
    seed: int
    steps: int
    batch_size: int
    params: int | None
    gflops: float | None
    images_per_second: float | None
    wall_seconds: float | None
    loss_curve: list = dataclasses.field(default_factory=list)
    eval_curve: list = dataclasses.field(default_factory=list)


def find_workdirs(paths: Sequence[str]) -> list[str]:
    """The workdirs among `paths`, a directory of workdirs standing for all of them.

    Raises:
      ValueError: naming a path that is neither a workdir nor a directory holding workdirs.
    """
    found: list[str] = []
    for path in paths:
        if os.path.isfile(os.path.join(path, CONFIG_FILE)):
            found.append(os.path.normpath(path))
            continue
        inner = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(path, "*", CONFIG_FILE)))
        if not os.path.isdir(path) or not inner:
            raise ValueError(
                f"`workdirs`: {path!r} is neither a run's workdir (with {CONFIG_FILE}) "
                "nor a directory holding such workdirs."
            )
        found.extend(os.path.normpath(p) for p in inner)
    return list(dict.fromkeys(found))


def _last_by_step(records, key):
    # A resumed run appends to metrics.jsonl: the last record written for a step wins.
    values = {}
    for record in records:
        if key in record:
            values[int(record["step"])] = float(record[key])
    return sorted(values.items())


def wall_seconds(workdir: str) -> float | None:
    """Seconds from the first to the last TensorBoard event of each writer, summed.

    Each event file spans one (possibly resumed) segment of the run, from the metric writer's
    creation (after the model is initialised) to its final evaluation; None without events.
    """
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    total, found = 0.0, False
    for path in sorted(glob.glob(os.path.join(workdir, "events.out.tfevents.*"))):
        times = [event.wall_time for event in EventFileLoader(path).Load()]
        if times:
            total += max(times) - min(times)
            found = True
    return total if found else None


def _images_per_second(records) -> float | None:
    # The first logged interval of each segment includes compilation: leave it out.
    values, previous_step = [], None
    for record in records:
        if "train/images_per_second" not in record:
            continue
        step = int(record["step"])
        if previous_step is not None and step > previous_step:
            values.append(float(record["train/images_per_second"]))
        previous_step = step
    if not values:
        key = "train/images_per_second"
        values = [float(r[key]) for r in records if key in r]
    return float(statistics.median(values)) if values else None


def _group_key(config) -> str:
    # Runs that differ only in their seed are repeats of one experiment.
    raw = json.loads(config.to_json_best_effort())
    raw.pop("seed", None)
    return json.dumps(raw, sort_keys=True)


def summarize(workdir: str, *, gflops: bool = True) -> tuple[Run, TrainedRun | None]:
    """Reads one finished run: its config, final metric, params, speed, time and FLOPs.

    Returns the summary and the restored run (None when `gflops` is False).
    """
    from resize_jax.models import flops

    config = load_config(workdir)
    records = read_metrics(workdir)
    task = config.task.get("name", "classification")
    headline = headline_metric(task)
    metric = headline.key.removeprefix("eval/")
    evals = _last_by_step(records, headline.key)
    losses = _last_by_step(records, "train/loss")
    params = _last_by_step(records, "params/trainable")
    input_size = image_size(config)
    network_input = (
        input_size if config.frontend.name == "none" else tuple(config.frontend.output_shape)
    )
    run, gflops_value = None, None
    if gflops:
        run = load_run(workdir)
        count = flops(run.model.apply, run.variables, (1, *input_size, 3), train=False)
        gflops_value = count / 1e9
    summary = Run(
        name=os.path.basename(os.path.normpath(workdir)),
        workdir=workdir,
        label=describe(config),
        group=_group_key(config),
        task=task,
        metric=metric,
        value=evals[-1][1] if evals else None,
        frontend=config.frontend.name,
        backbone=config.model.name,
        input_size=tuple(input_size),
        network_input=tuple(int(v) for v in network_input),
        seed=int(config.seed),
        steps=int(config.num_train_steps),
        batch_size=int(config.batch_size),
        params=int(params[0][1]) if params else None,
        gflops=gflops_value,
        images_per_second=_images_per_second(records),
        wall_seconds=wall_seconds(workdir),
        loss_curve=losses,
        eval_curve=evals,
    )
    return summary, run


_METHOD_ORDER = ("nearest", "bilinear", "bicubic", "lanczos3", "lanczos5")


def _order(run: Run) -> tuple:
    # One row order whatever order the workdirs come in: per backbone, fixed resizers
    # (simplest kernel first, plain before antialiased), learned, saliency, others, none.
    config = load_config(run.workdir)
    method = config.frontend.get("method", "")
    rank = _METHOD_ORDER.index(method) if method in _METHOD_ORDER else len(_METHOD_ORDER)
    return (
        run.backbone,
        frontends.frontend_rank(run.frontend),
        run.network_input[0] * run.network_input[1],
        rank,
        bool(config.frontend.get("antialias", False)),
        run.label,
        run.group,
        run.seed,
        run.name,
    )


def _final_step(run: Run) -> int:
    steps = [step for step, _ in run.eval_curve] or [0]
    return max(steps)


def _groups(runs: Sequence[Run]) -> list[list[Run]]:
    groups: dict[str, list[Run]] = {}
    for run in sorted(runs, key=_order):
        groups.setdefault(run.group, []).append(run)
    # Two workdirs with the same config and seed are one experiment (a copy, or a run and its
    # resumed continuation), not two seeds: keep the one evaluated last, say which was left out.
    deduplicated = []
    for group in groups.values():
        by_seed: dict[int, Run] = {}
        for run in group:
            kept = by_seed.get(run.seed)
            if kept is None or _final_step(run) > _final_step(kept):
                by_seed[run.seed] = run
        dropped = [run for run in group if by_seed[run.seed] is not run]
        for run in dropped:
            logging.warning(
                "%s repeats the config and seed %d of %s: counted once (the later one).",
                run.workdir,
                run.seed,
                by_seed[run.seed].workdir,
            )
        deduplicated.append([run for run in group if run not in dropped])
    return deduplicated


def _group_record(group: list[Run]) -> dict:
    first = group[0]
    values = [r.value for r in group if r.value is not None]
    speeds = [r.images_per_second for r in group if r.images_per_second is not None]
    walls = [r.wall_seconds for r in group if r.wall_seconds is not None]
    return {
        "label": first.label,
        "frontend": first.frontend,
        "backbone": first.backbone,
        "input_size": list(first.input_size),
        "network_input": list(first.network_input),
        "metric": first.metric,
        "seeds": [r.seed for r in group],
        "runs": [r.name for r in group],
        "values": [r.value for r in group],
        "mean": statistics.mean(values) if values else None,
        "std": statistics.stdev(values) if len(values) > 1 else 0.0 if values else None,
        "min": min(values) if values else None,
        "max": max(values) if values else None,
        "params": first.params,
        "gflops": first.gflops,
        "images_per_second": statistics.mean(speeds) if speeds else None,
        "wall_seconds": statistics.mean(walls) if walls else None,
        "steps": first.steps,
        "batch_size": first.batch_size,
    }


def paper_layout(groups: Sequence[dict]) -> list[dict]:
    """Rows of the learned-resizer paper's table: per backbone with a learned run and a fixed
    run larger than its output (comparable FLOPs), the fixed run at the learned run's size,
    that larger fixed run and the learned one, with top-1 error and GFLOPs. Classification
    groups only; [] when no backbone has such runs."""
    rows = []
    for backbone in sorted({g["backbone"] for g in groups}):
        mine = [g for g in groups if g["backbone"] == backbone and g["metric"] == "top1"]
        learned = [g for g in mine if g["frontend"] == "learned"]
        if not learned:
            continue
        size = learned[0]["network_input"]
        fixed = [g for g in mine if g["frontend"] == "fixed"]
        at_size = [g for g in fixed if g["network_input"] == size]
        area = size[0] * size[1]
        larger = [g for g in fixed if g["network_input"][0] * g["network_input"][1] > area]
        if not larger:
            continue
        kinds = [
            *((f"{g['label']}, task size", g) for g in at_size),
            *((f"{g['label']}, comparable FLOPs", g) for g in larger),
            *((g["label"], g) for g in learned),
        ]
        for kind, g in kinds:
            rows.append(
                {
                    "backbone": backbone,
                    "resizer": kind,
                    "network_input": g["network_input"],
                    "top1_error": None if g["mean"] is None else 1.0 - g["mean"],
                    "gflops": g["gflops"],
                    "seeds": len(g["seeds"]),
                }
            )
    return rows


def _fmt(value, pattern: str, missing: str = "–") -> str:
    return missing if value is None else pattern.format(value)


def _markdown_table(head: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> str:
    """A Markdown table; `align` holds "l" or "r" per column (default: all left)."""
    rule = "".join("---:|" if a == "r" else "---|" for a in align.ljust(len(head), "l"))
    lines = ["| " + " | ".join(head) + " |", "|" + rule]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def _value_cell(g: dict) -> str:
    if g["mean"] is None:
        return "–"
    if len(g["values"]) == 1:
        return f"{g['mean']:.3f}"
    return f"{g['mean']:.3f} ({g['min']:.3f}–{g['max']:.3f})"


def main_table(groups: Sequence[dict]) -> str:
    """The results table (Markdown): one row per experiment, mean and range over seeds."""
    metric_name = _metric_label(groups[0]["metric"])
    backbones = len({g["backbone"] for g in groups}) > 1
    head = ["front-end", "network input", f"test {metric_name}", "seeds"]
    head += ["trainable params", "GFLOPs/image", "train img/s", "wall s/run"]
    if backbones:
        head.insert(0, "backbone")
    rows = []
    for g in groups:
        cells = [
            g["label"],
            f"{_size(g['input_size'])} → {_size(g['network_input'])}"
            if g["frontend"] != "none"
            else _size(g["network_input"]),
            _value_cell(g),
            ", ".join(str(s) for s in g["seeds"]),
            _fmt(g["params"], "{:,}"),
            _fmt(g["gflops"], "{:.3f}"),
            _fmt(g["images_per_second"], "{:.0f}"),
            _fmt(g["wall_seconds"], "{:.0f}"),
        ]
        if backbones:
            cells.insert(0, g["backbone"])
        rows.append(cells)
    return _markdown_table(head, rows)


def _paper_table(rows: Sequence[dict]) -> str:
    head = ["backbone", "resizer", "network input", "top-1 error", "GFLOPs/image"]
    cells = [
        [
            r["backbone"],
            r["resizer"],
            _size(r["network_input"]),
            _fmt(r["top1_error"], "{:.1%}"),
            _fmt(r["gflops"], "{:.2f}"),
        ]
        for r in rows
    ]
    return _markdown_table(head, cells, align="lllrr")


def _runs_table(runs: Sequence[Run]) -> str:
    head = ["run", "front-end", "seed", "steps × batch", "test metric", "train img/s", "wall s"]
    cells = [
        [
            r.name,
            r.label,
            str(r.seed),
            f"{r.steps} × {r.batch_size}",
            _fmt(r.value, "{:.3f}"),
            _fmt(r.images_per_second, "{:.0f}"),
            _fmt(r.wall_seconds, "{:.0f}"),
        ]
        for r in runs
    ]
    return _markdown_table(head, cells, align="llrlrrr")


def render_markdown(runs: Sequence[Run], groups: Sequence[dict], figures: Sequence[str]) -> str:
    """results.md: the table, the notes on each column, the paper layout, runs, figures."""
    first = runs[0]
    config = load_config(first.workdir)
    data_name = config.data.name
    parts = [
        "# Results",
        "",
        f"{len(runs)} runs on `{data_name}` (eval split `{config.data.get('eval_split') or 'test'}`"
        f"), made by `resize_jax.tools.report` from the runs' workdirs alone.",
        "",
        main_table(groups),
        "",
        "- test metric: on the whole eval split after the last step; with several seeds, the "
        "mean and (min–max).",
        "- trainable params: front-end + network (BatchNorm statistics not counted).",
        "- GFLOPs/image: XLA's cost analysis of one image's forward pass, front-end included "
        "(a multiply-add counts 2; `resize_jax.models.flops`).",
        "- train img/s: median training throughput over the logged intervals after the first "
        "(which includes compilation); wall s/run: from the metric writer's start (after "
        "initialisation) to the final evaluation, per run (mean over seeds). Both depend on the "
        "machine and its load.",
    ]
    class_names = read_class_names(first.workdir)
    if class_names:
        parts += ["", f"Classes ({len(class_names)}): " + ", ".join(class_names) + "."]
    rows = paper_layout(groups)
    if rows:
        parts += ["", "## The learned-resizer paper's layout", "", _paper_table(rows)]
    parts += ["", "## Runs", "", _runs_table(runs)]
    if figures:
        parts += ["", "## Figures", ""]
        parts += [f"![{os.path.splitext(f)[0]}]({f})" for f in figures]
    return "\n".join(parts) + "\n"


def _forward(run: TrainedRun, images: np.ndarray) -> dict:
    apply = jax.jit(lambda v, x: run.model.apply(v, x, train=False))
    _, aux = apply(run.variables, images)
    frontend_aux = aux["frontend"]
    grid = frontend_aux.get("grid")
    if isinstance(grid, ops.SeparableGrid):
        grid = ops.separable_to_grid(grid)
    out = {k: np.asarray(v) for k, v in frontend_aux.items() if k in ("skip", "saliency")}
    out["resized"] = np.asarray(aux["resized"])
    if grid is not None:
        out["grid"] = np.asarray(grid)
    return out


def eval_images(config, count: int) -> np.ndarray:
    """The first `count` images of a run's eval split, f32[count, H, W, C] (value range)."""
    from resize_jax import data

    batch = next(iter(data.eval_iterator(config.data, batch_size=count)))
    return np.asarray(batch["image"][:count], np.float32)


def render_figures(
    runs: Sequence[Run], restored: dict[str, TrainedRun], out: str, count: int = 8
) -> list[str]:
    """Writes the PNG figures into `out`; returns their file names."""
    from resize_jax.tools import figures

    names = []
    groups = _groups(runs)
    curves = []
    for index, group in enumerate(groups):
        color = _COLORS[index % len(_COLORS)]
        for k, run in enumerate(group):
            label = run.label if len(group) == 1 else f"{run.label}, seed {run.seed}"
            curves.append(
                {
                    "label": label,
                    "color": color,
                    "linestyle": _LINESTYLES[k % len(_LINESTYLES)],
                    "loss": run.loss_curve,
                    "eval": run.eval_curve,
                }
            )
    metric_name = _metric_label(runs[0].metric)
    figures.learning_curves(
        os.path.join(out, "learning_curves.png"), curves, metric_label=f"test {metric_name}"
    )
    names.append("learning_curves.png")

    shown = [g[0] for g in groups if restored.get(g[0].workdir) is not None]
    if not shown:
        return names
    config = restored[shown[0].workdir].config
    try:
        images = eval_images(config, count)
    except Exception as error:  # The dataset may live on another machine.
        logging.warning("Image figures skipped: cannot read the eval split (%s).", error)
        return names
    value_range = tuple(config.data.get("value_range", (0.0, 1.0)))
    display = figures.to_display(images, value_range)
    seen = {}
    for run in shown:
        trained_run = restored[run.workdir]
        if tuple(trained_run.image_size) != tuple(images.shape[1:3]):
            continue  # Another dataset or input size: not comparable side by side.
        seen[run.name] = (run, _forward(trained_run, images))
    with_frontend = {
        f"{run.label}": figures.to_display(aux["resized"], value_range)
        for run, aux in seen.values()
        if run.frontend != "none"
    }
    if with_frontend:
        figures.frontend_outputs(
            os.path.join(out, "frontends.png"),
            display,
            with_frontend,
            title="What each front-end feeds the network (test images; pixels as the network "
            "sees them, clipped to the value range)",
        )
        names.append("frontends.png")
    for run, aux in seen.values():
        if run.frontend == "learned" and "skip" in aux:
            low, high = value_range
            scale = 1.0 / (high - low)
            trained_config = restored[run.workdir].config
            section = trained_config.frontend
            # `interpolation`: the field's name in runs trained before it became `method`.
            method = section.get("method", section.get("interpolation", "bilinear"))
            skip_label = f"{method} skip"
            figures.residual(
                os.path.join(out, "learned_residual.png"),
                display,
                (aux["skip"] - low) * scale,
                (aux["resized"] - low) * scale,
                title=f"{run.label} ({run.name}): the network's correction to its own "
                f"{skip_label} path",
                skip_label=skip_label,
            )
            names.append("learned_residual.png")
            break
    for run, aux in seen.values():
        if run.frontend == "saliency" and "grid" in aux:
            figures.saliency(
                os.path.join(out, "saliency.png"),
                display,
                aux["saliency"],
                aux["grid"],
                figures.to_display(aux["resized"], value_range),
                title=f"{run.label} ({run.name}): where it samples",
            )
            names.append("saliency.png")
            break
    return names


def build_report(workdirs: Sequence[str], out: str | None = None, *, figures: bool = True):
    """Reads every run and writes results.md, results.json and the figures into `out`.

    Returns (results.md text, results.json dict). Raises ValueError naming a workdir that
    is not a finished run.
    """
    workdirs = find_workdirs(workdirs)
    if out is None:
        out = os.path.commonpath([os.path.abspath(w) for w in workdirs])
        if len(workdirs) == 1:
            out = os.path.dirname(out)
    os.makedirs(out, exist_ok=True)
    runs, restored = [], {}
    for workdir in workdirs:
        summary, run = summarize(workdir)
        runs.append(summary)
        restored[workdir] = run
    runs = [run for group in _groups(runs) for run in group]
    groups = [_group_record(g) for g in _groups(runs)]
    names = render_figures(runs, restored, out) if figures else []
    markdown = render_markdown(runs, groups, names)
    results = {
        "metric": runs[0].metric,
        "groups": groups,
        "paper_layout": paper_layout(groups),
        "runs": [
            {k: v for k, v in dataclasses.asdict(r).items() if k not in ("group", "workdir")}
            for r in runs
        ],
        "figures": names,
    }
    with open(os.path.join(out, RESULTS_MD), "w") as f:
        f.write(markdown)
    with open(os.path.join(out, RESULTS_JSON), "w") as f:
        json.dump(results, f, indent=2)
    return markdown, results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m resize_jax.tools.report", description=__doc__.splitlines()[0]
    )
    parser.add_argument("workdirs", nargs="+", help="run workdirs, or directories of them")
    parser.add_argument("--out", default=None, help="output directory (default: common parent)")
    parser.add_argument("--no_figures", action="store_true", help="write the tables only")
    args = parser.parse_args(argv)
    try:
        markdown, _ = build_report(args.workdirs, args.out, figures=not args.no_figures)
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    print(markdown)


if __name__ == "__main__":
    main(sys.argv[1:])
