"""Issue 14's acceptance on the full grid (sequence.md 4.1 and 15.2-15.3): after 100 s of training,
pattern-selective assemblies, a readable pattern, reliable and ordered firing; and the two ablations that
must fail.  Three seeds each.

Measured on seeds 1-6 (the readout's ridge penalty chosen by cross-validation on the fitting test):
selective 16/35/30/25/29/22 %, readout r 0.76/0.82/0.86/0.59/0.86/0.77 (0.70/0.75/0.77/0.54/0.80/0.67 with
the prototype's fixed penalty 1), trial-to-trial r 0.94-0.99, peak order 0.90-0.96, warped readout
0.68-0.82.  Seed 4 misses the readout target (0.59); seeds 1-3 were fixed before these runs.

The experiments the selected tests need run first, two at a time on a local Dask cluster (one
single-threaded worker per core): a full-grid run gains little from a second thread, and every experiment
draws from its own streams, so where it runs changes no number."""

import sys
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

from spikeforge.sequence.experiment import Identity, Scores

SEEDS = [1, 2, 3]
KINDS = {"test_assemblies_emerge_after_100_s": "full", "test_without_variance_tracking_nothing_is_learned":
         "no-variance", "test_without_short_term_plasticity_no_assemblies_form": "no-stp",
         "test_two_patterns_form_distinct_assemblies": "two"}
OPTIONS = {"full": {}, "no-variance": {"use_variance_tracking": False}, "no-stp": {"use_stp": False}}

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import the tests


def experiment(kind: str, seed: int) -> dict:
    """The scores before and after training of one experiment (a Dask job)."""
    from spikeforge.sequence.experiment import full_scale, two_patterns

    before, after = two_patterns(seed) if kind == "two" else full_scale(seed, **OPTIONS[kind])
    return {"before": np.array(before, dtype=np.float64), "after": np.array(after, dtype=np.float64)}


@pytest.fixture(scope="module")
def results(request, tmp_path_factory) -> dict:
    """(before, after) per (kind, seed) of every experiment the selected tests of this file need."""
    from spikeforge.core.executor import Cluster, Job, read_result, run_jobs

    wanted = sorted({(KINDS[item.originalname], item.callspec.params["seed"]) for item in request.session.items
                     if item.path == Path(__file__) and item.originalname in KINDS})
    jobs = [Job(f"{kind}-{seed}", experiment, (kind, seed)) for kind, seed in wanted]
    directory = tmp_path_factory.mktemp("sequence-acceptance")
    with Cluster(workers=2) as cluster:
        outcomes = run_jobs(jobs, directory, cluster, verbose=False)
    assert all(outcome.status == "done" for outcome in outcomes), [outcome.error for outcome in outcomes]
    kept = {}
    for (kind, seed), job in zip(wanted, jobs):
        arrays = read_result(directory, job.key)[0]
        kind_of = Identity if kind == "two" else Scores
        kept[kind, seed] = (kind_of(*arrays["before"].tolist()), kind_of(*arrays["after"].tolist()))
    return kept


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_assemblies_emerge_after_100_s(results, seed):
    before, after = results["full", seed]
    assert before.selective == 0 and after.selective >= 0.15
    assert after.readout >= 0.6 and after.readout - before.readout >= 0.4
    assert after.trial_correlation >= 0.8 and after.peak_order >= 0.8
    # time-warped presentations (0.5-2x) still evoke the assembly the readout learned at 1x
    assert after.warped_readout >= 0.4 and after.warped_readout - before.warped_readout >= 0.3


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_without_variance_tracking_nothing_is_learned(results, seed):
    _, after = results["no-variance", seed]
    assert after.selective < 0.05 and after.readout < 0.3


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_without_short_term_plasticity_no_assemblies_form(results, seed):
    _, after = results["no-stp", seed]
    assert after.selective < 0.05 and after.readout < 0.3


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_two_patterns_form_distinct_assemblies(results, seed):
    """A readout names the pattern shown far above chance after training, and near chance before (3
    seeds measured: 0.94, 0.89, 0.83 after; 0.55, 0.46, 0.56 before; chance 0.50-0.57)."""
    before, after = results["two", seed]
    assert after.accuracy >= 0.75
    assert after.accuracy - max(after.chance, before.accuracy) >= 0.2
    assert before.accuracy < after.chance + 0.15
