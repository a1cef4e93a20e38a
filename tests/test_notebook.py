"""Notebook support: reproducible set-up, the data notice, the checkpoint cache, the widget figure."""

import base64
import contextlib
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from ust import notebook  # noqa: E402
from ust.checkpoints import CheckpointError, load_teacher, save_teacher  # noqa: E402
from ust.networks import PatchNet  # noqa: E402


@contextlib.contextmanager
def _no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated rcParams warn when set back
        yield


@pytest.fixture(autouse=True)
def restore_global_state():
    """setup() sets the torch thread count and matplotlib's style for the whole process; undo both."""
    threads, style = torch.get_num_threads(), dict(matplotlib.rcParams)
    yield
    torch.set_num_threads(threads)
    with _no_warnings():
        matplotlib.rcParams.update(style)
    plt.close("all")


@pytest.fixture
def no_data(monkeypatch, tmp_path):
    """No MNIST anywhere and no download: the digits stand in."""
    monkeypatch.setenv("UST_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("UST_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("UST_DEVICE", raising=False)
    monkeypatch.delenv("UST_RETRAIN", raising=False)


def test_setup_is_reproducible(no_data):
    notebook.setup(seed=3, data=False, verbose=False)
    first = (torch.rand(4), np.random.rand(2), torch.randn(2, generator=None))
    ctx = notebook.setup(seed=3, data=False, verbose=False)
    second = (torch.rand(4), np.random.rand(2), torch.randn(2, generator=None))
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert torch.equal(first[2], second[2])
    assert torch.equal(torch.rand(3, generator=ctx.generator),
                       torch.rand(3, generator=torch.Generator().manual_seed(3)))
    notebook.setup(seed=4, data=False, verbose=False)
    assert not torch.equal(torch.rand(4), first[0])


def test_setup_loading_data_does_not_shift_the_random_state(no_data):
    notebook.setup(seed=0, verbose=False)
    with_data = torch.rand(3)
    notebook.setup(seed=0, data=False, verbose=False)
    assert torch.equal(with_data, torch.rand(3))


def test_setup_falls_back_to_digits_and_says_so(no_data, capsys, recwarn):
    ctx = notebook.setup(seed=0, download=False)
    out = capsys.readouterr().out
    assert ctx.dataset == "digits" and ctx.is_stand_in and ctx.dataset_title == "Digits (stand-in for MNIST)"
    assert "MNIST is not available here" in out and "digits as a stand-in" in out and "UST_DATA" in out
    assert " ".join(ctx.data_note.split()) in " ".join(out.split())
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)], "the notice is printed once, plainly"
    assert ctx.device == torch.device("cpu") or torch.cuda.is_available()
    assert len(ctx.splits.train) == 1198 and len(ctx.splits.test) == 599


def test_setup_device_override_and_cache(no_data, monkeypatch, tmp_path):
    monkeypatch.setenv("UST_DEVICE", "cpu")
    ctx = notebook.setup(seed=0, data=False, verbose=False)
    assert ctx.device == torch.device("cpu") and ctx.dataset == "none"
    assert ctx.cache == tmp_path / "cache"
    assert notebook.setup(seed=0, data=False, cache="~/x", verbose=False).cache.name == "x"
    monkeypatch.delenv("UST_CACHE")
    assert notebook.cache_dir() == notebook.cache_dir("~/.cache/ust")
    assert "~" not in str(notebook.cache_dir())


def test_setup_reads_mnist_when_present(no_data, monkeypatch, tmp_path, capsys):
    arrays = {"x_train": np.zeros((20, 28, 28), np.uint8), "y_train": np.arange(20) % 10,
              "x_test": np.zeros((10, 28, 28), np.uint8), "y_test": np.arange(10)}
    root = tmp_path / "data"
    root.mkdir()
    np.savez(root / "mnist.npz", **arrays)
    ctx = notebook.setup(seed=0, root=root)
    assert ctx.dataset == "mnist" and not ctx.is_stand_in and ctx.dataset_title == "MNIST"
    assert "Data: MNIST (20 training and 10 test images), read from" in capsys.readouterr().out


def test_cache_path_records_data_and_settings(no_data, tmp_path):
    ctx = notebook.setup(seed=0, download=False, verbose=False)
    path = ctx.cache_path("autoencoder", normal_class=3, epochs=5)
    assert path == tmp_path / "cache" / "autoencoder-digits-epochs5-normal_class3.pt"
    assert ctx.cache_path("x", note="a b/c").name == "x-digits-notea_b_c.pt"


