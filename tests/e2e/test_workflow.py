"""The workflow end to end on a tiny config (scikit-learn's 8x8 digits, small models)."""

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from helpers import snakemake_command

from memorization.report.claims import readme_markers

pytestmark = pytest.mark.workflow

ROOT = Path(__file__).resolve().parents[2]

TINY = {
    "device": "cpu",
    "threads": 1,
    "experiments": {
        "clean": {
            "dataset": "digits",
            "model": "mlp",
            "hidden": 128,
            "corrupt": 0,
            "seed": 0,
            "epochs": 4,
            "lr": 0.1,
            "batch_size": 64,
            "subset_size": 100,
            "control": True,
            "corruption_levels": [0, 700],
        },
        "noisy": {
            "dataset": "digits",
            "model": "mlp",
            "hidden": 256,
            "corrupt": 300,
            "seed": 1,
            "epochs": 15,
            "lr": 0.1,
            "batch_size": 64,
            "subset_size": 100,
            "dynamics_lr": 0.05,
            "dynamics_epochs": 6,
            "gradstats_epochs": 5,
            "probe_size": 20,
            "claim_seeds": 2,  # the plain studies twice: claims with an interval over seeds
        },
        "vgg": {
            "dataset": "digits",
            "model": "vgg11",
            "width": 0.0625,
            "masked_layers": 2,
            "corrupt": 0,
            "seed": 0,
            "epochs": 2,
            "lr": 0.02,
            "momentum": 0.9,
            "batch_size": 64,
            "milestones": [1],
            "subset_size": 100,
        },
        "cct": {
            "dataset": "digits",
            "model": "cct",
            "depth": 1,
            "heads": 2,
            "embed_dim": 16,
            "tokenizer_channels": 8,
            "activation": "relu",
            "corrupt": 0,
            "seed": 0,
            "epochs": 2,
            "lr": 0.05,
            "momentum": 0.9,
            "batch_size": 64,
        },
    },
    "figures": {
        "fig2": {"clean": "clean", "corrupted": "noisy", "bins": 20},
        "fig7": {"experiment": "clean", "per_class": 2},
        "fig8": {"experiment": "vgg", "per_class": 2},
        "fig9": {"experiments": ["clean", "vgg", "cct"]},
        "fig3": {"experiment": "noisy", "window": 3},
        "fig4": {"experiment": "noisy", "window": 1},
        "fig5": {"experiments": ["clean", "vgg"]},
        "fig6": {"experiment": "clean"},
        "fig10": {"experiment": "clean"},
    },
}

ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}

with open(ROOT / "config/config.yaml") as _fh:
    DEFAULT_CONFIG = yaml.safe_load(_fh)


def snakemake(workdir, *args, config=None, check=True, cores=2, timeout=900):
    cfg = workdir / "config.yaml"
    if config is not None:
        cfg.write_text(yaml.safe_dump(config))
    cmd = snakemake_command(
        "--directory",
        str(workdir),
        "--configfile",
        str(cfg),
        "--cores",
        str(cores),
        *args,
    )
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}")
    return res


