"""The CLI's consoles. Markup is off: names from the data (domains, concepts, mechanisms) may hold
brackets, and must print as they are; styles are given as arguments, never inside text."""

from rich.console import Console

console = Console(markup=False, highlight=False)
errors = Console(stderr=True, markup=False, highlight=False)
