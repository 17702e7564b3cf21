"""The adversarial critic: a spectral-norm PatchGAN with an attribute head (AttGAN, He et al. 2019; StarGAN,
Choi et al. 2018). Its realism map is trained with the hinge loss (Miyato et al., "Spectral Normalization for
GANs", 2018); its attribute head on real images only, so the generator cannot bend it into agreeing."""

from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from model.attributes import NUM_ATTRIBUTES


@dataclass
class CriticConfig:
    image_size: int = 128
    num_attributes: int = NUM_ATTRIBUTES
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])  # each halves the resolution

    def to_dict(self) -> dict:
        return asdict(self)


class Critic(nn.Module):
    def __init__(self, config: CriticConfig):
        super().__init__()
        self.config = config
        widths = [3] + list(config.channels)
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [spectral_norm(nn.Conv2d(a, b, 4, 2, 1)), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.realism = spectral_norm(nn.Conv2d(widths[-1], 1, 3, 1, 1))  # one score per patch
        self.attributes = nn.Sequential(spectral_norm(nn.Linear(widths[-1], 256)), nn.LeakyReLU(0.2),
                                        spectral_norm(nn.Linear(256, config.num_attributes)))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.features(x)  # (B, C, S/16, S/16)
        return self.realism(h), self.attributes(h.mean(dim=(2, 3)))  # (B, 1, S/16, S/16), (B, A)


def translate(x: Tensor, ratio: float = 0.125, generator: torch.Generator | None = None) -> Tensor:
    """DiffAugment's translation (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training", 2020):
    the batch shifted by up to ratio * size pixels, zero-filled. Applied to everything the critic sees, real and
    generated, so it cannot memorise the 37k training faces. One shift per call rather than per image: per-image
    slicing cost ~15% of a training step on CPU. Colour jitter is left out: the attribute head must read hair
    colour and skin tone."""
    _, _, h, w = x.shape
    p = int(h * ratio + 0.5)
    dy, dx = torch.randint(0, 2 * p + 1, (2,), generator=generator).tolist()
    shifted = nn.functional.pad(x, (p, p, p, p))[:, :, dy:dy + h, dx:dx + w]
    return shifted.contiguous(memory_format=torch.channels_last)  # mkldnn is slow on strided input
