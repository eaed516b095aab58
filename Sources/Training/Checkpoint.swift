import Backbone
import Core
import Foundation
import HDF5
import Numerics

/// Checkpoints (reference §Files; the names: `CheckpointLayout`): one HDF5 file, written by
/// rank 0 to a temporary name, flushed, synced and renamed, so a crash never leaves a
/// half-written file under the real name. The model signature (arch, embed_dim, depth,
/// peft_method, tokens, lora_rank, head_type, out_indices, num_classes) refuses a foreign
/// checkpoint.
///
/// `step` is the number of optimiser steps taken; a run resumed from it continues with
/// update index `step` (schedule and data order are functions of the step index).
/// `rng_state` is the trainer's root generator; every random draw of a step (the
/// mask2former head's point sampling) is seeded from it, the step and the image's slot in the
/// global batch (`Trainer.pointSeeds`), so the root alone restores the randomness exactly.
public enum Checkpoint {
    public static let format = CheckpointLayout.format
    public static let version = CheckpointLayout.version
    private typealias Attribute = CheckpointLayout.Attribute

    /// What a checkpoint records about the run besides the tensors.
    public struct Metadata {
        public var step: Int
        public var worldSize: Int
        public var config: String
        public var created: String
        public var rngState: [UInt64]
        public var optimizer: String
        /// Optimiser updates taken (AdamW's bias-correction `t`); below `step` when
        /// non-finite steps were skipped.
        public var optimizerSteps: Int
        public var backboneWeights: String
        public var backboneSHA256: String
        /// nil for a checkpoint that carries only the reference §Files root attributes (e.g. one
        /// written from PyTorch with h5py): its parameters are then matched by name and shape.
        public var signature: ModelSignature?
        /// Extra scalar attributes (e.g. `miou` of the evaluation at this step).
        public var extra: [String: Double]

        public init(step: Int, worldSize: Int, config: String, created: String = Checkpoint.now(),
                    rngState: [UInt64], optimizer: String, optimizerSteps: Int? = nil, backboneWeights: String, backboneSHA256: String,
                    signature: ModelSignature?, extra: [String: Double] = [:]) {
            self.step = step; self.worldSize = worldSize; self.config = config; self.created = created
            self.rngState = rngState; self.optimizer = optimizer; self.optimizerSteps = optimizerSteps ?? step
            self.backboneWeights = backboneWeights
            self.backboneSHA256 = backboneSHA256; self.signature = signature; self.extra = extra
        }
    }

