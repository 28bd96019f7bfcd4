"""aisec.io: user input files (JSONL, CSV) and the resumable append-only JSONL store."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest

from aisec import io
from aisec.errors import InputFileError


def test_jsonl_with_a_byte_order_mark_is_read(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_bytes(b'\xef\xbb\xbf{"prompt": "a"}\n{"prompt": "b"}\n')
    assert [r["prompt"] for _, r in io.iter_jsonl(p)] == ["a", "b"]


def test_non_utf8_jsonl_names_file_and_line(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_bytes(b'{"prompt": "a"}\n{"prompt": "caf\xe9"}\n')
    with pytest.raises(InputFileError) as ei:
        list(io.iter_jsonl(p))
    msg = str(ei.value)
    assert str(p) in msg and "line 2 is not UTF-8" in msg and "0xe9" in msg
    assert ei.value.exit_code == 2 and "\n" not in msg


def test_directory_is_not_reported_as_missing(tmp_path):
    with pytest.raises(InputFileError, match="is a directory"):
        list(io.iter_jsonl(tmp_path))
    with pytest.raises(InputFileError, match="is a directory"):
        list(io.iter_records(tmp_path / ".." / tmp_path.name))
    with pytest.raises(InputFileError, match="no such file"):
        list(io.iter_jsonl(tmp_path / "none.jsonl"))


def test_jsonl_string_holding_a_line_separator_stays_one_row(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"prompt": "a\u2028b"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert [r for _, r in io.iter_jsonl(p)] == [{"prompt": "a\u2028b"}]


def test_csv_records_with_header_quotes_and_line_numbers(tmp_path):
    p = tmp_path / "xstest.csv"
    p.write_bytes(
        '\ufeffid,prompt,type,label\n1,"How do I kill a Python process?",homonyms,safe\n'
        '\n2,"two\nlines, with comma",contrast,unsafe\n3,short\n'.encode()
    )
    rows = list(io.iter_records(p))
    assert [ln for ln, _ in rows] == [2, 4, 6]
    assert rows[1][1] == {
        "id": "2",
        "prompt": "two\nlines, with comma",
        "type": "contrast",
        "label": "unsafe",
    }
    assert rows[2][1]["type"] == ""


def test_csv_errors_name_the_line(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("prompt,id\na,1\nb,2,extra\n")
    with pytest.raises(InputFileError, match="line 3 has 3 cells"):
        list(io.iter_records(p))
    p.write_bytes(b"prompt\nok\nbad \xff here\n")
    with pytest.raises(InputFileError, match=r"line 3 is not UTF-8 text \(byte 0xff at column 5\)"):
        list(io.iter_records(p))
    p.write_text("prompt,prompt\na,b\n")
    with pytest.raises(InputFileError, match="distinct"):
        list(io.iter_records(p))


def test_jsonl_records_must_be_objects(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"prompt": "a"}\n[1, 2]\n')
    with pytest.raises(InputFileError, match="line 2 is not a JSON object"):
        list(io.iter_records(p))


def test_read_jsonl_rows_tolerates_only_a_torn_last_line(tmp_path, caplog):
    p = tmp_path / "log.jsonl"
    p.write_text('{"a": 1}\n{"a": 2}\n{"a": 3, "tr')
    with caplog.at_level(logging.WARNING, logger="aisec.io"):
        assert io.read_jsonl_rows(p) == [{"a": 1}, {"a": 2}]
    assert "line 3 was cut short" in caplog.text
    p.write_text('{"a": 1}\nnot json\n{"a": 3}\n')
    with pytest.raises(InputFileError, match=r"line 2 is not JSON"):
        io.read_jsonl_rows(p)
    # a bad last line that ends with a newline was written whole: not a torn write
    p.write_text('{"a": 1}\nnot json\n')
    with pytest.raises(InputFileError, match=r"line 2 is not JSON"):
        io.read_jsonl_rows(p)
    assert io.read_jsonl_rows(tmp_path / "missing.jsonl") == []


def test_store_resumes_by_key_and_later_rows_win(tmp_path):
    store = io.JsonlStore(tmp_path / "sub" / "rows.jsonl")
    assert store.latest() == {} and store.append([]) == 0
    assert store.append([{"id": "a", "v": 1}, {"id": "b", "v": 2}]) == 2
    store.append([{"id": "a", "v": 3}])
    assert store.latest() == {"a": {"id": "a", "v": 3}, "b": {"id": "b", "v": 2}}
    assert list(store.latest()) == ["a", "b"]
    by_pair = io.JsonlStore(store.path, key=lambda r: (r["id"], r["v"]))
    assert set(by_pair.latest()) == {("a", 1), ("b", 2), ("a", 3)}
    with pytest.raises(InputFileError, match="without the key field 'name'"):
        io.JsonlStore(store.path, key="name").latest()


def test_store_drops_a_torn_line_before_appending(tmp_path):
    store = io.JsonlStore(tmp_path / "rows.jsonl")
    store.append([{"id": "a"}])
    with open(store.path, "a", encoding="utf-8") as fh:
        fh.write('{"id": "b", "samp')
    assert list(store.latest()) == ["a"] and store.torn_line == 2
    store.append([{"id": "b"}])
    assert store.path.read_text() == '{"id": "a"}\n{"id": "b"}\n'
    assert list(store.latest()) == ["a", "b"] and store.torn_line is None


def test_store_keeps_a_whole_row_that_lost_only_its_newline(tmp_path):
    store = io.JsonlStore(tmp_path / "rows.jsonl")
    store.path.write_text('{"id": "a"}')
    store.append([{"id": "b"}])
    assert list(store.latest()) == ["a", "b"]


def test_store_writes_nan_as_null(tmp_path):
    store = io.JsonlStore(tmp_path / "rows.jsonl")
    store.append([{"id": "a", "x": float("nan"), "y": np.float32(0.5), "z": np.array([1, 2])}])
    text = store.path.read_text()
    assert "NaN" not in text
    assert json.loads(text) == {"id": "a", "x": None, "y": 0.5, "z": [1, 2]}


def test_json_safe_and_fingerprint():
    doc = {"a": [math.inf, -math.inf, math.nan, 1.5], "b": (np.int64(3), np.bool_(True))}
    assert io.json_safe(doc) == {"a": [None, None, None, 1.5], "b": [3, True]}
    json.loads(io.dumps_json(doc))  # strict JSON parses back
    assert io.fingerprint({"a": 1, "b": [1, 2]}) == io.fingerprint({"b": [1, 2], "a": 1})
    assert io.fingerprint({"a": 1}) != io.fingerprint({"a": 2})


def test_atomic_write_json_writes_real_json_without_nan(tmp_path):
    path = tmp_path / "summary.json"
    io.atomic_write_json(path, {"rate": float("nan"), "inf": math.inf, "x": np.float32(0.5)})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"inf": None, "rate": None, "x": 0.5}
