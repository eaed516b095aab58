import Core
import Foundation
import Numerics
import ZIPFoundation

/// Reader for `torch.save` files (the zip format, PyTorch ≥ 1.6): the archive holds
/// `<name>/data.pkl` (the pickled object), `<name>/byteorder` and one raw little-endian
/// file `<name>/data/<key>` per storage. A tensor is `(storage, offset, shape, strides)`
/// in elements; non-contiguous views (a transposed weight, one of several tensors sharing
/// a storage) are gathered into contiguous float32.
///
/// The state dict is found in the unpickled object: the top-level dict itself when it holds
/// tensors, else the first of `teacher`, `model`, `state_dict`, `module`,
/// `model_state_dict`, `student` that does (DINOv2 training checkpoints nest it under
/// `teacher`). Only tensors with string keys are kept.
public enum PyTorchCheckpoint {
    public static func read(_ path: String, expecting: WeightExpectations = .any) throws -> WeightFile {
        let fileLength = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
        try ZipDirectoryCheck.check(path)
        let archive: Archive
        do {
            archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read)
        } catch {
            throw CausalTuneError("weights file \(path): not a readable zip archive (truncated or corrupt PyTorch checkpoint)")
        }
        guard let pickleEntry = archive.first(where: { $0.path.hasSuffix("data.pkl") }) else {
            throw CausalTuneError("weights file \(path): zip archive without data.pkl (not a PyTorch checkpoint)")
        }
        let prefix = String(pickleEntry.path.dropLast("data.pkl".count))
        if let order = archive[prefix + "byteorder"] {
            let bytes = try extract(archive, order, path, fileLength: fileLength)
            if String(decoding: bytes, as: UTF8.self).hasPrefix("big") {
                throw CausalTuneError("weights file \(path): big-endian PyTorch checkpoints are not supported")
            }
        }
        let root: PickleValue
        do {
            var unpickler = Unpickler(try extract(archive, pickleEntry, path, fileLength: fileLength))
            root = try unpickler.load()
        } catch let e as PickleError {
            throw CausalTuneError("weights file \(path): cannot read the pickled state dict (\(e.message))")
        }
        // TorchScript archives (they hold constants.pkl) pickle a module tree, not a state dict.
        let torchScript = archive[prefix + "constants.pkl"] != nil
        guard let stateDict = torchScript ? flattenedModules(root) : (findStateDict(root) ?? flattenedModules(root)) else {
            throw CausalTuneError("weights file \(path): no state dict of tensors found in the checkpoint")
        }

