/// Schema migrations, append-only. The PostgreSQL adapter uses the same numbering.
enum SQLiteMigrations {
    static let all: [String] = [
        // 1: accounts, sessions, chats, messages, the event log.
        """
        CREATE TABLE users (
            id TEXT PRIMARY KEY,
            login TEXT NOT NULL UNIQUE,
            display_name TEXT NOT NULL,
            email TEXT,
            department TEXT,
            position TEXT,
            is_admin INTEGER NOT NULL DEFAULT 0,
            is_blocked INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL,
            password_hash TEXT,
            search_text TEXT NOT NULL
        );
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL REFERENCES users(id),
            token_hash BLOB NOT NULL UNIQUE,
            device_name TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            last_seen_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        );
        CREATE INDEX sessions_by_user ON sessions(user_id);
        CREATE TABLE chats (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            title TEXT NOT NULL,
            description TEXT NOT NULL,
            created_by TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            member_count INTEGER NOT NULL,
            last_message_seq INTEGER NOT NULL,
            last_activity_at INTEGER NOT NULL,
            unique_key TEXT UNIQUE
        );
        CREATE TABLE chat_members (
            chat_id TEXT NOT NULL REFERENCES chats(id),
            user_id TEXT NOT NULL REFERENCES users(id),
            role TEXT NOT NULL,
            joined_at INTEGER NOT NULL,
            read_seq INTEGER NOT NULL,
            PRIMARY KEY (chat_id, user_id)
        ) WITHOUT ROWID;
        CREATE INDEX chat_members_by_user ON chat_members(user_id, chat_id);
        CREATE TABLE messages (
            id TEXT PRIMARY KEY,
            chat_id TEXT NOT NULL REFERENCES chats(id),
            chat_seq INTEGER NOT NULL,
            sender_id TEXT NOT NULL,
            text TEXT NOT NULL,
            reply_to TEXT,
            forward_json TEXT,
            mentions_json TEXT,
            created_at INTEGER NOT NULL,
            edited_at INTEGER,
            edit_count INTEGER NOT NULL DEFAULT 0,
            deleted_at INTEGER,
            pinned_at INTEGER,
            client_message_id TEXT,
            UNIQUE (chat_id, chat_seq)
        );
        CREATE UNIQUE INDEX messages_by_client_message_id ON messages(chat_id, sender_id, client_message_id) WHERE client_message_id IS NOT NULL;
        CREATE INDEX messages_pinned ON messages(chat_id, pinned_at) WHERE pinned_at IS NOT NULL;
        CREATE TABLE message_versions (
            message_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            text TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (message_id, version)
        ) WITHOUT ROWID;
        CREATE TABLE reactions (
            message_id TEXT NOT NULL,
            emoji TEXT NOT NULL,
            user_id TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (message_id, emoji, user_id)
        ) WITHOUT ROWID;
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            created_at INTEGER NOT NULL,
            payload BLOB NOT NULL
        );
        CREATE INDEX events_by_created_at ON events(created_at);
        CREATE TABLE event_recipients (
            user_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (user_id, seq)
        ) WITHOUT ROWID;
        CREATE INDEX event_recipients_by_seq ON event_recipients(seq);
        CREATE TABLE log_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            head_seq INTEGER NOT NULL,
            oldest_seq INTEGER NOT NULL
        );
        INSERT INTO log_state (id, head_seq, oldest_seq) VALUES (1, 0, 1);
        """,
        // 2: bots (decision 0004): user kinds, message extras, bot registrations, the bot outbox.
        """
        ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'user';
        ALTER TABLE messages ADD COLUMN extras_json TEXT;
        CREATE TABLE bots (
            id TEXT PRIMARY KEY REFERENCES users(id),
            url TEXT NOT NULL,
            sealed_secret BLOB NOT NULL,
            allowed_data TEXT NOT NULL,
            enabled INTEGER NOT NULL,
            description TEXT NOT NULL,
            status TEXT,
            status_at INTEGER,
            commands_json TEXT NOT NULL,
            created_at INTEGER NOT NULL
        );
        CREATE TABLE bot_outbox (
            id TEXT PRIMARY KEY,
            bot_id TEXT NOT NULL,
            job BLOB NOT NULL,
            attempts INTEGER NOT NULL,
            next_attempt_at INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            last_error TEXT
        );
        CREATE INDEX bot_outbox_due ON bot_outbox(next_attempt_at, created_at);
        CREATE INDEX bot_outbox_by_bot ON bot_outbox(bot_id);
        """,
        // 3: stealth chats (BotX stealth_set) and disappearing messages.
        """
        CREATE TABLE chat_stealth (
            chat_id TEXT PRIMARY KEY REFERENCES chats(id),
            burn_in INTEGER,
            expire_in INTEGER,
            disable_web INTEGER NOT NULL
        );
        CREATE TABLE message_expiry (
            message_id TEXT PRIMARY KEY,
            expires_at INTEGER NOT NULL
        );
        CREATE INDEX message_expiry_due ON message_expiry(expires_at);
        """,
        // 4: users by e-mail (BotX users/by_email) without a table scan.
        """
        CREATE INDEX users_by_email ON users(lower(email));
        """,
        // 5: the server key's fingerprint (nodes with another key refuse to start), sealed
        // secrets bound to their bot (format 1, re-sealed at start), per-bot permissions (bots
        // registered before keep what every bot could do until then).
        """
        CREATE TABLE server_keys (
            name TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL
        );
        ALTER TABLE bots ADD COLUMN secret_format INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE bots ADD COLUMN permissions TEXT NOT NULL DEFAULT 'create-chats,directory-export';
        """,
        // 6: the log stores each recipient set once (decision 0006) instead of a row per recipient
        // and event. Events already logged keep their recipients: each becomes its own audience.
        """
        CREATE TABLE event_audiences (
            id INTEGER PRIMARY KEY,
            digest BLOB NOT NULL UNIQUE,
            created_at INTEGER NOT NULL
        );
        CREATE TABLE event_audience_members (
            user_id TEXT NOT NULL,
            audience_id INTEGER NOT NULL REFERENCES event_audiences(id),
            PRIMARY KEY (user_id, audience_id)
        ) WITHOUT ROWID;
        CREATE INDEX event_audience_members_by_audience ON event_audience_members(audience_id);
        ALTER TABLE events ADD COLUMN audience_id INTEGER REFERENCES event_audiences(id);
        INSERT INTO event_audiences (id, digest, created_at) SELECT seq, CAST('legacy event ' || seq AS BLOB), created_at FROM events;
        INSERT INTO event_audience_members (user_id, audience_id) SELECT user_id, seq FROM event_recipients;
        UPDATE events SET audience_id = seq;
        CREATE INDEX events_by_audience ON events(audience_id, seq);
        DROP TABLE event_recipients;
        """,
        // 7: PostgreSQL only (a server-side function for a send's context, decision 0009); here
        // nothing, so that both stores keep one numbering.
        "",
        // 8: PostgreSQL only (the contexts of a batch of sends in one call, decision 0011).
        "",
        // 9: a message's text is stored once: an unedited message has no version rows (its row
        // is its only version), and the first edit stores the original as version 0.
        "DELETE FROM message_versions WHERE version = 0 AND message_id IN (SELECT id FROM messages WHERE edit_count = 0);",
        // 10: PostgreSQL only (the batched contexts computed once per chat).
        "",
        // 11: the log's age index goes. Only the prune read it, and a prune batch now finds its
        // cut-off among the oldest positions (the rowid), so every event paid an index entry, a
        // page of every commit, that nothing used.
        "DROP INDEX IF EXISTS events_by_created_at;",
        // 12: login attempts counted for the whole cluster (decision 0017): per hashed key, the
        // time its counted attempts are spent until, in ms.
        // The index serves the hourly prune.
        """
        CREATE TABLE IF NOT EXISTS login_attempts (key_hash TEXT PRIMARY KEY, spent_until INTEGER NOT NULL) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS login_attempts_by_spent_until ON login_attempts(spent_until);
        """,
    ]
}
