"""Calls every BotX method Vestnik implements, and the documented error cases.

Env: BOT_ID, BOT_SECRET, CTS_URL, BOT_PORT, ALICE (huid), ALICE_EMAIL, ALICE_LOGIN, BOB (huid),
FOREIGN_CHAT (a group of Alice's where this bot is a plain member), ECHO_BOT_ID (another bot).
"""
import asyncio
import os
import uuid

from pybotx import (
    Bot,
    BotAccountWithSecret,
    BotXAuthVersion,
    BubbleMarkup,
    ChatNotFoundError,
    ChatTypes,
    EventNotFoundError,
    FinalRecipientsListEmptyError,
    HandlerCollector,
    InvalidBotAccountError,
    MentionBuilder,
    MessageNotFoundError,
    OutgoingAttachment,
    PermissionDeniedError,
    StealthModeDisabledError,
    UserNotFoundError,
)

from harness import check, env_uuid, report, run

BOT_ID = env_uuid("BOT_ID")
CTS = os.environ["CTS_URL"]
SECRET = os.environ["BOT_SECRET"]
ALICE = env_uuid("ALICE")
BOB = env_uuid("BOB")
FOREIGN_CHAT = env_uuid("FOREIGN_CHAT")
ECHO_BOT_ID = env_uuid("ECHO_BOT_ID")

bot = Bot(collectors=[HandlerCollector()], bot_accounts=[BotAccountWithSecret(id=BOT_ID, cts_url=CTS, secret_key=SECRET)])


