"""File storage (docs/files.md): blob stores (``blobs.py``), upload tokens (``tokens.py``),
the per-deployment service (``service.py``) and ``ctx.storage`` (``context.py``). The
``_storage`` table itself is ``convection.model.file_storage``; the HTTP routes are
``convection.server.storage_routes``."""
