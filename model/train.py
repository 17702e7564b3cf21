"""The CVAE training loop: single process, or DistributedDataParallel under torchrun (gloo on CPU, NCCL on GPU)."""

import json
import os
import time
from dataclasses import dataclass, field, asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from model.attributes import CELEBA_ATTRIBUTES, EDIT_EVAL_ATTRIBUTES, NOT_EDITABLE
from model.cvae import CVAE, CVAEConfig, LatentAdversary, labels_to_condition
from model.data import load_split, to_tensor_batch
from model.grid import edit_columns, save_grid
from model.losses import (adversary_loss, attribute_loss, edit_classification_loss, edit_targets,
                          latent_confusion_loss, vae_loss)

PREVIEW_ATTRIBUTES = ["Smiling", "Eyeglasses", "Blond_Hair", "Male", "Young", "Mustache"]


@dataclass
class TrainSettings:
    data_dir: str = "../shared/celeba128"
    out_dir: str = "runs/cvae64"
    cache_dir: str = ".cache"
    steps: int = 5000
    batch_size: int = 128
    lr: float = 1e-3
    beta: float = 1.0  # weight of the KL term
    attr_weight: float = 10.0  # weight of the attribute head's BCE (summed over 40)
    edit_weight: float = 10.0  # weight of the AttGAN-style classification loss on edited decodes
    edit_focus_share: float = 0.0  # share of edit flips drawn from the 13 evaluated attributes (else any editable)
    adv_weight: float = 0.0  # weight of the latent-confusion loss against the latent adversary (0: no adversary)
    adv_warmup: int = 1000  # steps over which adv_weight ramps up from 0
    adv_lr: float = 1e-3
    edit_on_residual: bool = False  # the edit loss also judges the service's residual edit of the input
    edit_residual_blur: float = 0.0  # sigma (pixels) of a Gaussian low-pass on that residual (0: none)
    init_from: str | None = None  # start from this checkpoint's weights (a fine-tune), with a fresh optimizer
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500
    train_limit: int | None = None  # use only the first N training images (smoke tests)
    model: dict = field(default_factory=dict)  # CVAEConfig overrides


def _setup_distributed() -> tuple[int, int, torch.device]:
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    return rank, world, device


