"""Figures: the numbers drawn are the numbers computed, and every figure is labelled."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ust import plotting  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _auroc_by_pairs(scores, labels):
    """P(anomalous score > normal score) + 0.5 P(tie), over all pairs: the AUROC's definition."""
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = s[y][:, None], s[~y][None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


def _example(seed=0, n_normal=300, n_anomalous=120):
    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.normal(0, 1, n_normal), rng.normal(1.2, 1, n_anomalous)])
    labels = np.concatenate([np.zeros(n_normal, int), np.ones(n_anomalous, int)])
    return scores, labels


# --------------------------------------------------------------------------- histogram

def test_histogram_counts_on_shared_bins():
    scores, labels = _example()
    ax = plotting.score_histogram(scores, labels, bins=15, density=False)
    normal, anomalous = ax.patches[0].get_data(), ax.patches[1].get_data()
    edges = np.histogram_bin_edges(scores, bins=15)
    np.testing.assert_allclose(normal.edges, edges)
    np.testing.assert_allclose(anomalous.edges, edges)
    np.testing.assert_array_equal(normal.values, np.histogram(scores[labels == 0], bins=edges)[0])
    np.testing.assert_array_equal(anomalous.values, np.histogram(scores[labels == 1], bins=edges)[0])
    assert normal.values.sum() == 300 and anomalous.values.sum() == 120
    assert ax.get_ylabel() == "number of images" and ax.get_xlabel() == "anomaly score" and ax.get_title()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["normal (n = 300)", "anomalous (n = 120)"]


def test_histogram_density_integrates_to_one_per_class():
    scores, labels = _example(1)
    ax = plotting.score_histogram(torch.tensor(scores), torch.tensor(labels), bins=20)
    for patch in ax.patches[:2]:
        data = patch.get_data()
        assert np.sum(data.values * np.diff(data.edges)) == pytest.approx(1.0)
    assert ax.get_ylabel() == "density"


def test_histogram_log_bins_and_threshold_line():
    scores = np.array([0.001, 0.01, 0.1, 1.0, 10.0, 0.02])
    labels = np.array([0, 0, 0, 1, 1, 1])
    ax = plotting.score_histogram(scores, labels, bins=4, log_x=True, threshold=0.5)
    np.testing.assert_allclose(ax.patches[0].get_data().edges, np.logspace(-3, 1, 5))
    assert ax.get_xscale() == "log"
    assert [tuple(line.get_xdata()) for line in ax.lines] == [(0.5, 0.5)]
    with pytest.raises(ValueError, match="positive"):
        plotting.score_histogram(scores - 1, labels, log_x=True)


def test_histogram_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="one label per score"):
        plotting.score_histogram([0.1, 0.2], [0, 1, 1])
    with pytest.raises(ValueError, match="0 .normal. or 1"):
        plotting.score_histogram([0.1, 0.2], [0, 2])


# --------------------------------------------------------------------------- ROC

def test_roc_legend_shows_the_auroc():
    scores, labels = _example(2)
    worse = scores + np.random.default_rng(3).normal(0, 2, scores.size)
    ax = plotting.roc_plot({"good": (scores, labels), "noisy": (worse, labels)})
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == f"good (AUROC = {_auroc_by_pairs(scores, labels):.3f})"
    assert legend[1] == f"noisy (AUROC = {_auroc_by_pairs(worse, labels):.3f})"
    assert legend[2].startswith("chance")
    assert "false positive rate" in ax.get_xlabel() and "true positive rate" in ax.get_ylabel()


