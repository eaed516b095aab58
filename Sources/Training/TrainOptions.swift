import Config

/// `train`: the optimisation — seed, length, batch, optimiser, schedule, clipping — and
/// how often the run logs, evaluates and saves.
public struct TrainOptions: Equatable, Sendable, Decodable {
    public enum Schedule: String, CaseIterable, Sendable, Decodable { case poly }

    /// Any non-negative 64-bit integer.
    public var seed: Int
    public var iters: Int
    /// The global batch (split over the ranks).
    public var batchSize: Int
    public var optimizer: OptimizerKind
    public var lr: Double
    public var weightDecay: Double
    /// AdamW's (β₁, β₂).
    public var betas: [Double]
    public var eps: Double
    public var schedule: Schedule
    public var polyPower: Double
    /// The largest global gradient norm; nil: no clipping.
    public var gradClip: Double?
    public var logEvery: Int
    public var evalEvery: Int
    public var checkpointEvery: Int
    /// How many periodic checkpoints stay, the newest (0 keeps all).
    public var keep: Int
    public var skipNonfinite: Bool

    public static let schema: ConfigSchema = .map([
        "seed": .int(0, min: 0),
        "iters": .int(40000, min: 1, max: 1_000_000_000),
        "batch_size": .int(4, min: 1, max: 4096),
        "optimizer": .choice(OptimizerKind.adamw),
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
    ])
}

/// `output`: where the run writes, and which feature dumps it records while training.
public struct OutputOptions: Equatable, Sendable, Decodable {
    /// null in the config: `runs/<config file stem>`.
    public var workDir: String
    public var dumpFeatures: FeatureDumpOptions

    /// `output.dump_features`: every `every` steps (0: never) the features of `images` at
    /// `layers`.
    public struct FeatureDumpOptions: Equatable, Sendable, Decodable {
        public var every: Int
        public var images: [String]
        public var layers: [Int]
    }

    public static let schema: ConfigSchema = .map([
        "work_dir": .string(nil),
        "dump_features": .map([
            "every": .int(0, min: 0, max: 1_000_000_000),
            "images": .strings([]),
            "layers": .ints([], min: 0, max: 255),
        ]),
    ])
}
