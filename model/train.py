"""Training loop of the CVAE v2 with its adversarial critic, run as resumable segments.

One step: a critic step (hinge realism on real faces vs. the composited edits, attribute head on real faces), then
a generator step (L1 reconstruction + KL + attribute head + Fader latent confusion + realism and attribute
classification of the composited edits + mask sparsity and smoothness), then the latent adversary's step.

From segment 2 on (settings.classifier set) the edits' attribute classification is read by a frozen training
classifier (model/classifier.py), trained on real faces at the start of the first segment that has it, instead of
the critic's attribute head, which never learned the attributes in segment 1.

A run lives in `out_dir` (by default outside the repository). Every `checkpoint_minutes` it writes checkpoint.pt:
model, critic, adversary, their optimisers, the RNG states and the data position, so `--resume` continues the
exact sequence. A segment ends after `segment_minutes`; `write_warm_start` then stores the weights in half
precision (no optimiser state) for committing, so the next segment can start on a machine without the cache.
"""

import json
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from model.attributes import (CELEBA_ATTRIBUTES, COLOUR_ATTRIBUTES, EDIT_EVAL_ATTRIBUTES, HAIR_ATTRIBUTES,
                              NOT_EDITABLE)
from model.classifier import ClassifierConfig, TrainingClassifier, freeze
from model.critic import Critic, CriticConfig, translate
from model.cvae import CVAE, CVAEConfig, LatentAdversary, composite, labels_to_condition
from model.data import load_split, to_tensor_batch
from model.grid import edit_columns, save_grid
from model.losses import (adversary_loss, attribute_loss, changed_patch_weights, changed_weights, chroma_penalty,
                          critic_fake_hinge_loss, critic_hinge_loss, edit_classification_loss, edit_targets,
                          generator_hinge_loss, kl_divergence, latent_confusion_loss, mask_penalties, ripple_penalty,
                          target_condition)

PREVIEW_ATTRIBUTES = ["Smiling", "Eyeglasses", "Blond_Hair", "Male", "Young", "Mustache", "Bangs"]
DEFAULT_RUNS = Path.home() / ".cache" / "face-interpolator" / "runs"
CLASSIFIER_KEYS = ("classifier", "second_classifier")  # checkpoint keys of the training classifiers, in slot order


