import Core
import Foundation
import HDF5
import Numerics

/// `causal-tune inspect FILE`: a short summary of a weights file (PyTorch zip, safetensors,
/// HDF5), a feature dump or a checkpoint — format, architecture guess, parameter count,
/// dtypes and grid — as lines of text.
public enum Inspection {
    public static func describe(_ path: String) throws -> [String] {
        let format = try WeightFile.detectFormat(path)
        if format == .hdf5 {
            let kind = try hdf5Kind(path)
            if kind == FeatureDumpFormat.format { return try describeDump(path) }
            if kind == CheckpointLayout.format { return try describeCheckpoint(path) }
        }
        return try describeWeights(WeightFile.read(path))
    }

    static func hdf5Kind(_ path: String) throws -> String? {
        let file = try HDF5File.open(path)
        defer { try? file.close() }
        // The dump and the checkpoint name their kind in the same root attribute.
        return file.hasAttribute(CheckpointLayout.Attribute.format) ? try? file.stringAttribute(CheckpointLayout.Attribute.format) : nil
    }

    static func dtypeSummary(_ dtypes: [String: String], _ tensors: [String: Tensor]) -> String {
        var counts: [String: Int] = [:]
        for (name, dtype) in dtypes { counts[dtype, default: 0] += tensors[name]?.count ?? 0 }
        return counts.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value) values)" }.joined(separator: ", ")
    }

    static func describeWeights(_ file: WeightFile) throws -> [String] {
        var lines = ["file:        \(file.path)", "format:      \(file.format.rawValue)"]
        lines.append("tensors:     \(file.names.count), \(file.parameterCount) values")
        lines.append("dtypes:      \(dtypeSummary(file.dtypes, file.tensors))")
        if let weights = try? BackboneWeights.canonical(file), let arch = try? weights.inferArchitecture() {
            lines.append("naming:      \(weights.naming)")
            let ffn: String
            switch arch.feedForward {
            case .mlp(let h, let activation): ffn = "MLP \(h), \(activation == .gelu ? "GELU" : "QuickGELU")"
            case .swiglu(let h, let subNorm): ffn = "SwiGLU, hidden \(h)\(subNorm ? ", sub-LayerNorm" : "")"
            }
            lines.append("family:      \(arch.family.rawValue)")
            lines.append("arch:        \(arch.name) (C \(arch.channels), \(arch.depth) blocks, \(arch.heads) heads, \(ffn), \(arch.registers) registers)")
            if let p = weights.patchSize, let g = weights.positionGrid {
                lines.append("patch:       \(p)")
                lines.append("grid:        \(g)x\(g) (image \(g * p)x\(g * p))")
            }
            let unused = ["mask_token", "norm.weight", "norm.bias"].compactMap { weights.tensors[$0]?.count }.reduce(0, +)
            lines.append("parameters:  \(weights.tensors.values.reduce(0) { $0 + $1.count } - unused) used by the backbone")
            do {
                try weights.validate(for: arch)
            } catch let error as CausalTuneError {
                lines.append("warning:     \(error.message)")
            }
        } else {
            lines.append("arch:        not a DINOv2, EVA02 or CLIP backbone")
        }
        return lines
    }

    static func describeDump(_ path: String) throws -> [String] {
        let file = try HDF5File.open(path)
        defer { try? file.close() }
        typealias A = FeatureDumpFormat.Attribute
        var lines = ["file:        \(path)", "format:      \(FeatureDumpFormat.format) (HDF5)"]
        if let v = try? file.int64Attribute(A.version) { lines.append("version:     \(v)") }
        if let images = try? file.stringArrayAttribute(A.images) { lines.append("images:      \(images.count)") }
        if let grid = try? file.int64ArrayAttribute(A.grid) {
            lines.append("grid:        \(grid.map(String.init).joined(separator: "x"))")
        }
        if let config = try? file.stringAttribute(A.config),
           let arch = config.split(separator: "\n").first(where: { $0.contains("arch:") }) {
            lines.append("arch:        \(arch.split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "")")
        }
        lines += try datasetLines(file)
        return lines
    }

    static func describeCheckpoint(_ path: String) throws -> [String] {
        let file = try HDF5File.open(path)
        defer { try? file.close() }
        typealias A = CheckpointLayout.Attribute
        var lines = ["file:        \(path)", "format:      \(CheckpointLayout.format) (HDF5)"]
        for name in [A.version, A.step, A.worldSize] {
            if let v = try? file.int64Attribute(name) {
                lines.append((name + ":").padding(toLength: 13, withPad: " ", startingAt: 0) + "\(v)")
            }
        }
        if let created = try? file.stringAttribute(A.created) { lines.append("created:     \(created)") }
        var params = 0
        for group in [CheckpointLayout.parameters, CheckpointLayout.backbone] where file.isGroup(group) {
            var count = 0
            for d in try file.datasetPaths(under: group) { count += try file.datasetInfo(d).count }
            lines.append("\(group):".padding(toLength: 13, withPad: " ", startingAt: 0) + "\(count) values")
            params += count
        }
        if file.isGroup(CheckpointLayout.backbone), let weights = try? BackboneWeights.canonical(HDF5Weights.read(path)),
           let arch = try? weights.inferArchitecture() {
            lines.append("arch:        \(arch.name)")
        }
        lines += try datasetLines(file)
        return lines
    }

    /// Every dataset with type and shape; a checkpoint's `/backbone/*` only as a count.
    static func datasetLines(_ file: HDF5File) throws -> [String] {
        var lines = ["datasets:"]
        var backbone = 0
        for d in try file.datasetPaths(under: "/") {
            if d.hasPrefix(CheckpointLayout.backbone + "/") && file.hasAttribute(CheckpointLayout.Attribute.step) {
                backbone += 1
                continue
            }
            let info = try file.datasetInfo(d)
            lines.append("  /\(d)  \(info.elementType) \(info.shape)")
        }
        if backbone > 0 { lines.append("  /backbone/...  \(backbone) datasets") }
        return lines
    }
}