    /// ISO-8601 UTC time stamp.
    public static func now() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: Date())
    }

    /// Writes a checkpoint atomically. `optimizer` nil writes zero moments (an
    /// initialisation file); `backbone` non-empty writes `/backbone/<name>` too.
    public static func write(to path: String, metadata: Metadata, parameters: ParameterSet,
                             optimizer: Optimizer?, backbone: [(name: String, value: Tensor)] = []) throws {
        try HDF5File.writeAtomically(to: path) { file in
            try file.setAttribute(Attribute.format, .string(format))
            try file.setAttribute(Attribute.version, .int64(version))
            try file.setAttribute(Attribute.step, .int64(Int64(metadata.step)))
            try file.setAttribute(Attribute.worldSize, .int64(Int64(metadata.worldSize)))
            try file.setAttribute(Attribute.config, .string(metadata.config))
            try file.setAttribute(Attribute.created, .string(metadata.created))
            try file.setAttribute(Attribute.rngState, .uint64s(metadata.rngState))
            try file.setAttribute(Attribute.optimizer, .string(metadata.optimizer))
            try file.setAttribute(Attribute.optimizerSteps, .int64(Int64(metadata.optimizerSteps)))
            try file.setAttribute(Attribute.backboneWeights, .string(metadata.backboneWeights))
            try file.setAttribute(Attribute.backboneSHA256, .string(metadata.backboneSHA256))
            for (k, v) in metadata.signature?.attributes ?? [] { try file.setAttribute(k, v) }
            for (k, v) in metadata.extra.sorted(by: { $0.key < $1.key }) { try file.setAttribute(k, .float64(v)) }
            for e in parameters.entries {
                try file.write(e.value, to: CheckpointLayout.parameterPath(e.name))
                let m = optimizer.map { $0.expAvg.rows(e.offset..<e.offset + e.count).reshaped(e.shape) } ?? Tensor(zeros: e.shape)
                let v = optimizer.map { $0.expAvgSq.rows(e.offset..<e.offset + e.count).reshaped(e.shape) } ?? Tensor(zeros: e.shape)
                try file.write(m, to: CheckpointLayout.firstMomentPath(e.name))
                try file.write(v, to: CheckpointLayout.secondMomentPath(e.name))
            }
            for b in backbone { try file.write(b.value, to: CheckpointLayout.backbonePath(b.name)) }
        }
    }

    /// An opened checkpoint: its metadata, checked on open.
    public final class Reader {
        public let path: String
        public let file: HDF5File
        public let metadata: Metadata

        /// Opens and validates `path`: an HDF5 file with format "causal-tune-checkpoint"
        /// and version 1. Every failure (missing, truncated, foreign) is one clear error.
        /// Only `format` and `version` are required: a checkpoint written elsewhere (PyTorch
        /// + h5py) with just the reference §Files attributes — or fewer — still loads with `--init`;
        /// `requireResumable()` is what `--resume` checks on top.
        public init(path: String) throws {
            self.path = path
            do {
                file = try HDF5File.open(path)
            } catch let e as CausalTuneError {
                throw CausalTuneError("\(e.message) — not a usable checkpoint")
            }
            let fmt = (try? file.stringAttribute(Attribute.format)) ?? ""
            guard fmt == Checkpoint.format else {
                throw CausalTuneError("\(path): not a causal-tune checkpoint (root attribute format is '\(fmt)', expected '\(Checkpoint.format)')")
            }
            let ver = try file.int64Attribute(Attribute.version)
            guard ver == Checkpoint.version else {
                throw CausalTuneError("\(path): checkpoint version \(ver) is not supported (expected \(Checkpoint.version))")
            }
            // An attribute may be absent (a checkpoint written elsewhere), but one that is
            // present must have its type and range: a wrong one is an error, never a default.
            let file = self.file
            func optional<T>(_ name: String, _ read: (String) throws -> T) throws -> T? {
                guard file.hasAttribute(name) else { return nil }
                do { return try read(name) } catch let e as CausalTuneError {
                    throw CausalTuneError("\(e.message) — damaged or foreign checkpoint")
                }
            }
            func invalid(_ name: String, _ why: String) -> CausalTuneError {
                CausalTuneError("\(path): root attribute '\(name)' \(why) — damaged or foreign checkpoint")
            }
            let step = try optional(Attribute.step) { try file.int64Attribute($0) } ?? 0
            guard step >= 0 else { throw invalid(Attribute.step, "is \(step), expected a step count ≥ 0") }
            let worldSize = try optional(Attribute.worldSize) { try file.int64Attribute($0) } ?? 1
            guard worldSize >= 1 && worldSize <= 1 << 20 else { throw invalid(Attribute.worldSize, "is \(worldSize), expected ≥ 1") }
            let rng = try optional(Attribute.rngState) { try file.uint64ArrayAttribute($0) } ?? []
            guard !file.hasAttribute(Attribute.rngState) || rng.count == 4 else {
                throw invalid(Attribute.rngState, "holds \(rng.count) values, expected 4")
            }
            let optimizerSteps = try optional(Attribute.optimizerSteps) { try file.int64Attribute($0) }
            if let o = optimizerSteps, o < 0 || o > step {
                throw invalid(Attribute.optimizerSteps, "is \(o), expected 0…\(step) (the step)")
            }
            let optimizer = try optional(Attribute.optimizer) { try file.stringAttribute($0) } ?? "adamw"
            for name in Attribute.evaluationScalars {
                if let v = try optional(name, { try file.float64Attribute($0) }), !v.isFinite {
                    throw invalid(name, "is \(v), expected a finite number")
                }
            }
            metadata = Metadata(
                step: Int(step),
                worldSize: Int(worldSize),
                config: try optional(Attribute.config) { try file.stringAttribute($0) } ?? "",
                created: try optional(Attribute.created) { try file.stringAttribute($0) } ?? "",
                rngState: rng,
                optimizer: optimizer,
                optimizerSteps: optimizerSteps.map { Int($0) },
                backboneWeights: try optional(Attribute.backboneWeights) { try file.stringAttribute($0) } ?? "",
                backboneSHA256: try optional(Attribute.backboneSHA256) { try file.stringAttribute($0) } ?? "",
                // Partial or absent signature attributes: match by name and shape instead.
                signature: try? ModelSignature(file: file),
                extra: [:])
        }

        /// What `--resume` needs beyond the parameters: the step, the RNG state and the
        /// optimizer moments (each moment's shape is checked when it is read).
        public func requireResumable() throws {
            for a in [Attribute.step, Attribute.rngState] where !file.hasAttribute(a) {
                throw CausalTuneError("\(path): no root attribute '\(a)' — this checkpoint cannot be resumed (use --init to load its parameters only)")
            }
            guard file.isGroup(CheckpointLayout.optimizer) else {
                throw CausalTuneError("\(path): no /optimizer moments — this checkpoint cannot be resumed (use --init to load its parameters only)")
            }
        }

        /// The names stored under `/params`.
        public func parameterNames() throws -> [String] {
            try file.datasetPaths(under: CheckpointLayout.parameters).map { HDF5Path.strip(prefix: CheckpointLayout.parameters, from: $0) }
        }

        /// `/params/<name>`.
        public func parameter(_ name: String) throws -> Tensor {
            try file.readTensor(CheckpointLayout.parameterPath(name))
        }

        /// Refuses a checkpoint written for another model: compares the signature field by
        /// field, naming the first that differs. A checkpoint without the signature
        /// attributes is checked by `loadParameters` (every name present, shapes equal).
        public func requireCompatible(with expected: ModelSignature) throws {
            if let diff = metadata.signature?.firstDifference(from: expected) {
                throw CausalTuneError("\(path): checkpoint was written for a different model: \(diff.field) is \(diff.stored) in the checkpoint but \(diff.current) in this config")
            }
        }

        /// Loads every trainable parameter by name (shapes must match, up to size-1 axes: a
        /// PyTorch 0-d `peft/scale` fits `[1]`), then pushes the values into the modules.
        public func loadParameters(into set: ParameterSet) throws {
            for e in set.entries {
                let p = CheckpointLayout.parameterPath(e.name)
                guard file.isDataset(p) else {
                    throw CausalTuneError("\(path): /\(p) is missing (checkpoint written for another model?)")
                }
                let stored = try file.datasetInfo(p).shape
                if stored != e.shape && stored.filter({ $0 != 1 }) == e.shape.filter({ $0 != 1 }) {
                    let t = try file.readTensor(p)
                    e.value.data.update(from: t.data, count: e.count)
                } else {
                    try file.read(p, into: e.value)
                }
            }
            let extra = Set(try parameterNames()).subtracting(set.names)
            if let name = extra.sorted().first {
                throw CausalTuneError("\(path): /params/\(name) has no counterpart in this model (checkpoint written for another model?)")
            }
            set.scatterValues()
        }

        /// Loads the AdamW moments and the step count.
        public func loadOptimizer(into optimizer: Optimizer) throws {
            for e in optimizer.parameters.entries {
                try file.read(CheckpointLayout.firstMomentPath(e.name),
                              into: optimizer.expAvg.rows(e.offset..<e.offset + e.count).reshaped(e.shape))
                try file.read(CheckpointLayout.secondMomentPath(e.name),
                              into: optimizer.expAvgSq.rows(e.offset..<e.offset + e.count).reshaped(e.shape))
            }
            optimizer.stepCount = metadata.optimizerSteps
        }

        /// A float attribute written through `Metadata.extra` (`miou`, `best_miou`,
        /// `skipped`), or nil.
        public func extra(_ name: String) -> Double? {
            file.hasAttribute(name) ? try? file.float64Attribute(name) : nil
        }
    }
}

