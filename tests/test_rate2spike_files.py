"""Rate-to-spike model files (HDF5 and the original's .mat) and the ``spikeforge rate`` commands:
what they write, what they refuse."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

pytest.importorskip("torch")

from conftest import publish_figures  # noqa: E402
from spikeforge.cli import run  # noqa: E402
from spikeforge.core.interrupts import StopSignals  # noqa: E402
from spikeforge.core.store import read_h5  # noqa: E402
from spikeforge.rate2spike import files, lif_network  # noqa: E402
from spikeforge.rate2spike.rate_model import RateConfig, initial_weights  # noqa: E402


def spikeforge(*args) -> int:
    with StopSignals() as signals:
        return run([str(a) for a in args], signals)


def one_error_line(capsys, *fragments) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in err[0], err[0]
    return err[0]


def original_mat(path, n=12, n_inputs=1, seed=0, taus=(4.0, 10.0)):
    """A model as the original's TF1 code saves it (spikernn.md 4), built from the documented fields."""
    rng = np.random.default_rng(seed)
    config = RateConfig(n=n, n_inputs=n_inputs, decay_taus=taus)
    w = initial_weights(config, rng)
    inh = w["inh"]
    variables = {
        "w": np.maximum(w["w"], 0), "w0": np.maximum(w["w"], 0), "w_in": w["w_in"], "w_in0": w["w_in"],
        "w_out": w["w_out"], "b_out": np.array([[0.1]]), "m": np.diag(np.where(inh, -1.0, 1.0)),
        "som_m": w["som_mask"], "N": n, "som_N": 0, "exc": (~inh)[:, None], "inh": inh[:, None],
        "taus": np.array(taus), "taus_gaus": w["taus_gaus"], "taus_gaus0": w["taus_gaus"],
        "losses": np.zeros(5), "tr": 4, "activation": "sigmoid", "eval_perf_mean": 0.97, "eval_loss_mean": 3.0,
    }
    scipy.io.savemat(path, variables)
    return variables


def test_an_original_mat_model_loads_and_maps_as_lif_network_fnc_builds_it(tmp_path):
    path = tmp_path / "Task_go-nogo_N_12_Taus_4.0_10.0_Act_sigmoid_2019_10_11_134652.mat"
    variables = original_mat(path)
    model = files.read_model(path)
    assert model.task == "go-nogo" and model.config.n == 12 and model.config.apply_dale
    mapped = lif_network.from_arrays(model)
    expected_w = (variables["w"] @ variables["m"]) * variables["som_m"]  # W = (w m) .* som_m
    np.testing.assert_allclose(mapped.w, expected_w)
    tau_steps = 1 / (1 + np.exp(-variables["taus_gaus"][:, 0])) * 6 + 4
    np.testing.assert_allclose(mapped.tau_d, tau_steps * 5)  # ms
    assert np.all(mapped.w[:, variables["inh"][:, 0]] <= 0) and np.all(mapped.w[:, ~variables["inh"][:, 0]] >= 0)


def test_a_mat_without_a_task_in_its_name_needs_one(tmp_path, capsys):
    path = tmp_path / "mynet.mat"
    original_mat(path)
    with pytest.raises(Exception, match="does not say its task"):
        files.read_model(path)
    assert files.read_model(path, task="go-nogo").task == "go-nogo"
    assert spikeforge("rate", "map", tmp_path / "out", "--model", path, "--task", "mante") == 2
    one_error_line(capsys, "has 1 inputs; task 'mante' has 4")
    assert not (tmp_path / "out" / "search.h5").exists()


