"""The Editor's stages on a small untrained export: planning edits, applying them, residuals."""

import numpy as np
import pytest
import torch

from handler.artifact import load_model
from handler.editor import (Editor, PlannedEdit, change_masks, crop_feather, paste_masks, read_edit_regions,
                            region_masks, replace_masks, replace_weights, replacing)
from handler.errors import InvalidRequest, UnknownAttribute
from model.attributes import CELEBA_ATTRIBUTES
from model.cvae import CVAE, CVAEConfig
from model.export import export_torchscript

SMILING, NO_BEARD = CELEBA_ATTRIBUTES.index("Smiling"), CELEBA_ATTRIBUTES.index("No_Beard")


@pytest.fixture(scope="module")
def editor(tmp_path_factory) -> Editor:
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("model")
    config = CVAEConfig(image_size=64, latent_dim=8, channels=[8, 8, 16, 16], mask_channels=4)
    export_torchscript(CVAE(config), out, {"version": "tiny", "attributes": list(CELEBA_ATTRIBUTES), "resolution": 64,
                                           "latent_dim": 8, "edit_gain": 2.0, "learned_mask": True,
                                           "crop": {"box_ltrb": [0, 20, 178, 198]}})
    return Editor(load_model(out))


def test_a_model_trained_on_another_crop_is_refused(editor):
    from dataclasses import replace

    from handler.artifact import ArtifactError

    with pytest.raises(ArtifactError):
        Editor(replace(editor.model, card={**editor.model.card, "crop": {"box_ltrb": [0, 0, 178, 218]}}))


def test_the_card_sets_how_far_the_decoder_condition_may_go(editor, monkeypatch):
    """The card's condition_limit caps the decoder's condition (older cards: 3); the edit is decoded with it."""
    from dataclasses import replace

    assert (editor.condition_limit == 3.0).all()  # this card has none
    wider = Editor(replace(editor.model, card={**editor.model.card, "condition_limit": 5.0}))
    assert (wider.condition_limit == 5.0).all()
    seen = []
    zero = torch.zeros(1, 3, 64, 64)
    monkeypatch.setattr(wider, "decode_edit", lambda mu, before, after, skip=None: seen.append(after) or (zero, zero, None, None))
    probs = torch.full((1, 40), 0.1)
    wider.pastes(torch.zeros(1, 8), probs, wider.apply(probs, [PlannedEdit(SMILING, 1.0, False)], strength=3.0))
    assert seen[0][0, SMILING].item() == pytest.approx(5.0)  # 2 * (0.1 + 2 * 3 * 0.9) - 1 = 10.9, capped


def test_the_card_may_give_an_attribute_its_own_gain_and_limit(editor, monkeypatch):
    from dataclasses import replace

    from handler.artifact import ArtifactError

    own = {"Smiling": {"gain": 4.0, "condition_limit": 6.0}}
    tuned = Editor(replace(editor.model, card={**editor.model.card, "edit_settings_by_attribute": own}))
    probs = torch.full((1, 40), 0.1)
    out = tuned.apply(probs, [PlannedEdit(SMILING, 1.0, False), PlannedEdit(NO_BEARD, 1.0, False)], strength=1.0)
    assert out[0, SMILING].item() == pytest.approx(0.1 + 4.0 * 0.9)
    assert out[0, NO_BEARD].item() == pytest.approx(0.1 + 2.0 * 0.9)  # the card's edit_gain
    seen = []
    zero = torch.zeros(1, 3, 64, 64)
    monkeypatch.setattr(tuned, "decode_edit", lambda mu, before, after, skip=None: seen.append(after) or (zero, zero, None, None))
    tuned.pastes(torch.zeros(1, 8), probs, out)
    assert seen[0][0, SMILING].item() == pytest.approx(6.0)  # 2 * 3.7 - 1 = 6.4, capped at its own 6
    assert seen[0][0, NO_BEARD].item() == pytest.approx(2 * 1.9 - 1)  # under the card's 3
    for bad in ({"Wings": {"gain": 2.0}}, {"Smiling": {"gain": 0.0}}):
        with pytest.raises(ArtifactError):
            Editor(replace(editor.model, card={**editor.model.card, "edit_settings_by_attribute": bad}))


