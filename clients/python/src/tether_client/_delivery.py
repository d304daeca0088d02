"""Sending spooled batches, and what each answer means (run by the sender thread).

:class:`Deliverer` sends one ``POST /v1/events/batch`` for the oldest spool rows and
decides from the answer what happens to them (:func:`classify`):

| answer | breaker | the rows |
|---|---|---|
| 2xx | success | deleted: delivered |
| no answer, 502, 503, 504 | failure | kept; backoff (``Retry-After`` wins) |
| 408 | failure | kept; backoff honouring ``Retry-After`` |
| 429 | success | kept; backoff honouring ``Retry-After`` |
| 401, 403 | success | kept; retried every ``retry_max`` s; one error log |
| any other 4xx (400, 404, 409, 413, 422...) | success | *poison*: isolated (*) |
| any other 5xx (500 in practice) | success | kept and retried; isolated (*) after (**) |

(**) ``poison_after`` such answers in a row to requests led by the same oldest row.
(*) only if the write probe (below) passes first. A server that refuses even an empty
batch is not refusing these events: a wrong URL or a proxy answering 404 for every
path, or a sick server answering 500. Nothing is dead-lettered then; the rows stay
and are retried with backoff.

The breaker column is :func:`~._breaker.is_outage`: only an absent or overloaded
server fails it, so a poison event never makes direct calls fail fast.

**Isolation** bisects a refused body with :func:`~._batch.split`: halves the server
takes are delivered, refused halves (4xx or 500) are split again, down to *leaves* of
one item (an event, an end or a session descriptor). A leaf refused with a 4xx becomes
a dead letter at once. A leaf answering 500 is resent until it has answered 500
``poison_after`` times in a row, and becomes a dead letter only if the *write probe*
then passes: ``POST /v1/events/batch`` with ``{}``, an empty batch, which the server
runs as a real write transaction that stores nothing (it answers
``{"seqs": [], "duplicates": 0, "created_sessions": []}``). A 2xx proves the write path
healthy, so the 500 belongs to that item; otherwise the server is sick and nothing is
dead-lettered. Once every leaf of a row is delivered or refused, the row is replaced
by its dead letters in one transaction (:meth:`~._spool.Spool.bury`). An outage, a
throttle, an auth error or a failed probe stops the isolation: the row stays for a
later try (the halves already delivered are then duplicates, which their idempotency
keys absorb).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import httpx

from ._batch import encode, split
from ._breaker import CircuitBreaker, is_outage
from ._config import Config
from ._deadletter import Rejection, subject_of
from ._retry import backoff_delay, retry_after_of
from ._spool import Spool, SpoolRow

logger = logging.getLogger("tether_client")

BATCH_PATH = "/v1/events/batch"
# An empty batch: a full write transaction on the server (parse, validate, the writer,
# a commit) that stores nothing. Its 2xx tells "this item breaks the server" from "the
# server is broken".
PROBE_BODY = b"{}"
_JSON = {"Content-Type": "application/json"}

Letter = tuple[bytes, Rejection]
"""A refused leaf body (JSON bytes) and the server's answer to it."""


class Verdict(StrEnum):
    """What an answer to a batch means (see the module docstring)."""

    DELIVERED = "delivered"
    OUTAGE = "outage"  # no answer, 502, 503, 504: the server is away
    RETRY = "retry"  # 408, 429 (and unexpected 1xx/3xx): come back later
    AUTH = "auth"  # 401, 403: wait for a valid key
    POISON = "poison"  # any other 4xx: the server refuses this body
    SUSPECT = "suspect"  # any other 5xx: a server error, maybe caused by this body


def classify(status: int | None) -> Verdict:
    """Map an HTTP status (``None``: no response) to a :class:`Verdict`."""
    if status is None or status in (502, 503, 504):
        return Verdict.OUTAGE
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status in (401, 403):
        return Verdict.AUTH
    if 400 <= status < 500 and status not in (408, 429):
        return Verdict.POISON
    if status >= 500:
        return Verdict.SUSPECT
    return Verdict.RETRY


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: its verdict, status (``None``: no response) and response."""

    verdict: Verdict
    status: int | None
    response: httpx.Response | None

    @property
    def refused(self) -> bool:
        """Whether the answer may be about this body (poison or a suspect 5xx)."""
        return self.verdict in (Verdict.POISON, Verdict.SUSPECT)

    def rejection(self) -> Rejection:
        """The server's error (only for answers with a response)."""
        assert self.response is not None
        return Rejection.of(self.response)

    def describe(self) -> str:
        """``"<status> <code>: <message>"`` or ``"no response"``, for log lines."""
        return "no response" if self.response is None else self.rejection().summary()


