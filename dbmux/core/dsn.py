"""Database URLs (``mysql://`` / ``postgresql://``) parsed once into a value type.

The password never appears in ``repr``/``str`` or logs: use :meth:`Dsn.redacted` for display.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from dbmux.core.errors import DbmuxError

MYSQL_SCHEMES = ("mysql", "mariadb")
POSTGRES_SCHEMES = ("postgresql", "postgres")
_DEFAULT_PORTS = {"mysql": 3306, "postgresql": 5432}


class DsnError(DbmuxError, ValueError):
    """A URL could not be parsed; the message says what form is expected."""


@dataclass(frozen=True, slots=True)
class Dsn:
    kind: str  # "mysql" or "postgresql"
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str | None = None
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, url: str) -> Dsn:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme in MYSQL_SCHEMES:
            kind = "mysql"
        elif scheme in POSTGRES_SCHEMES:
            kind = "postgresql"
        else:
            raise DsnError(
                f"unsupported URL scheme {scheme!r}: expected mysql://user:password@host:port/db "
                "or postgresql://user:password@host:port/db"
            )
        if not parts.hostname:
            raise DsnError(f"URL {redact_url(url)!r} has no host")
        try:
            port = parts.port or _DEFAULT_PORTS[kind]
        except ValueError as exc:
            raise DsnError(f"URL {redact_url(url)!r} has an invalid port") from exc
        if not parts.username:
            raise DsnError(f"URL {redact_url(url)!r} has no user")
        db = unquote(parts.path.lstrip("/")) or None
        return cls(
            kind=kind,
            host=parts.hostname,
            port=port,
            user=unquote(parts.username),
            password=unquote(parts.password or ""),
            database=db,
            params=tuple(parse_qsl(parts.query)),
        )

    def url(self, *, with_password: bool = True) -> str:
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + (quote(self.password, safe="") if with_password else "***")
        path = "/" + quote(self.database, safe="") if self.database else ""
        query = "&".join(f"{quote(k)}={quote(v)}" for k, v in self.params)
        return f"{self.kind}://{auth}@{self.host}:{self.port}{path}" + (f"?{query}" if query else "")

    def redacted(self) -> str:
        return self.url(with_password=False)

    def __str__(self) -> str:
        return self.redacted()

    def with_database(self, database: str | None) -> Dsn:
        return Dsn(self.kind, self.host, self.port, self.user, self.password, database, self.params)


def redact_url(url: str) -> str:
    """Hide the password of any URL-like string, even one that does not parse as a Dsn."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
