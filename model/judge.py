"""The judge: an attribute classifier of its own, used only to *measure* edits (the AttGAN/STGAN protocol).

It is trained by scripts/train_judge.py on the CelebA train split alone and is never seen by the CVAE's
training, so the CVAE cannot have learned to please it. It reads 64x64 crops in [-1, 1], like the CVAE.
"""

import json
from pathlib import Path

import torch
from torch import Tensor, nn

from model.attributes import NUM_ATTRIBUTES

JUDGE_WEIGHTS = Path(__file__).resolve().parent / "weights" / "judge64.pt"


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

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, 64, 64) in [-1, 1] -> (B, 40) attribute logits."""
        return self.head(self.features(x))


def save_judge(judge: AttributeJudge, path: str | Path, card: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"width": judge.width, "state_dict": judge.state_dict()}, path)
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")


def load_judge(path: str | Path = JUDGE_WEIGHTS) -> tuple[AttributeJudge, dict]:
    """The judge in eval mode, and its card (test accuracy, training settings)."""
    path = Path(path)
    saved = torch.load(path, map_location="cpu", weights_only=True)
    judge = AttributeJudge(width=saved["width"])
    judge.load_state_dict(saved["state_dict"])
    return judge.eval(), json.loads(path.with_suffix(".json").read_text())


@torch.inference_mode()
def judge_predictions(judge: AttributeJudge, x: Tensor, batch_size: int = 512) -> Tensor:
    """(B, 40) booleans: the attributes the judge sees as present."""
    return torch.cat([judge(x[i:i + batch_size]) > 0 for i in range(0, len(x), batch_size)])
