"""Reading and writing watermark images (PNG/JPEG) with one-line errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aisec.errors import InputFileError

__all__ = ["read_image", "read_images", "check_size", "stack_images", "write_png"]


_GRAY = ("1", "L", "LA", "La")
_COLOUR = ("RGB", "RGBA", "RGBa", "RGBX", "YCbCr", "P", "PA")
_WIDE = ("I;16", "I;16L", "I;16B", "I;16N")


def _pixels(p: Path, im: object) -> np.ndarray:
    """(H, W) or (H, W, 3) float32 in [0, 1] from a decoded PIL image of any supported mode;
    other modes, and images with transparent pixels, are refused with a one-line error."""
    mode = im.mode  # type: ignore[attr-defined]
    fmt = im.format  # type: ignore[attr-defined]
    if mode in _WIDE or (mode == "I" and fmt == "PNG"):  # 16-bit grayscale (PNG decodes to I)
        arr = np.asarray(im, dtype=np.float64)
        if arr.min() < 0 or arr.max() > 65535:
            raise InputFileError(p, f"{mode} pixels outside 0..65535")
        return (arr / 65535.0).astype(np.float32)
    if mode not in _GRAY + _COLOUR:
        raise InputFileError(
            p,
            f"pixel mode {mode} is not supported (8/16-bit grayscale, RGB or palette images "
            "only); convert it to an 8-bit RGB PNG",
        )
    if mode == "P":  # a palette may carry transparency
        im = im.convert("RGBA")  # type: ignore[attr-defined]
    bands = im.getbands()  # type: ignore[attr-defined]
    if "A" in bands or "a" in bands:
        alpha = np.asarray(im.getchannel(bands.index("A") if "A" in bands else bands.index("a")))  # type: ignore[attr-defined]
        if alpha.min() < 255:
            raise InputFileError(
                p, "image has transparent pixels; flatten it onto a background first"
            )
    target = "L" if mode in _GRAY else "RGB"
    return np.asarray(im.convert(target), dtype=np.float32) / 255.0  # type: ignore[attr-defined]


def read_image(path: str | Path) -> np.ndarray:
    """Read a PNG/JPEG file as (C, H, W) float32 in [0, 1] (C = 1 grayscale or 3 RGB).

    8- and 16-bit grayscale, RGB (16-bit RGB PNGs decode to 8 bits per channel), palette and
    opaque RGBA/LA images are converted; other modes (CMYK, 32-bit integer, float) and images
    with transparent pixels are refused with a one-line error."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "no such image file")
    try:
        with Image.open(p) as im:
            im.load()  # decodes fully: a truncated file fails here, not later
            arr = _pixels(p, im)
    except UnidentifiedImageError:
        raise InputFileError(p, "not an image PIL can read (corrupt or not PNG/JPEG)") from None
    except InputFileError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputFileError(p, f"corrupt or truncated image ({exc})") from None
    return arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)


def check_size(path: str | Path, image: np.ndarray, shape: tuple[int, int] | None) -> np.ndarray:
    """Reject an image (C, H, W) whose (H, W) is not ``shape`` (None: any size)."""
    if shape is not None and tuple(image.shape[1:]) != tuple(shape):
        raise InputFileError(
            path,
            f"image is {image.shape[2]}x{image.shape[1]} pixels; the model needs "
            f"{shape[1]}x{shape[0]}",
        )
    return image


def stack_images(imgs: list[np.ndarray]) -> np.ndarray:
    """(B, C, H, W) from same-size images; mixed grayscale/colour are promoted to RGB."""
    chans = {im.shape[0] for im in imgs}
    if len(chans) > 1:
        imgs = [np.repeat(im, 3, 0) if im.shape[0] == 1 else im for im in imgs]
    return np.stack(imgs)


def read_images(paths: list[str | Path], shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read several images into (B, C, H, W); with ``shape`` (H, W) reject other sizes."""
    return stack_images([check_size(p, read_image(p), shape) for p in paths])


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
