"""Utility of a model on offline reasoning sets: GSM8K, MATH-500 and HumanEval (sandboxed).

Answers are read from the final answer (after ``</think>`` when there is one): GSM8K compares
the last number with the reference ``#### N``; MATH-500 compares the ``\\boxed{}`` content (or
"The answer is X") with the reference answer after light normalisation (spaces, ``\\left``/
``\\right``, ``\\!``, ``dfrac``, a trailing period). HumanEval runs the completed function and the
official tests in a separate Python process: no network (sockets refused in the child), a
wall-clock time limit, an address-space limit, an empty temporary working directory and a
minimal environment. This is a sandbox against accidents, not against a determined attacker.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from aisec.llm.chat import split_thought

__all__ = ["extract_number", "gsm8k_correct", "math_answer", "math_correct", "SandboxResult", "score_utility",
           "run_sandboxed", "humaneval_passes"]

_NUM = re.compile(r"-?\d[\d,]*\.?\d*")


def _final(text: str) -> str:
    thought, answer = split_thought(text)
    return answer if answer else text


def extract_number(text: str) -> str | None:
    """The last number in the final answer, without thousands separators ("1,200" -> "1200")."""
    nums = _NUM.findall(_final(text))
    if not nums:
        return None
    n = nums[-1].replace(",", "").rstrip(".")
    if "." in n:
        n = n.rstrip("0").rstrip(".")
    return n


def gsm8k_correct(response: str, reference_answer: str) -> bool:
    """Whether the response's number equals the GSM8K reference (text after ``####``)."""
    ref = reference_answer.rpartition("####")[2].strip().replace(",", "")
    got = extract_number(response)
    return got is not None and got == ref


def _boxed(text: str) -> str | None:
    i = text.rfind("\\boxed{")
    if i < 0:
        return None
    depth, j = 0, i + len("\\boxed{")
    for k in range(j, len(text)):
        if text[k] == "{":
            depth += 1
        elif text[k] == "}":
            if depth == 0:
                return text[j:k]
            depth -= 1
    return None


def _norm(ans: str) -> str:
    s = ans.strip().strip("$").rstrip(".")
    for a, b in (("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("dfrac", "frac"),
                 ("tfrac", "frac"), ("^\\circ", ""), ("^{\\circ}", ""), ("\\%", ""), ("$", "")):
        s = s.replace(a, b)
    return re.sub(r"\s+", "", s)


def math_answer(response: str) -> str | None:
    """The answer of a MATH response: ``\\boxed{...}``, else "answer is X", else None."""
    final = _final(response)
    b = _boxed(final)
    if b is not None:
        return b
    m = re.search(r"answer is[:\s]*\$?([^\n$]+)", final)
    return m.group(1).strip() if m else None


def math_correct(response: str, reference: str) -> bool:
    got = math_answer(response)
    return got is not None and _norm(got) == _norm(reference)


@dataclass(frozen=True)
class SandboxResult:
    passed: bool
    reason: str


_PRELUDE = """
import resource, socket, sys
resource.setrlimit(resource.RLIMIT_AS, ({mem}, {mem}))
def _no_net(*a, **k):
    raise OSError("network disabled in the aisec sandbox")
socket.socket = _no_net
socket.create_connection = _no_net
"""


def run_sandboxed(code: str, timeout_s: float = 10.0, memory_mb: int = 512) -> SandboxResult:
    """Run ``code`` in a fresh Python process with time, memory and network limits."""
    with tempfile.TemporaryDirectory(prefix="aisec-sandbox-") as tmp:
        path = os.path.join(tmp, "program.py")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(_PRELUDE.format(mem=int(memory_mb) * 1024 * 1024))
            fh.write(code)
        env = {"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0", "HOME": tmp}
        try:
            proc = subprocess.run([sys.executable, "-I", path], cwd=tmp, env=env,
                                  capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return SandboxResult(False, f"timed out after {timeout_s:g} s")
        if proc.returncode == 0:
            return SandboxResult(True, "passed")
        last = (proc.stderr.strip().splitlines() or ["exit code " + str(proc.returncode)])[-1]
        return SandboxResult(False, last[:200])


def humaneval_passes(problem: dict, completion: str, timeout_s: float = 10.0,
                     memory_mb: int = 512) -> SandboxResult:
    """Run a HumanEval completion against its tests (``check(entry_point)``).

    ``completion`` is either the function body (continuing ``problem["prompt"]``) or a full
    program that defines the entry point (a fenced code block is unwrapped).
    """
    # keep indentation: only cut at the end of the thought when there is one
    body = completion.split("</think>", 1)[1] if "</think>" in completion else completion
    fence = re.search(r"```(?:python)?\n(.*?)(?:```|$)", body, re.DOTALL)
    if fence:
        body = fence.group(1)
    entry = problem["entry_point"]
    program = body if re.search(rf"^def {re.escape(entry)}\(", body, re.MULTILINE) else (
        problem["prompt"] + body)
    code = f"{program}\n\n{problem['test']}\n\ncheck({entry})\n"
    return run_sandboxed(code, timeout_s, memory_mb)


def score_utility(benchmark: str, problems: list[dict], responses: list[str]) -> list[bool]:
    """Per-problem correctness for ``gsm8k``, ``math500`` or ``humaneval`` (sandboxed)."""
    if benchmark == "gsm8k":
        return [gsm8k_correct(r, p["answer"]) for p, r in zip(problems, responses, strict=True)]
    if benchmark == "math500":
        return [math_correct(r, p["answer"]) for p, r in zip(problems, responses, strict=True)]
    if benchmark == "humaneval":
        return [humaneval_passes(p, r).passed for p, r in zip(problems, responses, strict=True)]
    from aisec.errors import ParameterError

    raise ParameterError("benchmark", "must be gsm8k, math500 or humaneval", benchmark)