def test_plan_resolves_aliases_inversions_and_deltas(editor):
    assert editor.plan({"smile": 1.0}) == [PlannedEdit(SMILING, 1.0, False)]
    assert editor.plan({"Beard": 1.0}) == [PlannedEdit(NO_BEARD, 0.0, False)]  # beard = not No_Beard
    assert editor.plan({"beard": "+0.5"}) == [PlannedEdit(NO_BEARD, -0.5, True)]
    assert editor.plan({"mouth open": 0})[0].index == CELEBA_ATTRIBUTES.index("Mouth_Slightly_Open")


@pytest.mark.parametrize("edits", [{"smile": 1.2}, {"smile": "0.5"}, {"smile": "+2"}, {"smile": "lots"}])
def test_plan_refuses_bad_values(editor, edits):
    with pytest.raises(InvalidRequest):
        editor.plan(edits)


def test_plan_refuses_unknown_and_analyze_only_attributes(editor):
    for name in ("wings", "Attractive", "Blurry"):
        with pytest.raises(UnknownAttribute):
            editor.plan({name: 1.0})


def test_apply_scales_changes_by_gain_and_strength(editor):
    probs = torch.full((1, 40), 0.2)
    out = editor.apply(probs, [PlannedEdit(SMILING, 1.0, False)], strength=0.5)
    assert out[0, SMILING].item() == pytest.approx(0.2 + 2.0 * 0.5 * 0.8)
    out = editor.apply(probs, [PlannedEdit(SMILING, -0.1, True)], strength=1.0)
    assert out[0, SMILING].item() == pytest.approx(0.0)
    assert torch.equal(torch.cat([out[:, :SMILING], out[:, SMILING + 1:]], 1),
                       torch.cat([probs[:, :SMILING], probs[:, SMILING + 1:]], 1))  # nothing else moves
    with pytest.raises(InvalidRequest):
        editor.apply(probs, [], strength=3.5)


def test_residual_is_zero_without_a_change(editor):
    mu, probs = torch.randn(2, 8), torch.rand(2, 40)
    paste = editor.pastes(mu, probs, probs)
    assert (paste.residual == 0).all() and (paste.replace == 0).all()
    paste = editor.pastes(mu, probs, editor.apply(probs, editor.plan({"smile": 1.0}), 1.0))
    size = editor.size
    assert paste.residual.shape == (2, size, size, 3) and paste.base.shape == (2, size, size, 3)
    assert paste.mask.shape == (2, size, size) and paste.replace.shape == (2, size, size)
    assert paste.mask.min() >= 0.0 and paste.mask.max() <= 1.0
    assert (paste.replace >= 0).all() and (paste.replace <= paste.mask).all()
    crop = np.full((size, size, 3), 128, np.uint8)
    assert paste.onto_crop(0, crop).dtype == np.uint8 and paste.rows(1, 2).mask.shape == (1, size, size)


def test_paste_follows_the_decoders_change_beyond_the_learned_mask():
    """v2's learned mask leaves the hair out; where the decoder changed the face (a hair-colour edit) the paste
    covers it anyway, and where nothing changed the pixels stay the photo's own."""
    feather = crop_feather(32)
    base = torch.zeros(1, 3, 32, 32)
    edited = base.clone()
    edited[:, :, 4:12, 8:24] = 0.5  # a changed patch at the top of the crop, where the hair is
    closed = torch.zeros(1, 1, 32, 32)  # the learned mask: nothing
    paste = paste_masks(closed, feather, change_masks(base, edited))
    assert paste.shape == (1, 32, 32) and paste.min() >= 0.0 and paste.max() <= 1.0
    assert paste[0, 8, 16] == pytest.approx(1.0)  # inside the change: pasted fully
    assert (paste[0, 20:] == 0).all()  # away from it: exactly 0, so those pixels come back bit-identical
    assert (paste_masks(closed, feather, change_masks(base, base)) == 0).all()
    assert (paste_masks(closed, feather) == 0).all()