def snapshot(workdir) -> dict[str, tuple[int, int]]:
    """Every file under results/ with its size and modification time."""
    return {
        str(p.relative_to(workdir)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted((workdir / "results").rglob("*"))
        if p.is_file()
    }


def planned_rules(workdir, *args, config=None) -> set[str]:
    res = snakemake(workdir, "-n", "--quiet", "rules", *args, config=config)
    out = res.stdout + res.stderr
    if "Nothing to be done" in out:
        return set()
    rules = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            rules.add(parts[0])
    return rules


def build_tiny(tmp_path_factory) -> Path:
    """The workflow run on TINY, built once per test session: test_cli reads it too."""
    workdir = tmp_path_factory.getbasetemp() / "tiny_workflow"
    done = workdir / ".built"
    if not done.exists():
        workdir.mkdir(exist_ok=True)
        snakemake(workdir, config=TINY)
        done.write_text("")
    return workdir


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_tiny(tmp_path_factory)


def test_builds_every_figure_as_pdf(built):
    for fig in TINY["figures"]:
        pdf = (built / "results" / f"{fig}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF") and len(pdf) > 5000


def test_logs_and_benchmarks_follow_the_artifact_paths(built):
    """results/logs/<artifact path>.log for every job; benchmarks of the training jobs."""
    res = built / "results"
    logs = ["data/digits", "claims", *(f"{fig}" for fig in TINY["figures"])]
    logs += [f"clean/{s}" for s in ("labels", "scores", "scores_test", "subsets", "dynamics")]
    logs += ["clean/crosstrain", "clean/sweep/corrupt0", "clean/sweep/corrupt700"]
    logs += ["noisy/gradstats", "noisy/subsets_test", "vgg/scores", "cct/scores"]
    for name in logs:
        stage = {"data/digits": "dataset", "claims": "claims"}.get(name, name.split("/")[-1])
        if name in TINY["figures"]:
            stage = "figure"
        elif "/sweep/" in name:
            stage = "sweep"
        text = (res / "logs" / f"{name}.log").read_text()
        assert f"stage {stage} started" in text, name
    for name in ("clean/scores", "clean/sweep/corrupt700", "noisy/gradstats", "vgg/dynamics"):
        assert (res / "benchmarks" / f"{name}.tsv").read_text().startswith("s\t"), name
    assert not (res / "benchmarks/clean/subsets.tsv").exists()  # only the training rules


def test_claims_table_lists_every_claim_with_evidence(built):
    claims = json.loads((built / "results/claims.json").read_text())
    by_figure = {}
    for c in claims:
        by_figure.setdefault(c["figure"], []).append(c)
        assert c["verdict"] in ("supported", "not supported", "inconclusive", "not measured")
        assert c["evidence"] and c["statement"]
    assert set(by_figure) == {*TINY["figures"], "scores"}
    keys = {c["key"] for c in by_figure["fig3"]}
    assert keys == {"easy_learnt_faster", "learnt_simultaneously", "test_peaks_then_drops"}
    # the sub-network check covers every scored experiment
    assert {c["experiment"] for c in by_figure["scores"]} == {"clean", "noisy", "vgg", "cct"}
    # on the tiny noisy run the random labels clearly score higher
    auc = next(c for c in by_figure["fig2"] if c["key"] == "random_labels_score_higher")
    assert auc["verdict"] == "supported" and auc["values"]["auc"] > 0.75
    md = (built / "results/claims.md").read_text()
    assert md.count("\n| fig") + md.count("\n| scores") == len(claims) + 1
    summary = subprocess.run(
        [sys.executable, "-m", "memorization", "summary", str(built / "results")],
        capture_output=True,
        text=True,
        env=ENV,
        check=True,
    ).stdout
    assert summary.startswith("# The paper's claims on this run") and "== noisy" in summary
    assert "mean cosine_similarity over epochs: full" in summary  # the mean of 2 seeds
    with xr.open_dataset(built / "results/noisy/dynamics.nc", engine="netcdf4") as dyn:
        assert dyn.sizes["seed"] == 2 and dyn["seed"].values[0] == 1  # the experiment's own first
        runs = dyn["accuracy"].sel(run="all", split="train", subset="full").values
        assert not np.array_equal(runs[0], runs[1])  # two seeds, two different trainings


def test_scores_artifact_is_self_describing(built):
    with xr.open_dataset(built / "results/noisy/scores.nc", engine="netcdf4") as ds:
        for var in (
            "memorization",
            "loss_muted",
            "loss_unmuted",
            "prob_muted",
            "prob_unmuted",
            "pred_muted",
            "pred_unmuted",
            "label",
            "true_label",
            "corrupted",
            "mislabeled",
            "subnet_accuracy",
            "heldout_accuracy",
        ):
            attrs = ds[var].attrs
            assert attrs["long_name"] and ("units" in attrs or "flag_meanings" in attrs), var
        for var in ("corrupted", "mislabeled"):  # yes/no: CF flags, not units
            assert ds[var].attrs["flag_meanings"] == "false true", var
            assert list(ds[var].attrs["flag_values"]) == [0, 1], var
        for var in ("label", "true_label", "pred_muted", "pred_unmuted"):  # the digits' classes
            assert ds[var].attrs["flag_meanings"].split() == [str(d) for d in range(10)], var
        assert ds.attrs["kind"] == "scores" and ds.attrs["Conventions"].startswith("CF-")
        assert ds["memorization"].dims == ("example",)
        assert ds["subnet_accuracy"].dims == ("epoch", "subnet")
        assert ds.sizes["epoch"] == 15
        drawn, wrong = int(ds["corrupted"].sum()), int(ds["mislabeled"].sum())
        assert drawn == 300 and 240 < wrong < 300  # uniform: about a tenth keep their class
        assert ds.attrs["seed"] == 1 and ds.attrs["device"] == "cpu"
        assert ds.attrs["threads"] == 1 and ds.attrs["experiment"] == "noisy"
        cfg = yaml.safe_load(ds.attrs["config"])  # the scores stage's slice
        assert cfg["labels"]["corrupt"] == 300 and cfg["labels"]["corruption"] == "uniform"
        assert cfg["model"]["model"] == "mlp" and cfg["model"]["hidden"] == 256
        assert ds.attrs["mislabeled_auc"] > 0.75
        mem, bad = ds["memorization"].values, ds["mislabeled"].values.astype(bool)
        assert np.median(mem[bad]) > np.median(mem[~bad])
    with xr.open_dataset(built / "results/noisy/labels.nc", engine="netcdf4") as lab:
        changed = lab["label"].values != lab["true_label"].values
        assert np.array_equal(changed, lab["mislabeled"].values.astype(bool))
        assert np.all(lab["corrupted"].values[changed])
    assert not list(built.glob("results/**/*.part"))


def test_cct_scores_through_the_workflow(built):
    with xr.open_dataset(built / "results/cct/scores.nc", engine="netcdf4") as ds:
        assert ds.sizes["example"] == 1437 and ds.sizes["epoch"] == 2
        assert np.isfinite(ds["memorization"].values).all()
        assert "blocks.0.norm1.weight" in ds.attrs["shared_parameters"]
        assert yaml.safe_load(ds.attrs["config"])["model"]["activation"] == "relu"
        assert ds.attrs["masked_layers"] == 3


def test_training_dynamics_artifacts(built):
    res = built / "results"
    with xr.open_dataset(res / "clean/dynamics.nc", engine="netcdf4") as ds:
        assert ds["accuracy"].dims == ("run", "epoch", "split", "subset")
        assert list(ds["run"].values) == ["all", "without_difficult"]  # control: true
        assert list(ds["subset"].values) == ["full", "easy", "difficult"]
        assert ds.sizes["epoch"] == 5  # epoch 0 (untrained) + 4
        assert int(ds["subset_size"].sel(split="train", subset="easy")) == 100
        assert int(ds["subset_size"].sel(split="test", subset="easy")) == 25  # 100 * 360/1437
        final = ds["accuracy"].sel(run="all", split="train").isel(epoch=-1)
        assert float(final.sel(subset="easy")) > float(final.sel(subset="difficult"))
        assert ds["accuracy"].attrs["units"] == "1"
    with xr.open_dataset(res / "vgg/dynamics.nc", engine="netcdf4") as ds:
        assert list(ds["run"].values) == ["all"]  # no control run unless asked for
    with xr.open_dataset(res / "clean/scores_test.nc", engine="netcdf4") as ds:
        assert ds.sizes["example"] == 360 and ds.attrs["split"] == "test"
    with xr.open_dataset(res / "noisy/dynamics.nc", engine="netcdf4") as ds:
        study = yaml.safe_load(ds.attrs["config"])["study"]
        assert ds.attrs["kind"] == "dynamics"
        assert study == {**study, "lr": 0.05, "epochs": 6}  # dynamics_lr, dynamics_epochs
    with xr.open_dataset(res / "noisy/gradstats.nc", engine="netcdf4") as ds:
        assert ds["contribution"].dims == ("seed", "epoch", "subset")  # claim_seeds: 2
        assert ds.sizes["seed"] == 2 and ds["seed"].values[0] == 1
        study = yaml.safe_load(ds.attrs["config"])["study"]
        # figure 4 trains at the experiment's own lr (0.1), not the dynamics' 0.05
        assert ds.attrs["kind"] == "gradstats"
        assert ds.sizes["epoch"] == 5 and study["lr"] == 0.1 and study["epochs"] == 5
        cos = ds["cosine_similarity"].values
        assert np.isfinite(cos).all() and (np.abs(cos) <= 1).all()
        assert ds["probe_size"].values.tolist() == [[20, 20, 20]] * 2  # per seed
        assert np.isfinite(ds["contribution"].values).all()
    with xr.open_dataset(res / "clean/crosstrain.nc", engine="netcdf4") as ds:
        acc = ds["accuracy"]
        assert acc.dims == ("epoch", "train_on", "evaluate_on")
        for subset in ("easy", "difficult"):  # training on a subset fits that subset
            trained = acc.sel(train_on=subset, evaluate_on=subset).values
            assert trained[-1] > trained[0]
    for level in (0, 700):
        with xr.open_dataset(res / f"clean/sweep/corrupt{level}.nc", engine="netcdf4") as ds:
            assert int(ds["corrupt"].values[0]) == level
            assert ds.sizes["epoch"] == 5
            assert yaml.safe_load(ds.attrs["config"])["labels"]["corrupt"] == level
            assert ds.attrs["kind"] == "sweep"


#: where generated claims tables stand: the README (compact) and the documentation (full)
CLAIMS_TABLES = ("README.md", "docs/claims.md", "docs/cifar10.md")


def _generated_claim_rows(path: Path):
    """(figure, key, statement) of every row of a file's generated claims tables (the
    statement None in a compact table, which names each claim by its key)."""
    text = path.read_text()
    rows = []
    for section in ("", *re.findall(r"<!-- claims:start (\w+) \(generated", text)):
        start, end = readme_markers(section)
        if start not in text:
            continue
        for line in text[text.index(start) : text.index(end)].splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 6 and cells[1].endswith("`)"):
                statement, key = cells[1][: -len("`)")].rsplit(" (`", 1)
                rows.append((cells[0], key, statement))
            elif len(cells) == 3 and cells[0] != "figure":
                rows += [(cells[0], key, None) for key in re.findall(r"`(\w+)`", cells[2])]
    return rows


def test_the_generated_claims_tables_match_the_claim_definitions(built):
    """The tables in the README and the documentation were generated from today's claims:
    every row names a claim the code still makes, in the same words (the tiny run draws
    every figure of the default)."""
    rows = {name: _generated_claim_rows(ROOT / name) for name in CLAIMS_TABLES}
    assert len(rows["README.md"]) >= 30, "the README's claims table is missing"
    assert sum(s is not None for _, _, s in rows["docs/claims.md"]) >= 30
    made = {
        (c["figure"], c["key"]): c["statement"].replace("|", "/")
        for c in json.loads((built / "results/claims.json").read_text())
    }
    for name, found in rows.items():
        for figure, key, statement in found:
            assert (figure, key) in made, f"{name}: claim {figure}/{key} is no longer made"
            assert statement in (None, made[figure, key]), f"{name}: {figure}/{key} changed"


def test_html_report_holds_every_figure_and_the_claims(built):
    snakemake(built, "--report", str(built / "report.html"), config=TINY)
    html = (built / "report.html").read_text()
    for fig in TINY["figures"]:
        assert f"{fig}.pdf" in html
    assert "claims.md" in html
    for caption in ("Figure 2: Memorization scores", "Figure 10: Corruption sweep", "window"):
        assert caption in html


def test_report_covers_what_was_built(tmp_path):
    """--report works before every figure exists: it documents what has been built."""
    cfg = copy.deepcopy(TINY)
    cfg["experiments"] = {"clean": {**TINY["experiments"]["clean"], "epochs": 1}}
    cfg["figures"] = {"fig7": {"experiment": "clean"}, "fig6": {"experiment": "clean"}}
    snakemake(tmp_path, "results/fig7.pdf", config=cfg)
    snakemake(tmp_path, "--report", str(tmp_path / "report.html"), config=cfg)
    html = (tmp_path / "report.html").read_text()
    assert "fig7.pdf" in html and "fig6.pdf" not in html


def test_second_run_does_nothing_and_options_rerun_only_what_they_decide(built):
    assert planned_rules(built, config=TINY) == set()
    # execution settings decide where and how fast, not what: nothing reruns
    assert planned_rules(built, "--config", "device=auto", "threads=2", config=TINY) == set()
    changed = copy.deepcopy(TINY)
    changed["figures"]["fig2"]["bins"] = 30
    assert planned_rules(built, config=changed) == {"figure", "claims", "all"}
    # a nested --config override reaches the experiment it names, and only its stages
    rules = planned_rules(built, "--config", "experiments={vgg: {epochs: 3}}", config=TINY)
    assert {"scores", "subsets", "figure"} <= rules
    assert not rules & {"labels", "sweep", "dataset"}
    # the cross-subset epochs decide only the cross-subset runs
    rules = planned_rules(
        built, "--config", "experiments={clean: {crosstrain_epochs: 2}}", config=TINY
    )
    assert rules == {"crosstrain", "figure", "claims", "all"}
    snakemake(built, config=TINY)  # restore the config file for the other tests


def test_a_foreign_artifact_is_refused_with_the_fix(built, tmp_path):
    work = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(built), str(work)], check=True)
    res = work / "results"
    # another experiment's scores, copied over noisy's
    (res / "noisy/scores.nc").write_bytes((res / "clean/scores.nc").read_bytes())
    out = snakemake(work, "results/noisy/subsets.nc", "--forcerun", "subsets", check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "noisy/scores.nc was not made from this config" in text
    assert "seed: 0 in the file, 1 in this config" in text and "rm " in text
    # the failing job says so in one line naming its log; the traceback is in the log
    log = res / "logs/noisy/subsets.log"
    failed = [line for line in text.splitlines() if line.startswith("subsets failed: ")]
    assert len(failed) == 1 and failed[0].endswith(f"(traceback in {log.relative_to(work)})")
    assert "was not made from this config" in failed[0]
    assert "Traceback (most recent call last)" not in text
    assert "Traceback (most recent call last)" in log.read_text()


def test_scores_do_not_depend_on_cores(tmp_path):
    """threads: 2 under --cores 1 and --cores 2 gives bit-identical scores."""
    cfg = {
        "device": "cpu",
        "threads": 2,
        "experiments": {"e": {**TINY["experiments"]["clean"], "epochs": 2}},
        "figures": {},
    }
    scores = []
    for cores in (1, 2):
        work = tmp_path / f"cores{cores}"
        work.mkdir()
        snakemake(work, "results/e/scores.nc", config=cfg, cores=cores)
        with xr.open_dataset(work / "results/e/scores.nc", engine="netcdf4") as ds:
            assert ds.attrs["threads"] == 2
            scores.append(ds["memorization"].values.copy())
    assert np.array_equal(scores[0], scores[1])


def test_lint_is_clean():
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
    )
    assert "Congratulations" in res.stdout + res.stderr, res.stdout + res.stderr


