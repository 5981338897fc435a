"""Excerpts of the logs of the servers a bench started: the lines worth showing in the report."""

from __future__ import annotations

import re
from pathlib import Path

_INGRESS_BAD = re.compile(r"Traceback|\bERROR\b|\bWARNING\b|Exception|exception", re.I)
_REPLICATOR_BAD = re.compile(r"Traceback|\bERROR\b|\bWARNING\b|HALTED|gap", re.I)


def ingress_problems(log_path: Path, limit_lines: int = 120) -> str:
    """Excerpt of the ingress log around warnings/errors/tracebacks ('' when clean)."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    keep: set[int] = set()
    for i, ln in enumerate(lines):
        if _INGRESS_BAD.search(ln):
            keep.update(range(max(0, i - 2), min(len(lines), i + 25 if "Traceback" in ln or "failed" in ln
                                                  else i + 2)))
    if not keep:
        return ""
    out, prev = [], -2
    for i in sorted(keep):
        if i != prev + 1:
            out.append("...")
        out.append(lines[i])
        prev = i
        if len(out) >= limit_lines:
            out.append(f"... (truncated; {sum(1 for ln in lines if _INGRESS_BAD.search(ln))} matching lines "
                       f"in total, full log {log_path})")
            break
    return "\n".join(out)


def replicator_problems(log_path: Path, limit: int = 40) -> str:
    """The replicator log's warning/error/traceback/halt/gap lines ('' when clean)."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    bad = [ln for ln in lines if _REPLICATOR_BAD.search(ln)]
    if not bad:
        return ""
    out = bad[:limit]
    if len(bad) > limit:
        out.append(f"... ({len(bad)} matching lines, full log {log_path})")
    return "\n".join(out)


def ingress_log_section(problems: str) -> list[str]:
    """The report's lines about the ingress log: the excerpt of ``problems``, or that it was clean."""
    if not problems:
        return ["Ingress log: no warnings, errors or tracebacks.", ""]
    return ["Ingress log (warnings/errors/tracebacks, excerpt):", "", "```", problems, "```", ""]
