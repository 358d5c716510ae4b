"""A function made by a factory in a helper module gets its path here."""

from ._helpers import make_counter

count_orders = make_counter("orders")
