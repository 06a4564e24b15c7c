"""A tiny RTSP server for the tests (GStreamer's gst-rtsp-server, run with Debian's /usr/bin/python3 and python3-gi).

``python3 rtsp_server.py udp|tcp`` serves a 64x64 MJPEG test pattern at rtsp://127.0.0.1:PORT/test with RTP over
that lower transport only (a client asking for the other gets 461 Unsupported Transport) and prints the URL once
it listens; exits 3 naming what is missing when GStreamer lacks an element it needs.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

PIPELINE = ("( videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=64,height=64,framerate=15/1 "
            "! jpegenc ! rtpjpegpay name=pay0 pt=26 )")
TRANSPORTS = {"udp": GstRtsp.RTSPLowerTrans.UDP, "tcp": GstRtsp.RTSPLowerTrans.TCP}
ELEMENTS = {"videotestsrc": "gstreamer1.0-plugins-base", "jpegenc": "gstreamer1.0-plugins-good",
            "rtpjpegpay": "gstreamer1.0-plugins-good"}


def main() -> None:
    Gst.init(None)
    missing = sorted({package for element, package in ELEMENTS.items() if Gst.ElementFactory.find(element) is None})
    if missing:
        print(f"GStreamer elements missing: apt-get install {' '.join(missing)}", file=sys.stderr)
        sys.exit(3)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service("0")  # any free port
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE)
    factory.set_protocols(TRANSPORTS[sys.argv[1]])
    server.get_mount_points().add_factory("/test", factory)
    server.attach(None)
    print(f"rtsp://127.0.0.1:{server.get_bound_port()}/test", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
