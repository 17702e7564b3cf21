"""Runs the exported CVAE on faces in photos, as named stages that can be tested alone:
find faces -> preprocess (align to the model's crop) -> encode -> plan the edit -> decode -> postprocess
(residual D(mu, a') - D(mu, a) added to the original pixels through the model's learned edit mask, widened to where
the decoder's change is large, times a feather at the crop border, and bounded by the card's edit regions for the
attributes it maps; where that change is very large the photo's own detail is replaced by the decoder's; a model
without a learned mask gets the fixed ellipse of faces.face_mask).
Untouched pixels come back bit-identical."""

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from handler import faces as face_ops
from handler.artifact import ArtifactError, LoadedModel, inference
from handler.attributes import EXCLUSIONS, AttributeCatalog
from handler.errors import FaceIndexOutOfRange, FaceNotFrontal, InvalidRequest, NoFaceFound
from handler.imaging import resize_square
from handler.observability import metrics, tracer

MAX_STRENGTH = 3.0
# |decoder condition| cap for cards without `condition_limit`. Training saw up to +-2 (the AttGAN-style scaled
# targets of model/losses.target_condition); the card's calibrated cap lets the service extrapolate past that.
CONDITION_LIMIT = 3.0
MASK_FLOOR = 0.05  # learned mask values below this count as "no edit": those pixels come back bit-identical
BORDER_FEATHER = 0.08  # share of the crop side over which the mask falls to 0 at the crop's edge
# The paste also covers where D(mu, a') differs from D(mu, a) by more than CHANGE_THRESHOLD (mean over RGB, model
# units in [-1, 1]), reaching 1 at CHANGE_THRESHOLD + CHANGE_RAMP: v2's learned mask leaves the hair out, and the
# hair-colour edits the decoder makes were cut off (step 30,286, 300 test faces: edit accuracy 0.438 -> 0.504 with
# judge64, 0.300 -> 0.349 with judge128, preservation error 0.042 -> 0.047; README, "Model v2").
CHANGE_THRESHOLD = 0.04
CHANGE_RAMP = 0.12
# For an edit that adds or takes away a thing (REPLACING_ATTRIBUTES), where the change is very large (mean over RGB
# above REPLACE_THRESHOLD, in full from REPLACE_THRESHOLD + REPLACE_RAMP) the paste also takes the photo's own detail
# out: crop + M * (D' - D) + M * w * (D - crop), GANimation's colour-image form M * D' + (1 - M) * crop where w = 1.
# Added to the photo, a residual alone left the hair strands under "bald", the lenses under "no eyeglasses" and the
# skin under "bangs". A recolouring edit (hair colour, pale skin, age) keeps the residual: replaced, its faces came
# back as the decoder's soft, featureless mask (README, "Where the decoder replaces the photo").
REPLACE_THRESHOLD = 0.12
REPLACE_RAMP = 0.12
REPLACING_ATTRIBUTES = frozenset({"Bald", "Bangs", "Eyeglasses", "Mustache", "No_Beard", "Mouth_Slightly_Open"})
FRAME_BATCH = 16  # faces x frames decoded per model call by interpolate_attributes (bounds its memory)


@dataclass(frozen=True)
class PlannedEdit:
    index: int  # attribute axis position
    value: float
    is_delta: bool  # value is a change of presence rather than a target presence


@dataclass
class Paste:
    """What an edit puts into B face crops (side S), in pixel units: crop * (1 - replace) + replace * base +
    mask * residual. replace <= mask, so where mask is 0 the photo's pixels stay its own."""
    residual: np.ndarray  # (B, S, S, 3) D(mu, a') - D(mu, a)
    mask: np.ndarray  # (B, S, S) in [0, 1]
    replace: np.ndarray  # (B, S, S) in [0, mask]
    base: np.ndarray  # (B, S, S, 3) D(mu, a), what replaces the photo's detail

    def rows(self, start: int, stop: int) -> "Paste":
        return Paste(self.residual[start:stop], self.mask[start:stop], self.replace[start:stop],
                     self.base[start:stop])

    def onto_crop(self, i: int, crop: np.ndarray) -> np.ndarray:
        """Face i's edit on its uint8 crop (S, S, 3), as blend_residual pastes it into the photo."""
        r = self.replace[i][..., None]
        out = crop * (1.0 - r) + r * self.base[i] + self.residual[i] * self.mask[i][..., None]
        return np.clip(out, 0, 255).round().astype(np.uint8)


