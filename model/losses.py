"""Training losses for the CVAE."""

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from model.cvae import CVAE, labels_to_condition


def vae_loss(recon: Tensor, x: Tensor, mu: Tensor, logvar: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """Reconstruction (summed squared error per image) and KL divergence to N(0, I), both per-image means.

    The KL term is Appendix B of Kingma & Welling, "Auto-Encoding Variational Bayes" (2014), as in
    pytorch/examples vae/main.py.
    """
    rec = F.mse_loss(recon, x, reduction="sum") / x.shape[0]
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / x.shape[0]
    return rec, beta * kld


def attribute_loss(logits: Tensor, labels01: Tensor) -> Tensor:
    """Binary cross-entropy of the encoder's attribute head, summed over the 40 attributes."""
    return F.binary_cross_entropy_with_logits(logits, labels01, reduction="sum") / logits.shape[0]


def flip_one_attribute(labels01: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Each row with one randomly chosen attribute flipped: the single-attribute edit the service performs."""
    idx = torch.randint(0, labels01.shape[1], (labels01.shape[0],), generator=generator)
    flipped = labels01.clone()
    rows = torch.arange(labels01.shape[0])
    flipped[rows, idx] = 1.0 - flipped[rows, idx]
    return flipped


def edit_classification_loss(model: CVAE, mu: Tensor, target01: Tensor) -> Tensor:
    """AttGAN-style loss (He et al., "AttGAN", 2019): decode under edited attributes and ask the model's own
    attribute head to see them. The head's weights are detached here, so only the decoder learns from it
    (the head cannot be bent into agreeing with the decoder)."""
    edited = model.decode(mu.detach(), labels_to_condition(target01))
    frozen = {name: p.detach() for name, p in model.encoder.named_parameters()}
    _, _, logits = functional_call(model.encoder, frozen, (edited,))
    return attribute_loss(logits, target01)
