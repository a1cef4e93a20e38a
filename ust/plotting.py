"""The figures the book's chapters share, each labelled and returned for the reader to adapt.

Introduced in the book's chapter *Introduction* (:func:`image_grid`) and
*Reconstruction failure modes* (the rest); every later chapter reuses them.

Every function returns the matplotlib :class:`~matplotlib.figure.Figure` or
:class:`~matplotlib.axes.Axes` it drew on, with a title, axis labels and,
where colours carry a value, a colour bar with its label. Images are
``(N, C, H, W)`` or ``(N, H, W)`` tensors or arrays with values in
``[0, 1]`` (one or three channels); scores are 1-D, higher = more anomalous;
labels are 0 (normal) and 1 (anomalous), as everywhere in :mod:`ust`.

* :func:`image_grid`: images in a grid, one title each;
* :func:`one_class_examples`: normal and anomalous test images of a
  one-class split, titled and coloured by label;
* :func:`score_histogram`: normal against anomalous scores, on common bins;
* :func:`roc_plot`: ROC curves with the AUROC in the legend;
* :func:`threshold_view`: the histogram and the ROC curve with one
  threshold marked, and its true and false positive rates;
* :func:`scores_by_class`: one box of scores per original class, which
  shows which anomalies slip under the normal scores;
* :func:`overlay`, :func:`overlay_grid`: score maps over their images,
  with a colour bar;
* :func:`error_map_grid`: inputs, reconstructions and error maps in rows;
* :func:`label_colors`: the normal/anomalous colour of each label, for titles;
* :func:`loss_curves`: training losses against epochs or iterations;
  :func:`smoothed_loss_curves` for noisy per-iteration losses.

Introduced in *Teacher losses*: :func:`matrix_heatmap` (correlation
matrices), :func:`receptive_fields`, :func:`nearest_neighbours`,
:func:`triplet_grid` and :func:`pretraining_curves`. In *Student
regression*: :func:`multipool_offsets`, :func:`lattice_points`,
:func:`channel_histograms`, :func:`descriptor_rgb` (descriptor maps as
colours) and :func:`map_grid` (images with rows of maps below). In
*Uncertainty*: :func:`score_scatter`.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch

from . import metrics

__all__ = [
    "NORMAL_COLOR",
    "ANOMALY_COLOR",
    "image_grid",
    "one_class_examples",
    "score_histogram",
    "roc_plot",
    "threshold_view",
    "scores_by_class",
    "overlay",
    "overlay_grid",
    "error_map_grid",
    "label_colors",
    "loss_curves",
    "smoothed_loss_curves",
    "matrix_heatmap",
    "receptive_fields",
    "nearest_neighbours",
    "triplet_grid",
    "multipool_offsets",
    "lattice_points",
    "channel_histograms",
    "descriptor_rgb",
    "map_grid",
    "score_scatter",
    "pretraining_curves",
]

#: Colour of normal examples in every figure (seaborn's colour-blind safe blue).
NORMAL_COLOR = "#0173b2"
#: Colour of anomalous examples (seaborn's colour-blind safe orange).
ANOMALY_COLOR = "#de8f05"
#: Colour map of score and error maps (dark = low, bright = high).
SCORE_CMAP = "inferno"
#: Widest figure in inches: at 100 dpi it fits the book's text column without shrinking its fonts.
MAX_WIDTH = 7.2


def _numpy(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    try:
        return np.asarray(x, dtype=np.float64) if not isinstance(x, np.ndarray) else x
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numpy array or a torch tensor; got {type(x).__name__}.") from err


def _images(images, name: str = "images") -> np.ndarray:
    """(N, H, W) or (N, H, W, 3) float array for imshow."""
    x = _numpy(images, name)
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 4:
        if x.shape[1] in (1, 3):  # (N, C, H, W)
            x = np.moveaxis(x, 1, -1)
        if x.shape[-1] == 1:
            x = x[..., 0]
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] != 3):
        raise ValueError(f"{name} must be (N, C, H, W) with C = 1 or 3, or (N, H, W); got shape {x.shape}.")
    return x


def _maps(maps, name: str = "score_maps") -> np.ndarray:
    x = _numpy(maps, name)
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"{name} must be (N, H, W); got shape {x.shape}. Reduce channels first.")
    return x


def _scores_labels(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = _numpy(scores, "scores").astype(np.float64).reshape(-1)
    y = _numpy(labels, "labels").reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"scores has {s.size} entries but labels has {y.size}; give one label per score.")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (normal) or 1 (anomalous).")
    return s, y.astype(bool)


def _new_axes(ax, figsize):
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def label_colors(labels) -> list[str]:
    """One colour per label: :data:`NORMAL_COLOR` for 0, :data:`ANOMALY_COLOR` for 1 (for titles)."""
    y = _numpy(labels, "labels").reshape(-1)
    return [ANOMALY_COLOR if v else NORMAL_COLOR for v in y]


def _log_axis(axis) -> None:
    """Log scale with ticks at 1, 2 and 5 times powers of ten, labelled plainly (0.002, 0.01, ...)."""
    from matplotlib import ticker

    axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def _grid_shape(n: int, ncols: int) -> tuple[int, int]:
    ncols = max(1, min(int(ncols), n))
    return math.ceil(n / ncols), ncols


# --------------------------------------------------------------------------- images

def image_grid(images, titles: Sequence[str] | None = None, *, ncols: int = 8, suptitle: str | None = None,
               cell_size: float | None = None, title_colors: Sequence[str] | None = None, cmap: str = "gray"):
    """Images in a grid, each with a small title.

    Args:
        images: ``(N, C, H, W)`` or ``(N, H, W)`` in ``[0, 1]``.
        titles: ``N`` titles (e.g. the class, or "normal"/"anomalous").
        ncols: Images per row.
        suptitle: Title of the whole figure.
        cell_size: Inches per image (default: as large as fits :data:`MAX_WIDTH`, at most 1.4).
        title_colors: ``N`` colours for the titles (e.g. by label).
        cmap: Colour map of grayscale images.

    Returns:
        The :class:`~matplotlib.figure.Figure`; its axes are in
        ``fig.axes`` in reading order (unused cells are removed).
    """
    import matplotlib.pyplot as plt

    x = _images(images)
    n = len(x)
    if n == 0:
        raise ValueError("image_grid needs at least one image.")
    if titles is not None and len(titles) != n:
        raise ValueError(f"got {n} images but {len(titles)} titles.")
    rows, cols = _grid_shape(n, ncols)
    cell = min(1.4, MAX_WIDTH / cols) if cell_size is None else float(cell_size)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * cell, rows * (cell + 0.25) + 0.5), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            fig.delaxes(ax)
            continue
        ax.imshow(np.clip(x[i], 0, 1), cmap=cmap, vmin=0, vmax=1)
        ax.set_axis_off()
        if titles is not None:
            color = {} if title_colors is None else {"color": title_colors[i]}
            ax.set_title(str(titles[i]), fontsize="small" if cell >= 1.1 else "x-small", **color)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def one_class_examples(data, n_normal: int = 8, n_anomalous: int = 16, *, ncols: int = 8, seed: int = 0,
                       class_names: Sequence[str] | None = None, suptitle: str | None = None):
    """Test images of a one-class split: normal ones first (blue titles), then anomalies (orange titles).

    Args:
        data: A :class:`ust.data.OneClassData`.
        n_normal, n_anomalous: How many of each (fewer if the split has fewer).
        ncols: Images per row.
        seed: The images are drawn at random with ``np.random.default_rng(seed)``.
        class_names: Names in label order (default: the labels).
        suptitle: Figure title (default: says which class is normal).

    Returns:
        The :class:`~matplotlib.figure.Figure`; each title reads
        ``"normal: 8"`` or ``"anomaly: 3"`` (label and original class).
    """
    rng = np.random.default_rng(seed)
    labels = _numpy(data.test_labels, "test_labels").astype(int)
    classes = _numpy(data.test_classes, "test_classes").astype(int)
    picked = []
    for value, n in ((0, n_normal), (1, n_anomalous)):
        pool = np.flatnonzero(labels == value)
        picked.append(np.sort(rng.choice(pool, size=min(int(n), len(pool)), replace=False)))
    index = np.concatenate(picked)
    name = (lambda k: str(class_names[k])) if class_names is not None else str
    titles = [f"{'anomaly' if labels[i] else 'normal'}: {name(classes[i])}" for i in index]
    colors = label_colors(labels[index])
    images = _numpy(data.test, "test")[index]
    return image_grid(images, titles, ncols=ncols, title_colors=colors,
                      suptitle=suptitle or f"Normal class {data.class_name!r} against every other class")


# --------------------------------------------------------------------------- scores

def score_histogram(scores, labels, *, bins: int | Sequence[float] = 40, density: bool = True, ax=None,
                    title: str = "Anomaly scores", xlabel: str = "anomaly score", log_x: bool = False,
                    threshold: float | None = None, names: tuple[str, str] = ("normal", "anomalous")):
    """Histograms of the normal and the anomalous scores on the same bins.

    Both histograms share one set of bin edges, ``np.histogram_bin_edges``
    of all scores (or of their logarithm with ``log_x``), and are drawn as
    step outlines (:meth:`~matplotlib.axes.Axes.stairs`): ``ax.patches[0]``
    holds the normal counts, ``ax.patches[1]`` the anomalous ones
    (``.get_data()`` gives values and edges). With ``density=True`` each
    histogram integrates to one, so a small class stays visible next to a
    large one.

    Args:
        scores: ``(N,)`` scores.
        labels: ``(N,)`` 0 normal, 1 anomalous.
        bins: Number of bins or the bin edges.
        density: Normalise each class to unit area (else counts).
        ax: Axes to draw into (default: a new figure).
        title, xlabel: Labels.
        log_x: Logarithmic score axis (for errors spanning decades; scores
            must then be positive).
        threshold: Draw this decision threshold as a vertical line.
        names: Legend names of the two classes.

    Returns:
        The :class:`~matplotlib.axes.Axes`.
    """
    s, y = _scores_labels(scores, labels)
    if log_x and (s <= 0).any():
        raise ValueError("log_x needs positive scores; drop log_x or shift the scores.")
    fig, ax = _new_axes(ax, (6.4, 3.8))
    if np.ndim(bins) == 0:
        edges = np.histogram_bin_edges(np.log10(s) if log_x else s, bins=int(bins))
        edges = 10 ** edges if log_x else edges
    else:
        edges = np.asarray(bins, dtype=np.float64)
    drawn = []
    for mask, name, color in ((~y, names[0], NORMAL_COLOR), (y, names[1], ANOMALY_COLOR)):
        counts, _ = np.histogram(s[mask], bins=edges, density=False)
        if density and counts.sum():
            counts = counts / (counts.sum() * np.diff(edges))
        ax.stairs(counts, edges, fill=True, alpha=0.35, color=color, label=f"{name} (n = {int(mask.sum()):,})")
        drawn.append((counts, color))
    for counts, color in drawn:  # outlines on top of both fills
        ax.stairs(counts, edges, color=color, linewidth=1.5)
    if log_x:
        ax.set_xscale("log")
        _log_axis(ax.xaxis)
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1.2, label=f"threshold = {threshold:.3g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density" if density else "number of images")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize="small")
    return ax


def roc_plot(curves: Mapping[str, tuple], *, ax=None, title: str = "ROC curve", chance: bool = True):
    """ROC curves, one per entry, with the AUROC in the legend.

    Args:
        curves: ``{name: (scores, labels)}``; the legend reads
            ``"name (AUROC = 0.873)"``, computed with
            :func:`ust.metrics.image_auroc`.
        ax: Axes to draw into (default: a new square figure).
        title: Axes title.
        chance: Draw the diagonal of a random score.

    Returns:
        The :class:`~matplotlib.axes.Axes`.
    """
    if not curves:
        raise ValueError("roc_plot needs at least one (scores, labels) pair.")
    fig, ax = _new_axes(ax, (4.6, 4.4))
    for name, (scores, labels) in curves.items():
        s, y = _scores_labels(scores, labels)
        fpr, tpr, _ = metrics.roc_curve(s, y)
        auc = metrics.image_auroc(s, y)
        ax.plot(fpr, tpr, linewidth=2, label=f"{name} (AUROC = {auc:.3f})")
    if chance:
        ax.plot([0, 1], [0, 1], color="gray", linestyle=":", linewidth=1, label="chance (AUROC = 0.500)")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate (normal flagged)")
    ax.set_ylabel("true positive rate (anomalies found)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    return ax


def threshold_view(scores, labels, threshold: float, *, bins: int = 40, log_x: bool = False,
                   title: str | None = None, xlabel: str = "anomaly score"):
    """One decision threshold seen twice: on the score histograms and on the ROC curve.

    Images with ``score >= threshold`` are flagged anomalous. Left: the
    histograms with the threshold; right: the ROC curve with the operating
    point, whose true and false positive rates are in the title.

    Returns:
        The :class:`~matplotlib.figure.Figure` (two axes).
    """
    import matplotlib.pyplot as plt

    s, y = _scores_labels(scores, labels)
    fig, (left, right) = plt.subplots(1, 2, figsize=(MAX_WIDTH * 1.15, 3.9), width_ratios=(1.5, 1))
    score_histogram(s, y, bins=bins, ax=left, threshold=threshold, log_x=log_x, xlabel=xlabel,
                    title="Scores and the threshold")
    roc_plot({"ROC": (s, y)}, ax=right, title="Operating point")
    flagged = s >= threshold
    tpr = float(flagged[y].mean()) if y.any() else float("nan")
    fpr = float(flagged[~y].mean()) if (~y).any() else float("nan")
    right.plot([fpr], [tpr], "o", color="black", markersize=8, label=f"threshold: TPR {tpr:.2f}, FPR {fpr:.2f}")
    right.legend(loc="lower right", fontsize="small")
    fig.suptitle(title or f"Threshold {threshold:.3g}: {tpr:.0%} of anomalies found, "
                          f"{fpr:.0%} of normal images flagged")
    return fig


def scores_by_class(scores, classes, normal_class: int, *, class_names: Sequence[str] | None = None, ax=None,
                    title: str = "Scores by test class", ylabel: str = "anomaly score", log_y: bool = False):
    """One box plot of scores per original class; the normal class in blue, the others in orange.

    A dashed line marks the median normal score: every box reaching below
    it holds anomalies that score like normal images.

    Args:
        scores: ``(N,)`` scores.
        classes: ``(N,)`` original class labels (e.g. ``OneClassData.test_classes``).
        normal_class: Label of the normal class.
        class_names: Names in label order (default: the labels).
        ax: Axes to draw into.
        title, ylabel: Labels.
        log_y: Logarithmic score axis.

    Returns:
        The :class:`~matplotlib.axes.Axes`; the boxes are in class order,
        ``ax.get_xticklabels()`` name them.
    """
    s = _numpy(scores, "scores").astype(np.float64).reshape(-1)
    c = _numpy(classes, "classes").reshape(-1).astype(np.int64)
    if s.shape != c.shape:
        raise ValueError(f"scores has {s.size} entries but classes has {c.size}; give one class per score.")
    present = np.unique(c)
    if int(normal_class) not in present:
        raise ValueError(f"normal_class {normal_class} does not occur in classes {present.tolist()}.")
    fig, ax = _new_axes(ax, (7.0, 3.8))
    groups = [s[c == k] for k in present]
    boxes = ax.boxplot(groups, positions=np.arange(len(present)), widths=0.6, patch_artist=True,
                       showfliers=False, medianprops={"color": "black", "linewidth": 2})
    for k, box in zip(present, boxes["boxes"]):
        box.set_facecolor(NORMAL_COLOR if k == normal_class else ANOMALY_COLOR)
        box.set_alpha(0.6)
    names = [str(class_names[k]) if class_names is not None else str(k) for k in present]
    ax.set_xticks(np.arange(len(present)), [f"{n}\n(normal)" if k == normal_class else n
                                            for k, n in zip(present, names)])
    ax.axhline(float(np.median(s[c == normal_class])), color=NORMAL_COLOR, linestyle="--", linewidth=1.2,
               label="median normal score")
    if log_y:
        ax.set_yscale("log")
        _log_axis(ax.yaxis)
    ax.set_xlabel("test class")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize="small")
    return ax


# --------------------------------------------------------------------------- maps

def overlay(image, score_map, *, ax=None, alpha: float = 0.55, vmin: float | None = None,
            vmax: float | None = None, title: str | None = None, colorbar: bool = True,
            label: str = "anomaly score"):
    """A score map over its image (grayscale underneath, colours on top), with a colour bar.

    Args:
        image: ``(C, H, W)`` or ``(H, W)`` in ``[0, 1]``.
        score_map: ``(H, W)``; a map of another size is stretched over the
            image (``extent``), as the networks' native lattice is.
        ax: Axes to draw into.
        alpha: Opacity of the scores.
        vmin, vmax: Colour range (share one across images to compare them).
        title: Axes title.
        colorbar: Add a colour bar labelled ``label``.

    Returns:
        The :class:`~matplotlib.axes.Axes`.
    """
    img = _images(_numpy(image, "image")[None])[0]
    smap = _maps(score_map)[0]
    fig, ax = _new_axes(ax, (3.6, 3.2))
    h, w = img.shape[:2]
    ax.imshow(np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1, extent=(0, w, h, 0))
    shown = ax.imshow(smap, cmap=SCORE_CMAP, alpha=alpha, vmin=vmin, vmax=vmax, extent=(0, w, h, 0),
                      interpolation="bilinear")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize="small")
    if colorbar:
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label=label)
    return ax


def overlay_grid(images, score_maps, titles: Sequence[str] | None = None, *, ncols: int = 6,
                 alpha: float = 0.55, vmax: float | None = None, suptitle: str | None = None,
                 label: str = "anomaly score", cell_size: float | None = None):
    """Score maps over their images in a grid, one shared colour range and colour bar.

    Returns:
        The :class:`~matplotlib.figure.Figure`.
    """
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    x, m = _images(images), _maps(score_maps)
    if len(x) != len(m):
        raise ValueError(f"got {len(x)} images but {len(m)} score maps.")
    vmin = float(m.min())
    vmax = float(m.max()) if vmax is None else float(vmax)
    rows, cols = _grid_shape(len(x), ncols)
    cell = min(1.8, (MAX_WIDTH - 1.0) / cols) if cell_size is None else float(cell_size)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * cell + 1.0, rows * (cell + 0.3) + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(x):
            fig.delaxes(ax)
            continue
        overlay(x[i], m[i], ax=ax, alpha=alpha, vmin=vmin, vmax=vmax, colorbar=False,
                title=None if titles is None else str(titles[i]))
    mappable = mpl.cm.ScalarMappable(norm=mpl.colors.Normalize(vmin, vmax), cmap=SCORE_CMAP)
    fig.colorbar(mappable, ax=[a for a in axes.flat if a in fig.axes], shrink=0.8, label=label)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def error_map_grid(images, reconstructions, error_maps, titles: Sequence[str] | None = None, *,
                   vmax: float | None = None, suptitle: str | None = None, cell_size: float | None = None,
                   title_colors: Sequence[str] | None = None,
                   row_labels: tuple[str, str, str] = ("input", "output", "error")):
    """Inputs, their reconstructions and the per-pixel errors, one column per image.

    The error row shares one colour range (``0`` to ``vmax``, default the
    largest error shown) and one colour bar, so that columns compare.

    Args:
        images, reconstructions: ``(N, C, H, W)`` or ``(N, H, W)``.
        error_maps: ``(N, H, W)``, e.g. :func:`ust.baselines.reconstruction_error_maps`.
        titles: ``N`` column titles (short: the columns are narrow).
        vmax: Top of the error colour range (larger errors get its colour).
        suptitle: Figure title.
        cell_size: Inches per image (default: as large as fits :data:`MAX_WIDTH`).
        title_colors: ``N`` title colours, e.g. :func:`label_colors` of the labels.
        row_labels: Labels of the three rows (input, reconstruction, error).

    Returns:
        The :class:`~matplotlib.figure.Figure` (``3 x N`` axes).
    """
    import matplotlib.pyplot as plt

    x, r, e = _images(images, "images"), _images(reconstructions, "reconstructions"), _maps(error_maps, "error_maps")
    n = len(x)
    if not len(r) == len(e) == n:
        raise ValueError(f"got {n} images, {len(r)} reconstructions and {len(e)} error maps; they must match.")
    top = float(e.max()) if vmax is None else float(vmax)
    cell = min(1.5, (MAX_WIDTH - 1.4) / n) if cell_size is None else float(cell_size)
    fig, axes = plt.subplots(3, n, figsize=(n * cell + 1.4, 3 * cell + 1.0), squeeze=False)
    shown = None
    for j in range(n):
        axes[0, j].imshow(np.clip(x[j], 0, 1), cmap="gray", vmin=0, vmax=1)
        axes[1, j].imshow(np.clip(r[j], 0, 1), cmap="gray", vmin=0, vmax=1)
        shown = axes[2, j].imshow(e[j], cmap=SCORE_CMAP, vmin=0, vmax=top)
        if titles is not None:
            color = {} if title_colors is None else {"color": title_colors[j]}
            axes[0, j].set_title(str(titles[j]), fontsize="small" if cell >= 1.1 else "x-small", **color)
        for i in range(3):
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            axes[i, j].grid(False)
    for i, name in enumerate(row_labels):
        axes[i, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize="small")
    fig.colorbar(shown, ax=list(axes[2]), shrink=0.9, label="squared error")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


# --------------------------------------------------------------------------- training

def loss_curves(losses: Mapping[str, Sequence[float]] | Sequence[float], *, ax=None, xlabel: str = "epoch",
                ylabel: str = "training loss", title: str = "Training loss", log_y: bool = True,
                start: int = 1):
    """Training losses against epochs (or iterations), one line per entry.

    Args:
        losses: A sequence of losses, or ``{name: losses}``.
        ax: Axes to draw into.
        xlabel, ylabel, title: Labels.
        log_y: Logarithmic loss axis (losses fall by decades).
        start: Number of the first epoch/iteration on the x axis.

    Returns:
        The :class:`~matplotlib.axes.Axes`.
    """
    series = dict(losses) if isinstance(losses, Mapping) else {"loss": list(losses)}
    if not series or any(len(v) == 0 for v in series.values()):
        raise ValueError("loss_curves needs at least one non-empty sequence of losses.")
    fig, ax = _new_axes(ax, (5.6, 3.6))
    for name, values in series.items():
        v = _numpy(values, name).reshape(-1)
        ax.plot(np.arange(start, start + len(v)), v, marker="o" if len(v) <= 30 else None, label=name)
    return _label_loss_axes(ax, xlabel, ylabel, title, log_y, legend=isinstance(losses, Mapping))


def _label_loss_axes(ax, xlabel: str, ylabel: str, title: str, log_y: bool, legend: bool):
    """Labels, title, optional log scale and legend shared by the loss plots."""
    if log_y:
        ax.set_yscale("log")
        _log_axis(ax.yaxis)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if legend:
        ax.legend(fontsize="small")
    return ax


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of each run of ``window`` consecutive values (``len - window + 1`` of them)."""
    kernel = np.ones(int(window)) / int(window)
    return np.convolve(values, kernel, mode="valid")


