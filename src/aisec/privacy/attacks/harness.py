"""Run an attack against a finished VFL run directory (``aisec vfl train --out DIR``).

The victim is one party (default P1, a passive party); the attacker gets that party's bottom
model, what it sent for the target rows (recomputed from the model with a fresh draw of the
defence's noise), the auxiliary rows of the run's split and, for label attacks, the gradients
the party received in the last epoch (saved by the party as its own view).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from aisec.errors import InputFileError, UnknownNameError
from aisec.io import load_safetensors, save_safetensors
from aisec.privacy.attacks.label_inference import (
    gradient_label_attack,
    known_rows,
    model_completion_attack,
)
from aisec.privacy.attacks.reconstruction import (
    ATTACKS,
    class_mean_baseline,
    score_reconstruction,
    wire_values,
)
from aisec.privacy.vfl.data import VFLSplit, load_split
from aisec.privacy.vfl.run import load_run

__all__ = ["ATTACK_NAMES", "run_attack", "recon_figure"]

ATTACK_NAMES = ("decoder", "inversion", "grad-norm", "grad-direction", "completion")


def run_attack(
    run_dir: str | Path,
    attack: str,
    *,
    party: str = "P1",
    targets: int = 200,
    per_class: int = 10,
    seed: int = 0,
    split: VFLSplit | None = None,
    save_examples: int = 8,
    **kwargs: Any,
) -> dict[str, Any]:
    """Metrics of ``attack`` against ``party`` of the run in ``run_dir``.

    Reconstruction: ``recon_mse``, ``recon_error`` (mean absolute per-feature error) and, for
    images, ``recon_ssim``, each with its ``*_class_mean`` baseline. Label attacks:
    ``label_attack_acc`` with ``majority_rate``.
    """
    if attack not in ATTACK_NAMES:
        raise UnknownNameError("vfl attack", attack, list(ATTACK_NAMES))
    recipe, bottoms, _ = load_run(run_dir)
    if party not in bottoms:
        raise UnknownNameError("party", party, sorted(bottoms))
    split = split or load_split(recipe.data)
    i = int(party[1:])
    bottom = bottoms[party]
    spec = recipe.train.defence
    rng = np.random.default_rng([seed, i, ATTACK_NAMES.index(attack)])
    image = split.kind == "image"
    out: dict[str, Any] = {"attack": attack, "party": party, "defence": spec.name}
    if attack in ("decoder", "inversion"):
        aux_x = split.parties["aux"][i].x
        aux_y = split.labels["aux"]
        # a random subset: rows are stored in id order, which some data sets sort by class
        n_test = len(split.labels["test"])
        pick = np.sort(rng.choice(n_test, size=min(targets, n_test), replace=False))
        tx = split.parties["test"][i].x[pick]
        ty = split.labels["test"][pick]
        g = torch.Generator()
        g.manual_seed(int(rng.integers(2**62)))
        observed = wire_values(bottom, tx, spec, g)
        recon = ATTACKS.get(attack)(bottom, spec, aux_x, observed, rng=rng, **kwargs)
        base = class_mean_baseline(aux_x, aux_y, ty)
        r = score_reconstruction(tx, recon, base, image)
        out.update(
            {
                "recon_mse": r.mse,
                "recon_mse_class_mean": r.mse_class_mean,
                "recon_error": r.error,
                "recon_error_class_mean": r.error_class_mean,
                "targets": int(len(ty)),
                "aux_rows": int(len(aux_y)),
            }
        )
        if image:
            out["recon_ssim"] = r.ssim
            out["recon_ssim_class_mean"] = r.ssim_class_mean
        if save_examples:
            # spread over the targets (sorted by id, so across classes where ids follow classes)
            sel = np.unique(np.linspace(0, len(ty) - 1, min(save_examples, len(ty))).astype(int))
            path = Path(run_dir) / "attacks" / f"{attack}-{party}.safetensors"
            save_safetensors(
                path,
                {
                    "truth": np.ascontiguousarray(tx[sel]),
                    "recon": np.ascontiguousarray(recon[sel]),
                    "class_mean": np.ascontiguousarray(base[sel]),
                    "labels": ty[sel].astype(np.int64),
                },
            )
            out["examples"] = str(path)
        return out
    if attack in ("grad-norm", "grad-direction"):
        path = Path(run_dir) / "views" / f"grads-{party}.safetensors"
        if not path.is_file():
            raise InputFileError(path, f"missing; party {party} saved no gradient view")
        view = load_safetensors(path, framework="np")
        ids, grads = view["ids"], view["grads"]
        train_ids = split.parties["train"][0].ids
        if not np.array_equal(ids, train_ids):
            raise InputFileError(path, "gradient view is of other rows than the run's split")
        r = gradient_label_attack(
            grads,
            split.labels["train"],
            method=attack.split("-")[1],
            per_class=per_class,
            rng=rng,
        )
    else:
        aux_y = split.labels["aux"]
        kn = known_rows(aux_y, per_class, rng)
        r = model_completion_attack(
            bottom,
            split.parties["aux"][i].x[kn],
            aux_y[kn],
            split.parties["test"][i].x,
            split.labels["test"],
            split.n_classes,
            rng=rng,
        )
    out.update(
        {"label_attack_acc": r["acc"], "majority_rate": r["majority_rate"], "known": r["known"]}
    )
    return out


def recon_figure(examples: dict[str, str | Path], out: str | Path, rows: int = 6) -> Path:
    """A PNG grid of reconstructions: the original slice, each labelled attack's output (files
    written by :func:`run_attack`, e.g. ``{"plain VFL": ..., "HashVFL": ...}``) and the class
    mean, one target per column."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aisec.io import atomic_write_bytes

    loaded = {k: load_safetensors(v, framework="np") for k, v in examples.items()}
    first = next(iter(loaded.values()))
    if first["truth"].ndim != 3:
        raise InputFileError(next(iter(examples.values())), "holds no image reconstructions")
    lines = [("original", first["truth"])]
    lines += [(k, np.clip(v["recon"], 0, 1)) for k, v in loaded.items()]
    lines.append(("class mean", first["class_mean"]))
    k = min(rows, first["truth"].shape[0])
    fig, axes = plt.subplots(len(lines), k, figsize=(1.1 * k, 1.25 * len(lines)), dpi=110)
    try:
        for r, (name, imgs) in enumerate(lines):
            for c in range(k):
                ax = axes[r][c]
                ax.imshow(imgs[c], cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([]), ax.set_yticks([])
                if c == 0:
                    ax.set_ylabel(name, fontsize=7)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return atomic_write_bytes(out, buf.getvalue())
