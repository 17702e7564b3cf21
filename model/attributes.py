"""The 40 CelebA attributes in the order of `list_attr_celeba.txt` (the model's attribute axis)."""

CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
    "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin",
    "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
    "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
    "Wearing_Necktie", "Young",
)
NUM_ATTRIBUTES = len(CELEBA_ATTRIBUTES)

# The 13 attributes the AttGAN/STGAN protocol edits and measures (see ../shared/DESIGN.md).
EDIT_EVAL_ATTRIBUTES: tuple[str, ...] = (
    "Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Bushy_Eyebrows", "Eyeglasses",
    "Male", "Mouth_Slightly_Open", "Mustache", "No_Beard", "Pale_Skin", "Young",
)

# Predicted but never edited: "Attractive" is a judgement, not a feature of a face, and "Blurry" describes the
# photo (handler/attributes.py holds the service's copy).
NOT_EDITABLE: frozenset[str] = frozenset({"Attractive", "Blurry"})

# Edits that happen in the hair, outside the face the mask sparsity otherwise keeps the edit to
# (TrainSettings.hair_mask_sparsity_scale).
HAIR_ATTRIBUTES: frozenset[str] = frozenset({
    "Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Receding_Hairline", "Straight_Hair",
    "Wavy_Hair",
})

# Edits that are a change of colour: TrainSettings.colour_chroma_scale lowers the colour-change penalty for them
# (at full weight, chain segments 5-15, it held blond, brown and pale skin to a few tenths or less).
COLOUR_ATTRIBUTES: frozenset[str] = frozenset({"Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Pale_Skin"})
