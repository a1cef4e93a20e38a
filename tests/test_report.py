"""Result tables: ust.report on hand-made rows, and the schema and completeness of book/results/*.csv."""

import csv
import json
import math
import re

import pytest

from ust._io import is_missing
from ust.experiments import BASELINE_COLUMNS, COLUMNS, read_rows, write_rows
from ust.report import (AGGREGATION_COLUMNS, BUDGET_COLUMNS, BUDGET_RUN, BUDGET_VALIDATION, RESULTS_DIR, ResultsError,
                        aggregation_table, auroc_table, baseline_table, budget_plot, budget_run_key, budget_runs,
                        check_complete, choose_by_validation,
                        class_bars, comparison_table, image_size_study, load_benchmark, merge_aggregation_rows, narrow,
                        merge_budget_runs, read_aggregation, read_baselines, read_budget, seed_means, seed_table,
                        SCALE_CHOICE_COLUMNS, merge_scale_choice_rows, read_scale_choice, scale_choice_table,
                        setting_search, settings_side_by_side, short_run_table, teacher_ablation,
                        training_length_plot, training_length_table, validation_judges, wall_times,
                        CAPACITY_COLUMNS, capacity_plot, capacity_table, merge_capacity_rows, read_capacity)


def _row(label, seed, scale, comp, auroc):
    row = dict.fromkeys(COLUMNS, "")
    row.update(dataset="toy", normal_class=label, class_name=f"c{label}", seed=seed, scale=scale, components=comp,
               auroc=auroc, n_train=10, n_test=20, test_subset=False, train_seconds=1.5, score_seconds=0.5,
               image_size=28, n_students=3, iterations=5, stand_in_for=None, teacher="t")
    return row


def _settings(classes, seeds, scales, components=("both",)):
    return {"arguments": {"classes": classes, "seeds": seeds, "scales": scales, "components": list(components)}}


def _rows(classes=(0, 1), seeds=(0, 1), scales=("17", "33", "fused")):
    # AUROC = 0.5 + label/10 + seed/100 + scale/1000: every cell is different and hand-checkable
    value = {"17": 0.017, "33": 0.033, "fused": 0.05}
    return [_row(c, s, p, "both", 0.5 + c / 10 + s / 100 + value[p]) for c in classes for s in seeds for p in scales]


def test_auroc_table_means_stds_and_order():
    mean, std = auroc_table(_rows())
    assert list(mean.columns) == ["p=17", "p=33", "fused"]
    assert list(mean.index) == ["c0", "c1", "mean"]
    # class 1, p=33: seeds give 0.633 and 0.643
    assert mean.loc["c1", "p=33"] == pytest.approx(0.638)
    assert std.loc["c1", "p=33"] == pytest.approx(math.sqrt(2 * 0.005 ** 2))   # sample std of two values
    # mean over classes of the per-class means: (0.56 + 0.66) / 2 for fused
    assert mean.loc["mean", "fused"] == pytest.approx((0.555 + 0.655) / 2)
    with pytest.raises(ResultsError, match="components='error'"):
        auroc_table(_rows(), components="error")


def test_seed_table_columns_per_seed_and_range():
    table = seed_table(_rows(classes=(1, 0)), 33)
    assert list(table.columns) == ["seed 0", "seed 1", "range"] and list(table.index) == ["c0", "c1", "mean"]
    assert table.loc["c1", "seed 1"] == pytest.approx(0.643)                # 0.5 + 1/10 + 1/100 + 0.033
    assert table.loc["mean", "seed 0"] == pytest.approx((0.533 + 0.633) / 2)
    assert table["range"].to_numpy() == pytest.approx([0.01, 0.01, 0.01])
    with pytest.raises(ResultsError, match="no rows at scale '65'"):
        seed_table(_rows(), "65")


def test_seed_means_one_row_per_scale_in_order():
    rows = _rows(scales=("fused", "33", "17"))                              # any order in the CSV
    rows += [_row(c, s, "65", "both", 0.9 + s / 100) for c in (0, 1) for s in (0, 1)]
    table = seed_means(rows)
    assert list(table.index) == ["p=17", "p=33", "p=65", "fused"]
    assert list(table.columns) == ["seed 0", "seed 1", "range"]
    assert table.loc["p=33", "seed 1"] == pytest.approx((0.543 + 0.643) / 2)  # the mean over the two classes
    assert table.loc["p=65"].to_numpy() == pytest.approx([0.9, 0.91, 0.01])
    assert list(seed_means(_rows(scales=("33",))).index) == ["p=33"]        # one scale: no fused row
    with pytest.raises(ResultsError, match="no benchmark rows"):
        seed_means([])
    with pytest.raises(ResultsError, match="components='error'"):
        seed_means(rows, components="error")


def test_check_complete_names_the_missing_row():
    rows = _rows()
    check_complete(rows, _settings([0, 1], [0, 1], [17, 33]))
    with pytest.raises(ResultsError, match="class 1, seed 1, scale fused"):
        check_complete(rows[:-1], _settings([0, 1], [0, 1], [17, 33]))
    with pytest.raises(ResultsError, match="class 2, seed 0"):
        check_complete(rows, _settings([0, 1, 2], [0, 1], [17, 33]))


def test_load_benchmark_round_trip_and_missing_settings(tmp_path):
    path = tmp_path / "toy.csv"
    write_rows(path, _rows())
    with pytest.raises(ResultsError, match="toy.json is missing"):
        load_benchmark(path)
    path.with_suffix(".json").write_text(json.dumps(_settings([0, 1], [0, 1], [17, 33])))
    rows, settings = load_benchmark(path)
    assert len(rows) == 12 and settings["arguments"]["seeds"] == [0, 1]


def test_baseline_table_comparison_and_bars(tmp_path):
    path = tmp_path / "base.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(BASELINE_COLUMNS))
        writer.writeheader()
        for label, (a, b) in enumerate([(0.9, 0.6), (0.7, 0.8)]):
            for method, auroc in (("knn_pixels", a), ("autoencoder", b)):
                writer.writerow(dict.fromkeys(BASELINE_COLUMNS, "") | dict(
                    dataset="toy", normal_class=label, class_name=f"c{label}", method=method, auroc=auroc,
                    seconds=1.0))
    table = baseline_table(read_baselines(path))
    assert table.loc["mean", "knn_pixels"] == pytest.approx(0.8)
    assert table.loc["mean", "autoencoder"] == pytest.approx(0.7)
    students, _ = auroc_table(_rows())
    series = comparison_table(students, table, paper=0.99)
    assert list(series.index[:2]) == ["paper (reported)", "baseline knn_pixels"]
    assert series["students fused"] == pytest.approx(0.605)
    ax = class_bars({"students": students["fused"], "knn": table["knn_pixels"]}, reference=0.99)
    assert len(ax.patches) >= 4 and ax.get_ylabel() == "image AUROC"
    bad = tmp_path / "bad.csv"
    bad.write_text("dataset,auroc\ntoy,0.5\n")
    with pytest.raises(ResultsError, match="lacks the columns"):
        read_baselines(bad)


def test_wall_times_first_seed_only():
    times = wall_times(_rows())
    assert len(times) == 6 and set(times["scale"]) == {"17", "33", "fused"}


# --------------------------------------------------------------------------- the committed result files

def _budget_rows(label, values):
    return [dict(dataset="toy", normal_class=label, patch_size=33, teacher="pretrained:33:kc", n_students=3,
                 batch_size=8, lr=1e-3, lr_schedule="constant", threads=1,
                 image_size="28x28", iteration=it, train_seconds=it / 10, val_auroc=v, val_auroc_rotate=v - 0.2,
                 auroc=v - 0.1, auroc_error=v - 0.05, auroc_variance=0.5, n_test=20,
                 hardware="cpu: toy (AVX2), 1 torch threads, 2 CPUs") for it, v in values]


def _aggregation_rows(label, mean, maximum):
    """One class's two rows: (val_auroc, val_auroc_rotate, auroc) for the mean and for the max of the map."""
    return [dict(dataset="toy", normal_class=label, class_name=str(label), patch_size=33, n_students=3,
                 iterations=100, batch_size=8, lr=1e-3, seed=0, reduction=reduction, val_auroc=v, val_auroc_rotate=r,
                 auroc=a, auroc_error=a, auroc_variance=0.5, n_test=20, train_seconds=9.5, hardware="cpu: toy")
            for reduction, (v, r, a) in (("mean", mean), ("max", maximum))]


