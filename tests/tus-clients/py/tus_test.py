"""Drives ChunkVault's tus endpoint with tuspy.

    python3 tus_test.py <base-url> <token> <file> <scenario>

Scenarios: upload (with Upload-Checksum) | resume | badchecksum | terminate.
Prints one JSON line with what happened.
"""
import json
import sys

import requests
from tusclient import client
from tusclient.exceptions import TusCommunicationError

base, token, path, scenario = sys.argv[1:5]
headers = {"Authorization": f"Bearer {token}"}
tus = client.TusClient(f"{base}/files/", headers=headers)
CHUNK = 256 * 1024


def uploader(**kw):
    return tus.uploader(path, chunk_size=CHUNK, metadata={"filename": f"py-{scenario}.bin"}, **kw)


def main():
    if scenario == "upload":
        u = uploader(upload_checksum=True)
        u.upload()
        return {"url": u.url}
    if scenario == "resume":
        u = uploader()
        u.upload_chunk()
        u.upload_chunk()
        first = u.url
        # A new client knows only the URL; it asks the server for the offset and goes on.
        v = uploader(url=first)
        offset = v.get_offset()
        v.upload()
        return {"url": v.url, "resumedFrom": offset}
    if scenario == "badchecksum":
        u = uploader(upload_checksum=True)
        u.upload_chunk()
        r = requests.patch(
            u.url,
            data=b"x" * 10,
            headers={**headers, "Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream",
                     "Upload-Offset": str(u.offset), "Upload-Checksum": "sha1 " + "A" * 27 + "="},
        )
        head = requests.head(u.url, headers={**headers, "Tus-Resumable": "1.0.0"})
        return {"url": u.url, "status": r.status_code, "offsetBefore": u.offset,
                "offsetAfter": int(head.headers["Upload-Offset"])}
    if scenario == "terminate":
        u = uploader()
        u.upload_chunk()
        r = requests.delete(u.url, headers={**headers, "Tus-Resumable": "1.0.0"})
        head = requests.head(u.url, headers={**headers, "Tus-Resumable": "1.0.0"})
        return {"url": u.url, "deleteStatus": r.status_code, "headStatus": head.status_code}
    raise SystemExit(f"unknown scenario {scenario}")


try:
    print(json.dumps({"ok": True, **main()}))
except TusCommunicationError as e:
    print(json.dumps({"ok": False, "error": str(e), "status": e.status_code}))
    sys.exit(1)