def smoothed_loss_curves(losses: Mapping[str, Sequence[float]] | Sequence[float], window: int = 50, *, ax=None,
                         xlabel: str = "iteration", ylabel: str = "training loss", title: str = "Training loss",
                         log_y: bool = True, colors: Mapping[str, str] | None = None):
    """Noisy per-iteration losses: each drawn faintly, with its moving average on top.

    The moving average over ``window`` iterations is drawn at the window's
    last iteration, so the smoothed line starts at iteration ``window``.

    Args:
        losses: A sequence of losses per iteration, or ``{name: losses}``.
        window: Iterations per moving average (at most the length of the
            shortest sequence).
        ax, xlabel, ylabel, title, log_y: As for :func:`loss_curves`.
        colors: Optional colour per name (default: matplotlib's cycle).

    Returns:
        The :class:`~matplotlib.axes.Axes`; for each entry ``ax.lines``
        holds the raw line, then the smoothed one (labelled with the name).
    """
    series = dict(losses) if isinstance(losses, Mapping) else {"loss": list(losses)}
    if not series or any(len(v) == 0 for v in series.values()):
        raise ValueError("smoothed_loss_curves needs at least one non-empty sequence of losses.")
    shortest = min(len(v) for v in series.values())
    if not 1 <= int(window) <= shortest:
        raise ValueError(f"window must lie between 1 and the shortest sequence's length ({shortest}); got {window}.")
    fig, ax = _new_axes(ax, (5.6, 3.6))
    for name, values in series.items():
        v = _numpy(values, name).reshape(-1)
        x = np.arange(1, len(v) + 1)
        raw, = ax.plot(x, v, linewidth=0.8, alpha=0.3, color=(colors or {}).get(name))
        ax.plot(x[int(window) - 1:], _moving_average(v, window), color=raw.get_color(), linewidth=2,
                label=f"{name} (mean of {int(window)})" if int(window) > 1 else name)
    return _label_loss_axes(ax, xlabel, ylabel, title, log_y, legend=True)


