"""The runtime: a run's life from a request to the handlers and the span.

``scope`` (who sees a run), ``run`` (the run and its span), ``dispatch`` (delivering events
to handlers), ``content`` (what goes on spans), ``tokens`` (streaming accounting),
``streams`` (driving generators inside a run), ``spans`` (ids and OTel internals),
``loop`` and ``workers`` (the threads handlers run on).
"""
