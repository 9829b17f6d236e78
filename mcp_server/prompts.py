"""Prompts: reusable workflows an assistant runs with the tools ("why does judge X disagree with humans",
"what does this judge reward in domain D"). Names are checked against the store, so a typo is an
error the user sees at once rather than a failed plan.

Annotations are evaluated at import (no ``from __future__ import annotations``): the SDK reads them.
"""

from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from mcp_server.catalog import mechanism_names
from mcp_server.workspace import workspace_of


def _check(ctx: Context, mechanisms: list[str], domain: str | None = None) -> None:
    """Reject unknown names as invalid parameters (the SDK hides other errors' text from prompts)."""
    with workspace_of(ctx).store() as store:
        known = mechanism_names(store)
        domains = store.domains()
    unknown = [m for m in mechanisms if m not in known]
    if unknown:
        message = f"unknown mechanism(s) {', '.join(unknown)} (known: {', '.join(sorted(known)) or 'none'})"
        raise MCPError(code=INVALID_PARAMS, message=message)
    if domain is not None and domain not in domains:
        raise MCPError(code=INVALID_PARAMS, message=f"unknown domain {domain!r} (known: {', '.join(domains)})")


def register(server: MCPServer[Any]) -> None:
    @server.prompt(title="Explain why a judge disagrees with humans")
    def explain_disagreement(ctx: Context, judge: str, reference: str = "human") -> str:
        """Find where and why an LLM judge (or any mechanism) disagrees with a reference (humans by default)."""
        _check(ctx, [judge, reference])
        return f"""Explain why the mechanism `{judge}` disagrees with `{reference}`, using the whypref tools.

1. Call `compare_mechanisms` with reference="{reference}" and mechanisms=["{judge}"]: note the overall
   agreement and the domains where it is lowest.
2. If either mechanism is listed in `without_model`, call `fit` for it, then call `compare_mechanisms` again.
3. For the domains with the lowest agreement, call `explain` for each mechanism with that domain and
   bootstrap=100, so every lift has a 95% interval.
4. Report the concepts whose lift differs most between the two (opposite signs first, then large
   differences), separating shared lift (all domains) from domain-specific lift, and say which
   differences have intervals that do not overlap.
5. Name what `{judge}` rewards that `{reference}` does not (and the reverse), in plain words, with the
   numbers. Say plainly if agreement is high and there is little to explain."""

    @server.prompt(title="Find what a judge rewards in a domain")
    def judge_rewards(ctx: Context, judge: str, domain: str) -> str:
        """List the concepts an LLM judge (or any mechanism) rewards and penalises in one domain."""
        _check(ctx, [judge], domain)
        return f"""Find what the mechanism `{judge}` rewards in the domain `{domain}`, using the whypref tools.

1. Read the resource `whypref://models`; if `{judge}` has no fitted model, call `fit` with
   mechanism="{judge}" and report its cross-validated accuracy (a model near 50% explains little).
2. Call `explain` with mechanism="{judge}", domain="{domain}", top_k=10, bootstrap=100.
3. List the concepts with positive lift (rewarded) and negative lift (penalised), largest first, each
   with its total lift, its shared and domain-specific parts, and its 95% interval; flag intervals that
   include 0 as uncertain.
4. Read `concepts://<id>` for the top three concepts (the id is the name in lower case with dashes:
   "Use of Examples" is `use-of-examples`) and quote their definitions, so the user knows what each measures.
5. Summarise in two or three sentences what a response should do to win with `{judge}` in `{domain}`."""
