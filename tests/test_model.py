"""The CVAE v2 and its critic: output shapes, mask range, finite losses, one training step, and a TorchScript
export matching eager output (encode, decode, edit with its mask)."""

import json

import pytest
import torch

from model.attribute_rules import HAIR_COLOURS, flip
from model.attributes import CELEBA_ATTRIBUTES, COLOUR_ATTRIBUTES, EDIT_EVAL_ATTRIBUTES, NUM_ATTRIBUTES
from model.classifier import freeze
from model.critic import Critic, CriticConfig, translate
from model.cvae import CVAE, CVAEConfig, LatentAdversary, _Up, composite, labels_to_condition
from model.export import ARTIFACT_FILE, CARD_FILE, SubpixelUp, export_torchscript, fit_latent_prior, serving_decoder
from model.losses import (adversary_loss, changed_patch_weights, chroma_penalty, critic_hinge_loss, edit_targets,
                          generator_hinge_loss, latent_confusion_loss, mask_penalties, ripple_penalty,
                          target_condition)
from model.train import Trainer, TrainSettings

SIZE = 64
CONFIG = CVAEConfig(image_size=SIZE, latent_dim=16, channels=[8, 8, 16, 16], mask_channels=4)
FOCUS = [CELEBA_ATTRIBUTES.index(a) for a in EDIT_EVAL_ATTRIBUTES]
EDITABLE = list(range(NUM_ATTRIBUTES))


def flip_some(labels, shuffle_share=0.0):
    return edit_targets(labels, FOCUS, EDITABLE, focus_share=0.5, shuffle_share=shuffle_share,
                        generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def model() -> CVAE:
    torch.manual_seed(0)
    return CVAE(CONFIG).eval()


def batch(n: int = 4):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 3, SIZE, SIZE, generator=g) * 2 - 1
    labels = (torch.rand(n, NUM_ATTRIBUTES, generator=g) > 0.5).float()
    return x, labels


def test_shapes_and_mask_range(model):
    x, labels = batch()
    mu, logvar, logits = model.encode(x)
    assert mu.shape == logvar.shape == (4, CONFIG.latent_dim)
    assert logits.shape == (4, NUM_ATTRIBUTES)
    cond = labels_to_condition(labels)
    out = model.decode(mu, cond)
    assert out.shape == x.shape and out.abs().max() <= 1.0
    base, edited, mask = model.edit(mu, cond, labels_to_condition(flip_some(labels)))
    assert base.shape == edited.shape == x.shape and mask.shape == (4, 1, SIZE, SIZE)
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    torch.testing.assert_close(base, out)  # the edit's first decode is the reconstruction


def test_no_transposed_convolutions(model):
    """Upsampling is resize + convolution: transposed stride-2 convolutions paint a checkerboard."""
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules())


def test_composite_leaves_unmasked_pixels_alone():
    x, base, edited = torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1.0
    out = composite(x, base, edited, mask)
    assert (out[..., 2:, :] == 0).all() and (out[..., :2, :] == 1).all()


def test_critic_shapes_and_translation():
    critic = Critic(CriticConfig(image_size=SIZE, channels=[8, 16, 16, 32]))
    x, _ = batch()
    scores, logits = critic(translate(x))
    assert scores.shape == (4, 1, SIZE // 16, SIZE // 16) and logits.shape == (4, NUM_ATTRIBUTES)
    assert translate(x).shape == x.shape
    assert torch.isfinite(critic_hinge_loss(scores, -scores))


def test_a_training_step_gives_finite_losses():
    torch.manual_seed(0)
    trainer = Trainer(TrainSettings(model=CONFIG.to_dict(), critic={"channels": [8, 16, 16, 32]}),
                      device=torch.device("cpu"))
    x, labels = batch(8)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    losses = trainer.step(x.contiguous(memory_format=torch.channels_last), labels)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values()), losses
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))


def test_bfloat16_autocast_only_where_native_and_its_outputs_come_back_float32(monkeypatch):
    import model.train as train_module

    settings = TrainSettings(model=CONFIG.to_dict(), critic={"channels": [8, 16, 16, 32]}, autocast_bf16=True)
    monkeypatch.setattr(train_module, "native_bf16", lambda device: False)  # an AVX2-only CPU: emulated, ~25x slower
    assert not Trainer(settings, device=torch.device("cpu")).use_bf16
    monkeypatch.setattr(train_module, "native_bf16", lambda device: True)
    trainer = Trainer(settings, device=torch.device("cpu"))
    assert trainer.use_bf16
    x, labels = batch(4)
    mu, logvar, logits = trainer._forward(trainer.model.encode, x)
    assert mu.dtype == logvar.dtype == logits.dtype == torch.float32
    assert isinstance(train_module.native_bf16(torch.device("cpu")), bool)


