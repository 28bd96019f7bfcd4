"""Frames, in-process channels (accounting, shaping, timeouts) and TCP with mutual TLS."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from aisec.errors import ParameterError, PeerError
from aisec.transport import BigInts, Link, frames, inprocess_pair
from aisec.transport.certs import make_certs
from aisec.transport.tcp import connect, listen, parse_hostport


def test_frame_roundtrip_without_pickle() -> None:
    msg = {
        "a": np.arange(6, dtype=np.uint64).reshape(2, 3),
        "big": BigInts([-(2**100), 5, 0]),
        "raw": b"\x00\x01",
        "n": 3,
        "name": "x",
        "lst": [1, 2],
    }
    step, out = frames.decode(frames.encode("s1", msg))
    assert step == "s1"
    assert np.array_equal(out["a"], msg["a"]) and out["a"].dtype == np.uint64
    assert out["big"] == [-(2**100), 5, 0] and out["raw"] == b"\x00\x01"
    assert out["n"] == 3 and out["name"] == "x" and out["lst"] == [1, 2]
    with pytest.raises(ParameterError):
        frames.encode("s", {"obj": np.array([object()], dtype=object)})
    with pytest.raises(frames.FrameError, match="magic"):
        frames.decode(b"XXXX" + frames.encode("s", {})[4:])
    bad_version = bytearray(frames.encode("s", {}))
    bad_version[4] = 99
    with pytest.raises(frames.FrameError, match="version"):
        frames.decode(bytes(bad_version))


def test_inprocess_counts_bytes_messages_rounds() -> None:
    a, b = inprocess_pair()
    a.send("x", {"v": np.zeros(10)})
    a.send("x", {"v": np.zeros(10)})
    b.recv("x"), b.recv("x")
    b.send("y", {"k": 1})
    a.recv("y")
    a.send("z", {})
    st = a.stats.steps
    assert st["x"].messages_sent == 2 and st["x"].rounds == 1
    assert st["x"].bytes_sent == b.stats.steps["x"].bytes_received > 160
    assert st["z"].rounds == 1 and b.stats.steps["y"].rounds == 1


def test_step_mismatch_timeout_and_close_name_peer_and_step() -> None:
    a, b = inprocess_pair(timeout_s=0.2)
    a.send("one", {})
    with pytest.raises(PeerError, match="'A'.*'two'.*out of step"):
        b.recv("two")
    with pytest.raises(PeerError, match="'A'.*'three'.*no message"):
        b.recv("three")
    a.close()
    with pytest.raises(PeerError, match="closed"):
        b.recv("four")
    c, d = inprocess_pair()
    c.abort("OSError", "save")
    with pytest.raises(PeerError, match="aborted with OSError at its step 'save'"):
        d.recv("anything")


def test_abort_sends_only_the_error_class_and_step() -> None:
    c, d = inprocess_pair()
    c.abort(ValueError("feature 123.456 at row 7 of /home/alice/secret.csv"), "epoch 1 batch 3")
    with pytest.raises(PeerError) as info:
        d.recv("z")
    text = str(info.value)
    assert "ValueError" in text and "epoch 1 batch 3" in text
    assert "123.456" not in text and "row 7" not in text and "secret.csv" not in text
    # free text passed where a class name or step belongs does not cross either
    e, f = inprocess_pair()
    e.abort("value 42 in x", "step/with/a/path")
    with pytest.raises(PeerError) as info:
        f.recv("z")
    assert "42" not in str(info.value) and "path" not in str(info.value)


def test_link_shaping_delays_delivery() -> None:
    a, b = inprocess_pair(link=Link(bandwidth_bps=8e6, latency_s=0.05))
    t0 = time.monotonic()
    a.send("x", {"raw": bytes(100_000)})  # 0.1 s at 8 Mbit/s + 0.05 s latency
    b.recv("x")
    assert time.monotonic() - t0 >= 0.14


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pair_over_tls(
    certs_a: Path, certs_b: Path, name_b: str = "B", accept_timeout_s: float = 10
) -> tuple:
    port = _free_port()
    out: dict = {}

    def server() -> None:
        try:
            out["a"] = listen(
                "A",
                "B",
                "127.0.0.1",
                port,
                certs_a,
                protocol="t",
                accept_timeout_s=accept_timeout_s,
            )
        except Exception as exc:  # reported by the test
            out["a_err"] = exc

    th = threading.Thread(target=server)
    th.start()
    try:
        out["b"] = connect(
            name_b, "A", "127.0.0.1", port, certs_b, protocol="t", retry_s=5, timeout_s=5
        )
    except Exception as exc:
        out["b_err"] = exc
    th.join()
    return out


def test_tcp_mutual_tls_roundtrip(tmp_path: Path) -> None:
    make_certs(tmp_path, ("A", "B"))
    assert (tmp_path / "A.key").stat().st_mode & 0o077 == 0
    out = _pair_over_tls(tmp_path, tmp_path)
    a, b = out["a"], out["b"]
    big = np.arange(300_000, dtype=np.float64)
    a.send("data", {"x": big})
    b.send("data", {"x": big})  # both send large messages first: must not deadlock
    assert np.array_equal(b.recv("data")["x"], big) and np.array_equal(a.recv("data")["x"], big)
    a.close()
    with pytest.raises(PeerError, match="'A'.*closed"):
        b.recv("next")
    b.close()


def test_tcp_refuses_foreign_ca_and_wrong_name(tmp_path: Path) -> None:
    make_certs(tmp_path / "good", ("A", "B"))
    make_certs(tmp_path / "evil", ("A", "B"))
    out = _pair_over_tls(tmp_path / "good", tmp_path / "evil", accept_timeout_s=3)
    errors = [out.get("a_err"), out.get("b_err")]
    assert any(isinstance(e, PeerError) for e in errors), errors
    # a certificate from the right CA but for another party name
    make_certs(tmp_path / "three", ("A", "B", "C"))
    out = _pair_over_tls(tmp_path / "three", tmp_path / "three", name_b="C", accept_timeout_s=3)
    err = out.get("a_err")  # A refused C and waited for B until its own timeout
    assert isinstance(err, PeerError) and "certificate names 'C', expected 'B'" in str(err)
    for k in ("a", "b"):
        if k in out:
            out[k].close()


def test_parse_hostport() -> None:
    assert parse_hostport("10.0.0.2:9000") == ("10.0.0.2", 9000)
    with pytest.raises(ParameterError):
        parse_hostport("nohost")


def test_open_party_needs_exactly_one_of_listen_and_peer(tmp_path):
    from aisec.errors import ParameterError
    from aisec.transport.tcp import open_party

    for listen_at, peer_at in ((None, None), ("127.0.0.1:1", "127.0.0.1:2")):
        with pytest.raises(ParameterError, match="exactly one must be given"):
            open_party("A", "B", tmp_path, listen_at, peer_at, protocol="t")
