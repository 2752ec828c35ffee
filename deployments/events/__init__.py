"""Events: served lists and feedback, from the request to durable storage.

The write-ahead log and Parquet dataset (``store``), the running totals and CTR
sums (``counts``), the online learning state (``online_state``), feedback parsing
and pseudonymisation (``feedback``), experiment reports (``experiments``) and the
ingress's client of the ``EventLog`` deployment (``client``).
"""
