"""Offline work on a whole app config, in one process and without Ray: replaying
held-out interactions through each blend (``evaluate``), experiment reports from
the event dataset (``report``) and training a stack's combiner (``training``).
"""
