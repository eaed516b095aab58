import Core
import Foundation
import HDF5
import Numerics

/// Backbone weights in our HDF5 files (reference §Files): the datasets under `/backbone/` of a
/// checkpoint written `--with-backbone`, or, when there is no `/backbone` group, every
/// dataset of the file. Names are the official ones (`/backbone/blocks.3.attn.qkv.weight`);
/// nested groups are read with `.` for `/` (`/backbone/blocks/3/attn/qkv/weight` works too).
/// HDF5 converts any float or integer type on disk to float32.
public enum HDF5Weights {
    /// Each dataset's shape is checked against `expecting` (from the dataspace, before the
    /// data is read or memory allocated).
    public static func read(_ path: String, expecting: WeightExpectations = .any) throws -> WeightFile {
        let file: HDF5File
        do {
            file = try HDF5File.open(path)
        } catch {
            throw CausalTuneError("weights file \(path): not a readable HDF5 file (truncated or corrupt)")
        }
        defer { try? file.close() }
        let root = file.isGroup(CheckpointLayout.backbone) ? CheckpointLayout.backbone : "/"
        var names: [String] = []
        var tensors: [String: Tensor] = [:]
        var dtypes: [String: String] = [:]
        var metadata: [String: String] = [:]
        // Root attributes are only shown by `inspect`; a model load (an architecture to check
        // against) skips them: HDF5 1.10's attribute iteration is where the fuzzer found the
        // library crashing on a corrupt file.
        if expecting.consumer.isEmpty {
            for attribute in (try? file.attributeNames(of: "/")) ?? [] {
                if let value = try? file.attribute(attribute, of: "/") { metadata[attribute] = value.description }
            }
        }
        for dataset in try file.datasetPaths(under: root) {
            let relative = root == "/" ? dataset : String(dataset.dropFirst(root.count + 1))
            let name = relative.replacingOccurrences(of: "/", with: ".")
            let info = try file.datasetInfo(dataset)
            switch info.elementType {
            case .float, .signedInteger, .unsignedInteger: break
            default: continue   // strings and other non-numeric datasets are not weights
            }
            _ = try expecting.check(name, shape: info.shape, path: path)
            tensors[name] = try file.readTensor(dataset)
            dtypes[name] = info.elementType.description
            names.append(name)
        }
        return WeightFile(path: path, format: .hdf5, names: names, tensors: tensors, dtypes: dtypes, metadata: metadata)
    }
}