async def scenario() -> None:
    # v1 auth: token endpoint, then the token as Bearer.
    v1 = Bot(collectors=[HandlerCollector()], bot_accounts=[BotAccountWithSecret(id=BOT_ID, cts_url=CTS, secret_key=SECRET)],
             auth_version=BotXAuthVersion.V1)
    await check("v1 get_token", lambda: v1.get_token(bot_id=BOT_ID), verify=lambda t: isinstance(t, str) and len(t) > 20)
    await check("v1 chat list", lambda: v1.list_chats(bot_id=BOT_ID), verify=lambda chats: isinstance(chats, list))
    await v1.shutdown()
    wrong = Bot(collectors=[HandlerCollector()],
                bot_accounts=[BotAccountWithSecret(id=BOT_ID, cts_url=CTS, secret_key="not-the-secret")])
    await check("wrong secret → InvalidBotAccountError", lambda: wrong.list_chats(bot_id=BOT_ID), expect=InvalidBotAccountError)
    await wrong.shutdown()

    chat = await check("create_chat group", lambda: bot.create_chat(
        bot_id=BOT_ID, name="Exercise", chat_type=ChatTypes.GROUP_CHAT, huids=[ALICE], description="every method"))
    if chat is None:
        return
    print(f'{{"chat_id": "{chat}"}}', flush=True)
    await check("chat_info", lambda: bot.chat_info(bot_id=BOT_ID, chat_id=chat),
                verify=lambda info: info.chat_id == chat and {m.huid for m in info.members} >= {ALICE, BOT_ID})
    await check("list_chats", lambda: bot.list_chats(bot_id=BOT_ID), verify=lambda chats: chat in [c.chat_id for c in chats])

    bubbles = BubbleMarkup()
    bubbles.add_button(command="/ack", label="Acknowledge", data={"id": 7})
    sent = await check("send_message (callback)", lambda: bot.send_message(
        bot_id=BOT_ID, chat_id=chat, body=f"Hello {MentionBuilder.user(entity_id=ALICE, name='Alice')}",
        bubbles=bubbles, metadata={"ticket": "INC-1"}))
    await check("send_message with mentions", lambda: bot.send_message(
        bot_id=BOT_ID, chat_id=chat, body=f"Ping {MentionBuilder.user(entity_id=ALICE, name='Alice')} and {MentionBuilder.all()}"))
    await check("send_message_sync", lambda: bot.send_message_sync(bot_id=BOT_ID, chat_id=chat, body="sync hello"))
    if sent is not None:
        await check("edit_message", lambda: bot.edit_message(bot_id=BOT_ID, sync_id=sent, body="Hello, edited"))
        await check("reply_message", lambda: bot.reply_message(bot_id=BOT_ID, sync_id=sent, body="a reply"))
        await check("get_message_status", lambda: bot.get_message_status(bot_id=BOT_ID, sync_id=sent),
                    verify=lambda status: status.group_chat_id == chat and ALICE in status.sent_to)
        await check("pin_message", lambda: bot.pin_message(bot_id=BOT_ID, chat_id=chat, sync_id=sent))
        await check("unpin_message", lambda: bot.unpin_message(bot_id=BOT_ID, chat_id=chat))
    doomed = await check("send for delete", lambda: bot.send_message(bot_id=BOT_ID, chat_id=chat, body="to be deleted"))
    if doomed is not None:
        await check("delete_message", lambda: bot.delete_message(bot_id=BOT_ID, sync_id=doomed))
    await check("send file", lambda: bot.send_message(
        bot_id=BOT_ID, chat_id=chat, body="report attached", file=OutgoingAttachment(content=b"a,b\n1,2\n", filename="report.csv")))
    await check("recipients", lambda: bot.send_message(bot_id=BOT_ID, chat_id=chat, body="only alice", recipients=[ALICE]))
    await check("stealth off → StealthModeDisabledError", lambda: bot.send_message(
        bot_id=BOT_ID, chat_id=chat, body="secret", stealth_mode=True), expect=StealthModeDisabledError)
    await check("enable_stealth", lambda: bot.enable_stealth(bot_id=BOT_ID, chat_id=chat, total_ttl=1, ttl_after_read=60))
    await check("send stealth", lambda: bot.send_message(bot_id=BOT_ID, chat_id=chat, body="self-destructs", stealth_mode=True))
    await check("disable_stealth", lambda: bot.disable_stealth(bot_id=BOT_ID, chat_id=chat))
    await check("start_typing", lambda: bot.start_typing(bot_id=BOT_ID, chat_id=chat))
    await check("stop_typing", lambda: bot.stop_typing(bot_id=BOT_ID, chat_id=chat))

    await check("add_users_to_chat", lambda: bot.add_users_to_chat(bot_id=BOT_ID, chat_id=chat, huids=[BOB, ECHO_BOT_ID]))
    await check("promote_to_chat_admins", lambda: bot.promote_to_chat_admins(bot_id=BOT_ID, chat_id=chat, huids=[BOB]))
    await check("remove_users_from_chat", lambda: bot.remove_users_from_chat(bot_id=BOT_ID, chat_id=chat, huids=[BOB]))
    await check("send_internal_bot_notification", lambda: bot.send_internal_bot_notification(
        bot_id=BOT_ID, chat_id=chat, data={"alert": "db-1"}))

    await check("search_user_by_huid", lambda: bot.search_user_by_huid(bot_id=BOT_ID, huid=ALICE),
                verify=lambda user: user.huid == ALICE)
    await check("search_user_by_emails", lambda: bot.search_user_by_emails(bot_id=BOT_ID, emails=[os.environ["ALICE_EMAIL"]]),
                verify=lambda users: [u.huid for u in users] == [ALICE])
    await check("search_user_by_ad", lambda: bot.search_user_by_ad(bot_id=BOT_ID, ad_login=os.environ["ALICE_LOGIN"], ad_domain="corp"),
                verify=lambda user: user.huid == ALICE)
    await check("search_user_by_other_id", lambda: bot.search_user_by_other_id(bot_id=BOT_ID, other_id=os.environ["ALICE_LOGIN"]),
                verify=lambda user: user.huid == ALICE)

    async def csv_users() -> list:
        async with bot.users_as_csv(bot_id=BOT_ID, cts_user=True, unregistered=False, botx=True) as users:
            return [user async for user in users]
    await check("users_as_csv", csv_users, verify=lambda users: ALICE in [u.huid for u in users])
    await check("collect_metric", lambda: bot.collect_metric(bot_id=BOT_ID, bot_function="exercise", huids=[ALICE], chat_id=chat))
    await check("get_bots_list", lambda: bot.get_bots_list(bot_id=BOT_ID),
                verify=lambda result: BOT_ID in [b.id for b in result[0]])

    personal = await check("create_chat personal", lambda: bot.create_chat(
        bot_id=BOT_ID, name="", chat_type=ChatTypes.PERSONAL_CHAT, huids=[ALICE]))
    await check("personal_chat", lambda: bot.personal_chat(bot_id=BOT_ID, user_huid=ALICE),
                verify=lambda info: info.chat_id == personal)

    # Errors, as pybotx documents them.
    await check("chat_info unknown → ChatNotFoundError", lambda: bot.chat_info(bot_id=BOT_ID, chat_id=uuid.uuid4()),
                expect=ChatNotFoundError)
    await check("send_message unknown chat → ChatNotFoundError (callback)",
                lambda: bot.send_message(bot_id=BOT_ID, chat_id=uuid.uuid4(), body="nowhere"), expect=ChatNotFoundError)
    await check("recipients outside chat → FinalRecipientsListEmptyError",
                lambda: bot.send_message(bot_id=BOT_ID, chat_id=chat, body="x", recipients=[uuid.uuid4()]),
                expect=FinalRecipientsListEmptyError)
    await check("delete unknown → MessageNotFoundError", lambda: bot.delete_message(bot_id=BOT_ID, sync_id=uuid.uuid4()),
                expect=MessageNotFoundError)
    await check("status unknown → EventNotFoundError", lambda: bot.get_message_status(bot_id=BOT_ID, sync_id=uuid.uuid4()),
                expect=EventNotFoundError)
    await check("user unknown → UserNotFoundError", lambda: bot.search_user_by_huid(bot_id=BOT_ID, huid=uuid.uuid4()),
                expect=UserNotFoundError)
    await check("personal chat unknown → ChatNotFoundError", lambda: bot.personal_chat(bot_id=BOT_ID, user_huid=uuid.uuid4()),
                expect=ChatNotFoundError)
    await check("not admin → PermissionDeniedError", lambda: bot.add_users_to_chat(bot_id=BOT_ID, chat_id=FOREIGN_CHAT, huids=[BOB]),
                expect=PermissionDeniedError)
    report("done", True)


asyncio.run(run(bot, scenario))
