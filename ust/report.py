"""Result tables and figures from the benchmark CSVs in ``book/results``.

Introduced in the book's chapter *Results*. The CSVs are written by
``python -m ust benchmark`` (:func:`ust.experiments.run_benchmark`), by
``python -m ust baselines`` (:func:`ust.experiments.run_baselines`) and by
``benchmarks/dense_extraction.py``; this module only reads them, checks
that they are complete, and turns them into tables (pandas) and figures.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from ._io import is_missing
from .experiments import BASELINE_COLUMNS, FUSED, read_rows, summarize

__all__ = ["PAPER_MEANS", "RESULTS_DIR", "ResultsError", "narrow", "benchmark_settings", "check_complete",
           "auroc_table", "seed_table", "baseline_table", "load_benchmark", "comparison_table", "read_baselines",
           "class_bars", "wall_times", "teacher_ablation", "BUDGET_COLUMNS", "BUDGET_RUN", "BUDGET_VALIDATION",
           "ValidationName",
           "budget_run_key", "read_budget", "budget_runs", "replace_runs", "merge_budget_runs", "image_size_study",
           "choose_by_validation", "budget_plot", "training_length_table", "training_length_plot",
           "validation_judges", "short_run_table", "SHORT_RUN_COLUMNS", "SEARCH_FIXED", "setting_search",
           "settings_side_by_side",
           "SCALE_CHOICE_COLUMNS", "SCALE_CHOICE_RUN", "merge_scale_choice_rows", "read_scale_choice",
           "scale_choice_table", "AGGREGATION_COLUMNS", "AGGREGATION_RUN", "merge_aggregation_rows", "read_aggregation",
           "aggregation_table", "CAPACITY_COLUMNS", "merge_capacity_rows", "read_capacity", "capacity_table",
           "capacity_plot"]

#: Where the book keeps its result tables (relative to the repository root).
RESULTS_DIR = Path(__file__).resolve().parent.parent / "book" / "results"

#: Mean image AUROC over the ten classes reported for the paper's one-class
#: experiments, as later papers cite them (MNIST about 0.99, CIFAR-10 about 0.82).
PAPER_MEANS = {"mnist": 0.99, "cifar10": 0.82}


#: One colour per detector in every figure ("students (p=33)" uses the entry "students").
_DETECTOR_COLORS = {"students": "C0", "autoencoder": "C1", "knn_pixels": "C2", "knn_efficientnet": "C3",
                    "knn_teacher": "C4"}


class ResultsError(ValueError):
    """A result CSV is missing, malformed or incomplete."""


def narrow(styler, *, header_width: str = "4em", font_size: str = "0.85em"):
    """A table styler whose column headers wrap, so that a wide table fits the book's page.

    Introduced in the book's chapter *Results*.

    Args:
        styler: A :class:`pandas.io.formats.style.Styler` (``frame.style``).
        header_width: About where a column header wraps (its padding
            included); a word longer than this widens its column instead.
        font_size: The table's font size.

    Returns:
        The same styler, for chaining.
    """
    return (styler.set_table_attributes(f'style="font-size: {font_size}"')
            .set_table_styles([{"selector": "td, th", "props": "padding: 2px 6px"},
                               # column headers only: a row label (a class name such as "automobile")
                               # cannot wrap, and a narrow row-header column would let it run into the values
                               # a width, not a max-width: a table cell grows to its longest word, where a
                               # max-width let a long word ("strokes", "difference") run into the next header
                               {"selector": "th.col_heading", "props": f"width: {header_width}; "
                                "white-space: normal; vertical-align: bottom; padding-left: 0.5em"}]))


def benchmark_settings(csv_path: str | os.PathLike) -> dict[str, Any]:
    """The settings ``python -m ust benchmark`` wrote next to ``csv_path`` (the ``.json`` file).

    Raises:
        ResultsError: The ``.json`` file is missing or unreadable.
    """
    path = Path(csv_path).with_suffix(".json")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ResultsError(f"{path} is missing or not JSON ({error}); the benchmark writes it next to the CSV. "
                           "Run the command in book/results/README.md again.") from None


def check_complete(rows: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]) -> None:
    """Check that a benchmark CSV has a row for every class, seed, scale and component its settings asked for.

    Args:
        rows: From :func:`ust.experiments.read_rows`.
        settings: From :func:`benchmark_settings`.

    Raises:
        ResultsError: Naming the first missing (class, seed, scale, components).
    """
    args = settings["arguments"]
    scales = [str(p) for p in args["scales"]] + ([FUSED] if len(args["scales"]) > 1 else [])
    components = args.get("components") or ["both", "error", "variance"]
    have = {(int(r["normal_class"]), int(r["seed"]), str(r["scale"]), r["components"]) for r in rows}
    for label in args["classes"]:
        for seed in args["seeds"]:
            for scale in scales:
                for comp in components:
                    if (int(label), int(seed), scale, comp) not in have:
                        raise ResultsError(f"no row for class {label}, seed {seed}, scale {scale}, components "
                                           f"{comp}: the run stopped early. Run its command again; it resumes.")


def read_baselines(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a baselines CSV (:data:`ust.experiments.BASELINE_COLUMNS`), AUROC as float.

    Raises:
        ResultsError: Missing columns.
    """
    import csv

    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in BASELINE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ResultsError(f"{path} lacks the columns {missing}; is it a `python -m ust baselines` CSV?")
        return [dict(r, normal_class=int(r["normal_class"]), auroc=float(r["auroc"]),
                     seconds=float(r["seconds"])) for r in reader]


def auroc_table(rows: Sequence[Mapping[str, Any]], components: str = "both"):
    """Image AUROC per class (rows) and scale (columns), with the mean over classes as the last row.

    Args:
        rows: Benchmark rows (:func:`ust.experiments.read_rows`).
        components: Which score: ``"both"`` (Eq. 12), ``"error"`` or ``"variance"``.

    Returns:
        A :class:`pandas.DataFrame` of mean AUROCs over seeds, index
        ``class_name``, columns ``"p=17"``, ..., ``"fused"``; and a second one
        with the standard deviations over seeds (NaN with one seed).
    """
    import pandas as pd

    summary = pd.DataFrame([r for r in summarize(rows) if r["components"] == components])
    if summary.empty:
        raise ResultsError(f"no rows with components={components!r}.")
    summary["column"] = [s if s == FUSED else f"p={s}" for s in summary["scale"]]
    order = list(dict.fromkeys(summary["class_name"]))
    scales = sorted({c for c in summary["column"] if c != FUSED}, key=lambda c: int(c[2:]))
    scales += [FUSED] if FUSED in set(summary["column"]) else []
    mean = summary.pivot(index="class_name", columns="column", values="auroc_mean").loc[order, scales]
    std = summary.pivot(index="class_name", columns="column", values="auroc_std").loc[order, scales]
    mean.columns.name = std.columns.name = None
    return mean, std


