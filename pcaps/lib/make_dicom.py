#!/usr/bin/env python3
"""Write the synthetic DICOM files sent by the DICOM captures.

Usage: make_dicom.py OUTDIR
  ct_jane.dcm   CT, 64x64 16-bit, patient TEST^JANE (explicit VR little endian file)
  mr_john.dcm   MR, 64x64 16-bit, patient DOE^JOHN
  ct_large.dcm  CT, 1024x1024 16-bit noise (2 MiB of pixel data), patient TEST^JANE
All identities are fake (see fakeids.py); UIDs are derived deterministically
(2.25.<hash>) so every run produces the same bytes.
"""

import hashlib
import os
import random
import sys

from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage

sys.path.insert(0, os.path.dirname(__file__))
import fakeids  # noqa: E402


def uid(tag):
    # 2.25.<128-bit integer> (PS3.5 B.2), derived from a fixed string
    return "2.25." + str(int.from_bytes(hashlib.sha256(("wardwatch-pcaps/" + tag).encode()).digest()[:16], "big"))


def make(path, p, sop_class, modality, rows, cols, tag, series_desc, seed):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uid(tag + "-sop")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = uid("impl")
    meta.ImplementationVersionName = "WARDWATCH_GEN"
    ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyDate = "20000101"
    ds.SeriesDate = "20000101"
    ds.StudyTime = "083000"
    ds.AccessionNumber = "ACC-TEST-" + tag[-4:].upper()
    ds.Modality = modality
    ds.Manufacturer = "EXAMPLE MEDICAL"
    ds.InstitutionName = "CHU EXEMPLE"
    ds.InstitutionAddress = "1 PLACE DE L'HOPITAL, 75012 PARIS, FR"
    ds.ReferringPhysicianName = "TEST^REFERRING^^DR"
    ds.StationName = "CT01-W3" if modality == "CT" else "MR01-W3"
    ds.StudyDescription = "TEST STUDY - SYNTHETIC"
    ds.SeriesDescription = series_desc
    ds.OperatorsName = "TEST^OPERATOR"
    # Patient module: all fake
    ds.PatientName = p["name"]
    ds.PatientID = p["mrn"]
    ds.IssuerOfPatientID = "CHU-EXEMPLE"
    ds.PatientBirthDate = p["birth_date"].replace("-", "")
    ds.PatientSex = p["sex"]
    ds.OtherPatientIDs = p["nir"]
    ds.PatientAddress = p["address"].replace("^", " ").replace("  ", " ")
    ds.PatientTelephoneNumbers = p["phone"].replace(" ", "")  # SH: 16 chars max
    ds.PatientAge = "099Y"
    ds.PatientWeight = "70"
    ds.StudyInstanceUID = uid(tag + "-study")
    ds.SeriesInstanceUID = uid(tag + "-series")
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    if modality == "CT":
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
    rnd = random.Random(seed)
    # random 12-bit noise: incompressible, so the capture size is honest
    ds.PixelData = rnd.randbytes(rows * cols * 2) if rows * cols > 64 * 64 else bytes(
        (x * 7 + y * 3) & 0xFF for y in range(rows) for x in range(cols * 2)
    )
    if rows * cols > 64 * 64:
        b = bytearray(ds.PixelData)
        b[1::2] = bytes(x & 0x0F for x in b[1::2])  # keep values within 12 bits
        ds.PixelData = bytes(b)
    ds.save_as(path, enforce_file_format=True)


def main():
    out = sys.argv[1]
    make(os.path.join(out, "ct_jane.dcm"), fakeids.JANE, CTImageStorage, "CT", 64, 64, "ct-jane-0001", "AXIAL 5MM", 1)
    make(os.path.join(out, "mr_john.dcm"), fakeids.JOHN, MRImageStorage, "MR", 64, 64, "mr-john-0002", "T1 SAG", 2)
    make(os.path.join(out, "ct_large.dcm"), fakeids.JANE, CTImageStorage, "CT", 1024, 1024, "ct-large-0003",
         "AXIAL 0.5MM HIRES", 3)


if __name__ == "__main__":
    main()
