from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from convection import HttpRouter, http_action

http = HttpRouter()


@http.route(path="/stripe/webhook", method="POST")
async def stripe_webhook(ctx, request: Request) -> Response:
    return JSONResponse({"ok": True})


@http_action
async def serve_file(ctx, request: Request) -> Response:
    return Response(b"file")


http.route(path_prefix="/files/", method="GET", handler=serve_file)
