"""A doctor's findings: one line each, ok / warn / fail, and how they are shown (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    """One check: what was found (``detail``), and for a warn or fail line what to do (``fix``);
    ``value`` is the fact itself for ``--json``."""

    section: str
    check: str
    status: Status
    detail: str
    fix: str = ""
    value: Any = None

    def __post_init__(self) -> None:
        if self.status != "ok" and not self.fix:
            raise ValueError(f"{self.section}/{self.check}: a {self.status} line needs a fix")

    def line(self) -> str:
        """The finding as one screen line."""
        text = f"  {self.status:<5} {self.check:<13} {self.detail}"
        return f"{text} -> {self.fix}" if self.fix else text

    def to_json(self) -> dict[str, Any]:
        out = {"section": self.section, "check": self.check, "status": self.status,
               "detail": self.detail, "fix": self.fix or None}  # fmt: skip
        if self.value is not None:
            out["value"] = self.value
        return out


def exit_code(findings: Sequence[Finding]) -> int:
    """0 when nothing failed, 1 when something did (warnings do not fail)."""
    return 1 if any(f.status == "fail" for f in findings) else 0


def summary(findings: Sequence[Finding]) -> str:
    failed = sum(f.status == "fail" for f in findings)
    warned = sum(f.status == "warn" for f in findings)
    verdict = "something failed" if failed else "nothing failed"
    return f"{verdict}: {failed} failed, {warned} warnings, {len(findings)} checks"


def render_text(findings: Sequence[Finding]) -> str:
    """Sections in order of first appearance, one line a finding, then the summary."""
    lines: list[str] = []
    section = None
    for finding in findings:
        if finding.section != section:
            section = finding.section
            lines.append(section)
        lines.append(finding.line())
    lines.append(summary(findings))
    return "\n".join(lines)


def render_json(findings: Sequence[Finding]) -> dict[str, Any]:
    """``{"status": "ok"|"warn"|"fail", "exit_code": N, "checks": [...]}``."""
    worst: Status = "ok"
    if any(f.status == "warn" for f in findings):
        worst = "warn"
    if exit_code(findings):
        worst = "fail"
    return {
        "status": worst,
        "exit_code": exit_code(findings),
        "checks": [f.to_json() for f in findings],
    }
