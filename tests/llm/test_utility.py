from __future__ import annotations

from aisec.llm.utility import (
    extract_number,
    gsm8k_correct,
    humaneval_passes,
    math_answer,
    math_correct,
    run_sandboxed,
)


def test_gsm8k_extraction_reads_the_answer_not_the_thought():
    assert extract_number("Half of 48 is 24.\n</think>\n\nThe answer is 1,200.") == "1200"
    assert gsm8k_correct("<think>\n2+3=5\n</think>\n\nThe answer is 72.", "... #### 72")
    assert not gsm8k_correct("no number here", "#### 3")
    assert extract_number("It costs 5.50 dollars") == "5.5"


def test_math_answers():
    assert math_answer("so \\boxed{\\frac{1}{2}}.") == "\\frac{1}{2}"
    assert math_correct("\\boxed{\\dfrac{1}{2}}", "\\frac{1}{2}")
    assert math_correct("The answer is 7.", "7")
    assert not math_correct("nothing", "7")


PROBLEM = {"task_id": "t/0", "prompt": "def add(a, b):\n    \"\"\"Add.\"\"\"\n",
           "entry_point": "add", "test": "def check(f):\n    assert f(2, 3) == 5\n",
           "canonical_solution": "    return a + b\n"}


def test_humaneval_sandbox_pass_fail_and_full_function():
    assert humaneval_passes(PROBLEM, "    return a + b\n").passed
    assert not humaneval_passes(PROBLEM, "    return a - b\n").passed
    assert humaneval_passes(PROBLEM, "```python\ndef add(a, b):\n    return b + a\n```").passed


def test_sandbox_limits():
    r = run_sandboxed("while True:\n    pass\n", timeout_s=1.0)
    assert not r.passed and "timed out" in r.reason
    r = run_sandboxed("import socket\nsocket.socket()\n")
    assert not r.passed and "network disabled" in r.reason
    r = run_sandboxed("x = bytearray(2 * 1024 ** 3)\n", memory_mb=256)
    assert not r.passed and "MemoryError" in r.reason


def test_embedded_humaneval_canonical_solutions_pass_the_sandbox():
    from aisec.assets import load_dataset

    for p in load_dataset("humaneval")[:3]:
        assert humaneval_passes(p, p["canonical_solution"]).passed
        assert not humaneval_passes(p, "    return None\n").passed