def test_paper_config_plans_every_figure_in_its_own_folder():
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", "config/paper.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    with open(ROOT / "config/paper.yaml") as fh:
        paper = yaml.safe_load(fh)
    for fig in paper["figures"]:
        assert f"results/paper/{fig}.pdf" in out
    assert "results/paper/claims.md" in out
    # figure 9b trains the compact convolutional transformer on Fashion-MNIST
    assert "results/paper/fashion_mnist_cct/scores.nc" in out
    assert "results/paper/data/fashion_mnist.nc" in out
    assert " results/mnist_mlp" not in out  # never the default config's folder


BATCH = """
import contextlib, io, json, sys
from snakemake.cli import main

snakefile, workdir, *configs = sys.argv[1:]
results = []
for cfg in configs:
    out = io.StringIO()
    code = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            # --until: should a bad input slip through, only the data would be prepared
            main(["--snakefile", snakefile, "--directory", workdir, "--configfile", cfg,
                  "--cores", "2", "--until", "dataset"])
        except SystemExit as exit:
            code = exit.code
    results.append({"code": code, "out": out.getvalue()})
print(json.dumps(results))
"""


def _bad_cases():
    sys.path.insert(0, str(ROOT / "tests" / "workflow"))
    from test_config import BAD, DEFAULT, _with

    cases = [(f"{p}={v!r}", _with(p, v), message) for p, v, message in BAD]
    cases.append(("device=cuda (no GPU here)", {**DEFAULT, "device": "cuda"}, "device: 'cuda'"))
    return cases


