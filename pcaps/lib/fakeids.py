"""Synthetic, obviously fake patient identities used by every capture.

Nothing here belongs to a real person. The national identifiers are built to
pass their checksums (so a checksum-validating PHI detector must fire on
them) but are otherwise made up:

- French NIR (numero d'inscription au repertoire, "numero de secu"):
  13 digits + 2-digit key, key = 97 - (number mod 97). Ours encode birth
  year 00 / month 01 (1900-01, matching the fake 1900-01-01 birth dates),
  departement 75, commune 112 and serial 999/998.
- Dutch BSN: 9 digits passing the "11-proof"
  (9*d1 + 8*d2 + ... + 2*d8 - 1*d9 = 0 mod 11). 111222333 is a widely
  used test number.
No US SSN is used anywhere: any well-formed SSN may belong to somebody.
"""


def nir_key(base13: str) -> str:
    return "%02d" % (97 - int(base13) % 97)


def nir(base13: str) -> str:
    assert len(base13) == 13 and base13.isdigit()
    return base13 + nir_key(base13)


def bsn_valid(s: str) -> bool:
    if len(s) != 9 or not s.isdigit():
        return False
    d = [int(c) for c in s]
    total = sum(w * x for w, x in zip(range(9, 1, -1), d[:8])) - d[8]
    return total % 11 == 0


JANE = {
    "name": "TEST^JANE",
    "given": "JANE",
    "family": "TEST",
    "mrn": "MRN-TEST-0001",
    "birth_date": "1900-01-01",
    "sex": "F",
    "nir": nir("2000175112999"),
    "address": "1 RUE DE L'EXEMPLE^^PARIS^^75012^FR",
    "phone": "+33 1 99 00 12 34",  # 01 99 00 xx xx: ARCEP range reserved for fiction
}
JOHN = {
    "name": "DOE^JOHN",
    "given": "JOHN",
    "family": "DOE",
    "mrn": "MRN-TEST-0002",
    "birth_date": "1900-01-02",
    "sex": "M",
    "nir": nir("1000175112998"),
    "bsn": "111222333",
    "address": "2 AVENUE DU TEST^^LYON^^69001^FR",
    "phone": "+33 1 99 00 56 78",
}
assert bsn_valid(JOHN["bsn"])

if __name__ == "__main__":
    for p in (JANE, JOHN):
        print(p["name"], p["mrn"], p["nir"], p.get("bsn", ""))