def test_the_photos_detail_is_replaced_only_where_the_decoder_changed_it_a_lot():
    """A large change (a lens taken off, hair to skin) replaces the photo's detail; a small one (a shade of colour)
    is only added, so the photo's texture stays under it."""
    base = torch.zeros(1, 3, 32, 32)
    edited = base.clone()
    edited[:, :, 4:12, 4:28] = 0.6  # large: well past REPLACE_THRESHOLD + REPLACE_RAMP
    edited[:, :, 20:28, 4:28] = 0.06  # small: past CHANGE_THRESHOLD (pasted), under REPLACE_THRESHOLD
    w = replace_weights(base, edited)
    assert w.shape == (1, 1, 32, 32) and w.min() >= 0.0 and w.max() <= 1.0
    assert w[0, 0, 8, 16] == pytest.approx(1.0)
    assert (w[0, 0, 18:] == 0).all()
    paste = paste_masks(torch.zeros(1, 1, 32, 32), crop_feather(32), change_masks(base, edited))
    assert paste[0, 24, 16] > 0.0  # the small change is still pasted, as a residual


def test_only_edits_that_add_or_take_away_a_thing_replace_the_photo():
    """The same large change replaces the photo's detail for "bald" and is only added for "blond" (a recolouring:
    replaced, faces came back as the decoder's soft mask); with no change asked, nothing is replaced."""
    names = list(CELEBA_ATTRIBUTES)
    which = replacing(names)
    base = torch.zeros(3, 3, 16, 16)
    edited = torch.full((3, 3, 16, 16), 0.8)
    before = torch.full((3, 40), -1.0)
    after = before.clone()
    after[0, names.index("Bald")] = 5.0
    after[1, names.index("Blond_Hair")] = 5.0
    paste = np.ones((3, 16, 16), np.float32)
    replace = replace_masks(paste, base, edited, before, after, which)
    assert (replace[0] == 1).all() and (replace[1] == 0).all() and (replace[2] == 0).all()
    assert (replace_masks(paste * 0.5, base, edited, before, after, which)[0] == 0.5).all()  # never past the paste


def regions_card(**maps) -> dict:
    return {"edit_regions": {"resolution": 4, "maps": maps}}


EYES = ["00000000", "ffffffff", "ffffffff", "00000000"]  # a band across the middle of the crop
CHIN = ["00000000", "00000000", "00000000", "00ffff00"]


def test_an_edit_of_mapped_attributes_reaches_only_their_regions():
    """Glasses are pasted only around the eyes, glasses and a moustache at both; an edit that also changes an
    unmapped attribute (a smile) is not bounded; a card without regions bounds nothing."""
    names = list(CELEBA_ATTRIBUTES)
    glasses, moustache = names.index("Eyeglasses"), names.index("Mustache")
    regions = read_edit_regions(regions_card(Eyeglasses=EYES, Mustache=CHIN), names, 16)
    assert regions.maps.shape == (40, 16, 16) and regions.mapped.sum() == 2
    before = torch.full((3, 40), -1.0)
    after = before.clone()
    after[:, glasses] = 5.0
    after[1, moustache] = 5.0
    after[2, SMILING] = 5.0
    reach = region_masks(regions, before, after)
    assert reach.shape == (3, 16, 16) and reach.min() >= 0.0 and reach.max() <= 1.0
    assert reach[0, 8, 8] == pytest.approx(1.0) and (reach[0, 14:] == 0).all() and (reach[0, :2] == 0).all()
    assert reach[1, 8, 8] == pytest.approx(1.0) and reach[1, 15, 8] == pytest.approx(1.0) and reach[1, 15, 0] == 0
    assert (reach[2] == 1).all()  # the smile may reach anywhere, so the whole edit may
    assert (region_masks(regions, before, before) == 1).all()  # nothing asked: nothing to bound
    assert read_edit_regions({}, names, 16) is None and read_edit_regions(regions_card(), names, 16) is None


