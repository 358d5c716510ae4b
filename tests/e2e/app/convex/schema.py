from convection import define_schema, define_table, v

schema = define_schema({
    "messages": define_table({"body": v.string(), "author": v.optional(v.string())}),
    "counters": define_table({"name": v.string(), "n": v.number()}).index("by_name", ["name"]),
    "items": define_table({"n": v.number()}),
    # e2e: pagination over an index, so rows can be inserted in the middle of a page.
    "entries": define_table({"list": v.string(), "n": v.number()}).index("by_list_n", ["list", "n"]),
    # e2e: latency probes.
    "pings": define_table({"run": v.string(), "seq": v.number()}).index("by_run_seq", ["run", "seq"]),
    # e2e: typed values stored in documents.
    "vals": define_table({"key": v.string(), "value": v.any()}).index("by_key", ["key"]),
})
