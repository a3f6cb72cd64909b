"""Each camera's live picture: a JPEG in Redis (REDIS_URL) under shoplift:live:<camera id>.

The detector process writes it about once a second (detection.live.LivePublisher, with
`live_frames_store`); the Cameras page reads it (cameras.views.camera_live_frame, with
`live_frame_get`). Nothing goes to the database per frame. Each key is a hash {jpeg, captured_at}
that expires a few seconds after its last write, so the picture of a camera whose detector stopped
disappears instead of freezing.

Clients fail fast: short timeouts, and one immediate retry only (a pooled connection that a
restarted Redis closed is replaced at once). A Redis that is down costs the detector a refused
connection a second; the web's reader (cameras.views) then stops asking for a few seconds.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

KEY_PREFIX = "shoplift:live:"
CONNECT_TIMEOUT_SECONDS = 0.5
READ_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class LiveFrame:
    camera_id: int
    jpeg: bytes
    captured_at: float  # wall clock (epoch seconds) when the detector received the frame


def live_frame_key(camera_id: int) -> str:
    return f"{KEY_PREFIX}{int(camera_id)}"


@lru_cache(maxsize=4)
def live_client(url: str) -> redis.Redis:
    """One client (and its connection pool) per URL and process, shared by threads."""
    return redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                socket_timeout=READ_TIMEOUT_SECONDS, retry=Retry(NoBackoff(), 1))


def live_frames_store(client: redis.Redis, frames: Iterable[LiveFrame], *, ttl_seconds: float) -> int:
    """Write the frames in one round trip (MULTI: no key is ever left without its expiry).
    Returns how many were written; raises redis.RedisError when Redis does not answer."""
    ttl_ms = max(1, round(ttl_seconds * 1000))
    count = 0
    with client.pipeline(transaction=True) as pipe:
        for frame in frames:
            key = live_frame_key(frame.camera_id)
            pipe.hset(key, mapping={"jpeg": frame.jpeg, "captured_at": f"{frame.captured_at:.3f}"})
            pipe.pexpire(key, ttl_ms)
            count += 1
        if count:
            pipe.execute()
    return count


def live_frame_get(client: redis.Redis, camera_id: int) -> LiveFrame | None:
    """The camera's latest picture, or None when there is none fresh (its key expired).
    Raises redis.RedisError when Redis does not answer."""
    jpeg, captured_at = client.hmget(live_frame_key(camera_id), ["jpeg", "captured_at"])
    if not isinstance(jpeg, bytes) or not jpeg or captured_at is None:
        return None
    try:
        at = float(captured_at)
    except ValueError:
        return None
    return LiveFrame(camera_id=int(camera_id), jpeg=jpeg, captured_at=at)
