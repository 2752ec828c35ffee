"""Local tooling: a Ray cluster on this machine for ``make run`` and the tests
(``cluster``), and simulated readers for the demo (``demo_traffic``).
"""
