"""`jobq migrate [--dry-run]`: move an older jobq's global keys to the control slot."""

from __future__ import annotations

import click

from ..connection import translated
from ..layout import LAYOUT, migrate, migration_lock
from .app import Failure, Target, common_options, main


@main.command(name="migrate")
@common_options
@click.option("--dry-run", is_flag=True, help="Only list what would move; write nothing.")
def migrate_command(t: Target, dry_run: bool) -> None:
    """Move the global keys of an older jobq (queue and worker registries, schedules, audit
    log, dashboard secret and sessions) into the control slot of key layout 2.

    Idempotent: safe to run twice, and while old-version processes still run (what they
    write after is moved by the next run, or by new-version workers within 24 h). Workers,
    schedulers and dashboards of this version run it themselves when they start; run it by
    hand to see what moves (--dry-run), or once more after the last old process stopped."""
    t.check_layout = False  # a dry run writes nothing; a run migrates under the lock
    client = t.inspector.client
    with translated(t.settings.redis_url):
        if dry_run:
            report = migrate(client, t.settings.prefix, dry_run=True)
        else:
            with migration_lock(client, t.settings.prefix) as lock:
                if not lock:
                    raise Failure("another process is migrating the key layout right now; "
                                  "run this again in a minute")
                report = migrate(client, t.settings.prefix, lock=lock)
    verb = "would move" if dry_run else "moved"

    def text() -> None:
        for line in report.lines:
            click.echo(line)
        click.echo(f"{verb} {report.moved} old key(s) or member(s); "
                   f"{'nothing written' if dry_run else f'key layout {LAYOUT} recorded'}")

    t.emit({"dry_run": dry_run, "moved": report.moved, "layout": LAYOUT, "lines": report.lines},
           text)
