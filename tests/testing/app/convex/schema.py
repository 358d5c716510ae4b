from convection import define_schema, define_table, v

schema = define_schema({
    "notes": define_table({"owner": v.string(), "text": v.string(), "done": v.boolean()})
    .index("by_owner", ["owner"]),
    "counters": define_table({"name": v.string(), "n": v.number()}).index("by_name", ["name"]),
})