        // Storages are read on first use and dropped after their last tensor, so peak memory
        // is the float32 tensors plus one storage (several views may share one storage).
        var remainingUses: [String: Int] = [:]
        for value in stateDict.values { if case .tensor(let ref) = value { remainingUses[ref.storage.key, default: 0] += 1 } }
        var storages: [String: [UInt8]] = [:]
        var names: [String] = []
        var tensors: [String: Tensor] = [:]
        var dtypes: [String: String] = [:]
        for (key, value) in zip(stateDict.keys, stateDict.values) {
            guard let name = key.string, case .tensor(let ref) = value else { continue }
            // Shape first: nothing is read or allocated for a tensor the model cannot use.
            _ = try expecting.check(name, shape: ref.shape, path: path)
            if storages[ref.storage.key] == nil {
                guard let entry = archive[prefix + "data/" + ref.storage.key] else {
                    throw CausalTuneError("weights file \(path): storage data/\(ref.storage.key) of tensor '\(name)' is missing (truncated?)")
                }
                storages[ref.storage.key] = try extract(archive, entry, path, fileLength: fileLength)
            }
            let raw = storages[ref.storage.key]!
            let (storageBytes, overflow) = ref.storage.count.multipliedReportingOverflow(by: ref.storage.type.byteSize)
            guard !overflow, raw.count >= storageBytes else {
                throw CausalTuneError("weights file \(path): storage of tensor '\(name)' is truncated (\(raw.count) bytes for \(ref.storage.count) \(ref.storage.type.rawValue) elements)")
            }
            tensors[name] = try gather(ref, raw, name: name, path: path)
            remainingUses[ref.storage.key, default: 1] -= 1
            if remainingUses[ref.storage.key] == 0 { storages[ref.storage.key] = nil }
            dtypes[name] = ref.storage.type.rawValue
            names.append(name)
        }
        return WeightFile(path: path, format: .pytorch, names: names, tensors: tensors, dtypes: dtypes)
    }

    static func findStateDict(_ root: PickleValue) -> PickleDict? {
        guard case .dict(let d) = root else { return nil }
        if d.values.contains(where: { if case .tensor = $0 { return true }; return false }) { return d }
        for key in ["teacher", "model", "state_dict", "module", "model_state_dict", "student"] {
            if let inner = d[key], let found = findStateDict(inner) { return found }
        }
        return nil
    }

    /// A TorchScript archive (`torch.jit.save`, e.g. OpenAI's CLIP `.pt`) pickles nested
    /// module objects: their tensors under dotted attribute paths (`visual.conv1.weight`),
    /// nil when there is none.
    static func flattenedModules(_ root: PickleValue) -> PickleDict? {
        let out = PickleDict()
        func walk(_ value: PickleValue, _ prefix: String) {
            guard case .dict(let d) = value else { return }
            for (key, v) in zip(d.keys, d.values) {
                guard let name = key.string else { continue }
                switch v {
                case .tensor: out.set(.string(prefix + name), v)
                case .dict: walk(v, prefix + name + ".")
                default: break
                }
            }
        }
        walk(root, "")   // the unpickler bounds the nesting depth
        return out.keys.isEmpty ? nil : out
    }

    /// Deflate cannot expand data by more than 1032:1; an entry claiming more is corrupt.
    static let maxCompressionRatio: UInt64 = 1032

    /// The bytes of one archive entry. The sizes in the zip headers are checked against the
    /// file's length before anything is reserved, and extraction stops at the declared size.
    private static func extract(_ archive: Archive, _ entry: Entry, _ path: String, fileLength: Int) throws -> [UInt8] {
        let declared = entry.uncompressedSize
        let length = UInt64(max(fileLength, 0))
        let bound = entry.type == .file && entry.compressedSize < declared
            ? min(length.multipliedReportingOverflow(by: maxCompressionRatio).partialValue, UInt64(Int.max))
            : length
        guard declared <= bound, entry.compressedSize <= length else {
            throw CausalTuneError("weights file \(path): entry \(entry.path) claims \(declared) bytes, more than a file of \(fileLength) bytes can hold (corrupt archive)")
        }
        let limit = Int(declared)
        var out: [UInt8] = []
        out.reserveCapacity(min(limit, fileLength))
        do {
            _ = try archive.extract(entry, bufferSize: 1 << 22, skipCRC32: true) { chunk in
                guard chunk.count <= limit - out.count else {
                    throw CausalTuneError("weights file \(path): entry \(entry.path) holds more than its declared \(limit) bytes (corrupt archive)")
                }
                out.append(contentsOf: chunk)
            }
        } catch let e as CausalTuneError {
            throw e
        } catch {
            throw CausalTuneError("weights file \(path): entry \(entry.path) cannot be read (truncated or corrupt archive)")
        }
        return out
    }

    /// Copies the (possibly strided) tensor out of its storage bytes as float32.
    ///
    /// Checked before allocating, with overflow-checked arithmetic: offset, sizes and strides
    /// ≥ 0, the last element `offset + Σ (n − 1)·stride` inside the storage, and no more
    /// elements than the storage holds (a state dict has no broadcast views, so a larger
    /// count can only come from a crafted file).
    private static func gather(_ ref: PickleTensor, _ raw: [UInt8], name: String, path: String) throws -> Tensor {
        let shape = ref.shape
        let outside = CausalTuneError("weights file \(path): tensor '\(name)' \(shape) (offset \(ref.offset), strides \(ref.strides)) reaches past its storage of \(ref.storage.count) elements")
        guard ref.offset >= 0, ref.strides.allSatisfy({ $0 >= 0 }), shape.count == ref.strides.count,
              let count = Tensor.checkedElementCount(shape) else { throw outside }
        if count == 0 { return Tensor(zeros: shape) }
        var last = ref.offset
        for (n, s) in zip(shape, ref.strides) {
            let (step, o1) = (n - 1).multipliedReportingOverflow(by: s)
            let (sum, o2) = last.addingReportingOverflow(step)
            guard !o1, !o2 else { throw outside }
            last = sum
        }
        guard last < ref.storage.count, count <= ref.storage.count,
              ref.storage.count <= raw.count / ref.storage.type.byteSize else { throw outside }
        let t = Tensor(zeros: shape)
        let type = ref.storage.type
        let size = type.byteSize
        raw.withUnsafeBytes { bytes in
            let base = bytes.baseAddress!
            // Contiguous row-major strides?
            var expected = 1
            var contiguous = true
            for d in stride(from: shape.count - 1, through: 0, by: -1) {
                if shape[d] != 1 && ref.strides[d] != expected { contiguous = false }
                expected *= shape[d]
            }
            if contiguous {
                type.convert(base + ref.offset * size, count: t.count, into: t.data)
                return
            }
            // Gather along the innermost dimension, odometer over the outer ones.
            let rank = shape.count
            let inner = shape[rank - 1], innerStride = ref.strides[rank - 1]
            var index = [Int](repeating: 0, count: rank)
            var out = 0
            while out < t.count {
                var start = ref.offset
                for d in 0..<(rank - 1) { start += index[d] * ref.strides[d] }
                for j in 0..<inner {
                    type.convert(base + (start + j * innerStride) * size, count: 1, into: t.data + out + j)
                }
                out += inner
                var d = rank - 2
                while d >= 0 {
                    index[d] += 1
                    if index[d] < shape[d] { break }
                    index[d] = 0
                    d -= 1
                }
            }
        }
        return t
    }
}
