"""SeSoRec data: the rating platform's ratings, the social platform's trust edges, the shared user
id list that aligns them, and the data sets (FilmTrust from a path, MovieLens-100K with a planted
homophilous trust graph, a synthetic generator).

Files are plain text, one record per line, whitespace separated:
``user item rating`` (rating platform), ``truster trustee weight`` (social platform) and one user
id per line (the shared id list). Ids are strings; an id that is not in the shared list is an
error, as is a malformed, truncated or out-of-range line (one line naming the file and the line).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from aisec.errors import DataError, InputFileError, ParameterError
from aisec.io import atomic_write_text

__all__ = [
    "Ratings",
    "Edges",
    "SocialRecData",
    "UserIndex",
    "read_ratings",
    "read_edges",
    "read_ids",
    "load_filmtrust",
    "movielens_planted",
    "synthetic",
    "split_ratings",
    "write_party_files",
    "laplacian",
]


@dataclass(frozen=True)
class UserIndex:
    """The shared, ordered user id list both platforms agree on."""

    ids: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(set(self.ids)) != len(self.ids):
            dup = next(i for i in self.ids if self.ids.count(i) > 1)
            raise DataError(f"shared user id list has a duplicate id {dup!r}")

    @property
    def n(self) -> int:
        return len(self.ids)

    def digest(self) -> str:
        return hashlib.sha256("\n".join(self.ids).encode("utf-8")).hexdigest()

    def positions(self, ids: list[str], where: str) -> np.ndarray:
        """Row positions of ``ids``; an id not in the list is a :class:`DataError`."""
        pos = {u: i for i, u in enumerate(self.ids)}
        out = np.empty(len(ids), dtype=np.int64)
        for k, u in enumerate(ids):
            if u not in pos:
                raise DataError(f"{where}: user id {u!r} is not in the shared user id list")
            out[k] = pos[u]
        return out


@dataclass(frozen=True)
class Ratings:
    """Ratings as index arrays into the shared users and the item list.

    Attributes:
        user, item: (n,) int64 positions; rating: (n,) float64.
    """

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    n_users: int
    n_items: int

    def matrix(self) -> sp.csr_matrix:
        return sp.csr_matrix(
            (self.rating, (self.user, self.item)), shape=(self.n_users, self.n_items)
        )

    def validate(self, lo: float, hi: float, where: str) -> None:
        if not np.all(np.isfinite(self.rating)):
            raise DataError(f"{where}: ratings must be finite; got NaN or inf")
        bad = (self.rating < lo) | (self.rating > hi)
        if np.any(bad):
            raise DataError(
                f"{where}: ratings must lie in [{lo:g}, {hi:g}]; got {self.rating[bad][0]:g}"
            )


@dataclass(frozen=True)
class Edges:
    """Directed trust edges ``src -> dst`` with positive weights, as user positions."""

    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    n_users: int

    def matrix(self) -> sp.csr_matrix:
        s = sp.csr_matrix((self.weight, (self.src, self.dst)), shape=(self.n_users,) * 2)
        s.sum_duplicates()
        return s

    def validate(self, where: str) -> None:
        if not np.all(np.isfinite(self.weight)) or np.any(self.weight <= 0):
            raise DataError(f"{where}: trust weights must be finite and > 0")


def laplacian(s: sp.spmatrix) -> sp.csr_matrix:
    """``M = D + E - S - S^T``: the social term is ``gamma/2 tr(U M U^T)``, its gradient
    ``gamma U M`` (D, E: diagonal of S's row and column sums)."""
    s = sp.csr_matrix(s, dtype=np.float64)
    s = s - sp.diags(s.diagonal())  # self-trust carries no signal
    sym = (s + s.T).tocsr()
    deg = np.asarray(sym.sum(axis=1)).ravel()
    return (sp.diags(deg) - sym).tocsr()


@dataclass
class SocialRecData:
    """Both platforms' data, aligned on one user list (only in-process runs hold both)."""

    name: str
    users: UserIndex
    items: tuple[str, ...]
    train: Ratings
    test: Ratings
    edges: Edges
    rating_range: tuple[float, float]
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return self.users.n

    @property
    def n_items(self) -> int:
        return len(self.items)


# -- text files ----------------------------------------------------------------------------------


def _records(path: str | Path, what: str) -> list[tuple[str, str, float, int]]:
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, f"no such {what} file")
    out = []
    text = p.read_text(encoding="utf-8", errors="strict")
    for no, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) != 3:
            raise InputFileError(
                p, f"line {no} has {len(parts)} fields, expected 3 ({what}; truncated file?)"
            )
        try:
            value = float(parts[2])
        except ValueError:
            raise InputFileError(p, f"line {no}: {parts[2]!r} is not a number") from None
        if not math.isfinite(value):
            raise InputFileError(p, f"line {no}: value must be finite; got {parts[2]!r}")
        out.append((parts[0], parts[1], value, no))
    if not out:
        raise InputFileError(p, f"has no {what} records")
    if not text.endswith("\n"):
        raise InputFileError(p, "does not end with a newline (truncated file?)")
    return out