class Deliverer:
    """Sends spool rows and settles them: delivered, dead-lettered, or kept for later.

    Not thread-safe: only the sender thread calls it (``retry_at`` is read elsewhere).

    Args:
        config: Client settings (``poison_after``, backoff, timeouts).
        spool: Where rows are deleted or buried as dead letters.
        breaker: Circuit breaker shared with direct calls.
        transport: httpx transport to use instead of the network; for tests.

    Attributes:
        retry_at: ``time.monotonic()`` before which no batch should be sent (backoff).
        sent_events: Events the server acknowledged (including duplicates).
        duplicates: Events the server already had.
        dead_lettered: Items dead-lettered since the client started.
    """

    def __init__(
        self,
        config: Config,
        spool: Spool,
        breaker: CircuitBreaker,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._config = config
        self._spool = spool
        self._breaker = breaker
        self._http = httpx.Client(
            base_url=config.url,
            headers=config.headers(),
            timeout=httpx.Timeout(config.timeout, connect=min(config.timeout, 2.0)),
            transport=transport,
        )
        self.retry_at = 0.0
        self._failures = 0  # consecutive unsuccessful attempts: the backoff exponent
        self._away = False  # the last attempt found no server (logged once it is back)
        self._auth_warned = False
        self._suspect_row: int | None = None  # oldest row of the last request that got a 500
        self._suspect_count = 0  # 500s in a row for it
        self._dead_warned = False
        self._probe_warned = False
        self.sent_events = 0
        self.duplicates = 0
        self.dead_lettered = 0

    # -- one round -------------------------------------------------------------------------

    def deliver(self, rows: list[SpoolRow], raw: bytes) -> bool:
        """Send one request for ``rows`` (``raw`` is their merged body) and settle them.

        Returns:
            ``True`` when the rows are done (delivered, or isolated with their refused
            items dead-lettered) and deleted; ``False`` when they stay in the spool,
            with a backoff scheduled.
        """
        reply = self._post(raw)
        if reply.verdict is Verdict.DELIVERED:
            self._spool.delete([row.id for row in rows])
            self._suspect_row = None
            return True
        if reply.verdict is Verdict.SUSPECT:
            if not self._repeated(rows[0].id, reply):
                return False
        elif reply.verdict is not Verdict.POISON:
            return False
        if not self._probe():
            return False
        if len(rows) == 1:  # ``raw`` is this row's body, refused poison_after times
            return self._settle(rows[0], reply, repeated=True)
        for row in rows:  # find the refused rows first, oldest first
            answer = self._post(row.body)
            if answer.verdict is Verdict.DELIVERED:
                self._spool.delete([row.id])
                continue
            if not answer.refused or not self._settle(row, answer, repeated=False):
                return False
        return True

    def _repeated(self, row_id: int, reply: Reply) -> bool:
        """Count a 500 for the oldest row; ``True`` once it has had ``poison_after``."""
        if row_id != self._suspect_row:
            self._suspect_row, self._suspect_count = row_id, 0
        self._suspect_count += 1
        if self._suspect_count < self._config.poison_after:
            assert reply.response is not None
            self.schedule_retry(retry_after_of(reply.response))
            logger.warning(
                "tether_client batch got %s; retrying (%d of %d before looking for a poison event)",
                reply.describe(),
                self._suspect_count,
                self._config.poison_after,
            )
            return False
        self._suspect_count = 0  # a failed probe or an interrupted isolation starts over
        return True

    def _probe(self) -> bool:
        """Send the write probe; ``True`` if the server's write path works.

        On failure a backoff is scheduled: the server is sick, the events stay.
        """
        reply = self._post(PROBE_BODY)
        if reply.verdict is Verdict.DELIVERED:
            self._probe_warned = False
            return True
        if reply.refused:  # _post schedules a retry for the other verdicts
            assert reply.response is not None
            self.schedule_retry(retry_after_of(reply.response))
            if not self._probe_warned:
                self._probe_warned = True
                logger.warning(
                    "tether_client: %s refuses even an empty batch (%s), so the fault is "
                    "the server (or the URL), not the events; they stay in the spool",
                    self._config.url,
                    reply.describe(),
                )
        return False

    # -- isolation -------------------------------------------------------------------------

    def _settle(self, row: SpoolRow, reply: Reply, *, repeated: bool) -> bool:
        """Isolate a refused row; on success replace it by its dead letters."""
        letters = self._isolate(json.loads(row.body), row.body, reply, repeated=repeated)
        if letters is None:
            return False
        self._spool.bury(row.id, letters)
        if letters:
            self._report(letters)
        return True

    def _isolate(
        self, body: dict[str, object], raw: bytes, reply: Reply, *, repeated: bool
    ) -> list[Letter] | None:
        """Bisect a refused body: deliver what the server takes, return what it refuses.

        Args:
            body: The refused body; ``raw`` is its JSON and ``reply`` the answer to it.
            repeated: ``raw`` already got ``poison_after`` 500s and the probe passed.

        Returns:
            The refused leaves, or ``None`` when the isolation was interrupted.
        """
        halves = split(body)
        if halves is None:
            return self._judge(raw, reply, repeated=repeated)
        letters: list[Letter] = []
        for half in halves:
            half_raw = encode(half)
            answer = self._post(half_raw)
            if answer.verdict is Verdict.DELIVERED:
                continue
            if not answer.refused:
                return None
            found = self._isolate(half, half_raw, answer, repeated=False)
            if found is None:
                return None
            letters.extend(found)
        return letters

    def _judge(self, raw: bytes, reply: Reply, *, repeated: bool) -> list[Letter] | None:
        """Decide on a refused leaf: dead letter, delivered after all, or undecided."""
        if reply.verdict is Verdict.SUSPECT and not repeated:
            for _ in range(self._config.poison_after - 1):
                reply = self._post(raw)
                if reply.verdict is Verdict.DELIVERED:
                    return []
                if not reply.refused:
                    return None
                if reply.verdict is Verdict.POISON:
                    break
            if reply.verdict is Verdict.SUSPECT and not self._probe():
                return None
        return [(raw, reply.rejection())]

    def _report(self, letters: Sequence[Letter]) -> None:
        self.dead_lettered += len(letters)
        keys = [subject_of(json.loads(raw))[2] for raw, _ in letters]
        where = str(self._spool.path) if self._spool.path else "memory (spool=False)"
        level = logging.DEBUG if self._dead_warned else logging.WARNING
        self._dead_warned = True
        logger.log(
            level,
            "tether_client: the server refused %d item(s) (%s; idempotency keys %s); they "
            "are kept as dead letters in %s and no longer hold back other events. List "
            "them with client.dead_letters(), resend them with client.retry_dead_letters() "
            "or delete them with client.drop_dead_letters(). Later dead letters are "
            "logged at DEBUG.",
            len(letters),
            letters[0][1].summary(),
            keys[:10],
            where,
        )

    # -- one request -----------------------------------------------------------------------

    def _post(self, raw: bytes) -> Reply:
        """POST a body; update the breaker, the backoff and the counters.

        A backoff is scheduled here for outages, throttling and auth errors; for poison
        and suspect answers the caller decides.
        """
        try:
            response = self._http.post(BATCH_PATH, content=raw, headers=_JSON)
        except httpx.HTTPError as exc:
            self._breaker.record_failure()
            self.schedule_retry(None)
            self._away = True
            if self._failures == 1 or self._failures % 20 == 0:
                logger.warning(
                    "tether_client cannot reach %s (%s); events are kept in the spool",
                    self._config.url,
                    type(exc).__name__,
                )
            return Reply(Verdict.OUTAGE, None, None)
        status = response.status_code
        reply = Reply(classify(status), status, response)
        if is_outage(status):
            self._breaker.record_failure()
        else:
            self._breaker.record_success()  # the server is alive and answering
        if reply.verdict is Verdict.DELIVERED:
            if self._away:
                logger.info("tether_client reached %s again; replaying the spool", self._config.url)
            self._away = False
            self._failures = 0
            self.retry_at = 0.0
            self._auth_warned = False
            self._count(response, raw)
        elif reply.verdict is Verdict.AUTH:
            if not self._auth_warned:
                self._auth_warned = True
                logger.error(
                    "tether_client: the server refused the API key (%s); events stay "
                    "in the spool until a valid key is configured",
                    reply.describe(),
                )
            self.schedule_retry(self._config.retry_max)
        elif reply.verdict in (Verdict.OUTAGE, Verdict.RETRY):
            self._away = self._away or reply.verdict is Verdict.OUTAGE
            self.schedule_retry(retry_after_of(response))
            logger.warning("tether_client batch got %s; retrying", reply.describe())
        else:
            logger.debug("tether_client batch got %s", reply.describe())
        return reply

    def _count(self, response: httpx.Response, raw: bytes) -> None:
        try:
            data = response.json().get("data") or {}
            seqs = data.get("seqs")
            self.sent_events += len(seqs) if isinstance(seqs, list) else raw.count(b'"kind"')
            self.duplicates += int(data.get("duplicates") or 0)
        except (ValueError, AttributeError, TypeError):
            pass

    def schedule_retry(self, retry_after: float | None) -> None:
        """Push ``retry_at`` back: exponential backoff with jitter, ``Retry-After`` wins."""
        self._failures += 1
        delay = backoff_delay(
            self._failures,
            base=self._config.retry_base,
            cap=self._config.retry_max,
            retry_after=retry_after,
        )
        self.retry_at = time.monotonic() + delay

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()
