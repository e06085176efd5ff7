"""Issue 14's acceptance on the full grid (sequence.md 4.1 and 15.2-15.3): after 100 s of training,
pattern-selective assemblies, a readable pattern, reliable and ordered firing; and the two ablations that
must fail.  Three seeds each."""

import pytest

from spikeforge.sequence.experiment import full_scale

SEEDS = [1, 2, 3]


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_assemblies_emerge_after_100_s(seed):
    before, after = full_scale(seed)
    assert before.selective == 0 and after.selective >= 0.15
    assert after.readout >= 0.6 and after.readout - before.readout >= 0.4
    assert after.trial_correlation >= 0.8 and after.peak_order >= 0.8


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_without_variance_tracking_nothing_is_learned(seed):
    _, after = full_scale(seed, use_variance_tracking=False)
    assert after.selective < 0.05 and after.readout < 0.3


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_without_short_term_plasticity_no_assemblies_form(seed):
    _, after = full_scale(seed, use_stp=False)
    assert after.selective < 0.05 and after.readout < 0.3