def test_bad_edit_regions_in_a_card_are_refused():
    from handler.artifact import ArtifactError

    names = list(CELEBA_ATTRIBUTES)
    for maps in ({"Eyeglasses": ["00ff", "ff"]}, {"Eyeglasses": ["00ff", "ffzz"]}, {"Eyeglasses": [[0, 1], [1, 0]]},
                 {"Not_An_Attribute": EYES}, {"Eyeglasses": []}, {"Eyeglasses": ["00ff"]}):
        with pytest.raises(ArtifactError):
            read_edit_regions(regions_card(**maps), names, 16)


def test_the_editor_pastes_inside_the_cards_regions(editor):
    """An edit of glasses alone is pasted nowhere outside the card's eye band; the same edit through an editor whose
    card has no regions may reach further."""
    from dataclasses import replace

    bounded = Editor(replace(editor.model, card={**editor.model.card, **regions_card(Eyeglasses=EYES)}))
    torch.manual_seed(2)
    mu, probs = torch.randn(2, 8), torch.rand(2, 40)
    after = bounded.apply(probs, bounded.plan({"glasses": 1.0}), 3.0)
    paste = bounded.pastes(mu, probs, after)
    reach = bounded.regions.maps[CELEBA_ATTRIBUTES.index("Eyeglasses")].numpy()
    assert (paste.mask[:, reach == 0] == 0).all() and (paste.replace[:, reach == 0] == 0).all()
    assert (paste.mask <= editor.pastes(mu, probs, after).mask + 1e-6).all()


def test_an_edit_pastes_what_the_evaluation_measures(editor):
    """Editor.edit's crop arithmetic (Paste.onto_crop) is model/edit_eval's: crop + mask * (D' - D) +
    replace * (D - crop)."""
    torch.manual_seed(1)
    mu, probs = torch.randn(1, 8), torch.rand(1, 40)
    after = editor.apply(probs, editor.plan({"smile": 1.0, "glasses": 1.0}), 3.0)
    paste = editor.pastes(mu, probs, after)
    paste.replace[:] = paste.mask * 0.5  # whatever the tiny untrained model changed, make the replacement count
    crop = np.random.default_rng(0).integers(0, 256, (editor.size, editor.size, 3), dtype=np.uint8)
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 127.5 - 1
    base = torch.from_numpy(paste.base).permute(0, 3, 1, 2) / 127.5 - 1
    raw = base + torch.from_numpy(paste.residual).permute(0, 3, 1, 2) / 127.5
    m, r = torch.from_numpy(paste.mask)[:, None], torch.from_numpy(paste.replace)[:, None]
    measured = ((x + m * (raw - base) + r * (base - x)).clamp(-1, 1) + 1) * 127.5
    assert np.abs(paste.onto_crop(0, crop).astype(float) - measured[0].permute(1, 2, 0).numpy()).max() <= 0.51


def test_generate_is_seeded(editor):
    a = editor.generate(editor.plan({"smile": 1.0}), count=2, seed=1, size=64)
    b = editor.generate(editor.plan({"smile": 1.0}), count=2, seed=1, size=64)
    assert len(a) == 2 and all((x == y).all() for x, y in zip(a, b))


def test_generated_faces_take_a_real_face_label_row_that_fits_the_request(editor):
    from dataclasses import replace

    from handler.artifact import ArtifactError
    from handler.editor import draw_label_rows, read_label_bank

    male, beard = CELEBA_ATTRIBUTES.index("Male"), NO_BEARD
    rows = ["0" * 40, "0" * 40]
    rows.append("".join("1" if i == male else "0" for i in range(40)))  # a man with a beard (No_Beard = 0)
    bank = read_label_bank({"attributes": list(CELEBA_ATTRIBUTES), "attribute_label_bank": {"rows": rows}})
    drawn = draw_label_rows(bank, {beard: 0.0}, 50, torch.Generator().manual_seed(0))
    # No_Beard is 0 in all three rows, so all three qualify
    assert set(drawn[:, male].tolist()) == {0.0, 1.0}
    drawn = draw_label_rows(bank, {beard: 0.0, male: 1.0}, 50, torch.Generator().manual_seed(0))
    assert (drawn[:, male] == 1).all()
    # nothing matches exactly: the closest rows are used
    drawn = draw_label_rows(bank, {male: 1.0, SMILING: 1.0}, 5, torch.Generator().manual_seed(0))
    assert (drawn[:, male] == 1).all()
    with pytest.raises(ArtifactError):
        read_label_bank({"attributes": list(CELEBA_ATTRIBUTES), "attribute_label_bank": {"rows": ["01"]}})

    banked = Editor(replace(editor.model, card={**editor.model.card, "attribute_label_bank": {"rows": rows}}))
    a = banked.generate(banked.plan({"smile": 1.0}), count=3, seed=2, size=64)
    b = banked.generate(banked.plan({"smile": 1.0}), count=3, seed=2, size=64)
    assert len(a) == 3 and all((x == y).all() for x, y in zip(a, b))


