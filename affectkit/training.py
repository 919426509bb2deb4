"""The shared torch training loop and a base class for neural methods.

Design for speed: the whole fold lives on the device as tensors, batches are index
slices of it (no DataLoader, no workers), and the loop syncs with the host once per
epoch (to decide early stopping), never per step.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from .data import EmotionDataset
from .interfaces import Method


class TrainConfig(BaseModel):
    """Training-loop settings shared by every neural method (``train.*`` in a run config).

    A key left unset takes the method's own default (``Method.train_defaults``), then the
    value here.

    **How long training runs** (:func:`resolve_schedule`; every fold records the result):

    - ``steps`` set: exactly that many optimiser steps;
    - else ``epochs`` set: ``epochs x ceil(n_fit / batch_size)`` steps (the classic rule);
    - else the budget adapts to the data: ``clamp(passes x ceil(n_fit / batch_size),
      min_steps, max_steps)``. ``passes`` suits mid-sized data; the floor keeps a small
      dataset (a WESAD subject: ~160 windows, one batch) from getting a handful of steps,
      the cap keeps a large one (DMER size: ~200k windows) from passes it does not need.

    With ``patience > 0`` the protocol's own validation split (``valid_fraction`` of the
    training split, held out by the protocol's rule) is scored ``evaluations`` times spread
    over the budget; training stops after ``patience`` evaluations without improvement and
    the best weights are kept. With ``refit`` the model is then trained again, from the
    same initialisation, on the whole training split (fit + validation) for the selected
    number of epochs, so that no training data is lost to the hold-out.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    epochs: int | None = Field(
        None, ge=1, description="fixed number of epochs; null = the adaptive step budget"
    )
    steps: int | None = Field(
        None, ge=1, description="fixed number of optimiser steps (wins over epochs)"
    )
    passes: float = Field(
        30.0, gt=0, description="adaptive budget: passes over the fit split, before the clamp"
    )
    min_steps: int = Field(300, ge=1, description="adaptive budget: floor in optimiser steps")
    max_steps: int = Field(3000, ge=1, description="adaptive budget: cap in optimiser steps")
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    lr_decay: float = Field(1.0, gt=0, le=1, description="exponential LR decay per epoch")
    patience: int = Field(
        5,
        ge=0,
        description="early stopping: validation evaluations without improvement in KL before "
        "training stops; 0 = off (no hold-out, the whole budget is trained)",
    )
    evaluations: int = Field(
        20,
        ge=1,
        description="validation evaluations spread over the step budget (with epochs set and "
        "no steps: one per epoch)",
    )
    valid_fraction: float = Field(
        0.2, ge=0, lt=1, description="share of the training split held out for early stopping"
    )
    refit: bool = Field(
        True,
        description="after early stopping, retrain on fit + validation for the chosen number "
        "of epochs (costs a second training run)",
    )
    prior_start: bool = Field(
        True,
        description="the untrained model predicts the fit split's mean distribution (methods "
        "that implement TorchMethod.start_at_prior); with a validation split, that start is "
        "scored too, so early stopping never keeps a model worse than the prior on it",
    )
    shrink: bool = Field(
        True,
        description="predict a*model + (1-a)*prior, a in {0, 0.1, ..., 1} chosen together with "
        "the step on the validation split (needs the early-stopping hold-out); a = 1 when "
        "training moves the model past the prior on held-out data",
    )
    grad_clip: float | None = Field(5.0, gt=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["auto", "off", "bf16"] = Field(
        "auto", description="bf16 autocast; auto = on for CUDA, off on CPU (slower there)"
    )
    compile: bool = Field(False, description="torch.compile the model before training")
    fold_parallel: int = Field(
        1, ge=1, description="train up to this many folds at once as one vmapped model (GPU)"
    )

    def resolved(self, defaults: dict[str, Any]) -> TrainConfig:
        """User-set keys win over the method's defaults, which win over these defaults.

        A user who sets ``epochs`` (or ``steps``) means that length, so a method default of
        the other kind does not override it.
        """
        user = self.model_dump(exclude_unset=True)
        defaults = dict(defaults)
        if "epochs" in user or "steps" in user:
            for key in ("epochs", "steps"):
                if key not in user:
                    defaults.pop(key, None)
        return TrainConfig(**{**defaults, **user})

    @property
    def holds_out(self) -> bool:
        """Whether a validation split is carved out (only early stopping needs one)."""
        return self.patience > 0 and self.valid_fraction > 0

    def validation_fraction(self) -> float:
        return self.valid_fraction if self.holds_out else 0.0


@dataclass(frozen=True)
class Schedule:
    """The resolved training length of one fit (recorded in every fold's ``fit_info``)."""

    steps: int  # optimiser steps
    steps_per_epoch: int
    eval_every: int  # validation every this many steps
    rule: str  # "steps", "epochs" or "budget"

    @property
    def epochs(self) -> float:
        return self.steps / self.steps_per_epoch


def resolve_schedule(cfg: TrainConfig, n_fit: int) -> Schedule:
    """Steps, steps per epoch and validation interval for a fit split of ``n_fit`` samples."""
    per_epoch = max(1, math.ceil(max(n_fit, 1) / cfg.batch_size))
    if cfg.steps is not None:
        steps, rule = cfg.steps, "steps"
    elif cfg.epochs is not None:
        steps, rule = cfg.epochs * per_epoch, "epochs"
    else:
        lo, hi = min(cfg.min_steps, cfg.max_steps), cfg.max_steps
        steps, rule = int(np.clip(round(cfg.passes * per_epoch), lo, hi)), "budget"
    # epochs-based training has always validated once per epoch
    every = per_epoch if rule == "epochs" else max(1, math.ceil(steps / cfg.evaluations))
    return Schedule(steps=steps, steps_per_epoch=per_epoch, eval_every=every, rule=rule)


def refit_steps(selected_step: int, per_epoch_fit: int, per_epoch_all: int) -> int:
    """The refit's length: the selected number of *epochs* of the fit split, in steps of the
    (larger) fit + validation split. Both training paths (sequential and fold-parallel)
    convert through this one rule."""
    return max(0, round(selected_step / per_epoch_fit * per_epoch_all))


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        from .errors import UserError

        raise UserError("device 'cuda' requested but torch sees no GPU; use --device cpu or auto.")
    return torch.device(device)


def dataset_tensors(data: EmotionDataset, device: torch.device) -> dict[str, torch.Tensor]:
    """Modalities plus ``target`` as float32 tensors on ``device``."""
    out = {m: torch.from_numpy(x).to(device) for m, x in data.modalities.items()}
    out["target"] = torch.from_numpy(data.targets).to(device)
    return out


def kl_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL(y || softmax(logits)) = Σ_k y_k (ln y_k − ln ŷ_k), averaged over the batch.

    Written out rather than ``F.kl_div`` because vmap (fold-parallel training) has a batching
    rule for these ops and none for ``kl_div``; ``xlogy`` makes zeros in y contribute 0.
    """
    logp = F.log_softmax(logits, dim=-1)
    return (torch.special.xlogy(target, target) - target * logp).sum(-1).mean()


def _slice(batch: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v[idx] for k, v in batch.items()}


def train_loop(
    model: nn.Module,
    loss_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    logits_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    train: dict[str, torch.Tensor],
    valid: dict[str, torch.Tensor] | None,
    cfg: TrainConfig,
    *,
    seed: int,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
    after_step: Callable[[], None] | None = None,
    steps: int | None = None,
) -> dict[str, Any]:
    """AdamW over shuffled mini-batches for the resolved schedule; keeps the best weights.

    The batch order is a fresh permutation per epoch (the last epoch may be partial).
    Validation runs every ``eval_every`` steps and at the end; the host syncs only then.
    ``steps`` (optional) overrides the schedule's length, e.g. for a refit.
    ``after_step`` (optional) is called right after every optimiser step, e.g. to update
    per-step state such as a weight average (:meth:`TorchMethod.after_step`).
    """
    device = next(iter(train.values())).device
    n = next(iter(train.values())).shape[0]
    has_valid = valid is not None and len(valid["target"]) > 0
    plan = resolve_schedule(cfg, n)
    total_steps = plan.steps if steps is None else steps
    params = [p for p in model.parameters() if p.requires_grad]
    opt = adamw(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_decay)
    gen = torch.Generator().manual_seed(seed)
    best = (math.inf, -1)
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, float]] = []
    bad_evals, step, since = 0, 0, 0
    autocast = _autocast(cfg, device)
    n_evals = math.ceil(total_steps / plan.eval_every)
    total = torch.zeros((), device=device)
    t0 = time.perf_counter()
    stop = False
    prior = train["target"].double().mean(0) if cfg.shrink and has_valid else None
    best_alpha = 1.0

    def validate() -> tuple[float, float]:
        """(validation KL, its mixing weight a): a = 1 without shrinkage."""
        model.eval()
        with torch.no_grad(), autocast:
            if prior is None:
                return evaluate_kl(logits_fn, valid, cfg.batch_size * 8), 1.0
            kls = mixed_kl(logits_fn, valid, cfg.batch_size * 8, prior)
        j = int(torch.argmin(kls))
        return float(kls[j]), SHRINK_ALPHAS[j]

    if has_valid:  # step 0: the start is a candidate too (the prior, with prior_start)
        vkl, best_alpha = validate()
        best = (vkl, 0)
        best_state = copy.deepcopy(model.state_dict())
    while step < total_steps and not stop:
        model.train()
        perm = torch.randperm(n, generator=gen).to(device, non_blocking=True)
        for s in range(plan.steps_per_epoch):
            batch = _slice(train, perm[s * cfg.batch_size : (s + 1) * cfg.batch_size])
            with autocast:
                loss = loss_fn(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            if after_step is not None:
                after_step()
            total += loss.detach()
            step, since = step + 1, since + 1
            if step % plan.eval_every and step < total_steps:
                continue
            record = {
                "step": step,
                "epoch": step / plan.steps_per_epoch,
                "train_loss": float(total) / since,
            }
            total.zero_()
            since = 0
            if has_valid:
                vkl, alpha = validate()
                model.train()
                record["valid_kl"] = vkl
                if vkl < best[0] - 1e-6:
                    best, bad_evals, best_alpha = (vkl, step), 0, alpha
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    bad_evals += 1
            history.append(record)
            if progress is not None:
                progress(len(history), n_evals, record)
            if cfg.patience and has_valid and bad_evals >= cfg.patience:
                stop = True
            if stop or step >= total_steps:
                break
        sched.step()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    best_step = best[1] if best_state is not None else step
    return {
        "steps_run": step,
        "epochs_run": round(step / plan.steps_per_epoch, 3),
        "steps_budget": total_steps,
        "steps_per_epoch": plan.steps_per_epoch,
        "schedule_rule": plan.rule if steps is None else "refit",
        "best_step": best_step,
        "best_epoch": round(best_step / plan.steps_per_epoch, 3),
        "best_valid_kl": None if best_state is None else best[0],
        "shrink_alpha": best_alpha,
        "train_seconds": time.perf_counter() - t0,
        "final_train_loss": history[-1]["train_loss"] if history else None,
    }


def adamw(params: list[torch.Tensor], *, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, fused where this torch has the kernel for the parameters' device (CPU since
    torch 2.4): the same update in one pass over all tensors instead of a loop of small ops
    per tensor (mpcl's 78 tensors: 0.3 ms a step instead of 1.6 ms, ~5 % of its step)."""
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError):  # older torch, or a device without the fused kernel
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def _autocast(cfg: TrainConfig, device: torch.device) -> Any:
    use = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")
    if not use:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