# --------------------------------------------------------------------------- load_or_train

class _Counter:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args):
        self.calls += 1
        return self.fn(*args)


def _tiny():
    torch.manual_seed(0)
    return nn.Linear(3, 2)


def test_load_or_train_trains_once_then_loads(tmp_path, capsys):
    path = tmp_path / "sub" / "tiny.pt"
    train = _Counter(lambda: (_tiny(), [0.5, 0.25]))
    load = _Counter(lambda p: notebook.load_module(nn.Linear(3, 2), p))
    model, losses = notebook.load_or_train(path, train, load, retrain=False)
    assert (train.calls, load.calls) == (1, 0) and path.is_file()
    assert "Trained and saved" in capsys.readouterr().out
    again, losses_again = notebook.load_or_train(path, train, load, retrain=False)
    assert (train.calls, load.calls) == (1, 1)
    assert "Loaded the cached checkpoint" in capsys.readouterr().out
    assert losses_again == losses == [0.5, 0.25]
    assert not again.training
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert not list(path.parent.glob("*.tmp")), "the write is atomic: no temporary file is left"


def test_load_or_train_retrain_by_argument_and_environment(tmp_path, monkeypatch):
    path = tmp_path / "tiny.pt"
    train = _Counter(_tiny)
    load = _Counter(lambda p: notebook.load_module(nn.Linear(3, 2), p))
    notebook.load_or_train(path, train, load, verbose=False)
    notebook.load_or_train(path, train, load, retrain=True, verbose=False)
    monkeypatch.setenv("UST_RETRAIN", "1")
    notebook.load_or_train(path, train, load, verbose=False)
    monkeypatch.setenv("UST_RETRAIN", "0")
    model = notebook.load_or_train(path, train, load, verbose=False)
    assert (train.calls, load.calls) == (3, 1) and isinstance(model, nn.Linear)


def test_load_or_train_replaces_a_corrupt_checkpoint(tmp_path, capsys):
    path = tmp_path / "tiny.pt"
    path.write_bytes(b"not a checkpoint")
    train = _Counter(_tiny)
    model = notebook.load_or_train(path, train, lambda p: notebook.load_module(nn.Linear(3, 2), p))
    assert train.calls == 1 and isinstance(model, nn.Linear)
    assert "Cannot use the cached checkpoint" in capsys.readouterr().out
    assert isinstance(notebook.load_module(nn.Linear(3, 2), path), nn.Linear)


def test_load_or_train_with_ust_checkpoint_functions(tmp_path):
    path = tmp_path / "teacher.pt"
    train = _Counter(lambda: PatchNet(17, out_dim=8))
    load = _Counter(lambda p: load_teacher(p, patch_size=17)[0])
    first = notebook.load_or_train(path, train, load, save_teacher, verbose=False)
    second = notebook.load_or_train(path, train, load, save_teacher, verbose=False)
    assert (train.calls, load.calls) == (1, 1)
    x = torch.rand(1, 3, 17, 17)
    assert torch.equal(first.eval()(x), second(x))


def test_load_module_checks_the_architecture(tmp_path):
    path = notebook.save_module(tmp_path / "m.pt", nn.Linear(3, 2))
    with pytest.raises(CheckpointError, match="do not fit"):
        notebook.load_module(nn.Linear(4, 2), path)
    with pytest.raises(CheckpointError, match="holds a Linear"):
        notebook.load_module(nn.Conv2d(1, 1, 1), path)
    with pytest.raises(TypeError, match="module or a"):
        notebook.save_module(tmp_path / "x.pt", [1, 2])


# --------------------------------------------------------------------------- widgets

def test_interactive_figure_shows_the_default_as_png_with_the_widget(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False, **kw: shown.append((obj, raw)))
    ipywidgets = pytest.importorskip("ipywidgets")
    calls = []

    def figure(threshold):
        calls.append(threshold)
        fig, ax = plt.subplots()
        ax.axvline(threshold)
        ax.set_title(f"t = {threshold}")
        return fig

    widget = notebook.interactive_figure(figure, threshold=ipywidgets.FloatSlider(value=0.25, min=0, max=1))
    bundles = [obj for obj, raw in shown if raw]
    assert len(bundles) == 1
    bundle = bundles[0]
    assert bundle[notebook.WIDGET_VIEW_MIMETYPE]["model_id"] == widget.model_id
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert 0.25 in calls and set(calls) == {0.25}
    widget.children[0].value = 0.75  # turning the knob redraws
    assert calls[-1] == 0.75
    assert plt.get_fignums() == [], "figures are closed after drawing"


