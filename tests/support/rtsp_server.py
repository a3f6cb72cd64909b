"""A GStreamer RTSP server for tests, run as a subprocess under Debian's /usr/bin/python3.

`gi` only imports from Debian's interpreter, not from the project's virtualenv, so tests start
this file with /usr/bin/python3 and talk to it over RTSP like a real DVR. Nothing here imports
the project.

    /usr/bin/python3 rtsp_server.py --port 8554 --config '{"mounts": [...], "auth": {...}}'

Mount kinds (each a JSON object with "path" and "kind"):
  live   videotestsrc is-live ! x264enc (or x265enc with "codec": "h265"), one encoder shared by
         every client, like a DVR channel. Options: width, height, fps, gop (frames), bitrate (kbit/s),
         audio (true: add an A-law track).
  file   an MP4 (qtdemux) or MPEG-TS (tsdemux) file served without re-encoding, each client from
         the start of the file, paced in real time; the stream ends with the file. Option: file.
  audio  audio only (A-law), a "camera" with no video.
"auth" ({"user": ..., "password": ...}) makes every mount require HTTP basic authentication.

Prints "READY <port>" on stdout once it listens, so the parent knows when to connect.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def live_launch(mount: dict) -> str:
    width, height = int(mount.get("width", 320)), int(mount.get("height", 240))
    fps, gop = int(mount.get("fps", 25)), int(mount.get("gop", 50))
    bitrate = int(mount.get("bitrate", 400))
    source = (
        f"videotestsrc is-live=true pattern={mount.get('pattern', 'ball')} "
        f"! video/x-raw,width={width},height={height},framerate={fps}/1 "
        "! videoconvert ! video/x-raw,format=I420 "
    )
    if mount.get("codec", "h264") == "h265":
        encoder = (
            f"! x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate={bitrate} "
            "! h265parse config-interval=-1 ! rtph265pay name=pay0 pt=96 config-interval=-1"
        )
    else:
        # No B-frames and a fixed GOP, like most DVR channels.
        encoder = (
            f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate={bitrate} "
            "bframes=0 threads=1 ! video/x-h264,profile=constrained-baseline "
            "! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 config-interval=-1"
        )
    # "audio": true adds an A-law track, like a camera with a microphone.
    audio = (" audiotestsrc is-live=true ! audioconvert ! audioresample ! audio/x-raw,rate=8000,channels=1 "
             "! alawenc ! rtppcmapay name=pay1 pt=8") if mount.get("audio") else ""
    return f"( {source}{encoder}{audio} )"


def file_launch(mount: dict) -> str:
    path = mount["file"]
    demux = "tsdemux" if path.endswith(".ts") else "qtdemux"
    return f"( filesrc location={path} ! {demux} ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 config-interval=-1 )"


def audio_launch(mount: dict) -> str:
    return "( audiotestsrc is-live=true ! audioconvert ! audioresample ! audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay0 pt=8 )"


LAUNCHERS = {"live": live_launch, "file": file_launch, "audio": audio_launch}


def build_server(port: int, config: dict) -> GstRtspServer.RTSPServer:
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    auth_config = config.get("auth")
    if auth_config:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(auth_config["user"], auth_config["password"]), token)
        server.set_auth(auth)
    mounts = server.get_mount_points()
    for mount in config["mounts"]:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(LAUNCHERS[mount["kind"]](mount))
        # A live camera is one encoder seen by every client; a file restarts for each client.
        factory.set_shared(mount["kind"] in ("live", "audio"))
        if auth_config:
            permissions = GstRtspServer.RTSPPermissions()
            permissions.add_permission_for_role("viewer", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
            permissions.add_permission_for_role("viewer", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
            factory.set_permissions(permissions)
        mounts.add_factory(mount["path"], factory)
    return server


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", required=True, help="JSON: {mounts: [...], auth: {user, password}}")
    args = parser.parse_args()
    Gst.init(None)
    server = build_server(args.port, json.loads(args.config))
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"FAILED to listen on port {args.port}", flush=True)
        return 1
    # Clients that vanish (killed captures) would otherwise keep their sessions for a minute.
    GLib.timeout_add_seconds(2, lambda: (server.get_session_pool().cleanup(), True)[1])
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    print(f"READY {args.port}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