# --------------------------------------------------------------------------- teacher (chapter Teacher losses)

def matrix_heatmap(matrix, *, ax=None, title: str = "Correlation matrix", xlabel: str = "channel j",
                   ylabel: str = "channel i", label: str = "correlation", vmin: float = -1.0, vmax: float = 1.0,
                   cmap: str = "RdBu_r", colorbar: bool = True):
    """A square matrix as a heatmap, e.g. the ``d x d`` correlations of :func:`ust.correlation_matrix`.

    A diverging colour map centred on zero: red positive, blue negative,
    white uncorrelated.

    Args:
        matrix: ``(n, m)`` tensor or array.
        ax: Axes to draw into (default: a new figure).
        title, xlabel, ylabel: Labels.
        label: Colour bar label.
        vmin, vmax: Colour range.
        cmap: Colour map.
        colorbar: Add a colour bar.

    Returns:
        The :class:`~matplotlib.axes.Axes`; ``ax.images[0]`` holds the matrix.
    """
    m = _numpy(matrix, "matrix")
    if m.ndim != 2:
        raise ValueError(f"matrix must be 2-D; got shape {m.shape}.")
    fig, ax = _new_axes(ax, (4.4, 3.8))
    shown = ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.grid(False)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if colorbar:
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label=label)
    return ax


