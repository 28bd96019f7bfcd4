"""RemoteLM against a tiny OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from aisec.errors import ConfigError, ParameterError, PeerError
from aisec.llm import GenerationConfig
from aisec.llm.chat import chat_format
from aisec.llm.remote import RemoteLM, load_lm, parse_server_spec


class _Handler(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def log_message(self, *args):  # keep test output clean
        pass

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), **body}
        )
        text = f"echo:{body['prompt'][-5:]}|seed={body.get('seed')}"
        for s in body.get("stop") or []:
            text = text.split(s)[0]
        reply = {
            "choices": [{"text": text, "finish_reason": "stop"}],
            "usage": {"completion_tokens": 3},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    max_model_len: int | None = None

    def do_GET(self):  # noqa: N802
        model = {"id": "m"}
        if type(self).max_model_len is not None:
            model["max_model_len"] = type(self).max_model_len
        data = json.dumps({"data": [model]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server():
    _Handler.requests = []
    _Handler.max_model_len = None
    srv = HTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


def test_remote_generate_in_order_with_seeds_and_stop(server):
    lm = RemoteLM(server, "m", chat_format("deepseek-r1"), api_key="secret", workers=3)
    ps = [lm.chat.user(f"q{i}") for i in range(5)]
    gens = lm.generate(
        ps,
        GenerationConfig(max_new_tokens=7, stop=("|",)),
        seeds=[10, 11, 12, 13, 14],
        batch_size=2,
    )
    assert [g.text for g in gens] == ["echo:ink>\n"] * 5
    assert all(g.n_tokens == 3 for g in gens)
    sent = sorted(_Handler.requests, key=lambda r: r["seed"])
    assert [r["seed"] for r in sent] == [10, 11, 12, 13, 14]
    assert sent[0]["path"] == "/v1/completions" and sent[0]["max_tokens"] == 7
    assert sent[0]["auth"] == "Bearer secret" and "secret" not in repr(lm)
    assert lm.check() == ["m"]


def test_unreachable_server_is_one_line_peer_error():
    lm = RemoteLM("http://127.0.0.1:9/v1", "m", chat_format("chatml"), timeout=2)
    with pytest.raises(PeerError) as e:
        lm.generate(["hello"])
    assert "unreachable" in str(e.value) and "\n" not in str(e.value)


def test_server_spec_parsing(server):
    assert parse_server_spec("smollm2-135m-instruct") is None
    assert parse_server_spec("http://h:1/v1#org/m") == ("http://h:1/v1", "org/m")
    with pytest.raises(ParameterError):
        parse_server_spec("http://h:1/v1")
    lm = load_lm(server + "#m", chat_format_name="deepseek-r1")
    assert isinstance(lm, RemoteLM) and lm.chat.thinking


def test_chat_template_fallback_is_recorded_or_refused(server, caplog):
    with caplog.at_level("WARNING", logger="aisec.llm"):
        lm = load_lm(server + "#no-such-org/no-such-model")
    assert lm.chat.name == "chatml"
    assert "no-such-org/no-such-model" in lm.chat_template_fallback
    assert "did not load" in lm.chat_template_fallback and "did not load" in caplog.text
    with pytest.raises(ConfigError, match="pass a chat format") as e:
        load_lm(server + "#no-such-org/no-such-model", allow_chat_fallback=False)
    assert "\n" not in str(e.value)
    chosen = load_lm(server + "#no-such-org/no-such-model", chat_format_name="chatml")
    assert chosen.chat_template_fallback is None  # the user chose the format


def test_context_length_comes_from_the_server_or_stays_unknown(server):
    lm = RemoteLM(server, "m", chat_format("chatml"))
    assert lm.context_length is None  # the server does not say: no up-front check
    _Handler.max_model_len = 4096
    assert RemoteLM(server, "m", chat_format("chatml")).context_length == 4096
    assert RemoteLM(server, "m", chat_format("chatml"), context_length=512).context_length == 512
    gone = RemoteLM("http://127.0.0.1:9/v1", "m", chat_format("chatml"), timeout=2)
    assert gone.context_length is None
