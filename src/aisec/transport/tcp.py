"""TCP channels with mutual TLS between two hosts.

Both ends present a certificate signed by the shared CA (:mod:`aisec.transport.certs`) and
check that the peer's certificate names the expected party. After the TLS handshake each side
sends a ``hello`` frame with its name, the wire version and the protocol name, so a wrong peer,
an old client or another protocol fails at once with a one-line error naming the peer.

A listening party meets whoever reaches its port. Each incoming connection gets a short
handshake timeout (TLS plus ``hello``, 10 s by default, separate from the protocol's timeout) in
its own thread; a connection that is not the expected peer is refused and logged, and the
listener keeps accepting until the authenticated peer arrives or its own timeout ends.
"""

from __future__ import annotations

import logging
import queue
import select
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from aisec.errors import ParameterError, PeerError
from aisec.transport import frames
from aisec.transport.certs import party_files
from aisec.transport.channel import Channel, Link

_CHUNK = 1 << 16  # bytes per non-blocking SSL write
_log = logging.getLogger(__name__)
_GAVE_UP = object()  # the listener's deadline passed: later handshakes are closed

__all__ = ["TCPChannel", "listen", "connect", "open_party", "parse_hostport"]


def parse_hostport(text: str, name: str = "address") -> tuple[str, int]:
    """``"host:port"`` -> ``(host, port)``."""
    from aisec.errors import ParameterError

    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ParameterError(name, "must look like HOST:PORT with 0 < PORT < 65536", text)
    return host or "0.0.0.0", int(port)


def _context(server: bool, certs_dir: str | Path, party: str) -> ssl.SSLContext:
    ca, cert, key = party_files(certs_dir, party)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if server:
        # No TLS 1.3 session tickets: they arrive after the handshake, so the client's first read
        # would have to process them while the writer thread writes on the same SSL object.
        ctx.num_tickets = 0
    ctx.load_cert_chain(str(cert), str(key))
    ctx.load_verify_locations(str(ca))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = False  # peers are named by certificate CN, checked below
    return ctx


def _peer_name(sock: ssl.SSLSocket) -> str:
    cert = sock.getpeercert() or {}
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return str(v)
    return ""