def test_train_writes_a_model_that_round_trips_through_mat(tmp_path, capsys):
    directory = tmp_path / "gng"
    assert spikeforge("rate", "train", directory, "--task", "go-nogo", "--N", 20, "--n_trials", 12, "--seed", 3) == 0
    out = capsys.readouterr().out
    assert "did not converge after 12 trials" in out
    arrays, attrs = read_h5(directory / "model.h5")
    assert attrs["task"] == "go-nogo" and attrs["trials"] == 12 and attrs["converged"] is False
    assert arrays["losses"].shape == (12,) and arrays["w"].min() >= 0  # relu'd, as the original saves it
    assert (directory / "training.png").stat().st_size > 0
    # export to the original's .mat and read it back: the same LIF network
    assert spikeforge("rate", "export", directory, tmp_path / "gng.mat") == 0
    from_h5 = lif_network.from_arrays(files.read_model(directory / "model.h5"))
    from_mat = lif_network.from_arrays(files.read_model(tmp_path / "gng.mat"))
    for a, b in zip(from_h5, from_mat):
        np.testing.assert_allclose(a, b)
    assert scipy.io.loadmat(tmp_path / "gng.mat")["taus"].ravel().tolist() == [4.0, 20.0]
    # eval needs a scaling factor: the search's, or one given
    assert spikeforge("rate", "eval", directory, "--trials", 2) == 2
    one_error_line(capsys, "has no scaling-factor search", "spikeforge rate map")
    assert spikeforge("rate", "eval", directory, "--trials", 3, "--scaling-factor", 30, "--seed", 2) == 0
    arrays, attrs = read_h5(directory / "eval.h5")
    assert 0 <= arrays["accuracy"] <= 1 and attrs["scaling_factor"] == 30.0
    assert arrays["labels"].tolist() == [0, 1]  # one NoGo and one Go example
    assert arrays["rate_output"].shape == (2, 199) and arrays["lif_output"].shape == (2, 20000)  # 201 columns
    assert (directory / "eval.png").stat().st_size > 0
    assert spikeforge("rate", "eval", directory, "--trials", 3, "--scaling-factor", 30) == 2
    one_error_line(capsys, "already holds an evaluation", "--force")
    # a second training into the same directory is refused, nothing replaced
    before = (directory / "model.h5").read_bytes()
    assert spikeforge("rate", "train", directory, "--task", "go-nogo", "--N", 20, "--n_trials", 2) == 2
    one_error_line(capsys, "already holds a trained model")
    assert (directory / "model.h5").read_bytes() == before


def test_map_writes_the_search_and_refuses_to_replace_it(tmp_path, capsys):
    path = tmp_path / "Task_go-nogo_N_12_x.mat"
    original_mat(path)
    out = tmp_path / "map"
    args = ("rate", "map", out, "--model", path, "--scaling-factors", "20,40", "--trials", 2, "--held-out", 2,
            "--seed", 1)
    assert spikeforge(*args) == 0
    arrays, attrs = read_h5(out / "search.h5")
    assert arrays["scaling_factors"].tolist() == [20.0, 40.0] and arrays["all_perfs"].shape == (2,)
    assert arrays["opt_scaling_factor"] in (20.0, 40.0) and attrs["held_out_trials"] == 2
    capsys.readouterr()
    (out / "search.png").unlink()  # e.g. the disk was full when it was drawn
    assert spikeforge(*args) == 0  # the same command: the result again, and the missing figure
    assert "already holds this search" in capsys.readouterr().out and (out / "search.png").exists()
    changed = [a if a != 2 else 3 for a in args]  # more trials
    assert spikeforge(*changed) == 2
    one_error_line(capsys, "holds a finished search made with trials = 2, not 3", "--force")
    (out / "eval.h5").write_bytes(b"an evaluation of the earlier search")
    assert spikeforge(*changed, "--force") == 0
    assert not (out / "eval.h5").exists() and "removed the earlier search's search.png, eval.h5" in \
        capsys.readouterr().out


