"""A real gRPC server and a proxyless gRPC xDS client in one process, for tests/grpc_xds.rs.

1. Starts a gRPC server on 127.0.0.1:0 with one generic unary method
   (/sluice.test.Echo/Ping, raw bytes: no generated code) and prints `PORT <n>`.
2. Waits (bounded) for a line `GO` on stdin: the test has then written the
   EndpointSlice naming that port and started `sluice serve`.
3. Calls the method through channel `xds:///<hostname>`, whose xDS server, node and
   credentials come from the JSON file in $GRPC_XDS_BOOTSTRAP, retrying until one call
   succeeds or the deadline passes. Prints `OK <reply>` (exit 0) or `FAIL <error>`
   (exit 1).
"""

import select
import sys
import time
from concurrent import futures

import grpc

SERVICE = "sluice.test.Echo"
METHOD = "Ping"


def ping(request, context):
    return b"pong:" + request


def start_server():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {METHOD: grpc.unary_unary_rpc_method_handler(ping)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def wait_for_go(timeout_s):
    ready, _, _ = select.select([sys.stdin], [], [], timeout_s)
    if not ready:
        return False
    return sys.stdin.readline().strip() == "GO"


def call_through_xds(hostname, deadline_s):
    """The first successful reply, or the last error, within `deadline_s`."""
    last_error = "no attempt"
    with grpc.insecure_channel(f"xds:///{hostname}") as channel:
        stub = channel.unary_unary(f"/{SERVICE}/{METHOD}")
        give_up = time.monotonic() + deadline_s
        while time.monotonic() < give_up:
            left = give_up - time.monotonic()
            try:
                reply = stub(b"hello", timeout=max(0.1, min(3.0, left)), wait_for_ready=True)
                return True, reply.decode()
            except grpc.RpcError as e:
                last_error = f"{e.code()}: {e.details()}"
                time.sleep(0.2)
    return False, last_error


def main():
    hostname = sys.argv[1]
    deadline_s = float(sys.argv[2])
    server, port = start_server()
    print(f"PORT {port}", flush=True)
    if not wait_for_go(60):
        print("FAIL no GO on stdin within 60 s", flush=True)
        return 1
    ok, result = call_through_xds(hostname, deadline_s)
    print(("OK " if ok else "FAIL ") + result, flush=True)
    server.stop(grace=None)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
