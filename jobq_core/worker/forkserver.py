"""Set-up of the worker's fork server, which imports this module before it forks job children
(process_slot._context preloads it; nothing else imports it).

The fork server runs in the worker's process group, so a SIGTERM or SIGINT sent to the group
(a warm shutdown, Ctrl-C in a terminal) reaches it too. Killed, it would take the running jobs
with it (their parent-death signal), so it ignores both: the worker alone decides when jobs
stop, and the fork server exits by itself once the worker is gone. Its children inherit this
(child.main ignores both signals anyway).
"""

from __future__ import annotations

import signal

signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
