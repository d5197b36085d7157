#!/usr/bin/env python3
"""FHIR over plain HTTP, with the Python standard library: a FHIR server
stand-in (`http.server`, answering 201 Created to a POST) and a client
(`http.client`) posting FHIR Patient resources, as a remote-monitoring
gateway that sends its patients to a cloud service without TLS would.
wardwatch parses no HTTP: the flow's protocol stays `failed`, and only the
raw-TCP PHI rule sees the patient.

Usage:
  fhir_http.py server PORT         accepts POST /fhir/Patient, answers 201
  fhir_http.py post HOST PORT      posts JANE then JOHN (fakeids.py), one
                                   request each on one keep-alive connection;
                                   headers and body are separate writes, as
                                   most HTTP clients send them
"""

import http.client
import http.server
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import fakeids  # noqa: E402
from mqtt_clients import fhir_patient  # noqa: E402


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 (http.server's name)
        n = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(n)
        body = b'{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational"}]}'
        self.send_response(201)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def server(port):
    http.server.HTTPServer(("0.0.0.0", port), Handler).serve_forever()


def post(host, port):
    c = http.client.HTTPConnection(host, port, timeout=5)
    for p in (fakeids.JANE, fakeids.JOHN):
        body = fhir_patient(p).encode()
        c.putrequest("POST", "/fhir/Patient")
        c.putheader("Host", "telemonitoring.example")
        c.putheader("Content-Type", "application/fhir+json")
        c.putheader("Content-Length", str(len(body)))
        c.endheaders()
        c.send(body)
        r = c.getresponse()
        r.read()
        assert r.status == 201, r.status
    c.close()


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "server":
        server(int(sys.argv[2]))
    elif cmd == "post":
        post(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
