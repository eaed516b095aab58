/// The names inside a checkpoint (reference §Files), one HDF5 file:
///
///     /                          attrs: format = "causal-tune-checkpoint", version = 1,
///                                       step, world_size, config (resolved YAML), created
///                                       (ISO-8601), rng_state (4 × uint64), optimizer,
///                                       optimizer_steps, backbone_weights, backbone_sha256,
///                                       the model signature (`ModelSignature`) and the
///                                       evaluation scalars (miou, best_miou, …)
///     /params/<name>             float32, trainable parameters, PyTorch layouts
///     /optimizer/exp_avg/<name>, /optimizer/exp_avg_sq/<name>
///     /backbone/<name>           only with --with-backbone
///
/// Training's `Checkpoint` writes and reads the file; the backbone's weight reader (a
/// checkpoint's `/backbone`), `inspect` and the Causal-Tune parameter loader sit below
/// Training, so the names live here where all of them can take them.
public enum CheckpointLayout {
    public static let format = "causal-tune-checkpoint"
    public static let version: Int64 = 1

    /// Root attribute names.
    public enum Attribute {
        public static let format = "format"
        public static let version = "version"
        public static let step = "step"
        public static let worldSize = "world_size"
        public static let config = "config"
        public static let created = "created"
        public static let rngState = "rng_state"
        public static let optimizer = "optimizer"
        public static let optimizerSteps = "optimizer_steps"
        public static let backboneWeights = "backbone_weights"
        public static let backboneSHA256 = "backbone_sha256"
        /// The float scalars the trainer adds (`Checkpoint.Metadata.extra`).
        public static let miou = "miou"
        public static let bestMIoU = "best_miou"
        public static let bestStep = "best_step"
        public static let skipped = "skipped"
        public static let evaluationScalars = [bestMIoU, bestStep, miou, skipped]
    }

    /// `/params`: the trainable parameters.
    public static let parameters = "params"
    /// `/optimizer`: AdamW's moments.
    public static let optimizer = "optimizer"
    /// `/backbone`: the frozen backbone's weights (`--with-backbone`).
    public static let backbone = "backbone"

    /// `params/<name>`.
    public static func parameterPath(_ name: String) -> String { parameters + "/" + name }
    /// `optimizer/exp_avg/<name>`.
    public static func firstMomentPath(_ name: String) -> String { optimizer + "/exp_avg/" + name }
    /// `optimizer/exp_avg_sq/<name>`.
    public static func secondMomentPath(_ name: String) -> String { optimizer + "/exp_avg_sq/" + name }
    /// `backbone/<name>`.
    public static func backbonePath(_ name: String) -> String { backbone + "/" + name }
}