def test_edit_targets_mix_single_flips_and_shuffled_labels():
    _, labels = batch(64)
    flipped = flip_some(labels)
    changed = (flipped != labels).sum(1)
    assert (changed >= 1).all() and (changed <= 4).all()  # a hair colour turned on also turns off the other three
    assert (flipped[:, FOCUS] != labels[:, FOCUS]).any(1).float().mean() > 0.3
    shuffled = flip_some(labels, shuffle_share=1.0)
    assert ((shuffled != labels).sum(1) > 4).float().mean() > 0.5


def test_target_condition_moves_changed_entries_only():
    _, labels = batch(16)
    target = flip_some(labels)
    cond = target_condition(labels, target)
    same = labels == target
    assert torch.equal(cond[same], labels_to_condition(labels)[same])
    moved = (cond - labels_to_condition(labels))[~same].abs()
    assert (moved >= 1.0 - 1e-6).all() and (moved <= 3.0 + 1e-6).all()  # 0.5..1.5 of a change of 2
    far = (target_condition(labels, target, scale_range=(2.0, 3.0)) - labels_to_condition(labels))[~same].abs()
    assert (far >= 4.0 - 1e-6).all() and (far <= 6.0 + 1e-6).all()  # the service's gain-4 conditions reach 6


def test_a_step_with_the_classifier_and_segment_4_losses_trains_the_generator_only():
    torch.manual_seed(0)
    trainer = Trainer(TrainSettings(model=CONFIG.to_dict(), critic={"channels": [8, 16, 16, 32]},
                                    classifier={"channels": [8, 16, 16, 32]}, realism_where_changed=True,
                                    realism_on_reconstruction=True,
                                    chroma_weight=50.0), device=torch.device("cpu"))
    freeze(trainer.classifier)
    trainer.classifiers_ready = [True]
    frozen = [t.detach().clone() for t in trainer.classifier.state_dict().values()]
    x, labels = batch(8)
    losses = trainer.step(x.contiguous(memory_format=torch.channels_last), labels)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values()) and losses["chroma"] >= 0, losses
    assert all(torch.equal(a, b) for a, b in zip(frozen, trainer.classifier.state_dict().values()))  # untouched


def test_realism_weights_follow_the_change_and_chroma_ignores_grey_changes():
    x = torch.zeros(2, 3, 32, 32)
    fake = x.clone()
    fake[:, :, :8, :8] = 0.5  # the edit touched one corner patch of 4x4
    w = changed_patch_weights(fake, x, (4, 4))
    assert w.shape == (2, 1, 4, 4) and w[:, :, 0, 0].min() > 1 and w[:, :, 1:, 1:].abs().max() == 0
    assert w.mean().item() == pytest.approx(1.0)
    scores = torch.randn(2, 1, 4, 4)
    assert generator_hinge_loss(scores, w).item() == pytest.approx(-(scores * w).mean().item())
    assert critic_hinge_loss(scores, scores, torch.ones_like(scores)) == pytest.approx(critic_hinge_loss(scores, scores).item())
    grey = torch.full((1, 3, 8, 8), -0.3)
    teal = torch.tensor([-0.3, 0.15, 0.15])[None, :, None, None].expand(1, 3, 8, 8)
    assert chroma_penalty(grey).item() == 0.0 and chroma_penalty(teal).item() == pytest.approx(0.2)
    # cvae128_gan_seg17.json: a hair-colour edit (second image) pays a tenth of the penalty
    both = torch.cat([teal, teal])
    assert chroma_penalty(both, torch.tensor([1.0, 0.1])).item() == pytest.approx((0.2 + 0.02) / 2)


