"""How well new faces (/v1/generate) show what they are asked for: for each evaluated attribute, faces generated with
only that attribute set on, and as many with it set off; a judge reading the asked value is a hit. And how many
generated faces a face detector finds. scripts/evaluate.py wires in the service's own Editor and detector, so the
card's latent prior and label bank are what is measured."""

from collections.abc import Callable

import numpy as np
from torch import nn

from model.attributes import CELEBA_ATTRIBUTES
from model.data import to_tensor_batch
from model.judge import judge_predictions

# (attribute, presence 0/1, count, seed) -> count uint8 faces (S, S, 3) in the model's crop
Generate = Callable[[str, float, int, int], list[np.ndarray]]


def generation_accuracy(generate: Generate, judges: dict[str, nn.Module], attributes: list[str],
                        found: Callable[[np.ndarray], bool], *, per_value: int = 16, seed: int = 0) -> dict:
    """{"accuracy": {judge: (A,) share of faces read as asked}, "found_rate": share that `found` finds,
    "faces": how many were generated}."""
    hits = {name: np.zeros(len(attributes)) for name in judges}
    n_found = n_faces = 0
    for k, attribute in enumerate(attributes):
        column = CELEBA_ATTRIBUTES.index(attribute)
        for value in (1.0, 0.0):
            faces = generate(attribute, value, per_value, seed + 2 * k + int(value))
            x = to_tensor_batch(np.stack(faces))
            for name, judge in judges.items():
                seen = judge_predictions(judge, x)[:, column].numpy()
                hits[name][k] += (seen == bool(value)).sum()
            n_found += sum(found(face) for face in faces)
            n_faces += len(faces)
    return {"accuracy": {name: h / (2 * per_value) for name, h in hits.items()}, "found_rate": n_found / n_faces,
            "faces": n_faces}


def found_in_grey_scene(face: np.ndarray, detect: Callable[[np.ndarray], list]) -> bool:
    """Whether `detect` (the service's face detector, scene -> faces with .frontal) finds the generated face (S, S, 3)
    as a frontal face, pasted into a plain grey scene three times its side."""
    size = face.shape[0]
    scene = np.full((3 * size, 3 * size, 3), 128, np.uint8)
    scene[size:2 * size, size:2 * size] = face
    return any(f.frontal for f in detect(scene))