_SHRINK_ALPHA, _SHRINK_PRIOR = "__shrink__.alpha", "__shrink__.prior"

#: mixing weights a of the model's distribution with the prior that validation chooses from
SHRINK_ALPHAS = tuple(i / 10 for i in range(11))


def mixed_kl(
    logits_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    data: dict[str, torch.Tensor],
    batch_size: int,
    prior: torch.Tensor,
) -> torch.Tensor:
    """``[A]``: KL(y ‖ a·softmax(logits) + (1 − a)·prior) for every a in SHRINK_ALPHAS."""
    y_all = data["target"]
    alphas = torch.tensor(SHRINK_ALPHAS, dtype=torch.float64, device=y_all.device)[:, None, None]
    prior = prior.to(y_all.device, torch.float64)
    total = torch.zeros(len(SHRINK_ALPHAS), device=y_all.device, dtype=torch.float64)
    for s in range(0, y_all.shape[0], batch_size):
        batch = {k: v[s : s + batch_size] for k, v in data.items()}
        p = torch.softmax(logits_fn(batch).double(), dim=-1)
        q = alphas * p + (1 - alphas) * prior  # [A, b, K]
        y = batch["target"].double()
        total += (torch.special.xlogy(y, y) - y * torch.log(q.clamp_min(1e-300))).sum((1, 2))
    return total / max(y_all.shape[0], 1)


