"""WhatsApp-flavoured Noise XX responder built on PyPI `noiseprotocol`, for cross-checking wahost's initiator.

Usage: noise_responder.py STATIC_PRIVATE_HEX CERT_CHAIN_HEX
Speaks on stdin/stdout: the client first sends the 4-byte header 57 41 06 03, then frames (3-byte big-endian
length + body). Exchange:
  client -> HandshakeMessage{clientHello}      server -> HandshakeMessage{serverHello} (payload = CERT_CHAIN)
  client -> HandshakeMessage{clientFinish}
  client -> transport frame P                  server -> transport frame "pong:" + P + "|" + client static + "|" + payload
The three protobuf messages are hand-encoded (field numbers from docs/protocol-notes.md#noise-handshake).

One WhatsApp deviation from textbook Noise is bridged here: WhatsApp does not MixHash the empty payload of the
first handshake message (textbook Noise hashes it as EncryptAndHash("")).
"""
import sys

from noise.connection import Keypair, NoiseConnection

HEADER = b"WA\x06\x03"


def read_exact(n):
    data = sys.stdin.buffer.read(n)
    if len(data) != n:
        raise SystemExit("unexpected end of input")
    return data


def read_frame():
    return read_exact(int.from_bytes(read_exact(3), "big"))


def write_frame(body):
    sys.stdout.buffer.write(len(body).to_bytes(3, "big") + body)
    sys.stdout.buffer.flush()


def varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, value):
    return varint(number << 3 | 2) + varint(len(value)) + value


def parse(data):
    """Length-delimited fields of a protobuf message as {number: bytes} (other wire types are skipped)."""
    fields, i = {}, 0
    while i < len(data):
        key, shift = 0, 0
        while True:
            b = data[i]; i += 1; key |= (b & 0x7F) << shift; shift += 7
            if not b & 0x80:
                break
        number, wire = key >> 3, key & 7
        if wire == 2:
            length, shift = 0, 0
            while True:
                b = data[i]; i += 1; length |= (b & 0x7F) << shift; shift += 7
                if not b & 0x80:
                    break
            fields[number] = data[i:i + length]; i += length
        elif wire == 0:
            while data[i] & 0x80:
                i += 1
            i += 1
        else:
            raise SystemExit("unsupported wire type")
    return fields


def main():
    static_private, cert_chain = bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2])
    noise = NoiseConnection.from_name(b"Noise_XX_25519_AESGCM_SHA256")
    noise.set_as_responder()
    noise.set_prologue(HEADER)
    noise.set_keypair_from_private_bytes(Keypair.STATIC, static_private)
    noise.start_handshake()

    if read_exact(4) != HEADER:
        raise SystemExit("bad connection header")
    client_hello = parse(parse(read_frame())[2])
    handshake = noise.noise_protocol.handshake_state  # kept: noiseprotocol drops it once the handshake ends
    symmetric = handshake.symmetric_state
    original = symmetric.decrypt_and_hash
    symmetric.decrypt_and_hash = lambda data: b"" if data == b"" else original(data)
    noise.read_message(client_hello[1])  # "e"; the empty payload is not hashed (WhatsApp)
    symmetric.decrypt_and_hash = original

    message = noise.write_message(cert_chain)  # e(32) || enc(s)(48) || enc(payload)
    server_hello = field(1, message[:32]) + field(2, message[32:80]) + field(3, message[80:])
    write_frame(field(3, server_hello))

    client_finish = parse(parse(read_frame())[4])
    payload = noise.read_message(client_finish[1] + client_finish[2])
    if not noise.handshake_finished:
        raise SystemExit("handshake did not finish")
    remote_static = handshake.rs.public_bytes

    ping = noise.decrypt(read_frame())
    write_frame(noise.encrypt(b"pong:" + ping + b"|" + remote_static + b"|" + bytes(payload)))


if __name__ == "__main__":
    main()