def test_ripple_penalty_charges_stripes_not_ramps_or_one_edge():
    ramp = torch.linspace(-1, 1, 16)[None, None, :, None].expand(1, 3, 16, 16)
    assert ripple_penalty(ramp).item() == pytest.approx(0.0, abs=1e-6)
    edge = torch.zeros(1, 3, 16, 16)
    edge[:, :, 8:] = 0.5  # one dark-to-light step, as the lower edge of a moustache
    stripes = torch.zeros(1, 3, 16, 16)
    stripes[:, :, ::2] = 0.5  # bands on every other row, as the streaks at +-6
    assert 0 < ripple_penalty(edge).item() < ripple_penalty(stripes).item() / 5


def test_mask_penalties():
    flat = torch.full((2, 1, 8, 8), 0.5)
    sparsity, tv = mask_penalties(flat)
    assert sparsity.item() == pytest.approx(0.5) and tv.item() == 0.0
    noisy = torch.rand(2, 1, 8, 8)
    assert mask_penalties(noisy)[1] > 0
    # per-image weights: the second image's mask (all ones) is penalised at a fifth
    masks = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)])
    assert mask_penalties(masks, torch.tensor([1.0, 0.2]))[0].item() == pytest.approx(0.1)


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
    path = export_torchscript(model, tmp_path, {"version": "test", "attributes": [], "resolution": SIZE})
    assert path.name == ARTIFACT_FILE
    card = json.loads((tmp_path / CARD_FILE).read_text())
    assert card["artifact"]["format"] == "torchscript"

    from handler.artifact import load_model  # the service's loader reads what export wrote
    loaded = load_model(tmp_path)
    x, labels = batch()
    with torch.inference_mode():
        mu, logvar, logits = model.encode(x)
        mu2, logvar2, logits2, skip = loaded.module(x)
        assert skip.shape == (4, 0, 1, 1)  # a model without a skip says so with an empty tensor
        cond, target = labels_to_condition(labels), labels_to_condition(flip_some(labels))
        torch.testing.assert_close(mu2, mu)
        torch.testing.assert_close(logvar2, logvar)
        torch.testing.assert_close(logits2, logits)
        torch.testing.assert_close(loaded.module.decode(mu, cond), model.decode(mu, cond))
        for got, want in zip(loaded.module.edit(mu, cond, target), model.edit(mu, cond, target)):
            torch.testing.assert_close(got, want)
        eps = torch.randn(3, CONFIG.latent_dim)
        torch.testing.assert_close(loaded.module.sample_latent(eps), eps)  # without a fitted prior: N(0, I)


SKIP_CONFIG = CVAEConfig(image_size=SIZE, latent_dim=16, channels=[8, 8, 16, 16], mask_channels=4, skip_resolution=8)


def test_a_new_skip_starts_at_zero_and_then_carries_the_encoder_features():
    """A model trained without the skip loads into one with it (strict=False: only the skip's input is missing) and
    decodes exactly as before; once the skip's weights move, the decode depends on the encoder's features."""
    torch.manual_seed(0)
    plain, skipped = CVAE(CONFIG).eval(), CVAE(SKIP_CONFIG).eval()
    missing, unexpected = skipped.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["decoder.skip_in.bias", "decoder.skip_in.weight"] and not unexpected
    x, labels = batch()
    cond = labels_to_condition(labels)
    with torch.no_grad():
        mu, _, _, skip = skipped.encoder.with_skip(x)
        assert skip.shape == (4, 16, 8, 8)  # the encoder's features at 8x8 of a 64 px face
        torch.testing.assert_close(skipped.decode(mu, cond, skip), plain.decode(mu, cond))
        torch.nn.init.normal_(skipped.decoder.skip_in.weight)
        assert not torch.allclose(skipped.decode(mu, cond, skip), skipped.decode(mu, cond))  # None: no skip
        with pytest.raises(ValueError, match="skip_resolution"):
            CVAE(CVAEConfig(image_size=SIZE, latent_dim=16, channels=[8, 8, 16, 16], skip_resolution=12))


def test_a_training_step_with_a_skip_trains_its_input_at_its_own_rate():
    torch.manual_seed(0)
    trainer = Trainer(TrainSettings(model=SKIP_CONFIG.to_dict(), critic={"channels": [8, 16, 16, 32]}, lr=1e-4,
                                    skip_lr_scale=10.0, skip_dropout=0.5), device=torch.device("cpu"))
    assert [g["lr"] for g in trainer.opt_g.param_groups] == [1e-4, pytest.approx(1e-3)]
    x, labels = batch(8)
    losses = trainer.step(x.contiguous(memory_format=torch.channels_last), labels)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values()), losses
    assert trainer.model.decoder.skip_in.weight.abs().sum() > 0  # moved off its zero start


