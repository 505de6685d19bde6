"""The player page route: the page, the pinned player libraries, title info and the steering proxy."""

from pathlib import Path

from aiohttp import web

from control_plane.api.player_page import LIBRARIES, PlayerSettings

NODE_MODULES = Path(__file__).resolve().parents[2] / "e2e" / "node_modules"


async def steering_stub():
    seen = []

    async def steer(request):
        seen.append(dict(request.query))
        return web.json_response({"version": 1, "candidates": [{"rank": 1, "appliance_id": "a1"}]})

    app = web.Application()
    app.router.add_get("/api/v1/steer", steer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}", seen


async def test_page_libraries_info_and_steering(make_control):
    assert NODE_MODULES.is_dir(), "tests/e2e/node_modules is installed by the bootstrap (npm ci)"
    runner, steering_url, seen = await steering_stub()
    try:
        control = await make_control(extensions={"player": PlayerSettings(NODE_MODULES, steering_url)})
        status, body, headers = await control.call("GET", "/player/", token=None)
        assert status == 200 and b"ocaPlayerState" not in body and b"player.js" in body
        status, body, _ = await control.call("GET", "/player/player.js", token=None)
        assert status == 200 and b"window.ocaPlayerState" in body
        for name in LIBRARIES:
            status, body, headers = await control.call("GET", f"/player/lib/{name}", token=None)
            assert status == 200 and headers["Content-Type"].startswith("text/javascript") and len(body) > 10_000
        status, body, _ = await control.call("GET", "/player/lib/..%2f..%2fpackage.json", token=None)
        assert status == 404

        assert (await control.call("GET", "/player/info?title=nope", token=None))[0] == 404
        assert (await control.call("GET", "/player/info?title=../x", token=None))[0] == 422
        await control.call("POST", "/api/v1/titles", {"id": "t1", "type": "movie", "name": "Sample", "language": "en"})
        status, body, _ = await control.call("GET", "/player/info?title=t1", token=None)
        assert status == 200 and body["title"]["name"] == "Sample" and body["appliances"] == []

        status, body, _ = await control.call("GET", "/player/steer?title=t1", token=None)
        assert status == 200 and body["candidates"][0]["appliance_id"] == "a1"
        assert seen == [{"ip": "127.0.0.1", "title": "t1"}]
    finally:
        await runner.cleanup()


async def test_without_configuration_the_page_says_what_is_missing(make_control):
    control = await make_control()
    status, body, _ = await control.call("GET", "/player/lib/hls.min.js", token=None)
    assert status == 404 and body["error"]["code"] == "player_assets_missing"
    await control.call("POST", "/api/v1/titles", {"id": "t1", "type": "movie", "name": "Sample", "language": "en"})
    status, body, _ = await control.call("GET", "/player/steer?title=t1", token=None)
    assert status in (502, 503) and body["error"]["code"] in ("steering_not_configured", "steering_unavailable")
