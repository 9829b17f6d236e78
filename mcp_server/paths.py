"""File paths a client names: accepted only inside the allowed directories, after following symlinks."""

from __future__ import annotations

from pathlib import Path

from tools.errors import InputError


class AllowedDirectories:
    """Resolves client-supplied paths and refuses any that lead outside the configured directories.

    A path is resolved (``..`` collapsed, every symlink followed) before it is checked, so neither
    traversal nor a symlink pointing out of an allowed directory gets through; a directory (the
    dataset folders) is refused if anything inside it links outside. Relative paths are taken from
    the first allowed directory, since an IDE host's working directory says nothing to the user.
    """

    def __init__(self, roots: tuple[Path, ...]) -> None:
        self.roots = roots  # already resolved by ServerSettings

    def resolve(self, raw: str) -> Path:
        if not self.roots:
            raise InputError("this server reads no files: start it with --allow-dir DIR", file=raw)
        if "\x00" in raw:
            raise InputError("the path contains a NUL byte")
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = self.roots[0] / path
        # Containment is checked before existence, so the answer reveals nothing about files outside.
        real = path.resolve()
        if not self._inside(real):
            raise InputError(f"outside the allowed directories ({self._listing()})", file=raw)
        if not real.exists():
            raise InputError("no such file or directory", file=raw)
        if real.is_dir():
            for entry in real.rglob("*"):
                if not self._inside(entry.resolve()):
                    raise InputError(f"{entry.relative_to(real)} links outside the allowed directories", file=raw)
        return real

    def _inside(self, real: Path) -> bool:
        return any(real.is_relative_to(root) for root in self.roots)

    def _listing(self) -> str:
        return ", ".join(str(root) for root in self.roots)
