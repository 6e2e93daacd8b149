"""Single File Decoders: the foundational SFDs and the building blocks they share.

``indicators`` and ``targets`` hold causal klines features and forward-looking targets shaped
as Manifest steps; ``results`` turns a fitted model into a results dict.
"""
