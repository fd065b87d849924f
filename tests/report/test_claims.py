"""Each claim of the paper on synthetic artifacts made to support it, and made not to."""

import json

import numpy as np
import pytest
import xarray as xr
import yaml

from memorization.report.claims import (
    INCONCLUSIVE,
    NOT_MEASURED,
    NOT_SUPPORTED,
    SUPPORTED,
    Claim,
    read_claims,
    subnetwork_check,
    to_markdown,
    update_readme,
    write_claims,
)
from memorization.report.figures import DRAWINGS

SUBSETS = ["full", "easy", "difficult"]


def _attrs(corrupt=0, study=None, **extra):
    """Provenance as a stage writes it: the slice's params (nested) and the classes."""
    params = {
        "dataset": {"name": "mnist5k", "source": "builtin"},
        "labels": {"corrupt": corrupt, "corruption": "uniform", "seed": 0},
        "model": {"model": "mlp", "hidden": 64},
    }
    if study is not None:
        params["study"] = study
    return {"experiment": "exp", "config": yaml.safe_dump(params), "n_classes": 10, **extra}


def dynamics(train: dict, test: dict | None = None, control: dict | None = None, epochs=20):
    """A dynamics artifact from per-subset accuracy curves (functions of the epoch)."""
    e = np.arange(epochs + 1)
    runs = ["all"] + (["without_difficult"] if control else [])
    acc = np.zeros((len(runs), epochs + 1, 2, 3))
    test = test or {s: (lambda e: 0.9 + 0 * e) for s in SUBSETS}
    for r, curves in enumerate([{"train": train, "test": test}] + ([control] if control else [])):
        for k, split in enumerate(("train", "test")):
            for j, s in enumerate(SUBSETS):
                acc[r, :, k, j] = np.clip(curves[split][s](e), 0, 1)
    return xr.Dataset(
        {
            "accuracy": (("run", "epoch", "split", "subset"), acc),
            "loss": (("run", "epoch", "split", "subset"), 1 - acc),
            "loss_sd": (("run", "epoch", "split", "subset"), 0.01 + 0 * acc),
            "subset_size": (("split", "subset"), np.array([[600, 100, 100], [100, 20, 20]])),
        },
        coords={"run": runs, "epoch": e, "split": ["train", "test"], "subset": SUBSETS},
        attrs=_attrs(study={"lr": 0.01, "epochs": epochs}),
    )


def _claim(claims, key):
    found = [c for c in claims if c.key == key]
    assert len(found) == 1, [c.key for c in claims]
    return found[0]


# --- figure 3 -------------------------------------------------------------------------


def _fig3(ds):
    return DRAWINGS["fig3"].claims({"experiment": {"dynamics": ds}}, {"window": 1})


def test_fig3_claims_hold_on_the_paper_shape():
    ds = dynamics(
        train={
            "full": lambda e: 0.6 + 0.02 * e,
            "easy": lambda e: np.minimum(1, 0.5 + 0.5 * e),
            "difficult": lambda e: 0.03 * e,  # rises from the first epochs, fitted late
        },
        test={
            "full": lambda e: 0.9 - 0.01 * np.abs(e - 5),  # peak at epoch 5, then falls
            "easy": lambda e: 0.9 + 0 * e,
            "difficult": lambda e: 0.5 + 0 * e,
        },
    )
    claims = _fig3(ds)
    assert {c.verdict for c in claims} == {SUPPORTED}
    peak = _claim(claims, "test_peaks_then_drops")
    # the peak: the 3 epochs around epoch 5; the end: the last 3 epochs
    drop = (0.89 + 0.9 + 0.89) / 3 - (0.77 + 0.76 + 0.75) / 3
    assert peak.values["peak_epoch"] == 5 and peak.values["drop"] == pytest.approx(drop)
    faster = _claim(claims, "easy_learnt_faster")
    assert faster.low <= faster.effect <= faster.high and faster.threshold == 0.01


