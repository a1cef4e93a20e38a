"""Benchmark: fast dense extraction against the naive per-patch loop (CPU).

    python benchmarks/dense_extraction.py            # p=65 at 64, 128, 256 (about 3 minutes)
    python benchmarks/dense_extraction.py --full     # also time the whole naive loop (about 15 minutes)

For every image size it prints the time of ``ust.DensePatchNet`` (both exact
formulations, best of ``--repeats``) and of the naive loop, which runs the
``PatchNet`` on one patch at a time (``batch_size=1``, the fastest naive
variant on this CPU). Unless ``--full`` is given, the naive time is measured
on ``--sample`` patches spread over the image and multiplied by the number of
pixels: every patch costs the same, so the extrapolation is exact up to
timer noise. Each run also checks that the fast and naive descriptors agree
on the sampled pixels.
"""

from __future__ import annotations

import argparse
import time

import torch

import ust


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patch-size", type=int, default=65, choices=ust.PATCH_SIZES)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--sample", type=int, default=300, help="patches timed for the naive loop")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="run the whole naive loop")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--csv", default=None, help="also write the table to this CSV file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = ust.PatchNet(args.patch_size).eval()
    print(f"PatchNet(p={args.patch_size}), torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print(f"{'size':>9} {'method':>10} {'fast [s]':>9} {'naive [s]':>10} {'speed-up':>9} {'max|diff|':>10}")
    rows = []
    for size in args.sizes:
        image = torch.rand(1, 3, size, size)
        patches = ust.extract_patches(image, args.patch_size)
        n = patches.shape[0]
        idx = torch.linspace(0, n - 1, min(args.sample, n)).long() if not args.full else torch.arange(n)
        with torch.no_grad():
            net(patches[:1])  # warm-up
            start = time.perf_counter()
            naive = torch.cat([net.describe(patches[i:i + 1]) for i in idx])
            naive_time = (time.perf_counter() - start) * n / len(idx)
            for method in ust.DENSE_METHODS:
                dense = ust.DensePatchNet(net, method=method)
                dense(image)  # warm-up
                fast_time = best_time(lambda: dense(image), args.repeats)
                fast = dense(image).permute(0, 2, 3, 1).reshape(n, -1)[idx]
                diff = (fast - naive).abs().max().item()
                label = "full loop" if args.full else f"~{len(idx)} timed"
                print(f"{size:>4}x{size:<4} {method:>10} {fast_time:9.3f} {naive_time:10.1f} "
                      f"{naive_time / fast_time:8.0f}x {diff:10.1e}   (naive: {label})")
                rows.append({"patch_size": args.patch_size, "image_size": size, "method": method,
                             "fast_seconds": round(fast_time, 4), "naive_seconds": round(naive_time, 2),
                             "speedup": round(naive_time / fast_time, 1), "max_abs_diff": f"{diff:.2e}",
                             "naive_timed_patches": len(idx), "threads": torch.get_num_threads(),
                             "torch": torch.__version__})
    if args.csv:
        import csv
        from pathlib import Path

        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
