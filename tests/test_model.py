"""The CVAE: output shapes, finite losses, one training step, and a TorchScript export matching eager output."""

import json

import pytest
import torch

from model.attribute_rules import HAIR_COLOURS, flip
from model.attributes import CELEBA_ATTRIBUTES, EDIT_EVAL_ATTRIBUTES, NUM_ATTRIBUTES
from model.cvae import CVAE, CVAEConfig, LatentAdversary, labels_to_condition
from model.export import ARTIFACT_FILE, CARD_FILE, export_torchscript, fit_latent_prior
from model.losses import (adversary_loss, attribute_loss, edit_classification_loss, edit_targets, gaussian_blur,
                          latent_confusion_loss, vae_loss)

CONFIG = CVAEConfig(image_size=64, latent_dim=16, base_channels=8)
FOCUS = [CELEBA_ATTRIBUTES.index(a) for a in EDIT_EVAL_ATTRIBUTES]
EDITABLE = list(range(NUM_ATTRIBUTES))


def flip_some(labels):
    return edit_targets(labels, FOCUS, EDITABLE, focus_share=0.5, generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def model() -> CVAE:
    torch.manual_seed(0)
    return CVAE(CONFIG).eval()


def batch(n: int = 4):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 3, 64, 64, generator=g) * 2 - 1
    labels = (torch.rand(n, NUM_ATTRIBUTES, generator=g) > 0.5).float()
    return x, labels


def test_shapes(model):
    x, labels = batch()
    mu, logvar, logits = model.encode(x)
    assert mu.shape == logvar.shape == (4, CONFIG.latent_dim)
    assert logits.shape == (4, NUM_ATTRIBUTES)
    out = model.decode(mu, labels_to_condition(labels))
    assert out.shape == x.shape
    assert out.abs().max() <= 1.0


def test_losses_finite_and_a_step_reduces_them():
    torch.manual_seed(0)
    model = CVAE(CONFIG)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, labels = batch(8)

    def total():
        recon, mu, logvar, logits = model(x, labels_to_condition(labels))
        rec, kld = vae_loss(recon, x, mu, logvar, beta=1.0)
        edit = edit_classification_loss(model, mu, flip_some(labels))
        return rec + kld + attribute_loss(logits, labels) + edit

    first = total()
    assert torch.isfinite(first)
    for _ in range(5):
        opt.zero_grad()
        loss = total()
        loss.backward()
        opt.step()
    assert total().item() < first.item()


def test_edit_loss_leaves_encoder_gradients_alone(model):
    x, labels = batch()
    mu, _, _ = model.encode(x)
    model.zero_grad()
    edit_classification_loss(model, mu, flip_some(labels)).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())


def test_edit_targets_flip_one_attribute_plus_what_it_implies():
    _, labels = batch(64)
    flipped = flip_some(labels)
    changed = (flipped != labels).sum(1)
    assert (changed >= 1).all()
    assert (changed <= 4).all()  # a hair colour turned on also turns off the other three
    assert (flipped[:, FOCUS] != labels[:, FOCUS]).any(1).float().mean() > 0.3


def test_turning_on_a_hair_colour_turns_off_the_others():
    labels = torch.zeros(2, NUM_ATTRIBUTES)
    brown, black = CELEBA_ATTRIBUTES.index("Brown_Hair"), CELEBA_ATTRIBUTES.index("Black_Hair")
    labels[:, brown] = 1.0
    out = flip(labels, black)
    assert (out[:, black] == 1).all() and (out[:, brown] == 0).all()
    assert (out.sum(1) == 1).all()
    assert set(HAIR_COLOURS) <= set(CELEBA_ATTRIBUTES)


def test_latent_adversary_losses():
    torch.manual_seed(0)
    adversary = LatentAdversary(CONFIG)
    mu = torch.randn(8, CONFIG.latent_dim, requires_grad=True)
    _, labels = batch(8)
    adversary_loss(adversary, mu, labels).backward()
    assert mu.grad is None  # the adversary learns from a detached latent
    assert all(p.grad is not None for p in adversary.parameters())
    adversary.zero_grad()
    latent_confusion_loss(adversary, mu).backward()
    assert mu.grad.abs().sum() > 0  # ...while the encoder is pushed towards confusing it
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in adversary.parameters())


def test_torchscript_round_trip_matches_eager(model, tmp_path):
    path = export_torchscript(model, tmp_path, {"version": "test", "attributes": [], "resolution": 64})
    assert path.name == ARTIFACT_FILE
    card = json.loads((tmp_path / CARD_FILE).read_text())
    assert card["artifact"]["format"] == "torchscript"

    from handler.artifact import load_model  # the service's loader reads what export wrote
    loaded = load_model(tmp_path)
    x, labels = batch()
    with torch.inference_mode():
        mu, logvar, logits = model.encode(x)
        mu2, logvar2, logits2 = loaded.module(x)
        cond = labels_to_condition(labels)
        torch.testing.assert_close(mu2, mu)
        torch.testing.assert_close(logvar2, logvar)
        torch.testing.assert_close(logits2, logits)
        torch.testing.assert_close(loaded.module.decode(mu, cond), model.decode(mu, cond))
        eps = torch.randn(3, CONFIG.latent_dim)
        torch.testing.assert_close(loaded.module.sample_latent(eps), eps)  # without a fitted prior: N(0, I)


def test_latent_prior_is_fitted_to_real_latents_and_exported(model, tmp_path):
    """New faces are drawn from a Gaussian fitted to the encoder's latents of faces, not from N(0, I)."""
    x = torch.rand(64, 3, 64, 64) * 2 - 1
    mean, scale = fit_latent_prior(model, x)
    with torch.inference_mode():
        mus = model.encode(x)[0]
    torch.testing.assert_close(mean, mus.mean(0))
    torch.testing.assert_close(scale @ scale.T, torch.cov(mus.T) + 1e-5 * torch.eye(CONFIG.latent_dim))

    export_torchscript(model, tmp_path, {"version": "test", "attributes": [], "resolution": 64}, (mean, scale))
    from handler.artifact import load_model
    eps = torch.randn(5, CONFIG.latent_dim)
    torch.testing.assert_close(load_model(tmp_path).module.sample_latent(eps), mean + eps @ scale.T)


def test_gaussian_blur_keeps_smooth_changes_and_removes_speckle():
    smooth = torch.linspace(-1, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64).contiguous()
    speckle = torch.ones(1, 3, 64, 64)
    speckle[..., ::2, ::2] = -1
    torch.testing.assert_close(gaussian_blur(smooth, 1.5)[..., 8:-8], smooth[..., 8:-8], atol=1e-4, rtol=0)
    assert gaussian_blur(speckle, 1.5).std() < 0.05 * speckle.std()
