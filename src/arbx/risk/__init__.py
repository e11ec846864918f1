"""Risk at run time: the kill switch, the one-signer-per-key lock, and the controller.

The rules themselves are pure and live in the domain (``arbx.domain.modes``, ``limits`` and
``stages``); ``killswitch`` and ``signer_lock`` talk to the database; ``controller`` puts them
together for the engine; ``settings`` is the ``[risk]`` settings section.
"""
