"""The streaming aggregations, as one namespace so they never shadow Python's builtins:

>>> from fti.features.project import agg
>>> [a.name for a in (agg.count(window="15m"), agg.sum("amount", window="1h"),
...                   agg.max("amount", window="1d"), agg.time_since_previous())]
['count_15m', 'amount_sum_1h', 'amount_max_1d', 'secs_since_previous']
"""

from fti.features.project.declare import (
    count,
    distinct_count,
    last,
    max,
    mean,
    min,
    std,
    sum,
    time_since_previous,
)

__all__ = ["count", "distinct_count", "last", "max", "mean", "min", "std", "sum",
           "time_since_previous"]
