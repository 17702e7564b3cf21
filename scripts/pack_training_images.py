"""Pack the training split's JPEGs into zip chunks small enough to travel to a lent GPU machine, one chunk per call.

    python scripts/pack_training_images.py --out-dir .gpudata     # .gpudata/c1, c2, ... (ignored by git)

The device tool sends the working tree plus named paths, at most 64 MiB a call, and `../shared` does not travel.
With the big tracked files set aside, each call can carry one ~60 MB chunk; `scripts/device_segment.sh` unpacks the
chunks into one CelebA folder on the device (the machine keeps /root between calls while it is warm) and trains.
The last chunk also holds the annotation files (gzipped), the first 8 validation faces (the preview grid) and, when
--warm-start is given, the warm start to continue from.
"""

import argparse
import gzip
import shutil
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.data import SPLITS, read_annotations  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "celeba128"))
parser.add_argument("--out-dir", default=str(ROOT / ".gpudata"))
parser.add_argument("--chunk-mb", type=float, default=60.0, help="JPEG bytes per chunk (the call limit is 64 MiB)")
parser.add_argument("--warm-start", help="a warm start to put in the last chunk")
args = parser.parse_args()

data, out = Path(args.data_dir), Path(args.out_dir)
_, partition = read_annotations(data)
train = sorted(n for n, s in partition.items() if s == SPLITS["train"])
preview = sorted(n for n, s in partition.items() if s == SPLITS["val"])[:8]

chunks: list[list[str]] = [[]]
size = 0
for name in train:
    nbytes = (data / "images" / name).stat().st_size + 100  # + the zip entry's headers
    if size + nbytes > args.chunk_mb * 1e6:
        chunks.append([])
        size = 0
    chunks[-1].append(name)
    size += nbytes
# The last chunk also carries the preview faces, the annotations and the warm start; where they would take it past
# the limit they go in a chunk of their own (one more call).
annotations = ("list_attr_celeba.txt", "list_eval_partition.txt")
extras = sum((data / "images" / n).stat().st_size + 100 for n in preview) + sum(
    (data / n).stat().st_size for n in annotations) + (Path(args.warm_start).stat().st_size if args.warm_start else 0)
if size + extras > args.chunk_mb * 1e6:
    chunks.append([])
chunks[-1] += preview

shutil.rmtree(out, ignore_errors=True)
for i, names in enumerate(chunks, 1):
    folder = out / f"c{i}"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "images.zip", "w", zipfile.ZIP_STORED) as z:  # JPEGs do not compress further
        for name in names:
            z.write(data / "images" / name, name)
    print(f"{folder}: {len(names)} images, {(folder / 'images.zip').stat().st_size / 1e6:.1f} MB")
last = out / f"c{len(chunks)}"
for name in annotations:
    with open(data / name, "rb") as src, gzip.open(last / f"{name}.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
if args.warm_start:
    shutil.copy(args.warm_start, last / "warm.pt")
print(f"{len(chunks)} chunks; annotations{' and warm start' if args.warm_start else ''} in {last}")