def test_fig3_claims_fail_on_the_opposite_shape():
    ds = dynamics(
        train={
            "full": lambda e: 0.6 + 0 * e,
            "easy": lambda e: 0.01 * e,  # easy slow
            "difficult": lambda e: np.minimum(1, 0.5 + 0.5 * e) * (e > 0),
        },
        test={s: (lambda e: 0.5 + 0.01 * e) for s in SUBSETS},  # keeps rising
    )
    claims = _fig3(ds)
    assert _claim(claims, "easy_learnt_faster").verdict == NOT_SUPPORTED
    assert _claim(claims, "test_peaks_then_drops").verdict == NOT_SUPPORTED
    flat = dynamics(
        train={
            "full": lambda e: 0.6 + 0 * e,
            "easy": lambda e: 1 + 0 * e,
            "difficult": lambda e: 0 * e,
        }
    )
    assert _claim(_fig3(flat), "learnt_simultaneously").verdict == NOT_SUPPORTED
    assert _claim(_fig3(flat), "learnt_simultaneously").values["difficult_loss_fall"] == 0


def test_an_effect_too_close_to_its_threshold_is_inconclusive_and_the_interval_is_fixed():
    """A gap of 0.01 measured on 20 examples per subset straddles the threshold: the verdict
    is neither; the same artifacts give the same interval every time (seeded by the claim)."""
    ds = dynamics(
        train={"full": lambda e: 0.5 + 0 * e, "easy": lambda e: 0.51 + 0 * e,
               "difficult": lambda e: 0.49 + 0 * e},
    )  # fmt: skip
    ds["subset_size"].values[0] = [40, 20, 20]
    claim = _claim(_fig3(ds), "easy_learnt_faster")
    assert claim.verdict == INCONCLUSIVE and claim.low < 0.01 < claim.high
    again = _claim(_fig3(ds), "easy_learnt_faster")
    assert (again.low, again.high) == (claim.low, claim.high)


def test_seeds_pool_into_one_interval():
    """Two seeds of a study, one with a gap and one with the opposite gap: the pooled
    interval covers both, so the claim cannot be called from either seed alone."""
    gap = dynamics(
        train={"full": lambda e: 0.5 + 0 * e, "easy": lambda e: 0.9 + 0 * e,
               "difficult": lambda e: 0.5 + 0 * e},
    )  # fmt: skip
    none = dynamics(
        train={"full": lambda e: 0.5 + 0 * e, "easy": lambda e: 0.45 + 0 * e,
               "difficult": lambda e: 0.55 + 0 * e},
    )  # fmt: skip
    both = xr.concat([gap, none], "seed").assign_coords(seed=[0, 1])
    both.attrs = gap.attrs
    assert _claim(_fig3(gap), "easy_learnt_faster").verdict == SUPPORTED
    assert _claim(_fig3(none), "easy_learnt_faster").verdict == NOT_SUPPORTED
    pooled = _claim(_fig3(both), "easy_learnt_faster")
    assert pooled.verdict == INCONCLUSIVE and pooled.low < -0.05 and pooled.high > 0.3
    assert "2 seed(s)" in pooled.evidence


# --- figure 5 -------------------------------------------------------------------------


def _fig5(ds):
    return DRAWINGS["fig5"].claims({"experiments": [{"dynamics": ds}]}, {"window": 1})


