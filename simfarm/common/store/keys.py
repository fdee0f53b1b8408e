"""Every Redis key simfarm uses, in one place.

Python code of the store builds keys with :class:`Keys`; the Lua scripts get them in
``KEYS`` or name them ``K.<member>`` after a member of ``Keys`` (see scripts.py). A key
used anywhere is documented here (``tests/test_store_keys.py`` checks both).

Key map (``P`` is the configurable prefix, ``simfarm:`` by default):

=================================  ==========  ===============================================
key                                type        content
=================================  ==========  ===============================================
``P seq``                          string      submit sequence counter
``P job:<id>``                     hash        one job (spec JSON, state, timestamps, node...)
``P job:<id>:events``              stream      the job's events, capped, ids shared with
                                               ``P events``
``P events``                       stream      every event of every job, capped
``P rows:version``                 string      counter bumped by the writes of listed job
                                               fields (rows.ROW_FIELDS) that append no
                                               event: ``update_fields``, expire.lua; with
                                               the newest event's id, the version of every
                                               listing (JobStore.listing_version)
``P jobs``                         zset        all job ids, score = submit sequence
``P state:<state>``                zset        job ids in that state, score = rank
                                               ((10 - priority) * 1e12 + sequence)
``P owner:<owner>``                zset        job ids of one owner, score = submit sequence
``P idem:<key>``                   string      job id created for an Idempotency-Key (TTL)
``P nodes``                        set         names of registered nodes
``P nodes:version``                string      bumped when a node joins, leaves or changes what
                                               placement depends on (the dispatcher re-reads)
``P node:<name>``                  hash        node description and free resources
``P node:<name>:alive``            string      heartbeat marker with a TTL
``P node:<name>:jobs``             set         jobs scheduled on or running at the node
``P node:<name>:limits``           string      the node's local limits (JSON), set by the API
``P node:<name>:drain``            string      an admin's drain of the node (JSON: by, at,
                                               reason); absent when it takes jobs
``P dispatch:wakeup``              list        nudges for the dispatcher
``P dispatch:lock``                string      dispatcher leader lock (fencing token, TTL)
``P dispatch:fence``               string      fencing token counter
``P dispatch:waits``               hash        why pending jobs of each request shape wait:
                                               shape name -> '<written at> <note JSON>'
``P queued``                       hash        jobs not started yet (pending, held) per owner
                                               and per account: ``user/<name>``,
                                               ``account/<name>`` -> count (the Lua that
                                               changes a job's state keeps it: lib.lua
                                               count_waiting); the pending limits read it
``P fairshare``                    string      fair share: every account's and user's
                                               decayed usage and when it was counted (JSON,
                                               written by the dispatcher leader)
``P replicated``                   string      replication barrier counter: a write whose
                                               ``WAIT`` covers every earlier write
``P finished``                     zset        final jobs, score = finished_at (history, expiry)
``P job:<id>:dependents``          set         gated jobs waiting for job <id>
``P gates:check``                  set         jobs whose gates (or dependents' gates) need a
                                               new look: gated jobs, and watched jobs that ended
``P sweeps``                       zset        sweep ids, score = created_at
``P sweep:<id>``                   hash        one sweep (spec JSON, size, throttle...)
``P sweep:<id>:jobs``              zset        the sweep's child job ids, score = index
``P audit``                        stream      append-only audit log (who, what, from where)
``P expiry:lock``                  string      retention sweeper lock (TTL)
``P login:used:<code sha256>``     string      a one-time dashboard login code was redeemed
                                               (on any gateway: never again on another)
``<queue>`` (no prefix)            list        Celery's queue of a node (``simfarm.node.<name>``,
                                               kombu's Redis transport): the dispatcher puts
                                               a job's task message there as it schedules it
``P blobs``                        zset        blob SHA-256s, score = last use (upload, submit,
                                               download), for the retention sweep
``P uploads:<user>``               zset        blobs the user uploaded, score = size (the
                                               upload quota; entries of deleted blobs are
                                               dropped when next counted)
``P stats:<tier>:<series>``        zset        the farm's time series (``fine``: one point per
                                               bucket, ``coarse``: per hour), members
                                               ``"<t>:<value>"``, score = t; trimmed to a fixed
                                               number of points (farm_stats.py)
``P stats:series``                 set         names of the recorded series
                                               (``cores_busy@node=n1``...)
``P stats:last``                   hash        tier -> time of its latest point
``P licenses:limit``               hash        licence pool -> how many farm jobs may hold
                                               at once now (the dispatcher leader writes it)
``P licenses:held``                hash        licence pool -> held by farm jobs; changed
                                               only with the transitions that draw and
                                               return (lib.lua) and by the reconciler; each
                                               holder's share is its ``licenses_held`` field
``P licenses:status``              hash        licence pool -> its last poll, figures and
                                               warning (JSON, LicenseStatus)
``P licenses:waiting``             hash        licence pool -> pending jobs that need it
                                               (the dispatcher leader, when it changes)
``P notify:owners``                set         owners with a webhook for all their jobs
``P notify:ended``                 list        ended jobs to notify about (pushed by the
                                               Lua that ends them: lib.lua notify_ended)
``P notify:expanding``             list        ended jobs the notifier is turning into
                                               deliveries (back to ``notify:ended`` at start)
``P notify:queue``                 zset        delivery ids, score = when the next attempt
                                               is due
``P notify:delivery:<id>``         string      one queued delivery (JSON: target, body,
                                               attempts)
``P notify:webhook:<id>``          hash        a registered webhook (``json``, ``secret``)
``P notify:webhooks:<owner>``      set         the owner's webhook ids
``P notify:log:<webhook id>``      list        the webhook's latest delivery attempts (capped)
``P notify:joblog:<job/sweep id>`` list        attempts about one job or sweep (capped, TTL)
``P notify:sweep:<id>``            hash        a notifying sweep's ended children, and
                                               whether its end was notified
``P usage:days``                   zset        UTC day numbers (days since the epoch) that
                                               have usage roll-ups, score = the day
``P usage:<day>``                  hash        usage roll-up of one UTC day: two rows per
                                               attempt's user, ``account.user|<account>|
                                               <user>`` and ``node.user|<node>|<user>``
                                               (reports by user, account or node add rows
                                               up), each a JSON map of metrics (attempts,
                                               core_s, wall_s, wait_s, end/<how>,
                                               lic/<name>, pool/<name>); written only by
                                               the Lua that ends an attempt (lib.lua
                                               record_usage)
``P usage:<day>:<dim>``            hash        the same day's roll-up as versions before
                                               2026-12 wrote it, one hash per ``<dim>``
                                               (``account.user``, ``node.user``) with a
                                               field ``<first>|<user>|<metric>`` per
                                               number: still read, no longer written
=================================  ==========  ===============================================
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Builds key names for one prefix."""

    prefix: str = "simfarm:"

    @property
    def seq(self) -> str:
        return f"{self.prefix}seq"

    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    @property
    def rows_version(self) -> str:
        return f"{self.prefix}rows:version"

    @property
    def all_jobs(self) -> str:
        return f"{self.prefix}jobs"

    @property
    def nodes(self) -> str:
        return f"{self.prefix}nodes"

    @property
    def nodes_version(self) -> str:
        return f"{self.prefix}nodes:version"

    @property
    def wakeup(self) -> str:
        return f"{self.prefix}dispatch:wakeup"

    @property
    def dispatch_lock(self) -> str:
        return f"{self.prefix}dispatch:lock"

    @property
    def dispatch_fence(self) -> str:
        return f"{self.prefix}dispatch:fence"

    @property
    def dispatch_waits(self) -> str:
        return f"{self.prefix}dispatch:waits"

    @property
    def queued(self) -> str:
        return f"{self.prefix}queued"

    @property
    def fairshare(self) -> str:
        return f"{self.prefix}fairshare"

    @property
    def replicated(self) -> str:
        return f"{self.prefix}replicated"

    @property
    def finished(self) -> str:
        return f"{self.prefix}finished"

    @property
    def gate_checks(self) -> str:
        return f"{self.prefix}gates:check"

    @property
    def sweeps(self) -> str:
        return f"{self.prefix}sweeps"

    @property
    def audit(self) -> str:
        return f"{self.prefix}audit"

    @property
    def expiry_lock(self) -> str:
        return f"{self.prefix}expiry:lock"

    @property
    def blobs(self) -> str:
        return f"{self.prefix}blobs"

    def login_used(self, code_sha256: str) -> str:
        return f"{self.prefix}login:used:{code_sha256}"

    @property
    def stats_names(self) -> str:
        return f"{self.prefix}stats:series"

    @property
    def stats_last(self) -> str:
        return f"{self.prefix}stats:last"

    @property
    def licenses_limit(self) -> str:
        return f"{self.prefix}licenses:limit"

    @property
    def licenses_held(self) -> str:
        return f"{self.prefix}licenses:held"

    @property
    def licenses_status(self) -> str:
        return f"{self.prefix}licenses:status"

    @property
    def licenses_waiting(self) -> str:
        return f"{self.prefix}licenses:waiting"

    @property
    def notify_owners(self) -> str:
        return f"{self.prefix}notify:owners"

    @property
    def notify_ended(self) -> str:
        return f"{self.prefix}notify:ended"

    @property
    def notify_expanding(self) -> str:
        return f"{self.prefix}notify:expanding"

    @property
    def notify_queue(self) -> str:
        return f"{self.prefix}notify:queue"

    def delivery(self, delivery_id: str) -> str:
        return f"{self.prefix}notify:delivery:{delivery_id}"

    def webhook(self, hook_id: str) -> str:
        return f"{self.prefix}notify:webhook:{hook_id}"

    def webhooks_of(self, owner: str) -> str:
        return f"{self.prefix}notify:webhooks:{owner}"

    def webhook_log(self, hook_id: str) -> str:
        return f"{self.prefix}notify:log:{hook_id}"

    def notify_job_log(self, job_id: str) -> str:
        return f"{self.prefix}notify:joblog:{job_id}"

    def notify_sweep(self, sweep_id: str) -> str:
        return f"{self.prefix}notify:sweep:{sweep_id}"

    def stats_series(self, tier: str, name: str) -> str:
        return f"{self.prefix}stats:{tier}:{name}"

    def celery_queue(self, queue: str) -> str:
        """Celery's own key for a queue (kombu's Redis transport: the name itself)."""
        return queue

    def dependents(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}:dependents"

    def sweep(self, sweep_id: str) -> str:
        return f"{self.prefix}sweep:{sweep_id}"

    def sweep_jobs(self, sweep_id: str) -> str:
        return f"{self.prefix}sweep:{sweep_id}:jobs"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def job_events(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}:events"

    def state(self, state: str) -> str:
        return f"{self.prefix}state:{state}"

    def owner(self, owner: str) -> str:
        return f"{self.prefix}owner:{owner}"

    def idempotency(self, key: str) -> str:
        return f"{self.prefix}idem:{key}"

    def node(self, name: str) -> str:
        return f"{self.prefix}node:{name}"

    def node_alive(self, name: str) -> str:
        return f"{self.prefix}node:{name}:alive"

    def node_jobs(self, name: str) -> str:
        return f"{self.prefix}node:{name}:jobs"

    def uploads(self, user: str) -> str:
        return f"{self.prefix}uploads:{user}"

    def node_limits(self, name: str) -> str:
        return f"{self.prefix}node:{name}:limits"

    def node_drain(self, name: str) -> str:
        return f"{self.prefix}node:{name}:drain"

    @property
    def usage_days(self) -> str:
        return f"{self.prefix}usage:days"

    def usage_rollup(self, day: int) -> str:
        return f"{self.prefix}usage:{day}"

    def usage_day(self, day: int, dim: str) -> str:
        return f"{self.prefix}usage:{day}:{dim}"
