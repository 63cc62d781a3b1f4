"""The SQL text pgembed sends to the server, built with psycopg.sql and never run here: each module holds the
statements of one part of the data path, so that this package shows everything a collection sends.

Identifiers reach SQL only as sql.Identifier, values as parameters or sql.Literal; a filter's clause is text
the server compiled (pgembed.filter_sql) or SQLAlchemy rendered from the caller's own expression.
"""
