"""Ground truth: the true outcome of requests, recorded hours or days after they were answered.

``log`` is the feedback log (DATA_DIR/feedback) and the checks every truth passes, however it arrives;
``importer`` reads CSV or JSON-lines files of ``request_id,truth`` for `rvz feedback import`. The
frontend serves the ``rvz.v1.Feedback`` RPCs (``rvz.frontend.feedback``); `rvz report` and `rvz log
export` read the log back, the last truth of a request winning.
"""
