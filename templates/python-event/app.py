"""Handles batches of messages from the `tasks` queue: each one is recorded
in the `tasks` table under its message id. A message that cannot be
recorded is reported as failed, so only it is retried (and after the
queue's `max_receive_count`, moved to `tasks-failed`)."""

from typing import List

import nimbus
from wit_world import exports
from wit_world.imports.types import Event


class Handler(exports.Handler):
    def handle(self, events: List[Event]) -> List[str]:
        failed = []
        for event in events:
            body = event.data.decode(errors="replace")
            try:
                nimbus.put_item("tasks", {"id": event.id, "body": body})
                nimbus.info(f"recorded task {event.id}: {body}")
            except nimbus.NimbusError as e:
                nimbus.warn(f"cannot record task {event.id}: {e!r}")
                failed.append(event.id)
        # The ids of the events that failed; raising fails the whole batch.
        return failed
