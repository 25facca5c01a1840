"""A WHEP client from another WebRTC stack (aiortc), so interop does not rest on Chromium.

usage: python aiortc_whep.py WHEP_URL SECONDS [PAIRS] [PLI]
PAIRS: how many recvonly video+audio pairs to offer (default 1; a channel-level endpoint
fills one pair per publisher). PLI: after SECONDS/2, send this many PLIs on the first video
track back to back (RTCP feedback asking for a keyframe).
Prints one JSON line: frames decoded (all video tracks), the resolution, audio frames,
per-video-track frame counts in m-line order, the X-Sluice-Tracks header, PLIs sent, and the
DELETE status.
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


async def main(url, seconds, pairs=1, plis=0):
    pc = RTCPeerConnection()
    video_transceivers = []
    for _ in range(pairs):
        video_transceivers.append(pc.addTransceiver("video", direction="recvonly"))
        pc.addTransceiver("audio", direction="recvonly")
    result = {"frames": 0, "width": 0, "height": 0, "audio_frames": 0, "state": "",
              "video_tracks": [0] * pairs, "plis_sent": 0}
    tasks = []

    async def consume(track, index):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                frame = await asyncio.wait_for(track.recv(), timeout=max(0.1, deadline - time.monotonic()))
            except Exception:
                break
            if track.kind == "video":
                result["frames"] += 1
                if index is not None:
                    result["video_tracks"][index] += 1
                result["width"], result["height"] = frame.width, frame.height
            else:
                result["audio_frames"] += 1

    @pc.on("connectionstatechange")
    def on_state():
        print(f"connection state {pc.connectionState}", file=sys.stderr)

    @pc.on("track")
    def on_track(track):
        index = None
        for i, t in enumerate(video_transceivers):
            if t.receiver.track is track:
                index = i
        tasks.append(asyncio.ensure_future(consume(track, index)))

    await pc.setLocalDescription(await pc.createOffer())
    status, headers, answer = await asyncio.get_event_loop().run_in_executor(
        None, http, "POST", url, pc.localDescription.sdp.encode(), "application/sdp")
    if status != 201:
        print(json.dumps({"error": f"WHEP {status}: {answer}"}))
        return 1
    location = headers.get("Location") or headers.get("location")
    result["tracks_header"] = headers.get("X-Sluice-Tracks") or headers.get("x-sluice-tracks")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    if plis > 0:
        await asyncio.sleep(seconds / 2)
        receiver = video_transceivers[0].receiver
        sources = receiver.getSynchronizationSources()
        if sources:
            for _ in range(plis):
                # aiortc sends PLIs itself only on decode trouble; ask directly.
                await receiver._send_rtcp_pli(sources[0].source)
                result["plis_sent"] += 1
        await asyncio.sleep(seconds / 2 + 1)
    else:
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
    pairs = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    plis = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    sys.exit(asyncio.run(main(sys.argv[1], float(sys.argv[2]), pairs, plis)))
