"""The paper's figures, drawn from artifacts only (no computation beyond smoothing).

:func:`draw` dispatches on the figure name; each ``figN`` function takes the
artifact paths it needs and the figure's options from the config, and writes a
vector PDF atomically.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .artifacts import atomic_write, config_of, open_artifact  # noqa: E402

__all__ = ["FIGURES", "draw", "smooth"]

plt.rcParams.update({"font.size": 9, "axes.titlesize": 9, "pdf.fonttype": 42})

COLORS = {"easy": "tab:blue", "difficult": "tab:red", "full": "black", "test": "tab:green"}


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred sliding-window mean (the window shrinks at the edges); window<=1: unchanged."""
    values = np.asarray(values, dtype=float)
    if window <= 1 or values.size == 0:
        return values
    half = window // 2
    out = np.empty_like(values)
    for i in range(values.size):
        lo, hi = max(0, i - half), min(values.size, i + half + 1)
        out[i] = values[lo:hi].mean()
    return out


def _epoch_axis(ax) -> None:
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig, output: str | os.PathLike) -> None:
    try:
        atomic_write(output, lambda tmp: fig.savefig(tmp, format="pdf", bbox_inches="tight"))
    finally:
        plt.close(fig)


def _settings(cfg: Mapping, corrupt: bool = True) -> str:
    """A short description of an experiment for titles and captions."""
    model = cfg.get("model", "?")
    extra = {
        "mlp": f"hidden {cfg.get('hidden', '')}",
        "vgg11": f"width {cfg.get('width', 1.0)}"
        + (f", last {cfg['masked_layers']} masked" if cfg.get("masked_layers") else ""),
        "cct": f"depth {cfg.get('depth')}, heads {cfg.get('heads')}, embed {cfg.get('embed_dim')}",
    }
    parts = [
        f"{cfg.get('dataset', '?')}",
        f"{model}" + (f" ({extra[model]})" if model in extra else ""),
        f"{cfg.get('corrupt', 0)} random labels" if corrupt else "",
        f"lr {cfg.get('lr', '?')}",
        f"{cfg.get('epochs', '?')} epochs",
    ]
    return ", ".join(p for p in parts if p)


def _name(path: str) -> str:
    return Path(path).parent.name


# --- figure 2: histograms of memorization scores --------------------------------------


def fig2(inputs: Mapping, options: Mapping, output) -> None:
    clean = open_artifact(inputs["clean"], "scores")
    noisy = open_artifact(inputs["corrupted"], "scores")
    bins = int(options.get("bins", 60))
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    axes[0].hist(clean["memorization"].values, bins=bins, color="tab:blue")
    axes[0].set_title(f"(a) uncorrupted: {_name(inputs['clean'])}")
    corrupted = noisy["corrupted"].values.astype(bool)
    scores = noisy["memorization"].values
    edges = np.histogram_bin_edges(scores, bins=bins)
    axes[1].hist(scores[~corrupted], bins=edges, color="tab:blue", alpha=0.7, label="real labels")
    axes[1].hist(scores[corrupted], bins=edges, color="tab:red", alpha=0.7, label="random labels")
    title = f"(b) {corrupted.sum()} random labels: {_name(inputs['corrupted'])}"
    if "corrupted_auc" in noisy.attrs:
        title += f"\nROC AUC {float(noisy.attrs['corrupted_auc']):.3f}"
    axes[1].set_title(title)
    axes[1].legend(frameon=False)
    for ax in axes:
        ax.set_xlabel("memorization score (nats)")
        ax.set_ylabel("number of training examples")
    fig.suptitle(f"Figure 2: memorization scores. {_settings(config_of(noisy))}", fontsize=9)
    fig.tight_layout()
    _save(fig, output)


# --- figures 7 and 8: lowest and highest scores per class -----------------------------


def _example_grid(inputs: Mapping, options: Mapping, output, number: int) -> None:
    scores = open_artifact(inputs["scores"], "scores")
    data = open_artifact(inputs["data"], "dataset")
    per_class = int(options.get("per_class", 4))
    classes = np.unique(scores["label"].values)
    class_names = data["class_name"].values
    fig, axes = plt.subplots(
        2 * per_class + 1,
        len(classes),
        figsize=(1.05 * len(classes), 1.25 * (2 * per_class + 1)),
        gridspec_kw={"height_ratios": [1] * per_class + [0.25] + [1] * per_class},
    )
    mem = scores["memorization"].values
    labels = scores["label"].values
    for col, cls in enumerate(classes):
        idx = np.flatnonzero(labels == cls)
        order = idx[np.argsort(mem[idx], kind="stable")]
        chosen = list(order[:per_class]) + [None] + list(order[::-1][:per_class])
        for row, pos in enumerate(chosen):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if pos is None:
                ax.axis("off")
                continue
            ex = int(scores["example"].values[pos])
            img = data["image"].sel(example=ex).values.transpose(1, 2, 0)
            ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=255)
            triplet = (
                f"({int(labels[pos])},{int(scores['pred_unmuted'].values[pos])},"
                f"{int(scores['pred_muted'].values[pos])})"
            )
            ax.set_title(f"{mem[pos]:.2f}\n{triplet}", fontsize=6, pad=2)
        axes[0, col].set_xlabel("")
        axes[-1, col].set_xlabel(str(class_names[cls]), fontsize=7)
    axes[0, 0].set_ylabel("lowest", fontsize=7)
    axes[per_class + 1, 0].set_ylabel("highest", fontsize=7)
    cfg = config_of(scores)
    fig.suptitle(
        f"Figure {number}: lowest (top) and highest (bottom) memorization scores per class, "
        f"{_name(inputs['scores'])}\n{_settings(cfg)}. Above each image: score and "
        "(label, unmuted prediction, muted prediction)",
        fontsize=8,
    )
    fig.tight_layout()
    _save(fig, output)


