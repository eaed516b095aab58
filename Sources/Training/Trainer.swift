import Backbone
import Core
import Data
import Distributed
import Evaluation
import Foundation
import Heads
import ImageIO
import Layers
import Numerics
import PEFT
import RunIO

/// `causal-tune train`: the data-parallel training loop (reference §Training, §Command line).
///
/// Every rank holds the whole frozen backbone and the trainable set (Causal-Tune +
/// head) as one flat `ParameterSet`. Per update `k` (0-based; `lr_k` from the poly
/// schedule):
///
///     batch_k^r     = rank r's slots of global batch k      (pure function of seed, k, r, world)
///     n_k           = Σ_r valid pixels of batch_k^r          (all-reduce of one integer)
///     g_j           = ∂/∂θ [ Σ_{pixels of image j} CE ] / n_k   (image j's forward and backward alone)
///     g             = Σ_j g_j along one fixed tree over the slots (SlotGradientSum: ONE all-gather)
///     θ             ← AdamW(θ, g, lr_k)                      (identical on every rank)
///
/// Normalising by the *global* valid-pixel count makes the summed gradient the gradient of
/// the mean loss over the whole global batch, and computing every image alone and adding
/// them in one canonical order makes it the same bits for any world size dividing the
/// batch and any thread count (every reduction below is split into chunks that do not
/// depend on the thread count) — so resumed and re-sharded runs continue bit for bit.
///
/// Rank 0 initialises θ and broadcasts it, and alone prints and writes (metrics.jsonl,
/// train.log, config.yaml, checkpoints, evaluation JSON). Checkpoints are reference §Files files
/// `WORK_DIR/iter_<k>.h5` (the last `keep`, 0 = all) plus `best.h5` (best mean mIoU over
/// the val domains), each written atomically; `WORK_DIR/last_checkpoint` names the newest.
public final class Trainer {
    /// Command-line choices on top of the config.
    public struct Options {
        public var resume: String?
        public var initFrom: String?
        public var withBackbone: Bool
        public var quiet: Bool
        /// `--allow-backbone-change`: resume even when the backbone weights differ from the
        /// checkpoint's (SHA-256).
        public var allowBackboneChange: Bool
        public init(resume: String? = nil, initFrom: String? = nil, withBackbone: Bool = false, quiet: Bool = false,
                    allowBackboneChange: Bool = false) {
            self.resume = resume; self.initFrom = initFrom; self.withBackbone = withBackbone; self.quiet = quiet
            self.allowBackboneChange = allowBackboneChange
        }
    }

    public let config: ExperimentConfig
    public let options: Options
    public let comm: Communicator
    public let workDir: String
    public let network: SegmentationNetwork
    public let parameters: ParameterSet
    public let optimizer: Optimizer
    public let schedule: LearningRateSchedule
    /// Updates done so far (the next update has index `step`).
    public internal(set) var step = 0
    /// Non-finite steps skipped (`train.skip_nonfinite`).
    public internal(set) var skipped = 0
    public internal(set) var bestMIoU: Double?
    /// The step of `bestMIoU` (travels in every checkpoint with it).
    public internal(set) var bestStep: Int?
    public internal(set) var lastReport: EvaluationReport?
    /// Rank 0's lock on the work directory, held for the trainer's lifetime.
    private var workLock: WorkDirectoryLock?
    var rng: RandomGenerator
    let log: RunLog
    var metrics: MetricsWriter?
    private var backboneSHA256 = ""
    var lastCheckpoint: String?

