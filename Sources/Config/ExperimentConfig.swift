/// The experiment configuration (reference §Configuration): YAML files composed mmseg-style.
///
///     resolved = defaults ◁ base_1 ◁ … ◁ base_k ◁ file ◁ --set a.b=v …
///
/// (`x ◁ y`: `y` merged over `x`; mappings merge key by key, lists and scalars are
/// replaced). `_base_: [files]` is resolved relative to the including file, recursively,
/// in list order. Every file and every `--set` is checked against `ExperimentConfig.schema`
/// on its own, so an unknown key or a bad value is one error naming the key path and the
/// file (or `--set`) it came from. `yaml` is the fully resolved config (every key, schema
/// order); `ExperimentConfig.parse(yaml:)` of it gives an equal config.
///
/// Adding a key: one line in `schema` plus the typed property that reads it.
import Foundation
import Numerics

public struct ExperimentConfig: Equatable, Sendable {
    public let model: ModelOptions
    public let data: DataOptions
    public let train: TrainOptions
    public let output: OutputOptions
    /// The resolved value tree (every key present); raw access for keys without a typed
    /// property: `value(at: "model.head.num_classes")`.
    public let resolved: ConfigValue

    // MARK: - Enumerations (raw values are the YAML spellings)

    public enum PEFTMethod: String, CaseIterable, Sendable { case causalTune = "causal_tune", rein, none }
    public enum Transform: String, CaseIterable, Sendable { case dct, fft, haar, identity }
    public enum FilterMode: String, CaseIterable, Sendable { case bandpass, lowcut, highcut, none }
    public enum FilterShape: String, CaseIterable, Sendable { case gaussian, ideal }
    public enum HeadType: String, CaseIterable, Sendable { case linear, mask2former }
    public enum DatasetName: String, CaseIterable, Sendable {
        case gta5, cityscapes, bdd100k, mapillary, acdc, synthetic, folder
    }
    public enum Augment: String, CaseIterable, Sendable { case full, none }
    /// The per-channel statistics images are normalised with: ImageNet's (every backbone,
    /// as Rein) or CLIP's own.
    public enum Normalization: String, CaseIterable, Sendable { case imagenet, clip }
    /// How the position grid is resized when the image size differs from the checkpoint's.
    public enum PositionInterpolation: String, CaseIterable, Sendable { case bicubic, bilinear }
    public enum Optimizer: String, CaseIterable, Sendable { case adamw, sgd }
    public enum Schedule: String, CaseIterable, Sendable { case poly }
    /// ACDC conditions (`condition:` of an `acdc` dataset).
    public static let acdcConditions = ["fog", "night", "rain", "snow"]
    /// Synthetic benchmark domains (`domain:` of a `synthetic` dataset).
    public static let syntheticDomains = ["source", "fog", "night", "rain", "snow"]

    // MARK: - Limits

    /// The largest `image_size` / `crop_size` (pixels per side).
    public static let maxImageSize = 8192
    /// The most Causal-Tune tokens per layer (`model.peft.tokens`): the paper uses 100; 4096
    /// is already 4096 × C values per layer.
    public static let maxTokens = 4096
    /// The largest `model.peft.lora_rank`; it must also not exceed the embed dim C, which
    /// the network checks when it knows the architecture.
    public static let maxLoRARank = 4096
    /// The most classes: predictions and label maps are 8-bit with 255 = ignore, so class
    /// indices are 0…254.
    public static let maxClasses = 255

    // MARK: - Schema (reference §Configuration)

    static let datasetItem: KeyValuePairs<String, ConfigSchema> = [
        "dataset": .required(.choice(DatasetName.cityscapes)),
        "root": .string(""),
        "split": .string("val"),
        "name": .string(nil),        // null: the dataset name (plus condition/domain)
        "condition": .string(nil),   // acdc only: fog | night | rain | snow
        "domain": .string(nil),      // synthetic only: source | fog | night | rain | snow
        "scale": .string(nil),       // val only: test-time resize WxH or none; null: the dataset's own
    ]

