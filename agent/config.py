"""The agent's options: what to explain, the budgets that stop it, and how it proposes and prunes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tools.feedback import PruningRules


class AgentConfig(BaseModel):
    """Every budget has a default: a run without options stops after 5 iterations or 500 LLM calls."""

    model_config = ConfigDict(extra="forbid")

    mechanism: str = Field(default="human", description="Whose choices to explain.")
    domains: list[str] = Field(default_factory=list, description="Only these domains (default: all).")
    source: str | None = Field(default=None, description="Only pairs of this source.")
    pairs_per_domain: int | None = Field(default=200, ge=4, description="Pairs sampled per domain (None: all).")
    test_fraction: float = Field(default=0.25, gt=0, lt=1, description="Share of each domain held out for validation.")
    seed: int = 0

    # budgets: the run stops before any stage that could cross one
    max_calls: int = Field(default=500, ge=0, description="LLM calls (re-asks included).")
    max_tokens: int | None = Field(default=None, ge=0, description="LLM tokens, prompt + completion (None: no cap).")
    max_iterations: int = Field(default=5, ge=1, description="Propose-validate rounds.")
    max_seconds: float | None = Field(default=None, gt=0, description="Wall time of one invocation (run or resume).")
    patience: int = Field(default=2, ge=1, description="Stop after this many rounds without held-out gain.")
    min_gain: float = Field(default=0.005, ge=0, description="Smallest held-out accuracy gain that counts.")
    tolerance: float = Field(default=0.0, ge=0, description="Largest held-out accuracy fall a kept change may cause.")

    # proposing and annotating
    batches_per_iteration: int = Field(default=6, ge=1, description="Batches of error pairs shown per round.")
    batch_size: int = Field(default=5, ge=1)
    concepts_per_batch: int = Field(default=5, ge=1, le=20)
    shared: bool = Field(
        default=True,
        description="New concepts are shared (HMDR finds where they matter); off: shared only if proposed "
        "in at least half of the domains, as one-shot discovery does.",
    )
    measured: bool = Field(default=True, description="Start from the free, code-measured concepts too.")
    mine: bool = Field(
        default=True, description="Also propose phrases mined from the training pairs (free; kept only if they help)."
    )
    mined_per_round: int = Field(default=5, ge=1, le=50, description="Mined phrases proposed per round, at most.")
    relevance: bool = Field(default=True, description="Ask which concepts matter for a pair before comparing.")
    n_splits: int = Field(default=5, ge=2, description="CV folds on the training split.")

    pruning: PruningRules = Field(default_factory=PruningRules)
    approve: bool = Field(default=False, description="Ask a human before dropping or merging kept concepts.")
