"""The CVAE: output shapes, finite losses, one training step, and a TorchScript export matching eager output."""

import json

import pytest
import torch

from model.attributes import NUM_ATTRIBUTES
from model.cvae import CVAE, CVAEConfig, labels_to_condition
from model.export import ARTIFACT_FILE, CARD_FILE, export_torchscript
from model.losses import attribute_loss, edit_classification_loss, flip_one_attribute, vae_loss

CONFIG = CVAEConfig(image_size=64, latent_dim=16, base_channels=8)


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
        edit = edit_classification_loss(model, mu, flip_one_attribute(labels))
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
    edit_classification_loss(model, mu, flip_one_attribute(labels)).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())


def test_flip_one_attribute_changes_exactly_one():
    _, labels = batch(16)
    flipped = flip_one_attribute(labels)
    assert ((flipped != labels).sum(1) == 1).all()


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