    /// Every key, its type, default and allowed values.
    public static let schema: ConfigSchema = .map([
        "model": .map([
            "backbone": .map([
                "arch": .string("dinov2_vitl14"),
                "weights": .required(.string(nil)),       // a file, or `random`
                "image_size": .int(512, min: 1, max: ExperimentConfig.maxImageSize),
                "patch_size": .int(nil, min: 1, max: 64),      // null: the architecture's own (14; clip_vitb16: 16)
                "recompute": .bool(false),
                "normalize": .choice(Normalization.imagenet),
                "position_interpolation": .choice(PositionInterpolation.bicubic),
            ]),
            "peft": .map([
                "method": .choice(PEFTMethod.causalTune),
                "tokens": .int(100, min: 2, max: ExperimentConfig.maxTokens),
                "lora_rank": .int(nil, min: 1, max: ExperimentConfig.maxLoRARank),   // also ≤ the embed dim C
                "scale_init": .float(0.001, min: -1000, max: 1000),
                "transform": .choice(Transform.dct),
                "discard_noncausal": .bool(false),
                "filter": .map([
                    "mode": .choice(FilterMode.bandpass),
                    "shape": .choice(FilterShape.gaussian),
                    "low": .float(0.2, min: 0, max: 1),
                    "high": .float(0.7, min: 0, max: 1),
                ]),
            ]),
            "head": .map([
                "type": .choice(HeadType.linear),
                "out_indices": .ints(nil, min: 0, max: 255),
                "num_classes": .int(19, min: 1, max: ExperimentConfig.maxClasses),
            ]),
        ]),
        "data": .map([
            "train": .map([
                "dataset": .choice(DatasetName.gta5),
                "root": .string("data/gta5"),
                "split": .string("train"),
                "name": .string(nil),
                "condition": .string(nil),
                "domain": .string(nil),
            ]),
            "val": .mapList(item: datasetItem, default: [.map(ConfigMap([
                ("dataset", .string("cityscapes")), ("root", .string("data/cityscapes")), ("split", .string("val")),
                ("name", .string("citys")), ("condition", .null), ("domain", .null), ("scale", .null),
            ]))]),
            "crop_size": .int(512, min: 1, max: ExperimentConfig.maxImageSize),
            "augment": .choice(Augment.full),
        ]),
        "train": .map([
            "seed": .int(0, min: 0),            // any non-negative 64-bit integer
            "iters": .int(40000, min: 1, max: 1_000_000_000),
            "batch_size": .int(4, min: 1, max: 4096),
            "optimizer": .choice(Optimizer.adamw),
            "lr": .float(0.0001, min: 0, exclusiveMin: true, max: 10),
            "weight_decay": .float(0.05, min: 0, max: 10),
            "betas": .floats([0.9, 0.999], count: 2, min: 0, max: 1, exclusiveMax: true),
            "eps": .float(1.0e-8, min: 0, exclusiveMin: true, max: 1),
            "schedule": .choice(Schedule.poly),
            "poly_power": .float(0.9, min: 0, max: 100),
            "grad_clip": .float(nil, min: 0, exclusiveMin: true, max: 1e12),
            "log_every": .int(50, min: 1, max: 1_000_000_000),
            "eval_every": .int(10000, min: 0, max: 1_000_000_000),
            "checkpoint_every": .int(4000, min: 0, max: 1_000_000_000),
            "keep": .int(3, min: 0, max: 1_000_000),
            "skip_nonfinite": .bool(false),
        ]),
        "output": .map([
            "work_dir": .string(nil),   // null: runs/<config file stem>
            "dump_features": .map([
                "every": .int(0, min: 0, max: 1_000_000_000),
                "images": .strings([]),
                "layers": .ints([], min: 0, max: 255),
            ]),
        ]),
    ])

    // MARK: - Typed sections

    public struct ModelOptions: Equatable, Sendable {
        public let backbone: BackboneOptions
        public let peft: PEFTOptions
        public let head: HeadOptions
        init(_ r: ConfigReader) {
            backbone = BackboneOptions(r.child("backbone"))
            peft = PEFTOptions(r.child("peft"))
            head = HeadOptions(r.child("head"))
        }
    }

    public struct BackboneOptions: Equatable, Sendable {
        public let arch: String
        /// A weights file, or `random` (seeded random initialisation).
        public let weights: String
        public let imageSize: Int
        /// `patch_size`, or (when null) the architecture's native patch size.
        public let patchSize: Int
        public let recompute: Bool
        public let normalize: Normalization
        public let positionInterpolation: PositionInterpolation
        /// Whether `weights` is `random`.
        public var randomWeights: Bool { weights == "random" }
        /// The statistics `normalize` names.
        public var normalization: ImageNormalization { normalize == .clip ? .clip : .imagenet }
        init(_ r: ConfigReader) {
            arch = r.string("arch")
            weights = r.string("weights")
            imageSize = r.int("image_size")
            patchSize = r.optionalInt("patch_size") ?? BackboneOptions.nativePatchSize(arch)
            recompute = r.bool("recompute")
            normalize = r.choice("normalize")
            positionInterpolation = r.choice("position_interpolation")
        }

