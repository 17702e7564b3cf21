"""The edit sheet: skimage's astronaut and three faces the model generates, each edited through /v1/edit (the real
FastAPI app, in-process) with the attributes people ask for most, cropped around the face, one row per photo.

    python scripts/edit_sheet.py                                   # the bundled model -> reports/edit_sheet.png
    python scripts/edit_sheet.py --model-dir /tmp/v2 --out /tmp/v2-report/edit_sheet.png

Generated faces are pasted into a plain 512x512 scene first, so that they are found, aligned and pasted back the
way a photo is. Columns: the input, then each edit (strength 1.0), with its name above it.
"""

import argparse
import io
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

EDITS = [("smile", {"smile": 1}), ("glasses", {"glasses": 1}), ("blond", {"blond": 1}), ("older", {"young": 0}),
         ("beard", {"beard": 1}), ("male/female", None), ("bangs", {"bangs": 1})]


def png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", help="artifact folder (default: the bundled layers/model)")
    parser.add_argument("--out", default=str(ROOT / "reports" / "edit_sheet.png"))
    parser.add_argument("--seeds", default="3,11,29", help="seeds of the three generated faces")
    parser.add_argument("--cell", type=int, default=160, help="pixels per cell")
    args = parser.parse_args()
    if args.model_dir:
        os.environ["MODEL_DIR"] = str(Path(args.model_dir).resolve())

    from fastapi.testclient import TestClient
    from skimage import data

    from handler.app import app

    with TestClient(app) as client:
        photos = [("astronaut", data.astronaut())]
        for seed in (int(s) for s in args.seeds.split(",")):
            r = client.post("/v1/generate", json={"seed": seed, "size": 256})
            r.raise_for_status()
            face = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
            scene = np.full((512, 512, 3), 128, np.uint8)
            scene[128:384, 128:384] = face
            photos.append((f"generated, seed {seed}", scene))

        rows = []
        for label, rgb in photos:
            faces = client.post("/v1/analyze", json={"image_base64": _b64(png(rgb))}).json()["faces"]
            x, y, w, h = faces[0]["box"]
            side = int(1.8 * max(w, h))
            cx, cy = x + w // 2, y + h // 2 - h // 8
            box = (cx - side // 2, cy - side // 2, cx + side // 2, cy + side // 2)
            male = faces[0]["attributes"]["Male"] > 0.5
            cells = [("input", rgb)]
            for name, edits in EDITS:
                edits = edits or {"male": 0 if male else 1}
                r = client.post("/v1/edit", json={"image_base64": _b64(png(rgb)), "edits": edits, "format": "png"})
                r.raise_for_status()
                cells.append((name if name != "male/female" else ("female" if male else "male"),
                              np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))))
            rows.append((label, [(n, _crop(img, box, args.cell)) for n, img in cells]))

    c = args.cell
    sheet = Image.new("RGB", (c * (len(EDITS) + 1), (c + 16) * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, cells) in enumerate(rows):
        for k, (name, tile) in enumerate(cells):
            sheet.paste(tile, (k * c, r * (c + 16) + 16))
            draw.text((k * c + 4, r * (c + 16) + 2), name if k else label, fill="black")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}")


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def _crop(rgb: np.ndarray, box: tuple[int, int, int, int], cell: int) -> Image.Image:
    """The square `box` of the photo (edge-padded where it leaves the photo), resized to cell x cell."""
    x0, y0, x1, y1 = box
    pad = max(0, -x0, -y0, x1 - rgb.shape[1], y1 - rgb.shape[0])
    padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    return Image.fromarray(padded[y0 + pad:y1 + pad, x0 + pad:x1 + pad]).resize((cell, cell), Image.LANCZOS)


if __name__ == "__main__":
    main()
