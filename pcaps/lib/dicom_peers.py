#!/usr/bin/env python3
"""pynetdicom peers for the DICOM captures, where dcmtk cannot play the role.

Usage: dicom_peers.py ROLE ARGS...
  find_scp PORT                 C-FIND SCP "PACS" answering from 3 fake patients
  userid_scp PORT               Verification SCP "PACS" checking user identity
  strict_scp PORT               Verification SCP "PACS" accepting only called AE
                                PACS and calling AEs MODALITY1 / RADWS01
  store_implicit HOST PORT FILE C-STORE proposing implicit VR LE only
  userid_scu HOST PORT          user identity (username+passcode) then C-ECHO
  abort_scu HOST PORT           associate, C-ECHO, then A-ABORT instead of release
"""

import fnmatch
import os
import sys
import time

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.pdu_primitives import UserIdentityNegotiation
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)
from pydicom.uid import ImplicitVRLittleEndian

sys.path.insert(0, os.path.dirname(__file__))
import fakeids  # noqa: E402

TEST_ALEX = {"name": "TEST^ALEX", "mrn": "MRN-TEST-0003", "birth_date": "1900-01-03", "sex": "O"}
STUDIES = [
    (fakeids.JANE, "20000101", "ACC-TEST-0001", "CT", "TEST STUDY - SYNTHETIC", "1"),
    (fakeids.JANE, "20000215", "ACC-TEST-0011", "MR", "TEST FOLLOW-UP - SYNTHETIC", "2"),
    (fakeids.JOHN, "20000101", "ACC-TEST-0002", "MR", "TEST STUDY - SYNTHETIC", "3"),
    (TEST_ALEX, "20000301", "ACC-TEST-0003", "CR", "TEST CHEST - SYNTHETIC", "4"),
]


def serve(ae, port):
    ae.start_server(("0.0.0.0", port), block=True)


def on_find(event):
    q = event.identifier
    level = q.get("QueryRetrieveLevel", "STUDY")
    name = str(q.get("PatientName", "") or "*")
    pid = str(q.get("PatientID", "") or "")
    seen = set()
    for p, date, acc, mod, desc, n in STUDIES:
        if not fnmatch.fnmatchcase(p["name"], name) or (pid and p["mrn"] != pid):
            continue
        if level == "PATIENT" and p["mrn"] in seen:
            continue
        seen.add(p["mrn"])
        r = Dataset()
        r.QueryRetrieveLevel = level
        r.SpecificCharacterSet = "ISO_IR 100"
        r.PatientName = p["name"]
        r.PatientID = p["mrn"]
        if "PatientBirthDate" in q:
            r.PatientBirthDate = p["birth_date"].replace("-", "")
        if "PatientSex" in q:
            r.PatientSex = p["sex"]
        if level == "STUDY":
            r.StudyDate = date
            r.AccessionNumber = acc
            r.ModalitiesInStudy = mod
            r.StudyDescription = desc
            r.StudyInstanceUID = "2.25.%d" % (10**30 + int(n))
        r.RetrieveAETitle = "PACS"
        yield 0xFF00, r
    yield 0x0000, None


def find_scp(port):
    ae = AE(ae_title="PACS")
    ae.add_supported_context(PatientRootQueryRetrieveInformationModelFind)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_supported_context(Verification)
    ae.start_server(("0.0.0.0", int(port)), block=True, evt_handlers=[(evt.EVT_C_FIND, on_find)])


# A syntactically valid but unsigned ("alg":"none") JWT; header/payload fixed.
JWT = (
    b"eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
    b"eyJzdWIiOiJyYWRpb2xvZ3kiLCJpc3MiOiJjaHUtZXhlbXBsZSIsImV4cCI6NDEwMjQ0NDgwMH0."
)


def on_user_id(event):
    t, u, p = event.user_id_type, event.primary_field, event.secondary_field
    if t == 2 and u == b"radiology" and p == b"Radiology123!":
        return True, None  # pynetdicom sends a server response only for types 3-5
    if t == 5 and u == JWT:
        return True, b"jwt-accepted:radiology"
    return False, None


def userid_scp(port):
    ae = AE(ae_title="PACS")
    ae.add_supported_context(Verification)
    ae.start_server(("0.0.0.0", int(port)), block=True, evt_handlers=[(evt.EVT_USER_ID, on_user_id)])


def strict_scp(port):
    ae = AE(ae_title="PACS")
    ae.require_called_aet = True
    ae.require_calling_aet = ["MODALITY1", "RADWS01"]
    ae.add_supported_context(Verification)
    ae.start_server(("0.0.0.0", int(port)), block=True)


def store_implicit(host, port, path):
    ds = dcmread(path)
    ae = AE(ae_title="MR_SCANNER2")
    ae.add_requested_context(ds.SOPClassUID, [ImplicitVRLittleEndian])
    assoc = ae.associate(host, int(port), ae_title="PACS")
    if not assoc.is_established:
        raise SystemExit("association failed")
    st = assoc.send_c_store(ds)
    print("C-STORE status 0x%04X" % st.Status, file=sys.stderr)
    assoc.release()


def userid_scu(host, port):
    """Three associations: username+passcode (accepted), JWT (accepted, with
    server response), default-looking admin/admin (rejected)."""
    for typ, user, pw in ((2, b"radiology", b"Radiology123!"), (5, JWT, b""), (2, b"admin", b"admin")):
        ae = AE(ae_title="RADWS01")
        ae.add_requested_context(Verification)
        uid = UserIdentityNegotiation()
        uid.user_identity_type = typ
        uid.positive_response_requested = True
        uid.primary_field = user
        if typ == 2:
            uid.secondary_field = pw
        assoc = ae.associate(host, int(port), ae_title="PACS", ext_neg=[uid])
        if not assoc.is_established:
            print("user identity type %d rejected" % typ, file=sys.stderr)
            time.sleep(0.3)
            continue
        st = assoc.send_c_echo()
        print("type %d: C-ECHO status 0x%04X" % (typ, st.Status), file=sys.stderr)
        assoc.release()
        time.sleep(0.3)


def abort_scu(host, port):
    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context(Verification)
    assoc = ae.associate(host, int(port), ae_title="PACS")
    if not assoc.is_established:
        raise SystemExit("association failed")
    assoc.send_c_echo()
    time.sleep(0.2)
    assoc.abort()


if __name__ == "__main__":
    role = sys.argv[1]
    globals()[role](*sys.argv[2:])