/// Object-path helpers.
enum HDF5Path {
    static func strip(prefix: String, from path: String) -> String {
        let parts = path.split(separator: "/").map(String.init)
        let pre = prefix.split(separator: "/").map(String.init)
        if parts.starts(with: pre) { return parts.dropFirst(pre.count).joined(separator: "/") }
        return parts.joined(separator: "/")
    }
}

/// The fields that decide whether a checkpoint's trainable parameters fit a model.
public struct ModelSignature: Equatable {
    public var arch: String
    public var embedDim: Int
    public var depth: Int
    public var peftMethod: String
    public var tokens: Int
    public var loraRank: Int?      // nil: full tokens
    public var headType: String
    public var outIndices: [Int]
    public var numClasses: Int

    public init(arch: String, embedDim: Int, depth: Int, peftMethod: String, tokens: Int, loraRank: Int?,
                headType: String, outIndices: [Int], numClasses: Int) {
        self.arch = arch; self.embedDim = embedDim; self.depth = depth; self.peftMethod = peftMethod
        self.tokens = tokens; self.loraRank = loraRank; self.headType = headType
        self.outIndices = outIndices; self.numClasses = numClasses
    }

    var attributes: [(String, HDF5Attribute)] {
        [("arch", .string(arch)), ("embed_dim", .int64(Int64(embedDim))), ("depth", .int64(Int64(depth))),
         ("peft_method", .string(peftMethod)), ("tokens", .int64(Int64(tokens))),
         ("lora_rank", .int64(Int64(loraRank ?? 0))), ("head_type", .string(headType)),
         ("out_indices", .int64s(outIndices.map { Int64($0) })), ("num_classes", .int64(Int64(numClasses)))]
    }

