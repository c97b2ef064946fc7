"""Monitoring (Qt-free): the figures the original system asked for, sampled into capped series kept in Redis.

`sampler.Sampler` takes one `StatsSnapshot` per 10 s slot (one writer per slot across every window and worker),
`series.StatsSeries` keeps them (24 h at 10 s, 30 days at 5 min), and the CLI, the Monitor dock and the opt-in
Prometheus endpoint all read the same samples.
"""