def read_ids(path: str | Path) -> UserIndex:
    """The shared user id list: one id per line."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "no such user id list")
    ids = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not ids:
        raise InputFileError(p, "user id list is empty")
    return UserIndex(tuple(ids))


def read_ratings(
    path: str | Path,
    users: UserIndex,
    items: tuple[str, ...] | None = None,
    rating_range: tuple[float, float] | None = None,
) -> tuple[Ratings, tuple[str, ...]]:
    """Ratings from ``user item rating`` lines; returns them and the item list (sorted ids,
    or ``items`` if given: an item not in it is an error)."""
    recs = _records(path, "rating")
    if rating_range is not None:
        lo, hi = rating_range
        for _u, _i, r, no in recs:
            if not lo <= r <= hi:
                raise InputFileError(path, f"line {no}: rating {r:g} is outside [{lo:g}, {hi:g}]")
    if items is None:
        items = tuple(sorted({r[1] for r in recs}, key=_id_key))
    ipos = {it: k for k, it in enumerate(items)}
    missing = next((r for r in recs if r[1] not in ipos), None)
    if missing is not None:
        raise InputFileError(
            path, f"line {missing[3]}: item {missing[1]!r} is not in the item list"
        )
    return (
        Ratings(
            users.positions([r[0] for r in recs], str(path)),
            np.array([ipos[r[1]] for r in recs], dtype=np.int64),
            np.array([r[2] for r in recs], dtype=np.float64),
            users.n,
            len(items),
        ),
        items,
    )


def read_edges(path: str | Path, users: UserIndex) -> Edges:
    """Trust edges from ``truster trustee weight`` lines."""
    recs = _records(path, "trust edge")
    bad = next((r for r in recs if r[2] <= 0), None)
    if bad is not None:
        raise InputFileError(path, f"line {bad[3]}: trust weight must be > 0; got {bad[2]:g}")
    return Edges(
        users.positions([r[0] for r in recs], str(path)),
        users.positions([r[1] for r in recs], str(path)),
        np.array([r[2] for r in recs], dtype=np.float64),
        users.n,
    )


def _id_key(x: str) -> tuple[int, int | str]:
    return (0, int(x)) if x.lstrip("-").isdigit() else (1, x)


def split_ratings(r: Ratings, test_frac: float, seed: int) -> tuple[Ratings, Ratings]:
    """Hold out ``test_frac`` of the ratings, fixed by ``seed``."""
    if not 0 < test_frac < 1:
        raise ParameterError("test_frac", "must be in (0, 1)", test_frac)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(r.rating))
    n_test = int(round(test_frac * len(perm)))
    te, tr = np.sort(perm[:n_test]), np.sort(perm[n_test:])

    def take(idx: np.ndarray) -> Ratings:
        return Ratings(r.user[idx], r.item[idx], r.rating[idx], r.n_users, r.n_items)

    return take(tr), take(te)


def _fmt(x: float) -> str:
    return f"{x:.10g}"


def write_party_files(data: SocialRecData, out_dir: str | Path) -> dict[str, str]:
    """The platforms' files of ``data`` for two-host runs: ``users.txt`` (shared),
    ``rating-train.txt`` and ``rating-test.txt`` (rating platform), ``social.txt``."""
    out = Path(out_dir)
    ids, items = data.users.ids, data.items

    def ratings_text(r: Ratings) -> str:
        return "".join(
            f"{ids[u]} {items[i]} {_fmt(v)}\n"
            for u, i, v in zip(r.user.tolist(), r.item.tolist(), r.rating.tolist(), strict=True)
        )

    e = data.edges
    files = {
        "users": atomic_write_text(out / "users.txt", "".join(f"{u}\n" for u in ids)),
        "items": atomic_write_text(out / "items.txt", "".join(f"{i}\n" for i in items)),
        "rating-train": atomic_write_text(out / "rating-train.txt", ratings_text(data.train)),
        "rating-test": atomic_write_text(out / "rating-test.txt", ratings_text(data.test)),
        "social": atomic_write_text(
            out / "social.txt",
            "".join(
                f"{ids[s]} {ids[d]} {_fmt(w)}\n"
                for s, d, w in zip(e.src.tolist(), e.dst.tolist(), e.weight.tolist(), strict=True)
            ),
        ),
    }
    return {k: str(v) for k, v in files.items()}


# -- data sets -------------------------------------------------------------------------------


def load_filmtrust(path: str | Path, test_frac: float = 0.2, seed: int = 0) -> SocialRecData:
    """FilmTrust (Guo, Zhang and Yorke-Smith 2013; LibRec's copy) from a directory with
    ``ratings.txt`` and ``trust.txt``. Its licence forbids committing it, so it is read from a
    path (e.g. ``../shared/data/filmtrust``). Users are the union of both files' ids."""
    root = Path(path)
    if not root.is_dir():
        raise InputFileError(
            root, "FilmTrust directory not found (needs ratings.txt and trust.txt; set data.path)"
        )
    r_recs = _records(root / "ratings.txt", "rating")
    t_recs = _records(root / "trust.txt", "trust edge")
    ids = sorted(
        {r[0] for r in r_recs} | {t[0] for t in t_recs} | {t[1] for t in t_recs}, key=_id_key
    )
    users = UserIndex(tuple(ids))
    ratings, items = read_ratings(root / "ratings.txt", users, rating_range=(0.5, 4.0))
    edges = read_edges(root / "trust.txt", users)
    train, test = split_ratings(ratings, test_frac, seed)
    return SocialRecData(
        "filmtrust", users, items, train, test, edges, (0.5, 4.0), {"graph": "real"}
    )


def _planted_graph(
    profile: np.ndarray,
    activity: np.ndarray,
    blocks: int,
    avg_degree: float,
    homophily: float,
    rng: np.random.Generator,
) -> Edges:
    """A degree-corrected block model: blocks from k-means on the users' taste profiles, degree
    propensity from their activity, a fraction ``homophily`` of edges inside a block."""
    from scipy.cluster.vq import kmeans2

    n = profile.shape[0]
    _, group = kmeans2(profile, blocks, seed=rng, minit="++")
    theta = np.sqrt(activity.astype(np.float64) + 1.0)
    theta /= theta.sum()
    m = int(round(avg_degree * n))
    src_all, dst_all = np.empty(0, np.int64), np.empty(0, np.int64)
    for _ in range(20):  # oversample, drop self-loops and duplicates, until m edges
        k = int(1.3 * m) + 16
        src = rng.choice(n, size=k, p=theta)
        dst = rng.choice(n, size=k, p=theta)
        inside = rng.random(k) < homophily
        for g in range(blocks):
            pick = inside & (group[src] == g)
            pool = np.flatnonzero(group == g)
            if pick.any() and pool.size:
                w = theta[pool] / theta[pool].sum()
                dst[pick] = rng.choice(pool, size=int(pick.sum()), p=w)
        src_all = np.concatenate([src_all, src])
        dst_all = np.concatenate([dst_all, dst])
        keep = src_all != dst_all
        pairs = np.unique(np.stack([src_all[keep], dst_all[keep]], 1), axis=0)
        if len(pairs) >= m:
            break
    pairs = pairs[rng.permutation(len(pairs))[:m]]
    src, dst = pairs[:, 0], pairs[:, 1]
    return Edges(np.array(src), np.array(dst), np.ones(len(src)), n)


def movielens_planted(
    avg_degree: float = 5.0,
    blocks: int = 20,
    homophily: float = 0.8,
    test_frac: float = 0.2,
    seed: int = 0,
) -> SocialRecData:
    """MovieLens-100K (embedded) with a planted homophilous trust graph (semi-synthetic)."""
    from aisec.assets import load_dataset

    ds = load_dataset("movielens-100k")
    df = ds.ratings
    users = UserIndex(tuple(str(u) for u in range(ds.n_users)))
    items = tuple(str(i) for i in range(ds.n_items))
    allr = Ratings(
        df["user"].to_numpy(np.int64),
        df["item"].to_numpy(np.int64),
        df["rating"].to_numpy(np.float64),
        ds.n_users,
        ds.n_items,
    )
    train, test = split_ratings(allr, test_frac, seed)
    rng = np.random.default_rng(seed + 1)
    r = train.matrix().tocsr()
    counts = np.diff(r.indptr)
    mean = np.divide(np.asarray(r.sum(axis=1)).ravel(), np.maximum(counts, 1))
    centred = r.copy()
    centred.data = centred.data - np.repeat(mean, counts)
    from scipy.sparse.linalg import svds

    u, s, _ = svds(centred.astype(np.float64), k=10, random_state=seed)
    edges = _planted_graph(u * s, counts, blocks, avg_degree, homophily, rng)
    return SocialRecData(
        "movielens-100k-planted",
        users,
        items,
        train,
        test,
        edges,
        (1.0, 5.0),
        {"graph": f"planted DCBM ({blocks} blocks, homophily {homophily:g}); semi-synthetic"},
    )


def synthetic(
    users: int,
    items: int,
    avg_degree: float = 5.0,
    density: float = 0.01,
    factors: int = 5,
    blocks: int = 10,
    homophily: float = 0.8,
    test_frac: float = 0.2,
    seed: int = 0,
) -> SocialRecData:
    """A generator for scaling runs: users in taste blocks, ratings 1..5 from a low-rank model
    at ``density``, a block-model trust graph of ``avg_degree`` out-edges per user."""
    if users < 2 or items < 1:
        raise ParameterError("users/items", "need at least 2 users and 1 item", (users, items))
    if not 0 < density <= 1:
        raise ParameterError("density", "must be in (0, 1]", density)
    rng = np.random.default_rng(seed)
    group = rng.integers(0, blocks, size=users)
    centres = rng.normal(size=(blocks, factors))
    uf = centres[group] + 0.5 * rng.normal(size=(users, factors))
    vf = rng.normal(size=(items, factors))
    n = max(int(round(density * users * items)), 1)
    flat = rng.choice(users * items, size=min(n, users * items), replace=False)
    ui, ii = flat // items, flat % items
    raw = np.einsum("nk,nk->n", uf[ui], vf[ii]) / math.sqrt(factors)
    rating = np.clip(np.rint(3.0 + 1.2 * raw + 0.5 * rng.normal(size=raw.shape)), 1, 5)
    allr = Ratings(ui.astype(np.int64), ii.astype(np.int64), rating, users, items)
    train, test = split_ratings(allr, test_frac, seed)
    activity = np.bincount(train.user, minlength=users)
    edges = _planted_graph(uf, activity, blocks, avg_degree, homophily, rng)
    return SocialRecData(
        f"synthetic-{users}x{items}",
        UserIndex(tuple(str(u) for u in range(users))),
        tuple(str(i) for i in range(items)),
        train,
        test,
        edges,
        (1.0, 5.0),
        {"graph": f"synthetic block model ({blocks} blocks); synthetic ratings"},
    )