@dataclass
class Encoded:
    mu: Tensor  # (B, latent)
    probs: Tensor  # (B, 40) attribute presence in [0, 1]
    skip: Tensor | None = None  # (B, C, r, r) the encoder's features the decoder reads too; None: a model without


def encoder_outputs(out: tuple[Tensor, ...]) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """The artifact's encode (mean latent, log-variance, logits[, skip]) with the skip None where there is none:
    artifacts before the skip return 3 values, later ones 4, the last (B, 0, 1, 1) for a model without it."""
    skip = out[3] if len(out) > 3 and out[3].shape[1] > 0 else None
    return out[0], out[1], out[2], skip


def with_skip(skip: Tensor | None, *args: Tensor) -> tuple[Tensor, ...]:
    """Arguments for the artifact's decode/edit: the skip goes last, and only where there is one, since artifacts
    before the skip take none."""
    return args if skip is None else (*args, skip)


def repeat_skip(skip: Tensor | None, times: int) -> Tensor | None:
    """Skip features for `times` copies of the batch (as Tensor.repeat does to the latents)."""
    return None if skip is None else skip.repeat(times, 1, 1, 1)


@dataclass
class FaceResult:
    index: int
    face: face_ops.DetectedFace
    before: dict[str, float]
    after: dict[str, float] | None = None


def condition(probs: Tensor, limit: float | Tensor = CONDITION_LIMIT) -> Tensor:
    """Presence (B, A) in [0, 1] (or beyond, for exaggerated edits) -> the decoder's condition, 2p - 1, capped at
    +-limit (a number, or (A,): each attribute's)."""
    return (probs * 2.0 - 1.0).clamp(-limit, limit)


def edit_settings(card: dict, names: list[str]) -> tuple[Tensor, Tensor]:
    """Each attribute's edit gain and condition limit, (A,) each: the card's edit_gain and condition_limit, or the
    attribute's own where edit_settings_by_attribute calibrated one (scripts/export.py)."""
    gain = float(card.get("edit_gain", 1.0))
    limit = float(card.get("condition_limit", CONDITION_LIMIT))
    own = card.get("edit_settings_by_attribute") or {}
    unknown = sorted(set(own) - set(names))
    if unknown:
        raise ArtifactError(f"model card: edit_settings_by_attribute names unknown attributes {unknown}")
    gains = torch.tensor([float(own.get(n, {}).get("gain", gain)) for n in names])
    limits = torch.tensor([float(own.get(n, {}).get("condition_limit", limit)) for n in names])
    if not (gains > 0).all() or not (limits >= 1).all():
        raise ArtifactError("model card: edit gains must be positive and condition limits at least 1")
    return gains, limits


def to_model_input(crops: list[np.ndarray]) -> Tensor:
    """uint8 crops (S, S, 3) -> (B, 3, S, S) in [-1, 1], the normalisation the model card states."""
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()  # (B, 3, S, S)
    return x / 127.5 - 1.0


def to_residual(difference: Tensor) -> np.ndarray:
    """A difference of decoded images (B, 3, S, S), [-1, 1] scale -> (B, S, S, 3) float32 in pixel units."""
    return difference.mul(127.5).permute(0, 2, 3, 1).numpy().astype(np.float32)