def train(settings: TrainSettings, *, resume: bool = False) -> Path:
    rank, world, device = _setup_distributed()
    master = rank == 0
    out = Path(settings.out_dir)
    torch.manual_seed(settings.seed)
    np.random.seed(settings.seed)

    data = load_split(settings.data_dir, "train", size=CVAEConfig(**settings.model).image_size,
                      cache_dir=settings.cache_dir, limit=settings.train_limit)
    preview = load_split(settings.data_dir, "val", size=CVAEConfig(**settings.model).image_size,
                         cache_dir=settings.cache_dir, limit=8)
    config = CVAEConfig(**settings.model)
    model = CVAE(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    adversary = LatentAdversary(config).to(device)
    adv_optimizer = torch.optim.Adam(adversary.parameters(), lr=settings.adv_lr)
    step, images_seen, train_seconds = 0, 0, 0.0
    ckpt_path = out / "checkpoint.pt"
    if settings.init_from and not (resume and ckpt_path.exists()):
        init = torch.load(settings.init_from, map_location=device, weights_only=False)
        model.load_state_dict(init["model"])
        adversary.load_state_dict(init["adversary"])
        if master:
            print(f"initialised from {settings.init_from} (step {init['step']})")
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        adversary.load_state_dict(ckpt["adversary"])
        adv_optimizer.load_state_dict(ckpt["adv_optimizer"])
        step, images_seen, train_seconds = ckpt["step"], ckpt["images_seen"], ckpt["train_seconds"]
        if master:
            print(f"resumed from {ckpt_path} at step {step}")
    ddp = DistributedDataParallel(model) if world > 1 else model
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.steps, eta_min=settings.lr * 0.05,
                                                           last_epoch=step - 1 if step else -1)
    if master:
        out.mkdir(parents=True, exist_ok=True)
        n_params = sum(p.numel() for p in model.parameters())
        print(f"{len(data)} training images, {n_params / 1e6:.2f}M parameters, {world} process(es) on {device}")

    focus = [CELEBA_ATTRIBUTES.index(a) for a in EDIT_EVAL_ATTRIBUTES]
    editable = [i for i, a in enumerate(CELEBA_ATTRIBUTES) if a not in NOT_EDITABLE]
    # Each rank draws its own shard of a shared per-epoch permutation.
    per_rank = settings.batch_size // world
    rng = np.random.default_rng(settings.seed + step)
    order, cursor = rng.permutation(len(data)), 0
    t_last, seen_last = time.time(), 0
    while step < settings.steps:
        if cursor + settings.batch_size > len(order):
            order, cursor = rng.permutation(len(data)), 0
        idx = np.sort(order[cursor + rank * per_rank: cursor + (rank + 1) * per_rank])
        cursor += settings.batch_size
        x = to_tensor_batch(data.images[idx]).to(device)
        if torch.rand(()) < 0.5:  # horizontal flip: CelebA attributes are mirror-symmetric
            x = x.flip(3)
        labels = torch.from_numpy(data.labels[idx]).to(device)

        t0 = time.time()
        recon, mu, logvar, logits = ddp(x, labels_to_condition(labels))
        rec, kld = vae_loss(recon, x, mu, logvar, settings.beta)
        attr = attribute_loss(logits, labels)
        targets = edit_targets(labels, focus, editable, settings.edit_focus_share)
        edit = (edit_classification_loss(model, mu, targets, x, labels, settings.edit_residual_blur)
                if settings.edit_on_residual
                else edit_classification_loss(model, mu, targets))
        loss = rec + kld + settings.attr_weight * attr + settings.edit_weight * edit
        if settings.adv_weight > 0:
            ramp = min(1.0, step / max(1, settings.adv_warmup))
            loss = loss + settings.adv_weight * ramp * latent_confusion_loss(adversary, mu)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if settings.adv_weight > 0:  # after the encoder's step: its loss read the adversary's current weights
            adv_optimizer.zero_grad(set_to_none=True)
            adversary_loss(adversary, mu, labels).backward()
            if world > 1:  # the adversary is outside DDP: average its gradients by hand
                for p in adversary.parameters():
                    dist.all_reduce(p.grad)
                    p.grad /= world
            adv_optimizer.step()
        step += 1
        images_seen += settings.batch_size
        train_seconds += time.time() - t0

        if master and step % settings.log_every == 0:
            now = time.time()
            rate = (images_seen - seen_last) / (now - t_last) if seen_last else float("nan")
            t_last, seen_last = now, images_seen
            acc = ((logits > 0).float() == labels).float().mean().item()
            adv_note = f"adv_acc {_adversary_accuracy(adversary, mu, labels):.3f} " if settings.adv_weight > 0 else ""
            print(f"step {step}/{settings.steps} loss {loss.item():.1f} rec {rec.item():.1f} kl {kld.item():.1f} "
                  f"attr {attr.item():.2f} edit {edit.item():.2f} head_acc {acc:.3f} {adv_note}"
                  f"lr {scheduler.get_last_lr()[0]:.2e} {rate:.0f} img/s", flush=True)
        if master and (step % settings.checkpoint_every == 0 or step == settings.steps):
            _checkpoint(model, optimizer, adversary, adv_optimizer, settings, device, world, step, images_seen,
                        train_seconds, ckpt_path)
            model.eval()
            cols = edit_columns(model, to_tensor_batch(preview.images).to(device), torch.from_numpy(preview.labels).to(device),
                                [CELEBA_ATTRIBUTES.index(a) for a in PREVIEW_ATTRIBUTES])
            save_grid(cols, out / f"preview_{step:06d}.png")
            model.train()
    if world > 1:
        dist.destroy_process_group()
    return ckpt_path


@torch.no_grad()
def _adversary_accuracy(adversary: LatentAdversary, mu: torch.Tensor, labels: torch.Tensor) -> float:
    """How well the adversary reads the attributes from this batch's latent (chance is the majority rate)."""
    adversary.eval()
    acc = ((adversary(mu) > 0).float() == labels).float().mean().item()
    adversary.train()
    return acc


def _checkpoint(model, optimizer, adversary, adv_optimizer, settings, device, world, step, images_seen,
                train_seconds, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "config": model.config.to_dict(),
                "adversary": adversary.state_dict(), "adv_optimizer": adv_optimizer.state_dict(),
                "settings": asdict(settings), "device": f"{device} x{world}", "step": step, "images_seen": images_seen,
                "train_seconds": train_seconds}, tmp)
    tmp.replace(path)  # atomic: an interrupted save never corrupts the last good checkpoint
    print(f"checkpoint {path} at step {step} ({train_seconds / 60:.1f} min of training)", flush=True)


def load_settings(config_file: str | None, overrides: dict) -> TrainSettings:
    values = json.loads(Path(config_file).read_text()) if config_file else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainSettings(**values)