def test_aggregation_table_pivots_and_averages(tmp_path):
    path = tmp_path / "agg.csv"
    rows = _aggregation_rows(2, (0.9, 0.8, 0.7), (0.6, 0.5, 0.4)) + _aggregation_rows(0, (1.0, 0.9, 0.9),
                                                                                      (0.8, 0.7, 0.6))
    write_rows(path, rows, columns=AGGREGATION_COLUMNS)       # how benchmarks/score_aggregation.py writes it
    table = aggregation_table(read_aggregation(path))
    assert list(table.index) == ["0", "2", "mean"]                          # names as text, class order, mean last
    assert list(table.columns) == [(s, r) for s in ("val_auroc", "val_auroc_rotate", "auroc") for r in ("mean", "max")]
    assert table.loc["2", ("auroc", "max")] == pytest.approx(0.4)
    assert table.loc["mean", ("val_auroc", "mean")] == pytest.approx(0.95)
    assert table.loc["mean", ("auroc", "max")] == pytest.approx(0.5)
    # a rerun of class 2 replaces its rows where they stood; a new class comes last
    again = _aggregation_rows(2, (0.1, 0.1, 0.1), (0.2, 0.2, 0.2)) + _aggregation_rows(5, (1, 1, 1), (1, 1, 1))
    merged = merge_aggregation_rows(rows, again)
    assert [(r["normal_class"], r["val_auroc"]) for r in merged] == [(2, 0.1), (2, 0.2), (0, 1.0), (0, 0.8), (5, 1),
                                                                     (5, 1)]
    with pytest.raises(ResultsError, match="one run per class"):
        aggregation_table(read_aggregation(path).pipe(lambda f: f.iloc[[0, 1, 2, 3, 0]]))   # class 2 twice
    write_rows(path, rows[:3], columns=AGGREGATION_COLUMNS)                 # class 0 lost its max row
    with pytest.raises(ResultsError, match=r"has the reductions \['mean'\], not one row for each"):
        read_aggregation(path)
    write_rows(path, [dict(rows[0], reduction="median")] + rows[1:], columns=AGGREGATION_COLUMNS)
    with pytest.raises(ResultsError, match=r"unknown reductions \['median'\]"):
        read_aggregation(path)
    with pytest.raises(ResultsError, match="score_aggregation.py"):
        read_aggregation(tmp_path / "missing.csv")


def _scale_choice_rows(label, scales):
    """One class's rows: ``{scale: (stroke, turn, splice, swap validation AUROCs, test AUROC)}``."""
    return [dict(dataset="toy", normal_class=label, class_name=f"c{label}", scale=scale, n_students=3, iterations=100,
                 batch_size=8, lr=1e-3, seed=0, val_auroc=v[0], val_auroc_rotate=v[1], val_auroc_splice=v[2],
                 val_auroc_swap=v[3], auroc=v[4], auroc_error=v[4], auroc_variance=0.5, n_test=20, train_seconds=9.5,
                 hardware="cpu: toy") for scale, v in scales.items()]


def test_scale_choice_table_takes_the_scale_each_validation_anomaly_ranks_first(tmp_path):
    path = tmp_path / "scales.csv"
    rows = (_scale_choice_rows(3, {"17": (0.9, 0.5, 0.6, 0.7, 0.80), "33": (0.8, 0.9, 0.6, 0.6, 0.90),
                                   "fused": (0.7, 0.8, 0.6, 0.8, 0.85)})
            + _scale_choice_rows(1, {"17": (0.5, 0.5, 0.5, 0.5, 0.70), "33": (0.6, 0.6, 0.6, 0.9, 0.60),
                                     "fused": (0.7, 0.5, 0.5, 0.5, 0.65)}))
    write_rows(path, rows, columns=SCALE_CHOICE_COLUMNS)     # how benchmarks/scale_choice.py writes it
    table = scale_choice_table(read_scale_choice(path))
    assert list(table.index) == ["c1", "c3", "mean"]                          # class order, mean last
    assert list(table.columns[:4]) == ["17", "33", "fused", "best on test"]
    chosen = table.loc[["c1", "c3"], [c for c in table if c.startswith("scale by")]]
    assert chosen.to_dict("list") == {
        "scale by strokes": ["fused", "17"], "scale by turns": ["33", "33"],
        "scale by splices": ["33", "17"],                 # class 3: a three-way tie goes to the first row
        "scale by swaps": ["33", "fused"],
        "scale by all four": ["33", "33"]}                # class 3: means 0.675, 0.725, 0.725: the first of the tie
    assert table.loc["c3", "test by strokes"] == 0.80 and table.loc["c1", "test by strokes"] == 0.65
    assert table.loc["mean", "test by turns"] == pytest.approx((0.60 + 0.90) / 2)
    assert table.loc["mean", "best on test"] == pytest.approx((0.70 + 0.90) / 2)
    assert table.loc["mean", "17"] == pytest.approx(0.75) and table.loc["mean", "scale by swaps"] == ""
    # a rerun of class 3 replaces its rows where they stood
    again = _scale_choice_rows(3, {s: (0.5,) * 5 for s in ("17", "33", "fused")})
    assert [r["normal_class"] for r in merge_scale_choice_rows(rows, again)] == [3, 3, 3, 1, 1, 1]
    with pytest.raises(ResultsError, match="several training runs"):
        scale_choice_table(read_scale_choice(path).assign(iterations=[100, 100, 100, 100, 100, 400]))
    write_rows(path, rows[:2] + rows[3:], columns=SCALE_CHOICE_COLUMNS)       # class 3 without its fusion
    with pytest.raises(ResultsError, match=r"has the scales \['17', '33'\], not two or more patch sizes"):
        read_scale_choice(path)
    with pytest.raises(ResultsError, match="scale_choice.py"):
        read_scale_choice(tmp_path / "missing.csv")


def test_choose_by_validation_takes_the_shortest_run_within_tolerance():
    rows = _budget_rows(8, [(50, 0.90), (100, 0.951), (200, 0.96), (400, 0.958)])
    assert choose_by_validation(rows, tolerance=0.01)["iteration"] == 100     # 0.951 >= 0.96 - 0.01
    assert choose_by_validation(rows, tolerance=0.005)["iteration"] == 200    # 0.951 < 0.955
    assert choose_by_validation(rows, tolerance=0.1)["iteration"] == 50
    with pytest.raises(ResultsError, match="at least one"):
        choose_by_validation([])
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        choose_by_validation(rows, tolerance=-0.01)


def test_choose_by_validation_on_another_column_skips_unmeasured_checkpoints():
    rows = _budget_rows(8, [(50, 0.90), (100, 0.951), (200, 0.96), (400, 0.958)])
    for row, value in zip(rows, [0.70, 0.80, 0.60, 0.79]):                  # turns prefer 100 steps
        row["val_auroc_rotate"] = value
    assert choose_by_validation(rows, column="val_auroc_rotate")["iteration"] == 100
    assert choose_by_validation(rows)["iteration"] == 200                    # the strokes still prefer 200
    rows[1]["val_auroc_rotate"] = float("nan")                               # not measured: never chosen
    assert choose_by_validation(rows, column="val_auroc_rotate")["iteration"] == 400
    with pytest.raises(ResultsError, match="no checkpoint of this run has a value in 'val_auroc_rotate'"):
        choose_by_validation([dict(r, val_auroc_rotate=float("nan")) for r in rows], column="val_auroc_rotate")
    # a test column is not a validation score: choosing by it would tune on the test split
    with pytest.raises(ResultsError, match=r"'auroc' is not a validation score .*'val_auroc', 'val_auroc_rotate'"):
        choose_by_validation(rows, column="auroc")
    assert [is_missing(v) for v in (None, float("nan"), 0.0, "", 1)] == [True, True, False, False, False]


