"""Reads and damages grooved's data directory the way a failing disk would:
op log segments (src/oplog.h: [u32 length][u32 CRC-32][16-byte session id]
[u32 opno][op]) and the checkpoint rows of durable.db. Tests only; the server
must be stopped while a file is changed."""
import glob
import os
import sqlite3
import struct
import uuid


def segments(data_dir):
    return sorted(glob.glob(os.path.join(data_dir, "log", "*.log")))


def records(path):
    """[(offset, total_length, session_id, opno)] of the intact records."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    while off + 8 <= len(data):
        plen, _crc = struct.unpack_from("<II", data, off)
        if plen < 20 or off + 8 + plen > len(data):
            break
        sid = str(uuid.UUID(bytes=data[off + 8:off + 24]))
        opno = struct.unpack_from("<I", data, off + 24)[0]
        out.append((off, 8 + plen, sid, opno))
        off += 8 + plen
    return out


def all_records(data_dir):
    return [(path,) + r for path in segments(data_dir) for r in records(path)]


def flip_bit(path, offset, bit=0):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ (1 << bit)]))


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def checkpoint(data_dir, sid):
    """(opno, record text) of sid's checkpoint row, or None."""
    db = sqlite3.connect(os.path.join(data_dir, "durable.db"))
    try:
        row = db.execute("SELECT opno, record FROM sessions WHERE id = ?", (sid,)).fetchone()
    finally:
        db.close()
    return row


def set_checkpoint_text(data_dir, sid, text):
    """Overwrites the stored record text (its CRC, if any, is left as it was)."""
    db = sqlite3.connect(os.path.join(data_dir, "durable.db"))
    try:
        db.execute("UPDATE sessions SET record = ? WHERE id = ?", (text, sid))
        db.commit()
    finally:
        db.close()


def kv_value(data_dir, sid):
    db = sqlite3.connect(os.path.join(data_dir, "kv.db"))
    try:
        row = db.execute("SELECT value FROM kv WHERE id = ?", (sid,)).fetchone()
    finally:
        db.close()
    return row[0] if row else None