        /// The patch size of an architecture's released weights: 16 for `clip_vitb16`, else 14.
        public static func nativePatchSize(_ arch: String) -> Int { arch.hasSuffix("16") ? 16 : 14 }
    }

    public struct PEFTOptions: Equatable, Sendable {
        public let method: PEFTMethod
        public let tokens: Int
        public let loraRank: Int?
        public let scaleInit: Double
        public let transform: Transform
        public let discardNoncausal: Bool
        public let filter: FilterOptions
        init(_ r: ConfigReader) {
            method = r.choice("method")
            tokens = r.int("tokens")
            loraRank = r.optionalInt("lora_rank")
            scaleInit = r.double("scale_init")
            transform = r.choice("transform")
            discardNoncausal = r.bool("discard_noncausal")
            filter = FilterOptions(r.child("filter"))
        }
    }

    public struct FilterOptions: Equatable, Sendable {
        public let mode: FilterMode
        public let shape: FilterShape
        public let low: Double
        public let high: Double
        init(_ r: ConfigReader) {
            mode = r.choice("mode")
            shape = r.choice("shape")
            low = r.double("low")
            high = r.double("high")
        }
    }

    public struct HeadOptions: Equatable, Sendable {
        public let type: HeadType
        /// nil: the quarter points (reference §Heads).
        public let outIndices: [Int]?
        public let numClasses: Int
        init(_ r: ConfigReader) {
            type = r.choice("type")
            outIndices = r.optionalInts("out_indices")
            numClasses = r.int("num_classes")
        }
    }

    public struct DataOptions: Equatable, Sendable {
        public let train: DatasetOptions
        public let val: [DatasetOptions]
        public let cropSize: Int
        public let augment: Augment
        init(_ r: ConfigReader) {
            train = DatasetOptions(r.child("train"))
            val = r.list("val").map(DatasetOptions.init)
            cropSize = r.int("crop_size")
            augment = r.choice("augment")
        }
    }

    public struct DatasetOptions: Equatable, Sendable {
        public let dataset: DatasetName
        public let root: String
        public let split: String
        /// The name given in the config (nil when not given); see `displayName`.
        public let name: String?
        public let condition: String?
        public let domain: String?
        /// Test-time resize of a val entry (`scale: 2048x1024` or `none`); nil: the dataset's
        /// own evaluation scale. Always nil for `data.train`.
        public let scale: TestScale?
        /// The name used in tables and metrics: `name`, else the dataset name with its
        /// condition or domain (`acdc_night`, `synthetic_fog`).
        public var displayName: String {
            if let name { return name }
            if let suffix = condition ?? domain { return "\(dataset.rawValue)_\(suffix)" }
            return dataset.rawValue
        }
        init(_ r: ConfigReader) {
            dataset = r.choice("dataset")
            root = r.string("root")
            split = r.string("split")
            name = r.optionalString("name")
            condition = r.optionalString("condition")
            domain = r.optionalString("domain")
            scale = r.has("scale") ? r.optionalString("scale").flatMap { try? TestScale.parse($0, what: "scale") } : nil
        }
    }

    public struct TrainOptions: Equatable, Sendable {
        public let seed: Int
        public let iters: Int
        public let batchSize: Int
        public let optimizer: Optimizer
        public let lr: Double
        public let weightDecay: Double
        public let betas: [Double]
        public let eps: Double
        public let schedule: Schedule
        public let polyPower: Double
        public let gradClip: Double?
        public let logEvery: Int
        public let evalEvery: Int
        public let checkpointEvery: Int
        public let keep: Int
        public let skipNonfinite: Bool
        init(_ r: ConfigReader) {
            seed = r.int("seed")
            iters = r.int("iters")
            batchSize = r.int("batch_size")
            optimizer = r.choice("optimizer")
            lr = r.double("lr")
            weightDecay = r.double("weight_decay")
            betas = r.doubles("betas")
            eps = r.double("eps")
            schedule = r.choice("schedule")
            polyPower = r.double("poly_power")
            gradClip = r.optionalDouble("grad_clip")
            logEvery = r.int("log_every")
            evalEvery = r.int("eval_every")
            checkpointEvery = r.int("checkpoint_every")
            keep = r.int("keep")
            skipNonfinite = r.bool("skip_nonfinite")
        }
    }

