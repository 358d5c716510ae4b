from convection import define_schema, define_table, v

schema = define_schema(
    {
        "tasks": define_table({"text": v.string(), "done": v.boolean()}),
        "documents": define_table({"text": v.string(), "embedding": v.array(v.float64())})
        .vector_index("by_embedding", vector_field="embedding", dimensions=2),
    }
)