def test_fig5_control_effect_and_test_split():
    good = {
        "full": lambda e: 0.9 + 0 * e,
        "easy": lambda e: np.minimum(1, 0.6 + 0.2 * e),
        "difficult": lambda e: np.minimum(1, 0.3 + 0.04 * e),
    }
    test_good = {
        "full": lambda e: 0.9 + 0 * e,
        "easy": lambda e: 0.99 + 0 * e,
        "difficult": lambda e: 0.6 + 0 * e,
    }
    control = {
        "train": {**good, "difficult": lambda e: 0.3 + 0 * e},
        "test": {**test_good, "difficult": lambda e: 0.55 + 0 * e},
    }
    claims = _fig5(dynamics(good, test_good, control))
    assert {c.verdict for c in claims} == {SUPPORTED}
    effect = _claim(claims, "control_without_difficult")
    assert effect.values["all_train"] == pytest.approx(1.0)
    assert effect.values["without_difficult_train"] == pytest.approx(0.3)
    assert "0.600 vs 0.550" in effect.evidence
    # no control run: not measured; no effect of removing: not supported
    assert _claim(_fig5(dynamics(good, test_good)), "control_without_difficult").verdict == (
        NOT_MEASURED
    )
    same = {"train": good, "test": test_good}
    assert _claim(_fig5(dynamics(good, test_good, same)), "control_without_difficult").verdict == (
        NOT_SUPPORTED
    )
    reversed_test = {**test_good, "easy": lambda e: 0.3 + 0 * e}
    claim = _claim(_fig5(dynamics(good, reversed_test)), "easy_higher_test_accuracy")
    assert claim.verdict == NOT_SUPPORTED


# --- figure 4 -------------------------------------------------------------------------


def gradstats(cos_easy, cos_difficult, con_easy, con_difficult, con_full, epochs=10):
    e = np.arange(1, epochs + 1)
    cos = np.stack([0 * e + 0.001, cos_easy(e), cos_difficult(e)], 1)
    con = np.stack([con_full(e), con_easy(e), con_difficult(e)], 1)
    return xr.Dataset(
        {
            "cosine_similarity": (("epoch", "subset"), cos),
            "contribution": (("epoch", "subset"), con),
            "probe_size": (("subset",), np.array([10, 10, 10])),
        },
        coords={"epoch": e, "subset": SUBSETS},
        attrs=_attrs(study={"lr": 0.06, "epochs": epochs}),
    )


def test_fig4_claims():
    def fig4(ds):
        return DRAWINGS["fig4"].claims({"experiment": {"gradstats": ds}}, {"window": 1})

    paper = gradstats(
        lambda e: 0.03 + 0 * e, lambda e: 0.01 + 0 * e, lambda e: 0.5 + 0 * e, lambda e: 3 + 0 * e,
        lambda e: 1 + 0 * e,
    )  # fmt: skip
    assert {c.verdict for c in fig4(paper)} == {SUPPORTED}
    # easy more similar at only 12 of 40 epochs; difficult contributes less than the average
    other = gradstats(
        lambda e: np.where(e <= 12, 0.03, 0.0), lambda e: 0.01 + 0 * e, lambda e: 0.5 + 0 * e,
        lambda e: 0.8 + 0 * e, lambda e: 1 + 0 * e, epochs=40,
    )  # fmt: skip
    claims = fig4(other)
    assert _claim(claims, "cosine_easy_higher").verdict == NOT_SUPPORTED
    assert _claim(claims, "cosine_easy_higher").values["share_of_epochs"] == pytest.approx(0.3)
    # at 3 of 10 epochs: too few epochs to tell (the epochs are resampled)
    few = gradstats(
        lambda e: np.where(e <= 3, 0.03, 0.0), lambda e: 0.01 + 0 * e, lambda e: 0.5 + 0 * e,
        lambda e: 0.8 + 0 * e, lambda e: 1 + 0 * e,
    )  # fmt: skip
    assert _claim(fig4(few), "cosine_easy_higher").verdict == INCONCLUSIVE
    assert _claim(claims, "contribution_difficult_higher").verdict == SUPPORTED
    assert _claim(claims, "contribution_difficult_above_full").verdict == NOT_SUPPORTED


# --- figure 6 -------------------------------------------------------------------------


