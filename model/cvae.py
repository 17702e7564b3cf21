"""Conditional VAE over 64x64 CelebA crops.

encode(x) -> (mu, logvar, attr_logits): latent Gaussian plus a head predicting the 40 attributes.
decode(z, attrs) -> image in [-1, 1], conditioned on attributes given in [-1, 1] (-1 absent, +1 present;
values beyond that range exaggerate an edit).
"""

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from model.attributes import NUM_ATTRIBUTES


@dataclass
class CVAEConfig:
    image_size: int = 64
    latent_dim: int = 128
    num_attributes: int = NUM_ATTRIBUTES
    base_channels: int = 32  # channels of the first encoder stage; doubled at every downsampling

    def to_dict(self) -> dict:
        return asdict(self)


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1), nn.GroupNorm(8, cout), nn.LeakyReLU(0.2))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.GroupNorm(8, cout), nn.LeakyReLU(0.2))


class Encoder(nn.Module):
    def __init__(self, config: CVAEConfig):
        super().__init__()
        c = config.base_channels
        self.features = nn.Sequential(_down(3, c), _down(c, 2 * c), _down(2 * c, 4 * c), _down(4 * c, 8 * c))
        flat = 8 * c * (config.image_size // 16) ** 2
        self.to_mu = nn.Linear(flat, config.latent_dim)
        self.to_logvar = nn.Linear(flat, config.latent_dim)
        self.attr_head = nn.Sequential(nn.Linear(flat, 512), nn.LeakyReLU(0.2), nn.Linear(512, config.num_attributes))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = self.features(x).flatten(1)  # (B, 8c * s/16 * s/16)
        return self.to_mu(h), self.to_logvar(h), self.attr_head(h)


def _with_attrs(h: Tensor, attrs: Tensor) -> Tensor:
    """Feature map with the attributes appended as constant channels."""
    return torch.cat([h, attrs[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])], dim=1)


class Decoder(nn.Module):
    """Attributes enter at the input and again, tiled, before every upsampling stage, so that coarse edits (face
    shape, hair colour) and fine ones (glasses, moustache) can both be driven by them."""

    def __init__(self, config: CVAEConfig):
        super().__init__()
        c = config.base_channels
        self.start = config.image_size // 16
        self.top_channels = 8 * c
        n_attr = config.num_attributes
        self.fc = nn.Linear(config.latent_dim + n_attr, self.top_channels * self.start**2)
        self.up1 = _up(8 * c + n_attr, 4 * c)
        self.up2 = _up(4 * c + n_attr, 2 * c)
        self.up3 = _up(2 * c + n_attr, c)
        self.up4 = nn.ConvTranspose2d(c + n_attr, 3, 4, 2, 1)

    def forward(self, z: Tensor, attrs: Tensor) -> Tensor:
        b = z.shape[0]
        h = self.fc(torch.cat([z, attrs], dim=1)).view(b, self.top_channels, self.start, self.start)  # (B, 8c, 4, 4)
        h = self.up1(_with_attrs(h, attrs))  # (B, 4c, 8, 8)
        h = self.up2(_with_attrs(h, attrs))  # (B, 2c, 16, 16)
        h = self.up3(_with_attrs(h, attrs))  # (B, c, 32, 32)
        return torch.tanh(self.up4(_with_attrs(h, attrs)))  # (B, 3, 64, 64)


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

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.encoder(x)

    @staticmethod
    def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def decode(self, z: Tensor, attrs: Tensor) -> Tensor:
        return self.decoder(z, attrs)

    def forward(self, x: Tensor, attrs: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Training pass: reconstruct x under its own (given) attributes from a sampled latent."""
        mu, logvar, attr_logits = self.encode(x)
        recon = self.decode(self.reparameterize(mu, logvar), attrs)
        return recon, mu, logvar, attr_logits


def labels_to_condition(labels01: Tensor) -> Tensor:
    """Attribute presence in [0, 1] -> the decoder's condition in [-1, 1]."""
    return labels01 * 2.0 - 1.0
