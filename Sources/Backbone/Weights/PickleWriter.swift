import Core
import Foundation
import Numerics
import ZIPFoundation

/// A pickle encoder for the few values a checkpoint needs (protocol 2: dicts, strings,
/// ints, floats, tuples, float32 tensors by persistent storage id) — the writing side of
/// `Unpickler`. Nothing here needs Python; `torch.load(..., weights_only=True)` accepts the
/// result because it only names `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`
/// and `torch.FloatStorage`.
public indirect enum PickleOut {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case tuple([PickleOut])
    /// A plain dict, keys in order.
    case dict([(String, PickleOut)])
    /// `collections.OrderedDict` (what `state_dict()` returns), keys in order.
    case orderedDict([(String, PickleOut)])
    /// A float32 tensor stored in `data/<storage>` of the archive (contiguous, offset 0).
    case tensor(storage: String, shape: [Int])
}

struct PickleEncoder {
    private(set) var bytes: [UInt8] = []

    /// `PROTO 2`, the value, `STOP`.
    static func encode(_ value: PickleOut) -> [UInt8] {
        var e = PickleEncoder()
        e.bytes = [0x80, 0x02]
        e.put(value)
        e.bytes.append(0x2E)                                          // STOP '.'
        return e.bytes
    }

    private mutating func global(_ module: String, _ name: String) {
        bytes.append(0x63)                                            // GLOBAL 'c'
        bytes += Array("\(module)\n\(name)\n".utf8)
    }

    private mutating func put(_ v: PickleOut) {
        switch v {
        case .none: bytes.append(0x4E)                                // NONE
        case .bool(let b): bytes.append(b ? 0x88 : 0x89)              // NEWTRUE / NEWFALSE
        case .int(let i): int(i)
        case .float(let d):
            bytes.append(0x47)                                        // BINFLOAT, big-endian
            let b = d.bitPattern
            for k in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: b >> UInt64(k))) }
        case .string(let s):
            let u = Array(s.utf8)
            bytes.append(0x58)                                        // BINUNICODE
            le(UInt64(u.count), 4)
            bytes += u
        case .tuple(let items):
            if items.isEmpty { bytes.append(0x29); return }           // EMPTY_TUPLE
            bytes.append(0x28)                                        // MARK
            for x in items { put(x) }
            bytes.append(0x74)                                        // TUPLE
        case .dict(let items):
            bytes.append(0x7D)                                        // EMPTY_DICT
            setItems(items)
        case .orderedDict(let items):
            global("collections", "OrderedDict")
            bytes.append(0x29)                                        // EMPTY_TUPLE
            bytes.append(0x52)                                        // REDUCE
            setItems(items)
        case .tensor(let storage, let shape):
            let count = shape.reduce(1, *)
            var strides = [Int](repeating: 1, count: shape.count)
            for d in stride(from: shape.count - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * max(shape[d + 1], 1) }
            global("torch._utils", "_rebuild_tensor_v2")
            bytes.append(0x28)                                        // MARK (arguments)
            bytes.append(0x28)                                        // MARK (persistent id)
            put(.string("storage"))
            global("torch", "FloatStorage")
            put(.string(storage))
            put(.string("cpu"))
            int(count)
            bytes.append(0x74)                                        // TUPLE
            bytes.append(0x51)                                        // BINPERSID
            int(0)                                                    // storage offset
            put(.tuple(shape.map { .int($0) }))
            put(.tuple(strides.map { .int($0) }))
            put(.bool(false))                                         // requires_grad
            put(.orderedDict([]))                                     // backward hooks
            bytes.append(0x74)                                        // TUPLE
            bytes.append(0x52)                                        // REDUCE
        }
    }

    private mutating func setItems(_ items: [(String, PickleOut)]) {
        guard !items.isEmpty else { return }
        bytes.append(0x28)                                            // MARK
        for (k, v) in items { put(.string(k)); put(v) }
        bytes.append(0x75)                                            // SETITEMS
    }

    private mutating func int(_ i: Int) {
        if i >= 0 && i < 256 { bytes.append(0x4B); bytes.append(UInt8(i)) }            // BININT1
        else if i >= 0 && i < 65536 { bytes.append(0x4D); le(UInt64(i), 2) }          // BININT2
        else if i >= Int(Int32.min) && i <= Int(Int32.max) {                           // BININT
            bytes.append(0x4A); le(UInt64(UInt32(bitPattern: Int32(i))), 4)
        } else {                                                                       // LONG1, 8 bytes
            bytes.append(0x8A); bytes.append(8); le(UInt64(bitPattern: Int64(i)), 8)
        }
    }

    private mutating func le(_ v: UInt64, _ n: Int) {
        for k in 0..<n { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(8 * k))) }
    }
}

