"""The CLI's consoles. Markup is off: names from the data (domains, concepts, mechanisms) may hold
brackets, and must print as they are; styles are given as arguments, never inside text."""

from collections.abc import Collection, Sequence

from rich.console import Console
from rich.table import Table

console = Console(markup=False, highlight=False)
errors = Console(stderr=True, markup=False, highlight=False)


def add_columns(table: Table, columns: Sequence[str], text: Collection[str]) -> Table:
    """Columns of a results table: the ``text`` ones (labels) left-aligned, the others (numbers) right."""
    for column in columns:
        table.add_column(column, justify="left" if column in text else "right")
    return table
