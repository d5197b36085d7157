#!/usr/bin/env python3
"""Load tiny tc eBPF programs that push / pop VLAN tags and pin them.

Why: the capture VM's kernel is built without 8021q (no `type vlan` links) and
without act_vlan, so 802.1Q / 802.1ad tags cannot be added the usual way.
cls_bpf is built in, so we load a 6-instruction program that calls the kernel
helper bpf_skb_vlan_push() (egress) or bpf_skb_vlan_pop() (ingress); the kernel
itself then tags the real frames, exactly like a trunk port would.  No packet
bytes are written by this script -- only the program.

usage: ebpf_vlan.py PIN_DIR            (creates PIN_DIR/{push120,pop1,qinq300_120,pop2})
Pinned programs are attached with `tc filter add dev X egress bpf da pinned F`.
"""
import ctypes
import os
import struct
import sys

SYS_BPF = 321  # x86_64
BPF_PROG_LOAD = 5
BPF_OBJ_PIN = 6
BPF_PROG_TYPE_SCHED_CLS = 3
HELPER_SKB_VLAN_PUSH = 18
HELPER_SKB_VLAN_POP = 19

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def insn(code, dst=0, src=0, off=0, imm=0):
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def mov_reg(dst, src):
    return insn(0xBF, dst, src)  # BPF_ALU64 | BPF_MOV | BPF_X


def mov_imm(dst, imm):
    return insn(0xB7, dst, 0, 0, imm)  # BPF_ALU64 | BPF_MOV | BPF_K


def call(helper):
    return insn(0x85, imm=helper)  # BPF_JMP | BPF_CALL


EXIT = insn(0x95)


def htons(v):
    return struct.unpack("<H", struct.pack(">H", v))[0]


def prog_push(tags):
    """tags: list of (tpid, vid), pushed in order (last one ends up outermost)."""
    p = mov_reg(6, 1)
    for tpid, vid in tags:
        p += mov_reg(1, 6) + mov_imm(2, htons(tpid)) + mov_imm(3, vid) + call(HELPER_SKB_VLAN_PUSH)
    return p + mov_imm(0, 0) + EXIT  # TC_ACT_OK


def prog_pop(n):
    p = mov_reg(6, 1)
    for _ in range(n):
        p += mov_reg(1, 6) + call(HELPER_SKB_VLAN_POP)
    return p + mov_imm(0, 0) + EXIT


def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, 128)
    r = libc.syscall(SYS_BPF, cmd, buf, 128)
    if r < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return r


def load(code, name):
    insns = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(65536)
    attr = struct.pack(
        "<IIQQIIQII16sII",
        BPF_PROG_TYPE_SCHED_CLS,
        len(code) // 8,
        ctypes.addressof(insns),
        ctypes.addressof(lic),
        1,
        len(log),
        ctypes.addressof(log),
        0,
        0,
        name.encode()[:15],
        0,
        0,
    )
    try:
        return bpf(BPF_PROG_LOAD, attr)
    except OSError:
        sys.stderr.write(log.value.decode(errors="replace"))
        raise


def pin(fd, path):
    p = ctypes.create_string_buffer(path.encode())
    bpf(BPF_OBJ_PIN, struct.pack("<QII", ctypes.addressof(p), fd, 0))


def main():
    d = sys.argv[1]
    progs = {
        "push120": prog_push([(0x8100, 120)]),
        "qinq300_120": prog_push([(0x8100, 120), (0x88A8, 300)]),
        "pop1": prog_pop(1),
        "pop2": prog_pop(2),
    }
    for name, code in progs.items():
        pin(load(code, name), os.path.join(d, name))


if __name__ == "__main__":
    main()
