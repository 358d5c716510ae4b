"""e2e: file storage (tests/e2e/test_storage_e2e.py): the upload flow of a Convex web app."""

from convection import mutation, query, v


@mutation
def generate_upload_url(ctx):
    return ctx.storage.generate_upload_url()


@mutation(args={"storageId": v.id("_storage"), "author": v.string()})
def send_image(ctx, storageId, author):
    return ctx.db.insert("uploads", {"storageId": storageId, "author": author})


@query(args={"author": v.string()})
def list_images(ctx, author):
    docs = ctx.db.query("uploads").filter(lambda q: q.eq(q.field("author"), author)).collect()
    return [
        {
            "storageId": d["storageId"],
            "url": ctx.storage.get_url(d["storageId"]),
            "file": ctx.db.system.get(d["storageId"]),
        }
        for d in docs
    ]


@mutation(args={"storageId": v.id("_storage")})
def delete_image(ctx, storageId):
    ctx.storage.delete(storageId)
    for d in ctx.db.query("uploads").filter(lambda q: q.eq(q.field("storageId"), storageId)).collect():
        ctx.db.delete(d["_id"])
