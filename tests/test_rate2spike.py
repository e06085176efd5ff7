"""Rate-to-spike (Kim, Li & Sejnowski 2019): the mV LIF cell, the counter-based noise, the tasks,
the rate RNN and the batched LIF network (spikernn.md)."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
import scipy.stats

torch = pytest.importorskip("torch")

from spikeforge.core.backends import counter_normal  # noqa: E402
from spikeforge.core.cells import lif_mv  # noqa: E402
from spikeforge.core.cells.synapse import double_exponential  # noqa: E402
from spikeforge.rate2spike import lif_network, tasks  # noqa: E402
from spikeforge.rate2spike.rate_model import RateConfig, RateRNN, initial_weights, loss  # noqa: E402
from spikeforge.rate2spike.training import TrainingConfig, train  # noqa: E402


# --- the cell and its noise -------------------------------------------------------------------------

def isolated(n: int, offset_mv: float) -> lif_network.Mapped:
    """``n`` unconnected neurons whose input is ``offset_mv`` above the bias (rheobase)."""
    return lif_network.Mapped(w=np.zeros((n, n)), w_in=np.full((n, 1), offset_mv), w_out=np.zeros(n),
                              tau_d=np.full(n, 35.0), inh=np.zeros(n, dtype=bool))


# spikernn.md 5.7: 200 replicas x 1.8 s of the update rules, NumPy
FI_TABLE = {-3: 0.96, -2: 6.6, -1: 15.8, 0: 24.4, 1: 31.0, 2: 36.8, 4: 46.2, 6: 54.5}


@pytest.mark.parametrize("offset", sorted(FI_TABLE))
def test_single_neuron_fi_curve_matches_the_reference_table(offset):
    rng = np.random.default_rng(100 + offset)
    batch = lif_network.simulate(isolated(200, float(offset)), np.ones((2, 1, 361)), 1.0, rng)
    rate = batch.rates.mean()
    # 400 neuron-trials of 1.8 s: the standard error is about 1 % at 24 Hz; the table's own is similar
    tolerance = 1.5 if offset == 0 else max(0.08 * FI_TABLE[offset], 0.3)
    assert abs(rate - FI_TABLE[offset]) < tolerance, (offset, rate)


def test_lif_step_by_hand():
    # active: v + dt/tau (I - v) + noise; fires at v >= threshold and resets
    v, fired = lif_mv.step(-50.0, -40.0, True, 0.05, 0.005, -40.0, -65.0)
    assert v == pytest.approx(-50.0 + 0.005 * 10.0 + 0.05) and not fired
    v, fired = lif_mv.step(-40.02, 0.0, True, 0.0, 0.005, -40.0, -65.0)
    assert fired and v == -65.0
    # refractory: only the noise moves it; at exactly the threshold it fires (not strict)
    v, fired = lif_mv.step(-60.0, 100.0, False, 0.1, 0.005, -40.0, -65.0)
    assert v == pytest.approx(-59.9) and not fired
    v, fired = lif_mv.step(-40.0, -40.0, False, 0.0, 0.005, -40.0, -65.0)
    assert fired


def test_lif_torch_step_matches_numba():
    rng = np.random.default_rng(3)
    p = lif_mv.Parameters()
    v = rng.uniform(-66, -39, 500)
    drive = rng.uniform(-45, -30, 500)
    active = rng.random(500) < 0.7
    noise = rng.normal(0, 0.1, 500)
    expected = [lif_mv.step(*args, p.dt_over_tau, p.v_th, p.v_reset) for args in zip(v, drive, active, noise)]
    got_v, got_fired = lif_mv.step_torch(torch.tensor(v), torch.tensor(drive), torch.tensor(active),
                                         torch.tensor(noise), p)
    assert np.array_equal(got_v.numpy(), [e[0] for e in expected])
    assert np.array_equal(got_fired.numpy(), [e[1] for e in expected])
    assert got_fired.any() and not got_fired.all()


def test_double_exponential_kernel_has_unit_area_and_peaks_after_the_rise():
    dt_s, tau_r, tau_d = 5e-5, 2e-3, 35e-3
    current, rise, trace = 0.0, 0.0, []
    for i in range(40000):  # 2 s
        current, rise = double_exponential(current, rise, 1.0 if i == 0 else 0.0, math.exp(-dt_s / tau_d),
                                           math.exp(-dt_s / tau_r), dt_s, 1.0 / (tau_r * tau_d))
        trace.append(current)
    trace = np.array(trace)
    # a filtered spike train is in Hz: the area is 1, up to the original's Euler discretisation,
    # dt^2 / (tau_r tau_d (1 - e^-dt/tau_r)(1 - e^-dt/tau_d)) = 1 + dt / (2 tau_r) + ...
    discrete = dt_s ** 2 / (tau_r * tau_d * -math.expm1(-dt_s / tau_r) * -math.expm1(-dt_s / tau_d))
    assert trace.sum() * dt_s == pytest.approx(discrete, rel=1e-6)
    assert discrete == pytest.approx(1.0, abs=0.015)
    peak_s = (np.argmax(trace) + 1) * dt_s
    expected = tau_r * tau_d / (tau_d - tau_r) * math.log(tau_d / tau_r)  # peak of the double exponential
    assert peak_s == pytest.approx(expected, abs=2 * dt_s)


def test_counter_normal_is_standard_normal():
    out = np.empty(2_000_000)
    counter_normal.fill_normal(np.uint64(2026), out)
    assert abs(out.mean()) < 0.004 and abs(out.std() - 1) < 0.003
    assert scipy.stats.kstest(out[:200_000], "norm").pvalue > 1e-3
    beyond_tail = np.mean(np.abs(out) > 3.442619855899)  # the ziggurat's tail branch
    assert beyond_tail == pytest.approx(2 * scipy.stats.norm.sf(3.442619855899), rel=0.1)
    again = np.empty(10)
    counter_normal.fill_normal(np.uint64(2026), again)
    assert np.array_equal(again, out[:10])


def test_lif_batch_does_not_depend_on_thread_count():
    mapped = isolated(50, 1.0)
    u = np.ones((6, 1, 21))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = lif_network.simulate(mapped, u, 30.0, np.random.default_rng(5))
        numba.set_num_threads(max(2, before))
        many = lif_network.simulate(mapped, u, 30.0, np.random.default_rng(5))
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one.rates, many.rates)
    assert one.rates.std() > 0  # the trials have different noise


def test_lif_network_propagates_scaled_weights_and_reads_out():
    # no noise; neuron 0 is driven hard; neuron 1 sits 5 mV below threshold and gets 0.1 x neuron 0's
    # filtered train (about 12 mV at 124 Hz) divided by the scaling factor: it fires at sf = 1 only
    cell = lif_mv.Parameters(noise_std=0.0, v_init_low=-65.0, v_init_high=-64.999)
    mapped = lif_network.Mapped(w=np.array([[0.0, 0.0], [0.1, 0.0]]), w_in=np.array([[30.0], [-5.0]]),
                                w_out=np.array([1.0, 0.0]), tau_d=np.array([20.0, 20.0]), inh=np.zeros(2, bool))
    u = np.ones((2, 1, 101))  # 0.5 s
    batch = lif_network.simulate(mapped, u, np.array([1.0, 4.0]), np.random.default_rng(0), cell, record_spikes=True)
    first = batch.spikes[0, :, 0]
    assert np.array_equal(batch.spikes[0, :, 0], batch.spikes[1, :, 0])  # same drive, no noise
    assert batch.spikes[0, :, 1].sum() > 5 and not batch.spikes[1, :, 1].any()
    assert np.flatnonzero(batch.spikes[0, :, 1])[0] > np.flatnonzero(first)[0]  # caused by neuron 0
    # readout = w_out / sf * r (Hz): late mean of r is neuron 0's rate
    rate0 = first.sum() / 0.5
    assert batch.out[0, -4000:].mean() == pytest.approx(rate0, rel=0.1)
    assert np.allclose(batch.out[1], batch.out[0] / 4.0, rtol=1e-5)
    # the ISI of a noiseless neuron 30 mV above rheobase: refractory 2 ms + tau_m ln(55/30) from -65 to -40 mV towards -10
    isi_ms = np.diff(np.flatnonzero(first))[2:] * cell.dt
    assert np.allclose(isi_ms, 2.0 + 10.0 * math.log(55 / 30), atol=0.11)


# --- tasks ------------------------------------------------------------------------------------------

def test_go_nogo_trials_and_scoring():
    task = tasks.task_named("Go-NoGo")
    trials = task.trials(np.random.default_rng(0), 200)
    go = trials.label == 1
    assert 70 < go.sum() < 130
    assert trials.u.shape == (200, 1, 200)
    assert np.all(trials.u[go, 0, 50:75] == 1) and trials.u[go].sum() == 25 * go.sum() and trials.u[~go].sum() == 0
    assert np.all(trials.z[go, 75:] == 1) and trials.z[go, :75].sum() == 0 and trials.z[~go].sum() == 0
    o = np.zeros((4, 199))
    o[0, 80] = 0.8  # go, answered
    o[1, 80] = 0.6  # go, too weak
    o[2, 80] = -0.35  # nogo: the rate criterion takes |o|
    o[3, 10] = 0.9  # nogo: before the window, fine
    label = np.array([1, 1, 0, 0])
    assert task.rate_correct(o, label).tolist() == [True, False, False, True]
    out = np.zeros((2, 20000))
    out[1, 9998] = 0.5  # t = 499.95 ms: before the LIF window (t >= 0.5 s)
    out[0, 9999] = 0.8
    assert task.lif_correct(out, np.array([1, 0]), 0.05).tolist() == [True, True]


def test_the_lif_network_gets_the_originals_input_length():
    u = tasks.Mante().trials(np.random.default_rng(2), 3).u
    lif = tasks.Mante.lif_input(u)
    assert lif.shape == (3, 4, 501) and np.array_equal(lif[:, :, :500], u)
    assert np.all(lif[:, 2:, 500] == u[:, 2:, 499]) and np.all(lif[:, :2, 500] == 0)  # context held, stimulus off
    assert lif_network.lif_steps(201, lif_mv.Parameters()) == (100, 20000)  # Go-NoGo: 1 s


def test_mante_and_xor_trials():
    rng = np.random.default_rng(1)
    mante = tasks.Mante().trials(rng, 400)
    context = mante.u[:, 2:, 0].argmax(axis=1)
    assert np.all(mante.u[:, 2:].sum(axis=1) == 1)
    cued_mean = mante.u[np.arange(400), context, 50:250].mean(axis=1)
    assert np.array_equal(np.sign(cued_mean)[np.abs(cued_mean) > 0.3], mante.label[np.abs(cued_mean) > 0.3])
    assert np.all(mante.u[:, :2, :50] == 0) and np.all(mante.z[:, 250:] == mante.label[:, None])
    xor = tasks.XOR().trials(rng, 400)
    first, second = xor.u[:, 0, 50], xor.u[:, 1, 110]
    assert np.array_equal(xor.label, (first * second).astype(int))
    assert np.all(xor.u[:, 0, 100:] == 0) and np.all(xor.u[:, 1, :110] == 0)
    assert np.all(xor.z[:, 170:270] == xor.label[:, None]) and np.all(xor.z[:, 270:] == 0)
    with pytest.raises(ValueError, match="not one of go-nogo, mante, xor"):
        tasks.task_named("dms")


# --- the rate RNN -----------------------------------------------------------------------------------

def small_model(seed=0, **overrides) -> RateRNN:
    config = RateConfig(**{"n": 60, "n_inputs": 1, "decay_taus": (4.0, 10.0), **overrides})
    return RateRNN(config, initial_weights(config, np.random.default_rng(seed)))


def test_initial_weights_follow_dale_and_the_som_mask():
    model = small_model(som_n=3, p_inh=0.3)
    w_eff = model.effective_weights().detach().numpy()
    inh = model.inh
    assert np.all(w_eff[:, ~inh] >= 0) and np.all(w_eff[:, inh] <= 0)
    som = np.flatnonzero(inh)[:3]
    assert np.all(w_eff[np.ix_(som, np.flatnonzero(inh))] == 0)
    assert 0.1 < np.mean(model.w.detach().numpy() != 0) < 0.3  # p_rec = 0.2


def test_training_keeps_dale_and_absent_connections_and_trains_the_taus():
    model = small_model(seed=1)
    absent = model.w.detach().numpy() == 0
    taus_before = model.taus().detach().clone()
    train(model, tasks.GoNoGo(), TrainingConfig(max_trials=30, min_trials=0), np.random.default_rng(2),
          torch.Generator().manual_seed(3))
    w = model.w.detach().numpy()
    assert np.all(w[absent] == 0)  # relu'(0) = 0: absent connections stay absent
    w_eff = model.effective_weights().detach().numpy()
    assert np.all(w_eff[:, ~model.inh] >= 0) and np.all(w_eff[:, model.inh] <= 0)
    taus = model.taus().detach()
    assert not torch.equal(taus, taus_before)
    assert float(taus.min()) >= 4.0 and float(taus.max()) <= 10.0

    fixed = small_model(seed=1, decay_taus=(7.0,))
    train(fixed, tasks.GoNoGo(), TrainingConfig(max_trials=5, min_trials=0), np.random.default_rng(2))
    assert torch.all(fixed.taus() == 7.0)


def test_forward_by_hand_without_noise():
    model = small_model(seed=4, n=3, noise_std=0.0, decay_taus=(2.0,))
    u = torch.zeros((1, 1, 3))
    u[0, 0, 0] = 1.0
    generator = torch.Generator().manual_seed(0)
    o, rates = model(u, generator)
    x0 = torch.randn((1, 3), generator=torch.Generator().manual_seed(0), dtype=torch.float32) * 0.01
    w = model.effective_weights().detach()
    x1 = 0.5 * x0 + 0.5 * (torch.sigmoid(x0) @ w.T + model.w_in[:, 0])
    assert torch.allclose(rates[0, 1], torch.sigmoid(x1))
    assert torch.allclose(o[0, 0], torch.sigmoid(x1)[0] @ model.w_out[0] + model.b_out)
    assert o.shape == (1, 2)


def test_loss_is_the_root_of_the_summed_squares_with_the_one_step_offset():
    o = torch.tensor([[1.0, 2.0, 3.0]])
    z = torch.tensor([[0.0, 2.0, 1.0, 9.0]])  # the last target has no output
    assert float(loss(o, z, "l2")) == pytest.approx(math.sqrt(1 + 0 + 4))
    assert float(loss(o, z, "l1")) == pytest.approx(3.0)


@pytest.mark.parametrize("bad, message", [
    ({"n": 1}, "N = 1 must be >= 2"),
    ({"p_inh": 1.5}, r"P_inh = 1.5 must be in \[0, 1\]"),
    ({"activation": "tanh"}, "activation 'tanh' is not one of"),
    ({"decay_taus": (10.0, 4.0)}, "max must be >= min"),
])
def test_rate_config_refuses_impossible_values(bad, message):
    with pytest.raises(ValueError, match=message):
        RateConfig(**{"n": 10, "n_inputs": 1, **bad})


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_torch_lif_network_matches_numba_without_noise(device):
    rng = np.random.default_rng(8)
    n = 40
    w = np.abs(rng.normal(0, 0.4, (n, n))) * (rng.random((n, n)) < 0.3)
    inh = rng.random(n) < 0.25
    w[:, inh] *= -1
    mapped = lif_network.Mapped(w=w, w_in=rng.normal(0, 3, (n, 2)), w_out=rng.normal(0, 0.01, n),
                                tau_d=rng.uniform(20, 50, n), inh=inh)
    cell = lif_mv.Parameters(noise_std=0.0)
    u = rng.normal(0, 1, (3, 2, 41))
    numba_batch = lif_network.simulate(mapped, u, np.array([1.0, 10.0, 30.0]), np.random.default_rng(1), cell,
                                       record_spikes=True)
    torch_batch = lif_network.simulate(mapped, u, np.array([1.0, 10.0, 30.0]), np.random.default_rng(1), cell,
                                       record_spikes=True, backend="torch", device=device)
    assert numba_batch.spikes.sum() > 100
    assert np.array_equal(numba_batch.spikes, torch_batch.spikes)
    np.testing.assert_allclose(torch_batch.out, numba_batch.out, rtol=1e-5, atol=1e-6)


def test_torch_lif_network_fi_point_with_noise():
    # 200 neurons x 6 trials x 0.6 s (the torch loop is slow on the CPU)
    batch = lif_network.simulate(isolated(200, 0.0), np.ones((6, 1, 121)), 1.0, np.random.default_rng(9),
                                 backend="torch")
    assert abs(batch.rates.mean() - FI_TABLE[0]) < 1.5


@needs_cuda
def test_on_cuda_the_rate_model_gives_the_cpu_outputs_and_gradients(monkeypatch):
    from spikeforge.rate2spike import rate_model

    monkeypatch.setattr(rate_model, "INITIAL_STATE_STD", 0.0)  # the two devices' generators differ
    u = torch.as_tensor(tasks.GoNoGo().trials(np.random.default_rng(1), 3).u, dtype=torch.float32)
    results = []
    for device in ("cpu", "cuda"):
        on_device = small_model(seed=5, noise_std=0.0).to(device)
        o, _ = on_device(u.to(device), torch.Generator(device=device).manual_seed(0))
        loss(o, torch.zeros_like(o)).backward()
        results.append((o.detach().cpu(), on_device.w.grad.cpu()))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-3, atol=1e-5)
