"""The numba kernels against hand-computed dynamics and the textbook RLS update."""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge.core.backends import kernels_of

kernels = kernels_of("numba")
from spikeforge.core.backends.layout import (INIT, LIF, TEST, TRAIN, Connectivity, Drive, NetworkParameters, Recording,
                                             State, Synapses, Timeline)
from spikeforge.core.cells import glif, lif

NO_FF = np.zeros((0, 0), dtype=np.uint8)


def _constants(n, x_bal, **flat):
    """NetworkParameters of ``n`` neurons from the flat names the tests set (thresh, noise_scale, ...)."""
    values = dict(
        thresh=np.ones(n), dt_over_tau_mem=np.full(n, 0.01), decay_plas=np.full(n, 1 - 0.1 / 150),
        kick_plas=np.full(n, 1 / 150), noise_scale=np.zeros(n), decay_bale=1 - 0.1 / 3, kick_bale=1 / 3,
        decay_bali=1 - 0.1 / 3, kick_bali=1 / 3, vre=0.0, refrac_steps=1, stim_on_step=10**9, stim_off_step=10**9,
        u0_skip_steps=0, steps_per_ms=10, wid_steps=500, learn_step=100, wid_bins=9, noise_on_voltage=True, dt=0.1,
        cell_kind=LIF, glif=None)
    values.update(flat)
    v = values
    glif_p = v["glif"] or glif.Parameters(v["thresh"], v["vre"], v["dt"], np.full(n, 0.01), np.ones(n),
                                         *([np.zeros(n)] * 8), np.zeros(n, dtype=np.uint8), *([np.zeros((n, 0))] * 3))
    return NetworkParameters(
        cell_kind=v["cell_kind"],
        lif=lif.Parameters(v["dt_over_tau_mem"], v["thresh"], v["vre"], v["refrac_steps"]), glif=glif_p,
        synapses=Synapses(v["decay_bale"], v["kick_bale"], v["decay_bali"], v["kick_bali"], v["decay_plas"],
                          v["kick_plas"]),
        drive=Drive(np.asarray(x_bal, dtype=float), v["noise_scale"], v["noise_on_voltage"]),
        timeline=Timeline(v["stim_on_step"], v["stim_off_step"], v["u0_skip_steps"], v["steps_per_ms"],
                          v["wid_steps"], v["learn_step"], v["wid_bins"]))


def _state(n):
    z = lambda *s: np.zeros(s)  # noqa: E731
    return State(v=z(n), last_spike=np.full(n, -(2**40), dtype=np.int64), spike_count=np.zeros(n, dtype=np.int64),
                 spiked=np.zeros(n, dtype=np.uint8), charge_e=z(n), charge_i=z(n), charge_p=z(n), u_bal=z(n), u_plas=z(n),
                 r=z(n), thresh_s=z(n), thresh_v=z(n), asc=z(n, 0))


def _recording(n, max_times=0):
    return Recording(spike_steps=np.zeros((n, max_times), dtype=np.int32), roll_sum=np.zeros((2, 0, n)),
                     roll_count=np.zeros(0, dtype=np.int64), u_sum=np.zeros(n), u_sumsq=np.zeros(n))


def _net(n, pre, post, weight):
    """Static synapses pre -> post in out-list layout, each out-list sorted by target (as the kernels need)."""
    pre, post, weight = np.asarray(pre, dtype=np.int64), np.asarray(post, dtype=np.int32), np.asarray(weight, dtype=float)
    order = np.lexsort((post, pre))
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(pre, minlength=n), out=ptr[1:])
    return Connectivity(ptr, post[order], weight[order],
                        np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int32), np.zeros(0))


def test_lif_spike_times_follow_the_euler_recurrence_with_one_refractory_step():
    drive = 1.5
    v, first = 0.0, 0
    while v <= 1.0:  # the same recurrence, in Python
        first += 1
        v = v + 0.01 * (drive - v)
    state, rec = _state(1), _recording(1, max_times=5)
    kernels.run_steps(state, _net(1, [], [], []), _constants(1, [drive]), rec, np.zeros((1, 1)),
                      np.zeros((0, 1)), NO_FF, 1, 3 * first + 10, TEST)
    # after a spike the voltage is frozen for one step, then climbs from the reset again
    np.testing.assert_array_equal(rec.spike_steps[0, :3], [first, 2 * first + 1, 3 * first + 2])


def test_a_spike_reaches_its_targets_one_step_later_with_charge_w():
    w = 0.7
    state, rec = _state(2), _recording(2)
    c = _constants(2, [5.0, 0.0])
    net = _net(2, [0], [1], [w])
    empty = np.zeros((0, 2))
    step = 0
    while state.spike_count[0] == 0:
        step += 1
        kernels.run_steps(state, net, c, rec, np.zeros((1, 2)), empty, NO_FF, step, step, INIT)
    # the spike's weight is the charge its target holds for the next step; its current is charge / tau_bale
    assert state.charge_e[1] == w and state.charge_i[1] == 0.0
    kernels.run_steps(state, net, c, rec, np.zeros((1, 2)), empty, NO_FF, step + 1, step + 1, TRAIN)
    assert state.u_bal[1] == w * c.synapses.kick_e == pytest.approx(w / 3)
    assert state.charge_e[1] == w * c.synapses.decay_e  # carried into the step after, decayed


