"""A Workload API client on Python grpcio (a gRPC stack that is not grpc-js), run by python.test.ts.

Usage: /usr/bin/python3 python_client.py <dir with generated workload_pb2*.py> <socket path>
Prints one JSON object per line: x509, jwt, validate, and the statuses of calls without the
security header and of the WIT-SVID profile.
"""
import json
import sys

sys.path.insert(0, sys.argv[1])
SOCKET = sys.argv[2]

import grpc  # noqa: E402
import workload_pb2  # noqa: E402
import workload_pb2_grpc  # noqa: E402

HEADER = (("workload.spiffe.io", "true"),)


def out(**kw):
    print(json.dumps(kw), flush=True)


def der_elements(buf):
    """Splits concatenated DER by its length headers; raises if the bytes are not whole elements."""
    sizes = []
    pos = 0
    while pos < len(buf):
        if buf[pos] != 0x30:
            raise ValueError("no DER SEQUENCE at %d" % pos)
        first = buf[pos + 1]
        if first & 0x80:
            n = first & 0x7F
            length = int.from_bytes(buf[pos + 2 : pos + 2 + n], "big")
            head = 2 + n
        else:
            length, head = first, 2
        if pos + head + length > len(buf):
            raise ValueError("truncated DER")
        sizes.append(head + length)
        pos += head + length
    return sizes


def status(call):
    try:
        call()
        return {"code": "OK"}
    except grpc.RpcError as e:
        return {"code": e.code().name, "details": e.details()}


with grpc.insecure_channel("unix:" + SOCKET) as channel:
    stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)

    stream = stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=HEADER, timeout=15)
    first = next(stream)
    svid = first.svids[0]
    out(
        x509={
            "spiffe_id": svid.spiffe_id,
            "hint": svid.hint,
            "chain": der_elements(svid.x509_svid),
            "key_len": len(svid.x509_svid_key),
            "bundle": der_elements(svid.bundle),
            "crls": len(first.crl),
            "federated": sorted(first.federated_bundles.keys()),
        }
    )
    stream.cancel()

    jwt = stub.FetchJWTSVID(workload_pb2.JWTSVIDRequest(audience=["py-aud"]), metadata=HEADER, timeout=10)
    token = jwt.svids[0].svid
    out(jwt={"spiffe_id": jwt.svids[0].spiffe_id, "parts": len(token.split("."))})

    v = stub.ValidateJWTSVID(workload_pb2.ValidateJWTSVIDRequest(audience="py-aud", svid=token), metadata=HEADER, timeout=10)
    out(validate={"spiffe_id": v.spiffe_id, "sub": v.claims["sub"], "aud": list(v.claims["aud"]), "test": v.claims["writ.test"] if "writ.test" in v.claims.fields else None})

    out(no_header_jwt=status(lambda: stub.FetchJWTSVID(workload_pb2.JWTSVIDRequest(audience=["a"]), timeout=10)))
    out(no_header_x509=status(lambda: next(stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), timeout=10))))
    out(wit=status(lambda: next(stub.FetchWITSVID(workload_pb2.WITSVIDRequest(), metadata=HEADER, timeout=10))))
    out(done=True)
