from convection import define_schema, define_table, v

schema = define_schema({
    "messages": define_table({"body": v.string(), "author": v.optional(v.string())}),
    "counters": define_table({"name": v.string(), "n": v.number()}).index("by_name", ["name"]),
    "items": define_table({"n": v.number()}),
})
