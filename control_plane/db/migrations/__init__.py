"""Numbered schema migrations: ``mNNNN_name.py`` modules with ``upgrade(conn)``; see db/migrate.py."""