@pytest.mark.parametrize("tau_i", [3.0, 5.0])
def test_excitatory_and_inhibitory_charge_decay_with_their_own_time_constants(tau_i):
    """Neurons 0 (excitatory, weight 0.7) and 1 (inhibitory, -0.4) spike together onto neuron 2: its
    current is 0.7 / tau_e - 0.4 / tau_i, then each part decays with its own time constant.  With equal
    time constants both charges are one (charge_i stays 0); the current follows the same recurrence."""
    dt, tau_e, w_e, w_i = 0.1, 3.0, 0.7, -0.4
    c = _constants(3, [5.0, 5.0, 0.0], decay_bali=1 - dt / tau_i, kick_bali=1 / tau_i)
    net = _net(3, [0, 1], [2, 2], [w_e, w_i])
    state, rec = _state(3), _recording(3)
    empty = np.zeros((0, 3))
    step = 0
    while state.spike_count[0] == 0:
        step += 1
        kernels.run_steps(state, net, c, rec, np.zeros((1, 3)), empty, NO_FF, step, step, INIT)
    assert state.spike_count[1] == 1  # same drive, same voltage: both spiked at this step
    if tau_i == tau_e:
        assert state.charge_e[2] == w_e + w_i and state.charge_i[2] == 0.0
    else:
        assert state.charge_e[2] == w_e and state.charge_i[2] == w_i
    for later in range(3):
        kernels.run_steps(state, net, c, rec, np.zeros((1, 3)), empty, NO_FF, step + 1 + later, step + 1 + later,
                          TRAIN)
        expected = w_e / tau_e * (1 - dt / tau_e) ** later + w_i / tau_i * (1 - dt / tau_i) ** later
        assert state.u_bal[2] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_training_that_reads_the_plastic_weights_in_place_equals_training_on_their_copy(tmp_path, monkeypatch,
                                                                                        precision):
    """KernelOptions.plastic_in_place (the default): no update copies the weights to the out-layout, and the
    checkpoint's weights and P, the firing rates and the correlations equal those of training on the copy, bit for
    bit; three loops of both kinds (loop 2 measures the correlation), with five feed-forward inputs."""
    from conftest import SMALL
    from spikeforge import rls
    from spikeforge.core.backends import get_backend, numba_rls
    from spikeforge.core.store import read_h5

    copies = []
    for name in ("write_back", "gather_back"):
        monkeypatch.setattr(numba_rls, name, lambda *args, kernel=getattr(numba_rls, name), label=name:
                            copies.append(label) or kernel(*args))
    outcomes = {}
    for in_place in (None, False):  # None: the default backend's
        directory = tmp_path / f"in-place-{in_place}"
        rls.new(directory, {**SMALL, "float_precision": precision, "p_precision": precision, "lx": 5, "wpx": 0.3})
        initial = rls.init(directory, verbose=False).plastic.weight.copy()
        copies.clear()
        backend = "numba" if in_place is None else get_backend("numba", plastic_in_place=in_place)
        result = rls.train(directory, nloops=3, correlation_interval=2, verbose=False, backend=backend)
        saved, _ = read_h5(directory / "ckpt-3.h5", ["plastic/weight", "P"])
        outcomes[in_place] = len(copies), saved, result
    (copies_in_place, in_place, trained_in_place), (copies_copied, copied, trained_copied) = outcomes.values()
    assert copies_in_place == 0 and copies_copied == 3 * 20  # 20 updates per loop
    assert np.isnan(trained_copied.correlation[0]) and not np.isnan(trained_copied.correlation[1])
    assert in_place["plastic/weight"].dtype == np.dtype(precision)
    assert not np.array_equal(in_place["plastic/weight"], initial)  # the weights were trained
    for name in ("plastic/weight", "P"):
        np.testing.assert_array_equal(in_place[name], copied[name], err_msg=name)
    assert trained_in_place.firing_rate == trained_copied.firing_rate
    np.testing.assert_array_equal(trained_in_place.correlation, trained_copied.correlation)


def test_the_in_layout_is_read_in_place_or_not_at_all():
    from spikeforge.rls.training import in_layout_view

    weights = np.zeros((3, 4))
    in_layout_view(weights)[5] = 1.0  # a view: what the update writes, the step kernel reads
    assert weights[1, 1] == 1.0
    with pytest.raises(ValueError, match="C-contiguous"):
        in_layout_view(np.zeros((4, 3)).T)