def test_roc_curve_points_by_hand():
    # thresholds inf, 0.8, 0.4, 0.35, 0.1 -> (fpr, tpr) (0,0) (0,.5) (.5,.5) (.5,1) (1,1)
    ax = plotting.roc_plot({"toy": ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])}, chance=False)
    line = ax.lines[0]
    np.testing.assert_allclose(line.get_xdata(), [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(line.get_ydata(), [0, 0.5, 0.5, 1, 1])
    assert "AUROC = 0.750" in ax.get_legend().get_texts()[0].get_text()


def test_threshold_view_marks_the_operating_point():
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    labels = np.array([0, 0, 1, 0, 1, 1])
    fig = plotting.threshold_view(scores, labels, threshold=0.5)
    hist, roc = fig.axes[:2]
    point = roc.lines[-1]
    # flagged: 0.6, 0.7, 0.9 -> TPR 2/3, FPR 1/3
    assert point.get_xdata()[0] == pytest.approx(1 / 3) and point.get_ydata()[0] == pytest.approx(2 / 3)
    assert "67% of anomalies found" in fig._suptitle.get_text() and "33% of normal" in fig._suptitle.get_text()
    assert any(tuple(line.get_xdata()) == (0.5, 0.5) for line in hist.lines)


# --------------------------------------------------------------------------- images and maps

def test_image_grid_layout_titles_and_pixels():
    images = torch.rand(10, 1, 8, 8)
    fig = plotting.image_grid(images, [f"#{i}" for i in range(10)], ncols=4, suptitle="Ten images")
    assert len(fig.axes) == 10  # 3 x 4 grid, two empty cells removed
    assert [ax.get_title() for ax in fig.axes] == [f"#{i}" for i in range(10)]
    np.testing.assert_allclose(fig.axes[3].images[0].get_array(), images[3, 0].numpy())
    assert fig._suptitle.get_text() == "Ten images"
    rgb = plotting.image_grid(np.random.rand(2, 3, 5, 5))
    assert rgb.axes[0].images[0].get_array().shape == (5, 5, 3)
    with pytest.raises(ValueError, match="titles"):
        plotting.image_grid(images, ["one"])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        plotting.image_grid(torch.rand(2, 4, 8, 8))


def test_overlay_has_colorbar_with_label_and_range():
    ax = plotting.overlay(torch.rand(1, 16, 16), torch.arange(16.0).reshape(4, 4), vmin=0, vmax=20,
                          title="digit")
    shown = ax.images[1]
    assert shown.get_clim() == (0, 20) and shown.get_extent() == [0, 16, 16, 0]
    colorbar_axes = [a for a in ax.figure.axes if a is not ax]
    assert colorbar_axes and colorbar_axes[0].get_ylabel() == "anomaly score"


def test_overlay_grid_shares_one_colour_range():
    maps = torch.stack([torch.full((8, 8), float(i)) for i in range(3)])
    fig = plotting.overlay_grid(torch.rand(3, 1, 8, 8), maps, ["a", "b", "c"], ncols=3)
    clims = {ax.images[1].get_clim() for ax in fig.axes[:3]}
    assert clims == {(0.0, 2.0)}
    assert fig.axes[-1].get_ylabel() == "anomaly score"


def test_error_map_grid_rows_and_shared_error_scale():
    x = torch.rand(4, 1, 8, 8)
    r = x.clone()
    r[1] = 0
    e = (x - r).square().sum(1)
    fig = plotting.error_map_grid(x, r, e, ["n", "n", "a", "a"], title_colors=plotting.label_colors([0, 0, 1, 1]))
    axes = fig.axes[:12]
    assert [axes[i * 4].get_ylabel() for i in range(3)] == ["input", "output", "error"]
    assert axes[2].title.get_color() == plotting.ANOMALY_COLOR and axes[0].get_title() == "n"
    assert axes[8 + 1].images[0].get_clim() == (0.0, pytest.approx(float(e.max())))
    assert fig.axes[-1].get_ylabel() == "squared error"
    with pytest.raises(ValueError, match="must match"):
        plotting.error_map_grid(x, r[:2], e)


def test_loss_curves_plot_the_values():
    ax = plotting.loss_curves({"train": [1.0, 0.5, 0.25], "val": [1.2, 0.7, 0.4]})
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [1.2, 0.7, 0.4])
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "epoch" and ax.get_ylabel() == "training loss"
    single = plotting.loss_curves([3.0, 2.0], log_y=False, xlabel="iteration")
    assert single.get_legend() is None and single.get_xlabel() == "iteration"
    with pytest.raises(ValueError, match="non-empty"):
        plotting.loss_curves([])


def test_scores_by_class_boxes_and_median_line():
    scores = np.array([1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 0.5, 0.6, 0.7])
    classes = np.array([8, 8, 8, 0, 0, 0, 1, 1, 1])
    ax = plotting.scores_by_class(scores, classes, normal_class=8, class_names=[str(i) for i in range(10)])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "8\n(normal)"]
    medians = [line.get_ydata()[0] for line in ax.lines if line.get_linewidth() == 2]
    assert medians == [11.0, 0.6, 2.0]
    (median_line,) = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert median_line.get_ydata()[0] == 2.0
    with pytest.raises(ValueError, match="does not occur"):
        plotting.scores_by_class(scores, classes, normal_class=5)


def test_one_class_examples_titles_follow_the_labels():
    from ust.data import ImageArrays, DatasetSplits, one_class_split

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 6, 6, 1), dtype=np.uint8)
    y = np.arange(40) % 4
    splits = DatasetSplits(ImageArrays(x, y, ("a", "b", "c", "d"), "toy"),
                           ImageArrays(x, y, ("a", "b", "c", "d"), "toy"), "toy")
    data = one_class_split(splits, 2)
    fig = plotting.one_class_examples(data, n_normal=3, n_anomalous=5, ncols=4, class_names="abcd")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:3] == ["normal: c"] * 3
    assert len(titles) == 8 and all(t.startswith("anomaly: ") and t != "anomaly: c" for t in titles[3:])
    assert fig.axes[0].title.get_color() == plotting.NORMAL_COLOR
    assert fig.axes[5].title.get_color() == plotting.ANOMALY_COLOR
    assert "'c'" in fig._suptitle.get_text()
    # the images shown are the test images with those labels
    first = fig.axes[0].images[0].get_array()
    assert any(np.allclose(first, img[0].numpy()) for img in data.test[data.test_labels == 0])


