/**
 * A minimal ONNX model writer: just enough protobuf (ModelProto, GraphProto, NodeProto,
 * AttributeProto, ValueInfoProto) to describe the small fixed-shape float32 graphs our
 * native kernels run. Field numbers follow onnx/onnx.proto; no dependency on a protobuf
 * library, so nothing is added to the package for it.
 */

/** An ONNX attribute value: integer, float, string or list of integers. */
export type OnnxAttribute =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'ints'; value: readonly number[] };

export interface OnnxNode {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attributes?: Readonly<Record<string, OnnxAttribute>>;
  domain?: string;
}

/** ONNX Runtime's domain of its NCHWc (channel-blocked) Conv, ReorderInput and ReorderOutput. */
export const NCHWC_DOMAIN = 'com.microsoft.nchwc';

export interface OnnxValueInfo {
  name: string;
  shape: readonly number[];
  /** Element type (default float32). */
  dtype?: OnnxElementType;
}

export type OnnxElementType = 'float32' | 'int32' | 'int64' | 'bool';

/**
 * A constant tensor of any rank stored as raw little-endian bytes (float32, int32 and int64
 * as their typed arrays' bytes, bool one byte each); for the step graphs' baked constants.
 */
export interface OnnxTensorInitializer {
  name: string;
  dims: readonly number[];
  dtype: OnnxElementType;
  raw: Uint8Array;
}

/** A constant 1-D tensor stored in the graph (e.g. the shape input of Reshape); int64 unless float. */
export interface OnnxInt64Initializer {
  name: string;
  values: readonly number[];
  float?: boolean;
}

export interface OnnxGraph {
  nodes: readonly OnnxNode[];
  inputs: readonly OnnxValueInfo[];
  outputs: readonly OnnxValueInfo[];
  initializers?: readonly OnnxInt64Initializer[];
  tensorInitializers?: readonly OnnxTensorInitializer[];
}

const ONNX_FLOAT = 1;
const ONNX_INT32 = 6;
const ONNX_INT64 = 7;
const ONNX_BOOL = 9;
const ELEMENT_TYPES: Record<OnnxElementType, number> = {
  float32: ONNX_FLOAT,
  int32: ONNX_INT32,
  int64: ONNX_INT64,
  bool: ONNX_BOOL,
};
const IR_VERSION = 8;
const OPSET = 17;

/** Serialises `graph` into the bytes of an ONNX ModelProto (float32 or int32 inputs and outputs). */
export function encodeOnnxModel(graph: OnnxGraph): Uint8Array {
  const w = new ProtoWriter();
  w.varintField(1, IR_VERSION);
  w.stringField(2, 'adahessian');
  w.messageField(7, encodeGraph(graph));
  const opset = new ProtoWriter();
  opset.stringField(1, '');
  opset.varintField(2, OPSET);
  w.messageField(8, opset.bytes());
  // Operators of other domains (ONNX Runtime's com.microsoft.nchwc) are at their version 1.
  for (const domain of new Set(graph.nodes.flatMap((n) => (n.domain ? [n.domain] : [])))) {
    const other = new ProtoWriter();
    other.stringField(1, domain);
    other.varintField(2, 1);
    w.messageField(8, other.bytes());
  }
  return w.bytes();
}

function encodeGraph(graph: OnnxGraph): Uint8Array {
  const w = new ProtoWriter();
  graph.nodes.forEach((node, i) => w.messageField(1, encodeNode(node, `n${i}`)));
  w.stringField(2, 'kernel');
  for (const init of graph.initializers ?? []) w.messageField(5, encodeInt64Tensor(init));
  for (const init of graph.tensorInitializers ?? []) w.messageField(5, encodeRawTensor(init));
  for (const input of graph.inputs) w.messageField(11, encodeValueInfo(input));
  for (const output of graph.outputs) w.messageField(12, encodeValueInfo(output));
  return w.bytes();
}

