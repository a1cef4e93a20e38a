"""What every chapter of the book does first: seed, device, figure style, data, cache.

Introduced in the book's chapter *Introduction*. The first code cell of
every chapter is::

    import ust
    ctx = ust.notebook.setup(seed=0)

which

* seeds Python, NumPy and PyTorch (:func:`ust.runtime.seed_everything`), so
  that a chapter re-run on the CPU prints the same numbers;
* picks the device (:func:`ust.runtime.select_device`: the ``device``
  argument, else the ``UST_DEVICE`` environment variable, else CUDA, MPS or
  the CPU) and the number of CPU threads (:func:`default_threads`);
* sets a readable figure style (seaborn's ``notebook`` context, white grid,
  larger fonts, PNG figures at 100 dpi);
* finds the data: MNIST in torchvision's layout under the data roots
  (``UST_DATA``, see :func:`ust.data.data_roots`), or else the embedded
  scikit-learn digits in its place (:func:`ust.data.load_mnist_or_digits`),
  and prints plainly which one the chapter runs on;
* knows the cache folder for trained networks: ``UST_CACHE``, default
  ``~/.cache/ust``.

:func:`load_or_train` then loads a checkpoint from that folder if one is
there, and otherwise trains with the chapter's small settings and saves the
result atomically (:mod:`ust.checkpoints`), so that the second run of a
chapter is quick. :func:`interactive_figure` turns a figure function into a
widget for Jupyter and a static figure of its default setting for the HTML
book.

:func:`load_or_train_students` (chapter *Student regression*) caches
trained students under a name that records the teacher and every setting,
so that later chapters reuse them; :func:`ensemble_size_maps` (chapter
*Uncertainty*) scores with the first ``m`` students for several ``m`` at
once.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import textwrap
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .runtime import seed_everything, select_device

__all__ = [
    "NotebookContext",
    "setup",
    "set_style",
    "cache_dir",
    "default_threads",
    "load_or_train",
    "save_module",
    "load_module",
    "interactive_figure",
    "describe",
    "load_or_train_students",
    "ensemble_size_maps",
    "batched",
    "WIDGET_VIEW_MIMETYPE",
]

#: The MIME type under which Jupyter shows a live widget.
WIDGET_VIEW_MIMETYPE = "application/vnd.jupyter.widget-view+json"

_DEFAULT_CACHE = "~/.cache/ust"
#: Printed lines are wrapped at this width, which fits the book's output cells.
WRAP = 78


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The folder for cached checkpoints: ``path``, else ``UST_CACHE``, else ``~/.cache/ust``.

    The folder is not created here; :func:`load_or_train` creates it when it
    saves the first checkpoint.
    """
    if path is None:
        path = os.environ.get("UST_CACHE", "").strip() or _DEFAULT_CACHE
    return Path(os.fspath(path)).expanduser()


