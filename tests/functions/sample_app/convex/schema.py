from convection import define_schema, define_table, v

schema = define_schema(
    {
        "orders": define_table({"status": v.string(), "total": v.number()}).index(
            "by_status", ["status"]
        ),
        "messages": define_table({"body": v.string(), "author": v.string()}),
    }
)
