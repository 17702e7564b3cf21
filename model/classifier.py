"""The training classifier: an attribute classifier the generator's edits are trained against (AttGAN's L_cls_g).

Segment 1 read the edits with the critic's own attribute head. Behind spectral norm and shared with the realism
map it never learned the attributes (its loss on real faces stayed at 0.43 mean BCE over 40, about what the label
frequencies alone give), so the decoder had no reason to change anything and the learned mask closed. This network
is trained first, on real training faces only, until it reads them well, and is then frozen.

It is neither judge (model/judge.py): a different architecture (4x4 strided convolutions, LeakyReLU, max pooling)
with its own seed, and the judges are never loaded during training. It reads the crop downscaled to 64x64, so
pixel-level speckle at 128 cannot move it much.
"""

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.attributes import NUM_ATTRIBUTES


@dataclass
class ClassifierConfig:
    resolution: int = 64
    num_attributes: int = NUM_ATTRIBUTES
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])  # each halves the resolution
    # How the last feature map becomes one vector. "max" (segments 2-14) let one local patch carry an attribute,
    # and the edits learned to draw such patches (dark stripes read as bangs); "mean" asks for the whole face.
    pooling: str = "max"

    def to_dict(self) -> dict:
        return asdict(self)


class TrainingClassifier(nn.Module):
    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        widths = [3] + list(config.channels)
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1], config.num_attributes)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, S, S) in [-1, 1] at any S -> (B, 40) attribute logits, read at config.resolution."""
        if x.shape[-1] != self.config.resolution:
            x = F.interpolate(x, size=(self.config.resolution,) * 2, mode="area")
        features = self.features(x)
        return self.head(features.mean(dim=(2, 3)) if self.config.pooling == "mean" else features.amax(dim=(2, 3)))


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode (BatchNorm running statistics) and no gradients for its weights; inputs still get gradients."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module
