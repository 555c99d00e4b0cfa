"""Writes what a playbook or ad-hoc run did as JSON lines, for ailab/playbook.py to read instead of parsing
Ansible's screen output.

Enabled in ansible.cfg (callbacks_enabled); it writes only when the environment names a file in
``AILAB_EVENTS`` (ailab.playbook.run_playbook and ``ailab maintenance`` set it), so a plain
``ansible-playbook`` run is unaffected.  One JSON object per line, each with ``event``:

- ``play``: ``name``, when a play starts;
- ``task``: ``name`` (as the screen shows it: ``role : task``), ``handler`` (bool), when a task starts;
- ``result``: ``host``, ``task``, ``status`` (ok, changed, failed, skipped, unreachable), ``ignored``, and for
  command-like modules ``rc``, ``stdout``, ``stderr``, plus ``msg`` on failures;
- ``stats``: ``hosts`` -> {ok, changed, unreachable, failed, skipped, rescued, ignored}, once at the end.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: ailab_events
    type: aggregate
    short_description: what the run did, as JSON lines in the file named by AILAB_EVENTS
    description:
      - Plays, tasks, per-host results and the final per-host stats, one JSON object per line, for the
        project's tools (ailab/playbook.py) to read.  Writes nothing when AILAB_EVENTS is unset.
"""

KEEP = ("rc", "stdout", "stderr", "msg")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "ailab_events"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        path = os.environ.get("AILAB_EVENTS")
        self._out = open(path, "a", encoding="utf-8", buffering=1) if path else None  # noqa: SIM115

    def _write(self, event: str, **data) -> None:
        if self._out is not None:
            self._out.write(json.dumps({"event": event, **data}, default=str) + "\n")

    # Plays and tasks ------------------------------------------------------------------------------------

    def v2_playbook_on_play_start(self, play):
        self._write("play", name=play.get_name().strip())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._write("task", name=task.get_name().strip(), handler=False)

    def v2_playbook_on_handler_task_start(self, task):
        self._write("task", name=task.get_name().strip(), handler=True)

    # Results --------------------------------------------------------------------------------------------

    def _result(self, result, status: str, **extra) -> None:
        data = result._result
        kept = {key: data[key] for key in KEEP if key in data and (key != "msg" or status != "ok")}
        self._write(
            "result", host=result._host.get_name(), task=result._task.get_name().strip(), status=status,
            **kept, **extra,
        )  # fmt: skip

    def v2_runner_on_ok(self, result):
        self._result(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, "failed", ignored=bool(ignore_errors))

    def v2_runner_on_skipped(self, result):
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._result(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        # AggregateStats.summarize names the failed count "failures"; the recap line (and we) say "failed".
        keys = {"ok": "ok", "changed": "changed", "unreachable": "unreachable", "failed": "failures",
                "skipped": "skipped", "rescued": "rescued", "ignored": "ignored"}  # fmt: skip
        hosts = {
            host: {ours: stats.summarize(host).get(theirs, 0) for ours, theirs in keys.items()}
            for host in sorted(stats.processed)
        }
        self._write("stats", hosts=hosts)
        if self._out is not None:
            self._out.close()
            self._out = None