def evaluate_kl(
    logits_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    data: dict[str, torch.Tensor],
    batch_size: int,
) -> float:
    n = data["target"].shape[0]
    total = torch.zeros((), device=data["target"].device, dtype=torch.float64)
    for s in range(0, n, batch_size):
        batch = {k: v[s : s + batch_size] for k, v in data.items()}
        logp = F.log_softmax(logits_fn(batch).double(), dim=-1)
        y = batch["target"].double()
        total += (torch.special.xlogy(y, y) - y * logp).sum()
    return float(total) / max(n, 1)


class TorchMethod(Method):
    """Base for neural methods: subclasses build an ``nn.Module`` returning logits.

    Override :meth:`build_model`, and :meth:`loss` when the objective has more terms than
    KL(y || ŷ). The model receives a dict of modality tensors (and ``target`` while
    training, which it must not use for prediction).
    """

    model: nn.Module | None = None
    #: How :meth:`fit` runs when it would refit (set by the evaluator, see
    #: :func:`affectkit.evaluate.run_fold`): None = the selection run, then the refit;
    #: ``"select"`` = stop after the selection run and keep its info in
    #: :attr:`pending_selection` (the model is then not final); a dict (such an info) = skip
    #: the selection run and refit from it. The refit depends on the selection only through
    #: that info (it rebuilds the model from the seed and re-seeds the loop), so the two
    #: halves may run as separate jobs, even in separate processes, with the same result.
    fit_phase: str | dict[str, Any] | None = None
    #: the selection run's info when the last :meth:`fit` stopped before its refit
    #: (``fit_phase="select"``); None when the fit is complete. Kept on the method rather
    #: than in the returned info, which a subclass's ``fit`` may rebuild
    pending_selection: dict[str, Any] | None = None
    #: whether fold-parallel training (``train.fold_parallel``) may train this method: it
    #: vmaps ``build_model()``'s module with the shared loop and never calls ``fit``. Methods
    #: whose ``fit`` does per-fold work, or whose model vmap cannot batch, set False and are
    #: then trained fold by fold.
    fold_parallel: ClassVar[bool] = True

    @abstractmethod
    def build_model(self) -> nn.Module: ...

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        assert self.model is not None
        return self.model(batch)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return kl_loss(self.logits(batch), batch["target"])

    def after_step(self) -> None:
        """Called by the training loop right after every optimiser step (default: nothing).

        The place for per-step state that is not a gradient update, such as an exponential
        weight average: ``loss`` may not change the model in place, because fold-parallel
        training evaluates it under ``vmap`` on stacked parameters. A method overriding this
        and keeping :attr:`fold_parallel` must also override :meth:`after_step_stacked`.
        """

    def after_step_stacked(
        self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]
    ) -> None:
        """Fold-parallel counterpart of :meth:`after_step`, called after every optimiser step.

        ``params`` and ``buffers`` hold every fold's state stacked along a leading fold axis
        (``[F, ...]``), keyed as ``torch.func.stack_module_state`` names ``self.model``'s
        parameters and buffers (no prefix); update them in place, without autograd
        (the call runs under ``torch.no_grad``). Default: nothing.
        """

    def prepare_labels(self, targets: np.ndarray) -> None:
        """Per-fit state computed from the fit split's labels ``[n, K]`` before the model is
        built (default: nothing), such as label-gcn's co-occurrence graph.

        Called by :meth:`fit`, and by fold-parallel training for each fold with that fold's
        fit split, so keep what the model needs in a buffer of ``build_model()``'s module:
        fold-parallel training stacks buffers per fold.
        """

    def start_at_prior(self, log_prior: torch.Tensor) -> bool:
        """Make the untrained model output ``log_prior`` (``[K]``) as logits for every input.

        Called once per fit, after :meth:`build_model`, when ``train.prior_start`` is on.
        The usual way: zero the weights of the layer(s) producing the logits and put
        ``log_prior`` in one bias (:func:`start_linear_at`). Return True if done; the default
        does nothing and returns False.
        """
        return False

    #: (a, prior [K]) when predictions are a·model + (1 − a)·prior (``train.shrink``)
    shrinkage: tuple[float, torch.Tensor] | None = None

    def _set_shrink(self, alpha: float, target: torch.Tensor) -> None:
        prior = target.double().mean(0).cpu()
        self.shrinkage = None if alpha >= 1.0 else (float(alpha), prior / prior.sum())

    def _start(self, target: torch.Tensor) -> None:
        if self.train_config.prior_start and len(target):
            with torch.no_grad():
                self.start_at_prior(torch.log(target.mean(0).clamp_min(1e-6)))

    def _ensure_model(self) -> torch.device:
        device = resolve_device(self.device)
        if self.model is None:
            torch.manual_seed(self.seed)
            self.model = self.build_model()
            if self.train_config.compile:
                self.model.compile()
        if not _placed_on(self.model, device):
            # Module.to walks every submodule even when nothing moves: about 4 ms of a
            # streamed window's 10 ms prediction for mpcl, so it runs only when needed
            self.model.to(device)
        return device

    def fit(self, train, valid=None, progress=None):
        self.prepare_labels(train.targets)
        self.model = None
        resume = isinstance(self.fit_phase, dict)
        # resuming at the refit, which builds its own model: none to build here
        device = resolve_device(self.device) if resume else self._ensure_model()
        tr = dataset_tensors(train, device)
        va = dataset_tensors(valid, device) if valid is not None and len(valid) else None
        self.pending_selection = None
        if resume:
            info = dict(self.fit_phase)
        else:
            self._start(tr["target"])
            info = self._train(tr, va, progress)
            if not (self.train_config.refit and va is not None):
                self._set_shrink(info["shrink_alpha"], tr["target"])
                return info
            if self.fit_phase == "select":
                self.pending_selection = info
                return info
        # Refit: the selected length in epochs, on fit + validation, from the same init.
        everything = {k: torch.cat([tr[k], va[k]]) for k in tr}
        per_epoch = resolve_schedule(self.train_config, len(everything["target"])).steps_per_epoch
        steps = refit_steps(info["best_step"], info["steps_per_epoch"], per_epoch)
        self.model = None
        self._ensure_model()
        self._start(everything["target"])
        refit = self._train(everything, None, progress, steps=steps)
        self._set_shrink(info["shrink_alpha"], everything["target"])
        return {
            **refit,
            "shrink_alpha": info["shrink_alpha"],
            "selected_step": info["best_step"],
            "selected_epoch": info["best_epoch"],
            "best_valid_kl": info["best_valid_kl"],
            "selection_steps_run": info["steps_run"],
            "selection_budget": info["steps_budget"],
            "train_seconds": info["train_seconds"] + refit["train_seconds"],
        }

    def _train(self, tr, va, progress, steps: int | None = None) -> dict[str, Any]:
        assert self.model is not None
        return train_loop(
            self.model,
            self.loss,
            self.logits,
            tr,
            va,
            self.train_config,
            seed=self.seed,
            progress=progress,
            after_step=self.after_step,
            steps=steps,
        )

    def finetune(self, data: EmotionDataset, steps: int, lr: float | None = None) -> dict[str, Any]:
        """Train the fitted model on for ``steps`` optimiser steps on ``data`` alone: the
        ``adapt: finetune`` hook of ``subject-calibrated`` (``data`` = a new person's
        calibration windows, already normalised). Every method inherits it unchanged.

        No validation (the calibration part is too small to hold some out), same loss,
        optimiser and ``after_step`` as :meth:`fit`, at learning rate ``lr`` (default
        ``train.lr``). Shrinkage towards the prior is dropped: that prior is the training
        population's, and the calibration windows now speak for the person.
        """
        if self.model is None:
            raise RuntimeError("fit the method before fine-tuning it")
        device = self._ensure_model()
        cfg = self.train_config.model_copy(update={"lr": lr or self.train_config.lr, "patience": 0})
        info = train_loop(
            self.model,
            self.loss,
            self.logits,
            dataset_tensors(data, device),
            None,
            cfg,
            seed=self.seed + 1,  # not the fit's batch order
            after_step=self.after_step,
            steps=steps,
        )
        self.shrinkage = None
        return {k: info[k] for k in ("steps_run", "train_seconds", "final_train_loss")}

    @torch.no_grad()
    def predict(self, data: EmotionDataset) -> np.ndarray:
        device = self._ensure_model()
        assert self.model is not None
        self.model.eval()
        x = {m: torch.from_numpy(a).to(device) for m, a in data.modalities.items()}
        n, bs = len(data), max(self.train_config.batch_size * 8, 1024)
        out = [
            torch.softmax(self.logits({k: v[s : s + bs] for k, v in x.items()}).float(), dim=-1)
            for s in range(0, n, bs)
        ]
        if not out:
            return np.zeros((0, self.spec.num_emotions))
        pred = torch.cat(out).cpu().double()
        if self.shrinkage is not None:
            alpha, prior = self.shrinkage
            pred = alpha * pred + (1 - alpha) * prior
        return pred.numpy()

    def state_dict(self) -> dict[str, torch.Tensor]:
        if self.model is None:
            raise RuntimeError("fit the method before saving it")
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        if self.shrinkage is not None:
            state[_SHRINK_ALPHA] = torch.tensor(self.shrinkage[0], dtype=torch.float64)
            state[_SHRINK_PRIOR] = self.shrinkage[1]
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        alpha, prior = state.pop(_SHRINK_ALPHA, None), state.pop(_SHRINK_PRIOR, None)
        self.shrinkage = None if alpha is None else (float(alpha), prior.double())
        self.model = None
        self._ensure_model()
        assert self.model is not None
        self.model.load_state_dict(state)
        self.model.eval()


def _placed_on(model: nn.Module, device: torch.device) -> bool:
    """Whether every parameter and buffer of ``model`` already lives on ``device``."""
    for t in itertools.chain(model.parameters(), model.buffers()):
        if t.device.type != device.type or (
            device.index is not None and t.device.index != device.index
        ):
            return False
    return True


@torch.no_grad()
def start_linear_at(linear: nn.Linear, bias: torch.Tensor | None) -> None:
    """Zero ``linear``'s weight; its bias becomes ``bias`` (zeros if None).

    The output then no longer depends on the input: the model starts from a constant
    prediction and the first gradient step moves the weight off zero.
    """
    linear.weight.zero_()
    if linear.bias is not None:
        linear.bias.copy_(bias if bias is not None else torch.zeros_like(linear.bias))
