"""Where the detectors' RTSP client goes when a camera answers with a redirect (issue 13, "internal
hosts"). A tiny RTSP responder on loopback answers 302; a second listener records what reaches it.

FFmpeg's RTSP client (PyAV, what capture uses) never follows a redirect to another scheme. It does
follow one to another rtsp:// host, and answers that host's challenge with the camera's
credentials: that is FFmpeg's behaviour, which the README's Security section tells installers to
contain with an egress firewall around the detector machines. The test pins both facts, so a
PyAV or FFmpeg upgrade that changes them is noticed."""
from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import av
import av.error
import pytest


def _cseq(request: str) -> str:
    return next((line.split(":", 1)[1].strip() for line in request.split("\r\n") if line.lower().startswith("cseq")), "1")


@pytest.fixture
def responder() -> Iterator[Callable[[Callable[[str], str | None]], tuple[int, list[str]]]]:
    sockets: list[socket.socket] = []

    def start(reply: Callable[[str], str | None]) -> tuple[int, list[str]]:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        server.settimeout(10)
        sockets.append(server)
        seen: list[str] = []

        def serve() -> None:
            try:
                while True:
                    conn, _ = server.accept()
                    conn.settimeout(3)
                    with conn:
                        while data := conn.recv(4096):
                            seen.append(data.decode(errors="replace"))
                            answer = reply(seen[-1])
                            if answer:
                                conn.sendall(answer.encode())
            except OSError:
                return

        threading.Thread(target=serve, daemon=True).start()
        return server.getsockname()[1], seen

    yield start
    for server in sockets:
        server.close()


def _open(url: str) -> None:
    with pytest.raises(av.error.FFmpegError):
        av.open(url, options={"rtsp_transport": "tcp", "timeout": "2000000"}, timeout=(3, 3))


def test_it_does_not_follow_a_redirect_to_another_scheme(responder) -> None:  # type: ignore[no-untyped-def]
    http_port, http_seen = responder(lambda request: None)
    camera_port, _ = responder(lambda r: f"RTSP/1.0 302 Moved\r\nCSeq: {_cseq(r)}\r\n"
                                         f"Location: http://127.0.0.1:{http_port}/x\r\n\r\n")
    _open(f"rtsp://admin:s3cret@127.0.0.1:{camera_port}/ch1")
    assert http_seen == []


def test_it_follows_an_rtsp_redirect_with_the_credentials_as_the_readme_warns(responder) -> None:  # type: ignore[no-untyped-def]
    other_port, other_seen = responder(lambda r: f"RTSP/1.0 401 Unauthorized\r\nCSeq: {_cseq(r)}\r\n"
                                                 'WWW-Authenticate: Basic realm="x"\r\n\r\n')
    camera_port, _ = responder(lambda r: f"RTSP/1.0 302 Moved\r\nCSeq: {_cseq(r)}\r\n"
                                         f"Location: rtsp://127.0.0.1:{other_port}/x\r\n\r\n")
    _open(f"rtsp://admin:s3cret@127.0.0.1:{camera_port}/ch1")
    assert any("Authorization: Basic YWRtaW46czNjcmV0" in request for request in other_seen)  # admin:s3cret