def receptive_fields(influence: Mapping[int, object], fields: Mapping[int, int], *,
                     suptitle: str = "Which input pixels change one descriptor",
                     label: str = "|gradient| (log scale, relative to its maximum)"):
    """Where a patch network's single output looks, one panel per patch size.

    Each panel shows the ``p x p`` input patch, coloured by how strongly the
    descriptor depends on each pixel (e.g. the absolute gradient of the
    output, summed over channels), on a logarithmic scale relative to the
    panel's largest value; pixels with zero influence are white. A dashed
    square outlines the receptive field (from the top-left corner, as
    :class:`ust.PatchNet` documents). Panels are as wide as their patches,
    so one pixel has the same size in every panel.

    Args:
        influence: ``{p: (p, p) map}`` of non-negative influences.
        fields: ``{p: receptive field}`` (e.g. ``PatchNet(p).receptive_field``).
        suptitle: Figure title.
        label: Colour bar label.

    Returns:
        The :class:`~matplotlib.figure.Figure` (one axes per patch size, then the colour bar).
    """
    import matplotlib as mpl
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    sizes = list(influence)
    if not sizes:
        raise ValueError("receptive_fields needs at least one influence map.")
    maps = {}
    for p in sizes:
        m = _numpy(influence[p], f"influence[{p}]")
        if m.ndim != 2 or (m < 0).any():
            raise ValueError(f"influence[{p}] must be a non-negative 2-D map; got shape {m.shape}.")
        if p not in fields:
            raise ValueError(f"no receptive field given for p={p}.")
        maps[p] = m
    widths = [maps[p].shape[1] for p in sizes]
    fig, axes = plt.subplots(1, len(sizes), figsize=(MAX_WIDTH, 3.3), width_ratios=widths, squeeze=False)
    norm = mpl.colors.LogNorm(vmin=1e-4, vmax=1.0)
    cmap = mpl.colormaps["viridis"].with_extremes(bad="white")
    for ax, p in zip(axes[0], sizes):
        m = maps[p]
        top = m.max() if m.max() > 0 else 1.0
        rel = np.ma.masked_less_equal(m / top, 0)
        ax.imshow(rel, cmap=cmap, norm=norm, interpolation="nearest")
        field = int(fields[p])
        ax.add_patch(Rectangle((-0.5, -0.5), field, field, fill=False, edgecolor="black", linestyle="--",
                               linewidth=1.5))
        ax.set_title(f"p = {p}: input {m.shape[0]}x{m.shape[1]},\nreceptive field {field}x{field}",
                     fontsize="small")
        ax.set_xlabel("column (pixels)")
        ax.grid(False)
    axes[0, 0].set_ylabel("row (pixels)")
    fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=list(axes[0]), shrink=0.85, label=label)
    fig.suptitle(suptitle)
    return fig


