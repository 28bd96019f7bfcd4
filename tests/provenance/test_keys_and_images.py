"""Key files are validated whole on load; image files of every supported mode read correctly."""

from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from aisec.errors import InputFileError


@pytest.fixture()
def key_doc(tmp_path: Path) -> dict:
    from aisec.provenance.base import get_method
    from aisec.provenance.keys import save_key
    from aisec.rng import InsecureRandom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        key = get_method("gaussmarker").keygen((4, 16, 16), InsecureRandom(3))
    return json.loads(save_key(key, tmp_path / "k.key").read_text())


def _write(tmp_path: Path, doc: dict) -> Path:
    p = tmp_path / "edited.key"
    p.write_text(json.dumps(doc))
    return p


def _set_material(doc: dict, name: str, fn) -> None:  # noqa: ANN001
    d = doc["material"][name]
    a = np.frombuffer(base64.b64decode(d["data"]), np.dtype(d["dtype"])).copy()
    d["data"] = base64.b64encode(np.ascontiguousarray(fn(a)).tobytes()).decode()


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda d: d["params"]["gs"].update(hw_copy=2), "need (256,)"),
        (lambda d: d["params"]["tr"].update(radius=9), "radius"),
        (lambda d: d["material"].pop("tr.pattern_imag"), "lacks material ['tr.pattern_imag']"),
        (lambda d: d["material"].update(extra=d["material"]["gs.nonce"]), "unexpected"),
        (lambda d: _set_material(d, "gs.message", lambda a: a * 255), "bits (0 or 1"),
        (lambda d: _set_material(d, "tr.pattern_real", lambda a: a * np.nan), "NaN"),
        (lambda d: d["params"].update(zz=1), "invalid parameters"),
        (lambda d: d.update(method="nope"), "unknown method"),
        (lambda d: d.pop("material"), "missing entry 'material'"),
        (lambda d: d.update(latent_shape=[4, 16]), "latent"),
    ],
)
def test_corrupt_key_is_refused_on_load_with_one_line(
    key_doc: dict,
    tmp_path: Path,
    edit,
    needle: str,  # noqa: ANN001
) -> None:
    from aisec.provenance.keys import load_key

    edit(key_doc)
    with pytest.raises(InputFileError) as exc:
        load_key(_write(tmp_path, key_doc))
    msg = str(exc.value)
    assert needle in msg and len(msg.splitlines()) == 1, msg


def test_untouched_key_loads(key_doc: dict, tmp_path: Path) -> None:
    from aisec.provenance.keys import load_key

    assert load_key(_write(tmp_path, key_doc)).method == "gaussmarker"


def _gray(tmp_path: Path) -> tuple[np.ndarray, Path]:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 32)).astype(np.uint8)
    from PIL import Image

    p = tmp_path / "g8.png"
    Image.fromarray(x).save(p)
    return x, p


def test_16_bit_png_reads_as_its_8_bit_twin(tmp_path: Path) -> None:
    from PIL import Image

    from aisec.provenance.imageio import read_image

    x, p8 = _gray(tmp_path)
    p16 = tmp_path / "g16.png"
    Image.fromarray(x.astype(np.uint16) * 257).save(p16)  # 8-bit value v -> 16-bit v * 257
    assert Image.open(p16).mode.startswith("I")
    np.testing.assert_allclose(read_image(p16), read_image(p8), atol=1e-6)


def test_palette_and_opaque_alpha_images_read_like_rgb(tmp_path: Path) -> None:
    from PIL import Image

    from aisec.provenance.imageio import read_image

    rgb = np.random.default_rng(1).integers(0, 256, (16, 16, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")
    ref = read_image(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), ref)
    pal = Image.fromarray(rgb).quantize(16)
    pal.save(tmp_path / "p.png")
    np.testing.assert_allclose(
        read_image(tmp_path / "p.png"),
        np.moveaxis(np.asarray(pal.convert("RGB"), np.float32) / 255, -1, 0),
    )


@pytest.mark.parametrize("kind", ["cmyk", "transparent", "float"])
def test_unsupported_modes_are_refused_with_one_line(tmp_path: Path, kind: str) -> None:
    from PIL import Image

    from aisec.provenance.imageio import read_image

    rgb = np.zeros((8, 8, 3), np.uint8)
    if kind == "cmyk":
        p = tmp_path / "c.jpg"
        Image.fromarray(rgb).convert("CMYK").save(p)
    elif kind == "transparent":
        p = tmp_path / "t.png"
        a = np.zeros((8, 8, 4), np.uint8)
        a[..., 3] = 10
        Image.fromarray(a).save(p)
    else:
        p = tmp_path / "f.tiff"
        Image.fromarray(np.zeros((8, 8), np.float32)).save(p)
    with pytest.raises(InputFileError) as exc:
        read_image(p)
    assert len(str(exc.value).splitlines()) == 1 and str(p) in str(exc.value)
