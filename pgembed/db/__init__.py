"""The layer that runs statements: one psycopg connection's transactions, pgembed's catalog rows, the system
catalogs' facts about a user table, binary COPY in and out, and the SQL files of the catalog's migrations."""
