"""Train the judge (model/judge.py), the independent attribute classifier that scripts/evaluate.py uses to
measure edits. Train split only; reports its accuracy on the test split into the judge's card.

    python scripts/train_judge.py                          # judge64: model/weights/judge64.pt and .json
    python scripts/train_judge.py --arch resnet128 --width 24 --out model/weights/judge128.pt
"""

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from model.attributes import CELEBA_ATTRIBUTES, EDIT_EVAL_ATTRIBUTES  # noqa: E402
from model.data import load_split, to_tensor_batch  # noqa: E402
from model.judge import JUDGE_WEIGHTS, JUDGES, judge_predictions, save_judge  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "celeba128"), help="CelebA folder")
parser.add_argument("--cache-dir", default=str(ROOT / ".cache"), help="decoded image cache")
parser.add_argument("--out", default=str(JUDGE_WEIGHTS), help="weights file (its card goes next to it as .json)")
parser.add_argument("--epochs", type=int, default=4)
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--lr", type=float, default=2e-3)
parser.add_argument("--arch", default="allconv64", choices=sorted(JUDGES), help="judge architecture")
parser.add_argument("--width", type=int, default=32)
parser.add_argument("--seed", type=int, default=1)
parser.add_argument("--train-limit", type=int, help="first N training images only (smoke tests)")
parser.add_argument("--test-limit", type=int, help="first N test images only (smoke tests)")
parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
args = parser.parse_args()

if args.threads:
    torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
rng = np.random.default_rng(args.seed)
judge = JUDGES[args.arch](width=args.width)
size = judge.resolution
train = load_split(args.data_dir, "train", size=size, cache_dir=args.cache_dir, limit=args.train_limit)
test = load_split(args.data_dir, "test", size=size, cache_dir=args.cache_dir, limit=args.test_limit)
steps = args.epochs * (len(train) // args.batch_size)
optimizer = torch.optim.AdamW(judge.parameters(), lr=args.lr, weight_decay=1e-4)
scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=max(1, steps))
print(f"{len(train)} training images, {sum(p.numel() for p in judge.parameters()) / 1e6:.2f}M parameters, {steps} steps")

start, step = time.time(), 0
for epoch in range(args.epochs):
    order = rng.permutation(len(train))
    for b in range(len(train) // args.batch_size):
        idx = np.sort(order[b * args.batch_size:(b + 1) * args.batch_size])
        x = to_tensor_batch(train.images[idx])
        if rng.random() < 0.5:  # horizontal flip: CelebA attributes are mirror-symmetric
            x = x.flip(3)
        labels = torch.from_numpy(train.labels[idx])
        loss = F.binary_cross_entropy_with_logits(judge(x), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        step += 1
        if step % 50 == 0:
            print(f"epoch {epoch + 1} step {step}/{steps} loss {loss.item():.4f} "
                  f"{step * args.batch_size / (time.time() - start):.0f} img/s", flush=True)

judge.eval()
correct = (judge_predictions(judge, to_tensor_batch(test.images)).float()
           == torch.from_numpy(test.labels)).float().mean(0).numpy()
per_attr = {a: round(float(c), 4) for a, c in zip(CELEBA_ATTRIBUTES, correct)}
card = {
    "name": "face-interpolator-judge",
    "purpose": "independent attribute classifier for measuring edits; never used to train the CVAE",
    "trained": f"{dt.date.today():%Y-%m-%d}",
    "training": {"data": f"CelebA train split (official partition), {size}x{size}", "images": len(train),
                 "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "arch": args.arch, "width": args.width,
                 "seed": args.seed, "minutes": round((time.time() - start) / 60, 1)},
    "test": {"images": len(test), "accuracy_mean_40": round(float(correct.mean()), 4),
             "accuracy_mean_13": round(float(np.mean([per_attr[a] for a in EDIT_EVAL_ATTRIBUTES])), 4),
             "accuracy": per_attr},
}
save_judge(judge, args.out, card)
print(f"test accuracy: mean over 40 {card['test']['accuracy_mean_40']:.4f}, over the 13 edited "
      f"{card['test']['accuracy_mean_13']:.4f}; wrote {args.out}")
