"""Echo bot for the Vestnik pybotx suite, written only against pybotx 0.77's documented API.

Run: BOT_ID=… BOT_SECRET=… CTS_URL=http://127.0.0.1:PORT uvicorn echo_bot:app --port N
"""
import os
from uuid import UUID

# pybotx 0.77.1: `from pybotx import *` raises AttributeError, so names are imported explicitly.
from pybotx import (
    AddedToChatEvent,
    Bot,
    BotAccountWithSecret,
    BubbleMarkup,
    ChatCreatedEvent,
    DeletedFromChatEvent,
    EventDeleted,
    EventEdit,
    FastAPIBotAppConfig,
    HandlerCollector,
    IncomingMessage,
    InternalBotNotificationEvent,
    KeyboardMarkup,
    LeftFromChatEvent,
    OutgoingAttachment,
    create_fastapi_bot_app,
)

collector = HandlerCollector()


@collector.command("/echo", description="Send back the received message body")
async def echo_handler(message: IncomingMessage, bot: Bot) -> None:
    await bot.answer_message(message.argument or "(empty)")


@collector.command("/buttons", description="Offer two pills")
async def buttons_handler(message: IncomingMessage, bot: Bot) -> None:
    bubbles = BubbleMarkup()
    bubbles.add_button(command="/choose", label="Red", data={"pill": "red"})
    bubbles.add_button(command="/choose", label="Blue", data={"pill": "blue"}, new_row=False)
    keyboard = KeyboardMarkup()
    keyboard.add_button(command="/echo keyboard", label="Echo", silent=False)
    await bot.answer_message(
        "Choose a pill", bubbles=bubbles, keyboard=keyboard, metadata={"round": 1, "camelCase": "kept"}
    )


@collector.command("/links", description="Offer a link, a bad link and an alerting button")
async def links_handler(message: IncomingMessage, bot: Bot) -> None:
    bubbles = BubbleMarkup()
    bubbles.add_button(label="Docs", link="https://example.com/docs?a=1&b=2")
    bubbles.add_button(label="Bad link", link="javascript:alert(1)", new_row=False)
    bubbles.add_button(command="/echo rang", label="Ring", alert="Ringing…", background_color="#ffcc00", text_color="#000000")
    await bot.answer_message("Links and alerts", bubbles=bubbles)


@collector.command("/choose", description="Receives pill buttons", visible=False)
async def choose_handler(message: IncomingMessage, bot: Bot) -> None:
    await bot.answer_message(
        f"chose {message.data.get('pill')} round {message.metadata.get('round')} "
        f"{message.metadata.get('camelCase')} from {message.source_sync_id}"
    )


@collector.command("/edit", description="Send a draft, then edit it")
async def edit_handler(message: IncomingMessage, bot: Bot) -> None:
    sync_id = await bot.answer_message("draft")
    await bot.edit_message(bot_id=message.bot.id, sync_id=sync_id, body="final", metadata={"edited": True})


@collector.command("/reply", description="Reply to the command")
async def reply_handler(message: IncomingMessage, bot: Bot) -> None:
    await bot.reply_message(bot_id=message.bot.id, sync_id=message.sync_id, body="a reply")


@collector.command("/delete", description="Send a message, then delete it")
async def delete_handler(message: IncomingMessage, bot: Bot) -> None:
    sync_id = await bot.answer_message("short-lived")
    await bot.delete_message(bot_id=message.bot.id, sync_id=sync_id)
    await bot.answer_message(f"deleted {sync_id}")


@collector.command("/file", description="Send an inline file")
async def file_handler(message: IncomingMessage, bot: Bot) -> None:
    await bot.answer_message("here is a file", file=OutgoingAttachment(content=b"hello, file\n", filename="hello.txt"))


@collector.command("/whisper", description="Send to the sender only")
async def whisper_handler(message: IncomingMessage, bot: Bot) -> None:
    await bot.answer_message("just for you", recipients=[message.sender.huid])


@collector.default_message_handler
async def default_handler(message: IncomingMessage, bot: Bot) -> None:
    await bot.answer_message(f"echo: {message.body}")


@collector.chat_created
async def chat_created_handler(event: ChatCreatedEvent, bot: Bot) -> None:
    await bot.send_message(
        bot_id=event.bot.id, chat_id=event.chat.id, body=f"Hi! I am an echo bot in '{event.chat_name}'"
    )


@collector.added_to_chat
async def added_handler(event: AddedToChatEvent, bot: Bot) -> None:
    await bot.send_message(bot_id=event.bot.id, chat_id=event.chat.id, body=f"added {len(event.huids)}")


@collector.deleted_from_chat
async def deleted_handler(event: DeletedFromChatEvent, bot: Bot) -> None:
    await bot.send_message(bot_id=event.bot.id, chat_id=event.chat.id, body=f"removed {len(event.huids)}")


@collector.left_from_chat
async def left_handler(event: LeftFromChatEvent, bot: Bot) -> None:
    await bot.send_message(bot_id=event.bot.id, chat_id=event.chat.id, body=f"left {len(event.huids)}")


@collector.event_edit
async def event_edit_handler(event: EventEdit, bot: Bot) -> None:
    await bot.send_message(bot_id=event.bot.id, chat_id=event.chat_id, body=f"saw edit: {event.body}")


@collector.event_deleted
async def event_deleted_handler(event: EventDeleted, bot: Bot) -> None:
    await bot.send_message(bot_id=event.bot.id, chat_id=event.group_chat_id, body=f"saw delete of {len(event.sync_ids)}")


@collector.internal_bot_notification
async def internal_handler(event: InternalBotNotificationEvent, bot: Bot) -> None:
    await bot.send_message(bot_id=event.bot.id, chat_id=event.chat.id, body=f"internal: {event.data}")


bot = Bot(
    collectors=[collector],
    bot_accounts=[
        BotAccountWithSecret(
            id=UUID(os.environ["BOT_ID"]),
            cts_url=os.environ["CTS_URL"],
            secret_key=os.environ["BOT_SECRET"],
        ),
    ],
)

app = create_fastapi_bot_app(bot=bot, title="Echo bot", config=FastAPIBotAppConfig())
