"""The blending engine before it became columnar: one Python object per item.

The golden test runs random requests through it and through ``blending/`` and
requires the same answers. It goes once the columnar engine has landed.
"""
