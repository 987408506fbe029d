"""`tf-twohead`: the command line. `parser` defines it, `commands` runs each command.

`main` checks arguments before anything heavy loads, and every user error ends in one
line and exit code 2 (`console.run`).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    try:
        from tf_twohead.cli import commands, console, parser

        cli = parser.build()
        args, extra = cli.parse_known_args(argv)
        # argparse ends a command's `key=value` overrides at its first option; the ones
        # after an option (`--threads 1 data.root=...`) are overrides all the same.
        if extra and hasattr(args, "overrides") and all(
                "=" in a and not a.startswith("-") for a in extra):
            args.overrides = [*args.overrides, *extra]
        elif extra:
            cli.error(f"unrecognized arguments: {' '.join(extra)}")
        console.set_verbose(args.verbose)
        return console.run(args.command, commands.COMMANDS[args.command], args)
    except KeyboardInterrupt:  # Ctrl-C before the command started (imports, parsing)
        print("\nInterrupted.", file=sys.stderr)
        return 130


__all__ = ["main"]
