"""The systems `scripts/bench` compares, and the measurements it makes of them.

- ``models``: the three cheap model callables (champion, challenger, canary) every system serves;
- ``scoring_server``: a plain grpc.aio Scoring server around one model (the *direct* baseline, and each
  model server behind the fan-out);
- ``fanout``: a grpc.aio frontend that calls the model servers in parallel and prefers the champion;
- ``procs`` / ``systems``: starting each system as real processes, reading their CPU time and RSS;
- ``measure`` / ``report``: the measurement plan and the table.
"""