    public init(config: ExperimentConfig, options: Options = Options(), communicator: Communicator) throws {
        self.config = config
        self.options = options
        self.comm = communicator
        workDir = config.output.workDir
        let t = config.train
        guard t.batchSize % communicator.size == 0 else {
            throw CausalTuneError("train.batch_size: \(t.batchSize) is not divisible by the number of ranks (\(communicator.size)); use a batch size that is a multiple of \(communicator.size)")
        }
        if options.resume != nil && options.initFrom != nil {
            throw CausalTuneError("--resume and --init exclude each other (resume restores everything, init only the parameters)")
        }
        Trainer.configureThreads(communicator)
        if communicator.isRoot {
            do { try FileManager.default.createDirectory(atPath: workDir, withIntermediateDirectories: true) } catch {
                throw CausalTuneError("\(workDir): cannot create the work directory (output.work_dir): \(error.localizedDescription)")
            }
            workLock = try WorkDirectoryLock(workDir: workDir)
            RunBookkeeping.removeStaleTemporaries(in: workDir)
            log = options.quiet ? RunLog.silent() : try RunLog(path: workDir + "/train.log")
            metrics = try MetricsWriter(workDir: workDir)
        } else {
            log = RunLog.silent()
        }
        // The modules' warnings (e.g. undefined label values) land in this run's log.
        RunLog.current = log

        rng = RandomGenerator(seed: UInt64(t.seed))
        network = try SegmentationNetwork(config: config, seed: UInt64(t.seed))
        parameters = ParameterSet(network.trainableParameters)
        optimizer = Optimizer(t.optimizer == .sgd ? .sgd : .adamw, parameters: parameters, weightDecay: t.weightDecay,
                              betas: (t.betas[0], t.betas[1]), eps: t.eps)
        schedule = .poly(base: t.lr, iters: t.iters, power: t.polyPower)
        // The trainer's own stream, checkpointed as rng_state: the root of the mask2former
        // head's per-image point sampling (`pointSeeds`). Data order and augmentation are pure
        // functions of (seed, step), see BatchLoader.
        _ = rng.next()

        // Rank 0's initial parameters on every rank.
        comm.broadcast(parameters.values, root: 0)
        parameters.scatterValues()

        if let path = options.resume {
            if ReinCheckpoint.handles(path) {
                throw CausalTuneError("--resume \(path): a PyTorch / safetensors file holds no optimizer state or step; use --init to start from its parameters")
            }
            let reader = try Checkpoint.Reader(path: path)
            try reader.requireResumable()
            try reader.requireCompatible(with: network.signature)
            try reader.loadParameters(into: parameters)
            try reader.loadOptimizer(into: optimizer)
            step = reader.metadata.step
            skipped = Int(reader.extra("skipped") ?? 0)
            bestMIoU = reader.extra("best_miou")
            bestStep = reader.extra("best_step").map { Int($0) }
            if reader.metadata.rngState.count == 4 { rng = RandomGenerator(state: reader.metadata.rngState) }
            try checkBackbone(recordedIn: reader)
            if comm.isRoot {
                // Rewritten under the same name: the writer is reopened on the new file.
                try MetricsWriter.dropLines(after: step, in: workDir + "/metrics.jsonl")
                metrics = try MetricsWriter(workDir: workDir)
            }
            log.info("resumed from \(path) at step \(step)")
        } else if let path = options.initFrom {
            // Our HDF5 checkpoint or a Rein / mmseg .pth (ReinCheckpoint).
            try ReinCheckpoint.loadAny(path, into: parameters, signature: network.signature,
                                       method: config.model.peft.method.rawValue, log: log)
            log.info("initialised the trainable parameters from \(path)")
        }
        if comm.isRoot && !config.model.backbone.randomWeights && backboneSHA256.isEmpty {
            backboneSHA256 = try SHA256.hexDigest(ofFile: config.model.backbone.weights)
        }
        // best.h5 only ever improves: an existing one (e.g. from the history a resume leaves
        // behind) sets the bar.
        if comm.isRoot, let recorded = RunBookkeeping.recordedBest(in: workDir), recorded.miou > (bestMIoU ?? -.infinity) {
            bestMIoU = recorded.miou
            bestStep = recorded.step
            log.info(String(format: "best.h5 in the work dir holds mean mIoU %.2f (step %d); it is replaced only by a better model", recorded.miou * 100, recorded.step))
        }
    }

