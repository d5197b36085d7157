#!/usr/bin/env python3
"""What tshark (and openssl, for the certificate) shows of each TLS
handshake of a capture: the independent reference of tests/tls.rs.

Usage: tls_tshark.py CAPTURE > handshakes.jsonl

One JSON object per TCP connection that carries a ClientHello or a
ServerHello, keyed by the client's port, with the fields of wardwatch's EVE
`tls` object that tshark decodes:

  sni            tls.handshake.extensions_server_name of the ClientHello
  version        the ServerHello's tls.handshake.extensions.supported_version,
                 else its tls.handshake.version, named as Suricata names
                 versions ("TLS 1.2", "TLS 1.3"); "UNDETERMINED" without one
  client_alpns   tls.handshake.extensions_alpn_str of the ClientHello
  server_alpns   the same of the ServerHello
  subject, issuerdn, serial, fingerprint, notbefore, notafter
                 of the first certificate of the server's Certificate message
                 (tls.handshake.certificate), read by `openssl x509 -inform
                 DER`: names with -nameopt sep_comma_plus_space (RDNs in
                 order joined by ", "), the serial's DER content bytes as
                 upper-case hex pairs joined by ":", the SHA-1 fingerprint
                 in lower case, validity dates as YYYY-MM-DDTHH:MM:SS (UTC)

TLS is decoded on ports 443, 2762 and 8883 (-d tcp.port==N,tls).
"""
import datetime
import json
import subprocess
import sys

PORTS = (443, 2762, 8883)
FIELDS = [
    "tcp.stream", "tcp.srcport", "tcp.dstport", "tls.handshake.type",
    "tls.handshake.extensions_server_name", "tls.handshake.version",
    "tls.handshake.extensions.supported_version",
    "tls.handshake.extensions_alpn_str", "tls.handshake.certificate",
]
NAMES = {0x0300: "SSLv3", 0x0301: "TLSv1", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2",
         0x0304: "TLS 1.3"}


def openssl(der, *args):
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", *args],
                         input=der, capture_output=True, check=True)
    return out.stdout.decode().strip()


def cert_fields(der):
    def value(line):
        return line.split("=", 1)[1]
    opt = ["-nameopt", "sep_comma_plus_space,sname,utf8,esc_ctrl"]
    def when(s):
        t = datetime.datetime.strptime(value(s), "%b %d %H:%M:%S %Y GMT")
        return t.strftime("%Y-%m-%dT%H:%M:%S")
    # The serial's DER content: openssl prints the integer; a positive
    # integer whose top bit is set carries a leading 00 byte in DER.
    serial = value(openssl(der, "-serial"))
    if len(serial) % 2:
        serial = "0" + serial
    if int(serial[:2], 16) & 0x80:
        serial = "00" + serial
    fp = value(openssl(der, "-fingerprint", "-sha1")).lower()
    dates = openssl(der, "-dates").splitlines()
    return {
        "subject": value(openssl(der, "-subject", *opt)).strip(),
        "issuerdn": value(openssl(der, "-issuer", *opt)).strip(),
        "serial": ":".join(serial[i:i + 2] for i in range(0, len(serial), 2)).upper(),
        "fingerprint": fp,
        "notbefore": when(dates[0]),
        "notafter": when(dates[1]),
    }


def main():
    cap = sys.argv[1]
    args = ["tshark", "-r", cap, "-Y", "tls.handshake.type", "-T", "fields"]
    for p in PORTS:
        args += ["-d", f"tcp.port=={p},tls"]
    for f in FIELDS:
        args += ["-e", f]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    flows = {}
    for line in out.splitlines():
        stream, sport, dport, types, sni, versions, supported, alpn, certs = \
            (line.split("\t") + [""] * 9)[:9]
        types = [int(t) for t in types.split(",") if t]
        if 1 in types:
            f = flows.setdefault(stream, {"client_port": int(sport)})
            if sni:
                f["sni"] = sni
            if alpn:
                f["client_alpns"] = alpn.split(",")
        if 2 in types:
            f = flows.setdefault(stream, {"client_port": int(dport)})
            v = supported or versions.split(",")[0]
            f["version"] = NAMES.get(int(v, 16), v)
            if alpn:
                f["server_alpns"] = alpn.split(",")
        if 11 in types and stream in flows and certs:
            f = flows[stream]
            if "subject" not in f:
                f.update(cert_fields(bytes.fromhex(certs.split(",")[0])))
    for f in flows.values():
        f.setdefault("version", "UNDETERMINED")
        print(json.dumps(f, sort_keys=True))


if __name__ == "__main__":
    main()
