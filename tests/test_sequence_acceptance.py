"""Issue 14's acceptance on the full grid (sequence.md 4.1 and 15.2-15.3): after 100 s of training,
pattern-selective assemblies, a readable pattern, reliable and ordered firing; and the two ablations that
must fail.  Three seeds each.

Measured on seeds 1-6 (the readout's ridge penalty chosen by cross-validation on the fitting test):
selective 16/35/30/25/29/22 %, readout r 0.76/0.82/0.86/0.59/0.86/0.77 (0.70/0.75/0.77/0.54/0.80/0.67 with
the prototype's fixed penalty 1), trial-to-trial r 0.94-0.99, peak order 0.90-0.96, warped readout
0.68-0.82.  Seed 4 misses the readout target (0.59); seeds 1-3 were fixed before these runs."""

import pytest

from spikeforge.sequence.experiment import full_scale, two_patterns

SEEDS = [1, 2, 3]


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_assemblies_emerge_after_100_s(seed):
    before, after = full_scale(seed)
    assert before.selective == 0 and after.selective >= 0.15
    assert after.readout >= 0.6 and after.readout - before.readout >= 0.4
    assert after.trial_correlation >= 0.8 and after.peak_order >= 0.8
    # time-warped presentations (0.5-2x) still evoke the assembly the readout learned at 1x
    assert after.warped_readout >= 0.4 and after.warped_readout - before.warped_readout >= 0.3


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


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_two_patterns_form_distinct_assemblies(seed):
    """A readout names the pattern shown far above chance after training, and near chance before (3
    seeds measured: 0.94, 0.89, 0.83 after; 0.55, 0.46, 0.56 before; chance 0.50-0.57)."""
    before, after = two_patterns(seed)
    assert after.accuracy >= 0.75
    assert after.accuracy - max(after.chance, before.accuracy) >= 0.2
    assert before.accuracy < after.chance + 0.15
