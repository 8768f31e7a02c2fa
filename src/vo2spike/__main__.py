"""``vo2spike`` and ``python -m vo2spike``: the interrupt handlers first, then the CLI.

Importing the CLI loads torch (seconds); a Ctrl-C or ``kill`` in that time exits 130 at once
(nothing is written yet) instead of printing a traceback.
"""

import sys

from vo2spike import interrupts


def main() -> int:
    """The ``vo2spike`` command."""
    interrupts.install()
    from vo2spike.cli import main as cli_main

    code = cli_main()
    # Done, outputs complete: a signal during the interpreter's shutdown (which puts back
    # the default handlers, a kill without exit code 130) is ignored instead.
    interrupts.ignore()
    return code


if __name__ == "__main__":
    sys.exit(main())
