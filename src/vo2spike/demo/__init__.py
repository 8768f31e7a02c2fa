"""``vo2spike demo``: a local web page that animates the whole pipeline, step by step, with
the project's own model doing the work (server: :mod:`vo2spike.demo.server`)."""
