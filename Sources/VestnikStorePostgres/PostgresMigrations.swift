/// Schema migrations, append-only, numbered like ``VestnikStoreSQLite``'s (migration N here creates
/// the same tables, columns and indexes as migration N there).
///
/// Each migration is a list of single statements: PostgresNIO speaks the extended query protocol,
/// which takes one statement per query.
///
/// Type mapping from SQLite:
/// - ids stay `TEXT` (lowercase UUID strings, as in SQLite);
/// - every `TEXT` column is `COLLATE "C"`: comparisons and `ORDER BY` are by bytes, as SQLite's
///   BINARY collation, whatever locale the cluster was created with;
/// - integers (millisecond timestamps, sequences, counts) are `BIGINT`, flags are `BOOLEAN`;
/// - blobs are `BYTEA`;
/// - message text (`messages.text`, `message_versions.text`) and `messages.client_message_id` are
///   `BYTEA` holding UTF-8: PostgreSQL `TEXT` cannot hold U+0000, and the store contract says text
///   round-trips byte for byte (SQLite stores it whole). Nothing searches or sorts these columns.
enum PostgresMigrations {
    static let all: [[String]] = [
        // 1: accounts, sessions, chats, messages, the event log.
        [
            """
            CREATE TABLE users (
                id TEXT COLLATE "C" PRIMARY KEY,
                login TEXT COLLATE "C" NOT NULL CONSTRAINT users_login_key UNIQUE,
                display_name TEXT COLLATE "C" NOT NULL,
                email TEXT COLLATE "C",
                department TEXT COLLATE "C",
                position TEXT COLLATE "C",
                is_admin BOOLEAN NOT NULL DEFAULT false,
                is_blocked BOOLEAN NOT NULL DEFAULT false,
                created_at BIGINT NOT NULL,
                password_hash TEXT COLLATE "C",
                search_text TEXT COLLATE "C" NOT NULL
            )
            """,
            """
            CREATE TABLE sessions (
                id TEXT COLLATE "C" PRIMARY KEY,
                user_id TEXT COLLATE "C" NOT NULL REFERENCES users(id),
                token_hash BYTEA NOT NULL UNIQUE,
                device_name TEXT COLLATE "C" NOT NULL,
                created_at BIGINT NOT NULL,
                last_seen_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL
            )
            """,
            "CREATE INDEX sessions_by_user ON sessions(user_id)",
            """
            CREATE TABLE chats (
                id TEXT COLLATE "C" PRIMARY KEY,
                kind TEXT COLLATE "C" NOT NULL,
                title TEXT COLLATE "C" NOT NULL,
                description TEXT COLLATE "C" NOT NULL,
                created_by TEXT COLLATE "C" NOT NULL,
                created_at BIGINT NOT NULL,
                member_count BIGINT NOT NULL,
                last_message_seq BIGINT NOT NULL,
                last_activity_at BIGINT NOT NULL,
                unique_key TEXT COLLATE "C" CONSTRAINT chats_unique_key_key UNIQUE
            )
            """,
            """
            CREATE TABLE chat_members (
                chat_id TEXT COLLATE "C" NOT NULL REFERENCES chats(id),
                user_id TEXT COLLATE "C" NOT NULL REFERENCES users(id),
                role TEXT COLLATE "C" NOT NULL,
                joined_at BIGINT NOT NULL,
                read_seq BIGINT NOT NULL,
                PRIMARY KEY (chat_id, user_id)
            )
            """,
            "CREATE INDEX chat_members_by_user ON chat_members(user_id, chat_id)",
            """
            CREATE TABLE messages (
                id TEXT COLLATE "C" PRIMARY KEY,
                chat_id TEXT COLLATE "C" NOT NULL REFERENCES chats(id),
                chat_seq BIGINT NOT NULL,
                sender_id TEXT COLLATE "C" NOT NULL,
                text BYTEA NOT NULL,
                reply_to TEXT COLLATE "C",
                forward_json TEXT COLLATE "C",
                mentions_json TEXT COLLATE "C",
                created_at BIGINT NOT NULL,
                edited_at BIGINT,
                edit_count BIGINT NOT NULL DEFAULT 0,
                deleted_at BIGINT,
                pinned_at BIGINT,
                client_message_id BYTEA,
                CONSTRAINT messages_chat_seq_key UNIQUE (chat_id, chat_seq)
            )
            """,
            """
            CREATE UNIQUE INDEX messages_by_client_message_id ON messages(chat_id, sender_id, client_message_id)
            WHERE client_message_id IS NOT NULL
            """,
            "CREATE INDEX messages_pinned ON messages(chat_id, pinned_at) WHERE pinned_at IS NOT NULL",
            """
            CREATE TABLE message_versions (
                message_id TEXT COLLATE "C" NOT NULL,
                version BIGINT NOT NULL,
                text BYTEA NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (message_id, version)
            )
            """,
            """
            CREATE TABLE reactions (
                message_id TEXT COLLATE "C" NOT NULL,
                emoji TEXT COLLATE "C" NOT NULL,
                user_id TEXT COLLATE "C" NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (message_id, emoji, user_id)
            )
            """,
            """
            CREATE TABLE events (
                seq BIGINT PRIMARY KEY,
                created_at BIGINT NOT NULL,
                payload BYTEA NOT NULL
            )
            """,
            "CREATE INDEX events_by_created_at ON events(created_at)",
            """
            CREATE TABLE event_recipients (
                user_id TEXT COLLATE "C" NOT NULL,
                seq BIGINT NOT NULL,
                PRIMARY KEY (user_id, seq)
            )
            """,
            "CREATE INDEX event_recipients_by_seq ON event_recipients(seq)",
            """
            CREATE TABLE log_state (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                head_seq BIGINT NOT NULL,
                oldest_seq BIGINT NOT NULL
            )
            """,
            "INSERT INTO log_state (id, head_seq, oldest_seq) VALUES (1, 0, 1)",
        ],
        // 2: bots (decision 0004): user kinds, message extras, bot registrations, the bot outbox.
        [
            "ALTER TABLE users ADD COLUMN kind TEXT COLLATE \"C\" NOT NULL DEFAULT 'user'",
            "ALTER TABLE messages ADD COLUMN extras_json TEXT COLLATE \"C\"",
            """
            CREATE TABLE bots (
                id TEXT COLLATE "C" PRIMARY KEY REFERENCES users(id),
                url TEXT COLLATE "C" NOT NULL,
                sealed_secret BYTEA NOT NULL,
                allowed_data TEXT COLLATE "C" NOT NULL,
                enabled BOOLEAN NOT NULL,
                description TEXT COLLATE "C" NOT NULL,
                status TEXT COLLATE "C",
                status_at BIGINT,
                commands_json TEXT COLLATE "C" NOT NULL,
                created_at BIGINT NOT NULL
            )
            """,
            """
            CREATE TABLE bot_outbox (
                id TEXT COLLATE "C" PRIMARY KEY,
                bot_id TEXT COLLATE "C" NOT NULL,
                job BYTEA NOT NULL,
                attempts BIGINT NOT NULL,
                next_attempt_at BIGINT NOT NULL,
                created_at BIGINT NOT NULL,
                last_error TEXT COLLATE "C"
            )
            """,
            "CREATE INDEX bot_outbox_due ON bot_outbox(next_attempt_at, created_at)",
            "CREATE INDEX bot_outbox_by_bot ON bot_outbox(bot_id)",
        ],
        // 3: stealth chats (BotX stealth_set) and disappearing messages.
        [
            """
            CREATE TABLE chat_stealth (
                chat_id TEXT COLLATE "C" PRIMARY KEY REFERENCES chats(id),
                burn_in BIGINT,
                expire_in BIGINT,
                disable_web BOOLEAN NOT NULL
            )
            """,
            """
            CREATE TABLE message_expiry (
                message_id TEXT COLLATE "C" PRIMARY KEY,
                expires_at BIGINT NOT NULL
            )
            """,
            "CREATE INDEX message_expiry_due ON message_expiry(expires_at)",
        ],
        // 4: users by e-mail (BotX users/by_email) without a table scan.
        ["CREATE INDEX users_by_email ON users(lower(email))"],
        // 5: the server key's fingerprint (nodes with another key refuse to start), sealed
        // secrets bound to their bot (format 1, re-sealed at start), per-bot permissions (bots
        // registered before keep what every bot could do until then).
        [
            """
            CREATE TABLE server_keys (
                name TEXT COLLATE "C" PRIMARY KEY,
                fingerprint TEXT COLLATE "C" NOT NULL
            )
            """,
            "ALTER TABLE bots ADD COLUMN secret_format BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE bots ADD COLUMN permissions TEXT COLLATE \"C\" NOT NULL DEFAULT 'create-chats,directory-export'",
        ],
        // 6: the log stores each recipient set once (decision 0006) instead of a row per recipient
        // and event. Events already logged keep their recipients: each becomes its own audience.
        [
            """
            CREATE TABLE event_audiences (
                id BIGSERIAL PRIMARY KEY,
                digest BYTEA NOT NULL UNIQUE,
                created_at BIGINT NOT NULL
            )
            """,
            """
            CREATE TABLE event_audience_members (
                user_id TEXT COLLATE "C" NOT NULL,
                audience_id BIGINT NOT NULL REFERENCES event_audiences(id) ON DELETE CASCADE,
                PRIMARY KEY (user_id, audience_id)
            )
            """,
            "CREATE INDEX event_audience_members_by_audience ON event_audience_members(audience_id)",
            "ALTER TABLE events ADD COLUMN audience_id BIGINT REFERENCES event_audiences(id)",
            "INSERT INTO event_audiences (id, digest, created_at) SELECT seq, convert_to('legacy event ' || seq, 'UTF8'), created_at FROM events",
            "SELECT setval(pg_get_serial_sequence('event_audiences', 'id'), GREATEST((SELECT max(id) FROM event_audiences), 1))",
            "INSERT INTO event_audience_members (user_id, audience_id) SELECT user_id, seq FROM event_recipients",
            "UPDATE events SET audience_id = seq",
            "CREATE INDEX events_by_audience ON events(audience_id, seq)",
            "DROP TABLE event_recipients",
        ],
        // 7: a send's context in one round trip (decision 0009). Two statements, as before in
        // `PostgresAccess.sendingContext`, but run by the server: each statement of a VOLATILE
        // function takes a fresh snapshot, so the member query after the chat row lock still sees
        // a membership change the lock waited for. `use_column`: the result columns are also
        // variables here, and a name like `id` means the table's column.
        [
            """
            CREATE FUNCTION vestnik_sending_context(p_chat TEXT, p_sender TEXT, p_client_message_id BYTEA, p_lock BOOLEAN)
            RETURNS TABLE (
                id TEXT, kind TEXT, title TEXT, description TEXT, created_by TEXT, created_at BIGINT, member_count BIGINT,
                last_message_seq BIGINT, last_activity_at BIGINT,
                user_id TEXT, role TEXT, joined_at BIGINT, read_seq BIGINT, member_ids TEXT[], has_bots BOOLEAN, existing_id TEXT
            )
            LANGUAGE plpgsql VOLATILE AS $$
            #variable_conflict use_column
            DECLARE
                c chats%ROWTYPE;
            BEGIN
                -- Only a member takes the chat's row lock: anyone else could hold it up by guessing ids.
                IF p_lock THEN
                    SELECT * INTO c FROM chats
                    WHERE chats.id = p_chat AND EXISTS (SELECT 1 FROM chat_members s WHERE s.chat_id = p_chat AND s.user_id = p_sender)
                    FOR NO KEY UPDATE;
                ELSE
                    SELECT * INTO c FROM chats
                    WHERE chats.id = p_chat AND EXISTS (SELECT 1 FROM chat_members s WHERE s.chat_id = p_chat AND s.user_id = p_sender);
                END IF;
                IF NOT FOUND THEN
                    RETURN;
                END IF;
                RETURN QUERY
                SELECT c.id, c.kind, c.title, c.description, c.created_by, c.created_at, c.member_count, c.last_message_seq,
                  c.last_activity_at, m.user_id, m.role, m.joined_at, m.read_seq,
                  ARRAY(SELECT a.user_id FROM chat_members a WHERE a.chat_id = p_chat),
                  EXISTS (SELECT 1 FROM chat_members bm JOIN bots b ON b.id = bm.user_id WHERE bm.chat_id = p_chat),
                  (SELECT x.id FROM messages x
                   WHERE x.chat_id = p_chat AND x.sender_id = p_sender AND x.client_message_id = p_client_message_id)
                FROM chat_members m WHERE m.chat_id = p_chat AND m.user_id = p_sender;
            END
            $$
            """
        ],
        // 8: the contexts of a batch of sends in one call (decision 0011). The chats whose
        // sender is a member are locked in id order, so two nodes' batches over the same chats
        // cannot deadlock on each other; then the log's counter row, as every send takes it after
        // its chat (`PostgresAccess.locking`), and the caller numbers the batch's events from its
        // head. The contexts are read by a statement after the locks, with a fresh snapshot, as in
        // migration 7, and only for the chats locked. An empty client message id stands for none
        // (ids are 1–128 bytes).
        [
            """
            CREATE FUNCTION vestnik_sending_contexts(p_chats TEXT[], p_senders TEXT[], p_client_message_ids BYTEA[])
            RETURNS TABLE (
                ord BIGINT, id TEXT, kind TEXT, title TEXT, description TEXT, created_by TEXT, created_at BIGINT, member_count BIGINT,
                last_message_seq BIGINT, last_activity_at BIGINT,
                user_id TEXT, role TEXT, joined_at BIGINT, read_seq BIGINT, member_ids TEXT[], has_bots BOOLEAN, existing_id TEXT,
                head_seq BIGINT
            )
            LANGUAGE plpgsql VOLATILE AS $$
            #variable_conflict use_column
            DECLARE
                head BIGINT;
                locked TEXT[];
            BEGIN
                -- Only members take a chat's row lock: anyone else could hold it up by guessing ids.
                SELECT array_agg(l.id) INTO locked FROM (
                    SELECT c.id FROM chats c
                    WHERE c.id IN (
                        SELECT u.chat FROM unnest(p_chats, p_senders) AS u(chat, sender)
                        WHERE EXISTS (SELECT 1 FROM chat_members s WHERE s.chat_id = u.chat AND s.user_id = u.sender))
                    ORDER BY c.id
                    FOR NO KEY UPDATE
                ) l;
                IF locked IS NULL THEN
                    RETURN;
                END IF;
                SELECT l.head_seq INTO head FROM log_state l WHERE l.id = 1 FOR UPDATE;
                RETURN QUERY
                SELECT u.ord, c.id, c.kind, c.title, c.description, c.created_by, c.created_at, c.member_count, c.last_message_seq,
                  c.last_activity_at, m.user_id, m.role, m.joined_at, m.read_seq,
                  ARRAY(SELECT a.user_id FROM chat_members a WHERE a.chat_id = c.id),
                  EXISTS (SELECT 1 FROM chat_members bm JOIN bots b ON b.id = bm.user_id WHERE bm.chat_id = c.id),
                  (SELECT x.id FROM messages x
                   WHERE x.chat_id = c.id AND x.sender_id = m.user_id AND x.client_message_id = NULLIF(u.client_message_id, ''::bytea)),
                  head
                FROM unnest(p_chats, p_senders, p_client_message_ids) WITH ORDINALITY AS u(chat, sender, client_message_id, ord)
                JOIN chats c ON c.id = u.chat
                JOIN chat_members m ON m.chat_id = u.chat AND m.user_id = u.sender
                -- A sender who joined while this waited for a lock: their chat is not locked
                -- here, so their send is left to the per-send path.
                WHERE c.id = ANY(locked);
            END
            $$
            """
        ],
        // 9: a message's text is stored once: an unedited message has no version rows (its row
        // is its only version), and the first edit stores the original as version 0.
        [
            "DELETE FROM message_versions v USING messages m WHERE v.version = 0 AND v.message_id = m.id AND m.edit_count = 0"
        ],
        // 10: migration 8's function, computing a chat's member ids and its bot check once per
        // chat rather than once per send (a profile under the `group` load put 29 % of the
        // database's CPU in this function, which rebuilt the same member array for every send of
        // a batch to one chat). The rows come in the batch's order and only each chat's first row
        // carries the member ids, which the caller reads once per chat anyway (as did the code
        // before this migration, so a node not yet upgraded reads these rows correctly); the
        // locking is migration 8's, unchanged, and repeated here because a migration's text is
        // history: sharing it with migration 8 would let an edit rewrite what migration 8 did.
        // Its statements keep one generic plan: left to choose, PostgreSQL kept planning this
        // query afresh (pgbench, 8 sends to one chat per call: 1.10 ms a call, 0.47 with the
        // generic plan, 0.69 for migration 8's function). Needs PostgreSQL 12 or later
        // (`MATERIALIZED`).
        [
            """
            CREATE OR REPLACE FUNCTION vestnik_sending_contexts(p_chats TEXT[], p_senders TEXT[], p_client_message_ids BYTEA[])
            RETURNS TABLE (
                ord BIGINT, id TEXT, kind TEXT, title TEXT, description TEXT, created_by TEXT, created_at BIGINT, member_count BIGINT,
                last_message_seq BIGINT, last_activity_at BIGINT,
                user_id TEXT, role TEXT, joined_at BIGINT, read_seq BIGINT, member_ids TEXT[], has_bots BOOLEAN, existing_id TEXT,
                head_seq BIGINT
            )
            LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
            #variable_conflict use_column
            DECLARE
                head BIGINT;
                locked TEXT[];
            BEGIN
                -- Only members take a chat's row lock: anyone else could hold it up by guessing ids.
                SELECT array_agg(l.id) INTO locked FROM (
                    SELECT c.id FROM chats c
                    WHERE c.id IN (
                        SELECT u.chat FROM unnest(p_chats, p_senders) AS u(chat, sender)
                        WHERE EXISTS (SELECT 1 FROM chat_members s WHERE s.chat_id = u.chat AND s.user_id = u.sender))
                    ORDER BY c.id
                    FOR NO KEY UPDATE
                ) l;
                IF locked IS NULL THEN
                    RETURN;
                END IF;
                SELECT l.head_seq INTO head FROM log_state l WHERE l.id = 1 FOR UPDATE;
                RETURN QUERY
                -- MATERIALIZED: inlined, the planner may evaluate the array once per joined row again.
                WITH facts AS MATERIALIZED (
                    SELECT f.id AS chat,
                      ARRAY(SELECT a.user_id FROM chat_members a WHERE a.chat_id = f.id) AS members,
                      EXISTS (SELECT 1 FROM chat_members bm JOIN bots b ON b.id = bm.user_id WHERE bm.chat_id = f.id) AS bots
                    FROM unnest(locked) AS f(id)
                )
                SELECT u.ord, c.id, c.kind, c.title, c.description, c.created_by, c.created_at, c.member_count, c.last_message_seq,
                  c.last_activity_at, m.user_id, m.role, m.joined_at, m.read_seq,
                  CASE WHEN row_number() OVER (PARTITION BY c.id ORDER BY u.ord) = 1 THEN facts.members END,
                  facts.bots,
                  (SELECT x.id FROM messages x
                   WHERE x.chat_id = c.id AND x.sender_id = m.user_id AND x.client_message_id = NULLIF(u.client_message_id, ''::bytea)),
                  head
                FROM unnest(p_chats, p_senders, p_client_message_ids) WITH ORDINALITY AS u(chat, sender, client_message_id, ord)
                -- Only the chats locked: a sender who joined while this waited for a lock is
                -- left to the per-send path.
                JOIN facts ON facts.chat = u.chat
                JOIN chats c ON c.id = u.chat
                JOIN chat_members m ON m.chat_id = u.chat AND m.user_id = u.sender
                ORDER BY u.ord;
            END
            $$
            """
        ],
        // 11: the log's age index goes. Only the prune read it, and a prune batch now finds its
        // cut-off among the oldest positions (primary key), so every event paid an index entry
        // that nothing used.
        ["DROP INDEX IF EXISTS events_by_created_at"],
        // 12: login attempts counted for the whole cluster (decision 0017): per hashed key, the
        // time its counted attempts are spent until, in ms.
        // The index serves the hourly prune.
        [
            "CREATE TABLE IF NOT EXISTS login_attempts (key_hash text PRIMARY KEY, spent_until bigint NOT NULL)",
            "CREATE INDEX IF NOT EXISTS login_attempts_by_spent_until ON login_attempts (spent_until)",
        ],
    ]
}
