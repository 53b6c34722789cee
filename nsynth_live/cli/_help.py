"""What the command-line parsers share: plain-text help, prose wrapped and examples kept as written."""

from __future__ import annotations

import argparse
import sys
import textwrap


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wraps each paragraph of the description and epilog to the terminal; a paragraph with an
    indented line (examples, lists) is printed as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        blocks = []
        for block in text.strip("\n").split("\n\n"):
            lines = block.splitlines()
            if any(line[:1].isspace() for line in lines):
                blocks.append("\n".join(indent + line for line in lines))
            else:
                blocks.append(textwrap.fill(" ".join(block.split()), width, initial_indent=indent,
                                            subsequent_indent=indent, break_on_hyphens=False))
        return "\n\n".join(blocks)

    def _split_lines(self, text: str, width: int) -> list[str]:
        # an option's help: wrapped at spaces only (paths and command names keep their hyphens)
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def make_parser(description: str, epilog: str | None = None, **kwargs) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with :class:`HelpFormatter` (``%(prog)s`` in the text is the command's name)."""
    return argparse.ArgumentParser(description=description, epilog=epilog, formatter_class=HelpFormatter, **kwargs)


def fail(message: str, code: int) -> int:
    """Print ``error: message`` (one line) to stderr and return ``code`` (the exit status)."""
    print(f"error: {message}", file=sys.stderr)
    return code
