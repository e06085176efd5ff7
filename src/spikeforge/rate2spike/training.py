"""Training the rate RNN (spikernn.md 2.5-2.6): Adam on fresh random trials, evaluation every 100
trials, and the original's stopping rule.

The original takes one Adam step per trial (batch 1, full backpropagation through time, lr 0.01)
and, at trials 1, 101, 201, ..., runs 100 fresh evaluation trials; it stops once their mean loss
is below 7 and more than 95 % are correct (Go-NoGo also needs more than 1500 trials, a floor of
the released code).  ``batch > 1`` averages the loss over that many trials per step (fewer,
better-informed steps; ``trials`` still counts trials, so the two schedules compare directly).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from spikeforge.rate2spike.rate_model import RateRNN, loss
from spikeforge.rate2spike.tasks import Task


@dataclass(frozen=True)
class TrainingConfig:
    """How the rate network is trained."""

    max_trials: int = 6000  # the paper's budget ("successfully trained within 6000 trials")
    batch: int = 1  # trials per Adam step (1: the original)
    learning_rate: float = 0.01
    loss: str = "l2"
    eval_every: int = 100  # trials between evaluations
    eval_trials: int = 100
    loss_threshold: float = 7.0  # stop when the mean evaluation loss is below this ...
    accuracy_threshold: float = 0.95  # ... and the fraction correct above this ...
    min_trials: int | None = None  # ... after this many trials (None: the task's own floor)

    def __post_init__(self):
        if self.max_trials < 1:
            raise ValueError(f"max_trials = {self.max_trials} must be >= 1")
        if self.batch < 1:
            raise ValueError(f"batch = {self.batch} must be >= 1")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate = {self.learning_rate} must be > 0")
        if self.loss not in ("l1", "l2"):
            raise ValueError(f"loss {self.loss!r} is not one of l1, l2")
        if self.min_trials is not None and self.min_trials < 0:
            raise ValueError(f"min_trials = {self.min_trials} must be >= 0")
        if self.eval_every < 1 or self.eval_trials < 1:
            raise ValueError("eval_every and eval_trials must be >= 1")


@dataclass
class TrainingLog:
    """What happened: the loss of every training trial, and each evaluation."""

    losses: list[float] = field(default_factory=list)  # one per Adam step
    eval_trial: list[int] = field(default_factory=list)  # trials done when each evaluation ran
    eval_loss: list[float] = field(default_factory=list)
    eval_accuracy: list[float] = field(default_factory=list)
    trials: int = 0  # trials consumed
    converged: bool = False
    diverged: bool = False  # the loss became NaN or infinite (training stopped there)
    seconds: float = 0.0


def evaluate(model: RateRNN, task: Task, rng: np.random.Generator, n_trials: int, loss_kind: str = "l2",
             generator: torch.Generator | None = None):
    """Mean loss and fraction correct over ``n_trials`` fresh trials (noise as in training), plus
    the outputs (n_trials, T-1) and labels."""
    trials = task.trials(rng, n_trials)
    with torch.no_grad():
        u = torch.as_tensor(trials.u, dtype=model.w.dtype, device=model.w.device)
        z = torch.as_tensor(trials.z, dtype=model.w.dtype, device=model.w.device)
        o, _ = model(u, generator)
        mean_loss = float(loss(o, z, loss_kind))
    o = o.cpu().numpy()
    correct = task.rate_correct(o, trials.label)
    return mean_loss, float(np.mean(correct)), o, trials.label


def train(model: RateRNN, task: Task, config: TrainingConfig, rng: np.random.Generator,
          generator: torch.Generator | None = None, progress=None, should_stop=None, report=None) -> TrainingLog:
    """Train ``model`` in place on ``task``.

    ``rng`` draws the trials, ``generator`` the network noise.  ``progress(n)`` is called with the
    number of trials of each step, ``report(trials, loss, accuracy)`` after each evaluation;
    ``should_stop()`` is asked after each step (an interrupt then ends training cleanly with the
    model as it is).  A loss that is not finite stops training before the step that would spread
    it into the weights (``log.diverged``)."""
    import time

    start = time.perf_counter()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    floor = task.min_trials if config.min_trials is None else config.min_trials
    log = TrainingLog()
    dtype, device = model.w.dtype, model.w.device
    next_eval = 1  # the original evaluates at trials 1, 101, 201, ...
    while log.trials < config.max_trials:
        batch = min(config.batch, config.max_trials - log.trials)
        trials = task.trials(rng, batch)
        o, _ = model(torch.as_tensor(trials.u, dtype=dtype, device=device), generator)
        step_loss = loss(o, torch.as_tensor(trials.z, dtype=dtype, device=device), config.loss)
        if not torch.isfinite(step_loss):
            log.diverged = True
            break
        optimizer.zero_grad()
        step_loss.backward()
        optimizer.step()
        log.losses.append(float(step_loss.detach()))
        log.trials += batch
        if progress is not None:
            progress(batch)
        if log.trials >= next_eval:
            next_eval += config.eval_every
            eval_loss, accuracy, _, _ = evaluate(model, task, rng, config.eval_trials, config.loss, generator)
            log.eval_trial.append(log.trials)
            log.eval_loss.append(eval_loss)
            log.eval_accuracy.append(accuracy)
            if report is not None:
                report(log.trials, eval_loss, accuracy)
            if eval_loss < config.loss_threshold and accuracy > config.accuracy_threshold and log.trials > floor:
                log.converged = True
                break
        if should_stop is not None and should_stop():
            break
    log.seconds = time.perf_counter() - start
    return log
