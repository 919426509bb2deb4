"""The shared torch training loop and a base class for neural methods.

Design for speed: the whole fold lives on the device as tensors, batches are index
slices of it (no DataLoader, no workers), and the loop syncs with the host once per
epoch (to decide early stopping), never per step.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from abc import abstractmethod
from collections.abc import Callable
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
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    epochs: int = Field(30, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    lr_decay: float = Field(1.0, gt=0, le=1, description="exponential LR decay per epoch")
    patience: int = Field(
        8, ge=0, description="early stopping patience in epochs on validation KL; 0 = off"
    )
    valid_fraction: float = Field(
        0.15, ge=0, lt=1, description="share of the training split held out for early stopping"
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
        """User-set keys win over the method's defaults, which win over these defaults."""
        merged = {**defaults, **self.model_dump(exclude_unset=True)}
        return TrainConfig(**merged)


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
) -> dict[str, Any]:
    """AdamW over shuffled mini-batches; keeps the weights of the best validation KL.

    ``after_step`` (optional) is called right after every optimiser step, e.g. to update
    per-step state such as a weight average (:meth:`TorchMethod.after_step`).
    """
    device = next(iter(train.values())).device
    n = next(iter(train.values())).shape[0]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_decay)
    gen = torch.Generator().manual_seed(seed)
    steps = max(1, math.ceil(n / cfg.batch_size))
    best = (math.inf, -1)
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, float]] = []
    bad_epochs = 0
    autocast = _autocast(cfg, device)
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen).to(device, non_blocking=True)
        total = torch.zeros((), device=device)
        for s in range(steps):
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
        sched.step()
        record = {"epoch": epoch + 1, "train_loss": float(total) / steps}
        if valid is not None and len(valid["target"]) > 0:
            model.eval()
            with torch.no_grad(), autocast:
                vkl = evaluate_kl(logits_fn, valid, cfg.batch_size * 8)
            record["valid_kl"] = vkl
            if vkl < best[0] - 1e-6:
                best, bad_epochs = (vkl, epoch + 1), 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad_epochs += 1
        history.append(record)
        if progress is not None:
            progress(epoch + 1, cfg.epochs, record)
        if cfg.patience and valid is not None and bad_epochs >= cfg.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {
        "epochs_run": len(history),
        "best_epoch": best[1] if best_state is not None else len(history),
        "best_valid_kl": None if best_state is None else best[0],
        "train_seconds": time.perf_counter() - t0,
        "final_train_loss": history[-1]["train_loss"] if history else None,
    }


def _autocast(cfg: TrainConfig, device: torch.device) -> Any:
    use = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")
    if not use:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


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

    def _ensure_model(self) -> torch.device:
        device = resolve_device(self.device)
        if self.model is None:
            torch.manual_seed(self.seed)
            self.model = self.build_model()
            if self.train_config.compile:
                self.model.compile()
        self.model.to(device)
        return device

    def fit(self, train, valid=None, progress=None):
        self.model = None
        device = self._ensure_model()
        tr = dataset_tensors(train, device)
        va = dataset_tensors(valid, device) if valid is not None and len(valid) else None
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
        )

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
        return torch.cat(out).cpu().numpy().astype(np.float64)

    def state_dict(self) -> dict[str, torch.Tensor]:
        if self.model is None:
            raise RuntimeError("fit the method before saving it")
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model = None
        self._ensure_model()
        assert self.model is not None
        self.model.load_state_dict(state)
        self.model.eval()