def default_threads() -> int:
    """CPU threads for PyTorch: ``UST_THREADS``, else half the cores, at least 1 and at most 4.

    The book's networks are small: one thread per batch wastes little, while
    more threads than free cores slow training down many times over on a
    shared machine (measured: a chapter's autoencoder trained 8x faster with
    1 thread than with 2 on a busy 2-core machine).
    """
    value = os.environ.get("UST_THREADS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"UST_THREADS must be a positive integer; got {value!r}.")
        return int(value)
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def set_style(font_scale: float = 1.1, dpi: int = 100) -> None:
    """Readable figures: seaborn's notebook context, a white grid, PNG at ``dpi``.

    Images drawn with :mod:`ust.plotting` switch their axes off, so the grid
    never crosses a picture.
    """
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", font_scale=font_scale)
    mpl.rcParams.update({
        "figure.dpi": dpi,
        "savefig.dpi": dpi,
        "savefig.bbox": "tight",
        "figure.constrained_layout.use": True,
        "image.interpolation": "nearest",
        "legend.frameon": True,
    })


@dataclass
class NotebookContext:
    """What :func:`setup` found: seed, device, data, cache folder.

    Attributes:
        seed: The seed everything was seeded with.
        generator: A CPU :class:`torch.Generator` seeded with ``seed``.
        device: The device to train on.
        splits: The dataset (:class:`ust.data.DatasetSplits`), or ``None``
            when ``setup(data=False)``.
        cache: The cache folder for checkpoints (see :func:`cache_dir`).
        data_note: One sentence saying which data the chapter runs on.
    """

    seed: int
    generator: torch.Generator
    device: torch.device
    splits: Any = None
    cache: Path = field(default_factory=cache_dir)
    data_note: str = ""

    @property
    def dataset(self) -> str:
        """Short name of the data: ``"mnist"``, ``"digits"``, or ``"none"``."""
        return self.splits.name if self.splits is not None else "none"

    @property
    def dataset_title(self) -> str:
        """The data's name for titles: ``"MNIST"`` or ``"Digits (stand-in for MNIST)"``."""
        if self.splits is None:
            return "no data"
        pretty = {"mnist": "MNIST", "cifar10": "CIFAR-10", "digits": "Digits"}
        name = pretty.get(self.splits.name, self.splits.name)
        if self.splits.stand_in_for:
            return f"{name} (stand-in for {pretty.get(self.splits.stand_in_for, self.splits.stand_in_for)})"
        return name

    @property
    def is_stand_in(self) -> bool:
        """True when the digits stand in for MNIST."""
        return self.splits is not None and self.splits.stand_in_for is not None

    def cache_path(self, name: str, **settings: Any) -> Path:
        """A checkpoint file in the cache whose name records the data and the settings.

        ``ctx.cache_path("autoencoder", normal_class=3, epochs=5)`` is
        ``<cache>/autoencoder-mnist-epochs5-normal_class3.pt``: change a
        setting and the chapter trains (and caches) a new network instead of
        loading one made with other settings.
        """
        parts = [name, self.dataset] + [f"{k}{v}" for k, v in sorted(settings.items())]
        stem = re.sub(r"[^A-Za-z0-9_.=-]+", "_", "-".join(str(p) for p in parts))
        return self.cache / f"{stem}.pt"

    def __repr__(self) -> str:
        return (f"NotebookContext(seed={self.seed}, device={self.device.type!r}, dataset={self.dataset!r}, "
                f"cache={str(self.cache)!r})")


def _load_data(root, download) -> tuple[Any, str]:
    from .data import load_mnist_or_digits

    with warnings.catch_warnings():
        # the fallback is announced below in one plain sentence instead
        warnings.simplefilter("ignore", UserWarning)
        with contextlib.redirect_stdout(io.StringIO()):
            splits = load_mnist_or_digits(root=root, download=download)
    n_train, n_test = len(splits.train), len(splits.test)
    if splits.stand_in_for:
        note = (f"Data: MNIST is not available here, so this chapter runs on the embedded scikit-learn "
                f"digits as a stand-in ({n_train:,} training and {n_test:,} test images, 8x8 digits brought to "
                f"MNIST's 28x28 layout). Numbers differ from MNIST's; set UST_DATA to a folder holding "
                f"MNIST/raw/ to run on MNIST.")
    else:
        name = {"mnist": "MNIST", "cifar10": "CIFAR-10"}.get(splits.name, splits.name)
        where = splits.train.description.rsplit(" from ", 1)[-1]
        note = f"Data: {name} ({n_train:,} training and {n_test:,} test images), read from {where}."
    return splits, note


def setup(seed: int = 0, *, device: str | torch.device | None = None, data: bool = True,
          root: str | os.PathLike | None = None, download: bool | None = None,
          cache: str | os.PathLike | None = None, threads: int | None = None, style: bool = True,
          verbose: bool = True) -> NotebookContext:
    """Seed, device, figure style, data and cache folder for one chapter.

    Calling it twice with the same ``seed`` restarts every random number
    generator: ``setup(seed=0); torch.rand(3)`` gives the same numbers
    every time.

    Args:
        seed: Seed for Python, NumPy and PyTorch.
        device: ``"cpu"``, ``"cuda"``, ... or ``None`` for the automatic
            choice (``UST_DEVICE`` overrides it).
        data: Load MNIST, or the digits in its place.
        root: Data root(s), see :func:`ust.data.data_roots` (default:
            ``UST_DATA``, else ``./data``).
        download: Passed to :func:`ust.data.load_mnist_or_digits`.
        cache: Cache folder (default: ``UST_CACHE``, else ``~/.cache/ust``).
        threads: CPU threads for PyTorch (default :func:`default_threads`).
        style: Set the figure style (:func:`set_style`).
        verbose: Print what was chosen.

    Returns:
        A :class:`NotebookContext`.
    """
    seed_everything(seed)
    chosen = select_device(device)
    torch.set_num_threads(int(threads) if threads is not None else default_threads())
    if style:
        set_style()
    splits, note = _load_data(root, download) if data else (None, "")
    # loading must not change the random state that the chapter sees next
    generator = seed_everything(seed)
    ctx = NotebookContext(seed=int(seed), generator=generator, device=chosen, splits=splits,
                          cache=cache_dir(cache), data_note=note)
    if verbose:
        import ust

        n = torch.get_num_threads()
        print(f"ust {ust.__version__}, PyTorch {torch.__version__}; device: {chosen.type} "
              f"({n} CPU thread{'' if n == 1 else 's'}); seed: {seed}\ncheckpoint cache: {ctx.cache}")
        if note:
            print(textwrap.fill(note, width=WRAP))
    return ctx


def describe(text: str, width: int = WRAP) -> None:
    """Print a long description (e.g. ``OneClassData.description``) wrapped to fit an output cell."""
    for paragraph in str(text).split("\n"):
        print(textwrap.fill(paragraph, width=width) if paragraph.strip() else "")


# --------------------------------------------------------------------------- checkpoints

def save_module(path: str | os.PathLike, result: nn.Module | tuple[nn.Module, Any],
                metadata: dict[str, Any] | None = None) -> Path:
    """Save a module's weights (and optionally plain extra information) atomically.

    Args:
        path: Target file.
        result: A module, or ``(module, info)`` where ``info`` is made of
            plain types (numbers, strings, lists, dicts), e.g. the training
            losses.
        metadata: More plain facts to record.

    Returns:
        The path written.
    """
    module, info, has_info = _split_result(result)
    meta = {**(metadata or {}), "class": type(module).__name__, "has_info": has_info, "info": info}
    return save_checkpoint(path, "module", module.state_dict(), meta)


def load_module(module: nn.Module, path: str | os.PathLike, *, strict: bool = True):
    """Load weights saved by :func:`save_module` into ``module``.

    Args:
        module: A freshly built module of the saved architecture.
        path: The checkpoint.
        strict: Passed to :meth:`torch.nn.Module.load_state_dict`.

    Returns:
        ``module`` in eval mode, or ``(module, info)`` when the checkpoint
        was saved from a ``(module, info)`` pair: the same shape that was saved.

    Raises:
        CheckpointError: A missing, corrupt or foreign file, or weights that
            do not fit ``module``.
    """
    payload = load_checkpoint(path, "module")
    meta = payload["metadata"]
    if meta.get("class") not in (None, type(module).__name__):
        raise CheckpointError(f"{path} holds a {meta['class']}, not a {type(module).__name__}.")
    try:
        module.load_state_dict(payload["state_dict"], strict=strict)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: the weights do not fit this {type(module).__name__} ({err}).") from None
    module.eval()
    return (module, meta.get("info")) if meta.get("has_info") else module


def _split_result(result) -> tuple[nn.Module, Any, bool]:
    if isinstance(result, nn.Module):
        return result, None, False
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], nn.Module):
        return result[0], result[1], True
    raise TypeError(f"save_module saves a module or a (module, info) pair; got {type(result).__name__}. "
                    "Pass save_fn= to load_or_train for other results.")


