#!/usr/bin/env python3
"""Writes the fuzzing harness's seed corpus from docs/protocol.md's JSON
examples (fuzz-server.c describes the record format).

  make-corpus.py docs/protocol.md OUTDIR

Each example message becomes a seed in which four clients say hello, then
client 0 sends it; the client requests also go into one seed together, with
the clients taking turns, a clock step and a close in between."""
import json, os, struct, sys

def record(client, payload, binary=False, op=0):
    head = (client & 3) | (4 if binary else 0) | (op << 4)
    return struct.pack('<BH', head, len(payload)) + payload

def messages(md):
    """Every JSON object of the ```json blocks, one or several lines each."""
    out, block, pending = [], False, ''
    for line in open(md, encoding='utf-8'):
        if line.startswith('```'):
            block, pending = line.strip() == '```json', ''
            continue
        if not block:
            continue
        pending += line
        try:
            obj = json.loads(pending)
        except ValueError:
            continue
        pending = ''
        if isinstance(obj, dict):
            out.append(obj)
    return out

def hellos():
    return b''.join(record(i, json.dumps({'type': 'hello', 'id': 1, 'version': 1,
        'clientId': 'c%d' % i}).encode()) for i in range(4))

def main():
    md, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    msgs = messages(md)
    requests = [m for m in msgs if m.get('type') not in ('reply', 'event')]
    for n, m in enumerate(msgs):
        with open(os.path.join(outdir, 'example-%03d' % n), 'wb') as f:
            f.write(hellos() + record(0, json.dumps(m).encode()))
    seq = hellos()
    for n, m in enumerate(requests):
        seq += record(n % 4, json.dumps(m).encode())
        if n % 7 == 6:
            seq += record(0, bytes([8]), op=2)
    seq += record(1, b'', op=3) + record(0, bytes([40]), op=2)
    with open(os.path.join(outdir, 'all-requests'), 'wb') as f:
        f.write(seq)
    # a binary message, and a masked text frame through the framing path
    with open(os.path.join(outdir, 'frames'), 'wb') as f:
        payload = b'{"type":"hello","id":1,"version":1,"clientId":"raw"}'
        frame = bytes([0x81, 0x80 | len(payload), 1, 2, 3, 4]) + bytes(
            b ^ [1, 2, 3, 4][i % 4] for i, b in enumerate(payload))
        f.write(hellos() + record(0, b'\x00\x00\x00\x01abc', binary=True) + record(2, frame, op=1)
            + record(3, bytes([0x81, 0x80, 0, 0, 0, 0]), op=1))
    print('%d seeds in %s' % (len(msgs) + 2, outdir))

main()