def nearest_neighbours(queries, neighbours, distances, *, suptitle: str = "Nearest neighbours in descriptor space",
                       query_label: str = "query", distance_label: str = "d"):
    """Query patches (first column) and their nearest neighbours, one row per query.

    Args:
        queries: ``(Q, C, p, p)`` patches.
        neighbours: ``(Q, K, C, p, p)`` their ``K`` nearest neighbours, nearest first.
        distances: ``(Q, K)`` the distances, shown above each neighbour.
        suptitle: Figure title.
        query_label: Title of the query column.
        distance_label: Name of the distance in the titles.

    Returns:
        The :class:`~matplotlib.figure.Figure` (``Q x (K + 1)`` axes).
    """
    import matplotlib.pyplot as plt

    q = _images(queries, "queries")
    nb = _numpy(neighbours, "neighbours")
    d = _numpy(distances, "distances")
    if nb.ndim != 5 or nb.shape[0] != len(q) or d.shape != nb.shape[:2]:
        raise ValueError(f"neighbours must be (Q, K, C, p, p) and distances (Q, K) with Q = {len(q)}; got "
                         f"{nb.shape} and {d.shape}.")
    n_q, k = nb.shape[:2]
    cell = min(1.3, MAX_WIDTH / (k + 1.3))
    fig, axes = plt.subplots(n_q, k + 1, figsize=((k + 1) * cell + 0.3, n_q * (cell + 0.3) + 0.5), squeeze=False)
    for i in range(n_q):
        row = [q[i]] + list(_images(nb[i], "neighbours"))
        for j, ax in enumerate(axes[i]):
            ax.imshow(np.clip(row[j], 0, 1), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if j == 0:
                for spine in ax.spines.values():
                    spine.set_edgecolor(ANOMALY_COLOR)
                    spine.set_linewidth(3)
                ax.set_title(query_label, fontsize="small")
            else:
                ax.set_title(f"{distance_label} = {d[i, j - 1]:.3g}", fontsize="x-small")
    fig.suptitle(suptitle)
    return fig


def triplet_grid(anchor, positive, negative, correct=None, *, suptitle: str = "Triplets"):
    """Triplets of patches in columns: anchor, positive and negative in three rows.

    Args:
        anchor, positive, negative: ``(n, C, p, p)`` patches each (e.g.
            :meth:`ust.data.PatchSampler.triplets`).
        correct: Optional ``(n,)`` booleans: is the positive nearer than the
            negative? Shown as the column title (blue "right", orange "wrong").
        suptitle: Figure title.

    Returns:
        The :class:`~matplotlib.figure.Figure` (``3 x n`` axes).
    """
    import matplotlib.pyplot as plt

    rows = [_images(anchor, "anchor"), _images(positive, "positive"), _images(negative, "negative")]
    n = len(rows[0])
    if any(len(r) != n for r in rows):
        raise ValueError(f"anchor, positive and negative must hold the same number of patches; got "
                         f"{[len(r) for r in rows]}.")
    ok = None if correct is None else _numpy(correct, "correct").reshape(-1).astype(bool)
    if ok is not None and len(ok) != n:
        raise ValueError(f"correct needs one entry per triplet ({n}); got {len(ok)}.")
    cell = min(1.3, (MAX_WIDTH - 1.0) / n)
    fig, axes = plt.subplots(3, n, figsize=(n * cell + 1.0, 3 * cell + 0.9), squeeze=False)
    for i, name in enumerate(("anchor p", "positive p+", "negative p-")):
        for j in range(n):
            ax = axes[i, j]
            ax.imshow(np.clip(rows[i][j], 0, 1), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        axes[i, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize="small")
    if ok is not None:
        for j in range(n):
            axes[0, j].set_title("right" if ok[j] else "wrong", fontsize="small",
                                 color=NORMAL_COLOR if ok[j] else ANOMALY_COLOR)
    fig.suptitle(suptitle)
    return fig


# --------------------------------------------------------------------------- students (chapter Student regression)

def multipool_offsets(values, *, suptitle: str = "Multipooling: one 2x2 max-pool at four offsets"):
    """Bailer et al.'s multipooling on a small map: the four pooling grids and where their outputs go.

    Top row: the map with the 2x2 windows of the pool that starts at row
    offset ``i`` and column offset ``j``, for ``(i, j)`` = (0, 0), (0, 1),
    (1, 0), (1, 1), each in its own colour. Bottom: the stride-1 result after
    *unwarping*, every position coloured by the offset whose pool computed it.

    Args:
        values: ``(H, W)`` map (a few pixels wide, e.g. 8 x 8).
        suptitle: Figure title.

    Returns:
        The :class:`~matplotlib.figure.Figure`: four axes on top, one below.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    x = _numpy(values, "values")
    if x.ndim != 2 or min(x.shape) < 3:
        raise ValueError(f"values must be a 2-D map of at least 3x3; got shape {x.shape}.")
    h, w = x.shape
    colors = ["#0173b2", "#de8f05", "#029e73", "#cc78bc"]
    fig = plt.figure(figsize=(MAX_WIDTH, 4.9))
    grid = fig.add_gridspec(2, 4, height_ratios=(1, 1.15))
    offsets = [(0, 0), (0, 1), (1, 0), (1, 1)]
    for k, (i, j) in enumerate(offsets):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(x, cmap="gray")
        for r in range(i, h - 1, 2):
            for c in range(j, w - 1, 2):
                ax.add_patch(Rectangle((c - 0.45, r - 0.45), 1.9, 1.9, fill=False, edgecolor=colors[k],
                                       linewidth=1.6))
        ax.set_title(f"offset ({i}, {j})", color=colors[k], fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    ax = fig.add_subplot(grid[1, 1:3])
    pooled = np.maximum.reduce([x[:-1, :-1], x[1:, :-1], x[:-1, 1:], x[1:, 1:]])  # stride-1 2x2 max
    ax.imshow(pooled, cmap="gray")
    for r in range(h - 1):
        for c in range(w - 1):
            k = 2 * (r % 2) + (c % 2)
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=True, facecolor=colors[k], alpha=0.45,
                                   edgecolor="none"))
    ax.set_title("unwarped: the pooled map at every position,\ncoloured by the offset that computed it",
                 fontsize="small")
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.grid(False)
    fig.suptitle(suptitle)
    return fig


def lattice_points(image, stride: int, offsets: Sequence[tuple[int, int]], *, ax=None,
                   title: str | None = None):
    """The pixels where :meth:`ust.DensePatchNet.strided` computes descriptors, for a few offsets.

    Args:
        image: ``(C, H, W)`` or ``(H, W)`` in ``[0, 1]``.
        stride: The network's stride ``S``.
        offsets: ``(o_r, o_c)`` pairs; each lattice ``(o_r + S a, o_c + S b)``
            is drawn in its own colour and marker.
        ax: Axes to draw into.
        title: Axes title.

    Returns:
        The :class:`~matplotlib.axes.Axes`; ``ax.collections`` holds one
        scatter per offset.
    """
    img = _images(_numpy(image, "image")[None])[0]
    fig, ax = _new_axes(ax, (4.2, 4.0))
    h, w = img.shape[:2]
    ax.imshow(np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1)
    markers = "osD^v<>p"
    for k, (o_r, o_c) in enumerate(offsets):
        if not (0 <= o_r < stride and 0 <= o_c < stride):
            raise ValueError(f"offsets must lie in [0, {stride}); got {(o_r, o_c)}.")
        rows, cols = np.meshgrid(np.arange(o_r, h, stride), np.arange(o_c, w, stride), indexing="ij")
        ax.scatter(cols.ravel(), rows.ravel(), s=22, marker=markers[k % len(markers)],
                   label=f"offset ({o_r}, {o_c})", edgecolors="black", linewidths=0.5)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.grid(False)
    ax.set_title(title or f"Native lattices, stride S = {stride}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")
    return ax


def channel_histograms(before, after, channels: Sequence[int], *, bins: int = 40,
                       suptitle: str = "Teacher descriptors per channel",
                       titles: tuple[str, str] = ("raw descriptors", "normalised descriptors")):
    """Histograms of a few descriptor channels before and after normalisation.

    Args:
        before: ``(N, d)`` raw descriptors (or ``(B, d, H, W)`` maps, every
            pixel one descriptor).
        after: The same descriptors normalised (same shape).
        channels: The channels to draw, one colour each.
        bins: Bins per histogram.
        suptitle: Figure title.
        titles: Titles of the two panels.

    Returns:
        The :class:`~matplotlib.figure.Figure` (two axes: before, after).
    """
    import matplotlib.pyplot as plt

    def flat(x, name):
        a = _numpy(x, name)
        if a.ndim == 4:
            a = np.moveaxis(a, 1, -1).reshape(-1, a.shape[1])
        if a.ndim != 2:
            raise ValueError(f"{name} must be (N, d) or (B, d, H, W); got shape {a.shape}.")
        return a

    b, a = flat(before, "before"), flat(after, "after")
    if b.shape != a.shape:
        raise ValueError(f"before and after must have the same shape; got {b.shape} and {a.shape}.")
    fig, axes = plt.subplots(1, 2, figsize=(MAX_WIDTH, 3.3))
    for ax, data, name in zip(axes, (b, a), titles):
        for ch in channels:
            ax.hist(data[:, ch], bins=bins, density=True, histtype="step", linewidth=1.6, label=f"channel {ch}")
        ax.set_title(name)
        ax.set_xlabel("descriptor value")
        ax.set_ylabel("density")
    axes[1].legend(fontsize="x-small")
    fig.suptitle(suptitle)
    return fig


def descriptor_rgb(maps, reference=None, *, percentile: float = 1.0) -> torch.Tensor:
    """Dense descriptor maps as RGB images: their first three principal components.

    The principal components (and the colour range, the ``percentile`` and
    ``100 - percentile`` percentiles of each component) are measured on
    ``reference`` (default: ``maps`` itself). Project teacher and student
    maps with the same reference, e.g. the teacher's maps of normal images,
    and equal colours mean equal descriptors.

    Args:
        maps: ``(B, d, H, W)`` descriptor maps, ``d >= 3``.
        reference: ``(B', d, H', W')`` maps that define the components.
        percentile: Clipping percentile of the colour range.

    Returns:
        ``(B, 3, H, W)`` float tensor in ``[0, 1]``.
    """
    x = torch.as_tensor(_numpy(maps, "maps"), dtype=torch.float64)
    ref = x if reference is None else torch.as_tensor(_numpy(reference, "reference"), dtype=torch.float64)
    if x.dim() != 4 or ref.dim() != 4 or x.shape[1] != ref.shape[1] or x.shape[1] < 3:
        raise ValueError(f"maps and reference must be (B, d, H, W) with the same d >= 3; got {tuple(x.shape)} and "
                         f"{tuple(ref.shape)}.")
    d = x.shape[1]
    pixels = ref.permute(0, 2, 3, 1).reshape(-1, d)
    mean = pixels.mean(0)
    _, _, v = torch.linalg.svd(pixels - mean, full_matrices=False)
    basis = v[:3].T  # (d, 3)
    for k in range(3):  # a fixed sign: the largest loading is positive
        if basis[basis[:, k].abs().argmax(), k] < 0:
            basis[:, k] = -basis[:, k]
    ref_proj = (pixels - mean) @ basis
    low = torch.quantile(ref_proj, percentile / 100, dim=0)
    high = torch.quantile(ref_proj, 1 - percentile / 100, dim=0)
    proj = (x.permute(0, 2, 3, 1) - mean) @ basis
    rgb = ((proj - low) / (high - low).clamp_min(1e-12)).clamp(0, 1)
    return rgb.permute(0, 3, 1, 2).float()


def map_grid(images, rows: Mapping[str, object], titles: Sequence[str] | None = None, *,
             title_colors: Sequence[str] | None = None, vmax: Mapping[str, float] | None = None,
             suptitle: str | None = None, cell_size: float | None = None, cmap: str = SCORE_CMAP):
    """Images in the first row and maps of them in the rows below, one column per image.

    A row of ``(N, 3, H, W)`` maps is shown as RGB images (e.g.
    :func:`descriptor_rgb`); a row of ``(N, H, W)`` maps as scores with one
    colour range for the whole row (``0`` to ``vmax[name]``, default the
    row's largest value) and its own colour bar, so columns compare.

    Args:
        images: ``(N, C, H, W)`` or ``(N, H, W)`` in ``[0, 1]``.
        rows: ``{row name: maps}``, in display order.
        titles: ``N`` column titles.
        title_colors: ``N`` title colours, e.g. :func:`label_colors`.
        vmax: Top of the colour range per scalar row.
        suptitle: Figure title.
        cell_size: Inches per image.
        cmap: Colour map of the scalar rows.

    Returns:
        The :class:`~matplotlib.figure.Figure` (``(1 + len(rows)) x N`` axes, then the colour bars).
    """
    import matplotlib.pyplot as plt

    x = _images(images)
    n = len(x)
    prepared = []
    for name, maps in rows.items():
        m = _numpy(maps, name)
        rgb = m.ndim == 4 and m.shape[1] == 3
        m = np.moveaxis(m, 1, -1) if rgb else _maps(m, name)
        if len(m) != n:
            raise ValueError(f"row {name!r} has {len(m)} maps for {n} images.")
        prepared.append((name, m, rgb))
    if titles is not None and len(titles) != n:
        raise ValueError(f"got {n} images but {len(titles)} titles.")
    cell = min(1.5, (MAX_WIDTH - 1.6) / n) if cell_size is None else float(cell_size)
    n_rows = 1 + len(prepared)
    fig, axes = plt.subplots(n_rows, n, figsize=(n * cell + 1.6, n_rows * cell + 0.9), squeeze=False)
    for j in range(n):
        axes[0, j].imshow(np.clip(x[j], 0, 1), cmap="gray", vmin=0, vmax=1)
        if titles is not None:
            color = {} if title_colors is None else {"color": title_colors[j]}
            axes[0, j].set_title(str(titles[j]), fontsize="small" if cell >= 1.1 else "x-small", **color)
    axes[0, 0].set_ylabel("input", rotation=0, ha="right", va="center", fontsize="small")
    for i, (name, m, rgb) in enumerate(prepared, start=1):
        top = None if rgb else float((vmax or {}).get(name, m.max()))
        shown = None
        for j in range(n):
            if rgb:
                axes[i, j].imshow(np.clip(m[j], 0, 1))
            else:
                shown = axes[i, j].imshow(m[j], cmap=cmap, vmin=0, vmax=top)
        axes[i, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize="small")
        if shown is not None:
            fig.colorbar(shown, ax=list(axes[i]), shrink=0.9, label=name if len(name) <= 14 else None)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


# --------------------------------------------------------------------------- uncertainty (chapter Uncertainty)

def score_scatter(x, y, labels, *, ax=None, title: str = "Two scores per image", xlabel: str = "score 1",
                  ylabel: str = "score 2", names: tuple[str, str] = ("normal", "anomalous"), max_points: int = 4000,
                  seed: int = 0):
    """One point per image: two scores against each other, coloured by label.

    Args:
        x, y: ``(N,)`` the two scores.
        labels: ``(N,)`` 0 normal, 1 anomalous.
        ax: Axes to draw into.
        title, xlabel, ylabel: Labels.
        names: Legend names of the two classes.
        max_points: Draw at most this many points (a seeded random subset).
        seed: Seed of that subset.

    Returns:
        The :class:`~matplotlib.axes.Axes`; ``ax.collections[0]`` holds the
        normal points, ``[1]`` the anomalous ones.
    """
    sx, yl = _scores_labels(x, labels)
    sy, _ = _scores_labels(y, labels)
    keep = np.arange(len(sx))
    if len(keep) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(keep), max_points, replace=False))
    fig, ax = _new_axes(ax, (4.8, 4.2))
    for mask, name, color in ((~yl[keep], names[0], NORMAL_COLOR), (yl[keep], names[1], ANOMALY_COLOR)):
        ax.scatter(sx[keep][mask], sy[keep][mask], s=9, alpha=0.55, color=color, edgecolors="none",
                   label=f"{name} (n = {int(mask.sum()):,})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small", markerscale=2)
    return ax


def pretraining_curves(histories: Mapping[str, Mapping[str, Sequence[float]]], window: int = 50, *,
                       terms: Sequence[str] = ("distillation", "metric", "compactness"),
                       suptitle: str = "Teacher pretraining losses"):
    """The loss terms of one or more teacher pretrainings, one panel per term.

    Args:
        histories: ``{name: history}`` where ``history`` maps loss names to
            per-iteration values, as :attr:`ust.training.TeacherTraining.history`
            (and the ``"history"`` of a pretraining's ``.json`` log) does.
        window: Moving-average window (see :func:`smoothed_loss_curves`);
            shortened for short runs.
        terms: The loss terms to draw, in this order; those no history holds
            are left out.
        suptitle: Figure title.

    Returns:
        The :class:`~matplotlib.figure.Figure`, one axes per term drawn.
    """
    import matplotlib.pyplot as plt

    names = {"distillation": "distillation L_k", "metric": "metric learning L_m", "compactness": "compactness L_c"}
    present = [t for t in terms if any(t in h and len(h[t]) for h in histories.values())]
    if not present:
        raise ValueError(f"none of the histories holds any of the terms {tuple(terms)}.")
    fig, axes = plt.subplots(1, len(present), figsize=(MAX_WIDTH, 3.9), squeeze=False, layout="constrained")
    colors = {name: f"C{i % 10}" for i, name in enumerate(histories)}    # one colour per run in every panel
    for ax, term in zip(axes[0], present):
        series = {name: h[term] for name, h in histories.items() if term in h and len(h[term])}
        shortest = min(len(v) for v in series.values())
        smoothed_loss_curves(series, min(int(window), shortest), ax=ax, title=names.get(term, term),
                             ylabel="loss" if ax is axes[0, 0] else "", log_y=True, colors=colors)
        ax.get_legend().remove()
    handles = {line.get_label(): line for ax in axes[0] for line in ax.lines if not line.get_label().startswith("_")}
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=min(2, len(handles)),
               fontsize="small")
    fig.suptitle(suptitle)
    return fig
