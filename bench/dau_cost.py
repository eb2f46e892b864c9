"""DAU's cost per iteration against its floor, on one preset (default: the Fashion-MNIST proxy).

Before the class-wise switch, a DAU iteration trains the defender on B retain images and on the
forget and validation batches with their m noisy copies: 1 + 2(1 + m) batches of B images, with
gradients. The floor is the time plain training steps (forward, backward, SGD step) take over the
same images at the same batch size. The benchmark times both, for each `copies_per_forward`
asked for (how many of the 1 + m batches share one forward), and the attacker's pre-training
iteration against its own floor (forward-only passes over 2(1 + m) batches). Weights do not change
the time, so the model is freshly initialised and no original needs training.

    python bench/dau_cost.py --preset fmnist-proxy --threads 2
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from study.cli_common import set_threads
from study.core.data import load_dataset
from study.core.errors import cli_entry
from study.core.models import build_model
from study.experiment.config import PRESETS, experiment_from_preset
from study.experiment.unlearn_data import UnlearnData
from study.methods import build_method
from study.methods.dau.attacker import AttackerSettings, pretrain_attacker


def plain_steps(model, x, y, batch: int, steps: int) -> float:
    """Seconds for `steps` plain training steps of `batch` images (forward, backward, SGD step)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()
    began = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(len(x), (batch,))
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - began


@torch.no_grad()
def plain_forwards(model, x, batch: int, passes: int) -> float:
    model.train()
    began = time.perf_counter()
    for _ in range(passes):
        model(x[torch.randint(len(x), (batch,))])
    return time.perf_counter() - began


def dau_iterations(model, data: UnlearnData, params: dict, iterations: int) -> float:
    method = build_method("dau", {**params, "attacker_pretrain_iters": 0})
    method.setup(model, data)
    batches = [(data.retain_x[i * method.batch_size:(i + 1) * method.batch_size],
                data.retain_y[i * method.batch_size:(i + 1) * method.batch_size]) for i in range(iterations + 1)]
    method.iteration(*batches[0])  # warm-up
    began = time.perf_counter()
    for rx, ry in batches[1:]:
        method.iteration(rx, ry)
    return (time.perf_counter() - began) / iterations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/dau_cost.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--preset", default="fmnist-proxy", choices=sorted(PRESETS))
    parser.add_argument("--batch-size", type=int, default=256, help="DAU's batch size B (default 256)")
    parser.add_argument("--pretrain-batch-size", type=int, default=64, help="pre-training batch (default 64)")
    parser.add_argument("--noise-copies", type=int, default=10)
    parser.add_argument("--copies-per-forward", nargs="+", default=["all", "1", "2"],
                        help="settings to time: 'all' (one forward of 1 + m batches) or a number")
    parser.add_argument("--iterations", type=int, default=8, help="timed DAU iterations per setting")
    parser.add_argument("--pretrain-iterations", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    experiment = experiment_from_preset(args.preset)
    dataset = load_dataset(experiment.dataset, experiment.data_root)
    need = args.batch_size * (args.iterations + 2)
    x, y = dataset.train_x[:max(need, 4096)], dataset.train_y[:max(need, 4096)]
    data = UnlearnData(x, y, x[:2048], y[:2048], x[2048:4096], y[2048:4096], dataset.num_classes, "none", 0,
                       pixel_std=dataset.pixel_std)
    model = lambda: build_model(experiment.model, dataset.image_shape[0], dataset.num_classes, 0)  # noqa: E731
    b, m = args.batch_size, args.noise_copies
    batches = 1 + 2 * (1 + m)
    print(f"{args.preset}: {experiment.model}, B = {b}, m = {m}: {batches} batches of {b} images per DAU iteration, "
          f"{torch.get_num_threads()} threads")
    floor = plain_steps(model(), x, y, b, batches * 2) / 2
    print(f"floor: {batches} plain training steps of {b} images: {floor:.3f} s ({batches * b / floor:.0f} images/s)")
    for setting in args.copies_per_forward:
        chunk = None if setting == "all" else int(setting)
        seconds = dau_iterations(model(), data, {"batch_size": b, "noise_copies": m, "copies_per_forward": chunk},
                                 args.iterations)
        print(f"DAU iteration, copies_per_forward {setting}: {seconds:.3f} s ({batches * b / seconds:.0f} images/s), "
              f"{seconds / floor:.2f}x the floor")
    pb = args.pretrain_batch_size
    forward_floor = plain_forwards(model(), x, pb, 2 * (1 + m) * 4) / 4
    for setting in args.copies_per_forward:
        chunk = None if setting == "all" else int(setting)
        settings = AttackerSettings(iters=args.pretrain_iterations, noise_copies=m, batch_size=pb, copies_per_forward=chunk)
        snapshot = pretrain_attacker(model(), (x, y), (x[2048:4096], y[2048:4096]), dataset.num_classes, settings,
                                     [args.pretrain_iterations], dataset.pixel_std)[args.pretrain_iterations]
        per_iter = snapshot.seconds / args.pretrain_iterations
        print(f"pre-training iteration (batch {pb}), copies_per_forward {setting}: {per_iter:.3f} s against "
              f"{forward_floor:.3f} s of plain forwards ({per_iter / forward_floor:.2f}x); 1,000 iterations: "
              f"{1000 * per_iter / 60:.1f} min")
    return 0


run = cli_entry(main)

if __name__ == "__main__":
    run()
