#!/usr/bin/env python3
"""Independent per-conversation counts of a capture, from tshark.

Prints one TSV line per TCP/UDP conversation (innermost transport layer,
endpoints in canonical order):

  proto  a_ip  a_port  b_ip  b_port  frames_a_to_b  bytes_a_to_b  frames_b_to_a  bytes_b_to_a  community_id

Counts are frame lengths on the wire (frame.len), as `tshark -z conv,tcp`
counts them. Two refinements, both still tshark's own decoding:
- a fragment of an IP datagram is counted in the conversation of the frame
  that tshark reassembled it in (`ip.reassembled_in`), because a sensor
  counts every fragment frame of a flow, while `-z conv` counts only the
  frame that completed the datagram;
- the outer UDP conversation of a VXLAN tunnel is not a conversation of the
  mirrored traffic and is left out.
After computing, the script cross-checks frame counts (and exact byte counts
where tshark prints them in bytes) against `tshark -q -z conv,tcp -z
conv,udp` for every conversation without fragments, and exits non-zero on
any difference.

The community_id column is computed by the reference `communityid` Python
package (corelight) when it is installed, else "-".
"""
import ipaddress
import re
import subprocess
import sys
from collections import defaultdict

FIELDS = ["frame.number", "frame.len", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
          "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
          "ip.reassembled_in", "ipv6.reassembled.in", "ip.flags.mf", "ip.frag_offset",
          "ipv6.fragment", "vxlan.vni", "frame.protocols"]


def last(v):
    return v.split(",")[-1] if v else ""


def run(args):
    # A truncated or corrupt capture makes tshark exit non-zero after it has
    # printed everything before the damage; that output is what we want.
    p = subprocess.run(["tshark"] + args, capture_output=True, text=True)
    if p.returncode != 0 and "cut short" not in p.stderr and "appears to be damaged" not in p.stderr:
        sys.stderr.write(p.stderr)
        sys.exit(p.returncode)
    return p.stdout


def key_of(proto, sip, sport, dip, dport):
    a = (ipaddress.ip_address(sip), int(sport))
    b = (ipaddress.ip_address(dip), int(dport))
    # Same canonical order as EVE consumers use: version, then address, then port.
    ka = (a[0].version, a[0].packed, a[1])
    kb = (b[0].version, b[0].packed, b[1])
    if ka <= kb:
        return (proto, a, b), True
    return (proto, b, a), False


def main(path):
    # Two passes (-2), so earlier fragments know the frame they were reassembled in.
    out = run(["-2", "-r", path, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a"]
              + sum([["-e", f] for f in FIELDS], []))
    conv = defaultdict(lambda: [0, 0, 0, 0])
    pending = defaultdict(lambda: [0, 0])  # reassembling frame -> [frames, bytes]
    rows = []
    for line in out.splitlines():
        f = dict(zip(FIELDS, line.split("\t")))
        rows.append(f)
    # Frames whose datagram tshark reassembled elsewhere.
    for f in rows:
        num = int(f["frame.number"])
        target = last(f["ip.reassembled_in"]) or last(f["ipv6.reassembled.in"])
        if target and int(target) != num:
            pending[int(target)][0] += 1
            pending[int(target)][1] += int(f["frame.len"])
            f["_skip"] = True
    with_frags = set()
    for f in rows:
        if f.get("_skip"):
            continue
        num = int(f["frame.number"])
        sip = last(f["ip.src"]) or last(f["ipv6.src"])
        dip = last(f["ip.dst"]) or last(f["ipv6.dst"])
        # With two IP layers (tunnels), the innermost wins; with both v4 and v6
        # present, take the protocol that appears last in frame.protocols.
        protos = f["frame.protocols"].split(":")
        if "ipv6" in protos and "ip" in protos:
            if max(i for i, p in enumerate(protos) if p == "ipv6") > max(i for i, p in enumerate(protos) if p == "ip"):
                sip, dip = last(f["ipv6.src"]), last(f["ipv6.dst"])
            else:
                sip, dip = last(f["ip.src"]), last(f["ip.dst"])
        if f["tcp.srcport"]:
            proto, sp, dp = "TCP", last(f["tcp.srcport"]), last(f["tcp.dstport"])
        elif f["udp.srcport"]:
            if f["vxlan.vni"] and protos.count("udp") < 2:
                continue
            proto, sp, dp = "UDP", last(f["udp.srcport"]), last(f["udp.dstport"])
        else:
            continue
        if not sip:
            continue
        k, fwd = key_of(proto, sip, sp, dip, dp)
        frames, nbytes = 1, int(f["frame.len"])
        if num in pending:
            frames += pending[num][0]
            nbytes += pending[num][1]
            with_frags.add(k)
        c = conv[k]
        if fwd:
            c[0] += frames
            c[1] += nbytes
        else:
            c[2] += frames
            c[3] += nbytes
    cross_check(path, conv, with_frags)
    try:
        import communityid
        cid = communityid.CommunityID()
    except ImportError:
        cid = None
    for k in sorted(conv, key=lambda k: (k[0], k[1][0].version, k[1][0].packed, k[1][1], k[2][0].packed, k[2][1])):
        proto, a, b = k
        c = conv[k]
        ident = "-"
        if cid is not None:
            make = communityid.FlowTuple.make_tcp if proto == "TCP" else communityid.FlowTuple.make_udp
            ident = cid.calc(make(str(a[0]), str(b[0]), a[1], b[1]))
        print("\t".join(map(str, [proto, a[0], a[1], b[0], b[1], c[0], c[1], c[2], c[3], ident])))


CONV_LINE = re.compile(r"^(\S+):(\d+)\s+<->\s+(\S+):(\d+)\s+(\d+)\s+(\S+ \S+)\s+(\d+)\s+(\S+ \S+)\s+(\d+)")


def parse_bytes(s):
    n, unit = s.split(" ")
    return int(n.replace(",", "")) if unit == "bytes" else None


def cross_check(path, conv, with_frags):
    text = run(["-r", path, "-q", "-z", "conv,tcp", "-z", "conv,udp"])
    section = None
    bad = []
    for line in text.splitlines():
        if "TCP Conversations" in line:
            section = "TCP"
        elif "UDP Conversations" in line:
            section = "UDP"
        m = CONV_LINE.match(line)
        if not m or section is None:
            continue
        a_ip, a_port, b_ip, b_port = m.group(1), m.group(2), m.group(3), m.group(4)
        # tshark: "<-" counts frames from B to A, "->" from A to B.
        b_to_a = (int(m.group(5)), parse_bytes(m.group(6)))
        a_to_b = (int(m.group(7)), parse_bytes(m.group(8)))
        try:
            k, fwd = key_of(section, a_ip, a_port, b_ip, b_port)
        except ValueError:
            continue
        if k in with_frags:
            continue
        if k not in conv:
            # The VXLAN underlay conversation is deliberately absent.
            continue
        c = conv[k]
        mine_ab = (c[0], c[1]) if fwd else (c[2], c[3])
        mine_ba = (c[2], c[3]) if fwd else (c[0], c[1])
        for (mf, mb), (tf, tb) in ((mine_ab, a_to_b), (mine_ba, b_to_a)):
            if mf != tf or (tb is not None and mb != tb):
                bad.append((line.strip(), mine_ab, mine_ba))
    if bad:
        for b in bad:
            print("conv mismatch:", b, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1])