def crosstrain(easy_on_difficult, difficult_on_easy, fast=True, epochs=20, n=400):
    """A cross-training artifact: each run fits the subset it trains on (the easy run fast,
    or slowly), and reaches ``easy_on_difficult`` / ``difficult_on_easy`` on the other."""
    e = np.arange(epochs + 1)
    acc = np.zeros((epochs + 1, 2, 2))
    acc[:, 0, 0] = np.minimum(1, 0.1 + (0.9 if fast else 0.05) * e)  # easy run, on easy
    acc[:, 1, 1] = np.linspace(0.1, 1, epochs + 1)  # difficult run, on difficult
    acc[:, 0, 1] = np.linspace(0.1, easy_on_difficult, epochs + 1)
    acc[:, 1, 0] = np.linspace(0.1, difficult_on_easy, epochs + 1)
    return xr.Dataset(
        {
            "accuracy": (("epoch", "train_on", "evaluate_on"), acc),
            "subset_size": (("evaluate_on",), np.array([n, n])),
        },
        coords={
            "epoch": e,
            "train_on": ["easy", "difficult"],
            "evaluate_on": ["easy", "difficult"],
        },
        attrs=_attrs(),
    )


def _fig6(ds):
    return {c.key: c for c in DRAWINGS["fig6"].claims({"experiment": {"crosstrain": ds}}, {})}


def test_fig6_both_halves_as_the_paper_states_them():
    """Trained on easy: fast on easy, marginal on difficult; trained on difficult: both
    improve substantially, and the difficult subset informs the easy one more."""
    paper = _fig6(crosstrain(easy_on_difficult=0.2, difficult_on_easy=0.8))
    assert {c.verdict for c in paper.values()} == {SUPPORTED}
    assert set(paper) == {
        "easy_training_fast_on_easy", "easy_training_marginal_on_difficult",
        "difficult_training_improves_both", "difficult_informs_easy",
    }  # fmt: skip
    # gain on difficult trained on easy (0.1) over trained on itself (0.9)
    assert paper["easy_training_marginal_on_difficult"].effect == pytest.approx(0.1 / 0.9, 1e-3)
    opposite = _fig6(crosstrain(easy_on_difficult=0.9, difficult_on_easy=0.15, fast=False))
    assert opposite["easy_training_fast_on_easy"].verdict == NOT_SUPPORTED
    assert opposite["easy_training_marginal_on_difficult"].verdict == NOT_SUPPORTED
    assert opposite["difficult_training_improves_both"].verdict == NOT_SUPPORTED
    assert opposite["difficult_informs_easy"].verdict == NOT_SUPPORTED


# --- figure 10 ------------------------------------------------------------------------


