"""Which turn-over masking of VGG-11 leaves muted sub-networks that generalize.

Trains VGG-11 (no batch-norm) once plainly and once per masking scheme on the
same split, then measures, for every scheme:

- ``unmuted`` / ``muted``: training accuracy of every example's own unmuted and
  muted sub-network (the two the memorization score compares);
- ``fresh u/m``: accuracy of never-trained (held-out) examples under their own
  masks, both sub-networks (the masked network on unseen data);
- ``shuffled``: training accuracy when every example runs through another
  training example's unmuted sub-network (a derangement): at chance, with
  ``fresh`` at chance too, means the network has learnt the masks, not the
  images (every example's own mask is a code for its label);
- ``muted/plain``: muted training accuracy over the plain model's held-out
  accuracy after the same epochs (the muted-generalization check asks >= 0.8).

Default data: 3,000 shuffled images of the lossy CIFAR-10 test set for training
and 3,000 others held out (``--data`` points at an npz of CIFAR-10 images, keys ``x`` and ``y``);
``--dataset mnist5k`` uses the embedded digits (4,000 / 1,000) instead. Not a
test: it needs real data and minutes of CPU. Prints a markdown table (rows as
they finish, then the whole table).

    python benchmarks/vgg_masking.py
        --data /path/to/cifar10.npz
        [--epochs 8] [--schemes plain paper last1-groups64 ...] [--width 1.0] [--threads 1]
    python benchmarks/vgg_masking.py --dataset mnist5k --width 0.125 --lr 0.02 --epochs 10
        --milestones 8 --schemes plain last3 last1-groups64

A scheme is a name from ``SCHEMES`` or ad-hoc VGG-11 options such as
``masked_layers=3,share_masks=true,aug`` (``aug``: random crop with 4-pixel
padding and horizontal flip). ``plain`` (and ``plain+aug`` when a scheme uses
augmentation) is always trained as the baseline, unless ``--plain-from`` takes
it from an earlier ``--json`` of the same setup. The default (plain, paper,
last1-groups64) takes about 10 minutes on one idle CPU thread; the measured
table is in docs/departures.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from memorization.data import TensorSplit
from memorization.method.augment import RandomCropFlip
from memorization.method.models import build_model
from memorization.method.optim import OptimSpec
from memorization.method.seeding import seed_everything
from memorization.method.training import fit

#: named schemes: VGG-11 options, plus "aug" for crop-and-flip augmentation
SCHEMES: dict[str, dict] = {
    "paper": {},  # all 8 convolutions, one bit per feature map, half kept
    "last3": {"masked_layers": 3},
    "last1": {"masked_layers": 1},
    "classifier": {"mask_at": "classifier"},  # = last1 where the last maps are 1x1
    "shared": {"share_masks": True},
    "groups8": {"mask_groups": 8},
    "keep0.25": {"keep_fraction": 0.25},
    "classifier-groups64": {"mask_at": "classifier", "mask_groups": 64},
    "last1-groups32": {"masked_layers": 1, "mask_groups": 32},
    "last1-groups48": {"masked_layers": 1, "mask_groups": 48},
    "last1-groups64": {"masked_layers": 1, "mask_groups": 64},
    "last1-groups64-keep0.25": {"masked_layers": 1, "mask_groups": 64, "keep_fraction": 0.25},
    "paper+aug": {"aug": True},
    "last1-groups64+aug": {"masked_layers": 1, "mask_groups": 64, "aug": True},
}


def parse_scheme(spec: str) -> dict:
    """A named scheme, or ``key=value,...`` VGG-11 options (``aug`` turns on augmentation)."""
    if spec in SCHEMES:
        return dict(SCHEMES[spec])
    out: dict = {}
    for item in spec.split(","):
        key, _, value = item.partition("=")
        if key == "aug" and not value:
            out["aug"] = True
        elif not value:
            raise ValueError(f"scheme {spec!r}: {item!r} is not key=value")
        else:
            out[key] = _value(value)
    return out


def _value(text: str):
    """A scheme option's value: JSON (numbers, true/false), none, or a bare string."""
    if text.lower() in ("none", "null"):
        return None
    try:
        return json.loads(text.lower() if text.lower() in ("true", "false") else text)
    except json.JSONDecodeError:
        return text


def load_cifar(path: str, n_train: int, n_heldout: int, seed: int):
    """Shuffled train/held-out splits of the lossy CIFAR-10 npz, standardised by the train split."""
    with np.load(path) as f:
        x, y = f["x"], f["y"]
    order = np.random.default_rng(seed).permutation(len(y))
    train_ids, held_ids = order[:n_train], order[n_train : n_train + n_heldout]
    images = x.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    mean = images[train_ids].mean(axis=(0, 2, 3), keepdims=True)
    std = images[train_ids].std(axis=(0, 2, 3), keepdims=True)
    images = (images - mean) / std

    def split(ids):
        return TensorSplit(
            torch.from_numpy(np.ascontiguousarray(images[ids])),
            torch.as_tensor(y[ids], dtype=torch.int64),
            ids.astype(np.int64),
        )

    return split(train_ids), split(held_ids)


def load_mnist5k():
    from memorization.data import prepare_dataset, to_tensors

    ds = prepare_dataset("mnist5k")
    return to_tensors(ds, "train"), to_tensors(ds, "test")