def fig7(inputs, options, output) -> None:
    _example_grid(inputs, options, output, 7)


def fig8(inputs, options, output) -> None:
    _example_grid(inputs, options, output, 8)


# --- figure 9: sub-network accuracy ----------------------------------------------------


def fig9(inputs: Mapping, options: Mapping, output) -> None:
    paths = inputs["scores"]
    paths = [paths] if isinstance(paths, str) else list(paths)
    fig, axes = plt.subplots(1, len(paths), figsize=(4 * len(paths), 3.2), squeeze=False)
    for i, (ax, path) in enumerate(zip(axes[0], paths, strict=True)):
        sc = open_artifact(path, "scores")
        acc = sc["subnet_accuracy"]
        for subnet, style in (("unmuted", "-"), ("muted", "--")):
            ax.plot(
                acc["epoch"].values,
                acc.sel(subnet=subnet).values,
                style,
                marker="o",
                ms=3,
                label=f"{subnet} sub-network",
            )
        _epoch_axis(ax)
        ax.set_ylabel("training accuracy")
        ax.set_ylim(0, 1.02)
        cfg = config_of(sc)
        settings = textwrap.fill(_settings(cfg), 48)
        ax.set_title(f"({chr(97 + i)}) {_name(path)}\n{settings}", fontsize=7)
        ax.legend(frameon=False)
    fig.suptitle("Figure 9: training accuracy of the muted and unmuted sub-networks", fontsize=9)
    fig.tight_layout()
    _save(fig, output)


FIGURES: dict[str, Callable] = {"fig2": fig2, "fig7": fig7, "fig8": fig8, "fig9": fig9}


def draw(figure: str, inputs: Mapping, options: Mapping, output) -> None:
    if figure not in FIGURES:
        raise ValueError(f"unknown figure {figure!r}; known: {sorted(FIGURES)}")
    FIGURES[figure](inputs, options, output)


# --- figures 3 and 5: training and test dynamics on easy / difficult / full -----------


def _subset_label(ds, split: str, subset: str) -> str:
    size = int(ds["subset_size"].sel(split=split, subset=subset))
    total = int(ds["subset_size"].sel(split=split, subset="full"))
    return f"{subset} ({100 * size / total:.1f}%)"