def seed_table(rows: Sequence[Mapping[str, Any]], scale: int | str, components: str = "both"):
    """AUROC per class for each seed at one scale, and how far the seeds lie apart.

    Introduced in the book's chapter *Results* (how firm is a number?).

    Args:
        rows: Benchmark rows (:func:`ust.experiments.read_rows`) with at least one seed.
        scale: A patch size, or ``"fused"``.
        components: Which score (see :func:`auroc_table`).

    Returns:
        A :class:`pandas.DataFrame`, index ``class_name`` with a ``mean`` row
        (the mean over classes of each column), columns ``seed 0``,
        ``seed 1``, ... and ``range`` (largest minus smallest seed's AUROC of
        the row; for the ``mean`` row, that of the class means).

    Raises:
        ResultsError: No rows at this scale and component.
    """
    import pandas as pd

    mine = [r for r in rows if str(r["scale"]) == str(scale) and r["components"] == components]
    if not mine:
        raise ResultsError(f"no rows at scale {scale!r} with components={components!r}.")
    frame = pd.DataFrame(mine).sort_values(["normal_class", "seed"], kind="stable")
    table = frame.pivot(index="class_name", columns="seed", values="auroc")
    table = table.loc[list(dict.fromkeys(frame["class_name"]))]
    table.loc["mean"] = table.mean()
    table.columns = [f"seed {s}" for s in table.columns]
    table["range"] = table.max(axis=1) - table.min(axis=1)
    table.index.name = "class_name"
    return table


def seed_means(rows: Sequence[Mapping[str, Any]], components: str = "both"):
    """Mean AUROC over the classes for each seed (columns) and scale (rows), and their range.

    Introduced in the book's chapter *Results* (how firm is a mean?).

    Args:
        rows: Benchmark rows (:func:`ust.experiments.read_rows`).
        components: Which score (see :func:`auroc_table`).

    Returns:
        A :class:`pandas.DataFrame`, index ``"p=17"``, ... and ``"fused"``
        (the scales present, in that order), columns as in :func:`seed_table`.

    Raises:
        ResultsError: No rows, or a scale without rows of ``components``.
    """
    import pandas as pd

    scales = sorted({str(r["scale"]) for r in rows if str(r["scale"]) != FUSED}, key=int)
    scales += [FUSED] if any(str(r["scale"]) == FUSED for r in rows) else []
    if not scales:
        raise ResultsError("no benchmark rows to summarise; pass the rows of ust.report.load_benchmark(csv).")
    return pd.DataFrame({(s if s == FUSED else f"p={s}"): seed_table(rows, s, components).loc["mean"]
                         for s in scales}).T


def baseline_table(rows: Sequence[Mapping[str, Any]]):
    """Baseline AUROC per class (rows) and method (columns), with a ``mean`` row.

    Returns:
        A :class:`pandas.DataFrame`, index ``class_name``.
    """
    import pandas as pd

    frame = pd.DataFrame(rows)
    order = list(dict.fromkeys(frame.sort_values("normal_class")["class_name"]))
    table = frame.pivot(index="class_name", columns="method", values="auroc").loc[order]
    table.loc["mean"] = table.mean()
    table.columns.name = None
    return table


def comparison_table(students, baselines=None, paper: float | None = None):
    """Mean AUROC of every detector side by side: the students' columns, the baselines, the paper.

    Args:
        students: The mean table of :func:`auroc_table`.
        baselines: The table of :func:`baseline_table`, or ``None``.
        paper: The paper's reported mean (:data:`PAPER_MEANS`), or ``None``.

    Returns:
        A :class:`pandas.Series`, sorted from best to worst.
    """
    import pandas as pd

    means = {f"students {c}": students.loc["mean", c] for c in students.columns}
    if baselines is not None:
        means.update({f"baseline {c}": baselines.loc["mean", c] for c in baselines.columns})
    if paper is not None:
        means["paper (reported)"] = paper
    return pd.Series(means, name="mean AUROC").sort_values(ascending=False)


def class_bars(tables: Mapping[str, Any], *, ax=None, title: str = "AUROC per normal class",
               reference: float | None = None):
    """Grouped bars: one group per normal class, one bar per detector.

    Args:
        tables: ``{detector name: pandas.Series of AUROC indexed by class name}``
            (e.g. a column of :func:`auroc_table` or :func:`baseline_table`);
            a ``mean`` entry is dropped.
        ax: Axes to draw into (a new figure otherwise).
        title: Axes title.
        reference: Draw a dashed line at this AUROC (e.g. the paper's mean).

    Returns:
        The :class:`~matplotlib.axes.Axes`.
    """
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    frame = pd.concat([pd.DataFrame({"class": s.index, "AUROC": s.values, "detector": name})
                       for name, s in tables.items()])
    frame = frame[frame["class"] != "mean"]
    if ax is None:
        _, ax = plt.subplots(figsize=(11, 4.6), layout="constrained")
    palette = {name: _DETECTOR_COLORS.get(name.split(" ")[0], "0.5") for name in tables}
    sns.barplot(data=frame, x="class", y="AUROC", hue="detector", palette=palette, ax=ax)
    low = max(0.0, float(frame["AUROC"].min()) - 0.05)
    ax.set_ylim(low, 1.0)
    ax.set_xlabel("normal class")
    ax.set_ylabel("image AUROC")
    ax.set_title(title)
    if reference is not None:
        ax.axhline(reference, color="0.3", ls="--", lw=1, label=f"paper's mean ({reference:.2f})")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize="small", ncols=5, frameon=False)
    return ax


def teacher_ablation(rows: Sequence[Mapping[str, Any]], scale: int | str):
    """Mean AUROC per class for each teacher and score component: the ablation "with and without L_m".

    Introduced in the book's chapter *Results*. Pass the rows of several
    benchmark runs that differ only in their teacher (for example the
    shipped ``kc`` and ``kmc`` teachers, Sec. 3.1); they are told apart by
    their ``teacher`` column.

    Args:
        rows: Benchmark rows of all runs together (:func:`ust.experiments.read_rows`).
        scale: The patch size to compare (a column of :func:`auroc_table`).

    Returns:
        A :class:`pandas.DataFrame`, index ``class_name`` (with the ``mean``
        row last), columns a two-level index ``(component, teacher)`` with
        the components in the order ``both``, ``error``, ``variance``.

    Raises:
        ResultsError: Fewer than two teachers, or a teacher without rows at
            this scale.
    """
    import pandas as pd

    teachers = list(dict.fromkeys(str(r["teacher"]) for r in rows))
    if len(teachers) < 2:
        raise ResultsError(f"an ablation needs the rows of at least two teachers; got {teachers}.")
    column = f"p={scale}"
    parts = {}
    for comp in ("both", "error", "variance"):
        for name in teachers:
            mine = [r for r in rows if str(r["teacher"]) == name and r["components"] == comp]
            if not mine:
                continue
            table = auroc_table(mine, components=comp)[0]
            if column not in table.columns:
                raise ResultsError(f"teacher {name!r} has no rows at scale {scale}; it has {list(table.columns)}.")
            parts[(comp, name)] = table[column]
    frame = pd.DataFrame(parts)
    frame.columns.names = ["component", "teacher"]
    return frame


def wall_times(rows: Sequence[Mapping[str, Any]]):
    """Training and scoring seconds per class and scale (seed 0; the fused rows are sums).

    Returns:
        A :class:`pandas.DataFrame` with columns ``class_name``, ``scale``,
        ``train_seconds``, ``score_seconds``, ``n_test``.
    """
    import pandas as pd

    frame = pd.DataFrame([r for r in rows if r["components"] == "both" and int(r["seed"]) == min(
        int(q["seed"]) for q in rows)])
    return frame[["class_name", "scale", "train_seconds", "score_seconds", "n_test"]].reset_index(drop=True)


