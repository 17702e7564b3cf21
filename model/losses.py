"""Training losses for the CVAE v2 and its critic."""

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from model.attribute_rules import set_attribute
from model.cvae import LatentAdversary


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(q(z|x) || N(0, I)) summed over latent dimensions, mean over the batch. Appendix B of Kingma & Welling,
    "Auto-Encoding Variational Bayes" (2014), as in pytorch/examples vae/main.py."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / mu.shape[0]


def attribute_loss(logits: Tensor, labels01: Tensor) -> Tensor:
    """Binary cross-entropy, mean over attributes and batch."""
    return F.binary_cross_entropy_with_logits(logits, labels01)


def edit_targets(labels01: Tensor, focus: list[int], editable: list[int], *, focus_share: float,
                 shuffle_share: float, generator: torch.Generator | None = None,
                 focus_weights: Tensor | None = None) -> Tensor:
    """Target attributes for the edit pass, a mix of:
    - one attribute flipped (plus what that implies, see model/attribute_rules), drawn from `focus` (the 13 the
      evaluation measures) with probability focus_share (in proportion to focus_weights, else uniformly), else
      from all `editable`;
    - with probability shuffle_share, another face's labels (AttGAN's shuffled targets: several changes at once),
      keeping the non-editable attributes."""
    n = labels01.shape[0]
    from_focus = torch.rand(n, generator=generator) < focus_share
    if focus_weights is None:
        pick_focus = torch.tensor(focus)[torch.randint(0, len(focus), (n,), generator=generator)]
    else:
        pick_focus = torch.tensor(focus)[torch.multinomial(focus_weights, n, replacement=True, generator=generator)]
    pick_any = torch.tensor(editable)[torch.randint(0, len(editable), (n,), generator=generator)]
    attribute = torch.where(from_focus, pick_focus, pick_any).to(labels01.device)
    rows = torch.arange(n, device=labels01.device)
    single = set_attribute(labels01, rows, attribute, 1.0 - labels01[rows, attribute])
    shuffled = labels01[torch.randperm(n, generator=generator)].clone()
    fixed = [i for i in range(labels01.shape[1]) if i not in editable]
    shuffled[:, fixed] = labels01[:, fixed]
    use_shuffled = (torch.rand(n, generator=generator) < shuffle_share)[:, None]
    return torch.where(use_shuffled, shuffled, single)


def target_condition(labels01: Tensor, target01: Tensor, generator: torch.Generator | None = None,
                     scale_range: tuple[float, float] = (0.5, 1.5)) -> Tensor:
    """The decoder's condition for the edit: changed entries moved a random share in `scale_range` of the way from
    the source to the target (AttGAN's thres_int sampling; one share per image), so that the conditions the service
    sends are edits the decoder has seen. Unchanged entries stay at +-1."""
    low, high = scale_range
    source, target = labels01 * 2 - 1, target01 * 2 - 1
    scale = low + (high - low) * torch.rand(labels01.shape[0], 1, generator=generator).to(labels01.device)
    return source + scale * (target - source)


def changed_weights(labels01: Tensor, target01: Tensor, changed_weight: float) -> Tensor:
    """Per-entry weights for the classification of edits: the changed attributes weigh changed_weight, the rest 1."""
    return 1.0 + (changed_weight - 1.0) * (labels01 != target01).float()


def edit_classification_loss(logits: Tensor, target01: Tensor, weights: Tensor) -> Tensor:
    """The critic's attribute head on edited images should read the target attributes (AttGAN's L_cls_g)."""
    bce = F.binary_cross_entropy_with_logits(logits, target01, reduction="none")
    return (bce * weights).sum(1).mean() / weights.shape[1]


def critic_fake_hinge_loss(fake_scores: Tensor, fake_weights: Tensor | None = None) -> Tensor:
    """The critic's hinge term for images it should call fake (per-patch weights optional)."""
    fake = F.relu(1.0 + fake_scores)
    return fake.mean() if fake_weights is None else (fake * fake_weights).mean()


