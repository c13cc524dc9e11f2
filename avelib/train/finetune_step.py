"""One fine-tuning run's optimisation (stage A): AdamW over both towers (and the label tower), warm-up + cosine,
one epoch of steps on this rank's rows of each batch (avelib.train.contrastive runs the epochs)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from avelib.models.device import autocast
from avelib.models.images import to_images
from avelib.models.label_tower import LabelTower
from avelib.train.data_parallel import (all_reduce_gradients, broadcast_state, gather_batch, gathered_rows,
                                        local_rows, sync_batch_norm)
from avelib.train.objective import contrastive_loss, lr_lambda, param_groups, train_mode
from avelib.train.pairs import iterate_pairs


class FinetuneStep:
    """The optimisation of one fine-tuning run: AdamW over both towers (+ label tower), warm-up + cosine.
    `cfg` is the run's avelib.train.contrastive.FinetuneConfig (not imported: that module imports this one)."""

    def __init__(self, model: nn.Module, label_tower: LabelTower | None, cfg: Any, total_steps: int,
                 device: torch.device, rank: int = 0, world: int = 1) -> None:
        groups = param_groups(model, cfg.weight_decay)
        if label_tower is not None:
            groups.append({"params": list(label_tower.parameters()), "weight_decay": 0.0})
        self.model, self.label_tower, self.cfg, self.device = model, label_tower, cfg, device
        self.rank, self.world = rank, world
        self.fbsp = model.audio.fbsp
        self.fbsp.defer_normalization = world > 1  # its gradient hooks are not linear
        if world > 1:
            sync_batch_norm(model)  # statistics of the whole batch, as in one process
        self.trainable = [p for g in groups for p in g["params"]]
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(total_steps, cfg.warmup_fraction, cfg.min_lr_ratio)
        )

    def state_dict(self) -> dict[str, Any]:
        tower = self.label_tower
        return {"model": self.model.state_dict(), "label_tower": tower.state_dict() if tower is not None else None,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if self.label_tower is not None:
            self.label_tower.load_state_dict(state["label_tower"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def broadcast(self) -> None:
        """Rank 0's weights on every rank (the trainable modules)."""
        for module in (self.model, self.label_tower):
            if module is not None:
                broadcast_state(module)

    def epoch(self, cache: Any, labels: np.ndarray, batches: list[np.ndarray], desc: str, progress: bool) -> dict[str, Any]:
        """Train on `batches` (avelib.train.pairs rows); the pair-weighted mean losses, lr and logit scale.
        In a world > 1, this rank encodes its rows of each batch and the loss is that of the gathered batch."""
        model, cfg, device, rank, world = self.model, self.cfg, self.device, self.rank, self.world
        train_mode(model)
        sums = torch.zeros(4, dtype=torch.float64, device=device)  # pair-weighted loss, contrastive, fbsp, label
        n_pairs = 0
        mine = batches if world == 1 else [local_rows(b, rank, world) for b in batches]
        bar = tqdm(iterate_pairs(cache, mine, cfg.num_workers, device.type == "cuda"), total=len(batches),
                   desc=desc, disable=None if progress else True, leave=False)
        for batch, (frames, audio) in zip(batches, bar):
            rows = batch if world == 1 else gathered_rows(batch, world)  # the order of gather_batch
            images = to_images(frames, device, cfg.channels_last)  # [b,3,S,S]
            audio = audio.to(device, non_blocking=True)  # [b,R]
            with autocast(device, cfg.amp):
                a_emb = model.encode_audio(audio)  # [b,E]
                i_emb = model.encode_image(images)  # [b,E]
                if world > 1:
                    a_emb, i_emb = (gather_batch(e, world, len(batch)) for e in (a_emb, i_emb))  # [B,E]
                con = contrastive_loss(model, a_emb, i_emb)
                fbsp = model.fbsp_loss().float()
                lab = torch.zeros((), device=device)
                if self.label_tower is not None:
                    classes = torch.from_numpy(labels[rows[:, 0], rows[:, 1]]).to(device)  # [B] audio seconds' classes
                    lab = self.label_tower.loss(a_emb, i_emb, classes)
                loss = con + cfg.fbsp_weight * fbsp + cfg.label_weight * lab
            self.optimizer.zero_grad(set_to_none=True)
            if world == 1:
                loss.backward()
            else:  # each rank's share of the same loss; the sum over ranks is its gradient
                (loss / world).backward()
                all_reduce_gradients(self.trainable)
                self.fbsp.normalize_gradients()  # the step rule of one process, on the summed gradient
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.trainable, cfg.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            b = len(batch)
            n_pairs += b
            sums += torch.stack([loss.detach(), con.detach(), fbsp.detach(), lab.detach()]).double() * b  # no host sync per step
        bar.close()
        loss_sum, con_sum, fbsp_sum, label_sum = sums.tolist()
        return {
            "train_loss": loss_sum / n_pairs,
            "train_contrastive": con_sum / n_pairs,
            "train_fbsp": fbsp_sum / n_pairs,
            **({"train_label": label_sum / n_pairs} if self.label_tower is not None else {}),
            "train_pairs": n_pairs,
            "lr": float(self.scheduler.get_last_lr()[0]),
            "logit_scale": float(model.logit_scale_ai.detach().exp().clamp(1, 100)),
        }
