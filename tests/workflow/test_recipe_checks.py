"""The config check refuses fp16 where a job could not run it, before any job: the
vectorised ensembles (ground truth, out-of-bag) and the gradient statistics a figure draws."""

from __future__ import annotations

from memorization.workflow.check import check_config

FP16 = "experiments.e.precision: fp16 needs loss scaling"


def _config(figures: dict | None = None, **keys) -> dict:
    exp = {"dataset": "digits", "model": "mlp", "hidden": 32, "seed": 0, "epochs": 2}
    exp.update(lr=0.1, batch_size=64, subset_size=100, probe_size=10, **keys)
    return {"results": "results", "experiments": {"e": exp}, "figures": figures or {}}


def _fp16_errors(cfg: dict) -> list[str]:
    return [e for e in check_config(cfg) if "fp16" in e]


def test_fp16_alone_passes_the_check():
    # the turn-over scores and the plain studies train in fp16 with a loss scaler
    assert check_config(_config(precision="fp16")) == []


def test_fp16_with_a_truth_section_is_refused_naming_the_key_and_the_ensembles():
    truth = {"models": 4, "fraction": 0.7, "shards": 1}
    errors = check_config(_config(precision="fp16", truth=truth))
    assert len(errors) == 1, errors
    assert errors[0].startswith(FP16)
    assert "the ground truth's vectorised ensembles (truth)" in errors[0]
    assert "use bf16 or fp32 for this experiment, or remove truth" in errors[0]
    assert check_config(_config(precision="bf16", truth=truth)) == []
    assert check_config(_config(truth=truth)) == []


def test_fp16_with_out_of_bag_networks_is_refused_naming_the_oob_keys():
    errors = _fp16_errors(_config(precision="fp16", oob_networks=4, oob_width=0.5))
    assert len(errors) == 1, errors
    assert errors[0].startswith(FP16)
    assert "out-of-bag estimates' vectorised ensembles (oob_networks, oob_width)" in errors[0]
    assert _fp16_errors(_config(precision="bf16", oob_networks=4)) == []


def test_fp16_of_an_experiment_a_figure_draws_gradient_statistics_of_is_refused():
    fig4 = {"fig4": {"experiment": "e"}}
    errors = _fp16_errors(_config(fig4, precision="fp16"))
    assert len(errors) == 1, errors
    assert errors[0].startswith(FP16)
    assert "the gradient statistics' training (figures.fig4 draws them)" in errors[0]
    assert errors[0].endswith("or remove figures.fig4")
    # a figure drawing another experiment's gradient statistics does not concern it
    other = _config({"fig4": {"experiment": "f"}}, precision="fp16")
    other["experiments"]["f"] = {**other["experiments"]["e"], "precision": "fp32"}
    assert _fp16_errors(other) == []
    assert _fp16_errors(_config(fig4, precision="bf16")) == []


def test_every_target_that_cannot_run_fp16_is_named_in_one_message():
    truth = {"models": 4, "fraction": 0.7, "shards": 1}
    cfg = _config({"fig4": {"experiment": "e"}}, precision="fp16", truth=truth, oob_networks=4)
    errors = _fp16_errors(cfg)
    assert len(errors) == 1, errors
    for part in ("(truth)", "(oob_networks)", "figures.fig4", "remove truth, oob_networks"):
        assert part in errors[0], (part, errors[0])