# --------------------------------------------------------------------------- chapters 2-4

def test_smoothed_loss_curves_draw_raw_and_moving_average():
    values = [4.0, 2.0, 3.0, 1.0, 2.0]
    ax = plotting.smoothed_loss_curves({"a": values}, window=2)
    raw, smooth = ax.lines
    np.testing.assert_allclose(raw.get_ydata(), values)
    np.testing.assert_allclose(smooth.get_xdata(), [2, 3, 4, 5])
    np.testing.assert_allclose(smooth.get_ydata(), [3.0, 2.5, 2.0, 1.5])
    assert ax.get_xlabel() == "iteration" and "mean of 2" in ax.get_legend().get_texts()[0].get_text()
    with pytest.raises(ValueError, match="window"):
        plotting.smoothed_loss_curves(values, window=6)


def test_matrix_heatmap_shows_the_matrix_with_a_labelled_colorbar():
    m = torch.tensor([[1.0, -0.5], [-0.5, 1.0]])
    ax = plotting.matrix_heatmap(m, title="c")
    np.testing.assert_allclose(ax.images[0].get_array(), m.numpy())
    assert ax.images[0].get_clim() == (-1.0, 1.0) and ax.get_title() == "c"
    assert ax.figure.axes[-1].get_ylabel() == "correlation"
    with pytest.raises(ValueError, match="2-D"):
        plotting.matrix_heatmap(torch.zeros(3))


def test_receptive_fields_panels_scale_with_the_patch_and_mark_the_field():
    maps = {5: torch.ones(5, 5), 9: torch.zeros(9, 9)}
    maps[9][:7, :7] = 1
    fig = plotting.receptive_fields(maps, {5: 5, 9: 7})
    left, right = fig.axes[:2]
    assert "receptive field 7x7" in right.get_title()
    (box,) = right.patches
    assert box.get_width() == 7 and box.get_height() == 7
    shown = right.images[0].get_array()
    assert shown.mask[8, 8] and not shown.mask[0, 0]  # zero influence is masked (white)
    assert left.get_position().width < right.get_position().width
    with pytest.raises(ValueError, match="no receptive field"):
        plotting.receptive_fields({5: torch.ones(5, 5)}, {})


def test_nearest_neighbours_rows_and_distance_titles():
    q = torch.rand(2, 3, 6, 6)
    nb = torch.rand(2, 3, 3, 6, 6)
    d = torch.tensor([[0.1, 0.2, 0.3], [1.0, 2.0, 3.0]])
    fig = plotting.nearest_neighbours(q, nb, d)
    assert len(fig.axes) == 8
    assert fig.axes[0].get_title() == "query" and fig.axes[5].get_title() == "d = 1"
    np.testing.assert_allclose(fig.axes[6].images[0].get_array(), nb[1, 1].permute(1, 2, 0).numpy())
    with pytest.raises(ValueError, match="distances"):
        plotting.nearest_neighbours(q, nb, d[:1])


def test_triplet_grid_rows_and_verdicts():
    x = torch.rand(3, 1, 5, 5)
    fig = plotting.triplet_grid(x, x, x, correct=[True, False, True])
    assert [fig.axes[i * 3].get_ylabel() for i in range(3)] == ["anchor p", "positive p+", "negative p-"]
    assert fig.axes[1].get_title() == "wrong" and fig.axes[1].title.get_color() == plotting.ANOMALY_COLOR
    with pytest.raises(ValueError, match="same number"):
        plotting.triplet_grid(x, x[:2], x)


def test_multipool_offsets_windows_and_unwarped_colours():
    fig = plotting.multipool_offsets(np.arange(36.0).reshape(6, 6))
    top = fig.axes[:4]
    assert [ax.get_title() for ax in top] == ["offset (0, 0)", "offset (0, 1)", "offset (1, 0)", "offset (1, 1)"]
    assert len(top[0].patches) == 9 and len(top[3].patches) == 4  # windows that fit
    bottom = fig.axes[4]
    np.testing.assert_allclose(bottom.images[0].get_array(), np.arange(36.0).reshape(6, 6)[1:, 1:])
    assert len(bottom.patches) == 25


def test_lattice_points_follow_stride_and_offset():
    ax = plotting.lattice_points(torch.rand(1, 8, 8), 4, [(0, 0), (1, 3)])
    first, second = ax.collections
    np.testing.assert_array_equal(first.get_offsets(), [[0, 0], [4, 0], [0, 4], [4, 4]])
    np.testing.assert_array_equal(second.get_offsets(), [[3, 1], [7, 1], [3, 5], [7, 5]])
    with pytest.raises(ValueError, match="offsets"):
        plotting.lattice_points(torch.rand(8, 8), 4, [(4, 0)])


