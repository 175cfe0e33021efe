"""Policy decisions: allow or refuse, with reasons and obligations."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a decision went the way it did: machine code + human text."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Obligations:
    max_duration_seconds: int | None = None
    idle_timeout_seconds: int | None = None
    requires_customer_approval: bool = False
    step_up_mfa: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    allow: bool
    reasons: tuple[Reason, ...] = ()
    obligations: Obligations = field(default_factory=Obligations)

    def explain(self) -> str:
        verdict = "ALLOW" if self.allow else "DENY"
        lines = [verdict] + [f"  [{r.code}] {r.message}" for r in self.reasons]
        return "\n".join(lines)
