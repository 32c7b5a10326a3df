"""Check that PostgreSQL and Redis answer, and create the database if it does not exist yet.

The README's commands run this first so that a missing service is reported in one clear sentence, with the
command that starts it, rather than as a traceback from deep inside a migration or a worker.
"""

from __future__ import annotations

from typing import Any

import psycopg
import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from psycopg import sql

POSTGRES_HINT = (
    "Start it with `pg_ctlcluster --skip-systemctl-redirect 15 main start` (Debian; or `sudo systemctl start "
    "postgresql`, or `docker compose up -d postgres`), or point DATABASE_URL at a running server, or unset it "
    "and run bin/start with FLOWNOVA_SERVICES=auto (or embedded) to get a private one."
)
REDIS_HINT = (
    "Start it with `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no` "
    "(or `docker compose up -d redis`), or point REDIS_URL at a running server, or unset it and run bin/start "
    "with FLOWNOVA_SERVICES=auto (or embedded) to get a private one."
)


def connection_kwargs(database: str) -> dict[str, Any]:
    db = settings.DATABASES["default"]
    kwargs: dict[str, Any] = {
        "dbname": database,
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
        "connect_timeout": 5,
    }
    return {key: value for key, value in kwargs.items() if value is not None}


def where() -> str:
    db = settings.DATABASES["default"]
    return f"{db.get('HOST') or 'local socket'}:{db.get('PORT') or 5432}"


class Command(BaseCommand):
    help = "Check PostgreSQL and Redis, and create the database when it is missing."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--no-create", action="store_true", help="Only check; do not create the database.")

    def handle(self, *args: object, no_create: bool = False, **options: object) -> None:
        self.check_postgres(create=not no_create)
        self.check_redis()
        self.stdout.write(self.style.SUCCESS("PostgreSQL and Redis are reachable."))

    def check_postgres(self, *, create: bool) -> None:
        name = settings.DATABASES["default"]["NAME"]
        try:
            with psycopg.connect(**connection_kwargs(name)):
                return
        except psycopg.OperationalError as exc:
            if f'database "{name}" does not exist' not in str(exc):
                raise CommandError(
                    f"PostgreSQL is not reachable at {where()}: {str(exc).strip()}\n{POSTGRES_HINT}"
                ) from None
        if not create:
            raise CommandError(f'Database "{name}" does not exist on {where()}.')
        try:
            with psycopg.connect(**connection_kwargs("postgres"), autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.Error as exc:
            raise CommandError(f'Could not create database "{name}" on {where()}: {str(exc).strip()}') from exc
        self.stdout.write(f'Created database "{name}".')

    def check_redis(self) -> None:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=3, socket_connect_timeout=3)
        try:
            client.ping()
        except redis.RedisError as exc:
            raise CommandError(f"Redis is not reachable at {settings.REDIS_URL}: {exc}\n{REDIS_HINT}") from exc
        finally:
            client.close()