def _retrain_requested() -> bool:
    return os.environ.get("UST_RETRAIN", "").strip().lower() in {"1", "true", "yes", "on"}


def load_or_train(path: str | os.PathLike, train_fn: Callable[[], Any], load_fn: Callable[[Path], Any],
                  save_fn: Callable[[Path, Any], Any] | None = None, *, retrain: bool | None = None,
                  verbose: bool = True):
    """Load a checkpoint if present, otherwise train and save it.

    1. If ``path`` exists (and no retraining is asked for), return
       ``load_fn(path)``. A checkpoint that cannot be used (corrupt, another
       architecture: :class:`~ust.checkpoints.CheckpointError`) is reported
       and replaced by training.
    2. Otherwise ``result = train_fn()``, then ``save_fn(path, result)``
       (default :func:`save_module`, which writes atomically: a crash never
       leaves half a file), and return ``result``.

    ``load_fn`` must return what ``train_fn`` returns, e.g.::

        ae, losses = load_or_train(
            ctx.cache_path("autoencoder", epochs=5),
            train_fn=lambda: train_autoencoder(images, epochs=5),          # (model, losses)
            load_fn=lambda p: load_module(ConvAutoencoder(), p))           # (model, losses)

    Args:
        path: The checkpoint file.
        train_fn: Trains and returns the result (no arguments).
        load_fn: Loads the result from a path.
        save_fn: Saves a result to a path (default :func:`save_module`;
            :func:`ust.checkpoints.save_teacher` and
            :func:`~ust.checkpoints.save_student_teacher` fit as they are).
        retrain: Train even if the file exists. ``None``: only when the
            environment variable ``UST_RETRAIN`` is ``1``.
        verbose: Print whether it loaded or trained.

    Returns:
        What ``train_fn`` or ``load_fn`` returned.
    """
    path = Path(os.fspath(path)).expanduser()
    retrain = _retrain_requested() if retrain is None else bool(retrain)
    if path.is_file() and not retrain:
        try:
            result = load_fn(path)
        except CheckpointError as err:
            if verbose:
                print(f"Cannot use the cached checkpoint ({err}); training a new one.")
        else:
            if verbose:
                print(f"Loaded the cached checkpoint {path} (delete it, or set UST_RETRAIN=1, to train again).")
            return result
    result = train_fn()
    (save_fn or save_module)(path, result)
    if verbose:
        print(f"Trained and saved the checkpoint {path}.")
    return result


