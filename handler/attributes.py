"""Attribute names users may send: CelebA's names, or friendly aliases, some of which invert the attribute
("beard" = not No_Beard, "old" = not Young). Built from the attribute list in the model card."""

import re
from dataclasses import dataclass

from handler.errors import UnknownAttribute

# alias -> (CelebA name, inverted)
ALIASES: dict[str, tuple[str, bool]] = {
    "smile": ("Smiling", False), "smiling": ("Smiling", False),
    "glasses": ("Eyeglasses", False), "eyeglasses": ("Eyeglasses", False),
    "blond": ("Blond_Hair", False), "blonde": ("Blond_Hair", False),
    "black_hair": ("Black_Hair", False), "brown_hair": ("Brown_Hair", False), "gray_hair": ("Gray_Hair", False),
    "grey_hair": ("Gray_Hair", False), "bald": ("Bald", False), "bangs": ("Bangs", False), "fringe": ("Bangs", False),
    "wavy_hair": ("Wavy_Hair", False), "straight_hair": ("Straight_Hair", False),
    "receding_hairline": ("Receding_Hairline", False),
    "age": ("Young", True), "old": ("Young", True), "older": ("Young", True), "young": ("Young", False),
    "beard": ("No_Beard", True), "mustache": ("Mustache", False), "moustache": ("Mustache", False),
    "goatee": ("Goatee", False), "stubble": ("5_o_Clock_Shadow", False), "sideburns": ("Sideburns", False),
    "male": ("Male", False), "masculine": ("Male", False), "female": ("Male", True), "feminine": ("Male", True),
    "mouth_open": ("Mouth_Slightly_Open", False), "open_mouth": ("Mouth_Slightly_Open", False),
    "makeup": ("Heavy_Makeup", False), "lipstick": ("Wearing_Lipstick", False), "hat": ("Wearing_Hat", False),
    "earrings": ("Wearing_Earrings", False), "necklace": ("Wearing_Necklace", False), "necktie": ("Wearing_Necktie", False),
    "tie": ("Wearing_Necktie", False), "pale": ("Pale_Skin", False), "pale_skin": ("Pale_Skin", False),
    "rosy_cheeks": ("Rosy_Cheeks", False), "blush": ("Rosy_Cheeks", False), "bushy_eyebrows": ("Bushy_Eyebrows", False),
    "arched_eyebrows": ("Arched_Eyebrows", False), "eyebrows": ("Bushy_Eyebrows", False),
    "chubby": ("Chubby", False), "double_chin": ("Double_Chin", False), "high_cheekbones": ("High_Cheekbones", False),
    "big_lips": ("Big_Lips", False), "big_nose": ("Big_Nose", False), "pointy_nose": ("Pointy_Nose", False),
    "narrow_eyes": ("Narrow_Eyes", False), "bags_under_eyes": ("Bags_Under_Eyes", False), "oval_face": ("Oval_Face", False),
}

# Predicted by /v1/analyze but not offered as edits: "Attractive" is a judgement, not a feature of a face,
# and "Blurry" describes the photo.
NOT_EDITABLE = frozenset({"Attractive", "Blurry"})

# Turning the key on implies turning these off (the AttGAN/STGAN attribute-conflict rules; model/attribute_rules.py
# holds the copy that training and evaluation use, since the service cannot import model/).
_HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
EXCLUSIONS: dict[str, tuple[str, ...]] = {
    **{c: tuple(o for o in _HAIR_COLOURS if o != c) for c in _HAIR_COLOURS},
    "Bald": ("Bangs",), "Receding_Hairline": ("Bangs",), "Bangs": ("Bald", "Receding_Hairline"),
    "Straight_Hair": ("Wavy_Hair",), "Wavy_Hair": ("Straight_Hair",),
    "Mustache": ("No_Beard",), "Goatee": ("No_Beard",),
}

GROUPS: dict[str, tuple[str, ...]] = {
    "expression": ("Smiling", "Mouth_Slightly_Open", "Narrow_Eyes"),
    "hair": ("Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Wavy_Hair", "Straight_Hair",
             "Receding_Hairline"),
    "facial_hair": ("No_Beard", "Mustache", "Goatee", "5_o_Clock_Shadow", "Sideburns"),
    "face": ("Arched_Eyebrows", "Bushy_Eyebrows", "Bags_Under_Eyes", "Big_Lips", "Big_Nose", "Pointy_Nose", "Chubby",
             "Double_Chin", "High_Cheekbones", "Oval_Face", "Pale_Skin", "Rosy_Cheeks"),
    "accessories": ("Eyeglasses", "Wearing_Hat", "Wearing_Earrings", "Wearing_Necklace", "Wearing_Necktie",
                    "Heavy_Makeup", "Wearing_Lipstick"),
    "age_gender": ("Young", "Male"),
}


EXPERIMENTAL_BELOW = 0.5  # measured edit accuracy under which an attribute is marked experimental


def measured_edit_accuracy(metrics: dict) -> dict[str, float]:
    """Per attribute, the share of test-split edits the judges saw flipped (model card `metrics`): the smaller of
    the two judges' readings where both were measured (an edit only one judge sees is not reliable)."""
    one = metrics.get("edit_accuracy") or {}
    two = metrics.get("edit_accuracy_judge128") or {}
    return {a: round(min(v, two.get(a, v)), 4) for a, v in one.items()}


def _key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip()).lower()


@dataclass(frozen=True)
class ResolvedAttribute:
    name: str  # CelebA name
    index: int  # position on the model's attribute axis
    inverted: bool  # the user's value means (1 - presence)


class AttributeCatalog:
    def __init__(self, names: list[str]):
        self.names = list(names)
        self.index = {n: i for i, n in enumerate(self.names)}
        self.editable = [n for n in self.names if n not in NOT_EDITABLE]
        self._lookup: dict[str, tuple[str, bool]] = {_key(n): (n, False) for n in self.editable}
        for alias, (target, inverted) in ALIASES.items():
            if target in self.index and target not in NOT_EDITABLE:
                self._lookup.setdefault(alias, (target, inverted))

    def resolve(self, name: str) -> ResolvedAttribute:
        hit = self._lookup.get(_key(name))
        if hit is None:
            raise UnknownAttribute(f"unknown or non-editable attribute: {name!r}", attribute=name,
                                   valid=self.editable, aliases=self.alias_list())
        return ResolvedAttribute(name=hit[0], index=self.index[hit[0]], inverted=hit[1])

    def alias_list(self) -> list[str]:
        return sorted(a for a in self._lookup if a not in {_key(n) for n in self.editable})

    def aliases_by_name(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {n: [] for n in self.editable}
        for alias, (target, inverted) in ALIASES.items():
            if target in out and alias != _key(target):
                out[target].append({"alias": alias, "inverted": inverted})
        return out

    def group_of(self, name: str) -> str:
        return next((g for g, members in GROUPS.items() if name in members), "other")

    def scores(self, probabilities) -> dict[str, float]:
        return {n: round(float(p), 4) for n, p in zip(self.names, probabilities)}
