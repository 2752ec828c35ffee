"""Training on a team's own tables: read them through a data config, split them in
time, fit the standard models, measure them against each other, publish them.

``blendserve train`` is :func:`models.training.pipeline.train_from_config`; the demo
(``blendserve demo-train``) is one use of the same pipeline.
"""
