import Core
import Foundation
import Numerics

/// Reader for `.safetensors`: `u64 n` (little-endian) · `n` bytes of JSON header · raw data.
///
/// The header maps each tensor name to `{"dtype": "F32"|"F16"|"BF16"|…, "shape": [...],
/// "data_offsets": [begin, end]}` (byte offsets into the data that follows the header);
/// the optional `"__metadata__"` holds string pairs. Data is little-endian and contiguous.
/// The file is memory-mapped; every tensor is converted to float32.
public enum SafeTensors {
    ///
    /// Every entry is checked before any tensor is allocated: dtype known, shape within
    /// `expecting`, `end − begin` equal to the element count × element size, and the byte
    /// range inside the file — all with overflow-checked arithmetic.
    public static func read(_ path: String, expecting: WeightExpectations = .any) throws -> WeightFile {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw CausalTuneError("weights file \(path): cannot be read (\(error.localizedDescription))")
        }
        guard data.count >= 8 else { throw CausalTuneError("weights file \(path): truncated safetensors header") }
        var headerLength: UInt64 = 0
        for i in 0..<8 { headerLength |= UInt64(data[data.startIndex + i]) << (8 * UInt64(i)) }
        guard headerLength <= UInt64(data.count - 8) else {
            throw CausalTuneError("weights file \(path): truncated safetensors file (header of \(headerLength) bytes, file of \(data.count))")
        }
        let headerData = data.subdata(in: (data.startIndex + 8)..<(data.startIndex + 8 + Int(headerLength)))
        guard let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw CausalTuneError("weights file \(path): safetensors header is not a JSON object")
        }
        let dataStart = 8 + Int(headerLength)
        var entries: [(name: String, begin: Int, type: StoredType, dtype: String, shape: [Int], end: Int)] = []
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                if let m = value as? [String: Any] { for (k, v) in m { metadata[k] = "\(v)" } }
                continue
            }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2
            else { throw CausalTuneError("weights file \(path): malformed safetensors entry '\(name)'") }
            guard let type = safetensorsType(dtype) else {
                throw CausalTuneError("weights file \(path): tensor '\(name)' has unsupported dtype \(dtype)")
            }
            let count = try expecting.check(name, shape: shape, path: path)
            let (bytes, o1) = count.multipliedReportingOverflow(by: type.byteSize)
            let (end, o2) = dataStart.addingReportingOverflow(offsets[1])
            guard !o1, !o2, offsets[0] >= 0, offsets[1] >= offsets[0], offsets[1] - offsets[0] == bytes,
                  end <= data.count
            else {
                throw CausalTuneError("weights file \(path): tensor '\(name)' \(shape) at bytes \(offsets) does not fit the file of \(data.count) bytes (truncated or corrupt)")
            }
            entries.append((name, offsets[0], type, type.rawValue, shape, offsets[1]))
        }
        entries.sort { $0.begin < $1.begin }
        var tensors: [String: Tensor] = [:]
        var dtypes: [String: String] = [:]
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            for e in entries {
                let t = Tensor(zeros: e.shape)
                e.type.convert(raw.baseAddress! + dataStart + e.begin, count: t.count, into: t.data)
                tensors[e.name] = t
                dtypes[e.name] = e.dtype
            }
        }
        return WeightFile(path: path, format: .safetensors, names: entries.map(\.name), tensors: tensors,
                          dtypes: dtypes, metadata: metadata)
    }

    static func safetensorsType(_ dtype: String) -> StoredType? {
        switch dtype {
        case "F32": return .float32
        case "F16": return .float16
        case "BF16": return .bfloat16
        case "F64": return .float64
        case "I64": return .int64
        case "I32": return .int32
        case "I16": return .int16
        case "I8": return .int8
        case "U8": return .uint8
        case "BOOL": return .bool
        default: return nil
        }
    }
}
