"""Metrics of a trained CVAE on a CelebA split: attribute-head accuracy and reconstruction quality."""


import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from model.cvae import CVAE, composite, labels_to_condition
from model.data import CelebASplit, to_tensor_batch


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """Per-image PSNR in dB of images in [-1, 1] (measured on the [0, 1] scale)."""
    mse = ((a - b) / 2).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def ssim(a: Tensor, b: Tensor) -> Tensor:
    """Per-image SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5) on [0, 1] images, averaged over RGB."""
    a, b = (a + 1) / 2, (b + 1) / 2
    coords = torch.arange(11, dtype=a.dtype) - 5
    g = torch.exp(-coords**2 / (2 * 1.5**2))
    g = (g / g.sum())
    window = (g[:, None] * g[None, :]).expand(3, 1, 11, 11).contiguous()  # (3, 1, 11, 11) depthwise

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, window, groups=3)

    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)


@torch.inference_mode()
def reconstruction_and_attribute_metrics(model: CVAE, split: CelebASplit, batch_size: int = 256) -> dict:
    """PSNR/SSIM of D(mu, a_true) against the input, and the attribute head's accuracy (per attribute, mean)."""
    psnrs, ssims, correct = [], [], np.zeros(split.labels.shape[1])
    for start in range(0, len(split), batch_size):
        x = to_tensor_batch(split.images[start:start + batch_size])
        labels = torch.from_numpy(split.labels[start:start + batch_size])
        mu, _, logits = model.encode(x)
        recon = model.decode(mu, labels_to_condition(labels))
        psnrs.append(psnr(recon, x))
        ssims.append(ssim(recon, x))
        correct += ((logits > 0).float() == labels).float().sum(0).numpy()
    per_attr = correct / len(split)
    return {
        "psnr_db": round(float(torch.cat(psnrs).mean()), 3),
        "ssim": round(float(torch.cat(ssims).mean()), 4),
        "attribute_accuracy_mean": round(float(per_attr.mean()), 4),
        "attribute_accuracy": per_attr,
        "num_images": len(split),
    }




# The service caps the decoder's condition at this magnitude (CONDITION_LIMIT in handler/editor.py, which cannot
# import model/); calibration must apply the same cap to measure what the service does.
SERVICE_CONDITION_LIMIT = 3.0


@torch.inference_mode()
def edit_flip_rate(model: CVAE, split: CelebASplit, attribute_indices: list[int], gain: float,
                   batch_size: int = 256) -> dict[int, float]:
    """Share of single-attribute edits that the model's own attribute head sees flipped, measured on the masked
    edit the service applies (x + M * (D(mu, a') - D(mu, a))), with a = the head's prediction and
    a' = a + gain * (target - a). Used to calibrate the service's edit gain; the independent judges of the
    AttGAN/STGAN protocol are a separate, stricter measurement and are never used for it."""
    model.eval()
    hits = {i: 0 for i in attribute_indices}
    for start in range(0, len(split), batch_size):
        x = to_tensor_batch(split.images[start:start + batch_size])
        mu, _, logits = model.encode(x)
        probs = torch.sigmoid(logits)
        for i in attribute_indices:
            present = probs[:, i] > 0.5
            edited = probs.clone()
            edited[:, i] = probs[:, i] + gain * ((~present).float() - probs[:, i])
            target = labels_to_condition(edited).clamp(-SERVICE_CONDITION_LIMIT, SERVICE_CONDITION_LIMIT)
            out = composite(x, *model.edit(mu, labels_to_condition(probs), target)).clamp(-1, 1)
            _, _, new_logits = model.encode(out)
            hits[i] += int(((new_logits[:, i] > 0) != present).sum())
    return {i: h / len(split) for i, h in hits.items()}
