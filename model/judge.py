"""The judge: an attribute classifier of its own, used only to *measure* edits (the AttGAN/STGAN protocol).

Two judges of different architecture and resolution, trained by scripts/train_judge.py on the CelebA train split
alone and never seen by the CVAE's training (nor its calibration), so the CVAE cannot have learned to please them:
- judge64 (AttributeJudge): a plain all-convolutional network reading 64x64 crops;
- judge128 (ResidualJudge): a residual network with max+average pooling reading 128x128 crops.
An edit that only one of them sees is adversarial noise, not the attribute. Both read crops in [-1, 1].
"""

import json
from pathlib import Path

import torch
from torch import Tensor, nn

from model.attributes import NUM_ATTRIBUTES

import torch.nn.functional as F

JUDGE_WEIGHTS = Path(__file__).resolve().parent / "weights" / "judge64.pt"
JUDGE128_WEIGHTS = Path(__file__).resolve().parent / "weights" / "judge128.pt"


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class AttributeJudge(nn.Module):
    """A small all-convolutional network (a different architecture from the CVAE's encoder, trained apart)."""

    def __init__(self, width: int = 32, num_attributes: int = NUM_ATTRIBUTES):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv(3, w, 2),  # 32x32
            _conv(w, 2 * w, 2), _conv(2 * w, 2 * w, 1),  # 16x16
            _conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w, 1),  # 8x8
            _conv(4 * w, 8 * w, 2), _conv(8 * w, 8 * w, 1),  # 4x4
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(8 * w, num_attributes))
        self.width = width

    arch = "allconv64"
    resolution = 64

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, 64, 64) in [-1, 1] -> (B, 40) attribute logits."""
        return self.head(self.features(x))


class _Residual(nn.Module):
    """Pre-activation-free basic block: conv-BN-ReLU-conv-BN plus a (strided 1x1) shortcut, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                                  nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class ResidualJudge(nn.Module):
    """The second judge: a small ResNet at 128x128 (5x5 stem, residual stages, max and average pooling), so it
    shares neither resolution nor architecture with the first."""

    arch = "resnet128"
    resolution = 128

    def __init__(self, width: int = 24, num_attributes: int = NUM_ATTRIBUTES):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 5, 2, 2, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),  # 64x64
            _Residual(w, 2 * w, 2),  # 32x32
            _Residual(2 * w, 4 * w, 2),  # 16x16
            _Residual(4 * w, 8 * w, 2),  # 8x8
            _Residual(8 * w, 8 * w, 2),  # 4x4
        )
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(16 * w, num_attributes))
        self.width = width

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, 128, 128) in [-1, 1] -> (B, 40) attribute logits."""
        h = self.features(x)  # (B, 8w, 4, 4)
        return self.head(torch.cat([h.amax(dim=(2, 3)), h.mean(dim=(2, 3))], dim=1))  # (B, 16w) -> (B, 40)


JUDGES: dict[str, type[nn.Module]] = {AttributeJudge.arch: AttributeJudge, ResidualJudge.arch: ResidualJudge}


def at_resolution(x: Tensor, size: int) -> Tensor:
    """Crops resized (area average down, bilinear up) to what a judge reads."""
    if x.shape[-1] == size:
        return x
    mode = "area" if x.shape[-1] > size else "bilinear"
    return F.interpolate(x, size=(size, size), mode=mode)


def save_judge(judge: nn.Module, path: str | Path, card: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"arch": judge.arch, "width": judge.width, "state_dict": judge.state_dict()}, path)
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")


def load_judge(path: str | Path = JUDGE_WEIGHTS) -> tuple[nn.Module, dict]:
    """The judge in eval mode, and its card (test accuracy, training settings)."""
    path = Path(path)
    saved = torch.load(path, map_location="cpu", weights_only=True)
    judge = JUDGES[saved.get("arch", AttributeJudge.arch)](width=saved["width"])
    judge.load_state_dict(saved["state_dict"])
    return judge.eval(), json.loads(path.with_suffix(".json").read_text())


@torch.inference_mode()
def judge_predictions(judge: nn.Module, x: Tensor, batch_size: int = 512) -> Tensor:
    """(B, 40) booleans: the attributes the judge sees as present (x at any resolution)."""
    return torch.cat([judge(at_resolution(x[i:i + batch_size], judge.resolution)) > 0
                      for i in range(0, len(x), batch_size)])
