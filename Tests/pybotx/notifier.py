"""Notifier bot: no incoming commands; creates a group chat with the given users and posts into it.

Env: BOT_ID, BOT_SECRET, CTS_URL, BOT_PORT, USERS (comma-separated huids).
"""
import asyncio
import os
from uuid import UUID

from pybotx import Bot, BotAccountWithSecret, ChatTypes, HandlerCollector

from harness import check, env_uuid, run

BOT_ID = env_uuid("BOT_ID")
bot = Bot(
    collectors=[HandlerCollector()],
    bot_accounts=[BotAccountWithSecret(id=BOT_ID, cts_url=os.environ["CTS_URL"], secret_key=os.environ["BOT_SECRET"])],
)


async def scenario() -> None:
    users = [UUID(u) for u in os.environ["USERS"].split(",")]
    chat_id = await check(
        "create_chat",
        lambda: bot.create_chat(bot_id=BOT_ID, name="Incidents", chat_type=ChatTypes.GROUP_CHAT, huids=users,
                                description="Monitoring alerts"),
    )
    if chat_id is None:
        return
    await check("send_message", lambda: bot.send_message(bot_id=BOT_ID, chat_id=chat_id, body="Disk almost full on db-1"))
    print(f'{{"chat_id": "{chat_id}"}}', flush=True)


asyncio.run(run(bot, scenario))
