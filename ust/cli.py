"""``python -m ust``: pretrain a teacher, train students, evaluate, run the benchmark.

Introduced in the book's chapter *Results* (the runs behind its tables);
``python -m ust --help`` and ``python -m ust COMMAND --help`` explain each
command with examples.

Four subcommands, each a thin layer over the package:

* ``pretrain-teacher``: :func:`~ust.data.load_natural_images`,
  :class:`~ust.data.PatchSampler`, :func:`~ust.backbones.load_backbone`,
  :func:`~ust.training.pretrain_teacher`, :func:`~ust.checkpoints.save_teacher`;
* ``train-students``: :func:`~ust.data.one_class_split`,
  :func:`~ust.training.train_students`, calibration,
  :func:`~ust.checkpoints.save_student_teacher`;
* ``evaluate``: image AUROC per model and fused; with ``--synthetic``
  pixel AUROC and PRO on :func:`~ust.data.add_synthetic_anomalies`;
* ``benchmark``: :func:`~ust.experiments.run_benchmark`.

Bad input (unknown dataset, class or patch size, a missing or broken
checkpoint, data that is not available) ends with exit status 2 and one
line on stderr that names the problem and the fix, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Sequence

__all__ = ["main", "build_parser", "CLIError"]

_PROG = "python -m ust"


class CLIError(Exception):
    """Bad command-line input; :func:`main` prints it on one line and exits with status 2.

    Introduced in the book's chapter *Results* (with :func:`main`).

    Args:
        message: What is wrong and how to fix it.
        prog: The (sub)command, for the message prefix.
        status: Exit status.
    """

    def __init__(self, message: str, prog: str | None = None, status: int = 2) -> None:
        super().__init__(message)
        self.prog = prog
        self.status = status


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block), raised as :class:`CLIError`."""

    def error(self, message: str):
        raise CLIError(f"{message} (see {self.prog} --help)", self.prog)


class _Formatter(argparse.HelpFormatter):
    """Wraps prose paragraphs to the terminal; keeps paragraphs with indented lines (examples) as written."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for para in text.split("\n\n"):
            lines = para.splitlines()
            if any(line.startswith(" ") for line in lines):
                paragraphs.append("\n".join(indent + line for line in lines))
            else:
                paragraphs.append(textwrap.fill(" ".join(para.split()), width, initial_indent=indent,
                                                subsequent_indent=indent))
        return "\n\n".join(paragraphs)


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


# --------------------------------------------------------------------------- argument types

def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0, got 0")
    return value


# --------------------------------------------------------------------------- shared helpers

def _scores_dir(out: str) -> Path:
    """Default folder for a benchmark's per-scale test scores: outside the repository, in the cache."""
    from .notebook import cache_dir

    return cache_dir() / "scores" / Path(out).stem


def _device(name: str):
    from .runtime import select_device

    return select_device(None if name == "auto" else name)