# --------------------------------------------------------------------------- widgets

def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def interactive_figure(figure_fn: Callable[..., Any], *, display: bool = True, **controls: Any):
    """A figure with knobs: a live widget in Jupyter, a static figure in the HTML book.

    ``figure_fn(**values)`` must return a :class:`matplotlib.figure.Figure`.
    ``controls`` are ipywidgets (or anything :func:`ipywidgets.interactive`
    accepts, e.g. a ``(min, max, step)`` tuple); their ``value`` is the
    default setting.

    One output is displayed that carries both a widget view and a PNG of
    the figure at the default setting. Jupyter shows the widget (turn the
    knob, the figure follows); the book's HTML, which cannot run Python,
    shows the PNG (the book's configuration ranks the PNG first).

    Args:
        figure_fn: Draws the figure for given knob values.
        display: Display the output (else only return the widget).
        **controls: One widget per keyword argument of ``figure_fn``.

    Returns:
        The :class:`ipywidgets.interactive` widget.
    """
    import ipywidgets
    import matplotlib.pyplot as plt
    from IPython.display import display as show

    def draw(**values):
        fig = figure_fn(**values)
        show(fig)
        plt.close(fig)

    widget = ipywidgets.interactive(draw, **controls)
    if display:
        defaults = {w._kwarg: w.get_interact_value() for w in widget.kwargs_widgets}
        fig = figure_fn(**defaults)
        png = _png(fig)
        plt.close(fig)
        bundle = {
            WIDGET_VIEW_MIMETYPE: {"version_major": 2, "version_minor": 0, "model_id": widget.model_id},
            "image/png": base64.b64encode(png).decode("ascii"),
            "text/plain": f"<figure at the default setting: {defaults}; run the notebook to turn the knobs>",
        }
        show(bundle, raw=True)
    return widget


# --------------------------------------------------------------------------- students shared between chapters