@torch.inference_mode()
def accuracy(model, split: TensorSplit, masks=None, positions=None, batch_size=500):
    """Accuracy of the plain model (``masks=None``), or of both sub-networks of every example.

    With masks: ``(unmuted, muted)`` accuracies; ``positions[k]`` is the mask row
    example ``k`` uses (default: its own).
    """
    model.eval()
    n = len(split)
    correct = np.zeros(2)
    for start in range(0, n, batch_size):
        rows = torch.arange(start, min(start + batch_size, n))
        x, y = split.x[rows], split.y[rows]
        if masks is None:
            correct[0] += float((model(x).argmax(1) == y).sum())
            continue
        pos = rows if positions is None else positions[rows]
        for k, logits in enumerate(model.forward_pair(x, masks.unmuted(pos))):
            correct[k] += float((logits.argmax(1) == y).sum())
    return correct[0] / n if masks is None else tuple(correct / n)


def derangement(n: int, seed: int) -> torch.Tensor:
    """A permutation without fixed points: every example gets another example's mask."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    out = torch.empty(n, dtype=torch.int64)
    out[order] = order.roll(-1)
    return out


def run_scheme(name, options, train, heldout, opt, args) -> dict:
    options = dict(options)
    aug = RandomCropFlip() if options.pop("aug", False) else None
    plain = name.startswith("plain")
    seed_everything(args.seed)
    model = build_model(
        "vgg11", tuple(train.x.shape[1:]), 10, turnover=not plain, width=args.width, **options
    )
    t0 = time.perf_counter()
    masks = None if plain else model.turnover_masks(args.seed, train.examples)
    fit(model, train, opt, seed=args.seed, masks=masks, augment=aug, progress=args.progress)
    row = {"scheme": name, "options": options, "aug": aug is not None}
    if plain:
        row["train"] = accuracy(model, train)
        row["heldout"] = accuracy(model, heldout)
    else:
        row["unmuted"], row["muted"] = accuracy(model, train, masks)
        fresh = model.turnover_masks(args.seed, heldout.examples, check_unique=False)
        row["fresh_unmuted"], row["fresh_muted"] = accuracy(model, heldout, fresh)
        shuffled = derangement(len(train), args.seed)
        row["shuffled"] = accuracy(model, train, masks, shuffled)[0]
        row["mask_units"] = list(model.mask_units)
        row["shared"] = len(model.shared_parameter_names()) // 2
    row["seconds"] = time.perf_counter() - t0
    return row


HEADER = (
    "| scheme | unmuted train | muted train | fresh u / m (held-out) | shuffled-mask train "
    "| plain train / held-out | muted / plain held-out | gap u - m | s |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def table_row(row: dict, plains: dict) -> str:
    plain = plains.get(row["aug"])
    base = f"{plain['train']:.3f} / {plain['heldout']:.3f}" if plain else "?"
    if "train" in row:
        secs = f"{row['seconds']:.0f}"
        return f"| {row['scheme']} | {row['train']:.3f} | — | — | — | {base} | — | — | {secs} |"
    ratio = row["muted"] / plain["heldout"] if plain else float("nan")
    return (
        f"| {row['scheme']} | {row['unmuted']:.3f} | {row['muted']:.3f} "
        f"| {row['fresh_unmuted']:.3f} / {row['fresh_muted']:.3f} | {row['shuffled']:.3f} "
        f"| {base} | {ratio:.2f} | {row['unmuted'] - row['muted']:.3f} | {row['seconds']:.0f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="the lossy CIFAR-10 npz (keys x, y)")
    ap.add_argument("--dataset", choices=["cifar10-npz", "mnist5k"], default="cifar10-npz")
    ap.add_argument("--train", type=int, default=3000, help="CIFAR training examples")
    ap.add_argument("--heldout", type=int, default=3000, help="CIFAR held-out examples")
    ap.add_argument("--schemes", nargs="+", default=["plain", "paper", "last1-groups64"])
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--milestones", type=int, nargs="*", default=[])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the rows to this JSON file")
    ap.add_argument("--progress", action="store_true", help="show a progress bar per run")
    ap.add_argument(
        "--plain-from", help="take the plain rows from this --json file of an identical setup"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.dataset == "mnist5k":
        train, heldout = load_mnist5k()
    else:
        if not args.data:
            ap.error("--data is required for the CIFAR-10 npz")
        train, heldout = load_cifar(args.data, args.train, args.heldout, args.seed)
    opt = OptimSpec(
        epochs=args.epochs,
        lr=args.lr,
        momentum=args.momentum,
        batch_size=args.batch_size,
        milestones=tuple(args.milestones),
    )
    schemes = {s: parse_scheme(s) for s in args.schemes if not s.startswith("plain")}
    runs = {"plain": {}}
    if any(o.get("aug") for o in schemes.values()):
        runs["plain+aug"] = {"aug": True}
    runs.update(schemes)
    print(
        f"VGG-11 width {args.width}, {args.dataset}: {len(train)} train / {len(heldout)} held-out, "
        f"{opt}, seed {args.seed}, {args.threads} thread(s)\n\n{HEADER}",
        flush=True,
    )
    rows, plains = [], {}
    if args.plain_from:
        with open(args.plain_from) as f:
            for row in json.load(f)["rows"]:
                if row["scheme"] in runs and "train" in row:
                    del runs[row["scheme"]]
                    rows.append(row)
                    plains[row["aug"]] = row
    for name, options in runs.items():
        row = run_scheme(name, options, train, heldout, opt, args)
        rows.append(row)
        if "train" in row:
            plains[row["aug"]] = row
        print(table_row(row, plains), flush=True)
        if args.json:  # after every run, so a long sweep can be read (and reused) early
            with open(args.json, "w") as f:
                json.dump({"args": vars(args), "rows": rows}, f, indent=1)
    print(f"\n{HEADER}")
    for row in rows:
        print(table_row(row, plains))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
