"""The grown judge corpus (issue 14, round 2): the loader reads every labelled file, round 1's
splits stay as they were, no prompt straddles two splits, bad rows are one-line errors, and the
annotator-agreement figures are Cohen's kappa."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from aisec.errors import InputFileError
from aisec.judges import corpus as C

# sha256 over "prompt_id\tsplit" lines (sorted) of round 1 as committed before round 2 began:
# round 1's splits never change
ROUND_1_SPLITS_SHA256 = "a3263ef976655db8c766f7fa861615f4a1e51132e4bd047aeeb4f9e96fc1ce42"


def _row(**kw):
    base = {
        "id": "x|1",
        "prompt_id": "x",
        "set": "benign",
        "prompt": "p",
        "response": "r",
        "origin": {"model": "written"},
        "label": "safe",
        "refusal": False,
        "partial_refusal": False,
        "split": "train",
        "annotator": "aisec developer (T), first pass",
    }
    return {**base, **kw}


def _write(path: Path, rows: list) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), "utf-8"
    )
    return path


def test_round_1_splits_are_unchanged():
    rows = C.read_labels(C.CORPUS_FILE)
    pairs = sorted({f"{r['prompt_id']}\t{r['split']}" for r in rows})
    digest = hashlib.sha256("\n".join(pairs).encode()).hexdigest()
    assert len(rows) == 763 and digest == ROUND_1_SPLITS_SHA256


def test_loader_reads_every_labelled_file_and_no_prompt_is_in_two_splits():
    rows = C.load_corpus()
    files = {r["file"] for r in rows}
    assert C.CORPUS_FILE.name in files
    for f in C.CORPUS_FILES[1:]:
        if f.exists() and f.read_bytes().strip():
            assert f.name in files
    by_prompt: dict[str, set[str]] = {}
    for r in rows:
        by_prompt.setdefault(r["prompt_id"], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_prompt.values())
    assert len({r["id"] for r in rows}) == len(rows)
    assert len(rows) > 763
    want = C.prompt_splits()
    assert all(want[r["prompt_id"]] == r["split"] for r in rows if r["prompt_id"] in want)
    test = C.load_corpus("test")
    assert test and {r["split"] for r in test} == {"test"}


def test_round_2_prompts_are_new_and_split_by_their_seeded_rule():
    rows = [json.loads(x) for x in C.PROMPTS_2_FILE.read_text("utf-8").splitlines() if x]
    ids = [r["id"] for r in rows]
    first = {r["prompt_id"] for r in C.read_labels(C.CORPUS_FILE)}
    assert len(set(ids)) == len(ids) and not set(ids) & first
    assert C.assign_splits(ids, seed=C.SPLIT_SEEDS[2]) == {r["id"]: r["split"] for r in rows}
    first_texts = {r["prompt"] for r in C.read_labels(C.CORPUS_FILE)}
    assert not {r["text"] for r in rows} & first_texts


def test_bad_rows_are_one_line_errors_naming_file_and_line(tmp_path):
    good = _row()
    cases = [
        (_row(label="harmful"), r"line 2 has label 'harmful'"),
        (_row(split="holdout"), r"line 2 has split 'holdout'"),
        (_row(set="misc"), r"line 2 has set 'misc'"),
        (_row(refusal="no"), r"line 2 has refusal 'no'; must be true or false"),
        ({k: v for k, v in _row().items() if k != "prompt_id"}, r"line 2 has no 'prompt_id'"),
        (_row(id="x|1"), r"line 2 repeats id 'x\|1'"),
        (_row(id="x|2", split="test"), r"line 2 puts prompt 'x' in split 'test'"),
        ("{not json", r"line 2"),
    ]
    for bad, msg in cases:
        p = _write(tmp_path / "bad.jsonl", [good, bad])
        with pytest.raises(InputFileError, match=msg) as e:
            C.load_corpus(files=(p,))
        assert "bad.jsonl" in str(e.value) and "\n" not in str(e.value)
    raw = tmp_path / "u.jsonl"
    raw.write_bytes(json.dumps(good).encode() + b"\n" + b'{"prompt": "\xff"}\n')
    with pytest.raises(InputFileError, match="line 2"):
        C.load_corpus(files=(raw,))


def test_a_missing_or_empty_round_2_file_is_skipped_and_rows_across_files_are_checked(tmp_path):
    a = _write(tmp_path / "a.jsonl", [_row()])
    (tmp_path / "empty.jsonl").write_text("\n", "utf-8")
    rows = C.load_corpus(files=(a, tmp_path / "nope.jsonl", tmp_path / "empty.jsonl"))
    assert [r["id"] for r in rows] == ["x|1"]
    b = _write(tmp_path / "b.jsonl", [_row(id="x|9", split="dev")])
    with pytest.raises(InputFileError, match=r"b.jsonl.*line 1 puts prompt 'x' in split 'dev'"):
        C.load_corpus(files=(a, b))


def test_cohen_kappa_matches_a_hand_computation():
    # 10 items, 8 agree; marginals a: 6 yes / 4 no, b: 6 yes / 4 no -> pe = .36 + .16 = .52
    a = [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    b = [1, 1, 1, 1, 1, 0, 1, 0, 0, 0]
    assert C.cohen_kappa(a, b) == pytest.approx((0.8 - 0.52) / (1 - 0.52))
    assert C.cohen_kappa([1, 1], [1, 1]) is None
    assert C.cohen_kappa(["safe", "unsafe"], ["unsafe", "safe"]) == pytest.approx(-1.0)


def test_annotator_agreement_reports_four_way_strict_and_lenient():
    pairs = [("safe", "safe")] * 6 + [("attempted", "unsafe"), ("unsafe", "unsafe")] * 2
    d = C.annotator_agreement(pairs, n_boot=200, seed=1)
    assert d["n"] == 10 and d["agreement_4way"] == pytest.approx(0.8)
    assert d["kappa_lenient"] == pytest.approx(1.0)  # attempted and unsafe are one side
    assert d["kappa_4way"] < d["kappa_lenient"]
    lo, hi = d["kappa_4way_ci95"]
    assert lo <= d["kappa_4way"] <= hi
    with pytest.raises(ValueError, match="'harmful'"):
        C.annotator_agreement([("safe", "harmful")])


def test_label_reliability_separates_inter_annotator_from_retest():
    d = C.label_reliability(n_boot=100)
    assert d is not None and "retest" in d
    assert d["retest"]["annotators"] == ["H15 vs H15"]
    if "inter_annotator" in d:
        assert d["kind"] == "inter_annotator"
        assert all(
            a.split(" vs ")[0] != a.split(" vs ")[1] for a in d["inter_annotator"]["annotators"]
        )


def _add_written_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "corpus_add_written.py"
    spec = importlib.util.spec_from_file_location("corpus_add_written", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("which", ["test", "unknown"])
def test_adding_written_rows_refuses_test_split_and_unknown_prompts(tmp_path, which):
    from aisec.errors import InputFileError

    pid = (
        next(r["prompt_id"] for r in C.load_corpus("test")) if which == "test" else "no-such-prompt"
    )
    new = tmp_path / "new.jsonl"
    row = {"prompt_id": pid, "response": "x", "label": "safe", "style": "answer"}
    new.write_text(json.dumps(row) + "\n", encoding="utf-8")
    before = C.WRITTEN_RESPONSES_2.read_bytes()
    with pytest.raises(InputFileError, match="test split" if which == "test" else "not in"):
        _add_written_script().main([str(new), "--annotator", "aisec developer (T), test"])
    assert C.WRITTEN_RESPONSES_2.read_bytes() == before  # nothing written
