"""Training losses for the CVAE."""

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from model.attribute_rules import set_attribute
from model.cvae import CVAE, LatentAdversary, labels_to_condition


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


def edit_targets(labels01: Tensor, focus: list[int], editable: list[int], focus_share: float,
                 generator: torch.Generator | None = None) -> Tensor:
    """Each row with one attribute flipped (plus what that implies, see model/attribute_rules): drawn from
    `focus` (the attributes the evaluation measures) with probability `focus_share`, else from all `editable`."""
    n = labels01.shape[0]
    from_focus = torch.rand(n, generator=generator) < focus_share
    pick_focus = torch.tensor(focus)[torch.randint(0, len(focus), (n,), generator=generator)]
    pick_any = torch.tensor(editable)[torch.randint(0, len(editable), (n,), generator=generator)]
    attribute = torch.where(from_focus, pick_focus, pick_any).to(labels01.device)
    rows = torch.arange(n, device=labels01.device)
    return set_attribute(labels01, rows, attribute, 1.0 - labels01[rows, attribute])


def adversary_loss(adversary: LatentAdversary, mu: Tensor, labels01: Tensor) -> Tensor:
    """The latent adversary's own loss: predict the attributes from the (detached) latent."""
    return attribute_loss(adversary(mu.detach()), labels01)


def latent_confusion_loss(adversary: LatentAdversary, mu: Tensor) -> Tensor:
    """The encoder's side: push the adversary's predictions to 0.5 (no information; Tzeng et al. 2015's
    confusion target, steadier than Fader Networks' flipped labels). The adversary's weights are detached."""
    frozen = {name: p.detach() for name, p in adversary.named_parameters()}
    logits = functional_call(adversary, frozen, (mu,))
    return attribute_loss(logits, torch.full_like(logits, 0.5))


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Each channel blurred by a Gaussian of `sigma` pixels (kernel 2 * ceil(2 sigma) + 1, reflected borders)."""
    radius = max(1, int(math.ceil(2 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-t**2 / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def edit_classification_loss(model: CVAE, mu: Tensor, target01: Tensor, x: Tensor | None = None,
                             labels01: Tensor | None = None, residual_blur: float = 0.0) -> Tensor:
    """AttGAN-style loss (He et al., "AttGAN", 2019): decode under edited attributes and ask the model's own
    attribute head to see them. The head's weights are detached here, so only the decoder learns from it
    (the head cannot be bent into agreeing with the decoder).

    Given the input x and its labels, the head also judges what the service returns: the residual edit
    x + D(mu, a') - D(mu, a), whose unchanged sharp pixels can hide an edit that the raw decode shows.
    residual_blur (sigma, pixels) low-passes the residual first: judged sharp, the decoder learns coloured
    high-frequency speckle that classifiers read as the attribute and people do not."""
    edited = model.decode(mu.detach(), labels_to_condition(target01))
    frozen = {name: p.detach() for name, p in model.encoder.named_parameters()}
    _, _, logits = functional_call(model.encoder, frozen, (edited,))
    loss = attribute_loss(logits, target01)
    if x is None or labels01 is None:
        return loss
    base = model.decode(mu.detach(), labels_to_condition(labels01)).detach()
    residual = edited - base if residual_blur <= 0 else gaussian_blur(edited - base, residual_blur)
    _, _, logits = functional_call(model.encoder, frozen, ((x + residual).clamp(-1, 1),))
    return (loss + attribute_loss(logits, target01)) / 2
