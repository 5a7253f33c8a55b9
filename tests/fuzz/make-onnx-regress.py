#!/usr/bin/env python3
"""Writes the hand-made hostile ONNX files in corpus-regress/onnx/ (raw
protobuf, no onnx package needed). Each one once reached, or would reach, a
path where a careless importer crashes or allocates without bound; the
fuzz-regress-onnx test replays them. Run from any directory."""
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                   'corpus-regress', 'onnx')


def varint(v):
    out = b''
    while True:
        b = v & 0x7f
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, wire_type, payload):
    tag = varint((num << 3) | wire_type)
    if wire_type == 2:
        return tag + varint(len(payload)) + payload
    return tag + payload


def msg(num, payload):
    return field(num, 2, payload)


def s(num, text):
    return field(num, 2, text.encode())


def i(num, v):
    return field(num, 0, varint(v & ((1 << 64) - 1)))


def model(graph):
    # ir_version 8, opset_import { version: 13 }, graph
    return i(1, 8) + msg(8, i(2, 13)) + msg(7, graph)


def value_info(name, elem_type, dims):
    shape = b''.join(msg(1, i(1, d)) for d in dims)
    return s(1, name) + msg(2, msg(1, i(1, elem_type) + msg(2, shape)))


def add_graph(init):
    return (msg(5, init) + msg(11, value_info('x', 1, [4])) +
            msg(12, value_info('y', 1, [4])) +
            msg(1, s(1, 'x') + s(1, 'w') + s(2, 'y') + s(4, 'Add')))


def write(name, data):
    with open(os.path.join(OUT, name), 'wb') as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    # Subgraphs (If bodies) nested far deeper than any real model.
    g = s(2, 'leaf')
    for _ in range(300):
        attr = s(1, 'body') + i(20, 5) + msg(6, g)
        g = msg(1, s(4, 'If') + msg(5, attr))
    write('deep_nesting.onnx', model(g))
    # An initializer claiming 2^80 elements, with no data.
    write('huge_initializer.onnx',
          model(add_graph(i(1, 1 << 40) + i(1, 1 << 40) + i(2, 1) +
                          s(8, 'w'))))
    # raw_data shorter than the shape needs.
    write('short_raw_data.onnx',
          model(add_graph(i(1, 4) + i(2, 1) + s(8, 'w') +
                          field(9, 2, b'\0' * 8))))
    # A node output redefining the graph input; a node reading itself.
    write('redefine_input.onnx',
          model(msg(11, value_info('x', 1, [2])) +
                msg(12, value_info('x', 1, [2])) +
                msg(1, s(1, 'x') + s(2, 'x') + s(4, 'Relu'))))
    write('self_loop.onnx',
          model(msg(11, value_info('x', 1, [2])) +
                msg(12, value_info('y', 1, [2])) +
                msg(1, s(1, 'x') + s(1, 'y') + s(2, 'y') + s(4, 'Add'))))
    # A length running past the end; an 11-byte varint.
    write('truncated_length.onnx',
          i(1, 8) + b'\x3a\xff\xff\xff\x0f' + b'\x0a\x00')
    write('long_varint.onnx', b'\x08' + b'\xff' * 11 + b'\x01')
    # Graph inputs with a negative dimension and with rank 9.
    write('negative_dim.onnx',
          model(msg(11, value_info('x', 1, [-5])) +
                msg(12, value_info('x', 1, [1]))))
    write('rank9_input.onnx',
          model(msg(11, value_info('x', 1, [1] * 9)) +
                msg(12, value_info('y', 1, [1])) +
                msg(1, s(1, 'x') + s(2, 'y') + s(4, 'Relu'))))
    # 20000 empty nodes: 2 bytes each in the file, ~100 unpacked.
    write('empty_nodes.onnx', model(msg(1, b'') * 20000))


if __name__ == '__main__':
    main()
