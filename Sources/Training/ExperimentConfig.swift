import Backbone
import Config
import Core
import Data
import Foundation
import Heads
import PEFT

/// The experiment configuration: YAML files composed mmseg-style (`ConfigComposer`), each
/// section owned by the module it configures — `model.backbone` (`BackboneOptions`),
/// `model.peft` (`CausalTuneOptions`), `model.head` (`HeadOptions`), `data`
/// (`DataOptions`), `train` (`TrainOptions`), `output` (`OutputOptions`). This type only
/// composes them: their schemas into one, their values decoded from the resolved tree.
///
/// `yaml` is the fully resolved config (every key, schema order); `parse(yaml:)` of it
/// gives an equal config. Adding a key: one line in its section's schema plus the property
/// of the same (camel-case) name in its options type.
public struct ExperimentConfig: Equatable, Sendable {
    public struct ModelOptions: Equatable, Sendable {
        public let backbone: BackboneOptions
        public let peft: CausalTuneOptions
        public let head: HeadOptions
    }

    public let model: ModelOptions
    public let data: DataOptions
    public let train: TrainOptions
    public let output: OutputOptions
    /// The resolved value tree (every key present); raw access: `value(at: "model.head.num_classes")`.
    public let resolved: ConfigValue
    /// The key paths the files and `--set` gave (see `isSet`).
    public let given: Set<String>

    /// Every key, its type, default and allowed values.
    public static let schema: ConfigSchema = .map([
        "model": .map([
            "backbone": BackboneOptions.schema,
            "peft": CausalTuneOptions.schema,
            "head": HeadOptions.schema,
        ]),
        "data": DataOptions.schema,
        "train": TrainOptions.schema,
        "output": OutputOptions.schema,
    ])

    init(_ config: ResolvedConfig) throws {
        resolved = config.tree
        given = config.given
        let tree = config.tree
        func section<T: Decodable>(_ path: String) -> T {
            do {
                return try ConfigDecoder.decode(T.self, from: tree.value(at: path) ?? .null, path: path)
            } catch {
                preconditionFailure("the schema and the options type of '\(path)' disagree: \(error)")
            }
        }
        train = section("train")
        var backbone: BackboneOptions = section("model.backbone")
        backbone.seed = UInt64(Swift.max(0, train.seed))
        let peft: CausalTuneOptions = section("model.peft")
        // Rules between keys of the layer (a filter needs a spectrum, …) beyond the schema's ranges.
        try peft.validate()
        model = ModelOptions(backbone: backbone, peft: peft, head: section("model.head"))
        data = section("data")
        output = section("output")
    }

    /// Equal configs have equal resolved trees; which keys were written does not count
    /// (the saved `yaml` writes them all).
    public static func == (a: ExperimentConfig, b: ExperimentConfig) -> Bool { a.resolved == b.resolved }

    /// Whether the files or `--set` gave the key at `path` (or a key below it), rather than
    /// leaving it at its default. A config parsed from a saved resolved `yaml` gives every key.
    /// (`given` holds every parent of a written key too, so a lookup is enough.)
    public func isSet(_ path: String) -> Bool { given.contains(path) }

    // MARK: - Loading

    /// Loads `path`: its `_base_` files first (relative to the including file, recursive),
    /// this file over them, then every `key.path=value` of `overrides` in order.
    /// `output.work_dir` defaults to `runs/<file stem>`.
    public static func load(path: String, overrides: [String] = []) throws -> ExperimentConfig {
        let tree = try ConfigComposer.loadComposed(path: path, schema: schema)
        let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        return try resolve(tree, origin: path, defaultWorkDir: "runs/\(stem)", overrides: overrides,
                           given: ResolvedConfig.keyPaths(of: tree))
    }

    /// Parses config text (e.g. the resolved config saved in a checkpoint). `_base_` is
    /// resolved relative to `baseDirectory` (the current directory when nil).
    public static func parse(yaml text: String, source: String = "<config text>", baseDirectory: String? = nil,
                             overrides: [String] = []) throws -> ExperimentConfig {
        let directory = baseDirectory ?? FileManager.default.currentDirectoryPath
        let tree = try ConfigComposer.compose(text: text, source: source, directory: directory, schema: schema)
        return try resolve(tree, origin: source, defaultWorkDir: "runs/default", overrides: overrides,
                           given: ResolvedConfig.keyPaths(of: tree))
    }

    /// This config with `overrides` (`key.path=value`) applied and checked.
    public func overriding(_ overrides: [String]) throws -> ExperimentConfig {
        try ExperimentConfig.resolve(resolved, origin: "the resolved config", defaultWorkDir: output.workDir,
                                     overrides: overrides, given: given)
    }

    /// The resolved config as YAML: every key, in schema order. Saved with every run and
    /// in checkpoints; `parse(yaml:)` of it gives an equal config.
    public var yaml: String { resolved.yaml }

    /// The resolved value at a dotted key path (`train.lr`, `data.val[0].root`).
    public func value(at path: String) -> ConfigValue? { resolved.value(at: path) }

    static func resolve(_ tree: ConfigValue, origin: String, defaultWorkDir: String, overrides: [String],
                        given: Set<String>) throws -> ExperimentConfig {
        // `output.work_dir: null` means the run's default, which depends on the config's name.
        func withWorkDir(_ tree: ConfigValue) throws -> ConfigValue {
            guard case .map = tree, tree.value(at: "output.work_dir") == nil || tree.value(at: "output.work_dir") == .null else {
                return tree
            }
            return try tree.setting(.string(defaultWorkDir), at: ["output", "work_dir"], fullPath: "output.work_dir")
        }
        return try ExperimentConfig(ConfigComposer.resolve(tree, schema: schema, origin: origin, overrides: overrides,
                                                           given: given, prepare: withWorkDir))
    }
}