def read_label_bank(card: dict) -> Tensor | None:
    """The card's attribute_label_bank (rows of '0'/'1' in the card's attribute order) as a (K, A) float tensor."""
    rows = card.get("attribute_label_bank", {}).get("rows")
    if not rows:
        return None
    if any(len(r) != len(card["attributes"]) for r in rows):
        raise ArtifactError("model card: attribute_label_bank rows do not match its attribute list")
    # parsed as one byte string: per character in Python it took ~5 ms of every cold start
    ones = np.frombuffer("".join(rows).encode("ascii", "replace"), np.uint8) == ord("1")
    return torch.from_numpy(ones.reshape(len(rows), -1).astype(np.float32))


def draw_label_rows(bank: Tensor, wanted: dict[int, float], count: int, generator: torch.Generator) -> Tensor:
    """`count` rows of `bank` (K, A), each drawn uniformly among the rows that disagree least with `wanted`
    (attribute index -> presence, on from 0.5), so that what the caller did not set fits what they did
    (a requested beard comes with a man's other attributes)."""
    candidates = torch.arange(len(bank))
    if wanted:
        columns = torch.tensor(list(wanted))
        want = torch.tensor([v >= 0.5 for v in wanted.values()], dtype=bank.dtype)
        misses = (bank[:, columns] != want).sum(dim=1)
        candidates = torch.nonzero(misses == misses.min()).flatten()
    return bank[candidates[torch.randint(len(candidates), (count,), generator=generator)]].clone()


def crop_feather(size: int, share: float = BORDER_FEATHER) -> np.ndarray:
    """(S, S) float32: 1 inside, falling linearly to 0 at the crop's border, so a pasted edit has no seam."""
    ramp = np.clip((np.minimum(np.arange(size), np.arange(size)[::-1]) + 0.5) / max(1.0, share * size), 0.0, 1.0)
    return np.minimum(ramp[:, None], ramp[None, :]).astype(np.float32)


def change_masks(base: Tensor, edited: Tensor) -> Tensor:
    """(B, 1, S, S) in [0, 1]: where the decoder changed the face, D(mu, a) -> D(mu, a') (both (B, 3, S, S)). Grown
    by 2 pixels and smoothed over 7, so that it covers a changed region as a whole, with soft edges."""
    change = (edited - base).abs().mean(dim=1, keepdim=True)
    m = ((change - CHANGE_THRESHOLD) / CHANGE_RAMP).clamp(0.0, 1.0)
    m = torch.nn.functional.max_pool2d(m, 5, stride=1, padding=2)
    return torch.nn.functional.avg_pool2d(m, 7, stride=1, padding=3, count_include_pad=False)


def replace_weights(base: Tensor, edited: Tensor) -> Tensor:
    """(B, 1, S, S) in [0, 1]: where the decoder's change D(mu, a) -> D(mu, a') is so large that the photo's own
    detail there goes too (REPLACE_THRESHOLD); smoothed over 5 pixels. The paste scales it by its mask."""
    change = (edited - base).abs().mean(dim=1, keepdim=True)
    w = ((change - REPLACE_THRESHOLD) / REPLACE_RAMP).clamp(0.0, 1.0)
    return torch.nn.functional.avg_pool2d(w, 5, stride=1, padding=2, count_include_pad=False)


def changed_attributes(cond_before: Tensor, cond_after: Tensor) -> Tensor:
    """(B, A) bool: the attributes an edit changes, from the decoder conditions before and after it (B, A)."""
    return (cond_after - cond_before).abs() > 1e-6


def replacing(names: list[str]) -> Tensor:
    """(A,) bool over the model's attributes: those whose edit replaces the photo's detail (REPLACING_ATTRIBUTES)."""
    return torch.tensor([n in REPLACING_ATTRIBUTES for n in names])


def replace_masks(paste: np.ndarray, base: Tensor, edited: Tensor, cond_before: Tensor, cond_after: Tensor,
                  which: Tensor) -> np.ndarray:
    """(B, S, S) float32 in [0, paste]: where the photo's own detail gives way to D(mu, a), the paste weights times
    replace_weights for faces whose edit changes an attribute of `which` ((A,) bool, `replacing`); 0 elsewhere."""
    asked = (changed_attributes(cond_before, cond_after) & which).any(dim=1)  # (B,)
    return paste * (replace_weights(base, edited)[:, 0] * asked[:, None, None]).numpy()