def _textbook_rls(P, w, a, u_bal, target, with_den):
    k = P @ a
    den = 1 / (1 + a @ k)
    error = w @ a + u_bal - target
    return P - den * np.outer(k, k), w - error * (den if with_den else 1.0) * k


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("with_den", [True, False])
def test_rls_kernel_equals_the_textbook_update(symmetric, with_den):
    rng = np.random.default_rng(3)
    n, lmax, n_pre = 6, 7, 20
    count = np.array([7, 5, 7, 1, 6, 7], dtype=np.int32)
    index = rng.integers(0, n_pre, size=(n, lmax)).astype(np.int32)
    P = np.zeros((n, lmax, lmax))
    for i, c in enumerate(count):
        m = rng.normal(size=(c, c))
        P[i, :c, :c] = np.linalg.inv(m @ m.T + c * np.eye(c))
    weights = rng.normal(size=(n, lmax))
    r, u_bal, target = rng.random(n_pre) * 0.02, rng.normal(size=n), rng.normal(size=n)
    in_to_out = np.arange(n * lmax).reshape(n, lmax)
    out = np.zeros(n * lmax)
    P_kernel, w_kernel = P.copy(), weights.copy()
    kernels.rls_update(P_kernel, w_kernel, index, count, in_to_out, out, r, u_bal, target, 1.0, with_den,
                       "symmetric" if symmetric else "full", True)
    for i, c in enumerate(count):
        P_ref, w_ref = _textbook_rls(P[i, :c, :c], weights[i, :c], r[index[i, :c]], u_bal[i], target[i], with_den)
        np.testing.assert_allclose(P_kernel[i, :c, :c], P_ref, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(w_kernel[i, :c], w_ref, rtol=1e-12)
        np.testing.assert_array_equal(out[in_to_out[i, :c]], w_kernel[i, :c])


def test_the_prefetch_threshold_is_half_the_last_level_cache_at_most_64_mb(tmp_path):
    from spikeforge.core.backends import cache_size_bytes, last_level_cache_bytes

    assert [cache_size_bytes(text) for text in ("32768K\n", "2M", "512")] == [2**25, 2**21, 512]
    for name, (kind, level, size) in {"index0": ("Data", 1, "48K"), "index1": ("Instruction", 1, "32K"),
                                      "index2": ("Unified", 2, "2048K"), "index3": ("Unified", 3, "32768K")}.items():
        (tmp_path / name).mkdir()
        for field, value in (("type", kind), ("level", level), ("size", size)):
            (tmp_path / name / field).write_text(f"{value}\n")
    assert last_level_cache_bytes(str(tmp_path)) == 2**25
    assert last_level_cache_bytes(str(tmp_path / "absent")) is None
    (tmp_path / "index3" / "size").write_text("unknown\n")  # an entry that cannot be read is skipped
    assert last_level_cache_bytes.__wrapped__(str(tmp_path)) == 2**21
    from spikeforge.core.backends import KernelOptions, default_prefetch_min_bytes

    machine = last_level_cache_bytes()
    assert KernelOptions().rls_prefetch_min_bytes == default_prefetch_min_bytes() == (
        2**26 if machine is None or machine < 2**22 else min(2**26, machine // 2))
    assert KernelOptions(rls_prefetch_min_bytes=0).rls_prefetch_min_bytes == 0


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("lmax", [5, 16, 37, 64])
def test_packed_rls_kernel_equals_the_textbook_update(dtype, rtol, lmax):
    """The packed kernel's paths: lmax 5 has only rows done lane by lane (a row is shorter than a chunk),
    16 one chunk per row and no such rows, 37 several chunks and lane-by-lane rows at the end of each
    neuron's block, 64 several whole chunks; neurons with fewer inputs than lmax and with none; the
    same numbers on one thread and on two, and with the next neuron's block prefetched."""
    import numba

    from spikeforge.rls import p_matrix

    rng = np.random.default_rng(lmax)
    n, n_pre = 9, 80
    count = rng.integers(1, lmax + 1, size=n).astype(np.int32)
    count[[0, 1]] = lmax, 0
    index = rng.integers(0, n_pre, size=(n, lmax)).astype(np.int32)
    dense = np.zeros((n, lmax, lmax))
    for i, c in enumerate(count):
        m = rng.normal(size=(c, c))
        dense[i, :c, :c] = np.linalg.inv(m @ m.T + c * np.eye(c))
        dense[i, c:, c:] = np.eye(lmax - c)
    weights = rng.normal(size=(n, lmax))
    r, u_bal, target = rng.random(n_pre), rng.normal(size=n), rng.normal(size=n)
    results = []
    # one thread, two, and two with the next neuron's block prefetched (P of at least 0 bytes)
    for threads, prefetch_min_bytes in ((1, 2**62), (min(2, numba.config.NUMBA_NUM_THREADS), 2**62), (2, 0)):
        P = np.ascontiguousarray(p_matrix.pack(dense).astype(dtype))
        w_kernel = weights.copy()
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        try:
            kernels.rls_update(P, w_kernel, index, count, np.zeros((n, lmax), dtype=np.int64), np.zeros(1), r, u_bal,
                               target, 1.0, True, "packed", True, prefetch_min_bytes=prefetch_min_bytes)
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        results.append((P, w_kernel))
    for P, w_kernel in results[1:]:
        np.testing.assert_array_equal(P, results[0][0])
        np.testing.assert_array_equal(w_kernel, results[0][1])
    P, w_kernel = results[0]
    after = p_matrix.unpack(P, lmax)
    for i, c in enumerate(count):
        a = r[index[i, :c]].astype(dtype).astype(np.float64)  # the kernel's inputs are in P's type
        P_ref, w_ref = _textbook_rls(dense[i, :c, :c], weights[i, :c], a, u_bal[i], target[i], True)
        np.testing.assert_allclose(after[i, :c, :c], P_ref, rtol=rtol, atol=rtol * np.abs(P_ref).max(initial=0))
        np.testing.assert_allclose(w_kernel[i, :c], w_ref, rtol=rtol, atol=rtol)
        np.testing.assert_array_equal(after[i, c:, c:], np.eye(lmax - c))  # rows past the inputs are untouched
        assert not np.any(after[i, :c, c:])  # and so are the columns past them


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lmax, n, counts", [(5, 40, "random"), (5, 32, "lmax"), (16, 33, "lmax"),
                                              (16, 48, "per group"), (37, 53, "random"), (37, 48, "lmax"),
                                              (58, 64, "lmax"), (58, 80, "per group"), (70, 21, "random"),
                                              (70, 35, "lmax"), (70, 64, "per group")])
def test_interleaved_p_gives_the_packed_update_bit_for_bit(dtype, lmax, n, counts):
    """The interleaved kernel does each neuron's sums in the packed kernel's order: the same P and weights bit for
    bit, whether every neuron has ``lmax`` inputs, each group of 16 its own number (0, lmax - 3, random: rows past
    the inputs), or the neurons of a group differ (``random``: the packed code's path), for the neurons after the
    last full group of 16 (n not a multiple of 16), rows done lane by lane (lmax 5, 37, 58, 70), rows whose diagonal
    is in their last chunk (lmax 16: a whole one; 58, 70: a partial one), both gains, and a P whose entries past the
    inputs are not zero (random everywhere: those rows must stay as they are)."""
    from spikeforge.core.backends import numba_rls

    for seed in range(3):
        rng = np.random.default_rng([lmax, n, seed])
        n_pre = 200
        if counts == "lmax":
            count = np.full(n, lmax, np.int32)
        elif counts == "random":
            count = rng.integers(0, lmax + 1, size=n).astype(np.int32)
        else:  # one number per group of 16 (the first two groups: lmax - 3 and none), random after the last group
            per_group = rng.integers(0, lmax + 1, size=-(-n // 16))
            per_group[:2] = lmax - 3, 0
            count = np.repeat(per_group, 16)[:n].astype(np.int32)
            count[n // 16 * 16:] = rng.integers(0, lmax + 1, size=n % 16)
        index = rng.integers(0, n_pre, size=(n, lmax)).astype(np.int32)
        P = (rng.random((n, lmax * (lmax + 1) // 2)) * 1e-2).astype(dtype)
        weights = rng.normal(size=(n, lmax))
        r, u_bal, target = rng.random(n_pre), rng.normal(size=n), rng.normal(size=n)
        in_to_out = np.arange(n * lmax).reshape(n, lmax)
        packed, w_packed, out_packed = P.copy(), weights.copy(), np.zeros(n * lmax)
        interleaved, w_interleaved, out_interleaved = P.copy(), weights.copy(), np.zeros(n * lmax)
        numba_rls.interleave(interleaved)
        assert (n < 16) or not np.array_equal(interleaved, P)  # the layout did change
        for step in range(4):
            arguments = (index, count, in_to_out)
            kernels.rls_update(packed, w_packed, *arguments, out_packed, r, u_bal, target, 2.0, step % 2 == 0,
                               "packed", True)
            kernels.rls_update(interleaved, w_interleaved, *arguments, out_interleaved, r, u_bal, target, 2.0,
                               step % 2 == 0, "packed", True, interleaved=True, prefetch_min_bytes=step % 2 * 2**62)
        assert not np.array_equal(packed, P)
        np.testing.assert_array_equal(numba_rls.deinterleaved_rows(interleaved, 16, n), packed[16:])
        numba_rls.deinterleave(interleaved)
        np.testing.assert_array_equal(interleaved, packed)
        np.testing.assert_array_equal(w_interleaved, w_packed)
        np.testing.assert_array_equal(out_interleaved, out_packed)


@pytest.mark.parametrize("counts", ["equal", "unequal"])
def test_a_non_finite_p_diverges_as_in_the_packed_kernel(counts):
    """After a divergence the interleaved update must still be the packed one, bit for bit but for the sign and
    payload of NaNs, so that the counts of non-finite entries that training reports are the same: NaN in one
    neuron's inputs' rows, infinity in another's last rows (with unequal counts: past its inputs, which the packed
    kernel never reads)."""
    from spikeforge.core.backends import numba_rls

    rng = np.random.default_rng(3)
    n, lmax, n_pre = 32, 20, 100
    count = np.full(n, lmax, np.int32)
    if counts == "unequal":
        count[[1, 17]] = 10
    index = rng.integers(0, n_pre, size=(n, lmax)).astype(np.int32)
    P = (rng.random((n, lmax * (lmax + 1) // 2)) * 1e-2).astype(np.float32)
    P[0, 3] = np.nan
    P[1, -5:] = np.inf  # the last rows: past neuron 1's 10 inputs if counts are unequal
    weights = rng.normal(size=(n, lmax))
    r, u_bal, target = rng.random(n_pre), rng.normal(size=n), rng.normal(size=n)
    in_to_out = np.arange(n * lmax).reshape(n, lmax)
    results = []
    for interleaved in (False, True):
        matrix, w, out = P.copy(), weights.copy(), np.zeros(n * lmax)
        if interleaved:
            numba_rls.interleave(matrix)
        kernels.rls_update(matrix, w, index, count, in_to_out, out, r, u_bal, target, 1.0, True, "packed", True,
                           interleaved=interleaved)
        if interleaved:
            numba_rls.deinterleave(matrix)
        results.append(tuple(_bits(values) for values in (matrix, w, out)))
    assert (results[0][0] == _bits(np.array([np.nan], np.float32))).any()
    for packed, interleaved in zip(*results):
        np.testing.assert_array_equal(interleaved, packed)


def _bits(values: np.ndarray) -> np.ndarray:
    """``values``' bits as unsigned integers, every NaN as the same NaN (the sign and payload of a sum of two NaNs
    depend on the order of its operands, which the compiler may swap)."""
    canonical = np.where(np.isnan(values), values.dtype.type(np.nan), values)
    return canonical.view(np.uint32 if values.dtype == np.float32 else np.uint64)


def test_p_is_interleaved_only_where_few_groups_mix_numbers_of_inputs():
    """Groups of 16 neurons with unequal counts take the packed code's slower path, so a network with many of them
    keeps packed P; one with none, or one group in 32, is interleaved; fewer than 16 neurons have no group."""
    from spikeforge.core.backends import numba_rls

    equal = np.full(32 * 16, 58)
    assert numba_rls.worth_interleaving(equal)
    one_mixed = equal.copy()
    one_mixed[5] = 50  # group 0 of 32
    assert numba_rls.worth_interleaving(one_mixed)
    two_mixed = one_mixed.copy()
    two_mixed[16 * 7 + 3] = 57
    assert not numba_rls.worth_interleaving(two_mixed)
    assert not numba_rls.worth_interleaving(np.random.default_rng(0).integers(50, 59, size=4096))
    assert numba_rls.worth_interleaving(np.r_[equal, [1, 2, 3]])  # the tail after the last group stays packed
    assert not numba_rls.worth_interleaving(np.full(15, 58))


def test_interleaving_puts_each_group_s_elements_side_by_side_and_back():
    """Element e of neuron 16 g + j sits at flat position 16 g S + 16 e + j (S numbers per neuron); the neurons
    after the last full group keep their packed rows.  Reading rows back takes whole groups."""
    from spikeforge.core.backends import numba_rls

    n, size = 35, 6
    P = np.arange(n * size, dtype=np.float32).reshape(n, size)
    moved = P.copy()
    numba_rls.interleave(moved)
    for i in range(32):
        g, j = divmod(i, 16)
        for e in range(size):
            assert moved.reshape(-1)[16 * g * size + 16 * e + j] == P[i, e]
    np.testing.assert_array_equal(moved[32:], P[32:])
    np.testing.assert_array_equal(numba_rls.deinterleaved_rows(moved, 0, 16), P[:16])
    np.testing.assert_array_equal(numba_rls.deinterleaved_rows(moved, 16, 34), P[16:34])
    for lo, hi in ((8, 16), (0, 20)):
        with pytest.raises(ValueError, match=f"whole groups of 16 neurons; row {lo if lo else hi} is inside one"):
            numba_rls.deinterleaved_rows(moved, lo, hi)
    with pytest.raises(ValueError, match="only packed float32 or float64 P is interleaved, not packed float16"):
        kernels.rls_update(P.astype(np.float16), np.zeros((n, 3)), np.zeros((n, 3), dtype=np.int32),
                           np.full(n, 3, dtype=np.int32), np.zeros((n, 3), dtype=np.int64), np.zeros(1), np.ones(n),
                           np.zeros(n), np.zeros(n), 1.0, True, "packed", True, interleaved=True)
    numba_rls.deinterleave(moved)
    np.testing.assert_array_equal(moved, P)


@pytest.mark.parametrize("P", [np.zeros((2, 12))[:, ::2], np.zeros((2, 7)), np.zeros((2, 2, 3))],
                         ids=["strided", "wrong-width", "dense-shape"])
def test_packed_rls_refuses_a_p_it_cannot_address(P):
    """The SIMD chunks address each neuron's triangle from the data pointer: a strided view, or a P of another
    width (3 inputs need 6 numbers per neuron), would be read wrongly or out of bounds."""
    with pytest.raises(ValueError, match=r"packed P must be a C-contiguous \(N, 6\) array for 3 plastic inputs"):
        kernels.rls_update(P, np.zeros((2, 3)), np.zeros((2, 3), dtype=np.int32), np.full(2, 3, dtype=np.int32),
                           np.zeros((2, 3), dtype=np.int64), np.zeros(1), np.ones(3), np.zeros(2), np.zeros(2), 1.0,
                           True, "packed", True)


def _plastic_inputs(rng, n, lmax, n_pre):
    """Random plastic inputs in the in-layout (some neurons with none) and their out-layout."""
    from spikeforge.rls.connectivity import PlasticInputs, out_layout

    count = rng.integers(0, lmax + 1, size=n).astype(np.int32)
    count[3] = 0  # a neuron without plastic inputs
    index = np.stack([rng.permutation(n_pre)[:lmax] for _ in range(n)]).astype(np.int32)
    weights = np.where(np.arange(lmax) < count[:, None], rng.normal(size=(n, lmax)), 0.0)
    layout, in_to_out = out_layout(PlasticInputs(index, count, weights), n_pre)
    return index, count, weights, layout, in_to_out


@pytest.mark.parametrize("storage", ["symmetric", "packed"])
def test_out_to_in_finds_each_new_weight_where_the_write_back_puts_it(storage):
    """After an RLS update, the out-layout copy of every weight (made through in_to_out, or in the out-layout's
    order by out_to_in's plan) equals the in-layout weight that out_to_in names: what the step kernel reads in
    place (Connectivity.plastic_source) is what the copy holds.  Without an out-layout nothing is copied."""
    from spikeforge.rls.connectivity import out_to_in

    rng = np.random.default_rng(5)
    n, lmax, n_pre = 40, 9, 50
    index, count, weights, layout, in_to_out = _plastic_inputs(rng, n, lmax, n_pre)
    sources = out_to_in(in_to_out, count)
    assert sources.size == layout.weight.size == count.sum() and np.unique(sources).size == sources.size
    np.testing.assert_array_equal(weights.reshape(-1)[sources], layout.weight)
    P = np.zeros((n, lmax, lmax)) if storage != "packed" else np.zeros((n, lmax * (lmax + 1) // 2))
    diagonal = np.arange(lmax) if storage != "packed" else np.cumsum(np.r_[0, np.arange(lmax, 1, -1)])
    P[(slice(None), diagonal, diagonal) if storage != "packed" else (slice(None), diagonal)] = 1.0
    r, u_bal, target = rng.random(n_pre) * 0.5, rng.normal(size=n), rng.normal(size=n)
    results = []
    for out, plan in ((layout.weight.copy(), None), (layout.weight.copy(), sources), (None, None)):
        w = weights.copy()  # copied through in_to_out (scattered), in the out-layout's order, or not at all
        kernels.rls_update(P.copy(), w, index, count, in_to_out, out, r, u_bal, target, 1.0, True, storage, True,
                           write_plan=plan)
        results.append((out, w))
    (out_scatter, w_scatter), (out_plan, w_plan), (_, w_alone) = results
    np.testing.assert_array_equal(w_plan, w_scatter)
    np.testing.assert_array_equal(w_alone, w_scatter)
    assert not np.array_equal(out_plan, layout.weight)  # the weights did change
    np.testing.assert_array_equal(out_plan, out_scatter)
    np.testing.assert_array_equal(w_plan.reshape(-1)[sources], out_plan)
    for i in range(n):  # each landed on its synapse
        np.testing.assert_array_equal(out_plan[in_to_out[i, :count[i]]], w_plan[i, :count[i]])


def test_out_to_in_refuses_a_map_that_is_not_one_to_one():
    from spikeforge.rls.connectivity import out_to_in

    with pytest.raises(ValueError, match="one to one"):
        out_to_in(np.array([[0, 0], [1, 3]]), np.array([2, 2]))


def test_rls_with_the_paper_gain_shrinks_the_error_by_one_plus_apa():
    rng = np.random.default_rng(4)
    c = 10
    P = (np.eye(c) / 0.8)[None]
    w, a = rng.normal(size=(1, c)), rng.random(c)
    index = np.arange(c, dtype=np.int32)[None]
    k = P[0] @ a
    error_before = w[0] @ a - 1.0
    kernels.rls_update(P, w, index, np.array([c], dtype=np.int32), index.astype(np.int64), np.zeros(c), a,
                       np.zeros(1), np.ones(1), 1.0, True, "symmetric", True)
    assert w[0] @ a - 1.0 == pytest.approx(error_before / (1 + a @ k), rel=1e-12)


def test_benchmark_mode_updates_p_but_not_the_weights():
    c = 4
    P, w = (np.eye(c) * 2.0)[None], np.ones((1, c))
    index = np.arange(c, dtype=np.int32)[None]
    kernels.rls_update(P, w, index, np.array([c], dtype=np.int32), index.astype(np.int64), np.zeros(c),
                       np.full(c, 0.5), np.zeros(1), np.zeros(1), 1.0, True, "full", False)
    assert np.all(w == 1.0) and P[0, 0, 0] < 2.0


def test_symmetric_p_stays_exactly_symmetric_and_column_padding_changes_nothing():
    rng = np.random.default_rng(5)
    n, lmax, width = 3, 10, 16
    m = rng.normal(size=(n, lmax, lmax)).astype(np.float32)
    P = np.einsum("nij,nkj->nik", m, m) + 10 * np.eye(lmax, dtype=np.float32)
    padded = np.zeros((n, lmax, width), dtype=np.float32)
    padded[:, :, :lmax] = P
    index = rng.integers(0, 30, size=(n, lmax)).astype(np.int32)
    count = np.full(n, lmax, dtype=np.int32)
    r, u_bal, target = rng.random(30), rng.normal(size=n), rng.normal(size=n)
    weights = [rng.normal(size=(n, lmax))] * 2
    weights = [w.copy() for w in weights]
    for matrix, w in zip((P, padded), weights):
        for _ in range(5):
            kernels.rls_update(matrix, w, index, count, np.zeros((n, lmax), dtype=np.int64), np.zeros(1), r, u_bal,
                               target, 1.0, True, "symmetric", True)
    np.testing.assert_array_equal(P, np.swapaxes(P, 1, 2))
    np.testing.assert_array_equal(padded[:, :, :lmax], P)
    assert np.all(padded[:, :, lmax:] == 0)
    np.testing.assert_array_equal(weights[0], weights[1])


def test_the_population_split_is_where_every_per_neuron_parameter_changes_value():
    from spikeforge.core.backends.layout import population_split

    n = 6
    ei = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 2.0])
    assert population_split(_constants(n, ei), n) == 3  # the drive changes at neuron 3, the rest is constant
    assert population_split(_constants(n, np.ones(n)), n) == n  # one population
    assert population_split(_constants(n, ei, thresh=np.r_[ei[:4], 5.0, 5.0]), n) == -1  # two different splits
    assert population_split(_constants(n, np.arange(n, dtype=float)), n) == -1  # every neuron its own drive


def test_the_network_parameters_carry_their_population_split():
    """Found once when the constants are built, not on every kernel call (a sharded run makes two per step)."""
    from spikeforge import rls
    from spikeforge.rls.network_parameters import network_parameters

    p = rls.Params({"n_cells": 1000})
    assert network_parameters(p).population_split == p.ne
    assert network_parameters(rls.Params({"n_cells": 1000, "seed": 1, "tau_plas_max": 200.0})).population_split == -1


def test_the_two_population_kernel_and_its_summed_init_run_equal_the_per_neuron_kernel_step_by_step():
    """The specialised init run (two populations read as two numbers; u summed in the neuron loop after
    u0_skip_steps, which falls inside the call) gives the voltages, spikes and current statistics of the
    general kernel stepped one step at a time, with the sums taken by hand."""
    from spikeforge.core.backends.layout import BOTH, NOISE_VOLTAGE
    from spikeforge.core.backends.layout import population_split
    from spikeforge.core.backends.numba_network import _make_run_steps

    n, n_e, steps, skip = 300, 240, 400, 150
    rng = np.random.default_rng(5)
    first = np.arange(n) < n_e
    c = _constants(n, np.where(first, 1.2, 1.1), thresh=np.where(first, 1.0, 0.9),
                   dt_over_tau_mem=np.where(first, 0.01, 0.02), noise_scale=np.where(first, 0.05, 0.03),
                   u0_skip_steps=skip)
    assert population_split(c, n) == n_e
    pre = rng.integers(0, n, 6000)
    net = _net(n, np.sort(pre), rng.integers(0, n, 6000), np.where(np.sort(pre) < n_e, 0.2, -0.5))
    noise = rng.standard_normal((steps, n))
    v0 = rng.random(n)
    fast, fast_rec = _state(n), _recording(n)
    fast.v[:] = v0
    kernels.run_steps(fast, net, c, fast_rec, np.zeros((1, n)), noise, NO_FF, 1, steps, INIT)
    slow, slow_rec = _state(n), _recording(n)
    slow.v[:] = v0
    # equal E and I time constants: one static charge, as run_steps chooses here
    general = _make_run_steps(False, INIT, LIF, NOISE_VOLTAGE, BOTH, False, False, True)
    u_sum, u_sumsq = np.zeros(n), np.zeros(n)
    for ti in range(1, steps + 1):
        u = slow.charge_e * c.synapses.kick_e + slow.charge_i * c.synapses.kick_i  # the current of step ti
        general(slow, net, c.lif, c.glif, c.synapses, c.drive, c.timeline, slow_rec, np.zeros((1, n)),
                noise[ti - 1:ti], NO_FF, ti, ti, 0, n, 0, 1)
        if ti > skip:
            u_sum += u
            u_sumsq += u * u
    assert slow.spike_count.sum() > 100  # an active network
    np.testing.assert_array_equal(fast.v, slow.v)
    np.testing.assert_array_equal(fast.spike_count, slow.spike_count)
    np.testing.assert_array_equal(fast_rec.u_sum, u_sum)
    np.testing.assert_array_equal(fast_rec.u_sumsq, u_sumsq)
    # in three chunks of 100 neurons the split (240) falls inside the last: its loop is cut there
    chunked = _state(n)
    chunked.v[:] = v0
    _make_run_steps(False, INIT, LIF, NOISE_VOLTAGE, BOTH, True, False, True)(
        chunked, net, c.lif, c.glif, c.synapses, c.drive, c.timeline, _recording(n), np.zeros((1, n)), noise, NO_FF,
        1, steps, 0, n, n_e, 3)
    np.testing.assert_array_equal(chunked.v, slow.v)
    np.testing.assert_array_equal(chunked.spike_count, slow.spike_count)


@pytest.mark.parametrize("tau_i", [3.0, 5.0])  # one static charge, and E and I charges of their own
@pytest.mark.parametrize("kind", [TEST, TRAIN])
def test_spikes_delivered_by_chunks_of_targets_give_the_same_state_bit_for_bit(tau_i, kind):
    """Each chunk of neurons receives the charges onto its own neurons (the stretch of each spiking neuron's
    out-list that falls into it).  With 1, 2, 3, 7 and 8 chunks, serial or threaded, in one call or two, every
    array of the state ends equal bit for bit, as every neuron receives its additions in the same order.
    The network repeats targets within out-lists, mixes E and I weights, has plastic synapses from five
    feed-forward neurons, and N is not a multiple of 8."""
    from spikeforge.core.backends.layout import BOTH, NOISE_VOLTAGE
    from spikeforge.core.backends.numba_network import _make_run_steps

    n, lx, steps = 203, 5, 600
    rng = np.random.default_rng(11)
    c = _constants(n, rng.uniform(1.1, 1.6, n), decay_bali=1 - 0.1 / tau_i, kick_bali=1 / tau_i,
                   noise_scale=np.full(n, 0.02), decay_plas=np.full(n + lx, 1 - 0.1 / 150),
                   kick_plas=np.full(n + lx, 1 / 150))
    static = _net(n, rng.integers(0, n, 5000), rng.integers(0, n, 5000), rng.choice([0.05, -0.08], 5000))
    pre, post = rng.integers(0, n + lx, 3000), rng.integers(0, n, 3000)
    order = np.lexsort((post, pre))
    plastic_ptr = np.zeros(n + lx + 1, dtype=np.int64)
    np.cumsum(np.bincount(pre, minlength=n + lx), out=plastic_ptr[1:])
    net = static._replace(plastic_ptr=plastic_ptr, plastic_post=post[order].astype(np.int32),
                          plastic_weight=rng.normal(0, 0.05, 3000)[order])
    noise = rng.standard_normal((steps, n))
    ff_spikes = (rng.random((steps, lx)) < 0.05).astype(np.uint8)
    v0 = rng.random(n)

    def run(parallel, chunks, calls):
        state = _state(n)._replace(spiked=np.zeros(n + lx, dtype=np.uint8), r=np.zeros(n + lx))
        state.v[:] = v0
        rec = _recording(n, max_times=60)
        kernel = _make_run_steps(parallel, kind, LIF, NOISE_VOLTAGE, BOTH, False, False, tau_i == 3.0)
        bounds = np.linspace(0, steps, calls + 1).astype(int)
        for first, last in zip(bounds[:-1] + 1, bounds[1:]):
            kernel(state, net, c.lif, c.glif, c.synapses, c.drive, c.timeline, rec, np.zeros((1, n)),
                   noise[first - 1:last], ff_spikes[first - 1:last], first, last, 0, n, 0, chunks)
        return state, rec

    reference, reference_rec = run(False, 1, 1)
    assert reference.spike_count.sum() > 500 and np.any(reference.charge_p != 0)  # an active network
    if tau_i != 3.0:
        assert np.any(reference.charge_i != 0)
    for parallel, chunks, calls in [(False, 3, 2), (True, 2, 1), (True, 7, 3), (True, 8, 2)]:  # 8: the last is empty
        state, rec = run(parallel, chunks, calls)
        for name, value in state._asdict().items():
            np.testing.assert_array_equal(value, getattr(reference, name), err_msg=f"{name}, {chunks} chunks")
        np.testing.assert_array_equal(rec.spike_steps, reference_rec.spike_steps)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_plastic_weights_read_in_place_give_the_state_of_the_out_layout_copy_bit_for_bit(dtype):
    """The step kernel reads the plastic weights either from their copy in the out-layout or, through
    Connectivity.plastic_source, from the in-layout where the RLS update writes them.  Every array of the state
    ends the same bit for bit.  In float32 the in-layout here stays float64 (in training it is float32, like the
    charges), so that each weight must be rounded as the copy to the float32 out-layout rounds it.  Plastic
    synapses come from the network's neurons and five feed-forward ones."""
    from spikeforge.core.backends.layout import BOTH, NOISE_VOLTAGE
    from spikeforge.core.backends.numba_network import _make_run_steps
    from spikeforge.rls.connectivity import out_to_in

    n, lx, steps = 203, 5, 400
    rng = np.random.default_rng(12)
    c = _constants(n, rng.uniform(1.1, 1.6, n), noise_scale=np.full(n, 0.02), decay_plas=np.full(n + lx, 1 - 0.1 / 150),
                   kick_plas=np.full(n + lx, 1 / 150))
    static = _net(n, rng.integers(0, n, 5000), rng.integers(0, n, 5000), rng.choice([0.05, -0.08], 5000))
    _, count, weights, layout, in_to_out = _plastic_inputs(rng, n, 12, n + lx)
    weights *= 0.05
    copied = static._replace(static_weight=static.static_weight.astype(dtype), plastic_ptr=layout.ptr,
                             plastic_post=layout.post, plastic_weight=(layout.weight * 0.05).astype(dtype))
    in_place = copied._replace(plastic_weight=weights.reshape(-1), plastic_source=out_to_in(in_to_out, count))
    noise = rng.standard_normal((steps, n))
    ff_spikes = (rng.random((steps, lx)) < 0.05).astype(np.uint8)
    v0 = rng.random(n)

    def run(net):
        state = _state(n)._replace(spiked=np.zeros(n + lx, dtype=np.uint8), r=np.zeros(n + lx))
        state = state._replace(**{name: value.astype(dtype) for name, value in state._asdict().items()
                                  if value.dtype == np.float64})
        state.v[:] = v0
        rec = _recording(n, max_times=60)
        _make_run_steps(True, TRAIN, LIF, NOISE_VOLTAGE, BOTH, False, False, True)(
            state, net, c.lif, c.glif, c.synapses, c.drive, c.timeline, rec, np.zeros((1, n), dtype=dtype), noise,
            ff_spikes, 1, steps, 0, n, 0, 2)
        return state, rec

    reference, reference_rec = run(copied)
    assert reference.spike_count.sum() > 300 and np.count_nonzero(reference.charge_p) > n // 4  # plastic input
    if dtype == np.float32:  # the in-layout's float64 weights differ from their float32 copies
        assert not np.array_equal(weights.reshape(-1)[in_place.plastic_source], copied.plastic_weight)
    state, rec = run(in_place)
    for name, value in state._asdict().items():
        assert value.dtype == getattr(reference, name).dtype
        np.testing.assert_array_equal(value, getattr(reference, name), err_msg=name)
    np.testing.assert_array_equal(rec.spike_steps, reference_rec.spike_steps)


def test_a_single_process_run_refuses_a_part_of_the_neurons():
    state, rec = _state(4), _recording(4)
    with pytest.raises(ValueError, match=r"owned=\(0, 2\) needs the phases UPDATE and DELIVER"):
        kernels.run_steps(state, _net(4, [], [], []), _constants(4, np.ones(4)), rec, np.zeros((1, 4)),
                          np.zeros((0, 4)), NO_FF, 1, 2, INIT, owned=(0, 2))