#: Columns of the training-length CSV written by ``benchmarks/student_budget.py``.
#: ``threads`` is the number of CPU threads the run trained with (``train_seconds`` depends on it);
#: ``image_size`` the size the images were trained and scored at (``"28x28"``: MNIST's own);
#: ``lr_schedule`` one of :data:`ust.training.LR_SCHEDULES`.
BUDGET_COLUMNS = ("dataset", "normal_class", "patch_size", "teacher", "n_students", "batch_size", "lr", "lr_schedule",
                  "threads", "image_size", "iteration", "train_seconds", "val_auroc", "val_auroc_rotate",
                  "val_auroc_splice", "val_auroc_swap", "auroc", "auroc_error", "auroc_variance", "n_test", "hardware")


class ValidationName(NamedTuple):
    """How tables and figures name one validation score of the budget CSV."""

    name: str  #: in legends and as a row label ("synthetic strokes")
    word: str  #: one word for column headers ("steps by strokes")


#: The validation scores of the budget CSV: synthetic strokes (a local defect), quarter turns,
#: spliced images and swapped halves (global ones; :data:`ust.data.GLOBAL_KINDS`); empty where a
#: run was made before the column existed or without that kind.
BUDGET_VALIDATION = {"val_auroc": ValidationName("synthetic strokes", "strokes"),
                     "val_auroc_rotate": ValidationName("quarter turns", "turns"),
                     "val_auroc_splice": ValidationName("spliced images", "splices"),
                     "val_auroc_swap": ValidationName("swapped halves", "swaps")}

#: The settings that tell one training run of the budget CSV from another (see :func:`budget_runs`).
BUDGET_RUN = ("dataset", "normal_class", "patch_size", "teacher", "n_students", "batch_size", "lr", "lr_schedule",
              "threads", "image_size")


def budget_run_key(row: Mapping[str, Any]) -> tuple:
    """The training run a budget row belongs to: its :data:`BUDGET_RUN` values.

    Args:
        row: A row of the budget CSV (a mapping, or a :class:`pandas.Series`).

    Returns:
        The tuple of its :data:`BUDGET_RUN` values; two rows with equal keys
        are checkpoints of the same run.
    """
    return tuple(row[k] for k in BUDGET_RUN)


