"""Model hosting: the gateway a blend calls models through (in process or by
handle), one model's version rollout (load beside, smoke test, swap, canary,
shadow, rollback), the typed messages across deployment handles and the adaptive
batch controller. No HTTP.
"""