def test_turning_on_a_hair_colour_also_turns_off_the_others(editor):
    names = editor.catalog.names
    planned = {names[p.index]: p.value for p in editor.plan({"black_hair": 1, "Gray_Hair": 0.2})}
    assert planned == {"Black_Hair": 1.0, "Gray_Hair": 0.2, "Blond_Hair": 0.0, "Brown_Hair": 0.0}
    assert {names[p.index] for p in editor.plan({"black_hair": 0})} == {"Black_Hair"}  # turning off implies nothing
    assert {names[p.index] for p in editor.plan({"beard": "+0.5"})} == {"No_Beard"}  # nor does a change


def test_generation_temperature_scales_the_latent_noise(editor):
    """At temperature 0 every new face is drawn from the middle of the latent fit: the same face for the same labels."""
    from dataclasses import replace

    cold = Editor(replace(editor.model, card={**editor.model.card, "generation_temperature": 0.0}))
    assert editor.generation_temperature == 1.0  # a card without the key
    a, b = cold.generate(cold.plan({"male": 1.0, "smile": 1.0}), count=2, seed=3, size=64)
    assert (a == b).all()
    c, d = editor.generate(editor.plan({"male": 1.0, "smile": 1.0}), count=2, seed=3, size=64)
    assert not (c == d).all()


def test_an_edit_without_measuring_returns_the_same_image(editor, astronaut):
    """Image-only answers skip re-encoding the edited crops; the pixels are the same."""
    rgb = astronaut
    planned = editor.plan({"smile": 1.0})
    measured, faces = editor.edit(rgb, planned)
    unmeasured, faces_unmeasured = editor.edit(rgb, planned, measure=False)
    assert (measured == unmeasured).all()
    assert faces[0].after is not None and faces_unmeasured[0].after is None
    assert faces_unmeasured[0].before == faces[0].before


@pytest.mark.parametrize("target", [0.0, 1.0])
def test_the_evaluation_asks_the_decoder_what_the_service_asks(editor, target):
    """model/edit_eval.py re-states the service's plan (a' = a + g * (t - a), exclusions, the capped condition) so
    that scripts/evaluate.py measures the service without a photo: the two must send the decoder the same."""
    from dataclasses import replace

    from handler.editor import condition as service_condition
    from model.attributes import EDIT_EVAL_ATTRIBUTES
    from model.edit_eval import EditSettings, requested_presence
    from model.edit_eval import condition as evaluation_condition

    own = {"Black_Hair": {"gain": 4.0}, "Mustache": {"condition_limit": 5.0}}  # per-attribute settings too
    editor = Editor(replace(editor.model, card={**editor.model.card, "edit_settings_by_attribute": own}))
    limit = editor.condition_limit
    settings = EditSettings(gain=editor.edit_gain, strength=1.0, condition_limit=limit)
    probs = torch.rand(3, 40, generator=torch.Generator().manual_seed(1))
    for name in EDIT_EVAL_ATTRIBUTES:
        a = CELEBA_ATTRIBUTES.index(name)
        service = service_condition(editor.apply(probs, editor.plan({name: target}), 1.0), limit)
        evaluation = evaluation_condition(requested_presence(probs, a, torch.full((3,), target), settings), limit)
        assert torch.allclose(service, evaluation), name