def _read_table(path: str | os.PathLike, columns: Sequence[str], script: str, dtype=None):
    """A result CSV made by ``script`` as a DataFrame, checked to exist, have ``columns`` and rows."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"{path} does not exist: run {script} (see book/results/README.md).")
    frame = pd.read_csv(path, dtype=dtype)
    missing = [c for c in columns if c not in frame.columns]
    if missing or frame.empty:
        raise ResultsError(f"{path} lacks the columns {missing} or has no rows; run {script} again.")
    return frame


def read_budget(path: str | os.PathLike):
    """The training-length table: one row per class and checkpoint.

    Args:
        path: CSV written by ``benchmarks/student_budget.py``.

    Returns:
        A :class:`pandas.DataFrame` with :data:`BUDGET_COLUMNS`, the runs in
        the order they first appear in the file, each sorted by iteration.

    Raises:
        ResultsError: A missing file or missing columns.
    """
    path = Path(path)
    frame = _read_table(path, BUDGET_COLUMNS, "benchmarks/student_budget.py")
    bad = sorted(set(frame.loc[~frame["image_size"].astype(str).str.fullmatch(r"\d+x\d+"), "image_size"].astype(str)))
    if bad:
        raise ResultsError(f"{path}: image_size must read HxW (e.g. 28x28); got {bad}. "
                           "Fix the column or run benchmarks/student_budget.py again.")
    run = frame.apply(budget_run_key, axis=1)
    frame["_run"] = run.map({key: i for i, key in enumerate(dict.fromkeys(run))})
    return frame.sort_values(["_run", "iteration"], kind="stable").drop(columns="_run").reset_index(drop=True)


_BUDGET_LABELS = {"patch_size": "p = {}".format, "teacher": "teacher {}".format, "n_students": "M = {}".format,
                  "batch_size": "batch {}".format, "lr": "lr {:g}".format,
                  "lr_schedule": "{} schedule".format,
                  "threads": lambda n: f"{n} thread{'s' * (n != 1)}", "image_size": "{}".format}


def budget_runs(frame):
    """The training runs of a budget table, each with a short title.

    Args:
        frame: From :func:`read_budget`.

    Returns:
        A list of ``(title, rows)``: rows of one run (one set of
        :data:`BUDGET_RUN` values), in the order of the table; the title
        names the dataset and class, and every other setting that differs
        between the runs (e.g. ``batch 4``, ``2 threads``).
    """
    varied = [k for k in _BUDGET_LABELS if frame[k].nunique() > 1]
    runs = []
    for key, curve in frame.groupby(frame.apply(budget_run_key, axis=1), sort=False):
        settings = dict(zip(BUDGET_RUN, key))
        title = f"{settings['dataset']}: normal class {settings['normal_class']}"
        title += "".join(f", {_BUDGET_LABELS[k](settings[k])}" for k in varied)
        runs.append((title, curve))
    return runs


def replace_runs(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]], key) -> list:
    """Rows of two invocations of a benchmark in one table: ``new`` replaces the runs of ``old`` it repeats.

    A repeated run takes the place of the old one, so that the chapter's
    tables and panels keep their order when a run is measured again.

    Args:
        old: Rows already in the CSV.
        new: Rows just measured.
        key: ``key(row)``: the run a row belongs to (e.g. :func:`budget_run_key`).

    Returns:
        The rows of ``old``, each run that ``new`` repeats replaced where it
        stood by its rows in ``new``; then the runs of ``new`` that ``old`` lacks.
    """
    fresh: dict[tuple, list] = {}
    for row in new:
        fresh.setdefault(key(row), []).append(row)
    merged: list = []
    for row in old:
        k = key(row)
        if k not in fresh:
            merged.append(row)
        elif fresh[k]:
            merged.extend(fresh[k])
            fresh[k] = []                   # placed: the run's other old rows are dropped
    return merged + [row for rows in fresh.values() for row in rows]


def merge_budget_runs(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list:
    """Budget rows of two invocations in one table (:func:`replace_runs` by :data:`BUDGET_RUN`)."""
    return replace_runs(old, new, budget_run_key)


def image_size_study(frame):
    """Split a budget table into the runs at native image size and a comparison with upscaled runs.

    Introduced in the book's chapter *Results* (does a larger image help?).
    A dataset's native size is its smallest ``image_size`` in the table
    (e.g. ``28x28`` for MNIST); runs at a larger size were trained and
    scored on bilinearly upscaled images (``--image-size``).

    Args:
        frame: From :func:`read_budget`.

    Returns:
        ``(native, comparison)``: the rows at native size (the same
        columns), and one row per checkpoint of each upscaled run with the
        matching native run (same dataset, class, patch size, students,
        batch, learning rate, threads and iteration): columns
        ``dataset, normal_class, iteration``, then ``image_size``, the
        validation columns of :data:`BUDGET_VALIDATION`, ``auroc``,
        ``auroc_error``, ``auroc_variance``, ``train_seconds`` and
        ``hardware`` (runs on different CPUs differ in their last digits, or more) for
        the native (suffix `` native``) and the upscaled run (`` upscaled``).
        Checkpoints without a native counterpart are left out.
    """
    sides = frame["image_size"].str.split("x", expand=True).astype(int)
    pixels = sides[0] * sides[1]
    is_native = pixels == pixels.groupby(frame["dataset"]).transform("min")
    native, upscaled = frame[is_native].reset_index(drop=True), frame[~is_native]
    keys = [k for k in BUDGET_RUN if k != "image_size"] + ["iteration"]
    values = ["image_size", *BUDGET_VALIDATION, "auroc", "auroc_error", "auroc_variance", "train_seconds", "hardware"]
    comparison = native[keys + values].merge(upscaled[keys + values], on=keys, suffixes=(" native", " upscaled"))
    columns = ["dataset", "normal_class", "iteration"] + [f"{v}{s}" for s in (" native", " upscaled") for v in values]
    return native, comparison[columns]


def choose_by_validation(curve, tolerance: float = 0.005, column: str = "val_auroc"):
    """The checkpoint a user would pick without test data.

    Introduced in the book's chapter *Results*: the first (shortest)
    checkpoint whose validation AUROC (synthetic anomalies on validation
    images of the normal class, :func:`~ust.experiments.synthetic_validation_auroc`)
    lies within ``tolerance`` of the best validation AUROC of the run.

    Args:
        curve: Rows of one class (a DataFrame or a list of mappings) with
            ``iteration`` and ``column``.
        tolerance: How much validation AUROC may be given up for a shorter run.
        column: The validation score, a key of :data:`BUDGET_VALIDATION`.

    Returns:
        The chosen row, as a mapping.

    Raises:
        ResultsError: No checkpoints, a negative ``tolerance``, a ``column``
            that is not a validation score, or no checkpoint with a value in it.
    """
    if tolerance < 0:
        raise ResultsError(f"tolerance must be >= 0 (the validation AUROC one may give up); got {tolerance}.")
    if column not in BUDGET_VALIDATION:
        raise ResultsError(f"{column!r} is not a validation score of the budget table; choose one of "
                           f"{sorted(BUDGET_VALIDATION)} ({', '.join(v.name for v in BUDGET_VALIDATION.values())}).")
    rows = curve.to_dict("records") if hasattr(curve, "to_dict") else list(curve)
    if not rows:
        raise ResultsError("choose_by_validation needs at least one checkpoint.")
    measured = [r for r in rows if not is_missing(r.get(column))]
    if not measured:
        raise ResultsError(f"no checkpoint of this run has a value in {column!r} (it was made before the column "
                           "existed); run benchmarks/student_budget.py again or choose by 'val_auroc'.")
    best = max(r[column] for r in measured)
    return next(r for r in sorted(measured, key=lambda r: r["iteration"]) if r[column] >= best - tolerance)


def budget_plot(frame, *, tolerance: float = 0.005):
    """AUROC against training time, one panel per run (:func:`budget_runs`), the validation choice marked.

    Args:
        frame: From :func:`read_budget`.
        tolerance: See :func:`choose_by_validation`.

    Returns:
        The :class:`~matplotlib.figure.Figure`, at most three panels a row.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    runs = budget_runs(frame)
    n_cols = min(3, len(runs))
    n_rows = -(-len(runs) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(5.2 * n_cols, 3.9 * n_rows), layout="constrained",
                             squeeze=False, sharey=True)
    validation = [(column, f"validation: {label.name}", color, "--")
                  for (column, label), color in zip(BUDGET_VALIDATION.items(), ("C2", "C5", "C6", "C9"))
                  if column in frame and not frame[column].isna().all()]
    lines = validation + [("auroc", "test: error + variance", "C0", "-"),
                          ("auroc_error", "test: error only", "C1", "-"),
                          ("auroc_variance", "test: variance only", "C4", ":")]
    for ax, (title, curve) in zip(axes.flat, runs):
        for column, name, color, style in lines:
            ax.plot(curve["train_seconds"], curve[column], marker="o", ms=3, color=color, ls=style, label=name)
        pick = choose_by_validation(curve, tolerance)
        ax.axvline(pick["train_seconds"], color="0.4", lw=1, ls="-.", label="chosen on validation")
        ax.annotate(f"{int(pick['iteration'])} steps", (pick["train_seconds"], 0.02),
                    xycoords=("data", "axes fraction"), xytext=(-4, 0), textcoords="offset points", ha="right",
                    fontsize="small", color="0.3")
        ax.set_xscale("log")
        ax.set_xticks(curve["train_seconds"], [f"{t:.0f}" for t in curve["train_seconds"]], minor=False)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("student training time (s, log scale; ticks at the pauses)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(runs):]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel("image AUROC")
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="outside lower center", ncol=5, fontsize="small")
    return fig


def _one_run_per_class(frame, caller: str, run: Sequence[str] = BUDGET_RUN,
                       select: str = "one teacher, batch size, image size and patch size"):
    """``frame`` grouped by class in file order, checked to hold one training run (equal ``run`` values) per class."""
    if frame.empty:
        raise ResultsError(f"{caller} needs at least one run.")
    runs = frame.apply(lambda row: tuple(row[k] for k in run), axis=1).groupby(frame["normal_class"]).nunique()
    if (runs > 1).any():
        raise ResultsError(f"classes {sorted(runs[runs > 1].index.tolist())} have several training runs; pass one "
                           f"run per class (select {select} first).")
    return frame.groupby("normal_class", sort=False)


def _one_budget_run_per_class(frame, caller: str):
    """:func:`_one_run_per_class` of a budget table, checked to have paused at the same checkpoints in every class."""
    per_class = _one_run_per_class(frame, caller)
    checkpoints = {tuple(sorted(curve["iteration"])) for _, curve in per_class}
    if len(checkpoints) > 1:
        raise ResultsError(f"the runs paused at different checkpoints {sorted(checkpoints)}; rerun "
                           "benchmarks/student_budget.py with the same --checkpoints for every class.")
    return per_class