@pytest.fixture(scope="module")
def refused(built, tmp_path_factory):
    """Every bad input of test_config.BAD, run for real in the built workflow's folder."""
    if __import__("torch").cuda.is_available():
        pytest.skip("the device case needs a machine without GPU")
    before = snapshot(built)
    folder = tmp_path_factory.mktemp("bad")
    paths = []
    for k, (_, cfg, _) in enumerate(_bad_cases()):
        path = folder / f"bad{k}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        paths.append(str(path))
    syntax = folder / "syntax.yaml"
    syntax.write_text("experiments:\n  a: {dataset: mnist5k\n  b: 1\n")
    paths.append(str(syntax))
    # a key given twice: YAML (and Snakemake) would silently keep the second
    text = yaml.safe_dump(DEFAULT_CONFIG)
    twice = folder / "twice.yaml"
    twice.write_text(text + "device: cpu\n")
    paths.append(str(twice))
    res = subprocess.run(
        [sys.executable, "-c", BATCH, str(ROOT / "Snakefile"), str(built), *paths],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return before, snapshot(built), json.loads(res.stdout.splitlines()[-1])


def test_bad_inputs_are_refused_before_any_job(refused):
    before, after, results = refused
    cases = _bad_cases()
    assert len(results) == len(cases) + 2 >= 31
    for (name, _, message), res in zip(cases, results, strict=False):
        assert res["code"] not in (0, None), name
        assert message in res["out"], (name, res["out"][-1500:])
        assert "Select jobs to execute" not in res["out"], name  # no job started
        assert "Traceback" not in res["out"], name  # a message, not a crash
    syntax, twice = results[-2:]
    assert syntax["code"] not in (0, None) and "not valid JSON or YAML" in syntax["out"]
    line = len(yaml.safe_dump(DEFAULT_CONFIG).splitlines()) + 1
    assert twice["code"] not in (0, None) and "Select jobs to execute" not in twice["out"]
    assert f"twice.yaml:{line}:1: key 'device' is given twice" in twice["out"], twice["out"]
    assert after == before  # nothing under results/ changed


TRUST = {
    "device": "cpu",
    "threads": 1,
    "experiments": {
        "clean": {
            "dataset": "digits",
            "model": "mlp",
            "hidden": 64,
            "seed": 0,
            "epochs": 4,
            "lr": 0.1,
            "batch_size": 64,
            "replicates": 2,
            "truth": {"models": 6, "fraction": 0.7, "shards": 2, "top_k": 5},
        },
        "noisy": {
            "dataset": "digits",
            "model": "mlp",
            "hidden": 64,
            "corrupt": 300,
            "seed": 0,
            "epochs": 6,
            "lr": 0.1,
            "batch_size": 64,
        },
    },
    "figures": {
        "validation": {"clean": "clean", "noisy": "noisy", "replicates": [1, 2]},
        "influence": {"experiment": "clean", "examples": 3},
    },
}


def test_trust_rules_end_to_end(tmp_path):
    """Replicates, peers, sharded ground truth, influence and the validation table."""
    snakemake(tmp_path, config=TRUST)
    res = tmp_path / "results"
    with xr.open_dataset(res / "clean/scores.nc", engine="netcdf4") as ds:
        assert ds.sizes["replicate"] == 2 and ds.attrs["replicates"] == 2
        for r in range(2):
            with xr.open_dataset(res / f"clean/replicates/scores_r{r}.nc", engine="netcdf4") as one:
                by = ds["memorization_by_replicate"].isel(replicate=r).values
                assert np.array_equal(by, one["memorization"].values)
                assert one.attrs["kind"] == "scores_replicate"
        assert ds["memorization_se"].attrs["long_name"].startswith("standard error")
    # the peer estimators' artifact (was estimators.nc), made by the peers rule
    with xr.open_dataset(res / "clean/peers.nc", engine="netcdf4") as ds:
        assert ds.attrs["kind"] == "peers"
    assert not list(res.rglob("estimators.nc"))
    assert "stage peers started" in (res / "logs/clean/peers.log").read_text()
    assert (res / "logs/clean/truth/shard1.log").exists()
    assert (res / "logs/clean/replicates/scores_r1.log").exists()
    with xr.open_dataset(res / "clean/truth.nc", engine="netcdf4") as ds:
        assert ds.attrs["n_models_merged"] == 6 and ds.sizes["half"] == 2
        assert ds.sizes["rank"] == 5 and ds.sizes["test_example"] == 360
        # its compute time, on the CPU's clock, beside its wall time
        assert ds.attrs["clock"] == "process_cpu" and ds.attrs["train_seconds"] > 0
    assert not list(res.rglob(".*.checkpoint"))  # every job removed its checkpoint
    with xr.open_dataset(res / "clean/influence.nc", engine="netcdf4") as ds:
        assert ds["influence_example"].shape == (360, 5)
        assert np.all(np.diff(ds["influence"].values, axis=1) <= 0)
    with xr.open_dataset(res / "validation.nc", engine="netcdf4") as ds:
        names = set(ds["estimator"].values)
        assert {"turnover_loss_R1", "turnover_zero_one_R2", "tracin_self_influence"} <= names
        assert "fz_half_vs_half" in names and "turnover_loss_R2" in names
        assert list(ds["experiment"].values) == ["clean"]  # one table row per architecture
        assert np.isfinite(
            ds["auc_memorized"].sel(experiment="clean", estimator="turnover_loss_R1")
        )
        assert np.isfinite(ds["random_label_auc"].sel(estimator="final_loss"))
        assert 0 <= ds.attrs["fitted_plain"] <= 1 and "influence_top_overlap" in ds.attrs
        # the experiment's own R = 2: its measured cost from estimates.nc; fewer: the
        # share of it that their replicates took
        cost = ds["cost_runs"].sel(experiment="clean", estimator="turnover_loss_R2")
        one = float(ds["cost_runs"].sel(experiment="clean", estimator="turnover_loss_R1"))
    with xr.open_dataset(res / "clean/scores.nc", engine="netcdf4") as ds:
        seconds = ds["replicate_seconds"].values
        assert one == pytest.approx(float(cost) * seconds[0] / seconds.sum()) and one > 0
    with xr.open_dataset(res / "clean/estimates.nc", engine="netcdf4") as est:
        measured = est["turnover_loss"].attrs
        assert measured["family"] == "turnover" and measured["cost_basis"] == "training_seconds"
        # (on this tiny model the seconds are mostly noise: measured, positive, the same)
        assert float(cost) == pytest.approx(float(measured["cost_runs"])) and float(cost) > 0
    claims = json.loads((res / "claims.json").read_text())
    keys = {c["key"] for c in claims if c["figure"] == "validation"}
    assert keys == {
        "estimate_at_least_peers",
        "turnover_matches_truth",
        "turnover_beats_tracin",
        "turnover_finds_fitted_random_labels",
    }
    for fig in ("validation", "influence"):
        assert (res / f"{fig}.pdf").read_bytes().startswith(b"%PDF")


KILL = {
    "device": "cpu",
    "threads": 1,
    "checkpoint_every": 1,
    "experiments": {
        "e": {
            "dataset": "digits",
            "model": "mlp",
            "hidden": 256,
            "seed": 0,
            "epochs": 12,
            "lr": 0.1,
            "batch_size": 32,
            "subset_size": 100,
            "corruption_levels": [0, 500],
        }
    },
    "figures": {"fig7": {"experiment": "e"}, "fig10": {"experiment": "e"}},
}


def _all_artifacts_readable(workdir):
    from memorization.workflow.artifacts import open_artifact

    for path in (workdir / "results").rglob("*.nc"):
        open_artifact(path)  # raises on a truncated or partial file


def _rerun(workdir, *fix):
    """A plain rerun; or, when it fails, the command its error names (Snakemake names one
    at a time: after a SIGKILL mid-job, --rerun-incomplete, then --unlock)."""
    res = snakemake(workdir, *fix, check=False)
    text = res.stdout + res.stderr
    if res.returncode == 0:
        return "--rerun-incomplete" if fix else "plain rerun"
    if "--unlock" in text:
        snakemake(workdir, "--unlock")
        return _rerun(workdir, *fix)
    if "--rerun-incomplete" in text and not fix:
        return _rerun(workdir, "--rerun-incomplete")
    raise AssertionError(f"the rerun failed without naming a fix:\n{text[-3000:]}")


def test_kills_at_random_points_never_leave_a_broken_artifact(tmp_path):
    import random
    import signal
    import time

    reference = tmp_path / "reference"
    reference.mkdir()
    snakemake(reference, config=KILL)
    work = tmp_path / "killed"
    work.mkdir()
    (work / "config.yaml").write_text(yaml.safe_dump(KILL))
    rng = random.Random(7)
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
        "--directory", str(work), "--configfile", str(work / "config.yaml"), "--cores", "2",
    ]  # fmt: skip
    fixes = []
    for kill in (signal.SIGKILL, signal.SIGTERM, signal.SIGKILL, signal.SIGINT):
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        time.sleep(rng.uniform(4, 14))
        if proc.poll() is None:
            os.killpg(proc.pid, kill)  # the whole group: Snakemake and its jobs
        proc.wait(timeout=120)
        _all_artifacts_readable(work)
        fixes.append(_rerun(work) if kill == signal.SIGKILL else "next kill")
        if proc.returncode == 0:
            break
    _rerun(work)
    _all_artifacts_readable(work)
    assert not list((work / "results").rglob("*.part"))
    assert not list((work / "results").rglob(".*.checkpoint"))
    # the resumed and rerun results equal an uninterrupted run's, bit for bit
    for name in ("e/scores.nc", "e/sweep/corrupt500.nc"):
        with (
            xr.open_dataset(work / "results" / name, engine="netcdf4") as a,
            xr.open_dataset(reference / "results" / name, engine="netcdf4") as b,
        ):
            for var in a.data_vars:
                assert np.array_equal(a[var].values, b[var].values), (name, var)
    assert set(fixes) <= {"plain rerun", "--rerun-incomplete", "next kill"}
