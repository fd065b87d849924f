"""The most memorized training examples of an experiment, with their images.

Joins an experiment's scores (``<results>/<experiment>/scores.nc``) to the dataset artifact
they were computed on (``<results>/data/<dataset>.nc``) on their shared ``example``
coordinate, prints the top of the ranking and draws the images::

    python docs/examples/most_memorized.py results mnist_mlp_noisy most_memorized.png
"""

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import xarray as xr
import yaml


def dataset_name(config: dict) -> str:
    """The dataset's name in an artifact's provenance (the settings that made it, as YAML)."""
    for key, value in config.items():
        if isinstance(value, dict):
            if key == "dataset" and "name" in value:
                return value["name"]
            found = dataset_name(value)
            if found:
                return found
    return ""


def most_memorized(results: Path, experiment: str, n: int = 20) -> xr.Dataset:
    """The ``n`` training examples with the highest scores, their labels and images."""
    scores = xr.open_dataset(results / experiment / "scores.nc")
    name = dataset_name(yaml.safe_load(scores.attrs["config"]))
    data = xr.open_dataset(results / "data" / f"{name}.nc")
    # scores.nc holds the training examples only; the dataset holds every example, with its
    # image (or, for a lazily read image folder, the image file's path)
    picture = "image" if "image" in data else "path"
    joined = xr.merge(
        [
            scores[["memorization", "label", "true_label", "mislabeled"]],
            data[[picture, "class_name"]],
        ],
        join="inner",  # the examples in both: the training split
    )
    return joined.sortby("memorization", ascending=False).isel(example=slice(0, n))


def draw(top: xr.Dataset, output: Path, columns: int = 10) -> None:
    """A grid of the images, each titled with the label it was trained with, its label as
    given in the dataset where they differ (``true_label``: the label before ``corrupt:``
    drew a random one) and its score."""
    classes = [str(c) for c in top["class_name"].values]
    rows = -(-top.sizes["example"] // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.2 * columns, 1.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, example in zip(axes.flat, top["example"].values, strict=False):
        one = top.sel(example=example)
        if "image" in top:
            image = one["image"].values.transpose(1, 2, 0)  # [channel, height, width] -> HWC
        else:
            image = plt.imread(str(one["path"].values))
        ax.imshow(image.squeeze(), cmap="gray")
        label, given = classes[int(one["label"])], classes[int(one["true_label"])]
        title = label if label == given else f"{label} (given {given})"
        ax.set_title(f"{title}\n{float(one['memorization']):.2f}", fontsize=7)
    fig.tight_layout()
    fig.savefig(output, dpi=150)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the results folder of a finished run")
    parser.add_argument("experiment", help="the experiment's name in the config")
    parser.add_argument("output", type=Path, help="the image grid to write (.png, .pdf)")
    parser.add_argument("-n", type=int, default=20, help="how many examples")
    args = parser.parse_args()
    top = most_memorized(args.results, args.experiment, args.n)
    print(top[["memorization", "label", "true_label", "mislabeled"]].to_dataframe())
    print(f"{int(top['mislabeled'].sum())} of the {args.n} carry a label drawn at random")
    draw(top, args.output)


if __name__ == "__main__":
    main()