def validation_judges(frame, *, tolerance: float = 0.005):
    """How well each validation anomaly judges training length, measured against the test AUROC.

    Introduced in the book's chapter *Results* ("A harder validation
    anomaly"). A validation score is only useful if it moves with the test
    AUROC: rises when training helps, stays when it does not. For each
    validation score of :data:`BUDGET_VALIDATION` measured at every
    checkpoint of every class, over the classes of ``frame``:

    * ``"val at <n> steps"``: its mean over the classes at each checkpoint
      (near 0.5: it cannot tell the anomalies from normal images; near 1
      early on: saturated, it has nothing left to say);
    * ``"same direction"``: the fraction of consecutive checkpoint pairs,
      over all classes, in which it and the test AUROC change in the same
      direction (both up, both down, or both unchanged);
    * ``"test at choice"``: the mean test AUROC at the checkpoint it
      chooses (:func:`choose_by_validation`);
    * ``"regret"``: the mean over classes of the best test AUROC of any
      checkpoint minus the one at its choice (0: it always chose the best
      checkpoint there was).

    The test AUROC judges the validation scores here; it never chooses.

    Args:
        frame: From :func:`read_budget`, one training run per class, all
            with the same (at least two) checkpoints.
        tolerance: See :func:`choose_by_validation`.

    Returns:
        A :class:`pandas.DataFrame` with one row per validation score
        (index: its name in :data:`BUDGET_VALIDATION`) and the columns above.

    Raises:
        ResultsError: An empty frame, several runs for one class, classes
            with different checkpoints, fewer than two checkpoints, or no
            validation score measured at every checkpoint.
    """
    import pandas as pd

    per_class = _one_budget_run_per_class(frame, "validation_judges")
    steps = sorted(int(n) for n in frame["iteration"].unique())
    if len(steps) < 2:
        raise ResultsError(f"validation_judges compares checkpoints and needs at least two; got {steps}.")
    complete = [c for c in BUDGET_VALIDATION if c in frame and frame[c].notna().all()]
    if not complete:
        raise ResultsError("no validation score was measured at every checkpoint of every class; run "
                           "benchmarks/student_budget.py with --validation for all of them.")
    curves = [curve.sort_values("iteration") for _, curve in per_class]
    rows = {}
    for column in complete:
        row = {f"val at {n} steps": frame.loc[frame["iteration"] == n, column].mean() for n in steps}
        same = [np.sign(np.diff(curve[column].to_numpy())) == np.sign(np.diff(curve["auroc"].to_numpy()))
                for curve in curves]
        chosen = [choose_by_validation(curve, tolerance, column)["auroc"] for curve in curves]
        row["same direction"] = float(np.concatenate(same).mean())
        row["test at choice"] = float(np.mean(chosen))
        row["regret"] = float(np.mean([curve["auroc"].max() - c for curve, c in zip(curves, chosen)]))
        rows[BUDGET_VALIDATION[column].name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def training_length_table(frame, *, tolerance: float = 0.005):
    """Test AUROC of every class at each checkpoint, and at the checkpoint each validation score chooses.

    Introduced in the book's chapter *Results* (training length across all
    classes). The choice uses training-class data only
    (:func:`choose_by_validation`); the test AUROC at the chosen checkpoint
    is what a user who never looked at the test split would report.

    Args:
        frame: From :func:`read_budget`, one training run per class, all
            with the same checkpoints.
        tolerance: See :func:`choose_by_validation`.

    Returns:
        A :class:`pandas.DataFrame`, index ``normal_class`` with a ``mean``
        row last (the mean over classes of every column; NaN where a class
        lacks the value). Columns: ``"<n> steps"``, the test AUROC of the
        combined score after ``n`` steps, one per checkpoint; then, for each
        validation score of :data:`BUDGET_VALIDATION` that the runs
        measured, ``"steps by <score>"`` (the chosen checkpoint) and
        ``"test by <score>"`` (the test AUROC there), with ``<score>``
        ``strokes``, ``turns``, ``splices`` or ``swaps``.

    Raises:
        ResultsError: An empty frame, several runs for one class, or classes
            with different checkpoints.
    """
    import pandas as pd

    per_class = _one_budget_run_per_class(frame, "training_length_table")
    measured = [(column, label.word) for column, label in BUDGET_VALIDATION.items()
                if column in frame and not frame[column].isna().all()]
    rows = {}
    for label, curve in per_class:
        row = {f"{int(r['iteration'])} steps": r["auroc"] for _, r in curve.sort_values("iteration").iterrows()}
        for column, short in measured:
            try:
                pick = choose_by_validation(curve, tolerance, column)
            except ResultsError:                      # this run predates the column
                pick = {"iteration": float("nan"), "auroc": float("nan")}
            row[f"steps by {short}"], row[f"test by {short}"] = pick["iteration"], pick["auroc"]
        rows[label] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.loc["mean"] = table.mean(skipna=False)
    table.index.name = "normal_class"
    return table


# what short_run_table can report of each reference's longest run
SHORT_RUN_COLUMNS = ("steps", "seconds", "AUROC", "difference")


def short_run_table(short, references, *, reference_columns: Sequence[str] = SHORT_RUN_COLUMNS):
    """Each class's short training run against the longest run of that class in one or more reference tables.

    Introduced in the book's chapter *Results* ("Two minutes, spent
    better"): how close a run that fits a time budget comes to training
    much longer. Of a class's pauses in a reference table the one with the
    most steps is its longest run (of several with that many steps, the one
    with the highest test AUROC, so the comparison errs against the short
    run).

    Args:
        short: From :func:`read_budget`, one training run per class, each
            paused once (its end).
        references: From :func:`read_budget`, the long runs (any number per
            class) of the same dataset; or ``{name: table}`` to compare with
            several, e.g. long runs of the same setting and of another. A
            single table is named ``"long"``.
        reference_columns: Which of :data:`SHORT_RUN_COLUMNS` to report
            for each reference (all four by default), e.g. ``("AUROC",
            "difference")`` when the text gives the long runs' lengths.

    Returns:
        A :class:`pandas.DataFrame`, index ``normal_class`` with a ``mean``
        row last, columns ``steps``, ``seconds`` and ``AUROC`` (the short
        run: its steps, training time and test AUROC), then for each
        reference ``"{name}: steps"``, ``"{name}: seconds"`` and
        ``"{name}: AUROC"`` (the longest run) and ``"{name}: difference"``
        (short minus long AUROC), those of ``reference_columns`` only, in
        that order. In the mean row a step column holds the classes' common
        step count, and stays empty where they differ.

    Raises:
        ResultsError: An empty ``short`` or no reference, several runs or
            pauses for one class, a class that a reference lacks, or an
            unknown name in ``reference_columns``.
    """
    import pandas as pd

    if not isinstance(references, Mapping):
        references = {"long": references}
    if not references:
        raise ResultsError("short_run_table needs at least one reference table of long runs.")
    unknown = [c for c in reference_columns if c not in SHORT_RUN_COLUMNS]
    if unknown or isinstance(reference_columns, str):
        raise ResultsError(f"reference_columns must name some of {', '.join(SHORT_RUN_COLUMNS)}; got "
                           f"{reference_columns!r}.")
    rows = {}
    for label, run in _one_run_per_class(short, "short_run_table"):
        if len(run) != 1:
            raise ResultsError(f"the short run of class {label} paused {len(run)} times; short_run_table compares "
                               "the end of a run: pass each run's last pause only.")
        end = run.iloc[0]
        rows[label] = {"steps": end["iteration"], "seconds": end["train_seconds"], "AUROC": end["auroc"]}
        for name, reference in references.items():
            mine = reference[reference["normal_class"] == label]
            if mine.empty:
                raise ResultsError(f"class {label} has no run in the reference table {name!r}; add its long run "
                                   "(benchmarks/student_budget.py) or drop the class.")
            longest = mine[mine["iteration"] == mine["iteration"].max()].sort_values("auroc").iloc[-1]
            values = {"steps": longest["iteration"], "seconds": longest["train_seconds"], "AUROC": longest["auroc"],
                      "difference": end["auroc"] - longest["auroc"]}
            rows[label].update({f"{name}: {column}": values[column] for column in reference_columns})
    table = pd.DataFrame.from_dict(rows, orient="index")
    mean = table.mean()
    for column in table.columns[table.columns.str.endswith("steps")]:
        # a mean of step counts that differ between classes describes no run
        mean[column] = table[column].iloc[0] if table[column].nunique() == 1 else float("nan")
    table.loc["mean"] = mean
    table.index.name = "normal_class"
    return table


# what a setting search holds fixed: its candidates differ in batch size, learning rate, schedule and steps only
SEARCH_FIXED = ("dataset", "normal_class", "patch_size", "teacher", "n_students", "threads", "image_size")


def setting_search(search, reference, *, iteration: int):
    """A search over training settings, each class's candidates led by the reference run paused at ``iteration``.

    Introduced in the book's chapter *Results* ("Two minutes, spent
    better"): candidate settings are judged against the setting they would
    replace, at about the same training time. The reference's row of each
    class is its pause at ``iteration`` with the candidates' fixed values
    (:data:`SEARCH_FIXED`: dataset, class, patch size, teacher, ``M``,
    threads and image size).

    Args:
        search: From :func:`read_budget`, the candidates' runs.
        reference: From :func:`read_budget`, e.g. ``training_length.csv``.
        iteration: The reference's pause to compare with, e.g. 400 steps.

    Returns:
        A :class:`pandas.DataFrame` with the columns of :data:`BUDGET_COLUMNS`
        and a fresh index: the classes in the order ``search`` first names
        them, each with its reference row first, then its candidates in file
        order.

    Raises:
        ResultsError: An empty ``search``, candidates of one class that
            differ in a fixed value, or a class whose reference run did not
            pause at ``iteration`` (or several reference runs that did).
    """
    import pandas as pd

    if search.empty:
        raise ResultsError("setting_search needs at least one candidate run.")
    parts = []
    for label, candidates in search.groupby("normal_class", sort=False):
        fixed = candidates[list(SEARCH_FIXED)].drop_duplicates()
        if len(fixed) > 1:
            raise ResultsError(f"the candidates of class {label} differ in more than batch size, learning rate "
                               f"and schedule:\n{fixed.to_string(index=False)}\nsearch one setting at a time.")
        same = (reference[list(SEARCH_FIXED)] == fixed.iloc[0]).all(axis=1) & (reference["iteration"] == iteration)
        if same.sum() != 1:
            raise ResultsError(f"class {label}: {int(same.sum())} reference runs paused at {iteration} steps with "
                               f"the candidates' {', '.join(SEARCH_FIXED[2:])}; exactly one is needed (run "
                               f"benchmarks/student_budget.py --checkpoints {iteration} with those settings).")
        parts += [reference[same], candidates]
    return pd.concat(parts, ignore_index=True)


def settings_side_by_side(runs, names: Mapping[tuple, str], columns: Sequence[str]):
    """Each class's settings side by side: one column per score and setting.

    Introduced in the book's chapter *Results* ("Two minutes, spent
    better"), to read :func:`setting_search` across classes.

    Args:
        runs: From :func:`setting_search` (or :func:`read_budget`): one run
            per class and setting.
        names: A short name for each setting, keyed by ``(batch_size, lr,
            lr_schedule)``, e.g. ``{(8, 1e-3, "constant"): "old"}``; the
            columns follow its order.
        columns: The scores to show, e.g. ``("val_auroc", "auroc")``.

    Returns:
        A :class:`pandas.DataFrame` indexed by ``normal_class`` in the order
        of ``runs``, with the columns ``(score, name)`` for every score of
        ``columns`` and every name of ``names``.

    Raises:
        ResultsError: A run whose setting ``names`` does not name, or a
            class with two runs of one setting.
    """
    import pandas as pd

    keys = list(zip(runs["batch_size"], runs["lr"], runs["lr_schedule"]))
    unnamed = sorted({key for key in keys if key not in names}, key=str)
    if unnamed:
        raise ResultsError(f"settings_side_by_side has no name for the settings (batch_size, lr, lr_schedule) "
                           f"{unnamed}; add them to names.")
    frame = runs.assign(setting=[names[key] for key in keys])
    twice = frame.duplicated(["normal_class", "setting"])
    if twice.any():
        raise ResultsError(f"class {frame.loc[twice, 'normal_class'].iloc[0]} has two runs of the setting "
                           f"{frame.loc[twice, 'setting'].iloc[0]!r}; keep one run per class and setting.")
    wide = frame.pivot(index="normal_class", columns="setting", values=list(columns))
    shown = pd.MultiIndex.from_product([list(columns), list(dict.fromkeys(names.values()))])
    return wide.reindex(index=list(dict.fromkeys(frame["normal_class"])), columns=shown)


def _spread_labels(values, gap: float) -> list[tuple[Any, float]]:
    """``(label, y)`` for labels at the heights ``values`` (a Series), moved apart to at least ``gap``.

    Labels keep their order; labels that would overlap form a cluster,
    spaced ``gap`` apart and centred on the mean of their values.
    """
    clusters: list[tuple[list, list[float]]] = []
    for label, y in values.sort_values(kind="stable").items():
        clusters.append(([label], [float(y)]))
        while len(clusters) > 1:
            (below, low), (above, high) = clusters[-2], clusters[-1]
            top = float(np.mean(low)) + gap * (len(low) - 1) / 2
            bottom = float(np.mean(high)) - gap * (len(high) - 1) / 2
            if bottom - top >= gap:
                break
            clusters[-2:] = [(below + above, low + high)]
    placed = []
    for labels, heights in clusters:
        start = float(np.mean(heights)) - gap * (len(labels) - 1) / 2
        placed += [(label, start + k * gap) for k, label in enumerate(labels)]
    return placed


def training_length_plot(tables: Mapping[str, Any], references: Mapping[str, Mapping[str, float]] | None = None):
    """Test AUROC against training steps, every class and the mean, one panel per dataset.

    Introduced in the book's chapter *Results* (training length across all classes).

    Args:
        tables: ``{title: table}``, tables from :func:`training_length_table`
            (their index may carry class names).
        references: ``{title: {label: AUROC}}``: dashed lines to compare
            with, e.g. the baselines' means on the same test images; a
            baseline's method name (``knn_teacher``) keeps its colour from
            the other figures, any other label is drawn in black.

    Returns:
        The :class:`~matplotlib.figure.Figure`.
    """
    import matplotlib.pyplot as plt

    references = references or {}
    fig, axes = plt.subplots(1, len(tables), figsize=(5.6 * len(tables), 4.2), layout="constrained", squeeze=False)
    for ax, (title, table) in zip(axes.flat, tables.items()):
        columns = [c for c in table.columns if c.endswith(" steps")]
        steps = [int(c.split()[0]) for c in columns]
        classes = table.drop(index="mean")
        for label, row in classes.iterrows():
            ax.plot(steps, row[columns], color="0.65", lw=0.9, marker="o", ms=2.5)
        ax.plot(steps, table.loc["mean", columns], color="C0", lw=2.5, marker="o", label="students, mean of classes")
        for name, value in references.get(title, {}).items():
            ax.axhline(value, color=_DETECTOR_COLORS.get(name, "0.15"), ls="--", lw=1.2, label=f"{name} ({value:.3f})")
        gap = 0.04 * float(np.ptp(classes[columns].values))
        placed = _spread_labels(classes[columns[-1]], gap=gap)
        for label, y in placed:
            ax.annotate(str(label), (steps[-1], y), xytext=(5, 0), textcoords="offset points", va="center",
                        fontsize="x-small", color="0.35")
        heights = [y for _, y in placed]
        ax.set_ylim(min(ax.get_ylim()[0], min(heights) - gap), max(ax.get_ylim()[1], max(heights) + gap))
        ax.set_xscale("log", base=2)
        ax.set_xticks(steps, [str(s) for s in steps])
        ax.minorticks_off()
        ax.set_xlabel("student training steps (log scale)")
        ax.set_ylabel("test image AUROC")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        # below the panel: inside it, the legend would cover the labels of the lowest classes
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2, frameon=False)
    return fig