def critic_hinge_loss(real_scores: Tensor, fake_scores: Tensor, fake_weights: Tensor | None = None) -> Tensor:
    return F.relu(1.0 - real_scores).mean() + critic_fake_hinge_loss(fake_scores, fake_weights)


def generator_hinge_loss(fake_scores: Tensor, fake_weights: Tensor | None = None) -> Tensor:
    return -(fake_scores.mean() if fake_weights is None else (fake_scores * fake_weights).mean())


def changed_patch_weights(fake: Tensor, x: Tensor, patches: tuple[int, int]) -> Tensor:
    """(B, 1, h, w) weights of the critic's patches, proportional to how much the edit changed each one (mean 1
    over the batch, detached). A composited edit is the real photo outside the few patches it touches: judged
    uniformly, those identical patches drown the edited ones (segments 2-3: teal bands across the eyes passed)."""
    change = F.adaptive_avg_pool2d((fake - x).abs().mean(dim=1, keepdim=True), patches).detach()
    return change / change.mean().clamp_min(1e-6)


def chroma_penalty(change: Tensor, sample_weights: Tensor | None = None) -> Tensor:
    """Mean absolute colour part of a change (B, 3, H, W): what is left after taking out its grey (luminance-like)
    part. Most attribute edits change lightness and shape (glasses, beards, smiles, bangs); a strong pure colour
    shift is how an edit fools a classifier without drawing the attribute (teal bands in segments 2-3).
    sample_weights (B,) scale each image's penalty (hair colour must be allowed to change colour)."""
    colour = (change - change.mean(dim=1, keepdim=True)).abs()
    if sample_weights is None:
        return colour.mean()
    return (colour.mean(dim=(1, 2, 3)) * sample_weights).mean()


def ripple_penalty(change: Tensor) -> Tensor:
    """Mean absolute second difference of a change (B, C, H, W), down the rows and along the columns: zero for a
    flat or linearly graded change, large for stripes. At the service's +-6 condition the decoder drew moustaches,
    beards and glasses as bands of dark and light rows across the whole face (README, "Where the streaks come
    from"); an edge of a real moustache or frame costs once, a stack of bands costs at every row."""
    rows = (change[:, :, 2:, :] - 2 * change[:, :, 1:-1, :] + change[:, :, :-2, :]).abs().mean()
    cols = (change[:, :, :, 2:] - 2 * change[:, :, :, 1:-1] + change[:, :, :, :-2]).abs().mean()
    return rows + cols


def mask_penalties(mask: Tensor, sample_weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """GANimation's mask terms: sparsity (mean of M, so the edit stays where it must) and total variation (mean
    absolute difference of neighbours, so the mask is smooth). sample_weights (B,) scale each image's sparsity."""
    tv = (mask[:, :, 1:, :] - mask[:, :, :-1, :]).abs().mean() + (mask[:, :, :, 1:] - mask[:, :, :, :-1]).abs().mean()
    if sample_weights is None:
        return mask.mean(), tv
    return (mask.mean(dim=(1, 2, 3)) * sample_weights).mean(), tv


def adversary_loss(adversary: LatentAdversary, mu: Tensor, labels01: Tensor) -> Tensor:
    """The latent adversary's own loss: predict the attributes from the (detached) latent."""
    return attribute_loss(adversary(mu.detach()), labels01)


def latent_confusion_loss(adversary: LatentAdversary, mu: Tensor) -> Tensor:
    """The encoder's side: push the adversary's predictions to 0.5 (no information; Tzeng et al. 2015's
    confusion target, steadier than Fader Networks' flipped labels). The adversary's weights are detached."""
    frozen = {name: p.detach() for name, p in adversary.named_parameters()}
    logits = functional_call(adversary, frozen, (mu,))
    return attribute_loss(logits, torch.full_like(logits, 0.5))