def test_threads_from_argument_and_environment(no_data, monkeypatch):
    before = torch.get_num_threads()
    try:
        notebook.setup(seed=0, data=False, threads=1, verbose=False)
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("UST_THREADS", "2")
        assert notebook.default_threads() == 2
        monkeypatch.setenv("UST_THREADS", "many")
        with pytest.raises(ValueError, match="UST_THREADS"):
            notebook.default_threads()
        monkeypatch.delenv("UST_THREADS")
        assert 1 <= notebook.default_threads() <= 4
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------- students shared between chapters

def _tiny_students(ctx, teacher, images, **kw):
    return notebook.load_or_train_students(ctx, teacher, images, name="toy", n_students=2, iterations=3,
                                           batch_size=2, lr=1e-3, verbose=False, **kw)


def test_load_or_train_students_caches_by_teacher_and_settings(no_data, monkeypatch):
    import ust

    ctx = notebook.setup(seed=0, data=False, verbose=False)
    torch.manual_seed(0)
    teacher, images = PatchNet(17).eval(), torch.rand(4, 3, 6, 6)
    calls = []
    real = ust.training.train_students
    monkeypatch.setattr(ust.training, "train_students", lambda *a, **k: calls.append(k) or real(*a, **k))
    model, info = _tiny_students(ctx, teacher, images)
    assert len(calls) == 1 and calls[0]["seed"] == 0 and calls[0]["progress"] is False
    assert model.n_students == 2 and not model.training and model.normalization is None
    assert len(info["history"]["per_student"]) == 2 and len(info["history"]["loss"]) == 3
    assert info["settings"]["iterations"] == 3 and info["seconds"] > 0
    (path,) = ctx.cache.glob("students-toy-*.pt")
    assert "iters3" in path.name and "M2" in path.name and "p17" in path.name
    again, info_again = _tiny_students(ctx, teacher, images)
    assert len(calls) == 1, "the second call loads the cache"
    assert info_again == info
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    other = PatchNet(17).eval()  # another teacher: other students
    _tiny_students(ctx, other, images)
    assert len(calls) == 2 and len(list(ctx.cache.glob("students-toy-*.pt"))) == 2


def test_ensemble_size_maps_equal_the_equations_for_each_subset():
    import ust

    torch.manual_seed(0)
    teacher = PatchNet(17).eval()
    model = ust.StudentTeacher(teacher, ust.make_students(17, 3), torch.randn(128), torch.rand(128) + 0.5)
    images = torch.rand(5, 3, 6, 7)
    maps = notebook.ensemble_size_maps(model, images, batch_size=2)
    assert sorted(maps) == [1, 2, 3]
    with torch.no_grad():
        preds = torch.stack([s(F_pad(images)) for s in model.students])[..., :6, :7]
        target = model.teacher_targets(images)
    for m, (e, v) in maps.items():
        mean = preds[:m].mean(0)
        torch.testing.assert_close(e, (mean - target).square().sum(1), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(v, (preds[:m] - mean).square().sum(2).mean(0), rtol=1e-4, atol=1e-4)
    assert maps[1][1].abs().max() == 0, "one student has no variance"
    e3, v3 = model.error_and_variance(images)
    torch.testing.assert_close(maps[3][0], e3)
    assert notebook.ensemble_size_maps(model, images, [2], dense=False)[2][0].shape == (5, 6, 7)
    with pytest.raises(ValueError, match="between 1 and"):
        notebook.ensemble_size_maps(model, images, [4])


def F_pad(images):
    """Zero padding by p // 2 = 8 on every side: the patch centred at each pixel (p = 17)."""
    return torch.nn.functional.pad(images, (8, 8, 8, 8))


def test_batched_equals_one_call():
    net = nn.Linear(4, 2)
    x = torch.randn(7, 4)
    out = notebook.batched(net, x, batch_size=3)
    torch.testing.assert_close(out, net(x).detach())
    assert not out.requires_grad
    with pytest.raises(ValueError, match="batch_size"):
        notebook.batched(net, x, batch_size=0)