@dataclass
class TrainSettings:
    name: str = "cvae128_gan"
    data_dir: str = "../shared/celeba128"
    out_dir: str | None = None  # default: ~/.cache/face-interpolator/runs/<name>
    cache_dir: str = str(Path.home() / ".cache" / "face-interpolator" / "data")
    steps: int = 100_000  # the whole chain; a segment stops earlier after segment_minutes
    batch_size: int = 32
    lr: float = 2e-4
    critic_lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    rec_weight: float = 100.0  # L1, mean over pixels
    kl_weight: float = 0.002  # KL summed over latent dimensions
    attr_weight: float = 10.0  # encoder's attribute head on real faces
    fader_weight: float = 1.0  # latent confusion against the latent adversary
    fader_warmup: int = 2000
    adv_weight: float = 1.0  # generator's hinge loss on composited edits
    cls_weight: float = 10.0  # critic's attribute head on composited edits should read the targets
    # (first, last) step over which cls_weight ramps in from 0; None: full weight from the start. A new classifier
    # at full weight wrecked the decoder within 50 steps (segment 2, first attempt: README).
    cls_ramp: tuple[int, int] | None = None
    changed_weight: float = 13.0  # weight of the changed attributes inside cls_weight's mean over 40
    critic_cls_weight: float = 1.0  # critic's attribute head on real faces
    mask_sparsity: float = 0.1
    # Scales the sparsity of images whose edit changes a hair attribute: with one sparsity for all, the mask learned
    # to leave the hair out and hair-colour edits barely showed (segments 1-8).
    hair_mask_sparsity_scale: float = 1.0
    realism_where_changed: bool = False  # weight the critic's patches by how much the edit changed them
    chroma_weight: float = 0.0  # penalty on the colour part of the masked change (model.losses.chroma_penalty)
    colour_chroma_scale: float = 1.0  # scales it for images whose edit changes one of colour_attributes
    # None: model.attributes.COLOUR_ATTRIBUTES. cvae128_gan_seg18.json leaves Pale_Skin out: with the penalty cut
    # for it, pale skin became a whitish-green cast (segment 16).
    colour_attributes: list[str] | None = None
    ripple_weight: float = 0.0  # penalty on stripes in the masked change (model.losses.ripple_penalty)
    # The critic also judges the reconstructions D(z, a) (whole image): /v1/generate shows decodes as they are,
    # and in segment 4 they grew rainbow stripes at the eyes and mouth that only the L1 term opposed.
    realism_on_reconstruction: bool = False
    mask_tv: float = 1.0
    focus_share: float = 0.6  # single flips drawn from the 13 evaluated attributes
    # Relative odds of each of the 13 among those flips (missing ones: 1), for the attributes that lag
    focus_weights: dict[str, float] = field(default_factory=dict)
    shuffle_share: float = 0.3  # AttGAN shuffled-label targets
    # Share of the way from source to target the edit's changed entries move (model.losses.target_condition). The
    # service's calibrated gain sends up to 3 of the way (gain 4, condition limit 5: a flip from -1 capped at 5), far
    # past the 0.5-1.5 that segments 1-21 trained on, where its edits grew streaks and casts (README, chain row 22).
    target_scale: tuple[float, float] = (0.5, 1.5)
    seed: int = 0
    log_every: int = 50
    checkpoint_minutes: float = 15.0
    segment_minutes: float = 150.0
    preview_every: int = 1000
    train_limit: int | None = None  # use only the first N training images (smoke tests)
    channels_last: bool = True
    # Network passes in bfloat16 (torch.autocast; losses and weights stay float32): on this machine's AVX512-BF16
    # cores a generator step took ~0.6 of the float32 time.
    autocast_bf16: bool = False
    # The critic also judges decodes of new latents drawn as /v1/generate draws them, with another face's labels, at
    # this share of the adversarial weight: segments 1-10 trained the decoder only on the latents of real faces, and
    # new faces came out broken (doubled features) where reconstructions were whole.
    prior_realism_weight: float = 0.0
    prior_realism_batch: int = 16  # new latents per step (a decoder pass over the whole batch cost ~50% more time)
    # Share of images decoded without the encoder's skip features (model.skip_resolution), so that the decoder still
    # draws whole faces from a latent alone, as /v1/generate asks of it.
    skip_dropout: float = 0.5
    # The skip's input starts at zero in a model trained without it; at the chain's late learning rate (5e-5) it
    # barely moved in 300 steps, so it learns this many times faster than the rest.
    skip_lr_scale: float = 1.0
    pause_share: float = 0.0  # sleep this share of each step's time, leaving CPU to other work on a shared machine
    model: dict = field(default_factory=dict)  # CVAEConfig overrides
    critic: dict = field(default_factory=dict)  # CriticConfig overrides
    classifier: dict | None = None  # ClassifierConfig overrides; None: edits are read by the critic's head
    # A second frozen classifier of another design (cvae128_gan_seg16.json: 128 px, mean pooling); the edits'
    # classification loss is then the mean of both, so an edit must change what two different networks read, not one
    # network's blind spot.
    second_classifier: dict | None = None
    # Each classifier reads the edits through a random crop of classifier_view_scale..1 of the side, resized back
    # (one draw per batch): a pattern that moves one network's logits at one exact framing rarely survives it.
    classifier_view_scale: float = 1.0
    classifier_epochs: float = 2.0  # its training on real faces, before the generator's steps
    classifier_batch_size: int = 128
    classifier_lr: float = 2e-3

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir else DEFAULT_RUNS / self.name


def cast_floats(state_dict: dict, dtype: torch.dtype) -> dict:
    """A state dict with its floating-point tensors cast (half for the committed warm start, float to train)."""
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()}


