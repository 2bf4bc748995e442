"""Pictures that ship inside PyPI packages, for the vision benchmarks (no network).

- photos: every sample picture scikit-image ships in its wheel (25) and scikit-learn's two
  ``load_sample_images``, each seen whole (shorter side fitted, centre crop) and as a
  bottom-right crop of 2/3 of its sides -> 54 views;
- digits: scikit-learn's 1,797 handwritten digits (8x8, 10 classes), upscaled;
- faces: scikit-image's ``lfw_subset`` (100 faces, 100 non-faces, 25x25), upscaled.
"""

from __future__ import annotations

import numpy as np

PHOTOS = (
    "astronaut", "binary_blobs", "brick", "camera", "cat", "cell", "checkerboard", "chelsea",
    "clock", "coffee", "coins", "colorwheel", "grass", "gravel", "horse", "hubble_deep_field",
    "immunohistochemistry", "logo", "microaneurysms", "moon", "page", "retina", "rocket",
    "shepp_logan_phantom", "text",
)  # fmt: skip


def _rgb(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating):
        a = np.clip(a / max(float(a.max()), 1e-8) * 255.0, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return np.ascontiguousarray(a[..., :3].astype(np.uint8))


def photos() -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8) for every photo and its two corner crops."""
    import skimage.data as sd
    from sklearn.datasets import load_sample_images

    base = [(n, _rgb(getattr(sd, n)())) for n in PHOTOS]
    sk = load_sample_images()
    base += [(n.rsplit(".", 1)[0], _rgb(im)) for n, im in zip(sk.filenames, sk.images)]
    out = []
    for name, im in base:
        h, w = im.shape[:2]
        out.append((name, im))
        out.append((f"{name}/br", im[h // 3 :, w // 3 :]))
    return out


def digits() -> tuple[list[np.ndarray], np.ndarray]:
    """scikit-learn's digits as RGB uint8 (8x8; the encoder upscales) and their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    ims = [_rgb(255.0 - im * (255.0 / 16.0)) for im in d.images]  # dark ink on white
    return ims, d.target.astype(np.int64)


def faces() -> tuple[list[np.ndarray], np.ndarray]:
    """scikit-image's LFW subset: 100 faces (label 1) then 100 non-faces (label 0)."""
    import skimage.data as sd

    ims = sd.lfw_subset()
    return [_rgb(im) for im in ims], np.array([1] * 100 + [0] * 100, dtype=np.int64)
