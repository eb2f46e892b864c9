"""How many models per side KLoM needs: its floor (two sides from one distribution) against a
one-standard-deviation shift, on synthetic Gaussian margins, for K models per side.

    python bench/klom_floor.py

KLoM's 95th percentile saturates near log(1 / 1e-5) = 11.5 when K is small, where the shifted and
the unshifted pair read the same; the gap between the two columns is what a K can tell apart.
`study.evaluation.klom`'s docstring quotes this table.
"""
from __future__ import annotations

import argparse

import numpy as np

from study.evaluation.klom import klom_p95


def floor_table(ks: list[int], examples: int, shift: float, seed: int) -> list[tuple[int, float, float]]:
    """(K, p95 KLoM of two same-distribution sides, p95 KLoM with one side shifted by `shift`) per K."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in ks:
        oracle, same, shifted = (rng.normal(mean, 1.0, (k, examples)) for mean in (0.0, 0.0, shift))
        rows.append((k, klom_p95(same, oracle), klom_p95(shifted, oracle)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, nargs="+", default=[4, 8, 16, 32, 64], help="models per side")
    parser.add_argument("--examples", type=int, default=1000, help="examples per model (default 1000)")
    parser.add_argument("--shift", type=float, default=1.0, help="the shifted side's mean, in standard deviations")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"| K | KLoM p95, same distribution | KLoM p95, shifted by {args.shift:g} sd |\n|---|---|---|")
    for k, same, shifted in floor_table(args.k, args.examples, args.shift, args.seed):
        print(f"| {k} | {same:.2f} | {shifted:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