def test_torchscript_round_trip_with_a_skip(tmp_path):
    """The served module returns the skip features with the encoding and takes them back in decode and edit; the
    service (handler.editor.encoder_outputs) reads them, and without them decodes as /v1/generate does."""
    torch.manual_seed(0)
    model = CVAE(SKIP_CONFIG).eval()
    torch.nn.init.normal_(model.decoder.skip_in.weight, std=0.1)
    export_torchscript(model, tmp_path, {"version": "test", "attributes": [], "resolution": SIZE})
    from handler.artifact import load_model
    from handler.editor import encoder_outputs
    loaded = load_model(tmp_path)
    x, labels = batch()
    cond, target = labels_to_condition(labels), labels_to_condition(flip_some(labels))
    with torch.inference_mode():
        mu, _, _, skip = model.encoder.with_skip(x)
        mu2, _, _, skip2 = encoder_outputs(loaded.module(x))
        torch.testing.assert_close(skip2, skip)
        torch.testing.assert_close(loaded.module.decode(mu, cond, skip), model.decode(mu, cond, skip))
        torch.testing.assert_close(loaded.module.decode(mu, cond), model.decode(mu, cond))
        for got, want in zip(loaded.module.edit(mu, cond, target, skip), model.edit(mu, cond, target, skip)):
            torch.testing.assert_close(got, want)


@pytest.mark.parametrize("side", [1, 4, 7])
def test_subpixel_stage_equals_resize_then_conv(side):
    """The exported decoder's stages skip the x2 resize; with trained-looking BatchNorm statistics (not the fresh
    0 / 1) the output is the same, at every size and for odd sides."""
    torch.manual_seed(side)
    up = _Up(5, 3)
    with torch.no_grad():
        up.norm.running_mean.uniform_(-1, 1)
        up.norm.running_var.uniform_(0.5, 2)
        up.norm.weight.uniform_(0.5, 1.5)
        up.norm.bias.uniform_(-0.5, 0.5)
    up.eval()
    x = torch.randn(2, 5, side, side + 1)
    with torch.no_grad():
        torch.testing.assert_close(SubpixelUp(up)(x), up(x))


def test_serving_decoder_leaves_the_trained_decoder_as_it_was(model):
    served = serving_decoder(model.decoder)
    assert all(isinstance(s, SubpixelUp) for s in served.stages)
    assert not any(isinstance(s, SubpixelUp) for s in model.decoder.stages)


def test_latent_prior_is_fitted_to_real_latents_and_exported(model, tmp_path):
    """New faces are drawn from a Gaussian fitted to the encoder's latents of faces, not from N(0, I)."""
    x = torch.rand(64, 3, SIZE, SIZE) * 2 - 1
    mean, scale = fit_latent_prior(model, x)
    with torch.inference_mode():
        mus = model.encode(x)[0]
    torch.testing.assert_close(mean, mus.mean(0))
    torch.testing.assert_close(scale @ scale.T, torch.cov(mus.T) + 1e-5 * torch.eye(CONFIG.latent_dim))

    export_torchscript(model, tmp_path, {"version": "test", "attributes": [], "resolution": SIZE}, (mean, scale))
    from handler.artifact import load_model
    eps = torch.randn(5, CONFIG.latent_dim)
    torch.testing.assert_close(load_model(tmp_path).module.sample_latent(eps), mean + eps @ scale.T)


def test_changed_scale_marks_the_images_whose_edit_changes_a_group():
    """cvae128_gan_seg17.json: the colour penalty is scaled down where the edit changes a hair colour or pale skin."""
    colour = torch.tensor([a in COLOUR_ATTRIBUTES for a in CELEBA_ATTRIBUTES])
    labels = torch.zeros(3, len(CELEBA_ATTRIBUTES))
    target = labels.clone()
    target[1, CELEBA_ATTRIBUTES.index("Blond_Hair")] = 1.2  # moved past 1: still a change
    target[2, CELEBA_ATTRIBUTES.index("Eyeglasses")] = 1.0
    assert Trainer._changed_scale(labels, target, colour, 0.1).tolist() == pytest.approx([1.0, 0.1, 1.0])
    assert Trainer._changed_scale(labels, target, colour, 1.0) is None


