"""Conditional VAE over 128x128 CelebA crops, with a learned edit mask (model v2).

encode(x) -> (mu, logvar, attr_logits): latent Gaussian plus a head predicting the 40 attributes.
decode(z, attrs) -> image in [-1, 1], conditioned on attributes given in [-1, 1] (-1 absent, +1 present;
values beyond that range exaggerate an edit).
edit(z, attrs, target) -> (D(z, a), D(z, a'), M): both decodes in one batch, and the map M in [0, 1] of where the
edit happens (GANimation, Pumarola et al. 2018; SaGAN, PA-GAN use it for CelebA attributes). The service returns
crop + M * (D(z, a') - D(z, a)), so pixels the mask leaves alone stay the photo's own.

Upsampling is nearest-neighbour resize + 3x3 convolution (Odena et al., "Deconvolution and Checkerboard Artifacts",
2016): stride-2 transposed convolutions, as in model v1, leave a checkerboard on every decode.
"""

from dataclasses import asdict, dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.attributes import NUM_ATTRIBUTES


@dataclass
class CVAEConfig:
    image_size: int = 128
    latent_dim: int = 256
    num_attributes: int = NUM_ATTRIBUTES
    # encoder stage widths, each halving the resolution; the decoder mirrors them
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128, 256])
    attr_max_resolution: int = 32  # the attributes are tiled into decoder stages whose input is at most this size
    mask_channels: int = 16
    # The encoder's features at this resolution are added into the decoder's (AttGAN's shortcut, Liu et al.'s
    # STGAN): the decoder then knows where the eyes and mouth of this photo are, instead of guessing from a 4x4
    # latent. 0: none (every model up to step 60,507).
    skip_resolution: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def bottom(self) -> int:
        return self.image_size // 2 ** len(self.channels)


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


class _Up(nn.Module):
    """x2 nearest resize + 3x3 conv + BatchNorm + LeakyReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.norm = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.norm(self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))), 0.2)


class Encoder(nn.Module):
    def __init__(self, config: CVAEConfig):
        super().__init__()
        widths = [3] + list(config.channels)
        self.features = nn.Sequential(*[_down(a, b) for a, b in zip(widths[:-1], widths[1:])])
        flat = widths[-1] * config.bottom**2
        self.to_mu = nn.Linear(flat, config.latent_dim)
        self.to_logvar = nn.Linear(flat, config.latent_dim)
        self.attr_head = nn.Sequential(nn.Linear(flat, 512), nn.LeakyReLU(0.2), nn.Linear(512, config.num_attributes))

        # index of the stage whose output is at skip_resolution (-1: no skip)
        sizes = [config.image_size // 2 ** (i + 1) for i in range(len(config.channels))]
        self.skip_stage = sizes.index(config.skip_resolution) if config.skip_resolution in sizes else -1
        if config.skip_resolution and self.skip_stage < 0:
            raise ValueError(f"skip_resolution {config.skip_resolution} is none of the encoder's sizes {sizes}")

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar, logits, _ = self.with_skip(x)
        return mu, logvar, logits

    def with_skip(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """forward plus the features at skip_resolution (B, C, r, r); (B, 0, 1, 1) when the model has no skip."""
        skip = x.new_zeros(x.shape[0], 0, 1, 1)
        h = x
        for i, stage in enumerate(self.features):
            h = stage(h)
            if i == self.skip_stage:
                skip = h
        h = h.flatten(1)  # (B, C_last * bottom * bottom)
        return self.to_mu(h), self.to_logvar(h), self.attr_head(h), skip


def _with_attrs(h: Tensor, attrs: Tensor) -> Tensor:
    """Feature map with the attributes appended as constant channels: (B, C + A, H, W)."""
    return torch.cat([h, attrs[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])], dim=1)


class Decoder(nn.Module):
    """Attributes enter at the input and again, tiled, at every stage up to attr_max_resolution, so coarse edits
    (face shape, hair colour) and finer ones (glasses, moustache) can both be driven by them. Returns the image and
    the last feature map (what the mask head reads)."""

    def __init__(self, config: CVAEConfig):
        super().__init__()
        n_attr = config.num_attributes
        self.start = config.bottom
        widths = list(reversed(config.channels)) + [config.channels[0]]  # e.g. 256 128 64 32 16 16
        self.top_channels = widths[0]
        self.fc = nn.Linear(config.latent_dim + n_attr, widths[0] * self.start**2)
        stages = []
        self.tiled: list[bool] = []
        res = self.start
        for cin, cout in zip(widths[:-1], widths[1:]):
            tiled = res <= config.attr_max_resolution
            stages.append(_Up(cin + (n_attr if tiled else 0), cout))
            self.tiled.append(tiled)
            res *= 2
        self.stages = nn.ModuleList(stages)
        self.to_rgb = nn.Conv2d(widths[-1], 3, 3, 1, 1)
        # the encoder's skip features enter additively before the stage whose input is at skip_resolution; zero at
        # first, so a model trained without them starts out decoding exactly as before
        sizes = [self.start * 2**i for i in range(len(stages))]
        self.skip_stage = sizes.index(config.skip_resolution) if config.skip_resolution in sizes else -1
        self.skip_in = None
        if self.skip_stage >= 0:
            encoder_width = config.channels[len(config.channels) - 1 - self.skip_stage]  # its stage at that size
            self.skip_in = nn.Conv2d(encoder_width, widths[self.skip_stage], 1)
            nn.init.zeros_(self.skip_in.weight)
            nn.init.zeros_(self.skip_in.bias)

    def forward(self, z: Tensor, attrs: Tensor, skip: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """skip: the encoder's features at skip_resolution, or None (a new face); a model without a skip ignores it."""
        b = z.shape[0]
        h = self.fc(torch.cat([z, attrs], dim=1)).view(b, self.top_channels, self.start, self.start)  # (B, C, 4, 4)
        h = F.leaky_relu(h, 0.2)
        for i, stage in enumerate(self.stages):
            if i == self.skip_stage and skip is not None and self.skip_in is not None:
                h = h + self.skip_in(skip)
            h = stage(_with_attrs(h, attrs) if self.tiled[i] else h)  # (B, C_i, 2^(i+3), 2^(i+3))
        return torch.tanh(self.to_rgb(h)), h  # (B, 3, S, S), (B, C0, S, S)