def level(n, final_test, train_mean, peak=None, epochs=10, n_train=1000, rising=False):
    e = np.arange(epochs + 1)
    test = np.full(epochs + 1, final_test)
    if rising:  # up to final_test at the last epoch: no peak before the end
        test = final_test - 0.02 * (epochs - e)
    if peak is not None:  # three epochs at the peak, mid-training
        test[epochs // 2 - 1 : epochs // 2 + 2] = peak
    acc = np.zeros((1, 1, epochs + 1, 2, 1))
    acc[0, 0, :, 0, 0] = train_mean
    acc[0, 0, :, 1, 0] = test
    return xr.Dataset(
        {
            "accuracy": (("corrupt", "run", "epoch", "split", "subset"), acc),
            "subset_size": (("corrupt", "split", "subset"), np.array([[[n_train], [200]]])),
        },
        coords={"corrupt": [n], "run": ["all"], "epoch": e, "split": ["train", "test"],
                "subset": ["full"]},
        attrs=_attrs(corrupt=n, study={"lr": 0.1, "epochs": epochs}),
    )  # fmt: skip


def _fig10(levels):
    return DRAWINGS["fig10"].claims({"experiment": {"sweep": levels}}, {"window": 1})


def test_fig10_claims_on_the_paper_ordering():
    levels = [
        level(0, 0.95, 0.95),
        level(500, 0.80, 0.7, peak=0.9),
        level(1000, 0.11, 0.3),  # every label random: at chance
    ]
    claims = _fig10(levels[::-1])  # order of the files does not matter
    assert {c.verdict for c in claims} == {SUPPORTED}
    assert _claim(claims, "all_random_at_chance").values["chance"] == pytest.approx(0.1)


def test_fig10_claims_fail_and_say_what_is_not_measured():
    levels = [level(0, 0.85, 0.85), level(400, 0.95, 0.95, rising=True)]  # more noise, higher
    claims = _fig10(levels)
    assert _claim(claims, "more_noise_lower_test").verdict == NOT_SUPPORTED
    assert _claim(claims, "more_noise_slower_fit").verdict == NOT_SUPPORTED
    assert _claim(claims, "all_random_at_chance").verdict == NOT_MEASURED
    assert _claim(claims, "noisy_test_peaks_then_drops").verdict == NOT_SUPPORTED
    below = _fig10([level(0, 0.9, 0.9), level(1000, 0.01, 0.3)])  # learnt "not the class"
    assert _claim(below, "all_random_at_chance").verdict == NOT_SUPPORTED


# --- figures 2, 7/8, 9 and the sub-network check ----------------------------------------


def scores(mem, wrong, unmuted=(0.5, 0.99), muted=(0.4, 0.8), heldout=0.85, pred_ok=None):
    n = len(mem)
    epochs = np.arange(1, len(unmuted) + 1)
    labels = np.arange(n) % 10
    pred = labels if pred_ok is None else np.where(pred_ok, labels, (labels + 1) % 10)
    true = np.where(wrong, (labels + 1) % 10, labels)
    return xr.Dataset(
        {
            "memorization": ("example", np.asarray(mem, float)),
            "mislabeled": ("example", np.asarray(wrong, bool)),
            "corrupted": ("example", np.asarray(wrong, bool)),
            "label": ("example", labels),
            "true_label": ("example", true),
            "pred_unmuted": ("example", labels),
            "pred_muted": ("example", pred),
            "subnet_accuracy": (("epoch", "subnet"), np.stack([unmuted, muted], 1)),
            "heldout_accuracy": (
                ("epoch", "subnet"),
                np.full((len(epochs), 2), heldout),
            ),
        },
        coords={"example": np.arange(n), "epoch": epochs, "subnet": ["unmuted", "muted"]},
        attrs=_attrs(),
    )


def test_fig2_claims():
    rng = np.random.default_rng(0)
    clean = scores(np.concatenate([np.zeros(900), rng.exponential(3, 100)]), np.zeros(1000))
    wrong = np.arange(1000) < 300
    noisy = scores(np.where(wrong, 5.0, 0.0) + rng.normal(0, 0.5, 1000), wrong)
    claims = DRAWINGS["fig2"].claims(
        {"clean": {"scores": clean}, "corrupted": {"scores": noisy}}, {"bins": 10}
    )
    assert {c.verdict for c in claims} == {SUPPORTED}
    assert _claim(claims, "random_labels_score_higher").values["auc"] > 0.99
    # a "clean" experiment with wrong labels is not called uncorrupted; no long tail
    flat = scores(rng.normal(2, 0.1, 1000), wrong)
    claims = DRAWINGS["fig2"].claims(
        {"clean": {"scores": flat}, "corrupted": {"scores": flat}}, {"bins": 10}
    )
    assert _claim(claims, "long_tail").verdict == NOT_MEASURED
    assert "300 wrong labels" in _claim(claims, "long_tail").evidence
    assert _claim(claims, "random_labels_score_higher").verdict == NOT_SUPPORTED


def test_example_grid_claim():
    mem = np.arange(100, dtype=float)
    ok = scores(mem, np.zeros(100), pred_ok=mem < 50)
    (claim,) = DRAWINGS["fig7"].claims(
        {"experiment": {"scores": ok, "dataset": None}}, {"per_class": 2}
    )
    assert claim.verdict == SUPPORTED and claim.values["difficult_muted_right"] == 0
    bad = scores(mem, np.zeros(100), pred_ok=mem >= 50)
    (claim,) = DRAWINGS["fig8"].claims(
        {"experiment": {"scores": bad, "dataset": None}}, {"per_class": 2}
    )
    assert claim.verdict == NOT_SUPPORTED and claim.values["easy_both_right"] == 0


def test_fig9_convergence():
    """Converged at half of the training and stable over the last quarter: both claims; a
    late rise fails both (measured on 5,000 examples: the accuracies of two epochs are
    redrawn as independent proportions, which overstates the noise of a change)."""
    n = 5000
    fast = scores(np.zeros(n), np.zeros(n), unmuted=[0.9, 0.98, 0.99, 0.99, 0.99],
                  muted=[0.8, 0.85, 0.85, 0.86, 0.86])  # fmt: skip
    slow = scores(np.zeros(n), np.zeros(n), unmuted=[0.1, 0.2, 0.4, 0.6, 0.9],
                  muted=[0.1, 0.1, 0.3, 0.5, 0.8])  # fmt: skip
    claims = DRAWINGS["fig9"].claims({"experiments": [{"scores": fast}, {"scores": slow}]}, {})
    assert [(c.key, c.verdict) for c in claims] == [
        ("subnetworks_converge_early", SUPPORTED), ("subnetworks_stable", SUPPORTED),
        ("subnetworks_converge_early", NOT_SUPPORTED), ("subnetworks_stable", NOT_SUPPORTED),
    ]  # fmt: skip
    assert "gap at the last epoch 0.130" in claims[0].evidence
    short = scores(np.zeros(10), np.zeros(10), unmuted=[0.5, 0.9], muted=[0.5, 0.8])
    assert {
        c.verdict for c in DRAWINGS["fig9"].claims({"experiments": [{"scores": short}]}, {})
    } == {NOT_MEASURED}


def test_subnetwork_check_flags_masks_learnt_at_chance():
    n = 2000
    zeros = np.zeros(n)
    learnt_masks = scores(zeros, zeros, unmuted=[0.6, 0.97], muted=[0.1, 0.1], heldout=0.1)
    claim = subnetwork_check(learnt_masks)
    assert claim.verdict == NOT_SUPPORTED and "FLAG" in claim.evidence
    healthy = scores(zeros, zeros, unmuted=[0.6, 0.99], muted=[0.5, 0.84], heldout=0.9)
    claim = subnetwork_check(healthy, plain_test_accuracy=0.95)
    assert claim.verdict == SUPPORTED and "FLAG" not in claim.evidence
    assert claim.values["muted_over_reference"] == pytest.approx(0.84 / 0.95)
    assert claim.low < claim.effect < claim.high and claim.threshold == 0.8
    # below 0.8 of the plain model's held-out accuracy, without being at chance
    weak = scores(zeros, zeros, unmuted=[0.6, 0.99], muted=[0.5, 0.6], heldout=0.9)
    assert subnetwork_check(weak, plain_test_accuracy=0.95).verdict == NOT_SUPPORTED
    # random labels cannot be predicted without seeing them: compared on the real share
    noisy = scores(zeros, np.arange(n) < 0.3 * n, unmuted=[0.6, 0.99], muted=[0.5, 0.6],
                   heldout=0.8)  # fmt: skip
    claim = subnetwork_check(noisy)
    assert claim.verdict == SUPPORTED
    assert "NOTE" not in claim.evidence and claim.values["muted_sees_examples"] == 0
    assert claim.values["muted_over_reference"] == pytest.approx(0.6 / (0.8 * 0.7))
    # muted sub-networks far above their held-out accuracy: supported, with a note
    seen = scores(zeros, zeros, unmuted=[0.6, 0.99], muted=[0.5, 0.74], heldout=0.55)
    claim = subnetwork_check(seen)
    assert claim.verdict == SUPPORTED and claim.low > 1.1
    assert "share memorize" in claim.evidence and claim.values["muted_sees_examples"] == 1
    # on 10 examples the same ratio cannot be told from 0.8
    few = scores(np.zeros(10), np.zeros(10), unmuted=[0.6, 0.99], muted=[0.5, 0.84], heldout=0.9)
    assert subnetwork_check(few, plain_test_accuracy=0.95).verdict == INCONCLUSIVE


# --- writing, reading, the README -------------------------------------------------------


def test_claims_round_trip_and_markdown(tmp_path):
    claims = [
        Claim("fig3", "a", "easy first", SUPPORTED, "epoch 1 vs never", "x", {"e": float("inf")}),
        Claim("fig4", "b", "a | b", NOT_SUPPORTED, "share 0.3", "y", {"s": 0.3}),
    ]
    write_claims(claims, tmp_path / "c.md", tmp_path / "c.json")
    back = read_claims(tmp_path / "c.json")
    assert back[0].values == {"e": None}  # infinity ("never") is not JSON
    assert back[1] == claims[1]
    json.loads((tmp_path / "c.json").read_text())
    md = (tmp_path / "c.md").read_text()
    assert "1 supported, 1 not supported, 0 inconclusive, 0 not measured." in md
    assert "| fig4 | a / b (`b`) | y |  | share 0.3 | **NOT supported** |" in md
    readme = tmp_path / "README.md"
    from memorization.report.claims import README_END, README_START

    readme.write_text(f"intro\n{README_START}\nSTALE ROWS\n{README_END}\nrest\n")
    update_readme(readme, tmp_path / "c.md")
    text = readme.read_text()
    assert (
        "STALE ROWS" not in text
        and "| fig3 | easy first (`a`) |" in text
        and text.endswith("rest\n")
    )
    assert to_markdown(claims).count("\n| fig") == 3  # the header and two rows
    # a second, compact table under its own markers leaves the first one alone
    from memorization.report.claims import COMPACT_HEADER, readme_markers

    start, end = readme_markers("cifar")
    readme.write_text(text + f"{start}\nOLD\n{end}\n")
    update_readme(readme, tmp_path / "c.md", "(note)", section="cifar", compact=True)
    first, second = readme.read_text().split(start)
    assert first == text and "OLD" not in second
    # one row per figure and experiment, each claim by its key: no statement, no evidence
    assert "| fig4 | y | `b` **NOT supported** |" in second and "a / b" not in second
    assert COMPACT_HEADER in second
    assert "0 not measured. (note)" in second
    with pytest.raises(ValueError, match="no claims markers"):
        update_readme(readme, tmp_path / "c.md", section="other")
    with pytest.raises(ValueError, match="verdict must be one of"):
        Claim("fig3", "a", "s", "maybe", "e")


def test_simultaneity_seen_in_the_loss_of_random_labels():
    """Random labels lose their chance accuracy first, while their loss already falls."""
    ds = dynamics(
        train={"full": lambda e: 0.6 + 0 * e, "easy": lambda e: 1 + 0 * e,
               "difficult": lambda e: np.where(e == 0, 0.1, 0.0)},
        epochs=40,
    )  # fmt: skip
    loss = ds["loss"].values.copy()
    epochs = ds["epoch"].values
    # rises to 3.5 at epoch 2, then falls: 3.1 at epoch 4 (the end of the first tenth)
    loss[0, :, 0, 2] = np.interp(epochs, [0, 2, 4, 40], [2.3, 3.5, 3.1, 0.8])
    claim = _claim(_fig3(ds.assign(loss=(ds["loss"].dims, loss))), "learnt_simultaneously")
    assert claim.verdict == SUPPORTED
    assert claim.values["difficult_loss_fall"] == pytest.approx(0.4 / 3.5)
    assert claim.values["early_epoch"] == 4
