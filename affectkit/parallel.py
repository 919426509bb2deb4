"""Fold-parallel training: several folds of one neural method trained as one batched model.

Leave-one-subject-out on DMER is 73 small, identical jobs; run one after another they leave
a GPU mostly idle. Here the F folds' models are stacked (``torch.func.stack_module_state``)
and one vmapped step trains all of them: for fold f with parameters θ_f and batch B_f,

    L(θ_1..θ_F) = Σ_f loss_f(θ_f; B_f),   ∂L/∂θ_f = ∂loss_f/∂θ_f,

so the gradients are exactly the per-fold gradients; AdamW is element-wise, gradient
clipping is done per fold, early stopping keeps each fold's own best weights; per-step state
(a weight average, say) is updated by ``TorchMethod.after_step_stacked``. Each fold
keeps its own seed (initialisation and batch order), its own training-split standardiser
(applied on the fly to the shared data tensor, so memory is one copy of the data plus F sets
of statistics) and its own validation split. Results equal sequential training up to float
rounding, except for methods with dropout, whose random masks come from another stream.

Requirements: a :class:`~affectkit.training.TorchMethod`, and folds whose fit/validation
splits have equal sizes (true for leave-one-subject-out with equal-length recordings);
:func:`can_run_parallel` says whether a group qualifies.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .config import RunConfig
from .data import EmotionDataset, Standardizer
from .evaluate import (
    Callbacks,
    FoldPredictions,
    FoldResult,
    build_method,
    fit_valid_split,
    fold_seed,
    method_train_config,
    plain_inputs,
    score_fold,
)
from .interfaces import Fold, Protocol
from .training import (
    SHRINK_ALPHAS,
    TorchMethod,
    TrainConfig,
    _autocast,
    adamw,
    refit_steps,
    resolve_device,
    resolve_schedule,
)


class _Call(nn.Module):
    """Exposes ``method.loss`` / ``method.logits`` as a module forward for functional_call."""

    def __init__(self, method: TorchMethod, fn: str) -> None:
        super().__init__()
        self.model = method.model  # the method reads self.model: reparametrised in place
        self._method = [method]  # a list, so it is not registered as a submodule
        self._fn = fn

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return getattr(self._method[0], self._fn)(batch)


def _splits(cfg: RunConfig, data: EmotionDataset, protocol: Protocol, folds: list[Fold], seed: int):
    train_cfg = method_train_config(cfg)
    out = []
    for fold in folds:
        fseed = fold_seed(seed, fold.index)
        fit_idx, valid_idx = fit_valid_split(protocol, data, fold, train_cfg, fseed)
        out.append((fold, fseed, fit_idx, valid_idx, Standardizer.fit(data.subset(fold.train))))
    return out


def can_run_parallel(
    cfg: RunConfig, data: EmotionDataset, protocol: Protocol, folds: list[Fold], seed: int
) -> bool:
    factory = _method_class(cfg)
    if not (isinstance(factory, type) and issubclass(factory, TorchMethod)) or len(folds) < 2:
        return False
    if not factory.fold_parallel or not plain_inputs(cfg):  # per-subject stats, calibration
        return False
    sp = _splits(cfg, data, protocol, folds, seed)
    return len({len(s[2]) for s in sp}) == 1 and len({len(s[3]) for s in sp}) == 1


def _method_class(cfg: RunConfig) -> Any:
    from .plugins import get_registry

    return get_registry().get("method", cfg.method.name).factory


def run_folds_parallel(
    cfg: RunConfig,
    data: EmotionDataset,
    protocol: Protocol,
    folds: list[Fold],
    *,
    seed: int,
    callbacks: Callbacks | None = None,
) -> list[tuple[FoldResult, FoldPredictions]]:
    """Train ``folds`` at once; returns what :func:`affectkit.evaluate.run_fold` would, per fold."""
    callbacks = callbacks or Callbacks()
    tcfg: TrainConfig = method_train_config(cfg)
    device = resolve_device(tcfg.device)
    splits = _splits(cfg, data, protocol, folds, seed)
    if len({len(s[2]) for s in splits}) != 1 or len({len(s[3]) for s in splits}) != 1:
        raise ValueError("fold-parallel training needs equal fit/validation sizes in every fold")
    n_folds = len(splits)
    t_start = time.perf_counter()

    # one copy of the raw data on the device; per-fold statistics applied on the fly
    raw = {m: torch.from_numpy(x).to(device) for m, x in data.modalities.items()}
    target = torch.from_numpy(data.targets).to(device)
    mean = {
        m: torch.stack([torch.from_numpy(s[4].mean[m]) for s in splits]).to(device) for m in raw
    }
    std = {m: torch.stack([torch.from_numpy(s[4].std[m]) for s in splits]).to(device) for m in raw}
    fit_idx = torch.from_numpy(np.stack([s[2] for s in splits])).to(device)  # [F, n]
    val_idx = torch.from_numpy(np.stack([s[3] for s in splits])).to(device)  # [F, n_valid]

    def gather(idx: torch.Tensor) -> dict[str, torch.Tensor]:  # idx [F, B] -> [F, B, ...]
        out = {}
        for m, x in raw.items():
            shape = (idx.shape[0], 1, *x.shape[1:])
            z = (x[idx] - mean[m].view(shape)) / std[m].view(shape)
            out[m] = torch.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)
        out["target"] = target[idx]
        return out

    run = _StackedRun(cfg, data, splits, tcfg, device, gather, target, callbacks)
    sel = run.train(fit_idx, val_idx if val_idx.shape[1] else None)
    has_valid = val_idx.shape[1] > 0
    final, methods, plan = sel["final"], sel["methods"], sel["plan"]
    steps_run, best_step = sel["steps_run"], sel["best_step"]
    refit = None
    if tcfg.refit and has_valid:
        # the selected epochs again on fit + validation, per fold, as TorchMethod.fit does
        all_idx = torch.cat([fit_idx, val_idx], dim=1)
        per_all = resolve_schedule(tcfg, all_idx.shape[1]).steps_per_epoch
        lengths = [refit_steps(int(b), plan.steps_per_epoch, per_all) for b in best_step]
        refit = run.train(all_idx, None, capture=torch.tensor(lengths, dtype=torch.long))
        final, methods = refit["final"], refit["methods"]
    fit_seconds = (time.perf_counter() - t_start) / n_folds
    best_kl, best_alpha = sel["best_kl"], sel["best_alpha"]
    prior_idx = torch.cat([fit_idx, val_idx], dim=1) if refit is not None else fit_idx

    out = []
    for f, (fold, fseed, _, _, norm) in enumerate(splits):
        m = methods[f]
        assert m.model is not None
        m.model.load_state_dict({k: v[f].detach() for k, v in final.items()})
        m.model.eval()
        if has_valid:
            m._set_shrink(float(best_alpha[f]), target[prior_idx[f]])
        test = norm.transform(data.subset(fold.test))
        run_f = int(steps_run[f])
        best_f = int(best_step[f]) if has_valid else run_f
        info = {
            "steps_run": run_f,
            "epochs_run": round(run_f / plan.steps_per_epoch, 3),
            "steps_budget": plan.steps,
            "steps_per_epoch": plan.steps_per_epoch,
            "schedule_rule": plan.rule,
            "best_step": best_f,
            "best_epoch": round(best_f / plan.steps_per_epoch, 3),
            "best_valid_kl": float(best_kl[f]) if has_valid else None,
            "shrink_alpha": float(best_alpha[f]),
            "fold_parallel": n_folds,
        }
        if refit is not None:
            info.update(
                steps_run=int(refit["capture"][f]),
                epochs_run=round(int(refit["capture"][f]) / refit["plan"].steps_per_epoch, 3),
                steps_per_epoch=refit["plan"].steps_per_epoch,
                schedule_rule="refit",
                selected_step=best_f,
                selected_epoch=round(best_f / plan.steps_per_epoch, 3),
                selection_steps_run=run_f,
                selection_budget=plan.steps,
            )
        out.append(
            score_fold(cfg, fold, m, test, seed=fseed, fit_seconds=fit_seconds, fit_info=info)
        )
    return out


def _clip_per_fold(leaves: list[torch.Tensor], max_norm: float) -> None:
    """``clip_grad_norm_`` applied to each fold's slice of the stacked parameters."""
    grads = [p.grad for p in leaves if p.grad is not None]
    if not grads:
        return
    sq = torch.stack([g.float().pow(2).flatten(1).sum(1) for g in grads]).sum(0)  # [F]
    coef = torch.clamp(max_norm / (sq.sqrt() + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *[1] * (g.dim() - 1)).to(g.dtype))