    /// `--resume`: refuses a backbone other than the checkpoint's (weights file SHA-256, or
    /// random vs. file) unless `allowBackboneChange`; rank 0 decides, every rank stops.
    private func checkBackbone(recordedIn reader: Checkpoint.Reader) throws {
        var reason: String?
        if comm.isRoot {
            let b = config.model.backbone
            if !b.randomWeights { backboneSHA256 = try SHA256.hexDigest(ofFile: b.weights) }
            reason = RunBookkeeping.backboneChange(recordedWeights: reader.metadata.backboneWeights,
                                                   recordedSHA256: reader.metadata.backboneSHA256,
                                                   currentWeights: b.weights, currentSHA256: backboneSHA256)
        }
        guard comm.any(reason != nil) else { return }
        if options.allowBackboneChange {
            log.warning("\(reason ?? "the backbone differs from the checkpoint's"); resuming anyway (--allow-backbone-change)")
            return
        }
        throw CausalTuneError("\(reader.path): \(reason ?? "the backbone differs from the checkpoint's") — refusing to resume (pass --allow-backbone-change to resume anyway)")
    }

    /// The thread budget (`Parallel.threads`, which also splits the matrix products; OpenBLAS
    /// itself stays single-threaded) defaults to the node's cores ÷ local ranks unless
    /// CAUSAL_TUNE_NUM_THREADS or OPENBLAS_NUM_THREADS sets it.
    public static func configureThreads(_ comm: Communicator) {
        let env = ProcessInfo.processInfo.environment
        if env["OPENBLAS_NUM_THREADS"] == nil && env["CAUSAL_TUNE_NUM_THREADS"] == nil {
            Parallel.threads = comm.threadsPerRank
        }
        BLAS.setThreads(1)
    }

    // MARK: data

    /// Opens a configured dataset, generating the synthetic benchmark first when its
    /// root does not exist (rank 0 writes, the others wait).
    public static func openDataset(_ d: DatasetOptions, comm: Communicator, log: RunLog) throws -> Dataset {
        if d.dataset == .synthetic {
            var isDir: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: d.root, isDirectory: &isDir) && isDir.boolValue
            if !exists {
                // Generated on demand only at the default location: a typo'd root is an
                // error, not a new benchmark in an unexpected place.
                guard RunBookkeeping.mayGenerateSynthetic(at: d.root) else {
                    throw CausalTuneError("\(d.root): synthetic benchmark root not found (generated on demand only at \(RunBookkeeping.defaultSyntheticRoot); write this one with causal-tune synth --out \(d.root))")
                }
                var failure: String?
                if comm.isRoot {
                    log.info("generating the synthetic benchmark in \(d.root) (as causal-tune synth --out \(d.root) --train 200 --val 30)")
                    do { try RunBookkeeping.generateSynthetic(at: d.root, train: 200, val: 30) } catch {
                        failure = "\(error)"
                    }
                }
                if comm.any(failure != nil) {
                    throw CausalTuneError(failure ?? "generating the synthetic benchmark in \(d.root) failed on rank 0")
                }
            }
        }
        var set = try Dataset(named: d.dataset.rawValue, root: d.root, split: d.split,
                              selection: d.condition ?? d.domain, name: d.displayName)
        if let s = d.scale { set.evalScaleOverride = .some(s.evaluatorScale) }
        return set
    }

    /// The val domains to evaluate. A config that never set `data.val` gets the schema's
    /// default (Cityscapes val in `data/cityscapes`); when that folder is not there the run
    /// trains without evaluation (a warning says so) instead of failing — a minimal config
    /// (train data only) runs. A configured val root that is missing stays an error.
    public static func validationDomains(_ config: ExperimentConfig, log: RunLog) -> [DatasetOptions] {
        let val = config.data.val
        guard !config.isSet("data.val"), let v = val.first, !FileManager.default.fileExists(atPath: v.root) else {
            return val
        }
        log.warning("data.val is the default (Cityscapes val in data/cityscapes), which is not there: training without evaluation (set data.val to evaluate, or data.val: [] to silence this)")
        return []
    }

    func openDataset(_ d: DatasetOptions) throws -> Dataset {
        try Trainer.openDataset(d, comm: comm, log: log)
    }

    /// The evaluation windows for a network: crop = its input size, stride ⌊2/3⌋ of it
    /// (341 for 512, the reference configs).
    public static func slidingWindow(for network: SegmentationNetwork) -> SlidingWindow {
        let s = network.inputSize
        var window = SlidingWindow(crop: s, stride: max(1, (2 * s) / 3))
        window.normalization = network.config.model.backbone.normalization
        window.batch = network.evaluationBatch
        return window
    }

    var window: SlidingWindow { Trainer.slidingWindow(for: network) }

    // MARK: evaluation

    /// Evaluates every configured val domain (ranks split the images; the confusion
    /// matrices are summed) and returns the report.
    public func evaluate(datasets: [Dataset]) throws -> EvaluationReport {
        let net = network
        return try Evaluator.evaluate(datasets: datasets, model: { try net.logits(window: $0) },
                                      numClasses: net.head.numClasses, window: window, communicator: comm)
    }

    /// `output.dump_features` checked before the first step: layers are blocks of the
    /// backbone and every image exists and decodes to a sane size (not at the first dump,
    /// hours into the run).
    func checkFeatureDumpInputs() throws {
        let d = config.output.dumpFeatures
        guard d.every > 0 else { return }
        let depth = network.backbone.architecture.depth
        for l in d.layers where l >= depth {
            throw CausalTuneError("output.dump_features.layers: \(l) is not a block of \(network.backbone.architecture.name) (0…\(depth - 1))")
        }
        for image in d.images {
            do {
                let (w, h) = try ImageIO.size(image)
                guard w > 0 && h > 0 && w.multipliedReportingOverflow(by: h).partialValue <= ImageIO.maxPixels else {
                    throw CausalTuneError("\(image): image of \(w)×\(h) pixels cannot be dumped")
                }
            } catch let e as CausalTuneError {
                throw CausalTuneError("output.dump_features.images: \(e.message)")
            }
        }
    }

    // MARK: point sampling

    /// Seeds of the mask2former head's per-image point sampling at update `step`: image j of
    /// the global batch draws from `RandomGenerator(seed: s_j)`,
    ///
    ///     r   = RandomGenerator(state: rng_state).next()      (rng_state: the checkpointed root)
    ///     s_j = mix(mix(r, step), j)                          (splitmix64 finaliser)
    ///
    /// a pure function of the checkpoint's rng state, the step and the slot j — so a resumed
    /// run draws the same points as the uninterrupted one, and every world size the same as
    /// one process (a rank passes its own slots).
    public static func pointSeeds(rngState: [UInt64], step: Int, slots: [Int]) -> [UInt64] {
        var root = RandomGenerator(state: rngState)
        let r = root.next()
        let s = RandomGenerator.mix(r, UInt64(step))
        return slots.map { RandomGenerator.mix(s, UInt64($0)) }
    }

    // MARK: checkpoints

    private func metadata(extra: [String: Double]) -> Checkpoint.Metadata {
        var e = extra
        e["skipped"] = Double(skipped)
        if let b = bestMIoU { e["best_miou"] = b }
        if let s = bestStep { e["best_step"] = Double(s) }
        return Checkpoint.Metadata(step: step, worldSize: comm.size, config: config.yaml, rngState: rng.state,
                                   optimizer: config.train.optimizer.rawValue, optimizerSteps: optimizer.stepCount,
                                   backboneWeights: config.model.backbone.weights, backboneSHA256: backboneSHA256,
                                   signature: network.signature, extra: e)
    }

    func writeCheckpoint(to path: String, extra: [String: Double]) throws {
        let backbone = options.withBackbone
            ? network.backbone.namedParameters.map { (name: $0.name, value: $0.parameter.value) } : []
        try Checkpoint.write(to: path, metadata: metadata(extra: extra), parameters: parameters, optimizer: optimizer,
                             backbone: backbone)
    }

    /// Writes `iter_<step>.h5` (rank 0), updates `last_checkpoint` and prunes old ones.
    func saveCheckpoint(miou: Double?) throws {
        let path = workDir + "/iter_\(step).h5"
        if comm.isRoot {
            try writeCheckpoint(to: path, extra: miou.map { ["miou": $0] } ?? [:])
            try AtomicFile.write(path + "\n", to: workDir + "/last_checkpoint")
            log.info("checkpoint \(path)")
            // Only checkpoints up to this step compete for `keep`: newer ones in the directory
            // are from an abandoned history (a resume from an older checkpoint) and are neither
            // counted nor deleted in favour of this run's.
            for c in RunBookkeeping.checkpointsToPrune(Trainer.iterationCheckpoints(in: workDir), step: step,
                                                       keep: config.train.keep) {
                try? FileManager.default.removeItem(atPath: c.path)
            }
        }
        lastCheckpoint = path
    }

    /// `iter_<k>.h5` files in `dir`, oldest first.
    public static func iterationCheckpoints(in dir: String) -> [(step: Int, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.compactMap { n -> (Int, String)? in
            guard n.hasPrefix("iter_"), n.hasSuffix(".h5"), let k = Int(n.dropFirst(5).dropLast(3)) else { return nil }
            return (k, dir + "/" + n)
        }.sorted { $0.0 < $1.0 }.map { (step: $0.0, path: $0.1) }
    }

    // MARK: feature dumps

    func dumpFeatures(step: Int) throws {
        guard comm.isRoot else { return }
        let d = config.output.dumpFeatures
        let dir = workDir + "/features"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let depth = network.backbone.architecture.depth
        let layers = d.layers.isEmpty ? Array(0..<depth) : d.layers
        for l in layers where l >= depth {
            throw CausalTuneError("output.dump_features.layers: \(l) is not a block (0…\(depth - 1))")
        }
        try FeatureExtraction.dump(model: network.backbone, images: d.images, layers: layers, config: config.yaml,
                                   to: dir + "/step_\(step).h5", load: { try FeatureDumpInput.load($0, fit: .crop) },
                                   hook: network.adapter.flatMap { PEFTFeatureDump.hook(adapter: $0, model: network.backbone, layers: layers) })
        if let adapter = network.adapter { PEFTFeatureDump.stopRecording(adapter) }
        log.info("feature dump \(dir)/step_\(step).h5")
    }
}
