"""Runs a pybotx bot app (so callbacks reach it) while a scenario calls the BotX API.

Each check prints one JSON line {"check", "ok", "detail"}; the process exits non-zero if any
check failed. The Swift integration test (BotXPybotxTests) starts these scripts and reads the
lines.
"""
import asyncio
import json
import os
import sys
import traceback
from typing import Any, Awaitable, Callable
from uuid import UUID

import uvicorn
from pybotx import Bot, FastAPIBotAppConfig, create_fastapi_bot_app

results: list[dict[str, Any]] = []


def report(name: str, ok: bool, detail: Any = None) -> None:
    line = {"check": name, "ok": ok, "detail": None if detail is None else str(detail)}
    results.append(line)
    print(json.dumps(line), flush=True)


async def check(name: str, call: Callable[[], Awaitable[Any]], expect: type[BaseException] | None = None,
                verify: Callable[[Any], bool] | None = None) -> Any:
    """Runs `call`; with `expect`, passes only if exactly that pybotx exception is raised."""
    try:
        value = await call()
    except BaseException as error:  # noqa: BLE001 - the check reports whatever happened
        if expect is not None and isinstance(error, expect):
            report(name, True, type(error).__name__)
        else:
            report(name, False, f"{type(error).__name__}: {error}\n{traceback.format_exc()[-800:]}")
        return None
    if expect is not None:
        report(name, False, f"expected {expect.__name__}, got {value!r}")
        return None
    if verify is not None and not verify(value):
        report(name, False, f"unexpected result {value!r}")
        return value
    report(name, True, value)
    return value


def env_uuid(name: str) -> UUID:
    return UUID(os.environ[name])


async def run(bot: Bot, scenario: Callable[[], Awaitable[None]]) -> None:
    app = create_fastapi_bot_app(bot=bot, title="scenario bot", config=FastAPIBotAppConfig())
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=int(os.environ["BOT_PORT"]), log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            raise SystemExit("the bot app did not start")
        await asyncio.sleep(0.05)
    print(json.dumps({"ready": True}), flush=True)
    try:
        await scenario()
    except BaseException as error:  # noqa: BLE001
        report("scenario", False, f"{type(error).__name__}: {error}\n{traceback.format_exc()[-1500:]}")
    finally:
        server.should_exit = True
        await task
    sys.exit(0 if results and all(r["ok"] for r in results) else 1)