def _existing_file(path: str, option: str, hint: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        what = "is a folder, not a file" if p.is_dir() else "does not exist"
        raise CLIError(f"{option} {path}: the file {what}; {hint}")
    return p


def _pretrained_teacher(spec: str):
    """``pretrained:65`` (or ``pretrained:65:kmc``) -> the shipped teacher (``ust.pretrained_teacher``)."""
    from .experiments import _plain
    from .networks import PATCH_SIZES, PatchNet

    parts = spec.split(":")
    size, variant = parts[1].strip(), (parts[2].strip() if len(parts) > 2 else None)
    if len(parts) > 3 or not size.isdigit() or int(size) not in PATCH_SIZES:
        raise CLIError(f"{spec}: unsupported patch size {size!r}; the shipped teachers are "
                       f"{', '.join(f'pretrained:{p}' for p in PATCH_SIZES)} (optionally with a variant, e.g. "
                       "pretrained:65:kmc).")
    p = int(size)
    import ust

    loader = getattr(ust, "pretrained_teacher", None)
    if loader is None:
        try:
            loader = getattr(importlib.import_module("ust.weights"), "pretrained_teacher", None)
        except ImportError:
            loader = None
    if loader is None:
        raise CLIError(f"{spec}: this version of ust ships no pretrained teachers (ust.pretrained_teacher is "
                       "missing); pretrain one with `python -m ust pretrain-teacher --patch-size "
                       f"{p} ... --out teacher_{p}.pt` and pass that file instead.")
    result = loader(p) if variant is None else loader(p, variant=variant)
    teacher, meta = result if isinstance(result, tuple) else (result, getattr(result, "metadata", {}))
    if not isinstance(teacher, PatchNet) or teacher.patch_size != p:
        raise CLIError(f"{spec}: ust.pretrained_teacher({p}) did not return a PatchNet with patch size {p}.", status=1)
    return teacher.eval(), {"source": spec, "metadata": _plain(dict(meta or {}))}


def teacher_from_spec(spec: str, option: str = "--teacher"):
    """A teacher from a checkpoint path or ``pretrained:P[:variant]``; returns ``(teacher, info)``.

    The commands here and the scripts of ``benchmarks/`` read their teacher options with it.
    """
    if spec.startswith("pretrained:"):
        return _pretrained_teacher(spec)
    from .checkpoints import load_teacher

    path = _existing_file(spec, option, "pretrain a teacher with `python -m ust pretrain-teacher ... --out "
                                        f"{spec}`, or use a shipped one such as pretrained:65.")
    teacher, meta = load_teacher(path)
    teacher.name = path.stem  # how result tables name it
    return teacher, {"source": str(path), "metadata": meta}


def _dataset(args):
    from .experiments import load_splits

    return load_splits(args.dataset, args.data_root)


def _write_json(path: Path, payload: dict) -> None:
    from .experiments import _atomic_write

    _atomic_write(path, lambda h: json.dump(payload, h, indent=2, default=str))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in header]] + [[f"{c:.4f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --------------------------------------------------------------------------- pretrain-teacher

def _cmd_pretrain_teacher(args, command: str) -> int:
    from .backbones import load_backbone
    from .checkpoints import save_teacher
    from .data.patches import PatchSampler, load_natural_images
    from .experiments import hardware_description
    from .training import pretrain_teacher

    device = _device(args.device)
    images = load_natural_images(args.images, image_size=args.image_size, max_images=args.max_images,
                                 seed=args.seed)
    sampler = PatchSampler(images, args.patch_size, seed=args.seed)
    backbone = load_backbone(args.backbone) if args.lambda_k > 0 else None
    print(f"Pretraining a p={args.patch_size} teacher on {len(images):,} images "
          f"{images.shape[1]}x{images.shape[2]} from {args.images} ({args.iterations:,} iterations, "
          f"batch {args.batch_size}, {device}).", flush=True)
    result = pretrain_teacher(sampler, backbone, iterations=args.iterations, batch_size=args.batch_size, lr=args.lr,
                              weight_decay=args.weight_decay, lambda_k=args.lambda_k, lambda_m=args.lambda_m,
                              lambda_c=args.lambda_c, margin=args.margin, seed=args.seed, device=device,
                              progress=not args.no_progress)
    meta = {
        "data": {"path": str(args.images), "count": int(len(images)),
                 "description": f"{len(images):,} natural images {images.shape[1]}x{images.shape[2]} RGB from "
                                f"{args.images}" + (f" (a random {args.max_images:,} of them, seed {args.seed})"
                                                    if args.max_images else "")},
        "final_losses": result.final_losses(),
        "settings": result.settings,
        "seconds": result.seconds,
        "hardware": hardware_description(device),
        "command": command,
    }
    out = save_teacher(args.out, result.teacher, meta, half=args.half)
    log = out.with_suffix(".json")
    _write_json(log, {**meta, "history": result.history})
    losses = ", ".join(f"{k} {v:.4g}" for k, v in meta["final_losses"].items())
    print(f"Saved the teacher to {out} (log {log}) after {result.seconds:.1f} s; final losses: {losses}.")
    return 0


# --------------------------------------------------------------------------- train-students

def _cmd_train_students(args, command: str) -> int:
    import numpy as np

    from .checkpoints import save_student_teacher
    from .data.datasets import one_class_split
    from .experiments import hardware_description, resolve_class
    from .training import train_students

    device = _device(args.device)
    teacher, teacher_info = teacher_from_spec(args.teacher)
    splits = _dataset(args)
    label = resolve_class(splits.classes, args.normal_class)
    data = one_class_split(splits, label, image_size=args.image_size, channels=teacher.in_channels,
                           max_train=args.max_train, seed=args.seed)
    print(data.description, flush=True)
    training = train_students(teacher, data.train, n_students=args.students, iterations=args.iterations,
                              batch_size=args.batch_size, lr=args.lr, lr_schedule=args.lr_schedule,
                              dense=args.dense, seed=args.seed,
                              device=device, progress=not args.no_progress)
    model = training.model.to(device)
    norm = model.calibrate(data.val, dense=args.dense)
    model.cpu()
    meta = {
        "dataset": splits.name, "dataset_argument": str(args.dataset), "stand_in_for": splits.stand_in_for,
        "data": data.description, "normal_class": label, "class_name": data.class_name,
        "image_size": [int(data.train.shape[-2]), int(data.train.shape[-1])],
        "n_train": int(len(data.train)), "n_val": int(len(data.val)),
        "settings": training.settings, "final_loss": float(np.mean(training.history["loss"][-100:])),
        "seconds": training.seconds,
        "hardware": hardware_description(device), "teacher": teacher_info, "command": command,
    }
    out = save_student_teacher(args.out, model, meta)
    log = out.with_suffix(".json")
    _write_json(log, {**meta, "normalization": norm.to_dict(), "history": training.history})
    print(f"Trained {args.students} students p={model.patch_size} on {len(data.train):,} images of class "
          f"{label} ({data.class_name!r}) in {training.seconds:.1f} s, calibrated on {len(data.val):,} validation "
          f"images; saved to {out} (log {log}).")
    return 0


# --------------------------------------------------------------------------- evaluate

def _cmd_evaluate(args, command: str) -> int:
    import torch

    from .checkpoints import load_student_teacher
    from .data.datasets import one_class_split
    from .data.synthetic import add_synthetic_anomalies
    from .experiments import component_scores, resolve_class
    from .metrics import image_auroc, pixel_auroc, pro_auc
    from .scores import SCORE_COMPONENTS

    device = _device(args.device)
    models = []
    for spec in args.model:
        path = _existing_file(spec, "--model", "train one with `python -m ust train-students ... --out "
                                               f"{spec}` or check the path.")
        model, meta = load_student_teacher(path)
        if model.normalization is None:
            raise CLIError(f"--model {spec}: the model was saved without calibration; train it again with "
                           "`python -m ust train-students` (which calibrates).")
        models.append((spec, model.to(device), meta))
    channels = {m.teacher.in_channels for _, m, _ in models}
    if len(channels) > 1:
        raise CLIError(f"the models take different numbers of channels {sorted(channels)}; evaluate them separately.")
    size = args.image_size
    if size is None:
        trained_at = {tuple(meta["image_size"]) for _, _, meta in models if meta.get("image_size")}
        if len(trained_at) > 1:
            raise CLIError(f"the models were trained at different image sizes {sorted(trained_at)}; pass "
                           "--image-size.")
        size = trained_at.pop() if trained_at else None
    splits = _dataset(args)
    label = resolve_class(splits.classes, args.normal_class)
    data = one_class_split(splits, label, image_size=size, channels=channels.pop(), max_test=args.max_test, seed=0)
    n_test, n_anomalous = len(data.test), int(data.test_labels.sum())
    subset = " (a fixed stratified subset)" if n_test < len(splits.test) else ""
    maps = "dense maps" if args.dense else "native-lattice maps"
    print(f"Image AUROC, normal class {label} ({data.class_name!r}) of {splits.name}: {n_test:,} test images{subset}, "
          f"{n_test - n_anomalous:,} normal and {n_anomalous:,} anomalous; {maps}, mean over each map.")
    rows, per_model = [], []
    for spec, model, _ in models:
        scores = component_scores(model, data.test, SCORE_COMPONENTS, dense=args.dense, batch_size=args.batch_size)
        per_model.append(scores)
        rows.append([spec, model.patch_size] + [image_auroc(scores[c], data.test_labels) for c in SCORE_COMPONENTS])
    sizes = [m.patch_size for _, m, _ in models]
    fuse = len(models) > 1 and len(set(sizes)) == len(sizes)
    if fuse:
        fused = {c: torch.stack([s[c] for s in per_model]).mean(0) for c in SCORE_COMPONENTS}
        rows.append(["fused (Eq. 13)", "+".join(map(str, sizes))] +
                    [image_auroc(fused[c], data.test_labels) for c in SCORE_COMPONENTS])
    print(_table(["model", "p", "AUROC e+v", "e only", "v only"], rows))
    if len(models) > 1 and not fuse:
        print(f"(no fused row: the models share patch sizes {sizes}; fusion needs one model per scale)")
    if args.synthetic:
        normal = data.test[data.test_labels == 0]
        others = data.test[data.test_labels == 1]
        if len(normal) == 0:
            raise CLIError("--synthetic needs normal test images, but the test set holds none; raise --max-test.")
        source = others if args.synthetic == "paste" and len(others) else None
        anomalous, masks = add_synthetic_anomalies(normal, kind=args.synthetic, seed=0, source=source)
        images = torch.cat([normal, anomalous])
        truth = torch.cat([torch.zeros_like(masks), masks])
        print(f"\nSynthetic {args.synthetic!r} anomalies drawn into the {len(normal):,} normal test images; pixel "
              f"AUROC and PRO (FPR <= 0.3) on those {len(normal):,} and the {len(normal):,} clean originals, "
              "dense maps.")
        rows, all_maps = [], []
        for (spec, model, _), p in zip(models, sizes):
            score_maps = torch.cat([model.score_maps(images[i:i + args.batch_size].to(device), dense=True).cpu()
                                    for i in range(0, len(images), args.batch_size)])
            all_maps.append(score_maps)
            rows.append([spec, p, pixel_auroc(score_maps, truth), pro_auc(score_maps, truth, max_fpr=0.3)])
        if fuse:
            fused_maps = torch.stack(all_maps).mean(0)
            rows.append(["fused (Eq. 13)", "+".join(map(str, sizes)), pixel_auroc(fused_maps, truth),
                         pro_auc(fused_maps, truth, max_fpr=0.3)])
        print(_table(["model", "p", "pixel AUROC", "PRO"], rows))
    return 0


# --------------------------------------------------------------------------- baselines

def _cmd_baselines(args, command: str) -> int:
    from .experiments import parse_classes, run_baselines

    device = _device(args.device)
    splits = _dataset(args)  # data and class names first: their errors are the cheap ones
    labels = parse_classes(args.classes, splits.classes)
    teacher = teacher_from_spec(args.teacher, "--teacher")[0] if "knn_teacher" in args.methods else None
    print(f"Baselines on {splits.name}: classes {labels}, methods {args.methods}; results in {args.out}.", flush=True)
    rows = run_baselines(splits, labels, args.out, resume=not args.no_resume, teacher=teacher,
                         methods=tuple(args.methods), image_size=args.image_size, feature_size=args.feature_size,
                         k=args.k, ae_epochs=args.ae_epochs, seed=args.seed, max_test=args.max_test, device=device,
                         progress=not args.no_progress)
    table = [[r["normal_class"], r["class_name"], r["method"], r["auroc"]] for r in rows]
    print(_table(["class", "name", "method", "AUROC"], table))
    for method in args.methods:
        values = [r["auroc"] for r in rows if r["method"] == method]
        print(f"mean AUROC {method}: {sum(values) / len(values):.4f} over {len(values)} classes")
    return 0


# --------------------------------------------------------------------------- benchmark

def _benchmark_teachers(specs: Sequence[str], scales: Sequence[int]) -> tuple[dict, dict]:
    """``{p: PatchNet}`` and ``{p: source}`` from one folder or a list of files / ``pretrained:P``."""
    from .checkpoints import load_checkpoint

    found: dict[int, list[str]] = {}
    if list(specs) == ["pretrained"]:  # the shipped teacher for every scale asked for
        specs = [f"pretrained:{p}" for p in scales]
    if len(specs) == 1 and Path(specs[0]).expanduser().is_dir():
        folder = Path(specs[0]).expanduser()
        for path in sorted(folder.glob("*.pt")):
            payload = load_checkpoint(path)
            if payload.get("kind") == "teacher":
                found.setdefault(int(payload["metadata"]["patch_size"]), []).append(str(path))
        listing = ", ".join(f"p={p}: {' '.join(v)}" for p, v in sorted(found.items())) or "no teacher checkpoints"
        where = f"in the folder {folder} ({listing})"
    else:
        for spec in specs:
            if spec.startswith("pretrained:"):
                found.setdefault(int(_pretrained_teacher(spec)[0].patch_size), []).append(spec)
            else:
                path = _existing_file(spec, "--teachers", "pass a folder of teacher checkpoints or their files "
                                                          "(or pretrained:P).")
                found.setdefault(int(load_checkpoint(path, "teacher")["metadata"]["patch_size"]), []).append(spec)
        where = "among --teachers " + " ".join(specs)
    teachers, sources = {}, {}
    for p in scales:
        if p not in found:
            raise CLIError(f"--teachers: no teacher for patch size {p} {where}; pretrain one with `python -m ust "
                           f"pretrain-teacher --patch-size {p} ...` or drop {p} from --scales.")
        if len(found[p]) > 1:
            raise CLIError(f"--teachers: several teachers for patch size {p} {where}; pass the files you mean "
                           "explicitly.")
        spec = found[p][0]
        teachers[p] = teacher_from_spec(spec, "--teachers")[0]
        sources[p] = spec
    return teachers, sources


def _cmd_benchmark(args, command: str) -> int:
    from .experiments import FUSED, parse_classes, run_benchmark, summarize

    _device(args.device)  # a bad device fails now, not after loading the data
    if len(set(args.scales)) != len(args.scales):
        raise CLIError(f"--scales {' '.join(map(str, args.scales))}: each patch size may appear once.")
    if len(set(args.seeds)) != len(args.seeds):
        raise CLIError(f"--seeds {' '.join(map(str, args.seeds))}: each seed may appear once.")
    teachers, sources = _benchmark_teachers(args.teachers, args.scales)
    splits = _dataset(args)
    labels = parse_classes(args.classes, splits.classes)
    subset_seeds = {s: args.second_seed_subset for s in args.seeds[1:]} if args.second_seed_subset else {}
    start = time.perf_counter()
    print(f"Benchmark on {splits.name}: classes {labels}, scales {args.scales}, seeds {args.seeds}"
          + (f" (seeds {args.seeds[1:]} on a fixed stratified subset of {args.second_seed_subset:,} test images)"
             if subset_seeds else "") + f"; results in {args.out}.", flush=True)

    def report(rows, resumed):
        both = {r["scale"]: r["auroc"] for r in rows if r["components"] == "both"}
        first = rows[0]
        parts = "  ".join(f"{'p=' + s if s != FUSED else s} {a:.4f}" for s, a in both.items())
        note = "already in the CSV" if resumed else f"{first['train_seconds'] + first['score_seconds']:.0f} s"
        if not resumed and FUSED in both:
            fused = next(r for r in rows if r["scale"] == FUSED)
            note = f"{fused['train_seconds'] + fused['score_seconds']:.0f} s"
        print(f"class {first['normal_class']} ({first['class_name']!r}) seed {first['seed']}: {parts}  "
              f"[AUROC e+v, {first['n_test']:,} test images, {note}]", flush=True)

    rows = run_benchmark(splits, labels, args.scales, args.seeds, args.out, teachers=teachers,
                         resume=not args.no_resume, subset_seeds=subset_seeds,
                         notes={"dataset_argument": str(args.dataset), "teachers": sources, "command": command},
                         on_result=report, n_students=args.students, iterations=args.iterations,
                         batch_size=args.batch_size, lr=args.lr, image_size=args.image_size, max_train=args.max_train,
                         max_test=args.max_test, components=tuple(args.components), dense=args.dense,
                         device=None if args.device == "auto" else args.device, progress=not args.no_progress,
                         scores_dir=None if args.no_scores_cache else _scores_dir(args.out))
    means = [r for r in summarize(rows) if r["normal_class"] == "mean"]
    table = [[r["scale"], r["components"], r["auroc_mean"], r["auroc_std"], r["n_classes"], r["n_seeds"]]
             for r in means]
    print(f"\nMean AUROC over {len(labels)} classes ({time.perf_counter() - start:.0f} s; std over seeds of the "
          "class mean, nan with one seed):")
    print(_table(["scale", "components", "mean", "std", "classes", "seeds"], table))
    print(f"Rows in {args.out}, settings in {Path(args.out).with_suffix('.json')}.")
    return 0


# --------------------------------------------------------------------------- parser

_MAIN_DESCRIPTION = """\
Student-Teacher anomaly detection ("Uninformed Students", Bergmann et al., CVPR 2020) from the command line.
A teacher network is pretrained once on natural image patches (pretrain-teacher); for each normal class,
students learn to regress the teacher's descriptors on anomaly-free images (train-students); the students'
regression error and disagreement flag anomalies (evaluate); benchmark runs the paper's one-class protocol
over classes and seeds and writes a CSV. Every command has its own --help with examples."""

_MAIN_EPILOG = """\
examples:
  python -m ust pretrain-teacher --patch-size 65 --images data/imagenet_64.npz --out teachers/teacher_65.pt
  python -m ust train-students --teacher teachers/teacher_65.pt --dataset mnist --normal-class 3 --out st_65_3.pt
  python -m ust evaluate --model st_65_3.pt --dataset mnist --normal-class 3
  python -m ust benchmark --dataset mnist --classes 0-9 --scales 17 33 65 --seeds 0 1 \\
      --teachers teachers/ --out book/results/mnist.csv"""


def _common_data(p: argparse.ArgumentParser, student: bool = True) -> None:
    from .experiments import DATASET_CHOICES

    p.add_argument("--dataset", required=True, metavar="NAME_OR_NPZ",
                   help=f"one of {', '.join(DATASET_CHOICES)} (MNIST, or the embedded digits when MNIST is not "
                        "available), or the path of a .npz arrays file with x_train, y_train, x_test, y_test")
    p.add_argument("--data-root", metavar="R", help="folder(s) holding the datasets (default: $UST_DATA, else ./data)")
    p.add_argument("--image-size", type=_positive_int, metavar="S",
                   help="resize the images to SxS (default: keep their size" +
                        (", or the size the model was trained at)" if not student else ")"))


def _common_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA, else Apple MPS, else CPU), cpu, cuda, cuda:N or mps "
                                                     "(default: %(default)s)")
    p.add_argument("--threads", type=_positive_int, metavar="N",
                   help="CPU threads for PyTorch (default: PyTorch's choice, all cores); use 1 when other jobs share "
                        "the cores: busy cores slow multi-threaded runs down many times")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m ust`` argument parser with its four subcommands.

    Introduced in the book's chapter *Results*.
    """
    from .backbones import BACKBONES
    from .data.synthetic import SYNTHETIC_KINDS
    from .experiments import BASELINE_METHODS
    from .networks import PATCH_SIZES
    from .scores import SCORE_COMPONENTS
    from .training import LR_SCHEDULES

    parser = _Parser(prog=_PROG, description=_MAIN_DESCRIPTION, epilog=_MAIN_EPILOG, formatter_class=_Formatter)
    from . import __version__

    parser.add_argument("--version", action="version", version=f"ust {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    # pretrain-teacher
    p = sub.add_parser(
        "pretrain-teacher", formatter_class=_Formatter, help="pretrain a teacher on natural image patches",
        description="Pretrain a teacher network for one patch size on random patches of natural images (Sec. 3.1 "
                    "of the paper): it learns to reproduce the features of a pretrained ImageNet network "
                    "(knowledge distillation, weight --lambda-k), optionally to keep shifted, noisy copies of a "
                    "patch close and other patches far (metric learning, --lambda-m), and to use decorrelated "
                    "descriptor channels (compactness, --lambda-c). The teacher is saved as a checkpoint with its "
                    "settings, final losses and timing; the loss history goes to a .json log next to it.",
        epilog="examples:\n"
               "  python -m ust pretrain-teacher --patch-size 65 --images data/imagenet_64.npz --out teacher_65.pt\n"
               "  python -m ust pretrain-teacher --patch-size 33 --images ~/photos/ --max-images 5000 \\\n"
               "      --iterations 20000 --device cuda --half --out teachers/teacher_33.pt")
    p.add_argument("--patch-size", type=int, choices=PATCH_SIZES, required=True,
                   help="p, the teacher's receptive field")
    p.add_argument("--images", required=True, metavar="PATH",
                   help="natural images: a .npz arrays file (x_train or images, uint8 (N, H, W, 3)) or a folder of "
                        "image files (searched recursively)")
    p.add_argument("--image-size", type=_positive_int, default=128, metavar="S",
                   help="side of the squares made from a folder's images (default: %(default)s)")
    p.add_argument("--backbone", choices=tuple(BACKBONES), default="efficientnet_lite0",
                   help="the pretrained network to distil; efficientnet_lite0 works offline, resnet18 (the paper's) "
                        "downloads its weights once (default: %(default)s)")
    p.add_argument("--iterations", type=_positive_int, default=3000, help="optimiser steps (default: %(default)s)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="patches per step (default: %(default)s)")
    p.add_argument("--lr", type=_positive_float, default=1e-3,
                   help="Adam's starting learning rate, decayed to 0 along a cosine (default: %(default)s)")
    p.add_argument("--weight-decay", type=_non_negative_float, default=1e-5, help="(default: %(default)s)")
    p.add_argument("--lambda-k", type=_non_negative_float, default=1.0,
                   help="weight of the distillation loss; 0 skips the backbone (default: %(default)s)")
    p.add_argument("--lambda-m", type=_non_negative_float, default=0.0,
                   help="weight of the triplet loss (default: %(default)s)")
    p.add_argument("--lambda-c", type=_non_negative_float, default=1e-3,
                   help="weight of the compactness loss (default: %(default)s)")
    p.add_argument("--margin", type=_non_negative_float, default=1.0, help="triplet margin (default: %(default)s)")
    p.add_argument("--max-images", type=_positive_int, metavar="N", help="use a random N of the images")
    p.add_argument("--seed", type=int, default=0, help="seeds the network, the patches and the subset (default: 0)")
    p.add_argument("--half", action="store_true", help="store the weights in float16 (half the file size)")
    p.add_argument("--out", required=True, metavar="PATH.pt", help="where to save the teacher")
    _common_run(p)

    # train-students
    p = sub.add_parser(
        "train-students", formatter_class=_Formatter, help="train students for one normal class",
        description="Train an ensemble of students to regress a pretrained teacher's normalised descriptors on "
                    "the training images of one normal class (Sec. 3.2), then calibrate the anomaly score on "
                    "held-out images of that class (10 % of them). The result, a StudentTeacher checkpoint for "
                    "one patch size, is what evaluate scores; train one per patch size to fuse scales.",
        epilog="examples:\n"
               "  python -m ust train-students --teacher teacher_65.pt --dataset mnist --normal-class 3 --out st65.pt\n"
               "  python -m ust train-students --teacher pretrained:33 --dataset cifar10 --normal-class cat \\\n"
               "      --iterations 2000 --out runs/cat_33.pt\n"
               "  python -m ust train-students --teacher teacher_33.pt --dataset digits --normal-class 0 \\\n"
               "      --iterations 50 --max-train 100 --out quick.pt\n"
               "  # about two minutes on two CPU cores (book chapter Results, 'Two minutes, spent better'):\n"
               "  python -m ust train-students --teacher pretrained:33 --dataset mnist --normal-class 8 \\\n"
               "      --iterations 700 --batch-size 4 --lr 2e-3 --lr-schedule cosine --out digit8.pt")
    p.add_argument("--teacher", required=True, metavar="PATH",
                   help="teacher checkpoint from pretrain-teacher, or pretrained:P for a shipped one (P = 17, 33 or "
                        "65; pretrained:P:kmc for the variant trained with metric learning too)")
    _common_data(p)
    p.add_argument("--normal-class", required=True, metavar="C", help="label (3) or name (cat) of the normal class")
    p.add_argument("--students", type=_positive_int, default=3, help="ensemble size M (default: %(default)s)")
    p.add_argument("--iterations", type=_positive_int, default=1000, help="optimiser steps (default: %(default)s)")
    p.add_argument("--batch-size", type=_positive_int, default=16, help="images per step (default: %(default)s)")
    p.add_argument("--lr", type=_positive_float, default=1e-4, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant",
                   help="constant (the paper's) or cosine: decay the rate to 0 over the iterations "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seeds the validation split and the students (default: 0)")
    p.add_argument("--max-train", type=_positive_int, metavar="N", help="use at most N training images (quick runs)")
    p.add_argument("--dense", action="store_true",
                   help="train and calibrate on every pixel (the paper's; slower) instead of the native lattice")
    p.add_argument("--out", required=True, metavar="PATH.pt", help="where to save the StudentTeacher")
    _common_run(p)

    # evaluate
    p = sub.add_parser(
        "evaluate", formatter_class=_Formatter, help="image AUROC of trained models, fused over scales",
        description="Score the test split of the one-class protocol with one or more StudentTeacher checkpoints "
                    "(every image of another class is an anomaly) and print the image-level AUROC of each model "
                    "and, with one model per patch size, of their fusion (Eq. 13), for the paper's score e+v and "
                    "each term alone. With --synthetic, defects with known masks are drawn into the normal test "
                    "images and the anomaly maps are scored per pixel (pixel AUROC and PRO, as on MVTec AD).",
        epilog="examples:\n"
               "  python -m ust evaluate --model st65.pt --dataset mnist --normal-class 3\n"
               "  python -m ust evaluate --model st17.pt --model st33.pt --model st65.pt --dataset mnist \\\n"
               "      --normal-class 3 --max-test 2000 --synthetic stroke")
    p.add_argument("--model", action="append", required=True, metavar="PATH",
                   help="StudentTeacher checkpoint from train-students; repeat for several scales")
    _common_data(p, student=False)
    p.add_argument("--normal-class", required=True, metavar="C", help="label (3) or name (cat) of the normal class")
    p.add_argument("--dense", action="store_true", help="score dense maps instead of the native lattice")
    p.add_argument("--max-test", type=_positive_int, metavar="N",
                   help="score a fixed stratified subset of N test images")
    p.add_argument("--synthetic", choices=SYNTHETIC_KINDS,
                   help="also report pixel AUROC and PRO on synthetic defects of this kind")
    p.add_argument("--batch-size", type=_positive_int, default=64,
                   help="images per forward pass (default: %(default)s)")
    _common_run(p)

    # benchmark
    p = sub.add_parser(
        "benchmark", formatter_class=_Formatter, help="the one-class benchmark over classes and seeds (Table 1)",
        description="Run the paper's one-class benchmark (Table 1): for every class and seed, train students at "
                    "each patch size, calibrate, and record the image AUROC per scale, fused, and per score "
                    "component. Each finished (class, seed) is written to the CSV at once, so an interrupted run "
                    "resumes where it stopped; the exact settings go to a .json file next to the CSV.",
        epilog="examples:\n"
               "  python -m ust benchmark --dataset mnist --classes 0-9 --scales 17 33 65 --seeds 0 1 \\\n"
               "      --teachers teachers/ --second-seed-subset 2000 --out book/results/mnist.csv\n"
               "  python -m ust benchmark --dataset digits --classes 0,1 --scales 33 --teachers pretrained:33 \\\n"
               "      --iterations 100 --out quick.csv")
    _common_data(p)
    p.add_argument("--classes", nargs="+", required=True, metavar="C",
                   help="normal classes: labels, names, ranges such as 0-9, comma lists, or all")
    p.add_argument("--scales", nargs="+", type=int, choices=PATCH_SIZES, default=list(PATCH_SIZES), metavar="P",
                   help=f"patch sizes from {', '.join(map(str, PATCH_SIZES))} (default: all three)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="S", help="seeds (default: 0)")
    p.add_argument("--teachers", nargs="+", required=True, metavar="DIR_OR_FILE",
                   help="a folder of teacher checkpoints (one per patch size), or the files, or pretrained:P "
                        "(shipped teachers; pretrained:P:kmc for the metric-learning variant), or just "
                        "`pretrained` for the shipped teacher of every scale")
    p.add_argument("--students", type=_positive_int, default=3, help="ensemble size M (default: %(default)s)")
    p.add_argument("--iterations", type=_positive_int, default=1000, help="student steps (default: %(default)s)")
    p.add_argument("--batch-size", type=_positive_int, default=16, help="images per step (default: %(default)s)")
    p.add_argument("--lr", type=_positive_float, default=1e-4, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--max-train", type=_positive_int, metavar="N", help="use at most N training images per class")
    p.add_argument("--max-test", type=_positive_int, metavar="N",
                   help="score a fixed stratified subset of N test images (all seeds)")
    p.add_argument("--second-seed-subset", type=_positive_int, metavar="N",
                   help="for every seed after the first, score a fixed stratified subset of N test images "
                        "(e.g. 2000)")
    p.add_argument("--components", nargs="+", choices=SCORE_COMPONENTS, default=list(SCORE_COMPONENTS),
                   help="score components to record (default: all)")
    p.add_argument("--dense", action="store_true", help="train, calibrate and score on dense maps")
    p.add_argument("--no-scores-cache", action="store_true",
                   help="do not keep each scale's test scores (kept by default in $UST_CACHE/scores/<name of --out>, "
                        "so that a stopped run, or one that adds a scale, trains only what is missing)")
    p.add_argument("--no-resume", action="store_true",
                   help="run every (class, seed) again, replacing its rows (other rows are kept)")
    p.add_argument("--out", required=True, metavar="PATH.csv", help="the results CSV, e.g. book/results/mnist.csv")
    _common_run(p)

    # baselines
    p = sub.add_parser(
        "baselines", formatter_class=_Formatter, help="classical baselines on the benchmark's splits",
        description="Score the one-class protocol with classical baselines, on exactly the splits and "
                    "preprocessing of `benchmark`: a convolutional autoencoder's reconstruction error, and "
                    "k-nearest-neighbour distances on raw pixels, on the teacher's descriptors averaged over the "
                    "image, and on EfficientNet-Lite0's global features. One row per class and method; finished "
                    "classes are skipped when the command runs again.",
        epilog="examples:\n"
               "  python -m ust baselines --dataset mnist --classes 0-9 --teacher pretrained:33 \\\n"
               "      --out book/results/mnist_baselines.csv\n"
               "  python -m ust baselines --dataset cifar10 --classes all --teacher pretrained:33 \\\n"
               "      --feature-size 128 --out cifar_baselines.csv")
    _common_data(p)
    p.add_argument("--classes", nargs="+", required=True, metavar="C",
                   help="normal classes: labels, names, ranges such as 0-9, comma lists, or all")
    p.add_argument("--teacher", default="pretrained:33", metavar="PATH",
                   help="teacher for the k-NN-on-descriptors baseline (default: %(default)s)")
    p.add_argument("--methods", nargs="+", choices=BASELINE_METHODS, default=list(BASELINE_METHODS),
                   help="which baselines (default: all)")
    p.add_argument("--feature-size", type=_positive_int, default=64,
                   help="input size of EfficientNet-Lite0 (default: %(default)s)")
    p.add_argument("--k", type=_positive_int, default=2, help="neighbours (default: %(default)s)")
    p.add_argument("--ae-epochs", type=_positive_int, default=20, help="autoencoder epochs (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed (validation draw, autoencoder) (default: 0)")
    p.add_argument("--max-test", type=_positive_int, metavar="N",
                   help="score a fixed stratified subset of N test images")
    p.add_argument("--no-resume", action="store_true", help="run every class again")
    p.add_argument("--out", required=True, metavar="PATH.csv", help="the CSV, e.g. book/results/mnist_baselines.csv")
    _common_run(p)
    return parser


_COMMANDS = {"pretrain-teacher": _cmd_pretrain_teacher, "train-students": _cmd_train_students,
             "evaluate": _cmd_evaluate, "benchmark": _cmd_benchmark, "baselines": _cmd_baselines}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m ust`` with ``argv`` (default: ``sys.argv[1:]``).

    Introduced in the book's chapter *Results*.

    Args:
        argv: The arguments after ``python -m ust``.

    Returns:
        The exit status: 0 on success, 2 for bad input (one line on
        stderr, no traceback), 1 when a run fails (e.g. a diverging loss or
        a file that cannot be written), 130 when interrupted (Ctrl-C).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    prog = _PROG
    try:
        args = parser.parse_args(argv)
        prog = f"{_PROG} {args.command}"
        command = " ".join([_PROG] + [shlex.quote(a) for a in argv])
        if getattr(args, "threads", None):
            import torch

            torch.set_num_threads(args.threads)
        return _COMMANDS[args.command](args, command)
    except SystemExit as exit_:  # --help, --version
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except CLIError as err:
        print(f"{err.prog or prog}: error: {_one_line(err)}", file=sys.stderr)
        return err.status
    except ValueError as err:  # ust's own messages: unknown class, CheckpointError, DataUnavailableError, ...
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except (FloatingPointError, OSError) as err:
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted (a benchmark keeps every finished class and seed in its CSV; run the same "
              "command again to resume)", file=sys.stderr)
        return 130