    init(file: HDF5File) throws {
        arch = try file.stringAttribute("arch")
        embedDim = Int(try file.int64Attribute("embed_dim"))
        depth = Int(try file.int64Attribute("depth"))
        peftMethod = try file.stringAttribute("peft_method")
        tokens = Int(try file.int64Attribute("tokens"))
        let r = Int(try file.int64Attribute("lora_rank"))
        loraRank = r > 0 ? r : nil
        headType = try file.stringAttribute("head_type")
        outIndices = try file.int64ArrayAttribute("out_indices").map { Int($0) }
        numClasses = Int(try file.int64Attribute("num_classes"))
    }

    /// The first field that differs (as text), or nil when the models match.
    public func firstDifference(from other: ModelSignature) -> (field: String, stored: String, current: String)? {
        let pairs: [(String, String, String)] = [
            ("model.backbone.arch", arch, other.arch),
            ("embed dim C", "\(embedDim)", "\(other.embedDim)"),
            ("depth L", "\(depth)", "\(other.depth)"),
            ("model.peft.method", peftMethod, other.peftMethod),
            ("model.peft.tokens", "\(tokens)", "\(other.tokens)"),
            ("model.peft.lora_rank", loraRank.map { "\($0)" } ?? "null", other.loraRank.map { "\($0)" } ?? "null"),
            ("model.head.type", headType, other.headType),
            ("model.head.out_indices", "\(outIndices)", "\(other.outIndices)"),
            ("model.head.num_classes", "\(numClasses)", "\(other.numClasses)"),
        ]
        for (f, a, b) in pairs where a != b { return (f, a, b) }
        return nil
    }
}