@dataclass
class State:
    """Everything a checkpoint restores besides module and optimiser weights."""
    step: int = 0
    images_seen: int = 0
    train_seconds: float = 0.0
    cursor: int = 0
    order: np.ndarray | None = None
    segments: list[dict] = field(default_factory=list)  # the chain so far (model card: training.segments)


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 matmuls run natively on `device`: CUDA's own check; on a CPU the AVX512-BF16 or AMX flags
    (read from /proc/cpuinfo, so elsewhere than Linux the answer is no and training stays in float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class Trainer:
    def __init__(self, settings: TrainSettings, device: torch.device | None = None):
        self.settings = s = settings
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.type == "cuda":  # fixed input shapes: let cuDNN pick its fastest kernels, TF32 matmuls
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        # bfloat16 only where the hardware has it: emulated on an AVX2-only CPU, a step took ~25 times as long.
        self.use_bf16 = s.autocast_bf16 and native_bf16(self.device)
        if s.autocast_bf16 and not self.use_bf16:
            print(f"autocast_bf16 ignored: no native bfloat16 on this {self.device.type}; training in float32",
                  flush=True)
        torch.manual_seed(s.seed)
        self.config = CVAEConfig(**s.model)
        self.model = CVAE(self.config).to(self.device)
        self.critic = Critic(CriticConfig(image_size=self.config.image_size, **s.critic)).to(self.device)
        self.adversary = LatentAdversary(self.config).to(self.device)
        self.classifiers = [TrainingClassifier(ClassifierConfig(**c)).to(self.device)
                            for c in (s.classifier, s.second_classifier) if c is not None]
        self.classifiers_ready = [False] * len(self.classifiers)  # trained (here or in a loaded checkpoint), frozen
        if s.channels_last:
            self.model.to(memory_format=torch.channels_last)
            self.critic.to(memory_format=torch.channels_last)
        self.opt_g = torch.optim.Adam(self._generator_groups(), lr=s.lr, betas=tuple(s.betas))
        self.opt_d = torch.optim.Adam(self.critic.parameters(), lr=s.critic_lr, betas=tuple(s.betas))
        self.opt_a = torch.optim.Adam(self.adversary.parameters(), lr=1e-3)
        self.rng = np.random.default_rng(s.seed)
        self.state = State()
        self.focus = [CELEBA_ATTRIBUTES.index(a) for a in EDIT_EVAL_ATTRIBUTES]
        unknown = ((set(s.focus_weights) - set(EDIT_EVAL_ATTRIBUTES))
                   | (set(s.colour_attributes or ()) - set(CELEBA_ATTRIBUTES)))
        if unknown:
            raise ValueError(f"focus_weights or colour_attributes name unknown attributes: {sorted(unknown)}")
        self.focus_weights = (torch.tensor([float(s.focus_weights.get(a, 1.0)) for a in EDIT_EVAL_ATTRIBUTES])
                              if s.focus_weights else None)
        self.editable = [i for i, a in enumerate(CELEBA_ATTRIBUTES) if a not in NOT_EDITABLE]
        self.hair = torch.tensor([a in HAIR_ATTRIBUTES for a in CELEBA_ATTRIBUTES])
        colour = COLOUR_ATTRIBUTES if s.colour_attributes is None else frozenset(s.colour_attributes)
        self.colour = torch.tensor([a in colour for a in CELEBA_ATTRIBUTES])
        # running mean and spread of the batches' mean latents, for the preview's new faces
        self.latent_stats: tuple[torch.Tensor, torch.Tensor] | None = None

    def _generator_groups(self) -> list[dict]:
        """The generator's parameter groups: all of it at settings.lr, the skip's input (if any) at skip_lr_scale
        times that."""
        skip = self.model.decoder.skip_in
        if skip is None:
            return [{"params": list(self.model.parameters())}]
        skip_ids = {id(p) for p in skip.parameters()}
        rest = [p for p in self.model.parameters() if id(p) not in skip_ids]
        return [{"params": rest},
                {"params": list(skip.parameters()), "lr": self.settings.lr * self.settings.skip_lr_scale}]

    # ---- checkpoints -----------------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.settings.run_dir / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        st = self.state
        payload = {"model": self.model.state_dict(), "critic": self.critic.state_dict(),
                   "adversary": self.adversary.state_dict(), "opt_g": self.opt_g.state_dict(),
                   "opt_d": self.opt_d.state_dict(), "opt_a": self.opt_a.state_dict(),
                   "config": self.config.to_dict(), "critic_config": self.critic.config.to_dict(),
                   "settings": asdict(self.settings), "step": st.step, "images_seen": st.images_seen,
                   "train_seconds": st.train_seconds, "cursor": st.cursor, "order": st.order,
                   "segments": st.segments, "torch_rng": torch.get_rng_state(),
                   "numpy_rng": self.rng.bit_generator.state, **self._classifier_payload(torch.float32)}
        path = self.checkpoint_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(payload, tmp)
        tmp.replace(path)  # atomic: an interrupted save never corrupts the last good checkpoint
        print(f"checkpoint {path} at step {st.step} ({st.train_seconds / 60:.1f} min of training)", flush=True)

    def load_checkpoint(self, path: Path) -> None:
        ckpt = torch.load(path, map_location=self.device, weights_only=False)
        self.model.load_state_dict(ckpt["model"])
        self.critic.load_state_dict(ckpt["critic"])
        self.adversary.load_state_dict(ckpt["adversary"])
        self.opt_g.load_state_dict(ckpt["opt_g"])
        self.opt_d.load_state_dict(ckpt["opt_d"])
        self.opt_a.load_state_dict(ckpt["opt_a"])
        # An optimiser's state dict carries its learning rate; a segment's config may set a new one.
        for opt, groups in ((self.opt_g, self._generator_groups()), (self.opt_d, [{"lr": self.settings.critic_lr}])):
            for group, wanted in zip(opt.param_groups, groups):
                group["lr"] = wanted.get("lr", self.settings.lr)
        self.load_classifiers(ckpt)
        torch.set_rng_state(ckpt["torch_rng"].cpu())
        self.rng.bit_generator.state = ckpt["numpy_rng"]
        self.state = State(step=ckpt["step"], images_seen=ckpt["images_seen"], train_seconds=ckpt["train_seconds"],
                           cursor=ckpt["cursor"], order=ckpt["order"], segments=ckpt["segments"])
        print(f"resumed from {path} at step {self.state.step}", flush=True)

    def load_warm_start(self, path: Path) -> None:
        """Weights from a committed half-precision warm start; optimisers start fresh, the data order anew."""
        warm = torch.load(path, map_location=self.device, weights_only=False)
        for module, key in ((self.model, "model"), (self.critic, "critic"), (self.adversary, "adversary")):
            missing, unexpected = module.load_state_dict(cast_floats(warm[key], torch.float32), strict=False)
            # a warm start from before the skip (model.skip_resolution) lacks only its zero-initialised input
            if unexpected or any(not k.startswith("decoder.skip_in.") for k in missing):
                raise RuntimeError(f"{path}: {key} does not fit: missing {missing}, unexpected {unexpected}")
            if missing:
                print(f"warm start: {key} starts {missing} at zero (new since that step)", flush=True)
        self.load_classifiers(warm)
        self.state = State(step=warm["step"], images_seen=warm["images_seen"], train_seconds=warm["train_seconds"],
                           segments=warm["segments"])
        self.rng = np.random.default_rng(self.settings.seed + warm["step"])
        print(f"warm start from {path} at step {self.state.step} (fresh optimisers)", flush=True)

    def write_warm_start(self, path: Path) -> None:
        st = self.state
        payload = {"model": cast_floats(self.model.state_dict(), torch.float16),
                   "critic": cast_floats(self.critic.state_dict(), torch.float16),
                   "adversary": cast_floats(self.adversary.state_dict(), torch.float16),
                   "config": self.config.to_dict(), "critic_config": self.critic.config.to_dict(), "settings": asdict(self.settings),
                   "step": st.step, "images_seen": st.images_seen, "train_seconds": st.train_seconds,
                   "segments": st.segments, **self._classifier_payload(torch.float16)}
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, path)
        # Beside it, readable without torch: where the chain stands and the command that continues it.
        config = st.segments[-1].get("config") if st.segments else None
        sidecar = {"run": self.settings.name, "step": st.step, "images_seen": st.images_seen,
                   "train_minutes": round(st.train_seconds / 60, 1), "segments": st.segments,
                   "continue": f"python scripts/train.py --config {config} --resume"}
        path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
        print(f"warm start {path} ({path.stat().st_size / 1e6:.1f} MB) at step {st.step}", flush=True)

    @property
    def classifier(self) -> TrainingClassifier | None:
        """The first training classifier (the one every segment from 2 on has)."""
        return self.classifiers[0] if self.classifiers else None

    def _classifier_payload(self, dtype: torch.dtype) -> dict:
        payload = {}
        for key, clf, ready in zip(CLASSIFIER_KEYS, self.classifiers, self.classifiers_ready):
            if ready:
                payload |= {key: cast_floats(clf.state_dict(), dtype), f"{key}_config": clf.config.to_dict()}
        return payload

    def load_classifiers(self, saved: dict) -> None:
        """The saved training classifiers, each into the slot whose settings describe the same network (a classifier
        saved first may fill the second slot); a slot that none fits is trained anew at the segment's start."""
        found = [(ClassifierConfig(**saved[f"{key}_config"]), saved[key]) for key in CLASSIFIER_KEYS if key in saved]
        for i, clf in enumerate(self.classifiers):
            match = next((state for config, state in found if config == clf.config), None)
            if match is not None and not self.classifiers_ready[i]:
                clf.load_state_dict(cast_floats(match, torch.float32))
                freeze(clf)
                self.classifiers_ready[i] = True

    def _read_edits(self, fake: torch.Tensor) -> list[torch.Tensor]:
        """Every training classifier's logits (B, 40) on the edits, each through the same random view."""
        x = fake
        scale = self.settings.classifier_view_scale
        if scale < 1.0:
            size = fake.shape[-1]
            side = int(round(size * (scale + (1.0 - scale) * torch.rand(()).item())))
            top, left = (int(torch.randint(0, size - side + 1, ()).item()) for _ in range(2))
            x = torch.nn.functional.interpolate(fake[..., top:top + side, left:left + side], size=(size, size),
                                                mode="bilinear", align_corners=False, antialias=False)
        return [self._forward(clf, x) for clf in self.classifiers]

    def train_classifier(self, clf: TrainingClassifier, data, val) -> float:
        """Train a training classifier on real faces (train split), freeze it, and return its mean accuracy over
        the 40 attributes on `val`."""
        s = self.settings
        gen = torch.Generator().manual_seed(s.seed + 1)
        steps = int(s.classifier_epochs * len(data) / s.classifier_batch_size)
        opt = torch.optim.AdamW(clf.parameters(), lr=s.classifier_lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s.classifier_lr, total_steps=max(1, steps))
        clf.train()
        t0 = time.time()
        for i in range(steps):
            idx = np.sort(torch.randint(0, len(data), (s.classifier_batch_size,), generator=gen).numpy())
            x = to_tensor_batch(data.images[idx], self.device)
            if i % 2:
                x = x.flip(3)
            loss = attribute_loss(clf(x), torch.from_numpy(data.labels[idx]).to(self.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if (i + 1) % 100 == 0:
                print(f"classifier step {i + 1}/{steps} loss {loss.item():.4f} "
                      f"{(i + 1) * s.classifier_batch_size / (time.time() - t0):.0f} img/s", flush=True)
        freeze(clf)
        self.classifiers_ready[self.classifiers.index(clf)] = True
        with torch.no_grad():
            pred = clf(to_tensor_batch(val.images, self.device)) > 0
        accuracy = (pred.float() == torch.from_numpy(val.labels).to(self.device)).float().mean().item()
        print(f"classifier trained in {(time.time() - t0) / 60:.1f} min: val accuracy {accuracy:.4f} over 40 "
              f"({len(val)} faces); frozen", flush=True)
        return accuracy

    # ---- data ------------------------------------------------------------------------------------------------
    def next_batch(self, n_images: int) -> np.ndarray:
        st = self.state
        if st.order is None or st.cursor + self.settings.batch_size > len(st.order):
            st.order, st.cursor = self.rng.permutation(n_images), 0
        idx = np.sort(st.order[st.cursor:st.cursor + self.settings.batch_size])
        st.cursor += self.settings.batch_size
        return idx

    def _input(self, images: np.ndarray) -> torch.Tensor:
        x = to_tensor_batch(images, self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.settings.channels_last else x

    # ---- one step --------------------------------------------------------------------------------------------
    def step(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        s = self.settings
        target = edit_targets(labels.cpu(), self.focus, self.editable, focus_share=s.focus_share,
                              shuffle_share=s.shuffle_share, focus_weights=self.focus_weights).to(self.device)
        cond = labels_to_condition(labels)
        cond_target = target_condition(labels.cpu(), target.cpu(), scale_range=tuple(s.target_scale)).to(self.device)

        mu, logvar, head_logits, skip = self._forward(self.model.encoder.with_skip, x)
        self._track_latents(mu.detach())
        z = self.model.reparameterize(mu, logvar)
        skip = self._drop_skips(skip)
        # The edit pass decodes from a detached latent: edits teach the decoder, not the encoder.
        recon, edited, mask = self._forward(self._edit_pass, z, cond, cond_target, skip)
        fake = composite(x, recon.detach(), edited, mask)  # (B, 3, S, S)
        prior = self._forward(self._prior_decode, mu.detach(), labels) if s.prior_realism_weight > 0 else None

        # critic step
        real_scores, real_logits = self._forward(self.critic, translate(x))
        # The fake and the photo shifted together, so that the patch weights line up with the critic's patches.
        pair = translate(torch.cat([fake, x], dim=1))
        fake_in, x_in = pair[:, :3], pair[:, 3:]
        fake_scores, _ = self._forward(self.critic, fake_in.detach())
        weights = (changed_patch_weights(fake_in, x_in, fake_scores.shape[-2:]) if s.realism_where_changed
                   else None)
        d_adv = critic_hinge_loss(real_scores, fake_scores, weights)
        if s.realism_on_reconstruction:
            recon_in = translate(recon)
            d_adv = d_adv + critic_fake_hinge_loss(self._forward(self.critic, recon_in.detach())[0])
        if prior is not None:
            prior_in = translate(prior)
            d_adv = d_adv + s.prior_realism_weight * critic_fake_hinge_loss(
                self._forward(self.critic, prior_in.detach())[0])
        d_cls = attribute_loss(real_logits, labels)
        self.opt_d.zero_grad(set_to_none=True)
        (d_adv + s.critic_cls_weight * d_cls).backward()
        self.opt_d.step()

        # generator step
        rec = (recon - x).abs().mean()
        kld = kl_divergence(mu, logvar)
        head = attribute_loss(head_logits, labels)
        g_scores, g_logits = self._forward(self.critic, fake_in)
        cls_weights = changed_weights(labels, target, s.changed_weight)
        readings = self._read_edits(fake) if self.classifiers else [g_logits]
        g_cls = sum(edit_classification_loss(logits, target, cls_weights) for logits in readings) / len(readings)
        g_adv = generator_hinge_loss(g_scores, weights)
        if s.realism_on_reconstruction:
            g_adv = g_adv + generator_hinge_loss(self._forward(self.critic, recon_in)[0])
        if prior is not None:
            g_adv = g_adv + s.prior_realism_weight * generator_hinge_loss(self._forward(self.critic, prior_in)[0])
        pasted = mask * (edited - recon.detach())
        chroma = chroma_penalty(pasted, self._changed_scale(labels, target, self.colour, s.colour_chroma_scale))
        ripple = ripple_penalty(pasted) if s.ripple_weight > 0 else torch.zeros(())
        sparsity, tv = mask_penalties(mask, self._changed_scale(labels, target, self.hair,
                                                                s.hair_mask_sparsity_scale))
        ramp = min(1.0, self.state.step / max(1, s.fader_warmup))
        cls_scale = 1.0
        if s.cls_ramp is not None:
            first, last = s.cls_ramp
            cls_scale = min(1.0, max(0.0, (self.state.step - first) / max(1, last - first)))
        confusion = latent_confusion_loss(self.adversary, mu)
        loss = (s.rec_weight * rec + s.kl_weight * kld + s.attr_weight * head + s.fader_weight * ramp * confusion
                + s.adv_weight * g_adv + cls_scale * s.cls_weight * g_cls + s.mask_sparsity * sparsity + s.mask_tv * tv
                + s.chroma_weight * chroma + s.ripple_weight * ripple)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()

        # latent adversary step, after the encoder's: its loss read the adversary's current weights
        self.opt_a.zero_grad(set_to_none=True)
        adversary_loss(self.adversary, mu, labels).backward()
        self.opt_a.step()
        return {"rec": rec.item(), "kl": kld.item(), "head": head.item(), "conf": confusion.item(),
                "d_adv": d_adv.item(), "d_cls": d_cls.item(), "g_adv": g_adv.item(), "g_cls": g_cls.item(),
                "mask": sparsity.item(), "tv": tv.item(), "chroma": chroma.item(), "ripple": ripple.item()}

    def _track_latents(self, mu: torch.Tensor) -> None:
        batch = (mu.mean(0), mu.std(0))
        self.latent_stats = batch if self.latent_stats is None else tuple(
            0.99 * old + 0.01 * new for old, new in zip(self.latent_stats, batch))

    def _prior_decode(self, mu: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Decodes of new latents, drawn from a Gaussian fitted to the batch's mean latents (diagonal; the export
        fits a full covariance), each with another face's labels (the service: a row of the card's label bank)."""
        n = min(self.settings.prior_realism_batch, len(mu))
        z = mu.mean(0) + torch.randn(n, mu.shape[1], device=mu.device) * mu.std(0)
        others = labels[torch.randperm(len(labels), device=labels.device)[:n]]
        return self.model.decoder(z, labels_to_condition(others))[0]

    def _forward(self, module_call, *args):
        """module_call(*args), under bfloat16 autocast when settings.autocast_bf16 (and the hardware has it) with
        its outputs cast back to float32, so that every loss and the optimisers stay in float32."""
        if not self.use_bf16:
            return module_call(*args)
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            out = module_call(*args)
        return tuple(t.float() for t in out) if isinstance(out, tuple) else out.float()

    @staticmethod
    def _changed_scale(labels: torch.Tensor, target: torch.Tensor, group: torch.Tensor,
                       scale: float) -> torch.Tensor | None:
        """(B,) `scale` where the edit changes an attribute of `group` (a (40,) bool mask), 1 elsewhere; None for 1."""
        if scale == 1.0:
            return None
        changed = ((target.round() != labels) & group.to(labels.device)).any(dim=1)
        return torch.where(changed, scale, 1.0).to(labels.dtype)

    def _drop_skips(self, skip: torch.Tensor) -> torch.Tensor | None:
        """The skip features with a random skip_dropout share of the images' zeroed; None for a model without."""
        if not self.config.skip_resolution:
            return None
        keep = (torch.rand(skip.shape[0], 1, 1, 1, device=skip.device) >= self.settings.skip_dropout).to(skip.dtype)
        return skip * keep

    def _edit_pass(self, z: torch.Tensor, cond: torch.Tensor, cond_target: torch.Tensor,
                   skip: torch.Tensor | None = None):
        """model.edit with the reconstruction's latent (and skip features) kept attached (they train the encoder)
        and the edit's detached."""
        n = z.shape[0]
        skips = None if skip is None else torch.cat([skip, skip.detach()])
        images, features = self.model.decoder(torch.cat([z, z.detach()]), torch.cat([cond, cond_target]), skips)
        mask = self.model.mask_head(features[:n], features[n:])
        return images[:n], images[n:], mask

    # ---- the loop --------------------------------------------------------------------------------------------
    def run(self, *, command: str = "", config_file: str | None = None, commit: str | None = None) -> None:
        s = self.settings
        data = load_split(s.data_dir, "train", size=self.config.image_size, cache_dir=s.cache_dir,
                          limit=s.train_limit)
        preview = load_split(s.data_dir, "val", size=self.config.image_size, cache_dir=s.cache_dir, limit=8)
        n_params = sum(p.numel() for p in self.model.parameters()) / 1e6
        n_critic = sum(p.numel() for p in self.critic.parameters()) / 1e6
        print(f"{len(data)} training images, generator {n_params:.2f}M, critic {n_critic:.2f}M parameters, "
              f"on {self.device} ({torch.get_num_threads()} threads)", flush=True)
        classifier_note = {}
        untrained = [(key, clf) for key, clf, ready in zip(CLASSIFIER_KEYS, self.classifiers, self.classifiers_ready)
                     if not ready]
        if untrained:
            val = load_split(s.data_dir, "val", size=self.config.image_size, cache_dir=s.cache_dir, limit=256)
        for key, clf in untrained:
            classifier_note |= {f"{key}_trained": True,
                                f"{key}_val_accuracy_40": round(self.train_classifier(clf, data, val), 4)}
        segment = {**classifier_note, "index": len(self.state.segments) + 1, "config": config_file, "command": command,
                   "commit": commit, "start_step": self.state.step, "device": str(self.device), "torch": torch.__version__,
                   "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.state.segments.append(segment)
        t_segment = t_ckpt = t_log = time.time()
        seen_log = self.state.images_seen
        # SIGTERM or Ctrl-C ends the segment after the current step, as reaching segment_minutes does (checkpoint,
        # then the caller writes the warm start), instead of losing the steps since the last checkpoint.
        stop_requested = []
        previous_handlers = {sig: signal.signal(sig, lambda *_: stop_requested.append(True))
                             for sig in (signal.SIGTERM, signal.SIGINT)}
        self.model.train()
        while self.state.step < s.steps:
            idx = self.next_batch(len(data))
            x = self._input(data.images[idx])
            labels = torch.from_numpy(data.labels[idx]).to(self.device)
            if torch.rand(()) < 0.5:  # horizontal flip: CelebA attributes are mirror-symmetric
                x = x.flip(3)
            t0 = time.time()
            losses = self.step(x, labels)
            self.state.step += 1
            self.state.images_seen += len(idx)
            step_seconds = time.time() - t0
            self.state.train_seconds += step_seconds
            if s.pause_share > 0:
                time.sleep(s.pause_share * step_seconds)
            segment.update(end_step=self.state.step, minutes=round((time.time() - t_segment) / 60, 1))

            now = time.time()
            if self.state.step % s.log_every == 0:
                rate = (self.state.images_seen - seen_log) / (now - t_log)
                t_log, seen_log = now, self.state.images_seen
                print(f"step {self.state.step}/{s.steps} " + " ".join(f"{k} {v:.3f}" for k, v in losses.items())
                      + f" {rate:.1f} img/s", flush=True)
            if self.state.step % s.preview_every == 0:
                self.save_preview(preview)
            segment_over = now - t_segment >= s.segment_minutes * 60 or bool(stop_requested)
            if now - t_ckpt >= s.checkpoint_minutes * 60 or segment_over or self.state.step == s.steps:
                self.save_checkpoint()
                t_ckpt = now
            if segment_over:
                print(f"segment {segment['index']} over after {segment['minutes']} min", flush=True)
                break
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        if self.state.step == s.steps:
            self.save_checkpoint()
        self.save_preview(preview)

    @torch.no_grad()
    def save_preview(self, preview) -> None:
        self.model.eval()
        x = self._input(preview.images)
        labels = torch.from_numpy(preview.labels).to(self.device)
        cols = edit_columns(self.model, x, labels, [CELEBA_ATTRIBUTES.index(a) for a in PREVIEW_ATTRIBUTES])
        if self.latent_stats is not None:  # last column: new faces, the same latents in every preview
            mean, spread = self.latent_stats
            eps = torch.randn(len(x), len(mean), generator=torch.Generator().manual_seed(0)).to(self.device)
            cols.append(self.model.decode(mean + eps * spread, labels_to_condition(labels.roll(1, 0))))
        save_grid(cols, self.settings.run_dir / f"preview_{self.state.step:06d}.png")
        self.model.train()


def load_settings(config_file: str | None, overrides: dict) -> TrainSettings:
    values = json.loads(Path(config_file).read_text()) if config_file else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainSettings(**values)