class MaskHead(nn.Module):
    """Where an edit happens: reads the last decoder features of the original-attribute decode and of the edited
    one (and their difference), so it can tell which region the change of attributes touches."""

    def __init__(self, config: CVAEConfig):
        super().__init__()
        c = config.channels[0]
        self.net = nn.Sequential(nn.Conv2d(2 * c, config.mask_channels, 3, 1, 1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(config.mask_channels, 1, 3, 1, 1))

    def forward(self, base_features: Tensor, edit_features: Tensor) -> Tensor:
        h = torch.cat([edit_features, edit_features - base_features], dim=1)  # (B, 2 C0, S, S)
        return torch.sigmoid(self.net(h))  # (B, 1, S, S)


class LatentAdversary(nn.Module):
    """Predicts the 40 attributes from the latent mean (Lample et al., "Fader Networks", 2017). The encoder is
    trained to leave it at chance, which keeps attribute information out of the latent: the decoder must then
    take it from its attribute input, and changing that input changes the face."""

    def __init__(self, config: CVAEConfig, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(config.latent_dim, hidden), nn.LeakyReLU(0.2), nn.Dropout(0.3),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, config.num_attributes))

    def forward(self, mu: Tensor) -> Tensor:
        return self.net(mu)


class CVAE(nn.Module):
    def __init__(self, config: CVAEConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.mask_head = MaskHead(config)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.encoder(x)

    @staticmethod
    def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def decode(self, z: Tensor, attrs: Tensor, skip: Tensor | None = None) -> Tensor:
        return self.decoder(z, attrs, skip)[0]

    def edit(self, z: Tensor, attrs: Tensor, target: Tensor, skip: Tensor | None = None
             ) -> tuple[Tensor, Tensor, Tensor]:
        """(D(z, attrs), D(z, target), mask), both decodes in one batch of 2B."""
        n = z.shape[0]
        skips = None if skip is None else torch.cat([skip, skip])
        images, features = self.decoder(torch.cat([z, z]), torch.cat([attrs, target]), skips)  # (2B, 3, S, S), ...
        mask = self.mask_head(features[:n], features[n:])
        return images[:n], images[n:], mask

    def forward(self, x: Tensor, attrs: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Reconstruct x under its own (given) attributes from a sampled latent."""
        mu, logvar, attr_logits, skip = self.encoder.with_skip(x)
        recon = self.decode(self.reparameterize(mu, logvar), attrs, skip)  # an empty skip: ignored
        return recon, mu, logvar, attr_logits


def composite(x: Tensor, base: Tensor, edited: Tensor, mask: Tensor) -> Tensor:
    """What the service returns for an edit: the input plus the masked change of decodes."""
    return x + mask * (edited - base)


def labels_to_condition(labels01: Tensor) -> Tensor:
    """Attribute presence in [0, 1] -> the decoder's condition in [-1, 1]."""
    return labels01 * 2.0 - 1.0