def paste_masks(mask: Tensor, feather: np.ndarray, change: Tensor | None = None) -> np.ndarray:
    """The model's edit masks (B, 1, S, S) in [0, 1], widened to `change` (change_masks) where given -> (B, S, S)
    float32 paste weights: values under MASK_FLOOR become exactly 0 (those pixels stay the photo's own), the rest
    rescaled to [0, 1], times the border feather."""
    if change is not None:
        mask = torch.maximum(mask, change)
    m = ((mask[:, 0] - MASK_FLOOR) / (1.0 - MASK_FLOOR)).clamp(0.0, 1.0).numpy().astype(np.float32)
    return m * feather[None]


@dataclass(frozen=True)
class EditRegions:
    """Where each attribute's edit may reach in the crop (the card's edit_regions, model/regions.py)."""
    maps: Tensor  # (A, S, S) in [0, 1]; ones for an attribute without a map
    mapped: Tensor  # (A,) bool: the attributes that have one


def read_edit_regions(card: dict, names: list[str], size: int) -> EditRegions | None:
    """The card's edit_regions (per attribute a square grid, rows of two hex digits a value: 00 = 0, ff = 1)
    upsampled to the crop size S; None for a card without any (every edit may reach the whole learned mask)."""
    spec = card.get("edit_regions")
    if not spec:
        return None
    maps, mapped = torch.ones(len(names), size, size), torch.zeros(len(names), dtype=torch.bool)
    for name, rows in spec.get("maps", {}).items():
        try:
            grid = torch.tensor([list(bytes.fromhex(r)) for r in rows], dtype=torch.float32) / 255.0
        except (TypeError, ValueError):  # not strings of hex digits, or rows of different lengths
            grid = torch.empty(0)
        if name not in names or grid.ndim != 2 or grid.shape[0] != grid.shape[1] or grid.shape[0] < 2:
            raise ArtifactError(f"model card: edit_regions[{name!r}] is not a square grid of hex values for one "
                                f"of the model's attributes")
        i = names.index(name)
        maps[i] = torch.nn.functional.interpolate(grid[None, None], size=(size, size), mode="bilinear",
                                                  align_corners=False)[0, 0].clamp(0.0, 1.0)
        mapped[i] = True
    return EditRegions(maps, mapped) if mapped.any() else None


def region_masks(regions: EditRegions, cond_before: Tensor, cond_after: Tensor) -> np.ndarray:
    """(B, S, S) float32 in [0, 1]: how far each face's edit may reach. An edit that changes only mapped attributes
    reaches the union of their maps; one that changes any other attribute (skin, age, sex) is not bounded."""
    changed = changed_attributes(cond_before, cond_after)
    bounded = changed.any(dim=1) & ~(changed & ~regions.mapped).any(dim=1)  # (B,)
    mapped = regions.mapped
    reach = (regions.maps[mapped][None] * changed[:, mapped, None, None]).amax(dim=1)  # (B, S, S); 0 if none mapped
    return torch.where(bounded[:, None, None], reach, torch.ones_like(reach)).numpy().astype(np.float32)


def learned_pastes(mask: Tensor, base: Tensor, edited: Tensor, cond_before: Tensor, cond_after: Tensor,
                   feather: np.ndarray, which: Tensor, regions: EditRegions | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A v2 model's paste of the edit D(mu, a) -> D(mu, a') ((B, 3, S, S), decoder conditions (B, A)): where the change
    is pasted (paste_masks of its learned `mask` widened to the change, inside the edit's region where the card maps
    one) and where the photo's detail is replaced (replace_masks), both (B, S, S) float32. The service and the
    export's calibration both paste with this."""
    paste = paste_masks(mask, feather, change_masks(base, edited))
    if regions is not None:
        paste = paste * region_masks(regions, cond_before, cond_after)
    return paste, replace_masks(paste, base, edited, cond_before, cond_after, which)