#: Columns of ``scale_choice.csv`` (``benchmarks/scale_choice.py``): one row per class and scale (each patch
#: size, then ``"fused"``), the four validation AUROCs of :func:`ust.experiments.validation_aurocs_by_scale`
#: and the test AUROCs of the benchmark table.
SCALE_CHOICE_COLUMNS = ("dataset", "normal_class", "class_name", "scale", "n_students", "iterations", "batch_size",
                        "lr", "seed", "val_auroc", "val_auroc_rotate", "val_auroc_splice", "val_auroc_swap", "auroc",
                        "auroc_error", "auroc_variance", "n_test", "train_seconds", "hardware")
#: The settings that tell one training run of ``scale_choice.csv`` from another.
SCALE_CHOICE_RUN = ("dataset", "normal_class", "n_students", "iterations", "batch_size", "lr", "seed")


def merge_scale_choice_rows(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list:
    """Scale-choice rows of two invocations in one table (:func:`replace_runs` by :data:`SCALE_CHOICE_RUN`)."""
    return replace_runs(old, new, lambda row: tuple(row[k] for k in SCALE_CHOICE_RUN))


def read_scale_choice(path: str | os.PathLike):
    """The scale-choice table: one row per class and scale, the fusion included.

    Introduced in the book's chapter *Results* (choosing the scale on validation anomalies).

    Args:
        path: CSV written by ``benchmarks/scale_choice.py``.

    Returns:
        A :class:`pandas.DataFrame` with :data:`SCALE_CHOICE_COLUMNS`; ``scale`` as a string
        (``"17"``, ``"33"``, ``"fused"``).

    Raises:
        ResultsError: A missing file or columns, or a run without the fusion and two scales.
    """
    from .experiments import FUSED

    frame = _read_table(path, SCALE_CHOICE_COLUMNS, "benchmarks/scale_choice.py",
                        dtype={"class_name": str, "scale": str})
    for run, rows in frame.groupby(list(SCALE_CHOICE_RUN)):
        scales = list(rows["scale"])
        if scales.count(FUSED) != 1 or len(set(scales)) != len(scales) or len(scales) < 3:
            raise ResultsError(f"{path}: the run {dict(zip(SCALE_CHOICE_RUN, run))} has the scales {scales}, not "
                               f"two or more patch sizes once each and '{FUSED}'; run benchmarks/scale_choice.py "
                               "again for it.")
    return frame


def scale_choice_table(frame):
    """Test AUROC of every scale and of the scale that each validation anomaly chooses, per class.

    Introduced in the book's chapter *Results* (choosing the scale on
    validation anomalies). For each class the option (a single scale or
    the fusion) with the highest validation AUROC is chosen; a tie goes to
    the first in the file's order (the smaller scale, the fusion last).
    The choice uses training-class data only, so its test AUROC is what a
    user who never looked at the test split would report.

    Args:
        frame: From :func:`read_scale_choice`, one training run per class.

    Returns:
        A :class:`pandas.DataFrame`, index ``class_name`` in class order
        with a ``mean`` row last. Columns: the test AUROC of each scale
        (``"17"``, ``"33"``, ``"fused"``), ``"best on test"`` (the highest
        of them: a ceiling that no choice without the test split can be
        sure to reach, not a method), then for each validation score of
        :data:`BUDGET_VALIDATION` and for ``"all four"`` (the mean of the
        four) ``"scale by <score>"`` (the chosen option; empty in the mean
        row) and ``"test by <score>"`` (its test AUROC).

    Raises:
        ResultsError: An empty frame or several runs for one class.
    """
    import pandas as pd

    per_class = _one_run_per_class(frame.sort_values("normal_class", kind="stable"), "scale_choice_table",
                                   SCALE_CHOICE_RUN, select="one dataset, number of iterations, batch size and seed")
    scores = {column: label.word for column, label in BUDGET_VALIDATION.items()}
    rows = {}
    for _, run in per_class:
        run = run.assign(all_four=run[list(scores)].mean(axis=1))
        row = {str(r["scale"]): r["auroc"] for _, r in run.iterrows()}
        row["best on test"] = run["auroc"].max()
        for column, word in [*scores.items(), ("all_four", "all four")]:
            pick = run.loc[run[column].idxmax()]          # idxmax: the first of equal maxima
            row[f"scale by {word}"], row[f"test by {word}"] = str(pick["scale"]), pick["auroc"]
        rows[run["class_name"].iloc[0]] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    numbers = [c for c in table if not c.startswith("scale by")]
    table.loc["mean"] = table[numbers].mean()
    table.loc["mean", [c for c in table if c.startswith("scale by")]] = ""
    table.index.name = "class_name"
    return table


#: Columns of ``score_aggregation.csv`` (``benchmarks/score_aggregation.py``): one row per class and
#: reduction of the map (:data:`~ust.scores.IMAGE_REDUCTIONS`), validation and test AUROCs as in the budget table.
AGGREGATION_COLUMNS = ("dataset", "normal_class", "class_name", "patch_size", "n_students", "iterations", "batch_size",
                       "lr", "seed", "reduction", "val_auroc", "val_auroc_rotate", "auroc", "auroc_error",
                       "auroc_variance", "n_test", "train_seconds", "hardware")
#: The settings that tell one training run of ``score_aggregation.csv`` from another.
AGGREGATION_RUN = ("dataset", "normal_class", "patch_size", "n_students", "iterations", "batch_size", "lr", "seed")


def merge_aggregation_rows(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list:
    """Score-aggregation rows of two invocations in one table (:func:`replace_runs` by :data:`AGGREGATION_RUN`)."""
    return replace_runs(old, new, lambda row: tuple(row[k] for k in AGGREGATION_RUN))


def read_aggregation(path: str | os.PathLike):
    """The score-aggregation table: one row per class and reduction of the map.

    Introduced in the book's chapter *Results* (mean or maximum of the map?).

    Args:
        path: CSV written by ``benchmarks/score_aggregation.py``.

    Returns:
        A :class:`pandas.DataFrame` with :data:`AGGREGATION_COLUMNS`.

    Raises:
        ResultsError: A missing file or columns, an unknown reduction, or a
            run without a row for every reduction.
    """
    from .scores import IMAGE_REDUCTIONS

    frame = _read_table(path, AGGREGATION_COLUMNS, "benchmarks/score_aggregation.py", dtype={"class_name": str})
    unknown = sorted(set(frame["reduction"]) - set(IMAGE_REDUCTIONS))
    if unknown:
        raise ResultsError(f"{path}: unknown reductions {unknown}; ust knows {list(IMAGE_REDUCTIONS)}.")
    for run, rows in frame.groupby(list(AGGREGATION_RUN)):
        if sorted(rows["reduction"]) != sorted(IMAGE_REDUCTIONS):
            raise ResultsError(f"{path}: the run {dict(zip(AGGREGATION_RUN, run))} has the reductions "
                               f"{sorted(rows['reduction'])}, not one row for each of {list(IMAGE_REDUCTIONS)}; "
                               "run benchmarks/score_aggregation.py again for it.")
    return frame


def aggregation_table(frame):
    """Validation and test AUROC per class for each reduction of the map, with a ``mean`` row.

    Args:
        frame: From :func:`read_aggregation`, one training run per class.

    Returns:
        A :class:`pandas.DataFrame`, index ``class_name`` in class order,
        columns a two-level index ``(score, reduction)``: the scores
        ``val_auroc``, ``val_auroc_rotate``, ``auroc`` (test, error +
        variance), each for the reductions ``mean`` and ``max``.

    Raises:
        ResultsError: Several runs for one class.
    """
    from .scores import IMAGE_REDUCTIONS

    if frame.duplicated(["dataset", "normal_class", "reduction"]).any():
        raise ResultsError("aggregation_table takes one run per class; select one dataset and one setting first.")
    ordered = frame.sort_values("normal_class", kind="stable")
    scores = ["val_auroc", "val_auroc_rotate", "auroc"]
    table = ordered.pivot(index="class_name", columns="reduction", values=scores)
    table = table.loc[list(dict.fromkeys(ordered["class_name"])), [(s, r) for s in scores for r in IMAGE_REDUCTIONS]]
    table.loc["mean"] = table.mean()
    table.columns.names = ["score", "reduction"]
    table.index.name = "class_name"
    return table


def load_benchmark(csv_path: str | os.PathLike) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows and settings of one benchmark CSV, checked complete (:func:`check_complete`)."""
    rows = read_rows(csv_path)
    settings = benchmark_settings(csv_path)
    check_complete(rows, settings)
    return rows, settings


#: Columns of ``teacher_capacity.csv`` (``benchmarks/teacher_capacity.py``); see
#: :func:`ust.training.distillation_capacity` for the measures.
CAPACITY_COLUMNS = ("teacher", "patch_size", "iterations", "source", "n_patches", "total_variance", "floor",
                    "refit_loss", "ceiling", "explained", "seconds", "hardware")


def _capacity_key(row: Mapping[str, Any]) -> tuple:
    return row["teacher"], row["source"]


def merge_capacity_rows(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list:
    """Teacher-capacity rows of two invocations in one table (:func:`replace_runs` by teacher and source)."""
    return replace_runs(old, new, _capacity_key)


def read_capacity(path: str | os.PathLike):
    """The teacher-capacity table: one row per teacher and source of patches.

    Introduced in the book's chapter *Results* ("Is the teacher the bottleneck?").

    Args:
        path: CSV written by ``benchmarks/teacher_capacity.py``.

    Returns:
        A :class:`pandas.DataFrame` with :data:`CAPACITY_COLUMNS`.

    Raises:
        ResultsError: A missing file or columns, a teacher measured twice on
            one source, or fractions outside ``explained <= ceiling <= 1``.
    """
    frame = _read_table(path, CAPACITY_COLUMNS, "benchmarks/teacher_capacity.py")
    if frame.duplicated(["teacher", "source"]).any():
        raise ResultsError(f"{path}: some teacher was measured twice on one source; run "
                           "benchmarks/teacher_capacity.py --out again (it replaces repeated rows).")
    bad = frame[(frame["explained"] > frame["ceiling"] + 1e-9) | (frame["ceiling"] > 1 + 1e-9)]
    if not bad.empty:
        raise ResultsError(f"{path}: rows {bad.index.tolist()} explain more than their ceiling or more than all "
                           "of the variance, which no least-squares fit can; the file is corrupt, measure again.")
    return frame


def capacity_table(frame):
    """What each teacher carries of the pretrained features, per source of patches.

    Args:
        frame: From :func:`read_capacity`.

    Returns:
        A :class:`pandas.DataFrame`, one row per teacher (in the file's
        order) indexed by ``teacher`` and ``iterations``, columns a two-level
        index ``(source, measure)`` with the measures ``explained`` and
        ``ceiling`` (fractions of the feature variance), sources in the
        file's order.
    """
    table = frame.pivot(index=["teacher", "iterations"], columns="source", values=["explained", "ceiling"])
    table = table.swaplevel(0, 1, axis=1)
    sources = list(dict.fromkeys(frame["source"]))
    table = table.reindex(columns=[(s, m) for s in sources for m in ("explained", "ceiling")])
    order = list(dict.fromkeys(zip(frame["teacher"], frame["iterations"])))
    return table.reindex(order)


def capacity_plot(frame, *, ax=None, labels: Mapping[str, str] | None = None):
    """Bars of what each teacher carries of the pretrained features, under what 128 channels allow.

    Introduced in the book's chapter *Results* ("Is the teacher the bottleneck?").

    Args:
        frame: From :func:`read_capacity`.
        ax: Axes to draw into (a new figure otherwise).
        labels: Optional ``{teacher: label}`` for the legend; by default
            its patch size and pretraining steps (``"p = 33, 3,000 steps"``).

    Returns:
        The :class:`~matplotlib.axes.Axes`: one group of bars per source of
        patches, one bar per teacher; the filled bar is ``explained``, the
        outline above it reaches the ``ceiling``.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    teachers = list(dict.fromkeys(frame["teacher"]))
    first = frame.drop_duplicates("teacher").set_index("teacher")
    labels = {t: f"p = {first.loc[t, 'patch_size']}" + ("" if is_missing(first.loc[t, "iterations"]) else
                                                          f", {int(first.loc[t, 'iterations']):,} steps")
              for t in teachers} | dict(labels or {})
    sources = list(dict.fromkeys(frame["source"]))
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4.2), layout="constrained")
    width = 0.8 / len(teachers)
    for i, teacher in enumerate(teachers):
        rows = frame[frame["teacher"] == teacher].set_index("source").reindex(sources)
        x = np.arange(len(sources)) + (i - (len(teachers) - 1) / 2) * width
        color = f"C{i}"
        ax.bar(x, rows["ceiling"], width * 0.9, facecolor="none", edgecolor=color, lw=1.2, ls="--")
        ax.bar(x, rows["explained"], width * 0.9, color=color, label=labels.get(teacher, teacher))
    ax.set_xticks(np.arange(len(sources)), sources)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("patches from")
    ax.set_ylabel("fraction of the feature variance")
    ax.set_title("What the teacher's 128 channels carry of EfficientNet-Lite0's features\n"
                 "(filled: with the best decoder, on held-out patches; dashed: the most 128 channels allow)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize="small", ncols=4, frameon=False)
    return ax