def test_read_budget_sorts_checks_columns_and_plots(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    path = tmp_path / "budget.csv"
    rows = _budget_rows(8, [(200, 0.96), (50, 0.90)]) + _budget_rows(1, [(50, 0.99)])
    write_rows(path, rows, columns=BUDGET_COLUMNS)     # how benchmarks/student_budget.py writes it
    assert path.read_text().splitlines()[0] == ",".join(BUDGET_COLUMNS)
    frame = read_budget(path)
    # runs in the order of the file, each sorted by iteration
    assert list(zip(frame["normal_class"], frame["iteration"])) == [(8, 50), (8, 200), (1, 50)]
    assert choose_by_validation(frame[frame["normal_class"] == 8])["iteration"] == 200  # a DataFrame works too
    fig = budget_plot(frame)
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["toy: normal class 8", "toy: normal class 1"]
    assert "validation: quarter turns" in [t.get_text() for t in fig.legends[0].get_texts()]
    # a run made before val_auroc_rotate existed: an empty cell, read as NaN, and no line for it
    write_rows(path, [dict(r, val_auroc_rotate=float("nan")) for r in rows], columns=BUDGET_COLUMNS)
    assert path.read_text().splitlines()[1].split(",")[BUDGET_COLUMNS.index("val_auroc_rotate")] == ""
    old = read_budget(path)
    assert old["val_auroc_rotate"].isna().all() and old["val_auroc"].notna().all()
    assert "validation: quarter turns" not in [t.get_text() for t in budget_plot(old).legends[0].get_texts()]
    write_rows(path, [dict(rows[0], image_size="28")], columns=BUDGET_COLUMNS)
    with pytest.raises(ResultsError, match=r"image_size must read HxW .*\['28'\]"):
        read_budget(path)
    with path.open("w") as handle:
        handle.write("dataset,iteration\ntoy,5\n")
    with pytest.raises(ResultsError, match="lacks the columns"):
        read_budget(path)
    with pytest.raises(ResultsError, match="student_budget.py"):
        read_budget(tmp_path / "missing.csv")


def test_short_run_table_compares_each_class_with_its_longest_run():
    import pandas as pd

    # _budget_rows: auroc = v - 0.1, train_seconds = steps / 10
    short = pd.DataFrame([dict(r, batch_size=4, lr_schedule="cosine") for r in
                          _budget_rows(8, [(700, 0.93)]) + _budget_rows(1, [(700, 1.09)])])
    reference = pd.DataFrame(_budget_rows(8, [(100, 0.80), (800, 0.92), (1600, 0.934)])
                             + _budget_rows(8, [(1600, 0.94)])                # a second run as long: the higher one
                             + _budget_rows(1, [(400, 1.095), (800, 1.0995)]))
    table = short_run_table(short, reference)
    assert list(table.index) == [8, 1, "mean"]
    assert list(table.columns) == ["steps", "seconds", "AUROC", "long: steps", "long: seconds", "long: AUROC",
                                   "long: difference"]
    assert table.loc[8, "long: steps"] == 1600 and table.loc[8, "long: AUROC"] == pytest.approx(0.84)
    assert table.loc[8, "long: difference"] == pytest.approx(0.83 - 0.84)
    assert table.loc[1, "long: steps"] == 800 and table.loc[1, "long: difference"] == pytest.approx(0.99 - 0.9995)
    assert table.loc[1, "seconds"] == pytest.approx(70) and table.loc[1, "long: seconds"] == pytest.approx(80)
    assert table.loc["mean", "long: difference"] == pytest.approx((-0.01 - 0.0095) / 2)
    assert table.loc["mean", "seconds"] == pytest.approx(70)
    # both short runs took 700 steps; the long ones 1600 and 800, whose mean would describe no run
    assert table.loc["mean", "steps"] == 700 and math.isnan(table.loc["mean", "long: steps"])
    # several references, each by its name: a long run of the short runs' own setting, and the table above
    same = pd.DataFrame([dict(r, batch_size=4, lr_schedule="cosine") for r in
                         _budget_rows(8, [(2800, 0.95)]) + _budget_rows(1, [(2800, 1.098)])])
    both = short_run_table(short, {"same": same, "old": reference})
    assert list(both.columns) == ["steps", "seconds", "AUROC", "same: steps", "same: seconds", "same: AUROC",
                                  "same: difference", "old: steps", "old: seconds", "old: AUROC", "old: difference"]
    assert both.loc[8, "same: difference"] == pytest.approx(0.83 - 0.85) and both.loc["mean", "same: steps"] == 2800
    # only the reference columns asked for, in the order asked, with the same values
    some = short_run_table(short, {"same": same, "old": reference}, reference_columns=("difference", "AUROC"))
    assert list(some.columns) == ["steps", "seconds", "AUROC", "same: difference", "same: AUROC", "old: difference",
                                  "old: AUROC"]
    assert some.equals(both[some.columns])
    with pytest.raises(ResultsError, match="reference_columns must name some of steps, seconds, AUROC, difference"):
        short_run_table(short, reference, reference_columns=("auroc",))
    with pytest.raises(ResultsError, match="reference_columns must name"):
        short_run_table(short, reference, reference_columns="AUROC")
    assert both["old: difference"].tolist() == pytest.approx(table["long: difference"].tolist())
    with pytest.raises(ResultsError, match="at least one reference"):
        short_run_table(short, {})
    with pytest.raises(ResultsError, match="class 1 has no run in the reference table 'old'"):
        short_run_table(short, {"same": same, "old": reference[reference["normal_class"] == 8]})
    with pytest.raises(ResultsError, match="class 1 has no run in the reference table 'long'"):
        short_run_table(short, reference[reference["normal_class"] == 8])
    with pytest.raises(ResultsError, match="paused 2 times"):
        short_run_table(pd.concat([short, pd.DataFrame(_budget_rows(1, [(100, 0.9)]))
                                   .assign(batch_size=4, lr_schedule="cosine")]), reference)
    with pytest.raises(ResultsError, match="several training runs"):
        short_run_table(pd.concat([short, pd.DataFrame(_budget_rows(1, [(700, 0.9)]))]), reference)


def test_setting_search_leads_each_class_with_its_reference_pause():
    import pandas as pd

    # _budget_rows: auroc = v - 0.1, val_auroc = v; candidates differ from the reference in batch, rate, schedule
    search = pd.DataFrame([dict(r, batch_size=4, lr=2e-3, lr_schedule="cosine") for r in
                           _budget_rows(8, [(800, 0.81)]) + _budget_rows(2, [(800, 0.85)])]
                          + [dict(r, lr=3e-3) for r in _budget_rows(8, [(400, 0.77)])])
    reference = pd.DataFrame(_budget_rows(2, [(100, 0.70), (400, 0.83), (800, 0.84)])
                             + _budget_rows(8, [(100, 0.60), (400, 0.768)])
                             + [dict(r, threads=2) for r in _budget_rows(8, [(400, 0.99)])])   # other threads
    runs = setting_search(search, reference, iteration=400)
    assert runs["normal_class"].tolist() == [8, 8, 8, 2, 2]                       # search's order, reference first
    assert runs["val_auroc"].tolist() == pytest.approx([0.768, 0.81, 0.77, 0.83, 0.85])
    assert runs["iteration"].tolist() == [400, 800, 400, 400, 800] and list(runs.index) == list(range(5))
    with pytest.raises(ResultsError, match="class 8: 0 reference runs paused at 200 steps"):
        setting_search(search, reference, iteration=200)
    with pytest.raises(ResultsError, match="class 8: 2 reference runs"):
        setting_search(search, pd.concat([reference, reference.iloc[[4]]]), iteration=400)
    with pytest.raises(ResultsError, match="candidates of class 2 differ"):
        setting_search(pd.concat([search, search.iloc[[1]].assign(patch_size=17)]), reference, iteration=400)
    with pytest.raises(ResultsError, match="at least one candidate"):
        setting_search(search.iloc[:0], reference, iteration=400)


def test_settings_side_by_side_puts_each_class_on_one_row():
    import pandas as pd

    # _budget_rows: auroc = v - 0.1, val_auroc = v; class 8 then 2, each with the reference and two candidates
    old = dict(batch_size=8, lr=1e-3, lr_schedule="constant")
    cosine = dict(batch_size=4, lr=2e-3, lr_schedule="cosine")
    high = dict(batch_size=8, lr=3e-3, lr_schedule="constant")
    runs = pd.DataFrame([dict(r, **setting) for label, values in ((8, (0.70, 0.80, 0.75)), (2, (0.90, 0.85, 0.95)))
                         for setting, v in zip((old, cosine, high), values) for r in _budget_rows(label, [(400, v)])])
    names = {(8, 1e-3, "constant"): "old", (8, 3e-3, "constant"): "3e-3", (4, 2e-3, "cosine"): "cosine"}
    table = settings_side_by_side(runs, names, ["val_auroc", "auroc"])
    assert list(table.index) == [8, 2]                                     # the classes in the order of runs
    assert list(table.columns) == [("val_auroc", "old"), ("val_auroc", "3e-3"), ("val_auroc", "cosine"),
                                   ("auroc", "old"), ("auroc", "3e-3"), ("auroc", "cosine")]    # names' order
    assert table.loc[8].tolist() == pytest.approx([0.70, 0.75, 0.80, 0.60, 0.65, 0.70])
    assert table.loc[2].tolist() == pytest.approx([0.90, 0.95, 0.85, 0.80, 0.85, 0.75])
    with pytest.raises(ResultsError, match=r"no name for the settings .*\(8, 0.003, 'constant'\).*add them"):
        settings_side_by_side(runs, {k: v for k, v in names.items() if v != "3e-3"}, ["auroc"])
    with pytest.raises(ResultsError, match="class 2 has two runs of the setting 'cosine'"):
        settings_side_by_side(pd.concat([runs, runs.iloc[[4]]]), names, ["auroc"])
    assert issubclass(ResultsError, ValueError)


def test_training_length_table_reports_each_checkpoint_and_the_validation_choice(tmp_path):
    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    # _budget_rows: auroc = v - 0.1, val_auroc = v, val_auroc_rotate = v - 0.2
    rows = _budget_rows(8, [(100, 0.80), (400, 0.90), (800, 0.903)]) + _budget_rows(1, [(100, 0.95), (400, 0.94),
                                                                                         (800, 0.96)])
    rows[4]["val_auroc_rotate"] = 0.99                      # class 1: the turns prefer 400 steps, the strokes 800
    path = tmp_path / "length.csv"
    write_rows(path, rows, columns=BUDGET_COLUMNS)
    table = training_length_table(read_budget(path))
    assert list(table.index) == [8, 1, "mean"]
    assert list(table.columns) == ["100 steps", "400 steps", "800 steps", "steps by strokes", "test by strokes",
                                   "steps by turns", "test by turns"]
    assert table.loc[8, "100 steps"] == pytest.approx(0.70) and table.loc[1, "800 steps"] == pytest.approx(0.86)
    assert table.loc[8, "steps by strokes"] == 400                # 0.90 lies within 0.005 of 0.903
    assert table.loc[8, "test by strokes"] == pytest.approx(0.80)
    assert table.loc[1, "steps by strokes"] == 800 and table.loc[1, "steps by turns"] == 400
    assert table.loc[1, "test by turns"] == pytest.approx(0.84)
    assert table.loc["mean", "100 steps"] == pytest.approx((0.70 + 0.85) / 2)
    assert table.loc["mean", "test by turns"] == pytest.approx((0.80 + 0.84) / 2)
    assert table.loc["mean", "steps by strokes"] == 600
    # a class whose run predates the turns: its cells and the mean are NaN, never a mean of the others
    old = pd.DataFrame([dict(r, val_auroc_rotate=float("nan")) if r["normal_class"] == 1 else r for r in rows])
    partial = training_length_table(old)
    assert partial.loc[8, "steps by turns"] == 400 and math.isnan(partial.loc["mean", "test by turns"])
    fig = training_length_plot({"toy": table.rename(index={8: "eight"})}, {"toy": {"paper": 0.9, "knn_teacher": 0.8}})
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["1", "eight"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["students, mean of classes", "paper (0.900)",
                                                                   "knn_teacher (0.800)"]
    assert [line.get_color() for line in ax.lines[-2:]] == ["0.15", "C4"]   # a baseline keeps its colour
    low, high = ax.get_ylim()                                               # every label and line in view
    assert all(low <= v <= high for v in [t.xy[1] for t in ax.texts] + [0.9, 0.8])
    with pytest.raises(ResultsError, match="different checkpoints"):
        training_length_table(pd.DataFrame(rows[:5]))
    with pytest.raises(ResultsError, match=r"classes \[8\] have several training runs"):
        training_length_table(pd.DataFrame(rows + [dict(r, batch_size=4) for r in rows[:3]]))
    with pytest.raises(ResultsError, match="at least one run"):
        training_length_table(pd.DataFrame(columns=BUDGET_COLUMNS))


def test_budget_validation_columns_are_the_anomaly_kinds():
    """One budget column per kind that benchmarks/student_budget.py can validate with, named by validation_column."""
    from ust.data import GLOBAL_KINDS
    from ust.experiments import validation_column

    assert list(BUDGET_VALIDATION) == [validation_column(k) for k in ("stroke",) + GLOBAL_KINDS]
    assert set(BUDGET_VALIDATION) <= set(BUDGET_COLUMNS)
    for field in ("name", "word"):                  # each labels one score only, in legends and headers
        assert len({getattr(label, field) for label in BUDGET_VALIDATION.values()}) == len(BUDGET_VALIDATION)


def test_validation_judges_by_hand():
    """Direction agreement, the test AUROC at each score's choice, and the regret, on two hand-made classes."""
    import pandas as pd

    # _budget_rows: auroc = v - 0.1, val_auroc = v, val_auroc_rotate = v - 0.2 (both move with the test AUROC)
    rows = _budget_rows(8, [(100, 0.80), (400, 0.90), (800, 0.903)]) + _budget_rows(1, [(100, 0.95), (400, 0.94),
                                                                                         (800, 0.96)])
    for row, splice in zip(rows, (0.6, 0.55, 0.7, 0.5, 0.6, 0.6)):
        row.update(val_auroc_splice=splice, val_auroc_swap=0.9)       # the swaps saturated: never move
    judges = validation_judges(pd.DataFrame(rows))
    assert list(judges.index) == ["synthetic strokes", "quarter turns", "spliced images", "swapped halves"]
    assert list(judges.columns) == ["val at 100 steps", "val at 400 steps", "val at 800 steps", "same direction",
                                    "test at choice", "regret"]
    assert judges.loc["synthetic strokes", "val at 100 steps"] == pytest.approx((0.80 + 0.95) / 2)
    assert judges.loc["spliced images", "val at 400 steps"] == pytest.approx((0.55 + 0.60) / 2)
    assert judges["same direction"].tolist() == [1.0, 1.0, 0.25, 0.0]
    # strokes: 400 steps for the 8 (0.90 within 0.005 of 0.903), 800 for the 1; splices: 800 and 400; swaps: 100
    assert judges["test at choice"].tolist() == pytest.approx([0.83, 0.83, (0.803 + 0.84) / 2, (0.70 + 0.85) / 2])
    assert judges["regret"].tolist() == pytest.approx([0.0015, 0.0015, 0.01, (0.103 + 0.01) / 2])
    partial = validation_judges(pd.DataFrame([dict(r, val_auroc_swap=float("nan")) if i == 2 else r
                                              for i, r in enumerate(rows)]))
    assert "swapped halves" not in partial.index                       # not measured everywhere: not judged
    with pytest.raises(ResultsError, match="needs at least two; got \\[100\\]"):
        validation_judges(pd.DataFrame([rows[0], rows[3]]))
    with pytest.raises(ResultsError, match="no validation score was measured at every checkpoint"):
        validation_judges(pd.DataFrame([dict(r, val_auroc=float("nan"), val_auroc_rotate=float("nan"),
                                             val_auroc_splice=float("nan"), val_auroc_swap=float("nan"))
                                        for r in rows]))
    with pytest.raises(ResultsError, match="different checkpoints"):
        validation_judges(pd.DataFrame(rows[:5]))


def test_spread_labels_moves_only_labels_that_would_overlap():
    import pandas as pd

    from ust.report import _spread_labels

    placed = dict(_spread_labels(pd.Series({"a": 0.0, "b": 0.0, "c": 5.0, "d": 5.4}), gap=1.0))
    assert placed == pytest.approx({"a": -0.5, "b": 0.5, "c": 4.7, "d": 5.7})   # pairs centred on their mean
    assert dict(_spread_labels(pd.Series({"x": 2.0, "y": 0.0}), gap=1.0)) == {"y": 0.0, "x": 2.0}  # apart: unmoved
    chain = dict(_spread_labels(pd.Series({"p": 0.0, "q": 0.6, "r": 1.2}), gap=1.0))  # q joins p, r joins both
    assert chain == pytest.approx({"p": -0.4, "q": 0.6, "r": 1.6})


def test_narrow_lets_headers_wrap():
    import pandas as pd

    html = narrow(pd.DataFrame({"k-NN efficientnet": [0.5]}).style, header_width="6em").to_html()
    assert "white-space: normal" in html and 'style="font-size: 0.85em"' in html
    # only the column headers wrap and get a width; the row labels keep theirs
    header_rule = re.search(r"th\.col_heading \{([^}]*)\}", html).group(1)
    properties = dict(map(str.strip, d.split(":")) for d in header_rule.split(";") if d.strip())
    assert properties["width"] == "6em" and properties["white-space"] == "normal"
    assert not re.search(r"th \{[^}]*width", html)
    # a width, never a max-width: a cell capped below its longest word lets that word run into the next header
    assert "max-width" not in html


def test_budget_runs_and_merging_two_invocations():
    first = _budget_rows(8, [(50, 0.90), (100, 0.92)]) + _budget_rows(1, [(50, 0.99)])
    again = _budget_rows(8, [(50, 0.80)])                                   # class 8 measured again
    faster = [dict(r, threads=2, train_seconds=1.0) for r in _budget_rows(1, [(50, 0.97)])]
    merged = merge_budget_runs(first, again + faster)
    # class 8 measured again keeps its place (first), with its one new row; the new run comes last
    assert [(r["normal_class"], r["threads"], r["val_auroc"]) for r in merged] == [
        (8, 1, 0.80), (1, 1, 0.99), (1, 2, 0.97)]
    import pandas as pd

    runs = budget_runs(pd.DataFrame(merged))
    assert [title for title, _ in runs] == ["toy: normal class 8, 1 thread", "toy: normal class 1, 1 thread",
                                           "toy: normal class 1, 2 threads"]
    smaller = [dict(r, batch_size=4) for r in again]
    assert [t for t, _ in budget_runs(pd.DataFrame(first + smaller))][-1] == "toy: normal class 8, batch 4"
    larger = [dict(r, image_size="56x56") for r in again]                   # the same run on upscaled images
    assert budget_run_key(larger[0]) == ("toy", 8, 33, "pretrained:33:kc", 3, 8, 1e-3, "constant", 1, "56x56")
    assert len(merge_budget_runs(first, larger)) == len(first) + 1          # another run: nothing replaced
    assert [t for t, _ in budget_runs(pd.DataFrame(first + larger))][-1] == "toy: normal class 8, 56x56"
    other = [dict(r, teacher="teacher_p33_kc_10k") for r in again]            # the same run under another teacher
    assert len(merge_budget_runs(first, other)) == len(first) + 1
    last_title = [t for t, _ in budget_runs(pd.DataFrame(first + other))][-1]
    assert last_title == "toy: normal class 8, teacher teacher_p33_kc_10k"
    decayed = [dict(r, lr_schedule="cosine") for r in again]                  # the same run, the rate decayed
    assert len(merge_budget_runs(first, decayed)) == len(first) + 1
    assert [t for t, _ in budget_runs(pd.DataFrame(first + decayed))][-1] == "toy: normal class 8, cosine schedule"
    assert [len(curve) for _, curve in runs] == [1, 1, 1]
    fig = budget_plot(pd.DataFrame(merged))                                 # three runs: one row of panels
    assert sum(ax.get_visible() for ax in fig.axes) == 3


def test_image_size_study_pairs_upscaled_runs_with_their_native_run():
    import pandas as pd

    native = _budget_rows(8, [(100, 0.55), (200, 0.69)])
    native += [dict(r, batch_size=4) for r in _budget_rows(8, [(100, 0.6)])]
    upscaled = [dict(r, image_size="56x56") for r in _budget_rows(8, [(100, 0.88), (200, 0.94), (400, 0.95)])]
    other = [dict(r, dataset="toy2", image_size="32x32") for r in _budget_rows(0, [(100, 0.6)])]  # its own native
    frame = pd.DataFrame(native + upscaled + other).reindex(columns=list(BUDGET_COLUMNS))   # as read_budget's
    kept, comparison = image_size_study(frame)
    assert len(kept) == 4 and set(kept["image_size"]) == {"28x28", "32x32"}
    # batch-4 run has no upscaled twin, step 400 no native one: two pairs remain
    assert comparison[["iteration", "val_auroc native", "val_auroc upscaled"]].values.tolist() == [
        [100, 0.55, 0.88], [200, 0.69, 0.94]]
    assert set(comparison["image_size upscaled"]) == {"56x56"}
    assert comparison["train_seconds upscaled"].tolist() == [10.0, 20.0]              # iteration / 10 in _budget_rows
    assert comparison["val_auroc_swap native"].isna().all()                           # not measured: kept empty
    assert (comparison["hardware native"] == comparison["hardware upscaled"]).all()
    assert list(comparison.columns[:3]) == ["dataset", "normal_class", "iteration"]


BENCHMARKS = sorted(p for p in RESULTS_DIR.glob("*.csv") if (p.with_suffix(".json")).is_file())
BASELINES = sorted(RESULTS_DIR.glob("*_baselines.csv"))
#: Benchmark CSVs that cover only some classes: 3,200 steps ran for five CIFAR-10 classes before the GPU time ran out.
PARTIAL = {"cifar10_full_3200.csv": [5, 6, 7, 8, 9]}


def test_the_book_has_its_result_files():
    """The results chapter reads these; `book/results/README.md` says how each is made."""
    names = {p.name for p in RESULTS_DIR.glob("*.csv")}
    assert {"mnist.csv", "mnist_baselines.csv", "cifar10.csv", "cifar10_baselines.csv",
            "dense_extraction.csv", "student_budget.csv", "mnist_kmc.csv", "mnist_kmc17.csv",
            "score_aggregation.csv", "training_length.csv", "teacher_capacity.csv",
            "longer_teacher.csv", "longer_teacher_baselines.csv", "image_size.csv",
            "mnist_full.csv", "cifar10_full.csv", "cifar10_full_3200.csv", "mnist_full_baselines.csv",
            "cifar10_full_baselines.csv", "scale_choice.csv", "two_minutes.csv",
            "two_minutes_search.csv", "two_minutes_long.csv", "cifar10_setting_search.csv"} <= names, names


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_csv_schema_and_every_class(path):
    rows = read_rows(path)                                  # every column of ust.experiments.COLUMNS, typed
    settings = json.loads(path.with_suffix(".json").read_text())
    check_complete(rows, settings)                          # every asked-for class, seed, scale, component
    classes = PARTIAL.get(path.name, list(range(10)))       # every class, unless the file says why not
    assert sorted(settings["arguments"]["classes"]) == classes, "the table must cover all 10 classes"
    assert sorted({int(r["normal_class"]) for r in rows}) == classes
    assert all(0.0 <= r["auroc"] <= 1.0 for r in rows)


@pytest.mark.parametrize("path", BASELINES, ids=lambda p: p.name)
def test_baselines_csv_schema_and_every_class(path):
    rows = read_baselines(path)
    for dataset, method in {(r["dataset"], r["method"]) for r in rows}:     # every class once per dataset and method
        classes = [r["normal_class"] for r in rows if (r["dataset"], r["method"]) == (dataset, method)]
        assert sorted(classes) == list(range(10)), (dataset, method)
    assert all(0.0 <= r["auroc"] <= 1.0 for r in rows)


def test_student_budget_csv():
    frame = read_budget(RESULTS_DIR / "student_budget.csv")
    for _, curve in budget_runs(frame):
        assert curve["iteration"].is_monotonic_increasing and curve["train_seconds"].is_monotonic_increasing
    assert frame[["val_auroc", "auroc", "auroc_error", "auroc_variance"]].notna().all().all()
    scores = frame[list(BUDGET_VALIDATION) + ["auroc", "auroc_error", "auroc_variance"]]
    assert (scores.isna() | scores.ge(0) & scores.le(1)).all().all()          # later validation scores: empty before
    assert frame["image_size"].str.fullmatch(r"\d+x\d+").all()
    assert frame["hardware"].str.fullmatch(r"(cpu|cuda): .+").all()            # every run names its machine
    # chapter 6 captions the table with one patch size, one M and one CPU thread
    assert (frame["threads"] == 1).all() and frame["patch_size"].nunique() == 1 == frame["n_students"].nunique()


def test_two_minutes_csv_trains_every_digit_in_two_minutes_with_the_chosen_setting():
    """Chapter 6, "Two minutes, spent better": the setting that won on validation, every digit within 120 s."""
    frame = read_budget(RESULTS_DIR / "two_minutes.csv")
    assert set(frame["dataset"]) == {"mnist"} and sorted(frame["normal_class"]) == list(range(10))
    chosen = dict(batch_size=4, lr=2e-3, lr_schedule="cosine", iteration=700, threads=2, patch_size=33, n_students=3)
    for column, value in chosen.items():
        assert set(frame[column]) == {value}, column
    assert (frame["train_seconds"] <= 120).all(), frame["train_seconds"].max()    # the recorded runs, not a timer
    validation = ["val_auroc", "val_auroc_rotate", "val_auroc_swap"]
    assert frame[validation + ["auroc", "auroc_error", "auroc_variance"]].notna().all().all()

    # the search it was chosen from: with the fast protocol's run (training_length.csv, 400 steps), the chosen
    # setting scores highest on every validation anomaly measured, for both digits
    search = read_budget(RESULTS_DIR / "two_minutes_search.csv")
    assert sorted(set(search["normal_class"])) == [2, 8] and (search["threads"] == 1).all()
    runs = setting_search(search, read_budget(RESULTS_DIR / "training_length.csv"), iteration=400)
    is_chosen = (runs["batch_size"] == 4) & (runs["lr"] == 2e-3) & (runs["lr_schedule"] == "cosine")
    for label, group in runs.groupby("normal_class"):
        assert is_chosen[group.index].sum() == 1 and len(group) == 6, label
        for column in validation:
            best = group[column].max()
            assert group.loc[is_chosen[group.index], column].iloc[0] == best, (label, column)


def test_two_minutes_long_csv_trains_the_same_setting_four_times_as_long():
    """Chapter 6: the strict reference of the two-minute runs, each digit's setting at 2,800 steps, same CPU."""
    short = read_budget(RESULTS_DIR / "two_minutes.csv")
    long = read_budget(RESULTS_DIR / "two_minutes_long.csv")
    assert sorted(long["normal_class"]) == list(range(10)) and set(long["iteration"]) == {2800}
    same = [c for c in BUDGET_RUN if c != "normal_class"] + ["hardware"]     # the setting, and the CPU
    assert long[same].drop_duplicates().values.tolist() == short[same].drop_duplicates().values.tolist()
    assert long[["val_auroc", "val_auroc_rotate", "val_auroc_swap", "auroc"]].notna().all().all()
    table = short_run_table(short, long).drop("mean")
    assert (table["long: steps"] == 4 * table["steps"]).all()
    # the chapter's count: 4 digits of ten come within 0.005 of their 2,800-step run
    assert (table["long: difference"] >= -0.005).sum() == 4


def test_cifar10_setting_search_csv_tries_the_mnist_findings_on_every_class():
    """Chapter 6: MNIST's two findings on CIFAR-10, one thread, against the fast protocol's 400-step pause.

    The two-minute setting (700 steps of 4, a cosine from 2e-3) and batches
    of 8 at a constant 3e-3 (400 steps) cost about the training time of
    the fast protocol's 400 steps of 8 at 1e-3, on the same CPU, so
    ``setting_search`` puts each class's runs beside its pause at 400
    steps in ``training_length.csv``; validation judges, the test AUROC is
    shown.
    """
    import pandas as pd

    frame = read_budget(RESULTS_DIR / "cifar10_setting_search.csv")
    assert set(frame["dataset"]) == {"cifar10"} and sorted(frame["normal_class"]) == sorted(2 * list(range(10)))
    fixed = dict(threads=1, patch_size=33, n_students=3, teacher="pretrained:33:kc", image_size="32x32")
    for column, value in fixed.items():
        assert set(frame[column]) == {value}, column
    settings = {(4, 2e-3, "cosine", 700): "cosine", (8, 3e-3, "constant", 400): "3e-3"}
    keys = list(zip(frame["batch_size"], frame["lr"], frame["lr_schedule"], frame["iteration"]))
    assert sorted(keys) == sorted(10 * list(settings)), set(keys)          # each setting once for every class
    validation = ["val_auroc", "val_auroc_swap"]                   # strokes and swapped halves, as image_size.csv
    assert frame[validation + ["auroc", "auroc_error", "auroc_variance"]].notna().all().all()

    runs = setting_search(frame, read_budget(RESULTS_DIR / "training_length.csv"), iteration=400)
    assert len(runs) == 30 and set(runs["hardware"]) == {frame["hardware"].iloc[0]}     # one CPU for all
    reference = runs.iloc[0::3]                                    # setting_search: each class's reference first
    assert reference[["batch_size", "lr", "lr_schedule", "iteration"]].drop_duplicates().values.tolist() \
        == [[8, 1e-3, "constant", 400]]
    names = {(8, 1e-3, "constant"): "old", **{key[:3]: name for key, name in settings.items()}}
    seconds = settings_side_by_side(runs, names, ["train_seconds"])["train_seconds"]
    assert (seconds[["cosine", "3e-3"]].le(1.2 * seconds["old"], axis=0)).all().all()   # about equal time

    # the chapter's reading: both lose on test; the strokes say so and agree with the test class by class,
    # the swapped halves rank both higher
    side = settings_side_by_side(runs, names, validation + ["auroc"])
    wide = {column: side[column] for column in validation + ["auroc"]}
    means = {column: table.mean().round(3).to_dict() for column, table in wide.items()}
    assert means == {"val_auroc": {"3e-3": 0.649, "cosine": 0.663, "old": 0.680},
                     "val_auroc_swap": {"3e-3": 0.629, "cosine": 0.657, "old": 0.626},
                     "auroc": {"3e-3": 0.712, "cosine": 0.715, "old": 0.736}}, means
    ahead = {(column, name): int((table[name] > table["old"]).sum())
             for column, table in wide.items() for name in ("cosine", "3e-3")}
    assert ahead == {("val_auroc", "cosine"): 5, ("val_auroc", "3e-3"): 2, ("val_auroc_swap", "cosine"): 7,
                     ("val_auroc_swap", "3e-3"): 7, ("auroc", "cosine"): 4, ("auroc", "3e-3"): 2}, ahead
    test = wide["auroc"]
    agree = {(column, name): int(((table[name] > table["old"]) == (test[name] > test["old"])).sum())
             for column, table in wide.items() if column != "auroc" for name in ("cosine", "3e-3")}
    assert agree == {("val_auroc", "cosine"): 7, ("val_auroc", "3e-3"): 8, ("val_auroc_swap", "cosine"): 5,
                     ("val_auroc_swap", "3e-3"): 1}, agree
    chosen = {column: round(pd.Series([test.loc[label, name] for label, name in
                                       wide[column].idxmax(axis=1).items()]).mean(), 3) for column in validation}
    assert chosen == {"val_auroc": 0.737, "val_auroc_swap": 0.715} and round(test.max(axis=1).mean(), 3) == 0.742


def test_image_size_csv_repeats_the_cifar10_protocol_at_64_pixels():
    """Every CIFAR-10 class at 64x64 after 100 steps, the settings of training_length.csv otherwise (same CPU).

    The airplanes repeat their 64x64 run of student_budget.csv to the last
    digit: the same training, paused at the same step, scores the same.
    """
    import pandas as pd

    frame = read_budget(RESULTS_DIR / "image_size.csv")
    assert set(frame["dataset"]) == {"cifar10"} and sorted(frame["normal_class"]) == list(range(10))
    assert set(frame["image_size"]) == {"64x64"} and set(frame["iteration"]) == {100}
    assert frame[["val_auroc", "val_auroc_swap", "auroc", "auroc_error", "auroc_variance"]].notna().all().all()
    length = read_budget(RESULTS_DIR / "training_length.csv")
    native = length[length["dataset"] == "cifar10"]
    _, pairs = image_size_study(pd.concat([native, frame]))          # same run settings, CPU and step: paired
    assert sorted(pairs["normal_class"]) == list(range(10)) and set(pairs["image_size native"]) == {"32x32"}
    earlier = read_budget(RESULTS_DIR / "student_budget.csv")
    earlier = earlier[(earlier["dataset"] == "cifar10") & (earlier["image_size"] == "64x64")
                      & (earlier["iteration"] == 100)]
    scores = ["val_auroc", "auroc", "auroc_error", "auroc_variance"]
    airplanes = frame[frame["normal_class"] == 0]
    assert len(earlier) == 1
    assert earlier[scores].values[0].tolist() == pytest.approx(airplanes[scores].values[0].tolist(), abs=1e-12)


def test_longer_teacher_baselines_repeat_the_knn_teacher_protocol():
    """The k-NN baseline under the 10,000-step teacher: same classes, splits and test images as each dataset's file."""
    longer = read_baselines(RESULTS_DIR / "longer_teacher_baselines.csv")
    assert {r["method"] for r in longer} == {"knn_teacher"}
    assert {r["dataset"] for r in longer} == {"cifar10", "mnist"}
    settings = ("dataset", "normal_class", "class_name", "n_train", "n_test", "image_size")
    for dataset in ("cifar10", "mnist"):
        shipped = [r for r in read_baselines(RESULTS_DIR / f"{dataset}_baselines.csv") if r["method"] == "knn_teacher"]
        mine = [r for r in longer if r["dataset"] == dataset]
        assert [[r[k] for k in settings] for r in mine] == [[r[k] for k in settings] for r in shipped], dataset


@pytest.mark.parametrize("name, scale", [("mnist_kmc.csv", 33), ("mnist_kmc17.csv", 17)])
def test_teacher_ablation_csv_repeats_the_mnist_protocol(name, scale):
    """Each kmc CSV repeats one scale of mnist.csv on the same CPU and seeds, with another teacher."""
    kc, kc_settings = load_benchmark(RESULTS_DIR / "mnist.csv")
    kmc, kmc_settings = load_benchmark(RESULTS_DIR / name)
    seeds = kmc_settings["arguments"]["seeds"]
    assert set(seeds) <= set(kc_settings["arguments"]["seeds"])
    kc = [r for r in kc if r["scale"] == str(scale) and r["seed"] in seeds]    # the same seeds on both sides
    assert {r["teacher"] for r in kc} == {f"pretrained:{scale}:kc"}
    assert {r["teacher"] for r in kmc} == {f"pretrained:{scale}:kmc"}
    same = ("dataset", "classes", "n_students", "iterations", "batch_size", "lr", "max_test")
    assert {k: kc_settings["arguments"][k] for k in same} == {k: kmc_settings["arguments"][k] for k in same}
    assert kmc_settings["arguments"]["scales"] == [scale] and scale in kc_settings["arguments"]["scales"]
    assert kc_settings["hardware"] == kmc_settings["hardware"]      # CPU kernels decide the last digits
    assert teacher_ablation(kc + kmc, scale=scale).shape == (11, 6)


def test_main_tables_have_two_seeds_at_every_scale():
    """Both datasets: p = 17, 33 and their fusion with seeds 0 and 1, on the same test images (a spread per mean)."""
    for name in ("mnist.csv", "cifar10.csv"):
        rows, settings = load_benchmark(RESULTS_DIR / name)
        assert settings["arguments"]["seeds"] == [0, 1] and not settings["arguments"]["subset_seeds"], name
        assert settings["arguments"]["scales"] == [17, 33], name
        assert len({(r["n_test"], r["test_subset"]) for r in rows}) == 1, f"{name}: both seeds score the same images"
        for scale in ("17", "33", "fused"):
            table = seed_table(rows, scale)
            assert list(table.columns[:2]) == ["seed 0", "seed 1"] and table.notna().all().all(), (name, scale)
            assert (table["range"] >= 0).all(), (name, scale)
        _, std = auroc_table(rows)
        assert (std >= 0).all().all() and std.notna().all().all(), name


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_full_protocol_tables(dataset):
    """Issue 4's protocol: three scales and their fusion, seed 0 on every test image, seed 1 on 2,000 of them."""
    rows, settings = load_benchmark(RESULTS_DIR / f"{dataset}_full.csv")
    args = settings["arguments"]
    assert args["scales"] == [17, 33, 65] and args["seeds"] == [0, 1] and args["subset_seeds"] == {"1": 2000}
    assert (args["n_students"], args["iterations"], args["max_train"], args["max_test"]) == (3, 800, None, None)
    assert settings["hardware"].startswith("cuda: ")
    for r in rows:
        assert (r["n_test"], r["test_subset"]) == ((10000, False) if r["seed"] == 0 else (2000, True)), r
    # every class trains on its whole training split less the validation images, as in the fast tables
    fast, _ = load_benchmark(RESULTS_DIR / f"{dataset}.csv")
    assert {r["normal_class"]: r["n_train"] for r in rows} == {r["normal_class"]: r["n_train"] for r in fast}
    # the GPU agrees with the CPU: p = 33 after 800 steps, seed 0 (training_length.csv: 1,000 of the test images)
    length = read_budget(RESULTS_DIR / "training_length.csv")
    cpu = length[(length["dataset"] == dataset) & (length["patch_size"] == 33) & (length["iteration"] == 800)]
    assert len(cpu) == 10
    assert seed_means(rows).loc["p=33", "seed 0"] == pytest.approx(cpu["auroc"].mean(), abs=0.015)


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_full_baselines_score_every_test_image_of_the_students_splits(dataset):
    full = read_baselines(RESULTS_DIR / f"{dataset}_full_baselines.csv")
    fast = read_baselines(RESULTS_DIR / f"{dataset}_baselines.csv")
    assert {r["n_test"] for r in full} == {"10000"} and {r["n_test"] for r in fast} == {"1000"}
    assert {(r["normal_class"], r["method"], r["n_train"]) for r in full} == \
        {(r["normal_class"], r["method"], r["n_train"]) for r in fast}            # same methods, same training images
    students, _ = load_benchmark(RESULTS_DIR / f"{dataset}_full.csv")
    n_train = {(r["normal_class"], str(r["n_train"])) for r in students}
    assert n_train == {(r["normal_class"], r["n_train"]) for r in full}


def test_longer_full_protocol_repeats_the_800_step_runs_with_more_steps():
    long, long_settings = load_benchmark(RESULTS_DIR / "cifar10_full_3200.csv")
    full, full_settings = load_benchmark(RESULTS_DIR / "cifar10_full.csv")
    assert {r["iterations"] for r in long} == {3200} and {r["seed"] for r in long} == {0}
    same = ("n_students", "batch_size", "lr", "scales", "components", "dense", "image_size", "max_train", "max_test")
    assert {k: long_settings["arguments"][k] for k in same} == {k: full_settings["arguments"][k] for k in same}
    assert long_settings["hardware"] == full_settings["hardware"]
    key = ("normal_class", "scale", "components", "n_train", "n_test", "teacher")
    assert {tuple(r[k] for k in key) for r in long} <= {tuple(r[k] for k in key) for r in full if r["seed"] == 0}


def test_score_aggregation_csv_scores_the_students_of_mnist_csv():
    """Every digit, both reductions; its mean rows are the p = 33 students of mnist.csv (seed 0, same CPU)."""
    frame = read_aggregation(RESULTS_DIR / "score_aggregation.csv")
    table = aggregation_table(frame)
    assert list(table.index) == [str(c) for c in range(10)] + ["mean"]
    assert ((table >= 0) & (table <= 1)).all().all()
    rows, settings = load_benchmark(RESULTS_DIR / "mnist.csv")
    assert set(frame["hardware"]) == {settings["hardware"]}
    first = {r["class_name"]: r["auroc"] for r in rows if (r["scale"], r["seed"], r["components"]) == ("33", 0, "both")}
    assert table["auroc", "mean"].drop("mean").to_dict() == pytest.approx(first, abs=1e-12)


def test_scale_choice_csv_scores_the_students_of_the_benchmark_tables():
    """Every class of both datasets at p = 17, p = 33 and fused; its test AUROCs are those of mnist.csv and
    cifar10.csv (seed 0, same CPU).

    Equal to the last digit for every scale and score component: the
    benchmark trained the same students, so the choice is made among the
    very options of the benchmark tables.
    """
    frame = read_scale_choice(RESULTS_DIR / "scale_choice.csv")
    assert list(frame["dataset"].unique()) == ["mnist", "cifar10"]
    with pytest.raises(ResultsError, match="select one dataset"):
        scale_choice_table(frame)                         # both datasets' class 0 at once: several runs
    assert sorted(frame["scale"].unique()) == ["17", "33", "fused"]
    numbers = frame[[c for c in SCALE_CHOICE_COLUMNS if c.startswith(("val_", "auroc"))]]
    assert numbers.notna().all().all() and ((numbers >= 0) & (numbers <= 1)).all().all()
    for dataset in ("mnist", "cifar10"):
        mine = frame[frame["dataset"] == dataset]
        table = scale_choice_table(mine)                  # refuses several runs per class
        rows, settings = load_benchmark(RESULTS_DIR / f"{dataset}.csv")
        names = [r["class_name"] for r in sorted(rows, key=lambda r: r["normal_class"])
                 if (r["scale"], r["seed"], r["components"]) == ("33", 0, "both")]
        assert list(table.index) == names + ["mean"] and len(names) == 10, dataset
        assert set(mine["hardware"]) == {settings["hardware"]}
        assert set(mine["iterations"]) == {settings["arguments"]["iterations"]} and set(mine["seed"]) == {0}
        for column, component in (("auroc", "both"), ("auroc_error", "error"), ("auroc_variance", "variance")):
            expected = {(r["normal_class"], r["scale"]): r["auroc"] for r in rows
                        if r["seed"] == 0 and r["components"] == component}
            got = {(r.normal_class, r.scale): getattr(r, column) for r in mine.itertuples()}
            assert got == pytest.approx(expected, abs=1e-12), (dataset, component)


def test_training_length_csv_covers_every_class_and_starts_at_the_fast_protocol():
    """One run per class of both datasets; its 100-step pause is the p = 33 column of the main table (seed 0, same CPU).

    Equal to the last digit: pausing to score does not change the training,
    so the first pause repeats the fast protocol's students exactly.
    """
    frame = read_budget(RESULTS_DIR / "training_length.csv")
    assert set(frame["dataset"]) == {"mnist", "cifar10"}
    for dataset in ("mnist", "cifar10"):
        mine = frame[frame["dataset"] == dataset]
        table = training_length_table(mine)                # refuses several runs per class or unequal pauses
        assert list(table.index) == list(range(10)) + ["mean"], dataset
        tests = table.filter(regex="steps$|^test")                # the AUROC columns
        assert table.notna().all().all() and ((tests >= 0) & (tests <= 1)).all().all()
        rows, settings = load_benchmark(RESULTS_DIR / f"{dataset}.csv")
        assert set(mine["hardware"]) == {settings["hardware"]}, dataset
        first = {r["normal_class"]: r["auroc"] for r in rows
                 if (r["scale"], r["seed"], r["components"]) == ("33", 0, "both")}
        assert table["100 steps"].drop("mean").to_dict() == pytest.approx(first, abs=1e-12), dataset
    # MNIST validated with strokes and quarter turns, CIFAR-10 with all four anomalies, at every pause
    assert list(validation_judges(frame[frame["dataset"] == "mnist"]).index) == ["synthetic strokes", "quarter turns"]
    names = [label.name for label in BUDGET_VALIDATION.values()]
    assert list(validation_judges(frame[frame["dataset"] == "cifar10"]).index) == names


def test_training_length_csv_agrees_with_the_budget_runs_of_the_same_settings():
    """A run in both files (same settings, same CPU) has the same AUROCs at the pauses they share."""
    length = read_budget(RESULTS_DIR / "training_length.csv")
    budget = read_budget(RESULTS_DIR / "student_budget.csv")
    keys = BUDGET_RUN + ("iteration", "hardware")
    shared = length.merge(budget, on=list(keys), suffixes=("", " budget"))
    assert len(shared) >= 4, "the digit 8 (100, 400, 800 steps) and the airplanes (100, 400, 800) are in both"
    assert {(r["dataset"], r["normal_class"]) for _, r in shared.iterrows()} == {("mnist", 8), ("cifar10", 0)}
    for score in ("val_auroc", "auroc", "auroc_error", "auroc_variance"):
        assert (shared[score] == shared[f"{score} budget"]).all(), score


def test_dense_extraction_csv():
    path = RESULTS_DIR / "dense_extraction.csv"
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["method"] for r in rows} == {"dilated", "multipool"}
    assert {int(r["image_size"]) for r in rows} == {64, 128, 256}
    assert all(float(r["max_abs_diff"]) <= 1e-4 and float(r["speedup"]) > 1 for r in rows)


def test_teacher_ablation_columns_and_means():
    kc = _rows(seeds=(0,), scales=("33",))
    kmc = [dict(r, teacher="u", auroc=r["auroc"] + 0.1) for r in kc]
    kc += [dict(r, components="error", auroc=0.9) for r in kc]
    table = teacher_ablation(kc + kmc, scale=33)
    assert list(table.columns) == [("both", "t"), ("both", "u"), ("error", "t")]   # no error rows for "u"
    assert list(table.index) == ["c0", "c1", "mean"]
    # class 1, seed 0, p=33: 0.5 + 0.1 + 0.033 for "t", 0.1 more for "u"
    assert table.loc["c1", ("both", "t")] == pytest.approx(0.633)
    assert table.loc["mean", ("both", "u")] == pytest.approx((0.633 + 0.533) / 2 + 0.1)
    with pytest.raises(ResultsError, match="at least two teachers"):
        teacher_ablation(kc, scale=33)
    with pytest.raises(ResultsError, match="no rows at scale 17"):
        teacher_ablation(kc + kmc, scale=17)


def _capacity_row(teacher, source, explained, ceiling, iterations=3000):
    return dict(teacher=teacher, patch_size=33, iterations=iterations, source=source, n_patches=4096,
                total_variance=1280.0, floor=(1 - ceiling) * 1280, refit_loss=(1 - explained) * 1280,
                ceiling=ceiling, explained=explained, seconds=9.5, hardware="cpu: toy (AVX2), 1 torch threads, 2 CPUs")


def test_capacity_table_plot_and_merging(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    path = tmp_path / "capacity.csv"
    old = [_capacity_row("a", "photos", 0.3, 0.8), _capacity_row("a", "digits", 0.2, 0.9)]
    new = [_capacity_row("a", "photos", 0.4, 0.8), _capacity_row("b", "photos", 0.5, 0.8, iterations=10000)]
    write_rows(path, merge_capacity_rows(old, new), columns=CAPACITY_COLUMNS)
    frame = read_capacity(path)
    # the repeated row replaced where it stood; the new teacher appended
    assert frame[["teacher", "source", "explained"]].values.tolist() == [["a", "photos", 0.4], ["a", "digits", 0.2],
                                                                           ["b", "photos", 0.5]]
    table = capacity_table(frame)
    assert list(table.index) == [("a", 3000), ("b", 10000)]
    assert list(table.columns) == [("photos", "explained"), ("photos", "ceiling"), ("digits", "explained"),
                                   ("digits", "ceiling")]
    assert table.loc[("b", 10000), ("photos", "explained")] == 0.5
    assert math.isnan(table.loc[("b", 10000), ("digits", "ceiling")])
    ax = capacity_plot(frame, labels={"a": "3,000 steps"})
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["3,000 steps", "p = 33, 10,000 steps"]
    assert sorted(round(p.get_height(), 3) for p in ax.patches if p.get_height() == p.get_height()) == [
        0.2, 0.4, 0.5, 0.8, 0.8, 0.9]                     # filled: explained; outlined: ceiling (NaN: no bar)


def test_read_capacity_refuses_impossible_rows(tmp_path):
    path = tmp_path / "capacity.csv"
    write_rows(path, [_capacity_row("a", "photos", 0.9, 0.8)], columns=CAPACITY_COLUMNS)
    with pytest.raises(ResultsError, match="more than their ceiling"):
        read_capacity(path)
    write_rows(path, [_capacity_row("a", "photos", 0.3, 0.8)] * 2, columns=CAPACITY_COLUMNS)
    with pytest.raises(ResultsError, match="measured twice"):
        read_capacity(path)
    with pytest.raises(ResultsError, match="teacher_capacity.py"):
        read_capacity(tmp_path / "missing.csv")


def test_teacher_capacity_csv_covers_the_shipped_teachers():
    frame = read_capacity(RESULTS_DIR / "teacher_capacity.csv")
    shipped = frame[frame["teacher"].str.startswith("pretrained:")]
    assert {(t, s) for t, s in zip(shipped["teacher"], shipped["source"])} == {
        (f"pretrained:{p}:kc", s) for p in (17, 33, 65) for s in ("pretraining", "cifar10", "mnist")}
    assert (frame["n_patches"] >= 16 * 128).all() and (frame["explained"] > 0).all()
    assert (shipped.set_index(["patch_size", "source"])["iterations"] == shipped["patch_size"].map(
        {17: 3000, 33: 3000, 65: 1500}).values).all()


def test_longer_teacher_csv_repeats_the_training_length_runs_under_another_teacher():
    """Every class of both datasets at 100 and 400 steps, with the settings of training_length.csv but the teacher."""
    longer = read_budget(RESULTS_DIR / "longer_teacher.csv")
    length = read_budget(RESULTS_DIR / "training_length.csv")
    assert set(longer["teacher"]) == {"teacher_p33_kc_10k"} and set(longer["dataset"]) == {"cifar10", "mnist"}
    steps = ["100 steps", "400 steps"]
    for dataset in ("cifar10", "mnist"):
        table = training_length_table(longer[longer["dataset"] == dataset])  # one run per class, the same pauses
        assert list(table.index) == list(range(10)) + ["mean"] and list(table.columns[:2]) == steps, dataset
        assert ((table[steps] > 0.5) & (table[steps] <= 1)).all().all(), dataset
    settings = [k for k in BUDGET_RUN if k != "teacher"] + ["iteration", "n_test", "hardware"]
    shipped = length[length["iteration"].isin([100, 400])]
    assert sorted(map(tuple, longer[settings].values.tolist())) == sorted(map(tuple, shipped[settings].values.tolist()))
    capacity = read_capacity(RESULTS_DIR / "teacher_capacity.csv").set_index(["teacher", "source"])
    for source in ("pretraining", "cifar10", "mnist"):     # the longer teacher carries more of P than the shipped one
        assert capacity.loc[("teacher_p33_kc_10k", source), "iterations"] == 10000
        assert (capacity.loc[("teacher_p33_kc_10k", source), "explained"]
                > capacity.loc[("pretrained:33:kc", source), "explained"]), source
