"""Print a password hash for JOBQ_DASHBOARD_PASSWORD_HASH: `python -m dashboard.hashpw`.

Reads the password from the terminal (not echoed), or from stdin when it is not a terminal.
"""

from __future__ import annotations

import getpass
import sys

from .auth import hash_password


def main() -> int:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Again: "):
            print("The passwords differ.", file=sys.stderr)
            return 1
    else:
        first = sys.stdin.readline().rstrip("\n")
    if len(first) < 8:
        print("Use at least 8 characters.", file=sys.stderr)
        return 1
    print(hash_password(first))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
