"""Refit the encoder's attribute head on frozen encoder features.

The head (two linear layers on the encoder's last feature map, model/cvae.Encoder.attr_head) was trained beside
everything else the generator learns, at the generator's late, small learning rate. Refitting it alone changes no
latent, skip or decoder weight, so reconstructions and edits of a given condition stay bit-identical; only what
the service reads as a face's current attributes (and /v1/analyze) changes.

The features of the train split are computed once (the image and its mirror image: CelebA's attributes do not
change under a horizontal flip), the head is trained from its current weights with AdamW on those features, and
the epoch with the best validation accuracy is kept. Finally each attribute's decision threshold is moved to the
one that is most accurate on the validation split and folded into the last layer's bias, so the artifact's format
and the service's `logit > 0` reading stay as they are. The test split is never read here.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.cvae import CVAE
from model.data import CelebASplit, to_tensor_batch


@dataclass
class HeadRefitSettings:
    epochs: int = 12
    batch_size: int = 256
    lr: float = 1e-4
    weight_decay: float = 1e-2
    feature_dropout: float = 0.2  # dropout on the frozen features while training: the head has 2.1M weights
    seed: int = 0
    mirror: bool = True  # train on the mirror images too
    threshold_grid: float = 2.0  # thresholds searched in [-grid, grid] logits, 0.05 apart


@torch.inference_mode()
def encoder_features(model: CVAE, images: np.ndarray, *, mirror: bool = False, batch_size: int = 256) -> Tensor:
    """The flattened last feature map the head reads, (N, F) float16 (half the memory; the head trains in float)."""
    out = []
    for start in range(0, len(images), batch_size):
        x = to_tensor_batch(images[start:start + batch_size])
        if mirror:
            x = x.flip(3)
        out.append(model.encoder.features(x).flatten(1).half())
    return torch.cat(out)


def head_accuracy(head: nn.Module, features: Tensor, labels: Tensor, offsets: Tensor | None = None) -> Tensor:
    """Per-attribute accuracy of `logit > offset`."""
    logits = predict(head, features)
    if offsets is not None:
        logits = logits - offsets
    return ((logits > 0).float() == labels).float().mean(0)


@torch.inference_mode()
def predict(head: nn.Module, features: Tensor, batch_size: int = 2048) -> Tensor:
    head.eval()
    return torch.cat([head(features[i:i + batch_size].float()) for i in range(0, len(features), batch_size)])


def best_thresholds(logits: Tensor, labels: Tensor, grid: float) -> Tensor:
    """Per attribute, the logit threshold in [-grid, grid] with the highest accuracy (0 where nothing beats it)."""
    candidates = torch.arange(-grid, grid + 1e-6, 0.05)
    acc = torch.stack([((logits > t).float() == labels).float().mean(0) for t in candidates])  # (T, A)
    at_zero = ((logits > 0).float() == labels).float().mean(0)
    best = candidates[acc.argmax(0)]
    return torch.where(acc.max(0).values > at_zero, best, torch.zeros_like(best))


def refit_head(model: CVAE, train: CelebASplit, val: CelebASplit, settings: HeadRefitSettings,
               log=print) -> dict:
    """Train model.encoder.attr_head in place; returns what happened (for the card's chain of segments)."""
    torch.manual_seed(settings.seed)
    started = time.time()
    model.eval()
    feats = [encoder_features(model, train.images)]
    if settings.mirror:
        feats.append(encoder_features(model, train.images, mirror=True))
    x_train = torch.cat(feats)
    y_train = torch.from_numpy(train.labels).repeat(len(feats), 1)
    x_val = encoder_features(model, val.images)
    y_val = torch.from_numpy(val.labels)
    feature_seconds = time.time() - started
    log(f"features: train {tuple(x_train.shape)}, val {tuple(x_val.shape)} in {feature_seconds:.0f} s")

    head = model.encoder.attr_head
    before_val = float(head_accuracy(head, x_val, y_val).mean())
    best_state, best_val, best_epoch = copy.deepcopy(head.state_dict()), before_val, 0
    log(f"head before: val accuracy over 40 {before_val:.4f}")
    opt = torch.optim.AdamW(head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed)
    for epoch in range(1, settings.epochs + 1):
        head.train()
        order = torch.randperm(len(x_train), generator=generator)
        total = 0.0
        for start in range(0, len(order), settings.batch_size):
            idx = order[start:start + settings.batch_size]
            x = F.dropout(x_train[idx].float(), settings.feature_dropout, training=True)
            loss = F.binary_cross_entropy_with_logits(head(x), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        val_acc = float(head_accuracy(head, x_val, y_val).mean())
        log(f"epoch {epoch}: train loss {total / len(order):.4f}, val accuracy {val_acc:.4f}")
        if val_acc > best_val:
            best_state, best_val, best_epoch = copy.deepcopy(head.state_dict()), val_acc, epoch
    head.load_state_dict(best_state)

    offsets = best_thresholds(predict(head, x_val), y_val, settings.threshold_grid)
    with torch.no_grad():
        head[-1].bias -= offsets  # logit - offset > 0  <=>  logit > offset
    after_val = float(head_accuracy(head, x_val, y_val).mean())
    log(f"kept epoch {best_epoch} (val {best_val:.4f}); with per-attribute thresholds val {after_val:.4f}")
    return {"kind": "head_refit", "settings": asdict(settings), "train_images": len(train),
            "val_images": len(val), "kept_epoch": best_epoch, "val_accuracy_before": round(before_val, 4),
            "val_accuracy_refit": round(best_val, 4), "val_accuracy_thresholds": round(after_val, 4),
            "threshold_offsets": [round(float(o), 2) for o in offsets],
            "minutes": round((time.time() - started) / 60, 1)}