/// Writes `torch.save`'s zip layout: `archive/data.pkl` (the pickle), `archive/byteorder`
/// (`little`), `archive/version` (`3`) and one raw little-endian float32 file
/// `archive/data/<k>` per tensor, all stored uncompressed. The file appears atomically
/// (temporary name, then rename).
public enum TorchCheckpointWriter {
    /// Writes `{meta…, "state_dict": OrderedDict(name → tensor)}` — mmengine's checkpoint
    /// layout — or, with `meta` nil, the bare `OrderedDict`.
    public static func write(stateDict: [(name: String, value: Tensor, shape: [Int])], meta: [(String, PickleOut)]?,
                             to path: String) throws {
        var items: [(String, PickleOut)] = []
        var blobs: [(String, Data)] = []
        for (i, t) in stateDict.enumerated() {
            precondition(t.shape.reduce(1, *) == t.value.count, "tensor \(t.name): shape \(t.shape) for \(t.value.count) values")
            let key = "\(i)"
            items.append((t.name, .tensor(storage: key, shape: t.shape)))
            blobs.append((key, Data(bytes: t.value.data, count: t.value.count * MemoryLayout<Float>.size)))
        }
        let root: PickleOut = meta.map { .dict([("meta", .dict($0)), ("state_dict", .orderedDict(items))]) } ?? .orderedDict(items)
        let pickle = Data(PickleEncoder.encode(root))
        var entries: [(String, Data)] = [("archive/data.pkl", pickle), ("archive/byteorder", Data("little".utf8))]
        entries += blobs.map { ("archive/data/\($0.0)", $0.1) }
        entries.append(("archive/version", Data("3\n".utf8)))
        try writeZip(entries, to: path)
    }

    static func writeZip(_ entries: [(String, Data)], to path: String) throws {
        let temporary = AtomicFile.temporaryPath(for: path)
        unlink(temporary)
        do {
            let archive: Archive
            do { archive = try Archive(url: URL(fileURLWithPath: temporary), accessMode: .create) } catch {
                throw CausalTuneError("\(path): cannot create the file (check that the folder exists and is writable)")
            }
            // A fixed time stamp: the same parameters give the same bytes.
            let stamp = Date(timeIntervalSince1970: 946_684_800)
            for (name, data) in entries {
                do {
                    try archive.addEntry(with: name, type: .file, uncompressedSize: Int64(data.count), modificationDate: stamp,
                                         compressionMethod: .none) { position, size in
                        data.subdata(in: Int(position)..<(Int(position) + size))
                    }
                } catch {
                    throw CausalTuneError("\(path): writing \(name) failed: \(error)")
                }
            }
            try AtomicFile.syncAndRename(temporary, to: path)
        } catch {
            unlink(temporary)
            throw error
        }
    }
}

/// Writes a `.safetensors` file of float32 tensors: an 8-byte little-endian header length,
/// the JSON header (names in the given order, `dtype` `F32`, `shape`, `data_offsets`, and
/// `__metadata__` strings), padded with spaces to 8 bytes, then the raw data. Atomic.
public enum SafeTensorsWriter {
    public static func write(_ tensors: [(name: String, value: Tensor, shape: [Int])], metadata: [String: String] = [:],
                             to path: String) throws {
        func quote(_ s: String) -> String {
            var o = "\""
            for ch in s.unicodeScalars {
                switch ch {
                case "\"": o += "\\\""
                case "\\": o += "\\\\"
                default:
                    if ch.value < 0x20 { o += String(format: "\\u%04x", ch.value) } else { o.unicodeScalars.append(ch) }
                }
            }
            return o + "\""
        }
        var parts: [String] = []
        if !metadata.isEmpty {
            parts.append("\"__metadata__\":{" + metadata.sorted { $0.key < $1.key }.map { "\(quote($0.key)):\(quote($0.value))" }.joined(separator: ",") + "}")
        }
        var offset = 0
        for t in tensors {
            let n = t.value.count * 4
            parts.append("\(quote(t.name)):{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + n)]}")
            offset += n
        }
        var header = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var data = Data()
        var len = UInt64(header.count).littleEndian
        withUnsafeBytes(of: &len) { data.append(contentsOf: $0) }
        data.append(contentsOf: header)
        for t in tensors { data.append(Data(bytes: t.value.data, count: t.value.count * 4)) }
        try AtomicFile.write(data, to: path)
    }
}
