"""EnchTable's ``medical`` task domain (MMLU's medical subjects): the MMLU loader, the split
(held-out test never shares a question with train), the answer format, multiple-choice
accuracy by option likelihood, and one-line errors for a bad task name."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from aisec.errors import ParameterError
from aisec.safety.enchtable import evaluate as ev


def _fake_mmlu(root: Path, per_subject: int = 40) -> None:
    """A synthetic MMLU tree (same CSV layout) under ``root``: enough items for the split."""
    d = root / "mmlu" / "test"
    d.mkdir(parents=True)
    for s in ev.MEDICAL_SUBJECTS:
        with open(d / f"{s}_test.csv", "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            for i in range(per_subject):
                w.writerow([f"{s} question {i}?", "one", "two", "three", "four", "ABCD"[i % 4]])
            # a repeated question and one too long for the cap: both left out
            w.writerow([f"{s} question 0?", "one", "two", "three", "four", "A"])
            w.writerow(["x" * (ev.MEDICAL_MAX_CHARS + 1), "a", "b", "c", "d", "B"])


def _real_mmlu() -> bool:
    from aisec.assets.packages import shared_data_dir

    return (shared_data_dir() / "mmlu" / "test" / "anatomy_test.csv").exists()


def test_medical_split_is_disjoint_and_fixed_on_any_mmlu_tree(tmp_path, monkeypatch) -> None:
    _fake_mmlu(tmp_path)
    monkeypatch.setenv("AISEC_DATA_DIR", str(tmp_path))
    test, train = ev.medical_items("test"), ev.medical_items("train")
    n = 40 * len(ev.MEDICAL_SUBJECTS)
    assert len(test) == ev.MEDICAL_TEST and len(train) == n - ev.MEDICAL_TEST
    assert not {t["question"] for t in test} & {t["question"] for t in train}
    assert all(len(ev.medical_prompt(t)) <= ev.MEDICAL_MAX_CHARS for t in test + train)
    assert ev.medical_items("test") == test  # fixed order, whatever the run's seed
    # the train order is shuffled across subjects (the first 64 are not one subject)
    assert len({t["subject"] for t in train[:64]}) > 1
    assert ev.task_pairs("medical", "train", 5, offset=3) == [
        (ev.medical_prompt(t), ev.medical_answer(t)) for t in train[3:8]
    ]


@pytest.mark.skipif(not _real_mmlu(), reason="needs MMLU CSVs in shared/data (AISEC_DATA_DIR)")
def test_medical_split_on_real_mmlu() -> None:
    test, train = (
        ev.task_pairs("medical", "test", 10_000),
        ev.task_pairs("medical", "train", 10_000),
    )
    assert len(test) == ev.MEDICAL_TEST and len(train) > 500
    assert not {q for q, _ in test} & {q for q, _ in train}
    subjects = {t["subject"] for t in ev.medical_items("test")}
    assert subjects <= set(ev.MEDICAL_SUBJECTS) and len(subjects) >= 5


def test_medical_format() -> None:
    item = {
        "question": "Which vitamin is fat soluble? ",
        "choices": ["Vitamin C", "Vitamin D.", "Thiamin", "Niacin"],
        "answer": "B",
        "subject": "nutrition",
    }
    assert ev.medical_prompt(item) == (
        "Which vitamin is fat soluble?\n(A) Vitamin C\n(B) Vitamin D.\n(C) Thiamin\n(D) Niacin"
    )
    assert ev.medical_answer(item) == "The answer is (B) Vitamin D."
    assert ev.medical_answer(item, "C") == "The answer is (C) Thiamin."


def test_medical_choices_point_at_the_answer(tmp_path, monkeypatch) -> None:
    _fake_mmlu(tmp_path)
    monkeypatch.setenv("AISEC_DATA_DIR", str(tmp_path))
    items = ev.medical_items("test")[:8]
    ch = ev.medical_choices("test", 8)
    pairs = ev.task_pairs("medical", "test", 8)
    for it, (q, opts, gold), (pq, pa) in zip(items, ch, pairs, strict=True):
        assert q == pq and len(opts) == 4 and opts[gold] == pa
        assert "ABCD"[gold] == it["answer"]


@dataclass
class _Score:
    logprob: float


class _FakeResponder:
    """Scores an answer by a fixed table: option text -> log-probability."""

    kind = "model"
    method = "fake"

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table

    def respond(self, prompts, **_):  # pragma: no cover - not used
        return ["" for _ in prompts]

    def answer_scores(self, pairs, batch_size=8):
        return [_Score(self.table[a]) for _, a in pairs]


def test_choice_accuracy_picks_the_most_likely_option() -> None:
    items = [
        ("q1", ["a", "b", "c", "d"], 1),
        ("q2", ["e", "f", "g", "h"], 0),
    ]
    table = {"a": -5, "b": -1, "c": -3, "d": -9, "e": -2, "f": -1, "g": -4, "h": -4}
    assert ev.choice_accuracy(_FakeResponder(table), items) == 0.5
    table["e"] = -0.5
    assert ev.choice_accuracy(_FakeResponder(table), items) == 1.0


def test_mmlu_loader_errors(tmp_path, monkeypatch) -> None:
    from aisec.assets import load_dataset
    from aisec.errors import AssetError

    with pytest.raises(ParameterError, match="split"):
        load_dataset("mmlu", subject="anatomy", split="train")
    monkeypatch.setenv("AISEC_DATA_DIR", str(tmp_path))
    with pytest.raises(AssetError, match="AISEC_DATA_DIR"):
        load_dataset("mmlu", subject="anatomy")
    _fake_mmlu(tmp_path)
    with pytest.raises(ParameterError, match="subject"):
        load_dataset("mmlu", subject="astrology")
    rows = load_dataset("mmlu", subject="virology")
    assert rows[0]["choices"] == ["one", "two", "three", "four"] and rows[0]["answer"] == "A"


def test_bad_task_name_is_one_line(tmp_path) -> None:
    from aisec.cli.commands.enchtable import TASK_CHOICES
    from aisec.safety.enchtable.pipeline import PipelineConfig, run_pipeline

    assert TASK_CHOICES == tuple(ev.TASKS)
    with pytest.raises(ParameterError, match="task") as exc:
        ev.task_pairs("chemistry", "train", 3)
    assert "\n" not in str(exc.value) and "medical" in str(exc.value)
    out = tmp_path / "run"
    with pytest.raises(ParameterError, match="chemistry"):
        run_pipeline(PipelineConfig(task="chemistry"), out)
    assert not out.exists()  # nothing written before the check


def test_cli_task_choices(tmp_path) -> None:
    from aisec.cli.commands.enchtable import command

    r = CliRunner().invoke(command, ["run", "--task", "chemistry", "--out", str(tmp_path / "r")])
    assert r.exit_code != 0 and "medical" in r.output
    r = CliRunner().invoke(
        command, ["run", "--set", "task=chemistry", "--out", str(tmp_path / "r")]
    )
    assert r.exit_code != 0 and not (tmp_path / "r").exists()


def test_study_utility_on_a_medical_run_adds_accuracy(
    tmp_path, monkeypatch, perturbed_tiny_llama
) -> None:
    """``study --eval utility`` on a medical run: the loss and the option-likelihood accuracy,
    both on the held-out items (tiny-llama stands in for the task model)."""
    import json

    from aisec.safety.enchtable import study

    _fake_mmlu(tmp_path / "data")
    monkeypatch.setenv("AISEC_DATA_DIR", str(tmp_path / "data"))
    run = tmp_path / "run"
    perturbed_tiny_llama(run / "task" / "model", 1)
    cfg = {"aligned": "tiny-llama", "safety_sft_steps": 0, "task": "medical"}
    cfg |= {"task_examples": 8, "n_harmful": 2, "n_utility": 3, "max_new_tokens": 4}
    (run / "pipeline_config.json").write_text(json.dumps({**cfg, "judge": "refusal", "seed": 0}))
    rows = study.evaluate_run(run, ["task"], ["utility", "utility_validation"])
    for s in ("utility", "utility_validation"):
        res = rows[0]["sets"][s]
        assert res["task_loss"] > 0 and res["task_accuracy"] in (0.0, 1 / 3, 2 / 3, 1.0)
    saved = json.loads((run / "eval" / "task" / "utility.json").read_text())
    assert saved["settings"]["accuracy"] is True and saved["settings"]["task"] == "medical"
