"""Schema of the benchmark app (bench/run.py)."""

from convection import define_schema, define_table, v

schema = define_schema({
    # W1/L1/F1/R1/G1: one document per insert, one secondary index.
    "messages": define_table({"channel": v.string(), "n": v.number(), "body": v.string()}).index(
        "by_channel_n", ["channel", "n"]
    ),
    # C1: one hot counter document.
    "counters": define_table({"name": v.string(), "n": v.number()}).index("by_name", ["name"]),
    # S1: many subscriptions on distinct keys.
    "slots": define_table({"k": v.number(), "v": v.number()}).index("by_k", ["k"]),
})
