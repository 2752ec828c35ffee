"""One module per model format, each a small ``ModelAdapter`` subclass whose heavy
framework is imported only by its own module (``models/registry.py`` imports a
format on first use): ``sklearn_adapter``, ``torch_adapter`` and ``onnx_adapter``
(both on ``tensor_adapter``), ``python_adapter``, ``http_adapter``, ``curated``,
``popularity`` and the demo's ``click_ranker``. ``_inputs`` parses ``predict``
instances for all of them."""