class TCPChannel(Channel):
    """A channel over a connected TLS socket."""

    def __init__(
        self,
        party: str,
        peer: str,
        sock: ssl.SSLSocket,
        link: Link | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        super().__init__(party, peer, link, timeout_s)
        self.sock = sock
        # OpenSSL forbids using one SSL object from two threads at once, and a full-duplex
        # channel needs a writer thread (two parties that both send large messages before
        # reading must not block each other on full socket buffers). So the socket is
        # non-blocking, every SSL call holds ``_io_lock``, and waiting happens outside the lock.
        self.sock.setblocking(False)
        self._io_lock = threading.Lock()
        self._outq: queue.Queue = queue.Queue()
        self._send_error: PeerError | None = None
        self._writer = threading.Thread(
            target=self._write_loop, name=f"aisec-tx-{party}", daemon=True
        )
        self._writer.start()

    def _wait(self, readable: bool, until: float) -> bool:
        """Wait (lock released) until the socket may be ready; False once ``until`` passed."""
        left = until - time.monotonic()
        if left <= 0:
            return False
        r, w = ([self.sock], []) if readable else ([], [self.sock])
        select.select(r, w, [], min(left, 0.05))
        return True

    def _send_all(self, frame: bytes, step: str) -> None:
        view, off = memoryview(frame), 0
        until = time.monotonic() + max(self.timeout_s, 1.0)
        while off < len(view):
            want_read = False
            with self._io_lock:
                try:
                    off += self.sock.send(view[off : off + _CHUNK])
                    continue
                except ssl.SSLWantReadError:
                    want_read = True
                except (ssl.SSLWantWriteError, BlockingIOError):
                    pass
            if not self._wait(want_read, until):
                raise PeerError(self.peer, step, f"could not send within {self.timeout_s:g} s")

    def _write_loop(self) -> None:
        while True:
            item = self._outq.get()
            try:
                if item is None:
                    return
                frame, deliver_at, step = item
                delay = deliver_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                try:
                    self._send_all(frame, step)
                except PeerError as exc:
                    self._send_error = exc
                    return
                except (OSError, ssl.SSLError) as exc:
                    self._send_error = PeerError(
                        self.peer, step, f"connection lost while sending ({exc.__class__.__name__})"
                    )
                    return
            finally:
                self._outq.task_done()

    def _send_frame(self, frame: bytes, deliver_at: float, step: str) -> None:
        if self._send_error is not None:
            raise self._send_error
        self._outq.put((frame, deliver_at, step))

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every queued frame is written (before closing)."""
        deadline = time.monotonic() + timeout_s
        while (
            self._outq.unfinished_tasks and self._writer.is_alive() and time.monotonic() < deadline
        ):
            time.sleep(0.01)

    def _read(self, n: int, step: str, timeout_s: float) -> bytes:
        buf = bytearray()
        until = time.monotonic() + timeout_s
        while len(buf) < n:
            want_write = False
            with self._io_lock:
                try:
                    chunk = self.sock.recv(min(n - len(buf), 1 << 20))
                except ssl.SSLWantWriteError:
                    chunk, want_write = None, True
                except (ssl.SSLWantReadError, BlockingIOError):
                    chunk = None
                except ssl.SSLError as exc:
                    raise PeerError(self.peer, step, f"TLS error: {exc.reason or exc}") from None
                except OSError as exc:
                    raise PeerError(
                        self.peer, step, f"connection lost ({exc.__class__.__name__})"
                    ) from None
            if chunk is None:
                if not self._wait(not want_write, until):
                    raise PeerError(self.peer, step, f"no message within {timeout_s:g} s")
                continue
            if not chunk:
                raise PeerError(self.peer, step, "connection closed by peer")
            buf += chunk
        return bytes(buf)

    def _recv_frame(self, timeout_s: float, step: str) -> bytes:
        prefix = self._read(frames.PREFIX.size, step, timeout_s)
        try:
            hlen, plen = frames.parse_prefix(prefix)
        except frames.FrameError as exc:
            raise PeerError(self.peer, step, f"bad frame: {exc}") from None
        return prefix + self._read(hlen + plen, step, timeout_s)

    def close(self) -> None:
        if not self.closed:
            self.flush()
            self._outq.put(None)
            self._writer.join(timeout=5)
            try:
                self.sock.close()
            except OSError:
                pass
        super().close()


class _Refused(Exception):
    """A connection that did not authenticate as the expected peer (or broke off on the way).

    ``claimed`` is the certificate's party name once TLS has verified it (None before that).
    """

    def __init__(self, problem: str, claimed: str | None = None) -> None:
        super().__init__(problem)
        self.problem, self.claimed = problem, claimed


def _authenticate(
    ctx: ssl.SSLContext,
    raw: socket.socket,
    server: bool,
    party: str,
    peer: str,
    protocol: str,
    link: Link | None,
    timeout_s: float,
    handshake_timeout_s: float,
) -> TCPChannel:
    """TLS handshake, certificate name and ``hello`` check, all within ``handshake_timeout_s``;
    raises :class:`_Refused` (socket closed) if the other end is not ``peer`` running
    ``protocol``."""
    # Protocol rounds are request/response: without TCP_NODELAY, Nagle's algorithm holds the
    # last partial segment of a message until the peer ACKs the previous ones, and a delayed
    # ACK can then stall every round by up to 40 ms.
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.settimeout(handshake_timeout_s)
        sock = ctx.wrap_socket(raw, server_side=server)
    except (ssl.SSLError, OSError) as exc:
        raw.close()
        if isinstance(exc, TimeoutError):
            raise _Refused(f"no TLS handshake within {handshake_timeout_s:g} s") from None
        detail = getattr(exc, "reason", None) or exc.__class__.__name__
        raise _Refused(f"TLS handshake failed ({detail})") from None
    ch = TCPChannel(party, peer, sock, link, timeout_s)
    name = _peer_name(sock)
    if name != peer:
        ch.close()
        raise _Refused(f"certificate names {name!r}, expected {peer!r}", claimed=name)
    try:
        ch.send("hello", {"party": party, "version": frames.VERSION, "protocol": protocol})
        hello = ch.recv("hello", timeout_s=handshake_timeout_s)
    except PeerError as exc:
        ch.close()
        raise _Refused(f"no hello: {exc}", claimed=name) from None
    if hello.get("party") != peer or hello.get("protocol") != protocol:
        ch.close()
        raise _Refused(
            f"says it is {hello.get('party')!r} running {hello.get('protocol')!r}; "
            f"expected {peer!r} running {protocol!r}",
            claimed=name,
        )
    return ch


def listen(
    party: str,
    peer: str,
    host: str,
    port: int,
    certs_dir: str | Path,
    *,
    protocol: str,
    link: Link | None = None,
    timeout_s: float = 120.0,
    accept_timeout_s: float = 300.0,
    handshake_timeout_s: float = 10.0,
) -> TCPChannel:
    """Wait for ``peer`` to connect on ``host:port``; returns the authenticated channel.

    Every incoming connection gets ``handshake_timeout_s`` for TLS (certificate of our CA
    naming ``peer``) and the ``hello`` exchange, in its own thread, so a stranger that sends
    garbage, fails TLS, shows another certificate or stays silent is refused and logged as
    unauthenticated while the listener keeps accepting, until the authenticated peer arrives or
    ``accept_timeout_s`` ends. ``timeout_s`` is the protocol's own per-message timeout.
    """
    ctx = _context(True, certs_dir, party)
    done: queue.Queue[tuple[str, TCPChannel | None, _Refused | None]] = queue.Queue()
    lock = threading.Lock()
    state: dict[str, Any] = {"winner": None}

    def attempt(raw: socket.socket, addr: str) -> None:
        try:
            ch = _authenticate(
                ctx, raw, True, party, peer, protocol, link, timeout_s, handshake_timeout_s
            )
        except _Refused as exc:
            done.put((addr, None, exc))
            return
        except Exception as exc:  # noqa: BLE001 - a stranger must never end the listener
            raw.close()
            done.put((addr, None, _Refused(f"{exc.__class__.__name__} during the handshake")))
            return
        with lock:
            late = state["winner"] is not None
            if not late:
                state["winner"] = ch
        if late:  # a second authenticated peer: the first one won
            ch.close()
            done.put((addr, None, _Refused("the peer is already connected", claimed=peer)))
        else:
            done.put((addr, ch, None))

    deadline = time.monotonic() + accept_timeout_s
    refused: list[str] = []
    with socket.create_server((host, port), reuse_port=False) as srv:
        srv.settimeout(0.05)
        while True:
            try:
                while True:
                    addr, ch, why = done.get_nowait()
                    if ch is not None:
                        return ch
                    if why is None:  # every attempt reports a channel or a refusal
                        continue
                    refused.append(why.problem)
                    who = (
                        f"{why.claimed!r} (certified by our CA, not the expected peer)"
                        if why.claimed not in (None, peer)
                        else f"peer {peer!r} (authenticated)"
                        if why.claimed == peer
                        else "an unauthenticated client"
                    )
                    _log.warning(
                        "%s: refused %s from %s: %s; still waiting for %r",
                        party,
                        who,
                        addr,
                        why.problem,
                        peer,
                    )
            except queue.Empty:
                pass
            if time.monotonic() > deadline:
                with lock:  # a handshake that finishes after this is closed by its thread
                    won = state["winner"]
                    if won is None:
                        state["winner"] = _GAVE_UP
                if won is not None:
                    return won
                extra = (
                    f"; refused {len(refused)} other connection(s), last: {refused[-1]}"
                    if refused
                    else ""
                )
                raise PeerError(
                    peer,
                    "connect",
                    f"no authenticated {peer!r} connected to {host}:{port} within "
                    f"{accept_timeout_s:g} s{extra}",
                )
            try:
                raw, addr = srv.accept()
            except TimeoutError:
                continue
            threading.Thread(
                target=attempt,
                args=(raw, f"{addr[0]}:{addr[1]}"),
                daemon=True,
                name=f"aisec-handshake-{party}",
            ).start()


def connect(
    party: str,
    peer: str,
    host: str,
    port: int,
    certs_dir: str | Path,
    *,
    protocol: str,
    link: Link | None = None,
    timeout_s: float = 120.0,
    retry_s: float = 60.0,
    handshake_timeout_s: float = 10.0,
) -> TCPChannel:
    """Connect to ``peer`` at ``host:port`` (retrying while it is not up yet); TLS and the
    ``hello`` exchange must finish within ``handshake_timeout_s``."""
    ctx = _context(False, certs_dir, party)
    deadline = time.monotonic() + retry_s
    while True:
        try:
            raw = socket.create_connection((host, port), timeout=timeout_s)
            break
        except OSError as exc:
            if time.monotonic() > deadline:
                raise PeerError(
                    peer, "connect", f"cannot reach {host}:{port} ({exc.__class__.__name__})"
                ) from None
            time.sleep(0.2)
    try:
        return _authenticate(
            ctx, raw, False, party, peer, protocol, link, timeout_s, handshake_timeout_s
        )
    except _Refused as exc:
        raise PeerError(
            peer, "handshake", f"{host}:{port} did not authenticate as {peer!r}: {exc.problem}"
        ) from None


def open_party(
    party: str,
    peer: str,
    certs_dir: str | Path,
    listen_at: str | None,
    peer_at: str | None,
    *,
    protocol: str,
    link: Link | None = None,
    timeout_s: float = 120.0,
    accept_timeout_s: float = 300.0,
    handshake_timeout_s: float = 10.0,
) -> TCPChannel:
    """A party's channel from its command line: listen on ``listen_at`` or connect to
    ``peer_at`` (``HOST:PORT``; exactly one of them), authenticated as in :func:`listen` and
    :func:`connect`."""
    if (listen_at is None) == (peer_at is None):
        raise ParameterError("--listen/--peer", "exactly one must be given", [listen_at, peer_at])
    if listen_at is not None:
        host, port = parse_hostport(listen_at, "--listen")
        return listen(
            party,
            peer,
            host,
            port,
            certs_dir,
            protocol=protocol,
            link=link,
            timeout_s=timeout_s,
            accept_timeout_s=accept_timeout_s,
            handshake_timeout_s=handshake_timeout_s,
        )
    host, port = parse_hostport(peer_at or "", "--peer")
    return connect(
        party,
        peer,
        host,
        port,
        certs_dir,
        protocol=protocol,
        link=link,
        timeout_s=timeout_s,
        handshake_timeout_s=handshake_timeout_s,
    )