@pytest.mark.parametrize("args, fragments", [
    (("--N", 1), ["N = 1 must be >= 2"]),
    (("--N", 20, "--P_inh", 1.5), ["P_inh = 1.5 must be in [0, 1]"]),
    (("--N", 20, "--act", "tanh"), ["tanh"]),
    (("--N", 20, "--decay_taus", "10,4"), ["max must be >= min"]),
    (("--N", 20, "--decay_taus", "a"), ["--decay_taus 'a'"]),
    (("--N", 20, "--apply_dale", "maybe"), ["--apply_dale 'maybe' is not a boolean"]),
    (("--N", 20, "--n_trials", 0), ["max_trials = 0 must be >= 1"]),
    (("--N", 20, "--decay_taus", "4,inf"), ["must be finite"]),
    (("--N", 20, "--P_rec", 0), ["P_rec = 0.0 must be in (0, 1]"]),
    (("--N", 20, "--min-trials", -3), ["min_trials = -3 must be >= 0"]),
    (("--N", 20, "--seed", -1), ["seed -1 must be in [0, 2**63)"]),
    (("--N", 20, "--seed", 2**63), ["must be in [0, 2**63)"]),
    (("--N", 20, "--device", "bogus"), ["device 'bogus' is not one of cpu, cuda, cuda:N"]),
])
def test_train_refuses_impossible_arguments_before_writing(tmp_path, capsys, args, fragments):
    directory = tmp_path / "net"
    assert spikeforge("rate", "train", directory, "--task", "go-nogo", *args) == 2
    one_error_line(capsys, *fragments)
    assert not (directory / "model.h5").exists()


def test_corrupt_and_foreign_model_files_are_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "Task_xor_N_5.mat"
    bad.write_bytes(b"not a mat file")
    assert spikeforge("rate", "map", tmp_path / "m", "--model", bad) == 2
    one_error_line(capsys, "is not a readable MATLAB file")
    incomplete = tmp_path / "Task_xor_N_5_b.mat"
    scipy.io.savemat(incomplete, {"w": np.zeros((5, 5))})
    assert spikeforge("rate", "map", tmp_path / "m", "--model", incomplete) == 2
    one_error_line(capsys, "lacks w_in, w_out, m, som_m, taus, taus_gaus")
    assert spikeforge("rate", "map", tmp_path / "empty") == 2
    one_error_line(capsys, "model.h5", "does not exist")
    assert spikeforge("rate", "map", tmp_path / "m", "--model", tmp_path / "Task_go-nogo_x.mat",
                      "--scaling-factors", "20:-5:10") == 2
    one_error_line(capsys)


@pytest.mark.slow
@pytest.mark.tutorial
def test_the_rate2spike_tutorial_runs_as_written(tmp_path, monkeypatch):
    import re
    import shlex
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "rate2spike.md").read_text()
    commands = [line.strip() for block in re.findall(r"```bash\n(.*?)```", text, re.S)
                for line in block.splitlines() if line.strip()]
    assert [c.split()[2] for c in commands] == ["train", "map", "eval"]
    monkeypatch.chdir(tmp_path)
    for line in commands:
        assert spikeforge(*shlex.split(line)[1:]) == 0, line
    model, attrs = read_h5(tmp_path / "gng" / "model.h5")
    assert attrs["converged"] is True and attrs["trials"] == 1501  # the floor, as the tutorial says
    search, _ = read_h5(tmp_path / "gng" / "search.h5")
    # the result the tutorial states.  Not its exact numbers: torch's CPU kernels round differently on AVX2
    # and AVX-512 processors, so the trained rate network, and with it the search, differs between CPU
    # generations (seen on this project's machines: best 25 with 96 % and 98 % held out; 25 with 98 %/98 %
    # with torch held to AVX2; 20 with 100 %/98 % on AVX-512)
    best = search["opt_scaling_factor"]
    assert best in (20, 25, 30) and search["all_perfs"][list(search["scaling_factors"]).index(best)] >= 0.95
    assert search["held_out_accuracy"] >= 0.95
    publish_figures(tmp_path / "gng", ["training.png", "search.png", "eval.png"], "rate2spike")


