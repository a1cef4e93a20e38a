"""Benchmark: what one student training step costs, against three ways that might make it cheaper (CPU).

    python benchmarks/student_step.py                          # p = 33, 4 images of 28x28, 2 threads
    python benchmarks/student_step.py --patch-size 17 --batch-size 8 --image-size 32

One step of ``ust.train_students`` with ``dense=False``: the teacher's
targets on the native lattice, each of the ``M`` students forward and
backward (``StudentTeacher.regression_losses``, Eq. 8), one Adam step. It is
timed as ``ust`` takes it, one network per student on a channels-last input
(``DensePatchNet.strided``), and against three alternatives on the same
batch and weights:

* ``contiguous``: the same networks on a contiguous (NCHW) input;
* ``grouped``: the ``M`` students as one network. Its first convolution has
  ``M x 128`` outputs (the students share their input), its later ones ``M``
  groups: one kernel call per layer instead of ``M``. The script checks that
  its losses and gradients equal ``ust``'s up to float rounding;
* ``bfloat16``: ``ust``'s way under ``torch.autocast("cpu", torch.bfloat16)``.

It prints the best of ``--repeats`` timings of ``--steps`` steps for each,
and each one's time per step relative to ``ust``'s (below 1: cheaper). The
book's chapter *Results* ("Two minutes, spent better") quotes the ratios.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

import ust


def grouped_students(students) -> nn.Sequential:
    """The ``M`` students as one network: ``(B, C, H, W)`` -> ``(B, M * d, h, w)``, student ``i`` in block ``i``."""
    m = len(students)
    layers, first = [], True
    for same_layer in zip(*(s.features for s in students)):
        layer = same_layer[0]
        if isinstance(layer, nn.Conv2d):
            conv = nn.Conv2d(layer.in_channels * (1 if first else m), layer.out_channels * m, layer.kernel_size,
                             groups=1 if first else m)
            with torch.no_grad():
                conv.weight.copy_(torch.cat([c.weight for c in same_layer]))
                conv.bias.copy_(torch.cat([c.bias for c in same_layer]))
            layers.append(conv)
            first = False
        else:                                            # activations and poolings hold no weights
            layers.append(layer)
    return nn.Sequential(*layers)


def grouped_losses(model: ust.StudentTeacher, net: nn.Sequential, images: torch.Tensor) -> torch.Tensor:
    """Eq. 8 for each student from the grouped network, ``(M,)``; zero padding, lattice offset ``(0, 0)``."""
    target = model.teacher_targets(images, dense=False)                         # (B, d, h, w)
    half = model.patch_size // 2
    out = net(F.pad(images, (half, half, half, half)).contiguous(memory_format=torch.channels_last))
    b, d, h, w = target.shape
    out = out[:, :, :h, :w].reshape(b, model.n_students, d, h, w)
    return (out - target[:, None]).square().sum(2).mean((0, 2, 3))


def best_seconds_per_step(step, steps: int, repeats: int) -> float:
    step()                                                                      # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patch-size", type=int, default=33, choices=ust.PATCH_SIZES)
    parser.add_argument("--students", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--steps", type=int, default=10, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    p, d = args.patch_size, 128
    # timing depends on the architecture only: an untrained teacher and unit statistics do
    model = ust.StudentTeacher(ust.PatchNet(p), ust.make_students(p, args.students), torch.zeros(d), torch.ones(d))
    model.train()
    images = torch.rand(args.batch_size, 1, args.image_size, args.image_size).expand(-1, 3, -1, -1)
    net = grouped_students(model.students)

    # the grouped network computes the same losses and gradients
    mine, theirs = model.regression_losses(images), grouped_losses(model, net, images)
    mine.sum().backward()
    theirs.sum().backward()
    loss_diff = (mine - theirs).abs().max().item() / mine.abs().max().item()
    first_grad = torch.cat([s.features[0].weight.grad for s in model.students])
    grad_diff = (first_grad - net[0].weight.grad).abs().max().item() / first_grad.abs().max().item()
    if loss_diff > 1e-4 or grad_diff > 1e-3:
        raise SystemExit(f"the grouped students disagree with ust's: relative differences {loss_diff:.1e} "
                         f"(losses), {grad_diff:.1e} (first layer's gradient)")

    def stepper(losses, params):
        optimizer = torch.optim.Adam(params, lr=1e-4)

        def step():
            loss = losses().sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return step

    def contiguous_losses():
        target = model.teacher_targets(images, dense=False)
        half = p // 2
        padded = F.pad(images, (half, half, half, half)).contiguous()
        return torch.stack([ust.student_regression_loss(s.features(padded)[:, :, :target.shape[2], :target.shape[3]],
                                                        target) for s in model.students])

    def bfloat16_losses():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model.regression_losses(images).float()

    students = [q for s in model.students for q in s.parameters()]
    ways = {"ust (one network per student)": stepper(lambda: model.regression_losses(images), students),
            "contiguous": stepper(contiguous_losses, students),
            "grouped": stepper(lambda: grouped_losses(model, net, images), list(net.parameters())),
            "bfloat16": stepper(bfloat16_losses, students)}
    print(f"p = {p}, M = {args.students}, {args.batch_size} images of {args.image_size}x{args.image_size}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    print(f"grouped against ust: losses agree to {loss_diff:.1e}, first-layer gradients to {grad_diff:.1e} "
          "(relative)")
    reference = None
    for name, step in ways.items():
        seconds = best_seconds_per_step(step, args.steps, args.repeats)
        reference = reference or seconds
        print(f"{name:>30}: {seconds * 1000:7.1f} ms a step, {seconds / reference:5.2f} x ust's")


if __name__ == "__main__":
    main()
