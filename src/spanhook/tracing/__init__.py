"""The OpenTelemetry side: the tracer runs use, export and ``configure()``, tail sampling,
the value policy for span attributes, viewer attributes, console trees, and the public
helpers that carry a run into threads, processes and log records (the run itself lives in
:mod:`spanhook.runtime`)."""
