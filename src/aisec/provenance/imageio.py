"""Reading and writing watermark images (PNG/JPEG) with one-line errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aisec.errors import InputFileError

__all__ = ["read_image", "read_images", "write_png"]


def read_image(path: str | Path) -> np.ndarray:
    """Read a PNG/JPEG file as (C, H, W) float32 in [0, 1] (C = 1 grayscale or 3 RGB)."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "no such image file")
    try:
        with Image.open(p) as im:
            im.load()  # decodes fully: a truncated file fails here, not later
            mode = "L" if im.mode in ("L", "I;16", "I", "1", "LA") else "RGB"
            arr = np.asarray(im.convert(mode), dtype=np.float32) / 255.0
    except UnidentifiedImageError:
        raise InputFileError(p, "not an image PIL can read (corrupt or not PNG/JPEG)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputFileError(p, f"corrupt or truncated image ({exc})") from None
    return arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)


def read_images(paths: list[str | Path], shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read several images into (B, C, H, W); with ``shape`` (H, W) reject other sizes."""
    imgs = [read_image(p) for p in paths]
    for p, im in zip(paths, imgs, strict=True):
        if shape is not None and tuple(im.shape[1:]) != tuple(shape):
            raise InputFileError(
                p,
                f"image is {im.shape[2]}x{im.shape[1]} pixels; the model needs "
                f"{shape[1]}x{shape[0]}",
            )
    chans = {im.shape[0] for im in imgs}
    if len(chans) > 1:  # mixed grayscale/colour: promote to RGB
        imgs = [np.repeat(im, 3, 0) if im.shape[0] == 1 else im for im in imgs]
    return np.stack(imgs)


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write (C, H, W) float in [0, 1] as an 8-bit PNG, atomically."""
    import io

    from PIL import Image

    from aisec.io import atomic_write_bytes

    x = np.round(np.clip(np.asarray(image), 0, 1) * 255).astype(np.uint8)
    im = Image.fromarray(x[0] if x.shape[0] == 1 else np.moveaxis(x, 0, -1))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())