@pytest.mark.parametrize("signum, status", [(2, 130), (15, 143)])
def test_an_interrupted_training_saves_the_model_of_the_last_completed_trial(tmp_path, signum, status):
    import os
    import signal
    import subprocess
    import sys
    import time

    directory = tmp_path / "net"
    process = subprocess.Popen([sys.executable, "-m", "spikeforge", "rate", "train", str(directory), "--task",
                                "go-nogo", "--N", "30", "--n_trials", "100000", "--seed", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "NUMBA_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not (directory / ".spikeforge.owner").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3.0)  # some trials
    process.send_signal(signal.Signals(signum))
    out, err = process.communicate(timeout=120)
    assert process.returncode == status, (out, err)
    assert "interrupted; the model after" in err
    arrays, attrs = read_h5(directory / "model.h5")
    assert attrs["interrupted"] is True and attrs["converged"] is False
    assert 0 < attrs["trials"] < 100000 and arrays["losses"].shape == (attrs["trials"],)
    assert not [f for f in directory.iterdir() if f.name.endswith(".tmp-spikeforge")]


def test_an_interrupted_map_keeps_the_finished_factors_and_resumes_to_the_uninterrupted_result(tmp_path, capsys):
    import os
    import signal
    import subprocess
    import sys

    path = tmp_path / "Task_go-nogo_N_40_x.mat"
    original_mat(path, n=40)
    args = ["rate", "map", "--model", str(path), "--scaling-factors", "20:5:75", "--trials", "30", "--held-out", "5",
            "--seed", "3"]
    directory = tmp_path / "stopped"
    process = subprocess.Popen([sys.executable, "-m", "spikeforge", *args[:2], str(directory), *args[2:]],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "NUMBA_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    line = process.stdout.readline()
    while not line.startswith("1/lambda = 20:"):  # the first factor is done
        assert line, process.communicate()
        line = process.stdout.readline()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, (out, err)
    partial, attrs = read_h5(directory / "search.h5")
    done = int(np.sum(~np.isnan(partial["all_perfs"])))
    assert attrs["complete"] is False and 1 <= done < 12 and "opt_scaling_factor" not in partial
    assert f"{done} of 12 scaling factors are saved" in err
    # eval cannot use an unfinished search; a changed input is refused; the same command resumes
    assert spikeforge("rate", "eval", directory, "--model", path) == 2
    one_error_line(capsys, "was interrupted", "rate map")
    assert spikeforge(*args[:2], directory, *args[2:-1], 4) == 2
    one_error_line(capsys, "interrupted search made with seed = 3, not 4", "--force")
    assert spikeforge(*args[:2], directory, *[a if a != "30" else "31" for a in args[2:]]) == 2
    one_error_line(capsys, "trials = 30, not 31")
    assert spikeforge(*args[:2], directory, *args[2:]) == 0
    assert f"resuming: {done} of 12" in capsys.readouterr().out
    assert spikeforge(*args[:2], tmp_path / "whole", *args[2:]) == 0
    resumed, whole = read_h5(directory / "search.h5"), read_h5(tmp_path / "whole" / "search.h5")
    for name in ("all_perfs", "opt_scaling_factor", "held_out_accuracy"):
        np.testing.assert_array_equal(resumed[0][name], whole[0][name])
    np.testing.assert_array_equal(resumed[0]["all_perfs"][:done], partial["all_perfs"][:done])
    assert resumed[1]["complete"] is True
    # one Dask job per factor gives the same search, and leaves no job results behind
    assert spikeforge(*args[:2], tmp_path / "dask", *args[2:], "--workers", 2) == 0
    on_dask = read_h5(tmp_path / "dask" / "search.h5")
    for name in ("all_perfs", "opt_scaling_factor", "held_out_accuracy"):
        np.testing.assert_array_equal(on_dask[0][name], whole[0][name])
    assert not (tmp_path / "dask" / "search-factors").exists()


def mat_variant(tmp_path, name, **changes):
    """An original-layout .mat (N = 12, Go-NoGo) with some variables replaced (None removes one)."""
    path = tmp_path / f"Task_go-nogo_{name}.mat"
    variables = original_mat(path)
    variables.update(changes)
    scipy.io.savemat(path, {key: value for key, value in variables.items() if value is not None})
    return path


@pytest.mark.parametrize("change, fragments", [
    ({"taus": np.array([4.0, 10.0, 20.0])}, ["decay_taus = [4.0, 10.0, 20.0] must be one value or (min, max)"]),
    ({"taus": np.array([10.0, 4.0])}, ["max must be >= min"]),
    ({"w": "hello"}, ["w holds", "expected real numbers"]),
    ({"w": np.ones((12, 12)) * (1 + 1j)}, ["w holds complex128 values"]),
    ({"N": 300}, ["N = 300 but w is 12 x 12"]),
    ({"m": np.ones((12, 12))}, ["m must be diagonal with entries +1 (excitatory) and -1"]),
    ({"inh": np.zeros((5, 1))}, ["inh does not mark the units that m makes inhibitory"]),
    ({"w": -np.ones((12, 12))}, ["w has negative entries", "relu(W)"]),
])
def test_inconsistent_mat_models_are_refused(tmp_path, capsys, change, fragments):
    path = mat_variant(tmp_path, "bad", **change)
    assert spikeforge("rate", "map", tmp_path / "out", "--model", path) == 2
    one_error_line(capsys, *fragments)
    assert not (tmp_path / "out" / "search.h5").exists()


@pytest.mark.parametrize("args, fragments", [
    (("--seed", -1), ["seed -1 must be in [0, 2**63)"]),
    (("--backend", "torch", "--device", "cuda:7"), ["CUDA is not available"]),
    (("--backend", "torch", "--device", "bogus"), ["device 'bogus' is not one of"]),
    (("--device", "cuda"), ["--device 'cuda' needs --backend torch"]),
    (("--scaling-factors", "20,,30"), ["is not START:STEP:STOP"]),
    (("--scaling-factors", "1e400"), ["must be finite values > 0"]),
    (("--scaling-factors", "20:0.0001:75"), ["more than 1000 factors"]),
    (("--task", "mante"), ["trained on task 'go-nogo', not 'mante'"]),
])
def test_map_refuses_impossible_arguments_before_the_search(tmp_path, capsys, args, fragments):
    model = tmp_path / "net"
    path = tmp_path / "Task_go-nogo_N_12.mat"
    original_mat(path)
    if "--task" in args:  # a model file of another task
        assert spikeforge("rate", "train", model / "gng", "--task", "go-nogo", "--N", 12, "--n_trials", 1) == 0
        capsys.readouterr()
        arguments = ("rate", "map", tmp_path / "out", "--model", model / "gng" / "model.h5", *args)
    else:
        arguments = ("rate", "map", tmp_path / "out", "--model", path, *args)
    assert spikeforge(*arguments) == 2
    one_error_line(capsys, *fragments)
    assert not (tmp_path / "out" / "search.h5").exists()


def test_eval_refuses_a_search_made_for_another_model(tmp_path, capsys):
    first, second = tmp_path / "Task_go-nogo_a.mat", tmp_path / "Task_go-nogo_b.mat"
    original_mat(first, seed=0)
    original_mat(second, seed=1)
    assert spikeforge("rate", "map", tmp_path / "out", "--model", first, "--scaling-factors", "20,40", "--trials", 2,
                      "--held-out", 2, "--seed", 1) == 0
    capsys.readouterr()
    assert spikeforge("rate", "eval", tmp_path / "out", "--model", second, "--trials", 2) == 2
    one_error_line(capsys, "was made for the model", "search this model")
    assert spikeforge("rate", "eval", tmp_path / "out", "--model", first, "--trials", 2, "--seed", 4) == 0


def test_the_tutorials_own_task_example_runs(tmp_path, monkeypatch, capsys):
    import re
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "rate2spike.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", text, re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "docs/rate2spike.md", "exec"), {"__name__": "tutorial"})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("200 trials, last evaluation:") and out[1].startswith("LIF: best 1/lambda = ")