def test_channel_histograms_before_and_after():
    before = torch.randn(500, 4) * torch.tensor([1.0, 10.0, 0.1, 5.0]) + 3
    after = (before - before.mean(0)) / before.std(0)
    fig = plotting.channel_histograms(before, after, [0, 1])
    assert len(fig.axes[0].patches) == 2 and len(fig.axes[1].patches) == 2
    assert fig.axes[1].get_xlabel() == "descriptor value"
    maps = torch.randn(2, 4, 3, 3)
    plotting.channel_histograms(maps, maps, [3])
    with pytest.raises(ValueError, match="same shape"):
        plotting.channel_histograms(before, after[:10], [0])


def test_descriptor_rgb_projects_on_the_reference_components():
    torch.manual_seed(0)
    ref = torch.randn(2, 5, 4, 4) * torch.tensor([5.0, 3.0, 2.0, 0.1, 0.1]).view(1, 5, 1, 1)
    rgb = plotting.descriptor_rgb(ref)
    assert rgb.shape == (2, 3, 4, 4) and rgb.min() >= 0 and rgb.max() <= 1
    # independently: principal axes from the covariance's eigenvectors, largest loading positive
    pixels = ref.permute(0, 2, 3, 1).reshape(-1, 5).double().numpy()
    centred = pixels - pixels.mean(0)
    values, vectors = np.linalg.eigh(centred.T @ centred)
    basis = vectors[:, np.argsort(values)[::-1][:3]]
    basis *= np.sign(basis[np.abs(basis).argmax(0), [0, 1, 2]])
    proj = centred @ basis
    low, high = np.percentile(proj, 1, axis=0), np.percentile(proj, 99, axis=0)
    expected = np.clip((proj - low) / (high - low), 0, 1).reshape(2, 4, 4, 3).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(rgb.numpy(), expected, atol=1e-5)
    other = torch.randn(1, 5, 3, 3)
    assert plotting.descriptor_rgb(other, reference=ref).shape == (1, 3, 3, 3)
    with pytest.raises(ValueError, match="same d"):
        plotting.descriptor_rgb(ref, reference=torch.zeros(1, 4, 2, 2))


def test_map_grid_rgb_and_scalar_rows():
    images = torch.rand(3, 1, 5, 5)
    fig = plotting.map_grid(images, {"teacher": torch.rand(3, 3, 5, 5), "error e": torch.arange(75.0).reshape(3, 5, 5)},
                            titles=["a", "b", "c"], title_colors=plotting.label_colors([0, 1, 1]))
    axes = fig.axes[:9]
    assert [axes[i * 3].get_ylabel() for i in range(3)] == ["input", "teacher", "error e"]
    assert axes[1].title.get_color() == plotting.ANOMALY_COLOR
    assert axes[7].images[0].get_clim() == (0.0, 74.0)
    assert fig.axes[-1].get_ylabel() == "error e"  # one colour bar, for the scalar row
    assert len(fig.axes) == 10
    with pytest.raises(ValueError, match="2 maps for 3 images"):
        plotting.map_grid(images, {"x": torch.rand(2, 5, 5)})


def test_score_scatter_points_by_label():
    ax = plotting.score_scatter([1, 2, 3], [4, 5, 6], [0, 1, 1], xlabel="e", ylabel="v")
    normal, anomalous = ax.collections
    np.testing.assert_allclose(normal.get_offsets(), [[1, 4]])
    np.testing.assert_allclose(anomalous.get_offsets(), [[2, 5], [3, 6]])
    assert ax.get_xlabel() == "e" and "anomalous (n = 2)" in ax.get_legend().get_texts()[1].get_text()


def test_pretraining_curves_one_panel_per_term():
    hist = {"a": {"total": [3, 2, 1], "distillation": [3, 2, 1], "compactness": [9, 8, 7]},
            "b": {"distillation": [5, 4, 3, 2], "metric": [1, 0.5, 0.2, 0.1]}}
    fig = plotting.pretraining_curves(hist, window=2)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["distillation L_k", "metric learning L_m", "compactness L_c"]
    assert len(fig.axes[0].lines) == 4 and len(fig.axes[1].lines) == 2
    # run "b" has the same colour in both of its panels, and the figure has one legend entry per run
    assert fig.axes[0].lines[2].get_color() == fig.axes[1].lines[0].get_color() != fig.axes[0].lines[0].get_color()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["a (mean of 2)", "b (mean of 2)"]
    with pytest.raises(ValueError, match="none of the histories"):
        plotting.pretraining_curves({"x": {"total": [1.0]}})
