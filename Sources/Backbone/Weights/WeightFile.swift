import Core
import Foundation
import Numerics

/// A weights file read into float32 tensors, whatever its on-disk format.
///
/// Formats are recognised from the first bytes, never from the extension:
/// * `PK\u{3}\u{4}` — a PyTorch `torch.save` zip archive holding a pickled state dict
///   (`PyTorchCheckpoint`);
/// * `\x89HDF\r\n\u{1a}\n` — HDF5 (`HDF5Weights`): datasets under `/backbone/<name>`, else at
///   the root;
/// * an 8-byte little-endian length followed by `{` — safetensors (`SafeTensors`).
///
/// float16, bfloat16, float64 and integer tensors become float32; `dtypes` keeps what the
/// file held (`"float32"`, `"float16"`, `"bfloat16"`, …) for `inspect`.
public struct WeightFile {
    public enum Format: String, Sendable {
        case pytorch = "pytorch-zip"
        case safetensors
        case hdf5
    }

    public let path: String
    public let format: Format
    /// Tensor names in file order.
    public internal(set) var names: [String]
    public internal(set) var tensors: [String: Tensor]
    public internal(set) var dtypes: [String: String]
    /// Free-form metadata (safetensors `__metadata__`, HDF5 root attributes, pickle extras).
    public internal(set) var metadata: [String: String]

    public init(path: String, format: Format, names: [String], tensors: [String: Tensor],
                dtypes: [String: String], metadata: [String: String] = [:]) {
        self.path = path
        self.format = format
        self.names = names
        self.tensors = tensors
        self.dtypes = dtypes
        self.metadata = metadata
    }

    /// Reads `path`, detecting the format from its content. Every tensor's shape is checked
    /// against `expecting` before its memory is allocated.
    public static func read(_ path: String, expecting: WeightExpectations = .any) throws -> WeightFile {
        let format = try detectFormat(path)
        switch format {
        case .pytorch: return try PyTorchCheckpoint.read(path, expecting: expecting)
        case .safetensors: return try SafeTensors.read(path, expecting: expecting)
        case .hdf5: return try HDF5Weights.read(path, expecting: expecting)
        }
    }

    /// The format of `path` from its first bytes.
    public static func detectFormat(_ path: String) throws -> Format {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CausalTuneError("weights file \(path): cannot be opened (missing or unreadable)")
        }
        defer { try? handle.close() }
        let head = [UInt8]((try? handle.read(upToCount: 16)) ?? Data())
        if head.count >= 4 && head[0] == 0x50 && head[1] == 0x4B && head[2] == 0x03 && head[3] == 0x04 {
            return .pytorch
        }
        if head.count >= 8 && head[0..<8].elementsEqual([0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]) {
            return .hdf5
        }
        if head.count >= 9 && head[8] == UInt8(ascii: "{") {
            var n: UInt64 = 0
            for i in 0..<8 { n |= UInt64(head[i]) << (8 * UInt64(i)) }
            if n > 1 && n < 100_000_000 { return .safetensors }
        }
        throw CausalTuneError("weights file \(path): not a PyTorch checkpoint, safetensors or HDF5 file")
    }

    /// Total number of elements over all tensors.
    public var parameterCount: Int { tensors.values.reduce(0) { $0 + $1.count } }
}

/// What a weights reader checks about each tensor's shape *before* allocating it, so a
/// crafted or foreign file is one clear error instead of a huge allocation.
///
/// * every dimension ≥ 0 and the element count computed without overflow;
/// * at most `maxElements` elements (default 2^28 = 1 GiB of float32, far above the largest
///   DINOv2 tensor, ViT-g's 12.6 M-element `w12`; `BackboneLoader` passes the bound of the
///   architecture being built);
/// * for a name listed in `shapes`, exactly that shape.
public struct WeightExpectations: Sendable {
    public var shapes: [String: [Int]]
    public var maxElements: Int
    /// Who wants the tensors (named in the error), e.g. "dinov2_vitl14".
    public var consumer: String

    public init(shapes: [String: [Int]] = [:], maxElements: Int = WeightExpectations.defaultMaxElements,
                consumer: String = "") {
        self.shapes = shapes
        self.maxElements = maxElements
        self.consumer = consumer
    }

    public static let defaultMaxElements = 1 << 28
    /// No expectations beyond the default size bound (`inspect`).
    public static let any = WeightExpectations()

    /// The element count of tensor `name` of shape `shape` in `path`, or one clear error.
    public func check(_ name: String, shape: [Int], path: String) throws -> Int {
        if let expected = shapes[name], expected != shape {
            throw CausalTuneError("weights file \(path): tensor '\(name)' has shape \(shape), \(consumer.isEmpty ? "the model" : consumer) expects \(expected)")
        }
        guard let count = Tensor.checkedElementCount(shape, limit: maxElements) else {
            throw CausalTuneError("weights file \(path): tensor '\(name)' has shape \(shape), more than the \(maxElements) elements \(consumer.isEmpty ? "a weights tensor may have" : consumer + " can use") (corrupt or foreign file?)")
        }
        return count
    }
}

/// Element types found in weight files, converted to float32 on read.
enum StoredType: String {
    case float32, float16, bfloat16, float64, int64, int32, int16, int8, uint8, bool

    var byteSize: Int {
        switch self {
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .float64, .int64: return 8
        case .int8, .uint8, .bool: return 1
        }
    }

    /// Converts `count` elements at `source` (little-endian, element strides given in
    /// elements) into contiguous float32 at `destination`.
    func convert(_ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>) {
        switch self {
        case .float32:
            UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: count * 4)
        case .float16:
            for i in 0..<count { destination[i] = halfToFloat(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .bfloat16:
            for i in 0..<count {
                let b = source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                destination[i] = Float(bitPattern: UInt32(b) << 16)
            }
        case .float64:
            for i in 0..<count { destination[i] = Float(source.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
        case .int64:
            for i in 0..<count { destination[i] = Float(source.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)) }
        case .int32:
            for i in 0..<count { destination[i] = Float(source.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)) }
        case .int16:
            for i in 0..<count { destination[i] = Float(source.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)) }
        case .int8:
            for i in 0..<count { destination[i] = Float(source.load(fromByteOffset: i, as: Int8.self)) }
        case .uint8, .bool:
            for i in 0..<count { destination[i] = Float(source.load(fromByteOffset: i, as: UInt8.self)) }
        }
    }
}

/// IEEE half → float, exact (subnormals, infinities and NaN included).
@inline(__always) func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = Int((h >> 10) & 0x1F)
    let mantissa = UInt32(h & 0x3FF)
    if exponent == 0 {
        // Zero or subnormal: mantissa · 2^-24.
        let magnitude = Float(mantissa) * Float(bitPattern: 0x3380_0000)
        return Float(bitPattern: sign | magnitude.bitPattern)
    }
    if exponent == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
    return Float(bitPattern: sign | (UInt32(exponent + 112) << 23) | (mantissa << 13))
}