    public struct OutputOptions: Equatable, Sendable {
        public let workDir: String
        public let dumpFeatures: FeatureDumpOptions
        init(_ r: ConfigReader) {
            workDir = r.string("work_dir")
            dumpFeatures = FeatureDumpOptions(r.child("dump_features"))
        }
    }

    public struct FeatureDumpOptions: Equatable, Sendable {
        public let every: Int
        public let images: [String]
        public let layers: [Int]
        init(_ r: ConfigReader) {
            every = r.int("every")
            images = r.strings("images")
            layers = r.ints("layers")
        }
    }

    init(resolved: ConfigValue) {
        self.resolved = resolved
        let r = ConfigReader(resolved)
        model = ModelOptions(r.child("model"))
        data = DataOptions(r.child("data"))
        train = TrainOptions(r.child("train"))
        output = OutputOptions(r.child("output"))
    }
}

/// Reads typed values from a resolved (schema-checked) tree. A type mismatch here means
/// the schema and the typed structs disagree: a programming error.
struct ConfigReader {
    let map: ConfigMap

    init(_ value: ConfigValue) {
        guard case .map(let m) = value else { preconditionFailure("config section is not a mapping: \(value)") }
        map = m
    }

    func has(_ key: String) -> Bool { map[key] != nil }

    private func get(_ key: String) -> ConfigValue {
        guard let v = map[key] else { preconditionFailure("config key '\(key)' missing after resolution") }
        return v
    }

    func child(_ key: String) -> ConfigReader { ConfigReader(get(key)) }

    func list(_ key: String) -> [ConfigReader] {
        guard case .list(let items) = get(key) else { preconditionFailure("config key '\(key)' is not a list") }
        return items.map(ConfigReader.init)
    }

    func int(_ key: String) -> Int {
        guard case .int(let i) = get(key) else { preconditionFailure("config key '\(key)' is not an integer") }
        return i
    }

    func optionalInt(_ key: String) -> Int? { get(key) == .null ? nil : int(key) }

    func double(_ key: String) -> Double {
        switch get(key) {
        case .float(let d): return d
        case .int(let i): return Double(i)
        default: preconditionFailure("config key '\(key)' is not a number")
        }
    }

    func optionalDouble(_ key: String) -> Double? { get(key) == .null ? nil : double(key) }

    func bool(_ key: String) -> Bool {
        guard case .bool(let b) = get(key) else { preconditionFailure("config key '\(key)' is not a bool") }
        return b
    }

    func string(_ key: String) -> String {
        guard case .string(let s) = get(key) else { preconditionFailure("config key '\(key)' is not a string") }
        return s
    }

    func optionalString(_ key: String) -> String? { get(key) == .null ? nil : string(key) }

    func choice<E: RawRepresentable>(_ key: String) -> E where E.RawValue == String {
        guard let e = E(rawValue: string(key)) else { preconditionFailure("config key '\(key)' is not a valid choice") }
        return e
    }

    func ints(_ key: String) -> [Int] {
        guard case .list(let items) = get(key) else { preconditionFailure("config key '\(key)' is not a list") }
        return items.map { v -> Int in
            guard case .int(let i) = v else { preconditionFailure("config key '\(key)' holds a non-integer") }
            return i
        }
    }

    func optionalInts(_ key: String) -> [Int]? { get(key) == .null ? nil : ints(key) }

    func doubles(_ key: String) -> [Double] {
        guard case .list(let items) = get(key) else { preconditionFailure("config key '\(key)' is not a list") }
        return items.map { v -> Double in
            switch v {
            case .float(let d): return d
            case .int(let i): return Double(i)
            default: preconditionFailure("config key '\(key)' holds a non-number")
            }
        }
    }

    func strings(_ key: String) -> [String] {
        guard case .list(let items) = get(key) else { preconditionFailure("config key '\(key)' is not a list") }
        return items.map { v -> String in
            guard case .string(let s) = v else { preconditionFailure("config key '\(key)' holds a non-string") }
            return s
        }
    }
}
