from convection import define_schema, define_table, v

schema = define_schema(
    {
        "messages": define_table(
            {
                "body": v.string(),
                "channel": v.string(),
                "author": v.optional(v.string()),
                "n": v.optional(v.number()),
            }
        ).search_index("search_body", search_field="body", filter_fields=["channel", "author"]),
        "notes": define_table({"text": v.string()}).search_index("search_text", search_field="text"),
        "docs": define_table(
            {
                "embedding": v.union(v.array(v.float64()), v.string(), v.null()),
                "kind": v.string(),
                "userId": v.optional(v.string()),
            }
        ).vector_index(
            "by_embedding", vector_field="embedding", dimensions=3, filter_fields=["kind", "userId"]
        ),
    }
)
