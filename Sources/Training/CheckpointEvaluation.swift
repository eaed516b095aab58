import Core
import Distributed
import Evaluation
import Foundation
import RunIO

/// `causal-tune evaluate`: the trainer's evaluator on a checkpoint (reference §Command line).
///
///     network ← config (model.*);  θ ← CHECKPOINT /params (model signature checked)
///     for each val domain (all of data.val, or those named by --dataset):
///         sliding-window logits → argmax → confusion matrix (ranks split the images,
///         matrices summed) → per-class IoU, mIoU;  mean mIoU over the domains
///         (`predictions`: every image's prediction, gathered to rank 0 — `--save-pred`)
public enum CheckpointEvaluation {
    /// Evaluates `checkpoint` on the val domains of `config` whose display name or
    /// dataset name is in `datasets` (all when empty); every prediction goes to
    /// `predictions` on rank 0 when given.
    public static func run(config: ExperimentConfig, checkpoint: String, datasets: [String], comm: Communicator,
                           log: RunLog, predictions: PredictionSink? = nil) throws -> EvaluationReport {
        Trainer.configureThreads(comm)
        let network = try SegmentationNetwork(config: config, seed: UInt64(config.train.seed))
        let parameters = ParameterSet(network.trainableParameters)
        // Our HDF5 checkpoint or a Rein / mmseg .pth (ReinCheckpoint).
        let loaded = try ReinCheckpoint.loadAny(checkpoint, into: parameters, signature: network.signature,
                                                method: config.model.peft.method.rawValue, log: log)
        // Our checkpoints record the backbone they were trained on: warn when it differs.
        if comm.isRoot, let reader = try? Checkpoint.Reader(path: checkpoint) {
            let b = config.model.backbone
            let sha = b.randomWeights ? "" : try SHA256.hexDigest(ofFile: b.weights)
            if let reason = RunBookkeeping.backboneChange(recordedWeights: reader.metadata.backboneWeights,
                                                          recordedSHA256: reader.metadata.backboneSHA256,
                                                          currentWeights: b.weights, currentSHA256: sha) {
                log.warning("\(checkpoint): \(reason); evaluating anyway, but the scores are not those of the trained model")
            }
        }
        var selected = config.data.val
        if !datasets.isEmpty {
            selected = selected.filter { datasets.contains($0.displayName) || datasets.contains($0.dataset.rawValue) }
            let known = Set(config.data.val.map(\.displayName) + config.data.val.map(\.dataset.rawValue))
            if let unknown = datasets.first(where: { !known.contains($0) }) {
                throw CausalTuneError("--dataset: '\(unknown)' is not a val domain of the config (data.val: \(config.data.val.map(\.displayName).joined(separator: ", ")))")
            }
        }
        guard !selected.isEmpty else { throw CausalTuneError("data.val: no validation datasets to evaluate") }
        let sets = try selected.map { try Trainer.openDataset($0, comm: comm, log: log) }
        log.info("evaluating \(checkpoint) (\(loaded)) on \(sets.map(\.name).joined(separator: ", "))")
        return try Evaluator.evaluate(datasets: sets, model: { try network.logits(window: $0) },
                                      numClasses: network.head.numClasses, window: Trainer.slidingWindow(for: network),
                                      communicator: comm, predictions: predictions)
    }
}