function encodeNode(node: OnnxNode, name: string): Uint8Array {
  const w = new ProtoWriter();
  for (const input of node.inputs) w.stringField(1, input);
  for (const output of node.outputs) w.stringField(2, output);
  w.stringField(3, name);
  w.stringField(4, node.opType);
  for (const [attrName, attr] of Object.entries(node.attributes ?? {})) {
    w.messageField(5, encodeAttribute(attrName, attr));
  }
  if (node.domain != null) w.stringField(7, node.domain);
  return w.bytes();
}

// AttributeProto.AttributeType values.
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_INTS = 7;

function encodeAttribute(name: string, attr: OnnxAttribute): Uint8Array {
  const w = new ProtoWriter();
  w.stringField(1, name);
  switch (attr.kind) {
    case 'float':
      w.float32Field(2, attr.value);
      w.varintField(20, ATTR_FLOAT);
      break;
    case 'int':
      w.varintField(3, attr.value);
      w.varintField(20, ATTR_INT);
      break;
    case 'string':
      w.stringField(4, attr.value);
      w.varintField(20, ATTR_STRING);
      break;
    case 'ints':
      for (const v of attr.value) w.varintField(8, v);
      w.varintField(20, ATTR_INTS);
      break;
  }
  return w.bytes();
}

function encodeValueInfo(info: OnnxValueInfo): Uint8Array {
  const elemType = ELEMENT_TYPES[info.dtype ?? 'float32'];
  const shape = new ProtoWriter();
  for (const d of info.shape) {
    const dim = new ProtoWriter();
    dim.varintField(1, d);
    shape.messageField(1, dim.bytes());
  }
  const tensorType = new ProtoWriter();
  tensorType.varintField(1, elemType);
  tensorType.messageField(2, shape.bytes());
  const type = new ProtoWriter();
  type.messageField(1, tensorType.bytes());
  const w = new ProtoWriter();
  w.stringField(1, info.name);
  w.messageField(2, type.bytes());
  return w.bytes();
}

function encodeInt64Tensor(init: OnnxInt64Initializer): Uint8Array {
  const w = new ProtoWriter();
  w.varintField(1, init.values.length); // dims: a 1-D tensor
  w.varintField(2, init.float ? ONNX_FLOAT : ONNX_INT64);
  if (init.float) {
    w.messageField(4, new Uint8Array(Float32Array.from(init.values).buffer)); // packed float_data
  } else {
    for (const v of init.values) w.varintField(7, v);
  }
  w.stringField(8, init.name);
  return w.bytes();
}

function encodeRawTensor(init: OnnxTensorInitializer): Uint8Array {
  const w = new ProtoWriter();
  for (const d of init.dims) w.varintField(1, d);
  w.varintField(2, ELEMENT_TYPES[init.dtype]);
  w.stringField(8, init.name);
  w.messageField(9, init.raw); // raw_data
  return w.bytes();
}

/** Protobuf wire format: varints (wire type 0), fixed32 (5), length-delimited (2). */
class ProtoWriter {
  private readonly parts: number[] = [];

  varintField(field: number, value: number): void {
    this.tag(field, 0);
    this.varint(value);
  }

  float32Field(field: number, value: number): void {
    this.tag(field, 5);
    const b = new Uint8Array(new Float32Array([value]).buffer);
    for (const x of b) this.parts.push(x);
  }

  stringField(field: number, value: string): void {
    this.messageField(field, new TextEncoder().encode(value));
  }

  messageField(field: number, payload: Uint8Array): void {
    this.tag(field, 2);
    this.varint(payload.length);
    for (const x of payload) this.parts.push(x);
  }

  bytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }

  private tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  /** Non-negative values as plain varints; negative int64 as ten-byte two's complement. */
  private varint(value: number): void {
    if (!Number.isInteger(value)) throw new Error(`ONNX writer: ${value} is not an integer.`);
    let v = BigInt.asUintN(64, BigInt(value));
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v !== 0n) byte |= 0x80;
      this.parts.push(byte);
    } while (v !== 0n);
  }
}
