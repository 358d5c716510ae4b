"""The chat app's tables: channels, and messages that belong to a channel."""

from convection import define_schema, define_table, v

schema = define_schema({
    "channels": define_table({"name": v.string()}).index("by_name", ["name"]),
    "messages": define_table({
        "channel": v.id("channels"),
        "author": v.string(),
        "body": v.string(),
    }).index("by_channel", ["channel"]),
})
