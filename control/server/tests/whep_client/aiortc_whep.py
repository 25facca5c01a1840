"""A WHEP client from another WebRTC stack (aiortc), so interop does not rest on Chromium.

usage: python aiortc_whep.py WHEP_URL SECONDS
Prints one JSON line: frames decoded, their resolution, audio frames, and the DELETE status.
"""
import asyncio
import json
import sys
import time
import urllib.request

import aioice.ice
from aiortc import RTCPeerConnection, RTCSessionDescription

# The gateway under test listens on loopback only, and aioice leaves 127.0.0.1 out of its
# host candidates; gather on loopback so the ICE checks and answers use the same addresses.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def http(method, url, body=None, content_type=None):
    req = urllib.request.Request(url, data=body, method=method)
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


async def main(url, seconds):
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    result = {"frames": 0, "width": 0, "height": 0, "audio_frames": 0, "state": ""}
    tasks = []

    async def consume(track):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                frame = await asyncio.wait_for(track.recv(), timeout=max(0.1, deadline - time.monotonic()))
            except Exception:
                break
            if track.kind == "video":
                result["frames"] += 1
                result["width"], result["height"] = frame.width, frame.height
            else:
                result["audio_frames"] += 1

    @pc.on("connectionstatechange")
    def on_state():
        print(f"connection state {pc.connectionState}", file=sys.stderr)

    @pc.on("track")
    def on_track(track):
        tasks.append(asyncio.ensure_future(consume(track)))

    await pc.setLocalDescription(await pc.createOffer())
    status, headers, answer = await asyncio.get_event_loop().run_in_executor(
        None, http, "POST", url, pc.localDescription.sdp.encode(), "application/sdp")
    if status != 201:
        print(json.dumps({"error": f"WHEP {status}: {answer}"}))
        return 1
    location = headers.get("Location") or headers.get("location")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    await asyncio.sleep(seconds + 1)
    result["state"] = pc.connectionState
    for t in tasks:
        t.cancel()
    base = url.split("/whep/")[0]
    result["delete_status"], _, _ = http("DELETE", base + location)
    await pc.close()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], float(sys.argv[2]))))
