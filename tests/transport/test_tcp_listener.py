"""A listening party on a real network: strangers (garbage, silence, another CA's certificate,
a swapped role) are refused and logged as such, and the real peer still gets in afterwards."""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from aisec.errors import PeerError
from aisec.transport.certs import make_certs
from aisec.transport.tcp import connect, listen


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("certs")
    make_certs(root / "good", ("A", "B"))
    make_certs(root / "evil", ("A", "B"))  # same names, another CA
    return {"good": root / "good", "evil": root / "evil"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Listener:
    """Party A listening for B in a thread; ``result()`` is its channel or its error."""

    def __init__(self, certs_dir: Path, accept_timeout_s: float = 30.0) -> None:
        self.port = _free_port()
        self.out: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, args=(certs_dir, accept_timeout_s))
        self.thread.start()

    def stranger(self) -> socket.socket:
        """A plain TCP connection to the listener (retried while it is starting)."""
        for _ in range(250):
            try:
                return socket.create_connection(("127.0.0.1", self.port), timeout=5)
            except OSError:
                threading.Event().wait(0.02)
        raise AssertionError("listener never came up")

    def _run(self, certs_dir: Path, accept_timeout_s: float) -> None:
        try:
            self.out["ch"] = listen(
                "A",
                "B",
                "127.0.0.1",
                self.port,
                certs_dir,
                protocol="t",
                timeout_s=10,
                accept_timeout_s=accept_timeout_s,
                handshake_timeout_s=2,
            )
        except Exception as exc:  # reported by the test
            self.out["err"] = exc

    def result(self) -> Any:
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "listener still running"
        return self.out.get("ch", self.out.get("err"))


def _real_peer(port: int, certs_dir: Path, party: str = "B") -> Any:
    return connect(
        party,
        "A",
        "127.0.0.1",
        port,
        certs_dir,
        protocol="t",
        retry_s=5,
        timeout_s=10,
        handshake_timeout_s=5,
    )


def _roundtrip(a: Any, b: Any) -> None:
    b.send("ping", {"v": 7})
    assert a.recv("ping")["v"] == 7
    a.close()
    b.close()


def _refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]


def test_garbage_connection_is_refused_then_real_peer_connects(certs, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="aisec.transport.tcp")
    lst = _Listener(certs["good"])
    with lst.stranger() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)))
        try:
            s.recv(1024)  # the listener answers with a TLS alert, closes or resets
        except OSError:
            pass
    b = _real_peer(lst.port, certs["good"])
    a = lst.result()
    assert not isinstance(a, Exception), a
    _roundtrip(a, b)
    logged = _refusals(caplog)
    assert logged and "unauthenticated" in logged[0] and "TLS" in logged[0]
    assert "peer 'B'" not in logged[0]  # the stranger is not blamed on the peer


def test_silent_connection_does_not_hold_the_listener(certs, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="aisec.transport.tcp")
    lst = _Listener(certs["good"])
    silent = lst.stranger()
    try:
        b = _real_peer(lst.port, certs["good"])  # while the silent one is still open
        a = lst.result()
    finally:
        silent.close()
    assert not isinstance(a, Exception), a
    _roundtrip(a, b)


def test_silent_connection_is_refused_after_the_handshake_timeout_and_port_stays_open(
    certs, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="aisec.transport.tcp")
    lst = _Listener(certs["good"])
    silent = lst.stranger()
    try:
        for _ in range(500):  # the listener's handshake timeout is 2 s
            if any("no TLS handshake within 2 s" in m for m in _refusals(caplog)):
                break
            threading.Event().wait(0.02)
        else:
            raise AssertionError(f"silent connection never refused: {_refusals(caplog)}")
        assert lst.thread.is_alive()  # still listening
        b = _real_peer(lst.port, certs["good"])
        a = lst.result()
    finally:
        silent.close()
    assert not isinstance(a, Exception), a
    _roundtrip(a, b)
    assert "unauthenticated" in _refusals(caplog)[0]


def test_impostor_certificate_is_refused_then_real_peer_connects(certs, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="aisec.transport.tcp")
    lst = _Listener(certs["good"])
    with pytest.raises(PeerError, match="did not authenticate as 'A'"):
        _real_peer(lst.port, certs["evil"])  # a certificate named B from another CA
    b = _real_peer(lst.port, certs["good"])
    a = lst.result()
    assert not isinstance(a, Exception), a
    _roundtrip(a, b)
    assert any("unauthenticated" in m for m in _refusals(caplog))


def test_role_swap_is_refused_then_real_peer_connects(certs, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="aisec.transport.tcp")
    lst = _Listener(certs["good"])
    # a second party A (wrong role) connects to A: its certificate names A, not B
    with pytest.raises(PeerError, match="certificate names 'A'"):
        connect(
            "A",
            "B",
            "127.0.0.1",
            lst.port,
            certs["good"],
            protocol="t",
            retry_s=5,
            handshake_timeout_s=5,
        )
    b = _real_peer(lst.port, certs["good"])
    a = lst.result()
    assert not isinstance(a, Exception), a
    _roundtrip(a, b)
    logged = _refusals(caplog)
    assert any("'A'" in m and "not the expected peer" in m for m in logged), logged


def test_listener_timeout_names_refusals_not_the_stranger_as_peer(certs, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="aisec.transport.tcp")
    lst = _Listener(certs["good"], accept_timeout_s=3)
    with lst.stranger() as s:
        s.sendall(b"\x00" * 64)
    err = lst.result()
    assert isinstance(err, PeerError)
    assert "no authenticated 'B'" in str(err) and "refused 1 other connection" in str(err)