def _dynamics_panel(ax, ds, split: str, window: int, control: bool = True) -> None:
    epochs = ds["epoch"].values
    for subset in ("full", "easy", "difficult"):
        acc = ds["accuracy"].sel(run="all", split=split, subset=subset).values
        ax.plot(
            epochs,
            smooth(acc, window),
            color=COLORS[subset],
            label=_subset_label(ds, split, subset),
        )
        if control and "without_difficult" in ds["run"].values:
            ctrl = ds["accuracy"].sel(run="without_difficult", split=split, subset=subset).values
            ax.plot(epochs, smooth(ctrl, window), ":", color=COLORS[subset], lw=1.2)
    _epoch_axis(ax)
    ax.set_ylabel(f"{split} accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(frameon=False, fontsize=7)


def _window(options: Mapping) -> int:
    return int(options.get("window", 1))


def _dynamics_settings(ds, corrupt: bool = True) -> str:
    cfg = config_of(ds)
    cfg = {**cfg, "lr": ds.attrs.get("lr", cfg.get("lr")), "epochs": ds.attrs.get("epochs")}
    return _settings(cfg, corrupt)


def _paths(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def fig3(inputs: Mapping, options: Mapping, output) -> None:
    path = _paths(inputs["dynamics"])[0]
    ds = open_artifact(path, "dynamics")
    w = _window(options)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    _dynamics_panel(axes[0], ds, "train", w, control=False)
    axes[0].set_title("(a) training accuracy")
    test = ds["accuracy"].sel(run="all", split="test", subset="full").values
    axes[1].plot(ds["epoch"].values, smooth(test, w), color="black", label="test (full)")
    _epoch_axis(axes[1])
    axes[1].set_ylabel("test accuracy")
    axes[1].set_title(f"(b) test accuracy (peak {np.nanmax(test):.3f})")
    axes[1].legend(frameon=False, fontsize=7)
    fig.suptitle(
        f"Figure 3: {_name(path)}: {_dynamics_settings(ds)}; sliding window {w}", fontsize=9
    )
    fig.tight_layout()
    _save(fig, output)


def fig5(inputs: Mapping, options: Mapping, output) -> None:
    paths = _paths(inputs["dynamics"])
    w = _window(options)
    fig, axes = plt.subplots(len(paths), 2, figsize=(8, 3.0 * len(paths)), squeeze=False)
    for i, path in enumerate(paths):
        ds = open_artifact(path, "dynamics")
        for j, split in enumerate(("train", "test")):
            _dynamics_panel(axes[i, j], ds, split, w)
            axes[i, j].set_title(
                f"({chr(97 + 2 * i + j)}) {_name(path)}: {split}\n{_dynamics_settings(ds)}",
                fontsize=7,
            )
    fig.suptitle(
        "Figure 5: dynamics on easy and difficult subsets; dotted: trained without "
        f"the difficult subset (control); sliding window {w}",
        fontsize=9,
    )
    fig.tight_layout()
    _save(fig, output)


# --- figure 4: gradient statistics ------------------------------------------------------


def fig4(inputs: Mapping, options: Mapping, output) -> None:
    path = inputs["gradstats"]
    ds = open_artifact(path, "gradstats")
    w = _window(options)
    epochs = ds["epoch"].values
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for subset in ("easy", "difficult"):
        axes[0].plot(
            epochs,
            smooth(ds["cosine_similarity"].sel(subset=subset).values, w),
            color=COLORS[subset],
            label=subset,
        )
    for subset in ("full", "easy", "difficult"):
        axes[1].plot(
            epochs,
            smooth(ds["contribution"].sel(subset=subset).values, w),
            color=COLORS[subset],
            label=subset,
        )
    probe = int(ds["probe_size"].sel(subset="easy"))
    axes[0].set_title(f"(a) cosine similarity (probe of {probe} per subset)")
    axes[0].set_ylabel("mean pairwise cosine similarity")
    axes[1].set_title("(b) contribution to the update")
    axes[1].set_ylabel("mean (v_i . g) / ||g||")
    for ax in axes:
        _epoch_axis(ax)
        ax.legend(frameon=False, fontsize=7)
    fig.suptitle(
        f"Figure 4: {_name(path)}: {_dynamics_settings(ds)}; sliding window {w}", fontsize=9
    )
    fig.tight_layout()
    _save(fig, output)


# --- figure 6: cross-subset training ----------------------------------------------------


def fig6(inputs: Mapping, options: Mapping, output) -> None:
    path = inputs["crosstrain"]
    ds = open_artifact(path, "crosstrain")
    w = _window(options)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
    for ax, train_on in zip(axes, ("easy", "difficult"), strict=True):
        for evaluate_on in ("easy", "difficult"):
            acc = ds["accuracy"].sel(train_on=train_on, evaluate_on=evaluate_on).values
            ax.plot(
                ds["epoch"].values,
                smooth(acc, w),
                color=COLORS[evaluate_on],
                label=f"accuracy on {evaluate_on}",
            )
        ax.set_title(f"({'ab'[train_on == 'difficult']}) trained on the {train_on} subset")
        _epoch_axis(ax)
        ax.set_ylim(0, 1.02)
        ax.legend(frameon=False, fontsize=7)
    axes[0].set_ylabel("accuracy")
    fig.suptitle(f"Figure 6: {_name(path)}: {_dynamics_settings(ds)}", fontsize=9)
    fig.tight_layout()
    _save(fig, output)


# --- figure 10: corruption sweep ----------------------------------------------------------


def fig10(inputs: Mapping, options: Mapping, output) -> None:
    paths = _paths(inputs["levels"])
    w = _window(options)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
    cmap = plt.get_cmap("viridis")
    first = None
    for k, path in enumerate(paths):
        ds = open_artifact(path, "dynamics")
        first = first if first is not None else ds
        level = int(ds["corrupt"].values[0])
        color = cmap(k / max(len(paths) - 1, 1))
        for ax, split in zip(axes, ("train", "test"), strict=True):
            acc = ds["accuracy"].sel(run="all", split=split, subset="full").values[0]
            ax.plot(ds["epoch"].values, smooth(acc, w), color=color, label=f"{level}")
    for ax, split in zip(axes, ("train", "test"), strict=True):
        ax.set_title(f"({'ab'[split == 'test']}) {split} accuracy")
        _epoch_axis(ax)
        ax.set_ylim(0, 1.02)
    axes[0].set_ylabel("accuracy")
    axes[1].legend(title="random labels", frameon=False, fontsize=7)
    exp = Path(paths[0]).parent.parent.name  # results/<exp>/sweep/corrupt<level>.nc
    fig.suptitle(
        f"Figure 10: corruption sweep of {exp}: {_dynamics_settings(first, corrupt=False)}",
        fontsize=9,
    )
    fig.tight_layout()
    _save(fig, output)


FIGURES.update({"fig3": fig3, "fig4": fig4, "fig5": fig5, "fig6": fig6, "fig10": fig10})