def load_or_train_students(ctx: NotebookContext, teacher, images: torch.Tensor, *, name: str, n_students: int = 3,
                           iterations: int = 300, batch_size: int = 16, lr: float = 1e-3, verbose: bool = True,
                           **train_kwargs: Any):
    """Students from the cache, or trained now and cached, shared by every chapter that asks the same.

    The cache file's name records the data set, ``name`` (e.g. the normal
    class), the teacher (the first 12 hex digits of its weights' SHA-256),
    the number of training images and every training setting, so that two
    chapters asking for the same students share one checkpoint, and a new
    teacher or setting trains new ones. Training uses
    :func:`ust.train_students` with ``seed=ctx.seed`` on ``ctx.device``; the
    checkpoint (:func:`ust.checkpoints.save_student_teacher`) also keeps
    the loss history and the training time.

    Args:
        ctx: From :func:`setup`.
        teacher: The teacher :class:`~ust.PatchNet`.
        images: ``(N, C, H, W)`` anomaly-free training images.
        name: What the images are, for the file name (e.g. ``"normal8"``).
        n_students, iterations, batch_size, lr: See :func:`ust.train_students`.
        verbose: Say whether the students were loaded or trained.
        **train_kwargs: More arguments of :func:`ust.train_students` (part
            of the file name too).

    Returns:
        ``(model, info)``: the :class:`~ust.StudentTeacher` (eval mode, CPU,
        not calibrated) and ``{"history": ..., "seconds": ..., "settings": ...}``
        as :func:`ust.train_students` returned them.
    """
    from .checkpoints import load_student_teacher, save_student_teacher, weights_sha256
    from .training import train_students

    teacher_id = weights_sha256(teacher.state_dict())[:12]
    settings = dict(p=teacher.patch_size, teacher=teacher_id, n=len(images), M=n_students, iters=iterations,
                    batch=batch_size, lr=lr, seed=ctx.seed, **train_kwargs)
    path = ctx.cache_path(f"students-{name}", **settings)

    def train():
        result = train_students(teacher, images, n_students=n_students, iterations=iterations,
                                batch_size=batch_size, lr=lr, seed=ctx.seed, device=ctx.device, progress=False,
                                **train_kwargs)
        return result.model, {"history": result.history, "seconds": result.seconds, "settings": result.settings}

    def save(target, result):
        model, info = result
        return save_student_teacher(target, model, {"notebook_info": info})

    def load(source):
        model, meta = load_student_teacher(source, patch_size=teacher.patch_size)
        return model, meta["notebook_info"]

    return load_or_train(path, train, load, save, verbose=verbose)


@torch.no_grad()
def ensemble_size_maps(model, images: torch.Tensor, sizes: Sequence[int] | None = None, *, dense: bool = False,
                       batch_size: int = 64) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Regression error and predictive variance of the first ``m`` students, for several ``m``, in one pass.

    Runs the teacher and all students once per batch and evaluates
    :func:`ust.regression_error` (Eq. 10) and :func:`ust.predictive_variance`
    (Eq. 11) on the predictions of students ``0 .. m-1`` for every ``m`` in
    ``sizes``: what an ensemble of ``m`` students would have said.

    Args:
        model: A :class:`~ust.StudentTeacher`.
        images: ``(N, C, H, W)`` in ``[0, 1]``.
        sizes: Ensemble sizes (default ``1 .. M``).
        dense: Per pixel, or on the native lattice.
        batch_size: Images per forward pass.

    Returns:
        ``{m: (error, variance)}``, each ``(N, h, w)`` on the CPU.
    """
    from .scores import predictive_variance, regression_error

    sizes = list(range(1, model.n_students + 1)) if sizes is None else [int(m) for m in sizes]
    if not sizes or not all(1 <= m <= model.n_students for m in sizes):
        raise ValueError(f"sizes must lie between 1 and the number of students ({model.n_students}); got {sizes}.")
    device = model.mean.device
    out: dict[int, tuple[list, list]] = {m: ([], []) for m in sizes}
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].to(device)
        predictions = model.predictions(batch, dense)
        target = model.teacher_targets(batch, dense)
        for m in sizes:
            out[m][0].append(regression_error(predictions[:m], target).cpu())
            out[m][1].append(predictive_variance(predictions[:m]).cpu())
    return {m: (torch.cat(e), torch.cat(v)) for m, (e, v) in out.items()}


@torch.no_grad()
def batched(fn: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, batch_size: int = 200) -> torch.Tensor:
    """``fn`` applied to ``inputs`` a batch at a time, without gradients, concatenated.

    For networks whose activations for all inputs at once would not fit
    in memory, e.g. ``batched(teacher.describe, patches)`` for the ``(N, d)``
    descriptors of many patches, or ``batched(backbone, patches)``.

    Args:
        fn: Maps a ``(b, ...)`` batch to a ``(b, ...)`` result.
        inputs: ``(N, ...)``.
        batch_size: Inputs per call.

    Returns:
        The results of all batches, concatenated along the first axis.
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}.")
    if len(inputs) == 0:
        raise ValueError("batched needs at least one input.")
    return torch.cat([fn(inputs[i:i + batch_size]) for i in range(0, len(inputs), int(batch_size))])
