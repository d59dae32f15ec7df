"""Central's domain layer, split by reason to change; `central.service.CentralService` composes it.

`core` is the shared plumbing (store, site, clock, event sink, write retries); `checks` and
`views` are pure helpers for input validation and output shapes. Each other module is one
concern (uplink ingest, queries, operator actions, timers, maintenance, reports, users) as a
small class over one `Core`, so a change to, say, escalation touches `timers` and nothing else.
"""