def to_pixels(x: Tensor) -> np.ndarray:
    """(B, 3, S, S) in [-1, 1] -> (B, S, S, 3) float32 in pixel units (0..255 scale, unclipped)."""
    return ((x + 1.0) * 127.5).permute(0, 2, 3, 1).numpy().astype(np.float32)


class Editor:
    def __init__(self, model: LoadedModel, *, max_faces: int = 8, torch_threads: int = 0):
        if torch_threads > 0:
            torch.set_num_threads(torch_threads)
        crop_box = tuple(model.card.get("crop", {}).get("box_ltrb", ()))
        if crop_box != face_ops.CELEBA_CROP_BOX:
            raise ArtifactError(f"model {model.version} was trained on crop {crop_box}; face alignment is "
                                f"calibrated for {face_ops.CELEBA_CROP_BOX}")
        self.model = model
        self.module = model.module
        self.size = model.resolution
        self.catalog = AttributeCatalog(model.attributes)
        self.max_faces = max_faces
        # Scales every requested change, and caps how far the decoder's condition may go, per attribute (A,): both
        # calibrated at export (scripts/export.py) so that strength 1 gives a visible edit.
        self.edit_gain, self.condition_limit = edit_settings(model.card, model.attributes)
        # Model v2 predicts where each edit happens (card: learned_mask); v1 gets the fixed ellipse.
        self.learned_mask = bool(model.card.get("learned_mask", False))
        self.feather = crop_feather(self.size) if self.learned_mask else face_ops.face_mask(self.size)
        self.replacing = replacing(model.attributes)
        self.regions = read_edit_regions(model.card, list(model.attributes), self.size) if self.learned_mask else None
        prevalence = model.card.get("attribute_prevalence")
        self.prior = torch.tensor([prevalence[n] for n in self.catalog.names] if prevalence else
                                  [0.5] * len(self.catalog.names))
        self.label_bank = read_label_bank(model.card)
        # New faces' latent noise is scaled by this (the "truncation" of BigGAN and Glow's temperature): the tails of
        # the latent fit decode to distorted faces more often than its middle. Cards without it: 1.
        self.generation_temperature = float(model.card.get("generation_temperature", 1.0))

    # ---- stages -------------------------------------------------------------------------------------------
    @tracer.capture_method
    def find_faces(self, rgb: np.ndarray) -> list[face_ops.DetectedFace]:
        detected = face_ops.detect_faces(rgb, crop_size=self.size, max_faces=self.max_faces)
        # Only frontal faces are analysed and edited (and numbered): a turned face does not fit the model's crop,
        # and its edit would be silently wrong.
        found = [f for f in detected if f.frontal]
        metrics.add_metric(name="FacesFound", unit="Count", value=len(found))
        if not found and detected:
            raise FaceNotFrontal("the face in the image is turned too far from the camera to be edited; send a "
                                 "photo where the face looks roughly toward the camera",
                                 faces_found=len(detected))
        if not found:
            raise NoFaceFound("no face was found in the image; send a photo with a clearly visible, roughly "
                              "frontal face at least about 5% as wide as the photo's shorter side")
        return found

    def select(self, found: list[face_ops.DetectedFace], which: str | int) -> list[tuple[int, face_ops.DetectedFace]]:
        if which == "all":
            return list(enumerate(found))
        if which == "largest":
            return [(0, found[0])]  # detect_faces sorts largest first
        if not 0 <= which < len(found):
            raise FaceIndexOutOfRange(f"face index {which} is out of range: {len(found)} face(s) found",
                                      faces_found=len(found))
        return [(which, found[which])]

    def preprocess(self, rgb: np.ndarray, faces: list[face_ops.DetectedFace]) -> tuple[list[np.ndarray], Tensor]:
        crops = [face_ops.warp_to_crop(rgb, f) for f in faces]
        return crops, to_model_input(crops)

    @tracer.capture_method
    def encode(self, x: Tensor) -> Encoded:
        with inference():
            mu, _, logits, skip = encoder_outputs(self.module(x))
        return Encoded(mu=mu, probs=torch.sigmoid(logits), skip=skip)

    def plan(self, edits: dict[str, float | str]) -> list[PlannedEdit]:
        """Validate names and values: a number is a target presence in [0, 1]; a signed string like "+0.3"
        or "-0.5" is a change of presence in [-1, 1]."""
        planned = []
        for name, raw in edits.items():
            attr = self.catalog.resolve(name)
            is_delta = isinstance(raw, str)
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise InvalidRequest(f"edit value for {name!r} must be a number in [0, 1] or a signed change "
                                     "like \"+0.3\"", attribute=name) from None
            if is_delta and not (raw.strip().startswith(("+", "-")) and -1.0 <= value <= 1.0):
                raise InvalidRequest(f"a change for {name!r} is written \"+x\" or \"-x\" with x in [0, 1]",
                                     attribute=name, valid_range=[-1.0, 1.0])
            if not is_delta and not 0.0 <= value <= 1.0:
                raise InvalidRequest(f"target for {name!r} must be in [0, 1], got {value}", attribute=name,
                                     valid_range=[0.0, 1.0])
            if attr.inverted:  # "beard": 1 means No_Beard = 0
                value = -value if is_delta else 1.0 - value
            planned.append(PlannedEdit(index=attr.index, value=value, is_delta=is_delta))
        return planned + self._implied(planned)

    def _implied(self, planned: list[PlannedEdit]) -> list[PlannedEdit]:
        """Targets that turn an attribute on also turn off what it excludes (black hair -> not blond, brown or
        gray), unless the request sets those itself."""
        asked = {p.index for p in planned}
        implied: dict[int, PlannedEdit] = {}
        for p in planned:
            if p.is_delta or p.value <= 0.5:
                continue
            for other in EXCLUSIONS.get(self.catalog.names[p.index], ()):
                i = self.catalog.index.get(other)
                if i is not None and i not in asked:
                    implied[i] = PlannedEdit(index=i, value=0.0, is_delta=False)
        return list(implied.values())

    def apply(self, probs: Tensor, planned: list[PlannedEdit], strength: float) -> Tensor:
        """a' = a + g * strength * (target - a) for targets, a + g * strength * delta for changes, with g the
        attribute's edit gain from the model card."""
        if not 0.0 <= strength <= MAX_STRENGTH:
            raise InvalidRequest(f"strength must be in [0, {MAX_STRENGTH}], got {strength}",
                                 valid_range=[0.0, MAX_STRENGTH])
        edited = probs.clone()
        for p in planned:
            change = p.value if p.is_delta else p.value - probs[:, p.index]
            edited[:, p.index] = probs[:, p.index] + self.edit_gain[p.index] * strength * change
        return edited

    @tracer.capture_method
    def decode(self, mu: Tensor, probs: Tensor, skip: Tensor | None = None) -> Tensor:
        cond = condition(probs, self.condition_limit)
        with inference():
            return self.module.decode(*with_skip(skip, mu, cond))

    def decode_edit(self, mu: Tensor, cond_before: Tensor, cond_after: Tensor, skip: Tensor | None = None
                    ) -> tuple[Tensor, Tensor, np.ndarray, np.ndarray]:
        """D(mu, a) and D(mu, a') (B, 3, S, S) in [-1, 1], decoded in one batch; where the change is pasted, (B, S, S)
        float32 in [0, 1] (the learned mask widened to the change, floored, times the border feather; v1: the
        ellipse); and where the photo's own detail is replaced too, (B, S, S) float32 in [0, paste] (v1: nowhere).
        Takes decoder conditions, so scripts/evaluate.py measures exactly this."""
        with inference():
            if self.learned_mask:
                base, edited, mask = self.module.edit(*with_skip(skip, mu, cond_before, cond_after))
                return base, edited, *learned_pastes(mask, base, edited, cond_before, cond_after, self.feather,
                                                     self.replacing, self.regions)
            n = mu.shape[0]
            decoded = self.module.decode(torch.cat([mu, mu]), torch.cat([cond_before, cond_after]))  # (2B, 3, S, S)
        paste = np.repeat(self.feather[None], n, axis=0)
        return decoded[:n], decoded[n:], paste, np.zeros_like(paste)

    @tracer.capture_method
    def pastes(self, mu: Tensor, before: Tensor, after: Tensor, skip: Tensor | None = None) -> Paste:
        """The edit from attribute presences `before` to `after` (B, 40) for each face, ready to paste."""
        limit = self.condition_limit
        base, edited, mask, replace = self.decode_edit(mu, condition(before, limit), condition(after, limit), skip)
        return Paste(to_residual(edited - base), mask, replace, to_pixels(base))

    @tracer.capture_method
    def postprocess(self, rgb: np.ndarray, faces: list[face_ops.DetectedFace], paste: Paste) -> np.ndarray:
        out = rgb
        for i, face in enumerate(faces):
            out = face_ops.blend_residual(out, paste.residual[i], face, paste.mask[i], paste.replace[i],
                                          paste.base[i])
        return out

    # ---- use cases ----------------------------------------------------------------------------------------
    def analyze(self, rgb: np.ndarray) -> list[FaceResult]:
        found = self.find_faces(rgb)
        _, x = self.preprocess(rgb, found)
        enc = self.encode(x)
        return [FaceResult(i, f, self.catalog.scores(p)) for i, (f, p) in enumerate(zip(found, enc.probs))]

    @tracer.capture_method
    def edit(self, rgb: np.ndarray, planned: list[PlannedEdit], *, which: str | int = "largest",
             strength: float = 1.0, measure: bool = True) -> tuple[np.ndarray, list[FaceResult]]:
        """The photo with the planned edits pasted in, and per face the attributes before and (with `measure`) after:
        an answer that is only the image skips re-encoding the edited crops (~4 ms of a 512 px edit with v2)."""
        chosen = self.select(self.find_faces(rgb), which)
        faces = [f for _, f in chosen]
        crops, x = self.preprocess(rgb, faces)
        enc = self.encode(x)
        after = self.apply(enc.probs, planned, strength)
        paste = self.pastes(enc.mu, enc.probs, after, enc.skip)
        edited = self.postprocess(rgb, faces, paste)
        if not measure:
            return edited, [FaceResult(i, f, self.catalog.scores(b)) for (i, f), b in zip(chosen, enc.probs)]
        # Measure the result: re-encode the edited crops as the service returns them (mask applied).
        edited_crops = [paste.onto_crop(i, c) for i, c in enumerate(crops)]
        measured = self.encode(to_model_input(edited_crops)).probs
        results = [FaceResult(i, f, self.catalog.scores(b), self.catalog.scores(a))
                   for (i, f), b, a in zip(chosen, enc.probs, measured)]
        return edited, results

    def generate(self, planned: list[PlannedEdit], *, count: int, seed: int, size: int) -> list[np.ndarray]:
        """New faces: latents drawn (seeded) from the artifact's fit of real faces' latents, the noise scaled by the
        card's generation_temperature. Each face's attributes are a real face's (a row of the card's label bank
        agreeing best with what the caller set), then the caller's settings; a card without a bank gives the
        attributes not set their training-set prevalence."""
        generator = torch.Generator().manual_seed(seed)
        eps = self.generation_temperature * torch.randn(count, self.model.latent_dim, generator=generator)
        if self.label_bank is not None:
            wanted = {p.index: p.value for p in planned if not p.is_delta}
            probs = draw_label_rows(self.label_bank, wanted, count, generator)
        else:
            probs = self.prior.expand(count, -1).clone()
        for p in planned:
            probs[:, p.index] = probs[:, p.index] + p.value if p.is_delta else p.value
        with inference():
            z = self.module.sample_latent(eps)
        images = to_pixels(self.decode(z, probs))
        return [resize_square(np.clip(im, 0, 255).round().astype(np.uint8), size) for im in images]

    def interpolate_attributes(self, rgb: np.ndarray, plan_start: list[PlannedEdit], plan_end: list[PlannedEdit], *,
                               frames: int, which: str | int = "largest", strength: float = 1.0) -> list[np.ndarray]:
        """The photo, edited from the `start` attribute setting to `end` in `frames` steps."""
        chosen = self.select(self.find_faces(rgb), which)
        faces = [f for _, f in chosen]
        _, x = self.preprocess(rgb, faces)
        enc = self.encode(x)
        a0 = self.apply(enc.probs, plan_start, strength)
        a1 = self.apply(enc.probs, plan_end, strength)
        # Several frames' decodes per model call (at most FRAME_BATCH faces' worth), not one call per frame.
        n, per_call = len(faces), max(1, FRAME_BATCH // len(faces))
        ts = np.linspace(0.0, 1.0, frames)
        out = []
        for start in range(0, frames, per_call):
            chunk = ts[start:start + per_call]
            after = torch.cat([a0 + float(t) * (a1 - a0) for t in chunk])  # (len(chunk) * n, 40)
            paste = self.pastes(enc.mu.repeat(len(chunk), 1), enc.probs.repeat(len(chunk), 1), after,
                                repeat_skip(enc.skip, len(chunk)))
            out += [self.postprocess(rgb, faces, paste.rows(i * n, (i + 1) * n)) for i in range(len(chunk))]
        return out

    def interpolate_faces(self, rgb_a: np.ndarray, rgb_b: np.ndarray, *, frames: int, size: int) -> list[np.ndarray]:
        """Morph the largest face of one photo into the largest face of another through latent and attribute
        interpolation. Each frame is the decoded morph plus a cross-fade of the two photos' fine detail (what the
        decoder cannot reproduce), so the ends are the two aligned input faces at `size` pixels."""
        fa, fb = self.find_faces(rgb_a)[0], self.find_faces(rgb_b)[0]
        _, x = self.preprocess(rgb_a, [fa])
        _, y = self.preprocess(rgb_b, [fb])
        enc = self.encode(torch.cat([x, y]))
        recon = self.decode(enc.mu, enc.probs, enc.skip)
        sharp = [face_ops.warp_to_crop(img, face_ops.with_crop_size(f, size)).astype(np.float32)
                 for img, f in ((rgb_a, fa), (rgb_b, fb))]
        detail = [s - _upsample(r, size) for s, r in zip(sharp, to_pixels(recon))]
        ts = torch.linspace(0.0, 1.0, frames)[:, None]
        mus = enc.mu[0:1] + ts * (enc.mu[1:2] - enc.mu[0:1])  # (F, latent)
        probs = enc.probs[0:1] + ts * (enc.probs[1:2] - enc.probs[0:1])  # (F, 40)
        skips = None if enc.skip is None else enc.skip[0:1] + ts[:, :, None, None] * (enc.skip[1:2] - enc.skip[0:1])
        morphs = to_pixels(self.decode(mus, probs, skips))
        out = []
        for t, m in zip(ts[:, 0].tolist(), morphs):
            frame = _upsample(m, size) + (1 - t) * detail[0] + t * detail[1]
            out.append(np.clip(frame, 0, 255).round().astype(np.uint8))
        return out


def _upsample(pixels: np.ndarray, size: int) -> np.ndarray:
    """(S, S, 3) float pixels -> (size, size, 3) float, bilinear (a decoded face is smooth; nothing to keep)."""
    t = torch.from_numpy(pixels).permute(2, 0, 1)[None]  # (1, 3, S, S)
    up = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return up[0].permute(1, 2, 0).numpy()