def _valid_kl(
    v_logits, params, buffers, gather, val_idx: torch.Tensor, chunk: int, priors
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per fold: (best validation KL over the shrinkage weights, that weight); ``[F]`` each.

    Without ``priors`` ([F, K]) the weight is 1 (the model alone), as in ``train_loop``.
    """
    n_folds, n = val_idx.shape
    alphas = torch.tensor(SHRINK_ALPHAS if priors is not None else (1.0,), dtype=torch.float64)
    a = alphas.to(val_idx.device)[:, None, None, None]  # [A, 1, 1, 1]
    total = torch.zeros(len(alphas), n_folds, dtype=torch.float64, device=val_idx.device)
    for s in range(0, n, chunk):
        batch = gather(val_idx[:, s : s + chunk])
        y = batch["target"].double()  # [F, b, K]
        if priors is None:
            logq = torch.log_softmax(v_logits(params, buffers, batch).double(), dim=-1)[None]
        else:
            p = torch.softmax(v_logits(params, buffers, batch).double(), dim=-1)
            logq = torch.log((a * p + (1 - a) * priors[:, None, :]).clamp_min(1e-300))
        total += (torch.special.xlogy(y, y) - y * logq).sum(dim=(2, 3))
    kls = (total / max(n, 1)).cpu()  # [A, F]
    j = torch.argmin(kls, dim=0)
    return kls.gather(0, j[None])[0], alphas[j]


class _StackedRun:
    """One vmapped training run of every fold: selection (with validation) or refit."""

    def __init__(self, cfg, data, splits, tcfg, device, gather, target, callbacks) -> None:
        self.cfg, self.data, self.splits, self.tcfg = cfg, data, splits, tcfg
        self.device, self.gather, self.target, self.callbacks = device, gather, target, callbacks

    def train(
        self,
        train_idx: torch.Tensor,
        val_idx: torch.Tensor | None,
        capture: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """Train on ``train_idx`` ``[F, n]``. With ``val_idx``: early stopping and the best
        weights per fold; with ``capture`` ``[F]``: each fold's weights after exactly that many
        steps (its own length), training all folds for the longest."""
        cfg, tcfg, device, gather, target = (
            self.cfg,
            self.tcfg,
            self.device,
            self.gather,
            self.target,
        )
        n_folds = len(self.splits)
        methods: list[TorchMethod] = []
        for f, (_, fseed, fit_idx, *_rest) in enumerate(self.splits):
            m = build_method(cfg, self.data.spec, fseed)
            # the fit split's labels, in the selection run and in the refit alike, as
            # TorchMethod.fit does (per-fold buffers, e.g. label-gcn's graph)
            m.prepare_labels(self.data.targets[fit_idx])
            m.model = None
            m._ensure_model()  # same seeded initialisation as a sequential fit
            m._start(target[train_idx[f]])
            methods.append(m)
        params, buffers = stack_module_state([m.model for m in methods])  # each [F, ...]
        proto = methods[0]
        proto.model = copy.deepcopy(methods[0].model)
        assert proto.model is not None
        loss_mod, logits_mod = _Call(proto, "loss"), _Call(proto, "logits")

        def prefix(d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {f"model.{k}": v for k, v in d.items()}

        def f_loss(p, b, batch):
            return functional_call(loss_mod, (prefix(p), prefix(b)), (batch,))

        def f_logits(p, b, batch):
            return functional_call(logits_mod, (prefix(p), prefix(b)), (batch,))

        v_loss = vmap(f_loss, randomness="different")
        v_logits = vmap(f_logits, randomness="different")
        leaves = [p for p in params.values() if p.requires_grad]
        opt = adamw(leaves, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=tcfg.lr_decay)
        gens = [torch.Generator().manual_seed(s[1]) for s in self.splits]
        n = train_idx.shape[1]
        plan = resolve_schedule(tcfg, n)
        total_steps = plan.steps if capture is None else int(capture.max())
        n_evals = max(1, math.ceil(total_steps / plan.eval_every))
        autocast = _autocast(tcfg, device)
        has_valid = val_idx is not None and val_idx.shape[1] > 0
        best_kl = torch.full((n_folds,), math.inf, dtype=torch.float64)
        best_step = torch.zeros(n_folds, dtype=torch.long)
        best_alpha = torch.ones(n_folds, dtype=torch.float64)
        bad = torch.zeros(n_folds, dtype=torch.long)
        stopped = torch.zeros(n_folds, dtype=torch.bool)
        state = {**params, **buffers}
        best = {k: v.detach().clone() for k, v in state.items()}
        steps_run = torch.zeros(n_folds, dtype=torch.long)
        # fit-split priors for the shrinkage a·model + (1 − a)·prior, as train_loop does
        priors = (
            torch.stack([target[i].double().mean(0) for i in train_idx])
            if tcfg.shrink and has_valid
            else None
        )

        def keep(mask: torch.Tensor) -> None:
            mask = mask.to(device)
            for k, v in state.items():
                best[k] = torch.where(mask.view(-1, *[1] * (v.dim() - 1)), v.detach(), best[k])

        def validate() -> tuple[torch.Tensor, torch.Tensor]:
            proto.model.eval()
            with torch.no_grad(), autocast:
                return _valid_kl(
                    v_logits, params, buffers, gather, val_idx, tcfg.batch_size * 8, priors
                )

        if has_valid:  # step 0 is a candidate too, as in train_loop
            best_kl, best_alpha = validate()
        if capture is not None:
            keep(capture == 0)
        step, done = 0, total_steps == 0
        total = torch.zeros(n_folds, device=device)
        while not done:
            proto.model.train()
            perms = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)
            order = torch.gather(train_idx, 1, perms)
            for s in range(plan.steps_per_epoch):
                batch = gather(order[:, s * tcfg.batch_size : (s + 1) * tcfg.batch_size])
                with autocast:
                    losses = v_loss(params, buffers, batch)  # [F]
                opt.zero_grad(set_to_none=True)
                losses.sum().backward()
                if tcfg.grad_clip is not None:
                    _clip_per_fold(leaves, tcfg.grad_clip)
                opt.step()
                with torch.no_grad():
                    proto.after_step_stacked(params, buffers)
                total += losses.detach().float()
                step += 1
                steps_run += (~stopped).long()
                if capture is not None:
                    keep(capture == step)
                if step % plan.eval_every and step < total_steps:
                    continue
                if has_valid:
                    vkl, alpha = validate()  # as train_loop validates: eval-mode modules
                    proto.model.train()
                    improved = (vkl < best_kl - 1e-6) & ~stopped
                    best_kl = torch.where(improved, vkl, best_kl)
                    best_alpha = torch.where(improved, alpha, best_alpha)
                    best_step = torch.where(improved, step, best_step)
                    bad = torch.where(improved, 0, bad + 1)
                    keep(improved)
                    if tcfg.patience:
                        stopped |= bad >= tcfg.patience
                record = {"step": step, "train_loss": float(total.mean()) / max(step, 1)}
                self.callbacks.epoch(math.ceil(step / plan.eval_every), n_evals, record)
                done = bool(stopped.all()) or step >= total_steps
                if done:
                    break
            sched.step()
        final = best if (has_valid or capture is not None) else state
        return {
            "final": final,
            "methods": methods,
            "plan": plan,
            "steps_run": steps_run,
            "best_step": best_step if has_valid else steps_run,
            "best_kl": best_kl,
            "best_alpha": best_alpha,
            "capture": capture,
        }