def test_focus_weights_set_the_odds_of_each_focus_attribute():
    """cvae128_gan_seg18.json gives the lagging attributes more of the single flips."""
    labels = torch.zeros(4000, NUM_ATTRIBUTES)
    focus = [CELEBA_ATTRIBUTES.index(a) for a in ("Bald", "Young")]
    target = edit_targets(labels, focus, focus, focus_share=1.0, shuffle_share=0.0,
                          generator=torch.Generator().manual_seed(0), focus_weights=torch.tensor([3.0, 1.0]))
    bald_share = target[:, focus[0]].mean().item()
    assert bald_share == pytest.approx(0.75, abs=0.03)
    assert (target.sum(1) >= 1).all()  # every row still flips one of the two


def test_unknown_focus_or_colour_attributes_are_refused():
    with pytest.raises(ValueError, match="unknown attributes"):
        Trainer(TrainSettings(model=CONFIG.to_dict(), focus_weights={"Smiling": 2.0}), torch.device("cpu"))
    with pytest.raises(ValueError, match="unknown attributes"):
        Trainer(TrainSettings(model=CONFIG.to_dict(), colour_attributes=["Purple_Hair"]), torch.device("cpu"))


def test_choose_edit_setting_takes_the_mildest_near_the_best_within_the_preservation_bound():
    from model.evaluate import EditSetting, choose_edit_setting
    measured = [EditSetting(2, 3, 0.60, 0.05), EditSetting(3, 4, 0.66, 0.06), EditSetting(4, 5, 0.67, 0.08),
                EditSetting(5, 6, 0.75, 0.13)]
    assert choose_edit_setting(measured, 0.8, 0.10) == measured[1]  # 5:6 changes too much else; 3:4 is near 4:5
    assert choose_edit_setting(measured, 0.65, 0.10) == measured[1]  # the first reaching the target
    assert choose_edit_setting(measured, 0.8, 0.20) == measured[3]
    assert choose_edit_setting(measured, 0.8, 0.01) == measured[0]  # nothing within the bound: the mildest


def test_settings_by_attribute_follow_each_attribute_own_flip_rate_within_the_mean_preservation_bound():
    from model.evaluate import EditSetting, choose_edit_settings_by_attribute
    # two attributes: "easy" flips at the mildest setting, "hard" keeps gaining up to the strongest
    measured = [EditSetting(2, 3, 0.55, 0.05, (0.85, 0.25), (0.04, 0.06)),
                EditSetting(3, 4, 0.65, 0.06, (0.90, 0.40), (0.05, 0.07)),
                EditSetting(5, 6, 0.76, 0.08, (0.92, 0.60), (0.07, 0.09))]
    chosen = choose_edit_settings_by_attribute(measured, ["easy", "hard"], 0.8, 0.10)
    assert (chosen["easy"].gain, chosen["easy"].condition_limit) == (2, 3)
    assert (chosen["hard"].gain, chosen["hard"].condition_limit) == (5, 6)
    # the bound holds for the mean preservation error of the choices ((0.04 + 0.09) / 2): past it, none
    assert choose_edit_settings_by_attribute(measured, ["easy", "hard"], 0.8, 0.07)
    assert choose_edit_settings_by_attribute(measured, ["easy", "hard"], 0.8, 0.06) == {}


def test_per_attribute_gain_and_limit_shape_the_requested_presence():
    from model.edit_eval import EditSettings, condition, requested_presence
    blond, black = CELEBA_ATTRIBUTES.index("Blond_Hair"), CELEBA_ATTRIBUTES.index("Black_Hair")
    gain, limit = torch.full((40,), 2.0), torch.full((40,), 3.0)
    gain[blond], limit[blond] = 5.0, 6.0
    settings = EditSettings(gain=gain, strength=1.0, condition_limit=limit)
    probs = torch.full((1, 40), 0.2)
    asked = requested_presence(probs, blond, torch.ones(1), settings)
    assert asked[0, blond].item() == pytest.approx(0.2 + 5.0 * 0.8)
    assert asked[0, black].item() == pytest.approx(0.2 - 2.0 * 0.2)  # turned off with black hair's own gain
    cond = condition(asked, limit)
    assert cond[0, blond].item() == pytest.approx(6.0)  # 2 * 4.2 - 1 = 7.4, capped at blond's 6
    assert cond[0, black].item() == pytest.approx(-1.4)  # 2 * -0.2 - 1, under black hair's 3
