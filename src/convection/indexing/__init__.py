"""indexing: how documents become ordered index keys, and how key ranges are tracked.

* :mod:`convection.indexing.keys` — the order-preserving byte encoding of values and index
  keys (byte order == the Convex total order; a prefix of fields is a byte prefix), so every
  index range is a byte interval.
* :mod:`convection.indexing.intervals` — intervals of encoded keys: read sets and the
  subscription stabbing structure.

Layer: above ``persistence`` (and ``schema``, ``values``), below ``database``, which builds
its reads, read sets and subscriptions on these keys and intervals.
"""
