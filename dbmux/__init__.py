"""dbmux: a MySQL database multiplexer (see README.md and ARCHITECTURE.md)."""

from dbmux import _compiled

_compiled.install()  # the compiled hot modules, when built from this source (scripts/compile)
