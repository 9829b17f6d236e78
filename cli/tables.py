"""Tables the application commands print (and benchmarks print the same way): agreement between
mechanisms, where two mechanisms differ, steering win rates, tie-break accuracy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from cli.console import add_columns

if TYPE_CHECKING:
    from tools.comparison import AgreementMatrix, MechanismDifferences
    from tools.resampling import ConfidenceInterval
    from tools.steering import SteeringReport
    from tools.tiebreak import TieBreakReport


def interval(value: ConfidenceInterval | None) -> str:
    return "-" if value is None else f"{100 * value.estimate:.1f} [{100 * value.low:.1f}, {100 * value.high:.1f}]"


def agreement_table(matrix: AgreementMatrix, title: str = "Agreement % (row = reference)") -> Table:
    """Agreement of each column's mechanism with each row's (reference ties left out, the other's tie 0.5)."""
    table = Table(title=title)
    table.add_column("reference \\ mechanism")
    for name in matrix.mechanisms:
        table.add_column(name, justify="right")
    for reference in matrix.mechanisms:
        values = [matrix.accuracy(reference, name) for name in matrix.mechanisms]
        table.add_row(
            reference,
            *(
                "-" if v is None or n == reference else f"{100 * v:.1f}"
                for n, v in zip(matrix.mechanisms, values, strict=True)
            ),
        )
    return table


def differences_table(differences: MechanismDifferences) -> Table:
    first, second = differences.first, differences.second
    table = Table(
        title=f"Where {first} and {second} differ: global lift (pp), same {differences.n_pairs} pairs and "
        f"penalties; only differences whose {100 * differences.confidence:.0f}% interval excludes 0"
    )
    add_columns(table, ("domain", "concept", first, second, "difference", "interval"), text=("domain", "concept"))
    for entry in differences.domains:
        label = f"{entry.domain} ({entry.n_pairs})"
        if not entry.concepts:
            table.add_row(label, "no difference shown", "", "", "", f"({entry.not_shown} compared)")
        for i, c in enumerate(entry.concepts):
            table.add_row(
                label if i == 0 else "",
                c.concept,
                f"{c.first:+.1f}",
                f"{c.second:+.1f}",
                f"{c.difference:+.1f}",
                f"{c.low:+.1f} .. {c.high:+.1f}",
            )
    return table


def win_rate_table(report: SteeringReport) -> Table:
    table = Table(title=f"Steering {report.mechanism}: win rate % against plain responses ({report.evaluator}, 95% CI)")
    add_columns(table, ("concepts", "domain", "win", "tie", "lose", "win rate"), text=("concepts", "domain"))
    for r in report.win_rates:
        table.add_row(r.condition, r.domain or "all", str(r.wins), str(r.ties), str(r.losses), interval(r.rate))
    return table


def tiebreak_table(report: TieBreakReport) -> Table:
    title = f"Tie break on {report.ties} ties of {report.judge}: accuracy % against {report.reference} (95% CI)"
    table = Table(title=title)
    add_columns(table, ("concepts from", "resolved", "accuracy", "gain (points)"), text=("concepts from",))
    for row in report.rows:
        table.add_row(row.source, f"{row.resolved}/{report.ties}", interval(row.accuracy), f"{100 * row.gain:+.1f}")
    return table
